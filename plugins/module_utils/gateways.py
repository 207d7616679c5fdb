# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The managed VPC's gateways, as CAPA's network service (gateways.go, natgateways.go, eips.go) makes them.

The internet gateway: one, attached to the VPC (a detached one an interrupted run left is
attached again). The NAT gateways: one per zone the NAT layout (spec.nat_zones) names, each
in its zone's public subnet with an Elastic IP; free owned Elastic IPs an earlier run left
are used before new ones are allocated, every new NAT gateway is waited for once (unless the
caller waits later, as create_cluster.yml does: routes to a pending NAT gateway are accepted),
and NAT gateways the layout no longer has go after the routes stopped pointing at them.

Ids go to plan.refs: IGW_REF, nat_ref(zone), allocation_ref(zone), public_ip_ref(zone).
"""

import functools
import hashlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from . import drift as drifts
from . import lookup
from . import naming
from . import spec as specs
from . import subnets
from . import vpc
from .aws import ec2 as aws_ec2
from .context import Context
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]
# How a route reaches a gateway: (CreateRoute parameter, plan.refs key of the target, how the plan names it).
RouteTarget = Tuple[str, str, str]

IGW_REF = "internet_gateway_id"
NAT_LIVE_STATES = ["pending", "available"]
NAT_GONE_STATES = ["deleting", "deleted"]


def nat_ref(zone: str) -> str:
    return "nat_gateway:" + zone


def allocation_ref(zone: str) -> str:
    return "allocation:" + zone


def public_ip_ref(zone: str) -> str:
    return "public_ip:" + zone


def attached_vpcs(gateway: Resource) -> List[str]:
    """The VPCs an internet gateway is attached to (or attaching)."""
    return [a["VpcId"] for a in gateway.get("Attachments", []) if a.get("State") != "detached"]


def nat_zone_for(spec: Spec, zone: str) -> Optional[str]:
    """The zone of the NAT gateway a private subnet in ``zone`` routes through, or None."""
    zones: List[str] = specs.nat_zones(spec)
    if zone in zones:
        return zone
    return zones[0] if zones else None


def nat_client_token(cluster: str, zone: str, subnet_id: str) -> str:
    """CreateNatGateway's idempotency token: stable for a cluster's zone and subnet, at most 64 characters."""
    return hashlib.sha256(("%s/%s/%s" % (cluster, zone, subnet_id)).encode("utf-8")).hexdigest()[:64]


def route_target(spec: Spec, role: str, zone: str) -> Optional[RouteTarget]:
    """Where the 0.0.0.0/0 route of a subnet of ``role`` in ``zone`` goes: the internet gateway, its NAT gateway, or nowhere."""
    if role == naming.ROLE_PUBLIC:
        return "GatewayId", IGW_REF, naming.igw_name(spec["name"])
    nat_zone = nat_zone_for(spec, zone)
    if nat_zone is None:
        return None
    return "NatGatewayId", nat_ref(nat_zone), "%s in %s" % (naming.nat_name(spec["name"]), nat_zone)


def _wait_deleted(ctx: Context, nat_ids: Sequence[str]) -> Callable[[], None]:
    return lambda: aws_ec2.wait_for_nat_gateways(ctx.ec2, "nat_gateway_deleted", nat_ids, ctx.wait_timeout)


def _plan_nat_deletes(ctx: Context, plan: Plan, cluster: str, nats: List[Resource],
                      label: Callable[[Resource], Tuple[str, str]]) -> bool:
    """Delete the NAT gateways not being deleted already, then wait for all of them once.

    ``label`` gives a NAT gateway's (name, detail) in the plan. Without ``ctx.wait`` nothing
    is waited for and False is returned: what can only go after them (their Elastic IPs, the
    subnets) is left to a later run.
    """
    _plan_nat_delete_calls(ctx, plan, nats, label)
    return _plan_nat_deleted_wait(ctx, plan, cluster, nats)


def _plan_nat_delete_calls(ctx: Context, plan: Plan, nats: List[Resource], label: Callable[[Resource], Tuple[str, str]]) -> None:
    for nat in nats:
        if nat["State"] not in NAT_GONE_STATES:
            name, detail = label(nat)
            plan.delete("nat-gateway", name, functools.partial(aws_ec2.delete_nat_gateway, ctx.ec2, nat["NatGatewayId"]), detail)


def _plan_nat_deleted_wait(ctx: Context, plan: Plan, cluster: str, nats: List[Resource]) -> bool:
    if not ctx.wait:
        return False
    plan.wait("nat-gateway", naming.nat_name(cluster), _wait_deleted(ctx, [n["NatGatewayId"] for n in nats]), "until %d deleted" % len(nats))
    return True


# --- the internet gateway --------------------------------------------------------------------

def _usable_igw(gateways: List[Resource], vpc_id: str) -> Optional[Resource]:
    """The gateway attached to the VPC, else a detached one an interrupted run left."""
    detached = None
    for gateway in gateways:
        vpcs = attached_vpcs(gateway)
        if vpc_id in vpcs:
            return gateway
        if not vpcs and detached is None:
            detached = gateway
    return detached


def plan_internet_gateway(ctx: Context, spec: Spec, plan: Plan, current_vpc: Optional[Resource],
                          drift: Optional[drifts.TagDrift] = None) -> None:
    """Add to ``plan`` what gives the VPC its internet gateway, attached (its tags checked with ``drift``)."""
    cluster = spec["name"]
    name = naming.igw_name(cluster)
    vpc_label = naming.vpc_name(cluster)
    gateway = None
    if current_vpc:
        found = aws_ec2.describe_internet_gateways(ctx.ec2, Filters=naming.owned_filters(cluster, Name=name))
        gateway = _usable_igw(lookup.owned(found, cluster), current_vpc["VpcId"])

    def attach() -> None:
        aws_ec2.eventually(aws_ec2.attach_internet_gateway, ctx.ec2, plan.refs[IGW_REF], plan.refs[vpc.REF])

    if gateway:
        plan.refs[IGW_REF] = gateway["InternetGatewayId"]
        if drift:
            drift.check("internet-gateway", name, gateway["InternetGatewayId"], lookup.tags_of(gateway))
        if not attached_vpcs(gateway):
            plan.update("internet-gateway", name, attach, "attach to " + vpc_label)
        return
    tags = naming.resource_tags(cluster, name, naming.ROLE_COMMON, spec["additional_tags"])

    def create() -> None:
        plan.refs[IGW_REF] = aws_ec2.create_internet_gateway(ctx.ec2, tags)["InternetGatewayId"]
        attach()

    plan.create("internet-gateway", name, create, "attached to " + vpc_label)


def plan_delete_internet_gateways(ctx: Context, plan: Plan, gateways: List[Resource]) -> None:
    """Add the deletes of ``gateways`` to ``plan``, each detached from its VPCs first."""
    for gateway in gateways:
        gateway_id = gateway["InternetGatewayId"]
        attached = attached_vpcs(gateway)

        def delete(gateway_id: str = gateway_id, attached: List[str] = attached) -> None:
            for vpc_id in attached:
                aws_ec2.detach_internet_gateway(ctx.ec2, gateway_id, vpc_id)
            aws_ec2.delete_internet_gateway(ctx.ec2, gateway_id)

        plan.delete("internet-gateway", lookup.name_of(gateway, gateway_id), delete, gateway_id + (", detached first" if attached else ""))


# --- Elastic IPs and NAT gateways ------------------------------------------------------------

class NatGateways:
    """The NAT gateways of the layout and their Elastic IPs: planned before the route tables
    (which point at them), with the surplus removed after (``plan_surplus``)."""

    def __init__(self, ctx: Context, spec: Spec, plan: Plan, current_vpc: Optional[Resource],
                 drift: Optional[drifts.TagDrift] = None) -> None:
        self.ctx = ctx
        self.drift = drift
        self.spec = spec
        self.cluster: str = spec["name"]
        self.plan = plan
        self.have: List[Resource] = []
        self.surplus: List[Resource] = []
        self._eips: Optional[List[Resource]] = None
        if current_vpc:
            filters = (naming.owned_filters(self.cluster) + lookup.in_vpc(current_vpc["VpcId"])
                       + [{"Name": "state", "Values": NAT_LIVE_STATES}])
            self.have = [n for n in lookup.owned(aws_ec2.describe_nat_gateways(ctx.ec2, Filters=filters), self.cluster)
                         if n["State"] in NAT_LIVE_STATES]

    def _tags(self, name: str) -> Dict[str, str]:
        tags: Dict[str, str] = naming.resource_tags(self.cluster, name, naming.ROLE_COMMON, self.spec["additional_tags"])
        return tags

    def plan_present(self) -> None:
        """Keep the NAT gateways of the layout's zones, create the missing ones (Elastic IP first), wait once."""
        by_subnet = {n["SubnetId"]: n for n in self.have}
        waiting = []
        missing = []
        for zone in specs.nat_zones(self.spec):
            subnet_id = self.plan.refs.get(subnets.ref(naming.ROLE_PUBLIC, zone))
            nat = by_subnet.pop(subnet_id, None) if subnet_id else None
            if nat:
                self._remember(zone, nat)
                self._check_tags(nat)
                if nat["State"] == "pending":
                    waiting.append(zone)
            else:
                missing.append(zone)
        self.surplus = sorted(by_subnet.values(), key=lambda n: str(n["NatGatewayId"]))
        free = self._free_eips() if missing else []
        for zone in missing:
            self._plan_eip(zone, free.pop(0) if free else None)
            self._plan_nat(zone)
        waiting.extend(missing)
        if waiting and self.ctx.wait:
            self.plan.wait("nat-gateway", naming.nat_name(self.cluster), self._wait_available(waiting),
                           "until %d available" % len(waiting))

    def _check_tags(self, nat: Resource) -> None:
        """The NAT gateway's tags against the spec; its Elastic IP, tagged alike at allocation and not read on a
        rerun (its NAT gateway's answer names it), follows: it drifted when the gateway did."""
        if self.drift:
            allocations = [a.get("AllocationId") for a in nat.get("NatGatewayAddresses") or []]
            self.drift.check("nat-gateway", lookup.name_of(nat, nat["NatGatewayId"]), nat["NatGatewayId"], lookup.tags_of(nat),
                             follow=allocations)

    def _remember(self, zone: str, nat: Resource) -> None:
        self.plan.refs[nat_ref(zone)] = nat["NatGatewayId"]
        address = (nat.get("NatGatewayAddresses") or [{}])[0]
        self.plan.refs[allocation_ref(zone)] = address.get("AllocationId")
        self.plan.refs[public_ip_ref(zone)] = address.get("PublicIp")

    def owned_eips(self) -> List[Resource]:
        """The cluster's Elastic IPs, read once and only when needed."""
        if self._eips is None:
            self._eips = lookup.owned(aws_ec2.describe_addresses(self.ctx.ec2, Filters=naming.owned_filters(self.cluster)), self.cluster)
        return self._eips

    def _free_eips(self) -> List[Resource]:
        """Owned NAT EIPs an earlier run allocated but did not get to use: CAPA reuses them first."""
        # A pending NAT gateway may not show as the association of its address yet.
        held = {a.get("AllocationId") for n in self.have for a in n.get("NatGatewayAddresses", [])}
        common = [a for a in self.owned_eips() if not a.get("AssociationId") and a["AllocationId"] not in held
                  and lookup.tags_of(a).get(naming.ROLE_TAG) == naming.ROLE_COMMON]
        return sorted(common, key=lambda a: str(a["AllocationId"]))

    def _plan_eip(self, zone: str, eip: Optional[Resource]) -> None:
        if eip:
            self.plan.refs[allocation_ref(zone)] = eip["AllocationId"]
            self.plan.refs[public_ip_ref(zone)] = eip.get("PublicIp")
            return
        name = naming.eip_name(self.cluster)
        tags = self._tags(name)

        def allocate() -> None:
            address = aws_ec2.allocate_address(self.ctx.ec2, Domain="vpc", TagSpecifications=boto3_tag_specifications(tags, ["elastic-ip"]))
            self.plan.refs[allocation_ref(zone)] = address["AllocationId"]
            self.plan.refs[public_ip_ref(zone)] = address["PublicIp"]

        self.plan.create("elastic-ip", name, allocate, "for the NAT gateway in " + zone)

    def _plan_nat(self, zone: str) -> None:
        name = naming.nat_name(self.cluster)
        tags = self._tags(name)

        def create() -> None:
            # The subnet's id is known by now: it exists, or its create ran earlier in the plan.
            subnet_id = cast(str, self.plan.refs[subnets.ref(naming.ROLE_PUBLIC, zone)])
            nat = aws_ec2.eventually(aws_ec2.create_nat_gateway, self.ctx.ec2, SubnetId=subnet_id,
                                     AllocationId=self.plan.refs[allocation_ref(zone)],
                                     ClientToken=nat_client_token(self.cluster, zone, subnet_id),
                                     TagSpecifications=boto3_tag_specifications(tags, ["natgateway"]))
            self.plan.refs[nat_ref(zone)] = nat["NatGatewayId"]

        self.plan.create("nat-gateway", name, create, "in " + naming.subnet_name(self.cluster, naming.ROLE_PUBLIC, zone))

    def _wait_available(self, zones: List[str]) -> Callable[[], None]:
        def wait() -> None:
            ids = [cast(str, self.plan.refs[nat_ref(zone)]) for zone in zones]  # found, or made by an earlier create
            aws_ec2.wait_for_nat_gateways(self.ctx.ec2, "nat_gateway_available", ids, self.ctx.wait_timeout)
        return wait

    def plan_surplus(self) -> None:
        """Delete the NAT gateways the layout no longer has (e.g. per_az -> single), wait for them, then release their Elastic IPs.

        Waited for also without ``ctx.wait`` (which only spares the wait for new NAT gateways): their Elastic IPs
        can only be released once they are deleted, and nothing else (no later wait) would finish the change.
        """
        if not self.surplus:
            return
        mode = self.spec["network"]["nat_gateways"]
        name = naming.nat_name(self.cluster)
        _plan_nat_deletes(self.ctx.with_wait(True), self.plan, self.cluster, self.surplus,
                          lambda nat: (name, "%s, not in the %s layout" % (nat["NatGatewayId"], mode)))
        allocations = {a["AllocationId"] for n in self.surplus for a in n.get("NatGatewayAddresses", [])}
        for address in self.owned_eips():
            if address["AllocationId"] in allocations:
                allocation_id = address["AllocationId"]
                self.plan.delete("elastic-ip", naming.eip_name(self.cluster),
                                 functools.partial(aws_ec2.release_address, self.ctx.ec2, allocation_id), allocation_id)


