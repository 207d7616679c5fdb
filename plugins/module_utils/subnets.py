# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's subnets, as CAPA's network service (subnets.go) makes them in a managed VPC.

Want: a public and a private subnet per availability zone with CAPA's CIDR split and its
names and tags (the ELB role tags the cloud-controller-manager looks for). Have: the owned
subnets of the VPC by role and zone. Plan: create the missing ones (public ones mapping
public IPs on launch) and turn that mapping back on where it went off. Each subnet's id
goes to ``plan.refs[ref(role, zone)]``.
"""

import functools
import ipaddress
from typing import Any, Callable, Dict, List, Optional, Tuple, TypedDict

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from . import drift as drifts
from . import lookup
from . import naming
from . import vpc
from .aws import ec2 as aws_ec2
from .context import Context
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]


class WantedSubnet(TypedDict):
    """One subnet CAPA makes; ``cidr`` becomes the existing subnet's once it is found."""

    role: str
    zone: str
    cidr: str
    name: str
    tags: Dict[str, str]


# --- CAPA's layout of a managed VPC (pure) ------------------------------------------------

def split_cidr(cidr: str, count: int) -> List[str]:
    """CAPA's SplitIntoSubnetsIPv4: the first ``count`` of 2^k equal blocks of ``cidr``, 2^k >= count."""
    blocks = ipaddress.ip_network(cidr).subnets(prefixlen_diff=(count - 1).bit_length())
    return [str(block) for _index, block in zip(range(count), blocks)]


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> Tuple[List[str], List[str]]:
    """(public CIDRs, private CIDRs), one of each per zone, as CAPA's getDefaultSubnets splits a VPC.

    The VPC is split into zones+1 blocks; the first is split again into the public subnets,
    the others are the private subnets, so the private ones (where machines live) get most
    of the addresses. 3 zones of 10.0.0.0/16: public /20s from 10.0.0.0, private /18s from 10.0.64.0.
    """
    blocks = split_cidr(vpc_cidr, zone_count + 1)
    return split_cidr(blocks[0], zone_count), blocks[1:]


def wanted_subnets(spec: Spec) -> List[WantedSubnet]:
    """The subnets CAPA makes: [{role, zone, cidr, name, tags}], public ones first, zones in spec order."""
    cluster = spec["name"]
    zones = spec["network"]["availability_zones"]
    public, private = subnet_cidrs(spec["network"]["vpc_cidr"], len(zones))
    out: List[WantedSubnet] = []
    for role, cidrs, elb_tag in ((naming.ROLE_PUBLIC, public, naming.ELB_ROLE_TAG),
                                 (naming.ROLE_PRIVATE, private, naming.INTERNAL_ELB_ROLE_TAG)):
        for zone, cidr in zip(zones, cidrs):
            name = naming.subnet_name(cluster, role, zone)
            tags: Dict[str, str] = naming.resource_tags(cluster, name, role, spec["additional_tags"], cloud_provider=True)
            tags[elb_tag] = "1"
            out.append({"role": role, "zone": zone, "cidr": cidr, "name": name, "tags": tags})
    return out


def ref(role: str, zone: str) -> str:
    """The plan.refs key of the id of the subnet of a role in a zone."""
    return "subnet:%s:%s" % (role, zone)


# --- present ---------------------------------------------------------------------------------

def _have(ctx: Context, cluster: str, vpc_id: str) -> Dict[Tuple[Optional[str], str], Resource]:
    """The owned subnets of the VPC by (role, zone), read once; the first of a pair wins."""
    found: Dict[Tuple[Optional[str], str], Resource] = {}
    filters = naming.owned_filters(cluster) + lookup.in_vpc(vpc_id)
    for subnet in lookup.owned(aws_ec2.describe_subnets(ctx.ec2, Filters=filters), cluster):
        found.setdefault((lookup.tags_of(subnet).get(naming.ROLE_TAG), subnet["AvailabilityZone"]), subnet)
    return found


def _map_public_ip(ctx: Context, subnet_id: str) -> Callable[[], Any]:
    return lambda: aws_ec2.eventually(aws_ec2.modify_subnet_attribute, ctx.ec2, subnet_id, MapPublicIpOnLaunch={"Value": True})


def _plan_create(ctx: Context, plan: Plan, want: WantedSubnet, public: bool) -> None:
    def create() -> None:
        subnet_id = aws_ec2.eventually(aws_ec2.create_subnet, ctx.ec2, VpcId=plan.refs[vpc.REF], CidrBlock=want["cidr"],
                                       AvailabilityZone=want["zone"],
                                       TagSpecifications=boto3_tag_specifications(want["tags"], ["subnet"]))["SubnetId"]
        plan.refs[ref(want["role"], want["zone"])] = subnet_id
        if public:
            _map_public_ip(ctx, subnet_id)()

    detail = "%s in %s%s" % (want["cidr"], want["zone"], ", public IPs on launch" if public else "")
    plan.create("subnet", want["name"], create, detail)


def plan_present(ctx: Context, spec: Spec, plan: Plan, current_vpc: Optional[Resource], wanted: List[WantedSubnet],
                 drift: Optional[drifts.TagDrift] = None) -> List[str]:
    """Add to ``plan`` what makes the ``wanted`` subnets exist in the VPC (``current_vpc``, None while to be created).

    An existing subnet's CIDR replaces the wanted one in ``wanted``: the network reports
    the subnets as they are. The tags of the wanted ones are checked with ``drift``. Returns
    the zones the cluster has public or private subnets in now.
    """
    have = _have(ctx, spec["name"], current_vpc["VpcId"]) if current_vpc else {}
    drifts.refuse_overlapping_subnets(spec, [w for w in wanted if (w["role"], w["zone"]) not in have],
                                      {lookup.name_of(s, s["SubnetId"]): s["CidrBlock"] for s in have.values()})
    for want in wanted:
        subnet = have.get((want["role"], want["zone"]))
        public = want["role"] == naming.ROLE_PUBLIC
        if not subnet:
            _plan_create(ctx, plan, want, public)
            continue
        plan.refs[ref(want["role"], want["zone"])] = subnet["SubnetId"]
        want["cidr"] = subnet["CidrBlock"]
        if drift:
            drift.check("subnet", want["name"], subnet["SubnetId"], lookup.tags_of(subnet))
        if public and not subnet.get("MapPublicIpOnLaunch"):
            plan.update("subnet", want["name"], _map_public_ip(ctx, subnet["SubnetId"]), "map public IPs on launch")
    return sorted({zone for role, zone in have if role in (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE)})


# --- absent ----------------------------------------------------------------------------------

def plan_delete(ctx: Context, plan: Plan, subnets: List[Resource]) -> None:
    """Add the deletes of ``subnets`` to ``plan``, in the order given."""
    for subnet in subnets:
        subnet_id = subnet["SubnetId"]
        plan.delete("subnet", lookup.name_of(subnet, subnet_id), functools.partial(aws_ec2.delete_subnet, ctx.ec2, subnet_id),
                    subnet_id)
