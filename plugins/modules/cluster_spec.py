#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cluster_spec
short_description: Validate a cluster spec and fill in its defaults
version_added: 1.0.0
description:
  - Checks a kubecluster.aws cluster spec as a whole and returns it complete, with every
    default and every Cluster API quick-start environment variable filled in, and the
    availability zones resolved to names.
  - The spec is validated before any AWS call; every problem is reported at once, each
    naming the field and the fix.
  - With O(check_account=true) it then reads (never writes) the account to check what only
    AWS knows - the region's availability zones, the Elastic IP quota left for the NAT
    layout, that the SSH key pair exists and that the machines' IAM instance profiles
    exist - so that nothing is created for a cluster that cannot be built.
  - Playbooks run it first and pass its RV(cluster) to the other modules.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  check_account:
    description:
      - Read the account to check the zones, the Elastic IP quota, the key pair and the
        instance profiles.
      - With V(false) no AWS call is made and an availability zone count stays a count.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: The module never changes anything.
notes:
  - The Elastic IP quota is read from Service Quotas (ec2 C(L-0263D0A3)); where that is not
    allowed or not served, from the account attribute C(vpc-max-elastic-ips).
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Validate the spec and resolve its defaults
  kubecluster.aws.cluster_spec:
    cluster: "{{ cluster }}"
  register: spec

- name: Build the network from the resolved spec
  kubecluster.aws.cluster_network:
    cluster: "{{ spec.cluster }}"

- name: Only validate, offline
  kubecluster.aws.cluster_spec:
    cluster:
      name: capi-example
      region: ap-northeast-2
      kubernetes_version: v1.31.4
    check_account: false
"""

RETURN = r"""
cluster:
  description: The complete spec, every default filled in; availability zones as names when the account was read.
  returned: always
  type: dict
  sample:
    name: capi-example
    region: ap-northeast-2
    kubernetes_version: v1.31.4
    network:
      vpc_cidr: 10.0.0.0/16
      availability_zones: [ap-northeast-2a, ap-northeast-2b, ap-northeast-2c]
      nat_gateways: per_az
nat_gateway_count:
  description: How many NAT gateways, and so Elastic IPs, the NAT layout needs.
  returned: when check_account is true
  type: int
  sample: 3
elastic_ips:
  description: The Elastic IP quota and use in the region.
  returned: when check_account is true
  type: dict
  contains:
    quota:
      description: How many Elastic IPs the account may hold in the region.
      type: int
      sample: 5
    in_use:
      description: How many are allocated now, by anyone.
      type: int
      sample: 1
    owned:
      description: How many of them this cluster already owns.
      type: int
      sample: 0
"""

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_addresses
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_key_pairs
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import check_against_account
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import instance_profiles
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import nat_gateway_count

EIP_QUOTA_CODE = "L-0263D0A3"
DEFAULT_EIP_QUOTA = 5


def elastic_ip_quota(module, spec, ec2):
    """The region's Elastic IP quota: Service Quotas first, as raised quotas only show there."""
    quotas = module.client("service-quotas", region=spec["region"], retry_decorator=AWSRetry.jittered_backoff())
    try:
        answer = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=EIP_QUOTA_CODE, aws_retry=True)
        return int(answer["Quota"]["Value"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        pass  # not permitted or not served here: the account attribute holds the default quota
    attributes = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"], aws_retry=True)
    for attribute in attributes.get("AccountAttributes", []):
        for value in attribute.get("AttributeValues", []):
            return int(value["AttributeValue"])
    return DEFAULT_EIP_QUOTA


def existing_key_pairs(ec2, key_name):
    if not key_name:
        return None
    return set(pair["KeyName"] for pair in describe_key_pairs(ec2, KeyNames=[key_name]))


def missing_instance_profiles(module, spec):
    """Field paths whose instance profile does not exist: machines could not launch with them."""
    iam = module.client("iam", retry_decorator=AWSRetry.jittered_backoff())
    missing = set()
    for name in set(instance_profiles(spec).values()):
        try:
            iam.get_instance_profile(InstanceProfileName=name, aws_retry=True)
        except is_boto3_error_code("NoSuchEntity"):
            missing.add(name)
    return sorted(path for path, name in instance_profiles(spec).items() if name in missing)


def check_account(module, spec):
    ec2 = runner.client(module, spec, "ec2")
    spec = runner.resolve_zones(module, spec, ec2)
    zones = spec["network"]["availability_zones"]
    addresses = describe_addresses(ec2)
    owned = [a for a in addresses if naming.is_owned(naming.tags_to_dict(a.get("Tags")), spec["name"])]
    quota = elastic_ip_quota(module, spec, ec2)
    check_against_account(spec, zones, quota, len(addresses), len(owned), existing_key_pairs(ec2, spec["ssh_key_name"]),
                          missing_instance_profiles(module, spec))
    return dict(cluster=spec, nat_gateway_count=nat_gateway_count(spec, len(zones)),
                elastic_ips=dict(quota=quota, in_use=len(addresses), owned=len(owned)))


def main():
    argument_spec = dict(
        check_account=dict(type="bool", default=True),
    )
    module = runner.cluster_module(argument_spec)
    spec = runner.load_spec(module)
    if not module.params["check_account"]:
        module.exit_json(changed=False, cluster=spec)
    try:
        result = check_account(module, spec)
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        module.fail_json_aws(error, msg="Failed to read the account to check the cluster spec")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
