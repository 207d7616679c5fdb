# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The EC2 calls of the collection: the one place services reach EC2 through.

amazon.aws's ``module_utils.ec2`` wrappers (AWSRetry on throttling, AnsibleAWSError with the
operation named) are re-exported as they are; the calls amazon.aws has no wrapper for are
written here the same way. Services import this module (``from ..aws import ec2 as aws_ec2``),
never boto3 calls of their own, so retries, error handling and waiter timing are decided here.
"""

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import EC2InstanceErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import EC2VpcRouteTableErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import allocate_address
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import associate_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import attach_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import authorize_security_group_ingress
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_nat_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_route
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_security_group
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_subnet
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_vpc
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_nat_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_network_interface
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_route
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_security_group
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_subnet
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_vpc
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_addresses
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_availability_zones
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_images
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_instances
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_internet_gateways
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_key_pairs
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_nat_gateways
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_network_interfaces
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_route_tables
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_security_groups
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_subnets
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_vpc_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_vpcs
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import detach_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import disassociate_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import modify_instance_metadata_options
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import modify_subnet_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import modify_vpc_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import release_address
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import replace_route
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import revoke_security_group_ingress
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import run_instances
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import terminate_instances
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import is_ansible_aws_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.waiters import get_waiter

from .waiters import waiter_config

__all__ = [
    "allocate_address", "associate_route_table", "attach_internet_gateway", "authorize_security_group_ingress",
    "create_internet_gateway", "create_nat_gateway", "create_route", "create_route_table", "create_security_group",
    "create_subnet", "create_vpc", "delete_internet_gateway", "delete_nat_gateway", "delete_network_interface",
    "delete_route", "delete_route_table", "delete_security_group", "delete_subnet", "delete_vpc", "describe_addresses",
    "describe_availability_zones", "describe_images", "describe_instances", "describe_internet_gateways",
    "describe_key_pairs", "describe_nat_gateways", "describe_network_interfaces", "describe_route_tables",
    "describe_security_groups", "describe_subnets", "describe_vpc_attribute", "describe_vpcs", "detach_internet_gateway",
    "disassociate_route_table", "modify_instance_metadata_options", "modify_subnet_attribute", "modify_vpc_attribute",
    "release_address", "replace_route", "revoke_security_group_ingress", "run_instances", "terminate_instances",
    # written here
    "create_tags", "delete_tags", "describe_instance_type_offerings", "describe_instance_types",
    "replace_route_table_association",
    "vpc_max_elastic_ips", "wait_for_instances",
    "wait_for_nat_gateways", "wait_for_network_interfaces_deleted", "eventually", "NOT_YET_VISIBLE",
]

Client = Any
Resource = Dict[str, Any]
T = TypeVar("T")

INSTANCE_WAIT_DELAY = 15  # seconds between polls, as the boto3 instance waiters
NAT_WAIT_DELAY = 5  # as amazon.aws's ec2_vpc_nat_gateway

# What EC2 answers, for a short while, about an id it has just handed out (eventual consistency).
NOT_YET_VISIBLE = (
    "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound", "InvalidRouteTableID.NotFound",
    "InvalidInternetGatewayID.NotFound", "InvalidGatewayID.NotFound", "InvalidNatGatewayID.NotFound",
    "InvalidAllocationID.NotFound", "InvalidElasticIpID.NotFound", "InvalidGroup.NotFound",
    "InvalidInstanceID.NotFound",
)
EVENTUAL_DELAYS = (1, 2, 4, 8, 15, 15, 15)  # seconds; about a minute in all


def eventually(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an EC2 call, again while EC2 does not yet know an id it has just created.

    ``call`` is a wrapper such as create_route, which raises AnsibleAWSError; only the
    NOT_YET_VISIBLE codes are retried, so a real error still fails at once.
    """
    for delay in EVENTUAL_DELAYS:
        try:
            return call(*args, **kwargs)
        except is_ansible_aws_error_code(NOT_YET_VISIBLE):
            time.sleep(delay)
    return call(*args, **kwargs)


@EC2InstanceErrorHandler.common_error_handler("describe instance types")
@AWSRetry.jittered_backoff()
def describe_instance_types(ec2: Client, **params: Any) -> List[Resource]:
    paginator = ec2.get_paginator("describe_instance_types")
    types: List[Resource] = paginator.paginate(**params).build_full_result()["InstanceTypes"]
    return types


