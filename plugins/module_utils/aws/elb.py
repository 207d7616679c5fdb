# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Elastic Load Balancing calls of the collection, classic ELB and ELBv2: the one place services,
status and teardown reach them through.

amazon.aws's ``module_utils.elb_utils`` wrappers are re-exported as they are; the calls it has no
wrapper for (every classic ELB call, target groups, batched tag reads, the deletion waits) are
written here the same way: AnsibleAWSError naming the operation, AWS throttling retried. Direct
calls pass ``aws_retry=True``, so the clients are ``Context.from_module``'s, which carry AWSRetry;
paginated reads and calls that must retry other codes carry the decorator themselves.
"""

import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import ELBv2TargetGroupErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import add_tags
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import create_listener
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import create_load_balancer
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import delete_load_balancer
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_listeners
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_load_balancer_attributes
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_load_balancers
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_tags
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import modify_listener
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import modify_load_balancer_attributes
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import remove_tags
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import set_security_groups
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import set_subnets
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.waiters import get_waiter

from .handlers import error_handler
from .waiters import waiter_config

__all__ = [
    "add_tags", "remove_tags", "create_listener", "create_load_balancer", "delete_load_balancer", "describe_listeners",
    "describe_load_balancer_attributes", "describe_load_balancers", "describe_tags", "modify_listener",
    "modify_load_balancer_attributes", "set_security_groups", "set_subnets",
    # written here
    "API_PORT", "NLB", "CLASSIC", "ClassicELBErrorHandler", "add_classic_tags", "remove_classic_tags", "attach_classic_subnets",
    "configure_classic_health_check", "create_classic_balancer", "create_classic_listener", "create_target_group",
    "delete_classic_balancer", "delete_classic_listener", "delete_target_group", "deregister_classic_instances",
    "deregister_targets", "describe_classic_attributes", "describe_classic_balancers", "describe_classic_tags",
    "describe_target_group_attributes", "describe_target_groups", "describe_target_health", "detach_classic_subnets",
    "elbv2_tags", "modify_classic_attributes", "modify_target_group", "modify_target_group_attributes",
    "register_classic_instances", "register_targets", "set_classic_security_groups", "wait_until_deleted",
]

Client = Any
Resource = Dict[str, Any]
Tags = Dict[str, str]

# The Kubernetes API port every API balancer listens and forwards on.
API_PORT = 6443
# The collection's names for the two balancer types (cluster.network.api_load_balancer.type).
NLB = "nlb"
CLASSIC = "classic"

DESCRIBE_TAGS_BATCH = 20  # the most names (classic) or ARNs (elbv2) one DescribeTags takes
DELETE_WAIT_DELAY = 10  # seconds between polls of the deletion waiters


def _batches(items: Iterable[str], size: int = DESCRIBE_TAGS_BATCH) -> List[List[str]]:
    listed = list(items)
    return [listed[i:i + size] for i in range(0, len(listed), size)]


# --- classic ELB (amazon.aws has no wrappers) -----------------------------------------------

ClassicELBErrorHandler = error_handler("ClassicELBErrorHandler", AnsibleAWSError, lambda: is_boto3_error_code("LoadBalancerNotFound"))


@ClassicELBErrorHandler.list_error_handler("describe classic load balancers", [])
@AWSRetry.jittered_backoff()
def describe_classic_balancers(elb: Client, names: Optional[Sequence[str]] = None) -> List[Resource]:
    """Classic balancers, all or by name. AWS fails the whole call when one name does not exist: [] then."""
    params = {"LoadBalancerNames": list(names)} if names else {}
    found: List[Resource] = elb.get_paginator("describe_load_balancers").paginate(**params).build_full_result()[
        "LoadBalancerDescriptions"]
    return found


@ClassicELBErrorHandler.common_error_handler("describe classic load balancer tags")
def describe_classic_tags(elb: Client, names: Iterable[str]) -> Dict[str, Tags]:
    """Tags of classic balancers by name, read DESCRIBE_TAGS_BATCH names per call."""
    tags: Dict[str, Tags] = {}
    for batch in _batches(names):
        for description in elb.describe_tags(LoadBalancerNames=batch, aws_retry=True)["TagDescriptions"]:
            tags[description["LoadBalancerName"]] = boto3_tag_list_to_ansible_dict(description.get("Tags") or [])
    return tags


@ClassicELBErrorHandler.common_error_handler("describe classic load balancer attributes")
def describe_classic_attributes(elb: Client, name: str) -> Resource:
    attributes: Resource = elb.describe_load_balancer_attributes(LoadBalancerName=name, aws_retry=True)["LoadBalancerAttributes"]
    return attributes


@ClassicELBErrorHandler.common_error_handler("create classic load balancer")
def create_classic_balancer(elb: Client, **params: Any) -> str:
    """Create the balancer; its DNS name."""
    dns_name: str = elb.create_load_balancer(aws_retry=True, **params)["DNSName"]
    return dns_name


@ClassicELBErrorHandler.common_error_handler("configure classic health check")
def configure_classic_health_check(elb: Client, name: str, health_check: Resource) -> None:
    elb.configure_health_check(LoadBalancerName=name, HealthCheck=health_check, aws_retry=True)


@ClassicELBErrorHandler.common_error_handler("modify classic load balancer attributes")
def modify_classic_attributes(elb: Client, name: str, attributes: Resource) -> None:
    elb.modify_load_balancer_attributes(LoadBalancerName=name, LoadBalancerAttributes=attributes, aws_retry=True)


@ClassicELBErrorHandler.common_error_handler("create classic listener")
def create_classic_listener(elb: Client, name: str, listener: Resource) -> None:
    elb.create_load_balancer_listeners(LoadBalancerName=name, Listeners=[listener], aws_retry=True)


@ClassicELBErrorHandler.common_error_handler("delete classic listener")
def delete_classic_listener(elb: Client, name: str, port: int) -> None:
    elb.delete_load_balancer_listeners(LoadBalancerName=name, LoadBalancerPorts=[port], aws_retry=True)


@ClassicELBErrorHandler.common_error_handler("tag classic load balancer")
def add_classic_tags(elb: Client, name: str, tags: Tags) -> None:
    elb.add_tags(LoadBalancerNames=[name], Tags=ansible_dict_to_boto3_tag_list(tags), aws_retry=True)


@ClassicELBErrorHandler.common_error_handler("untag classic load balancer")
def remove_classic_tags(elb: Client, name: str, keys: Sequence[str]) -> None:
    elb.remove_tags(LoadBalancerNames=[name], Tags=[{"Key": key} for key in keys], aws_retry=True)


ClassicMembership = Callable[[Client, str, Iterable[str]], None]


def _membership(operation: str, field: str, description: str, item: Callable[[str], Any] = str) -> ClassicMembership:
    """A call ``(elb, name, ids)`` that sets, adds or removes one kind of member of a classic balancer:
    ``elb.<operation>(LoadBalancerName=name, <field>=[item(id), ...])``, failing with "Failed to <description>"."""

    def call(elb: Client, name: str, ids: Iterable[str]) -> None:
        getattr(elb, operation)(LoadBalancerName=name, aws_retry=True, **{field: [item(i) for i in ids]})

    handled: ClassicMembership = ClassicELBErrorHandler.common_error_handler(description)(call)
    return handled


def _instance(instance_id: str) -> Dict[str, str]:
    return {"InstanceId": instance_id}


set_classic_security_groups = _membership("apply_security_groups_to_load_balancer", "SecurityGroups", "set classic security groups")
attach_classic_subnets = _membership("attach_load_balancer_to_subnets", "Subnets", "attach classic load balancer to subnets")
detach_classic_subnets = _membership("detach_load_balancer_from_subnets", "Subnets", "detach classic load balancer from subnets")
register_classic_instances = _membership("register_instances_with_load_balancer", "Instances",
                                         "register instances with classic load balancer", _instance)
deregister_classic_instances = _membership("deregister_instances_from_load_balancer", "Instances",
                                           "deregister instances from classic load balancer", _instance)


@ClassicELBErrorHandler.deletion_error_handler("delete classic load balancer")
def delete_classic_balancer(elb: Client, name: str) -> bool:
    elb.delete_load_balancer(LoadBalancerName=name, aws_retry=True)
    return True


# --- ELBv2 target groups and tags (beyond amazon.aws's wrappers) ------------------------------

@ELBv2TargetGroupErrorHandler.list_error_handler("describe target groups", [])
@AWSRetry.jittered_backoff()
def describe_target_groups(elbv2: Client, **params: Any) -> List[Resource]:
    """Target groups (all, or by Names); a name that does not exist reads as none."""
    groups: List[Resource] = elbv2.get_paginator("describe_target_groups").paginate(**params).build_full_result()["TargetGroups"]
    return groups


@ELBv2TargetGroupErrorHandler.common_error_handler("create target group")
def create_target_group(elbv2: Client, **params: Any) -> str:
    """Create the group; its ARN."""
    arn: str = elbv2.create_target_group(aws_retry=True, **params)["TargetGroups"][0]["TargetGroupArn"]
    return arn


@ELBv2TargetGroupErrorHandler.common_error_handler("modify target group health check")
def modify_target_group(elbv2: Client, arn: str, **params: Any) -> None:
    elbv2.modify_target_group(TargetGroupArn=arn, aws_retry=True, **params)


@ELBv2TargetGroupErrorHandler.common_error_handler("describe target group attributes")
def describe_target_group_attributes(elbv2: Client, arn: str) -> List[Dict[str, str]]:
    attributes: List[Dict[str, str]] = elbv2.describe_target_group_attributes(TargetGroupArn=arn, aws_retry=True)["Attributes"]
    return attributes


@ELBv2TargetGroupErrorHandler.common_error_handler("modify target group attributes")
def modify_target_group_attributes(elbv2: Client, arn: str, attributes: List[Dict[str, str]]) -> None:
    elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=attributes, aws_retry=True)


@ELBv2TargetGroupErrorHandler.common_error_handler("describe target health")
def describe_target_health(elbv2: Client, arn: str) -> List[Resource]:
    health: List[Resource] = elbv2.describe_target_health(TargetGroupArn=arn, aws_retry=True)["TargetHealthDescriptions"]
    return health


def _targets(instance_ids: Iterable[str], port: int) -> List[Dict[str, Any]]:
    return [{"Id": instance_id, "Port": port} for instance_id in instance_ids]


@ELBv2TargetGroupErrorHandler.common_error_handler("register targets")
def register_targets(elbv2: Client, arn: str, instance_ids: Iterable[str], port: int) -> None:
    elbv2.register_targets(TargetGroupArn=arn, Targets=_targets(instance_ids, port), aws_retry=True)


@ELBv2TargetGroupErrorHandler.common_error_handler("deregister targets")
def deregister_targets(elbv2: Client, arn: str, instance_ids: Iterable[str], port: int) -> None:
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=_targets(instance_ids, port), aws_retry=True)


@ELBv2TargetGroupErrorHandler.deletion_error_handler("delete target group")
@AWSRetry.jittered_backoff(catch_extra_error_codes=["ResourceInUse"])
def delete_target_group(elbv2: Client, arn: str) -> bool:
    # The listener of a balancer just deleted can hold the group for a few seconds more.
    elbv2.delete_target_group(TargetGroupArn=arn)
    return True


def elbv2_tags(elbv2: Client, arns: Iterable[str]) -> Dict[str, Tags]:
    """Tags of elbv2 resources (balancers and target groups alike) by ARN, DESCRIBE_TAGS_BATCH ARNs per call."""
    tags: Dict[str, Tags] = {}
    for batch in _batches(arns):
        for description in describe_tags(elbv2, batch):
            tags[description["ResourceArn"]] = boto3_tag_list_to_ansible_dict(description.get("Tags") or [])
    return tags


# --- waits ------------------------------------------------------------------------------------

def wait_until_deleted(elb: Client, elbv2: Client, classic_names: Sequence[str], nlb_arns: Sequence[str],
                       timeout: float) -> None:
    """Wait once for every deleted balancer to be gone, within one overall timeout."""
    deadline = time.time() + timeout
    waits = [(elb, "load_balancer_deleted", {"LoadBalancerNames": [name]}) for name in classic_names]
    waits += [(elbv2, "load_balancers_deleted", {"LoadBalancerArns": [arn]}) for arn in nlb_arns]
    # One balancer per call: a call naming several succeeds as soon as the first is gone.
    for client, waiter, params in waits:
        get_waiter(client, waiter).wait(WaiterConfig=waiter_config(deadline - time.time(), DELETE_WAIT_DELAY), **params)