# --- absent ----------------------------------------------------------------------------------

def _teardown_label(nat: Resource) -> Tuple[str, str]:
    return lookup.name_of(nat, nat["NatGatewayId"]), nat["NatGatewayId"]


def plan_start_nat_gateway_deletes(ctx: Context, plan: Plan, nats: List[Resource]) -> None:
    """Add only the deletes of the NAT gateways not gone yet (AWS takes a minute or more per gateway), so that
    they go while the machines terminate; plan_wait_nat_gateways_deleted waits for them later."""
    _plan_nat_delete_calls(ctx, plan, nats, _teardown_label)


def plan_wait_nat_gateways_deleted(ctx: Context, plan: Plan, cluster: str, nats: List[Resource]) -> bool:
    """The one wait for the NAT gateways whose deletes were started (plan_start_nat_gateway_deletes); False when,
    without ``ctx.wait``, what comes after them has to be left to a later run."""
    going = [n for n in nats if n["State"] != "deleted"]
    return not going or _plan_nat_deleted_wait(ctx, plan, cluster, going)


def plan_release_eips(ctx: Context, plan: Plan, addresses: List[Resource], nat_gateways: List[Resource]) -> None:
    """Release the Elastic IPs that are free or held by the NAT gateways being deleted.

    Deleted NAT gateways stay listed for a while; they count for finding the Elastic IPs
    they held, which an earlier run may have left allocated.
    """
    nat_allocations = {a.get("AllocationId") for n in nat_gateways for a in n.get("NatGatewayAddresses", [])}
    for address in addresses:
        if not address.get("AssociationId") or address["AllocationId"] in nat_allocations:
            allocation_id = address["AllocationId"]
            plan.delete("elastic-ip", lookup.name_of(address, allocation_id),
                        functools.partial(aws_ec2.release_address, ctx.ec2, allocation_id),
                        "%s (%s)" % (allocation_id, address.get("PublicIp")))