@EC2InstanceErrorHandler.common_error_handler("describe instance type offerings")
@AWSRetry.jittered_backoff()
def describe_instance_type_offerings(ec2: Client, **params: Any) -> List[Resource]:
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    offerings: List[Resource] = paginator.paginate(**params).build_full_result()["InstanceTypeOfferings"]
    return offerings


# Resources per CreateTags / DeleteTags call (EC2 takes up to 1000).
TAG_BATCH = 500


@EC2InstanceErrorHandler.common_error_handler("tag the resources")
@AWSRetry.jittered_backoff()
def create_tags(ec2: Client, resource_ids: Sequence[str], tags: Dict[str, str]) -> bool:
    """Set the same tags on any EC2 resources (instances, VPC, subnets, volumes, ENIs...): one CreateTags per 500 ids
    (amazon.aws's add_ec2_tags takes one resource)."""
    ids = list(resource_ids)
    for start in range(0, len(ids), TAG_BATCH):
        ec2.create_tags(Resources=ids[start:start + TAG_BATCH], Tags=[{"Key": key, "Value": value} for key, value in sorted(tags.items())])
    return True


@EC2InstanceErrorHandler.common_error_handler("untag the resources")
@AWSRetry.jittered_backoff()
def delete_tags(ec2: Client, resource_ids: Sequence[str], keys: Sequence[str]) -> bool:
    """Remove the tag ``keys`` (whatever their values) from any EC2 resources: one DeleteTags per 500 ids."""
    ids = list(resource_ids)
    for start in range(0, len(ids), TAG_BATCH):
        ec2.delete_tags(Resources=ids[start:start + TAG_BATCH], Tags=[{"Key": key} for key in sorted(keys)])
    return True


@EC2InstanceErrorHandler.common_error_handler("wait for the instances")
def wait_for_instances(ec2: Client, waiter_name: str, instance_ids: Sequence[str], timeout: float,
                       delay: int = INSTANCE_WAIT_DELAY) -> None:
    """Wait with a boto3 instance waiter (``instance_running``, ``instance_terminated``) for every id, once,
    polling every ``delay`` seconds."""
    ec2.get_waiter(waiter_name).wait(InstanceIds=list(instance_ids), WaiterConfig=waiter_config(timeout, delay))


def wait_for_network_interfaces_deleted(ec2: Client, interface_ids: Sequence[str], timeout: float) -> None:
    """Wait with amazon.aws's ``network_interface_deleted`` waiter until none of the ids is left, once; by filter,
    since a list of ids answers NotFound (which the waiter takes for success) as soon as one of them is gone."""
    get_waiter(ec2, "network_interface_deleted").wait(Filters=[{"Name": "network-interface-id", "Values": list(interface_ids)}],
                                                      WaiterConfig=waiter_config(timeout, NAT_WAIT_DELAY))


def wait_for_nat_gateways(ec2: Client, waiter_name: str, nat_ids: Sequence[str], timeout: float) -> None:
    """Wait with amazon.aws's NAT gateway waiters (``nat_gateway_available``, ``nat_gateway_deleted``) for every id, once."""
    get_waiter(ec2, waiter_name).wait(NatGatewayIds=list(nat_ids), WaiterConfig=waiter_config(timeout, NAT_WAIT_DELAY))


@EC2VpcRouteTableErrorHandler.common_error_handler("replace route table association")
@AWSRetry.jittered_backoff()
def replace_route_table_association(ec2: Client, association_id: str, route_table_id: str) -> bool:
    """Point a subnet's association at another table (amazon.aws has no wrapper for it)."""
    ec2.replace_route_table_association(AssociationId=association_id, RouteTableId=route_table_id)
    return True


@EC2InstanceErrorHandler.common_error_handler("describe account attributes")
@AWSRetry.jittered_backoff()
def vpc_max_elastic_ips(ec2: Client) -> Optional[int]:
    """The account attribute ``vpc-max-elastic-ips`` (the default EIP quota), or None when EC2 does not say."""
    answer = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])
    for attribute in answer.get("AccountAttributes", []):
        for value in attribute.get("AttributeValues", []):
            return int(value["AttributeValue"])
    return None
