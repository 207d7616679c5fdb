# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's managed VPC and its DNS attributes, as CAPA's network service (vpc.go) makes them.

Want: one VPC ``<cluster>-vpc`` of the spec's CIDR with DNS support and DNS hostnames on.
Have: the owned VPC by its Name tag and its two DNS attributes. Plan: create it, or turn on
an attribute that is off. The VPC's id goes to ``plan.refs[REF]`` for everything made in it.
"""

from typing import Any, Callable, Dict, Optional

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from . import drift as drifts
from . import lookup
from . import naming
from .aws import ec2 as aws_ec2
from .context import Context
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]

REF = "vpc_id"
# (DescribeVpcAttribute's attribute, ModifyVpcAttribute's parameter, how the plan says it)
DNS_ATTRIBUTES = (("enableDnsSupport", "EnableDnsSupport", "DNS support"),
                  ("enableDnsHostnames", "EnableDnsHostnames", "DNS hostnames"))


def _dns(ctx: Context, vpc_id: str) -> Dict[str, bool]:
    return {attribute: bool(aws_ec2.describe_vpc_attribute(ctx.ec2, vpc_id, attribute)[key]["Value"])
            for attribute, key, _label in DNS_ATTRIBUTES}


def _enable(ctx: Context, plan: Plan, key: str) -> Callable[[], Any]:
    return lambda: aws_ec2.modify_vpc_attribute(ctx.ec2, plan.refs[REF], **{key: {"Value": True}})


def plan_present(ctx: Context, spec: Spec, plan: Plan, drift: Optional[drifts.TagDrift] = None) -> Optional[Resource]:
    """Add to ``plan`` what makes the managed VPC match the spec; return the VPC as it is now (None when to be created).

    Its tags are checked against the spec's additional tags with ``drift`` (planned by the caller)."""
    cluster = spec["name"]
    label = naming.vpc_name(cluster)
    vpc = lookup.cluster_vpc(ctx.ec2, spec)
    if vpc:
        plan.refs[REF] = vpc["VpcId"]
        if drift:
            drift.check("vpc", label, vpc["VpcId"], lookup.tags_of(vpc))
        dns = _dns(ctx, vpc["VpcId"])
        for attribute, key, text in DNS_ATTRIBUTES:
            if not dns[attribute]:
                plan.update("vpc", label, _enable(ctx, plan, key), "turn on " + text)
        return vpc
    cidr = spec["network"]["vpc_cidr"]
    tags = naming.resource_tags(cluster, label, naming.ROLE_COMMON, spec["additional_tags"])

    def create() -> None:
        vpc_id = aws_ec2.create_vpc(ctx.ec2, CidrBlock=cidr, TagSpecifications=boto3_tag_specifications(tags, ["vpc"]))["VpcId"]
        plan.refs[REF] = vpc_id
        # A new VPC has DNS support on and DNS hostnames off; CAPA turns hostnames on.
        aws_ec2.eventually(aws_ec2.modify_vpc_attribute, ctx.ec2, vpc_id, EnableDnsHostnames={"Value": True})

    plan.create("vpc", label, create, "%s, DNS support and hostnames on" % cidr)
    return None


def plan_delete(ctx: Context, plan: Plan, vpc: Resource) -> None:
    """Add the VPC's delete to ``plan`` (everything in it must be gone by then)."""
    vpc_id = vpc["VpcId"]
    plan.delete("vpc", lookup.name_of(vpc, vpc_id), lambda: aws_ec2.delete_vpc(ctx.ec2, vpc_id), vpc_id)
