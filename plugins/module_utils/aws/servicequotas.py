# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Service Quotas calls of the collection: quotas raised for the account show only here."""

from typing import Any, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from .handlers import error_handler

Client = Any

EC2_SERVICE_CODE = "ec2"
# "EC2-VPC Elastic IPs", per region.
ELASTIC_IP_QUOTA_CODE = "L-0263D0A3"


class AnsibleServiceQuotasError(AnsibleAWSError):  # type: ignore[misc]  # amazon.aws is read as untyped
    pass


ServiceQuotasErrorHandler = error_handler("ServiceQuotasErrorHandler", AnsibleServiceQuotasError,
                                          lambda: is_boto3_error_code("NoSuchResourceException"))


@ServiceQuotasErrorHandler.list_error_handler("get the service quota", None)
@AWSRetry.jittered_backoff()
def get_service_quota(quotas: Client, service_code: str, quota_code: str) -> Optional[float]:
    """The quota's value for the account in the client's region, or None when Service Quotas has none."""
    value: float = quotas.get_service_quota(ServiceCode=service_code, QuotaCode=quota_code)["Quota"]["Value"]
    return value


def elastic_ip_quota(quotas: Client) -> Optional[int]:
    """The region's Elastic IP quota as Service Quotas has it (raised quotas included), or None when it has none."""
    value = get_service_quota(quotas, EC2_SERVICE_CODE, ELASTIC_IP_QUOTA_CODE)
    return None if value is None else int(value)
