# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The SSM Parameter Store calls of the collection (the cluster lease is a parameter).

Each raises AnsibleSSMError naming the operation and retries throttling with AWSRetry, so
plain boto3 clients and ``Context.from_module``'s alike can be passed.
"""

from typing import Any, Dict, List, Optional

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from .handlers import error_handler

Client = Any


class AnsibleSSMError(AnsibleAWSError):  # type: ignore[misc]  # amazon.aws is read as untyped
    pass


SSMParameterErrorHandler = error_handler("SSMParameterErrorHandler", AnsibleSSMError,
                                         lambda: is_boto3_error_code("ParameterNotFound"))


@SSMParameterErrorHandler.common_error_handler("create the cluster lease parameter")
@AWSRetry.jittered_backoff()
def create_parameter_if_absent(ssm: Client, name: str, value: str, tags: List[Dict[str, str]], description: str) -> bool:
    """Create a String parameter unless it exists: True when this call created it (atomic in SSM)."""
    try:
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=False, Tags=tags, Description=description)
    except is_boto3_error_code("ParameterAlreadyExists"):
        return False
    return True


@SSMParameterErrorHandler.common_error_handler("renew the cluster lease parameter")
@AWSRetry.jittered_backoff()
def overwrite_parameter(ssm: Client, name: str, value: str) -> None:
    # AWS refuses Tags together with Overwrite; the tags of the creation stay.
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


@SSMParameterErrorHandler.list_error_handler("read the cluster lease parameter")
@AWSRetry.jittered_backoff()
def get_parameter_value(ssm: Client, name: str) -> Optional[str]:
    """The parameter's value, or None when there is no such parameter."""
    value: str = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    return value


@SSMParameterErrorHandler.deletion_error_handler("delete the cluster lease parameter")
@AWSRetry.jittered_backoff()
def delete_parameter(ssm: Client, name: str) -> bool:
    """Delete the parameter: True when it was there, False when it was already gone."""
    ssm.delete_parameter(Name=name)
    return True
