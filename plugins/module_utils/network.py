# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's network, as CAPA's network service builds a managed VPC.

One VPC (DNS support and hostnames on), a public and a private subnet per availability
zone with CAPA's CIDR split, an internet gateway, NAT gateways (one per zone, a single
one, or none) each with an Elastic IP, and one route table per subnet. Then the
security groups of securitygroups.py in that VPC.

This module only orders the resource services (vpc.py, subnets.py, gateways.py,
routetables.py, securitygroups.py) as CAPA's reconcileNetwork does, on one shared Plan
whose ``refs`` carry the ids from one to the next.

With a bring-your-own VPC (``network.vpc_id`` and ``subnet_ids``) nothing network-side
is created, changed, tagged or deleted; only the cluster's security groups are.

Deletion follows CAPA's order: security groups, route tables, NAT gateways (waited for
until deleted), their Elastic IPs, the internet gateway, subnets, the VPC. It refuses
while the cluster's instances or load balancers are still in the VPC.
"""

import functools
from typing import Any, Dict, List, Optional, Tuple

from . import drift as drifts
from . import gateways
from . import lookup
from . import naming
from . import routetables
from . import securitygroups
from . import spec as specs
from . import subnets
from . import vpc
from .aws import ec2 as aws_ec2
from .context import Context
from .errors import KubeclusterError
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]


class NetworkError(KubeclusterError):
    """The network cannot be reconciled as asked; the message names the cause and the fix."""


# --- the module's ``network`` return value ---------------------------------------------------

class _Ref:
    """In the result skeleton: an id read from plan.refs once the plan ran."""

    def __init__(self, key: str) -> None:
        self.key = key


def _resolve(value: Any, refs: Dict[str, Any]) -> Any:
    if isinstance(value, _Ref):
        return refs[value.key]
    if isinstance(value, dict):
        return {key: _resolve(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, refs) for item in value]
    return value


def _result(skeleton: Dict[str, Any], plan: Plan) -> Dict[str, Any]:
    """The network once the plan ran; ids check mode did not create read as plan.UNKNOWN."""
    out: Dict[str, Any] = _resolve(skeleton, plan.refs)
    out["subnets"].sort(key=lambda s: (s["role"], s["availability_zone"], s["id"]))
    return out


def _managed_skeleton(spec: Spec, current_vpc: Optional[Resource], wanted: List[subnets.WantedSubnet]) -> Dict[str, Any]:
    cluster = spec["name"]
    subnet_views = [{"id": _Ref(subnets.ref(w["role"], w["zone"])), "name": w["name"], "role": w["role"],
                     "availability_zone": w["zone"], "cidr": w["cidr"], "vpc_id": _Ref(vpc.REF)} for w in wanted]
    tables = [{"id": _Ref(routetables.ref(w["role"], w["zone"])),
               "name": naming.route_table_name(cluster, w["role"], w["zone"]),
               "subnet_id": _Ref(subnets.ref(w["role"], w["zone"]))} for w in wanted]
    nats = [{"id": _Ref(gateways.nat_ref(zone)), "subnet_id": _Ref(subnets.ref(naming.ROLE_PUBLIC, zone)),
             "availability_zone": zone, "allocation_id": _Ref(gateways.allocation_ref(zone)),
             "public_ip": _Ref(gateways.public_ip_ref(zone))} for zone in specs.nat_zones(spec)]
    return {"vpc_id": _Ref(vpc.REF), "vpc_cidr": current_vpc["CidrBlock"] if current_vpc else spec["network"]["vpc_cidr"],
            "managed": True, "availability_zones": list(spec["network"]["availability_zones"]), "subnets": subnet_views,
            "internet_gateway_id": _Ref(gateways.IGW_REF), "nat_gateways": nats, "route_tables": tables}


# --- state: present --------------------------------------------------------------------------

def _plan_managed(ctx: Context, spec: Spec, plan: Plan, drift: drifts.TagDrift) -> Dict[str, Any]:
    """Plan the managed network in CAPA's order; return the skeleton of the ``network`` value.

    Raises DriftError, before any write, for what cannot change in place (VPC CIDR, zones removed,
    NAT gateways to none)."""
    wanted = subnets.wanted_subnets(spec)
    current_vpc = vpc.plan_present(ctx, spec, plan, drift)
    drifts.refuse_vpc_cidr(spec, current_vpc)
    zones_in_use = subnets.plan_present(ctx, spec, plan, current_vpc, wanted, drift)
    drifts.refuse_removed_zones(spec, zones_in_use)
    gateways.plan_internet_gateway(ctx, spec, plan, current_vpc, drift)
    nat = gateways.NatGateways(ctx, spec, plan, current_vpc, drift)
    drifts.refuse_nat_removal(spec, nat.have, len(zones_in_use))
    nat.plan_present()
    routetables.plan_present(ctx, spec, plan, current_vpc, wanted, drift)
    # NAT gateways the layout no longer has go once no route points at them (e.g. per_az -> single).
    nat.plan_surplus()
    return _managed_skeleton(spec, current_vpc, wanted)


def _byo_skeleton(ctx: Context, spec: Spec, plan: Plan) -> Dict[str, Any]:
    """Check the spec's VPC and subnets exist and belong together; the network is theirs, as it is."""
    network = spec["network"]
    current_vpc = lookup.cluster_vpc(ctx.ec2, spec)
    if not current_vpc:
        raise NetworkError("cluster.network.vpc_id: %s does not exist in %s; give the id of an existing VPC"
                           % (network["vpc_id"], spec["region"]))
    found = lookup.cluster_subnets(ctx.ec2, spec)
    missing = sorted(set(network["subnet_ids"]) - {s["id"] for s in found})
    if missing:
        raise NetworkError("cluster.network.subnet_ids: %s not found in %s; list subnets of %s"
                           % (", ".join(missing), spec["region"], current_vpc["VpcId"]))
    elsewhere = sorted(s["id"] for s in found if s["vpc_id"] != current_vpc["VpcId"])
    if elsewhere:
        raise NetworkError("cluster.network.subnet_ids: %s not in %s; list only subnets of that VPC"
                           % (", ".join(elsewhere), current_vpc["VpcId"]))
    plan.refs[vpc.REF] = current_vpc["VpcId"]
    return {"vpc_id": current_vpc["VpcId"], "vpc_cidr": current_vpc["CidrBlock"], "managed": False,
            "availability_zones": sorted({s["availability_zone"] for s in found}), "subnets": found,
            "internet_gateway_id": None, "nat_gateways": [], "route_tables": []}


def plan_present(ctx: Context, spec: Spec) -> Plan:
    """The plan that makes the cluster's network and security groups match the spec.

    ``spec`` has its availability zones resolved to names (runner.resolve_zones) unless it
    brings its own VPC. With ``ctx.wait`` one wait for every new NAT gateway to be available
    is planned. ``plan.returns["network"]`` computes the module's ``network`` value once the
    plan ran. Raises NetworkError when a bring-your-own VPC or its subnets are not as the spec says, and
    DriftError (drift.py) for a change that cannot be made in place. The tags of the cluster's resources
    are brought to the spec's additional_tags, in batches (drift.TagDrift), from the reads done anyway.
    """
    plan = Plan()
    drift = drifts.TagDrift(spec)
    if spec["network"]["vpc_id"]:
        skeleton = _byo_skeleton(ctx, spec, plan)
    else:
        skeleton = _plan_managed(ctx, spec, plan, drift)
    securitygroups.plan_present(ctx, spec, plan, lambda: str(plan.refs[vpc.REF]), skeleton["vpc_cidr"], drift)
    drift.plan(ctx, plan)
    skeleton["security_groups"] = {role: _Ref(securitygroups.group_ref(role)) for role in securitygroups.wanted_roles(spec)}
    plan.returns["network"] = lambda: _result(skeleton, plan)
    return plan


# --- state: absent ---------------------------------------------------------------------------

def _balancer_name_of_interface(interface: Resource) -> Optional[str]:
    """The load balancer an ENI serves, from the description AWS gives it ("ELB net/NAME/ID", "ELB NAME")."""
    description = interface.get("Description") or ""
    if not description.startswith("ELB "):
        return None
    parts = description[4:].split("/")
    return parts[1] if len(parts) == 3 else parts[0]


class NetworkTeardown:
    """What deleting a cluster's network finds, by ownership alone, before anything is planned.

    The VPC is the one the cluster owns (a managed network: everything the cluster owns in it
    goes) or the one its security groups are in (a bring-your-own VPC: only the groups go).
    Besides the resources to delete it finds what would stop the delete half-way on AWS:
    ``cluster_users`` (the cluster's own machines and load balancers, which other steps delete
    first), ``foreign_users`` (anything else using the network or the cluster's groups), and
    ``double_claims`` (resources tagged as owned by another cluster too, which nothing deletes).
    """

    def __init__(self, ctx: Context, cluster: str) -> None:
        self.ctx = ctx
        self.cluster = cluster
        self.vpc, self.managed = lookup.deletion_vpc(ctx.ec2, cluster)
        self.vpc_id: Optional[str] = self.vpc["VpcId"] if self.vpc else None
        self.groups = securitygroups.groups_in_vpc(ctx, self.vpc_id) if self.vpc_id else []
        self.route_tables: List[Resource] = []
        self.nat_gateways: List[Resource] = []
        self.subnets: List[Resource] = []
        self.interfaces: List[Resource] = []  # the cluster's own, left detached
        # Interfaces of load balancers deleted already: AWS removes them minutes later, and refuses to delete the groups
        # and subnets they use until then (DependencyViolation), so the delete waits for them.
        self.orphaned_balancer_interfaces: List[Resource] = []
        owned = naming.owned_filters(cluster)
        # Subnets and route tables are read wherever they are: one tagged as the cluster's in a VPC that
        # is not the cluster's (``strays``) is not deleted, and is named so the delete does not look done.
        self.strays: List[Tuple[str, Resource, str]] = []
        for kind, items, key in (("subnet", aws_ec2.describe_subnets(ctx.ec2, Filters=owned), "SubnetId"),
                                 ("route table", aws_ec2.describe_route_tables(ctx.ec2, Filters=owned), "RouteTableId")):
            for item in sorted(lookup.owned(items, cluster), key=lambda i: lookup.name_of(i, "")):
                if self.managed and item["VpcId"] == self.vpc_id:
                    (self.subnets if kind == "subnet" else self.route_tables).append(item)
                else:
                    self.strays.append((kind, item, key))
        if self.managed and self.vpc_id:
            states = gateways.NAT_LIVE_STATES + gateways.NAT_GONE_STATES
            nats = aws_ec2.describe_nat_gateways(ctx.ec2, Filters=owned + lookup.in_vpc(self.vpc_id) + [{"Name": "state", "Values": states}])
            self.nat_gateways = [n for n in lookup.owned(nats, cluster) if n["State"] in states]
        self.addresses: List[Resource] = []
        self.internet_gateways: List[Resource] = []
        if self.managed or not self.vpc:
            # Without any VPC these are what an interrupted delete left; a bring-your-own VPC has none.
            self.addresses = lookup.owned(aws_ec2.describe_addresses(ctx.ec2, Filters=naming.owned_filters(cluster)), cluster)
            found = lookup.owned(aws_ec2.describe_internet_gateways(ctx.ec2, Filters=naming.owned_filters(cluster)), cluster)
            # One attached to a VPC that is not the cluster's is not ours to take away.
            self.internet_gateways = [g for g in found if gateways.attached_vpcs(g) in ([], [self.vpc_id])]
        self.cluster_instances: List[Resource] = []
        self.cluster_balancers: List[str] = []
        self.foreign_users: List[str] = []
        if self.vpc_id:
            self._find_users(self.vpc_id)

    def _cluster_groups(self) -> List[Resource]:
        return [g for g in self.groups if securitygroups.is_cluster_group(g, self.cluster)]

    def _find_users(self, vpc_id: str) -> None:
        cluster = self.cluster
        ec2 = self.ctx.ec2
        group_ids = [g["GroupId"] for g in self._cluster_groups()]
        instances = lookup.instances_in_vpc(ec2, vpc_id)
        interfaces: List[Resource] = []
        if self.managed:
            interfaces = aws_ec2.describe_network_interfaces(ec2, Filters=lookup.in_vpc(vpc_id))
        elif group_ids:
            interfaces = aws_ec2.describe_network_interfaces(ec2, Filters=[{"Name": "group-id", "Values": group_ids}])
        by_instance = {i["NetworkInterfaceId"] for i in interfaces if i.get("Attachment", {}).get("InstanceId")}
        users_of_groups = {i.get("Attachment", {}).get("InstanceId") for i in interfaces}
        for instance in instances:
            if naming.is_claimed(lookup.tags_of(instance), cluster):
                self.cluster_instances.append(instance)
            elif self.managed or instance["InstanceId"] in users_of_groups:
                self.foreign_users.append("%s in %s, not tagged as the cluster's; terminate it or move it out of the "
                                          "cluster's network" % (lookup.instance_label(instance), instance.get("SubnetId")))
        balancers = lookup.load_balancers_in_vpc(self.ctx.elb, self.ctx.elbv2, vpc_id)
        self.cluster_balancers = [label for label, _name, tags in balancers if naming.is_claimed(tags, cluster)]
        mine = {name for _label, name, tags in balancers if naming.is_claimed(tags, cluster)}
        existing = {name for _label, name, _tags in balancers}
        nat_interfaces = {a.get("NetworkInterfaceId") for n in self.nat_gateways for a in n.get("NatGatewayAddresses", [])}
        for interface in interfaces:
            if interface["NetworkInterfaceId"] in by_instance:
                continue  # reported with its instance
            balancer = _balancer_name_of_interface(interface)
            if balancer in mine or interface["NetworkInterfaceId"] in nat_interfaces:
                continue
            if balancer and balancer not in existing and interface.get("RequesterManaged", True):
                self.orphaned_balancer_interfaces.append(interface)  # its balancer is gone: AWS deletes it
                continue
            if naming.is_claimed(lookup.tags_of(interface), cluster):
                if not interface.get("Attachment") and self.managed:
                    self.interfaces.append(interface)  # left detached (CAPA#3810): deleted before the subnets
                continue
            what = balancer and "load balancer %s" % balancer or interface.get("Description") or interface.get("InterfaceType")
            self.foreign_users.append("network interface %s (%s) in %s, not the cluster's; delete what made it, then rerun"
                                      % (interface["NetworkInterfaceId"], what or "no description", interface.get("SubnetId")))
        for group, referenced in securitygroups.referencing_groups(self.groups, cluster):
            self.foreign_users.append("security group %s (%s), not the cluster's, has rules naming the cluster's group(s) %s; "
                                      "revoke those rules or delete that group, then rerun"
                                      % (group["GroupId"], group.get("GroupName"), ", ".join(referenced)))

    @property
    def terminating(self) -> List[str]:
        """Ids of the cluster's own machines already shutting down: on AWS they keep their addresses in the
        network for a minute or two after TerminateInstances, and the delete waits for them."""
        return [i["InstanceId"] for i in self.cluster_instances if i["State"]["Name"] == "shutting-down"]

    @property
    def cluster_users(self) -> List[str]:
        """The cluster's own machines and load balancers in its network that a wait does not end, as message labels:
        every one without ``ctx.wait``; with it, all but the machines already shutting down."""
        waited = set(self.terminating) if self.ctx.wait else set()
        lingering = [] if self.ctx.wait else ["network interface %s of the deleted load balancer %s" % (
            i["NetworkInterfaceId"], _balancer_name_of_interface(i)) for i in self.orphaned_balancer_interfaces]
        return ([lookup.instance_label(i) for i in self.cluster_instances if i["InstanceId"] not in waited] + self.cluster_balancers
                + lingering)

    def double_claims(self) -> List[str]:
        resources = [("vpc", self.vpc["VpcId"], lookup.tags_of(self.vpc))] if self.managed and self.vpc else []
        for kind, items, key in (("security group", self._cluster_groups(), "GroupId"), ("subnet", self.subnets, "SubnetId"),
                                 ("route table", self.route_tables, "RouteTableId"), ("NAT gateway", self.nat_gateways, "NatGatewayId"),
                                 ("Elastic IP", self.addresses, "AllocationId"),
                                 ("internet gateway", self.internet_gateways, "InternetGatewayId")):
            resources += [(kind, item[key], lookup.tags_of(item)) for item in items]
        resources += [(kind, item[key], lookup.tags_of(item)) for kind, item, key in self.strays]
        claims: List[str] = naming.double_claims(resources, self.cluster)
        return claims

    def stray_resources(self) -> List[str]:
        """Lines naming the cluster's subnets and route tables outside a VPC it owns (not double-claimed ones)."""
        return ["%s %s (%s) is tagged as owned by cluster %s but is in %s, a VPC the cluster does not own; delete it or remove "
                "the tag %s, then rerun" % (kind, item[key], lookup.name_of(item, "no Name tag"), self.cluster, item["VpcId"],
                                            naming.owner_tag(self.cluster))
                for kind, item, key in self.strays if not naming.other_claimants(lookup.tags_of(item), self.cluster)]

    def plan(self, spec: Spec) -> Plan:
        """The deletes in CAPA's order; without ``ctx.wait`` it stops after starting the NAT gateway deletes."""
        plan = Plan()
        deletes_nat_gateways = self.managed or not self.vpc
        if deletes_nat_gateways:
            # Nothing else depends on them: they are deleted (minutes on AWS) while the machines terminate.
            gateways.plan_start_nat_gateway_deletes(self.ctx, plan, self.nat_gateways)
        if self.terminating and self.ctx.wait:
            # TerminateInstances returns at once (the delete playbook does not wait per machine set); the
            # groups, subnets and VPC can only go once the machines' interfaces are gone with them.
            plan.wait("ec2 instances terminated", ", ".join(self.terminating),
                      lambda: aws_ec2.wait_for_instances(self.ctx.ec2, "instance_terminated", self.terminating, self.ctx.wait_timeout))
        if self.orphaned_balancer_interfaces and self.ctx.wait:
            lingering = [i["NetworkInterfaceId"] for i in self.orphaned_balancer_interfaces]
            plan.wait("network-interface", ", ".join(lingering),
                      lambda: aws_ec2.wait_for_network_interfaces_deleted(self.ctx.ec2, lingering, self.ctx.wait_timeout),
                      "until AWS deleted these interfaces of deleted load balancers")
        if self.vpc_id:
            securitygroups.plan_absent(self.ctx, spec, plan, self.vpc_id, self.groups)
        if not deletes_nat_gateways:
            return plan
        routetables.plan_delete(self.ctx, plan, self.route_tables)
        if not gateways.plan_wait_nat_gateways_deleted(self.ctx, plan, self.cluster, self.nat_gateways):
            return plan  # the Elastic IPs, gateway, subnets and VPC can only go after them: a later run finishes
        gateways.plan_release_eips(self.ctx, plan, self.addresses, self.nat_gateways)
        gateways.plan_delete_internet_gateways(self.ctx, plan, self.internet_gateways)
        if self.vpc:
            for interface in self.interfaces:
                interface_id = interface["NetworkInterfaceId"]
                plan.delete("network-interface", interface_id,
                            functools.partial(aws_ec2.delete_network_interface, self.ctx.ec2, interface_id), "left detached")
            subnets.plan_delete(self.ctx, plan, self.subnets)
            vpc.plan_delete(self.ctx, plan, self.vpc)
        return plan


def refusal(teardown: NetworkTeardown, machines_gone: bool = True) -> Optional[str]:
    """Why the network cannot be deleted now, as one message, or None.

    ``machines_gone`` says the cluster's machines and load balancers should be gone already
    (the module deleting the network); the delete playbook's first look passes False.
    """
    lines = teardown.double_claims() + teardown.stray_resources() + teardown.foreign_users
    if lines:
        return ("Deleting the network of cluster %s would fail half-way on AWS or touch what is not the cluster's; "
                "nothing was deleted. Found: %s" % (teardown.cluster, "; ".join(lines)))
    if machines_gone and teardown.cluster_users:
        return ("The network of cluster %s is still in use by %s. Delete the machines first (kubecluster.aws.machine_set "
                "state=absent for every set, including the bastion), then the API load balancer (kubecluster.aws.apiserver_lb "
                "state=absent) and any Service of type LoadBalancer, then run this again."
                % (teardown.cluster, "; ".join(sorted(teardown.cluster_users))))
    return None


def plan_absent(ctx: Context, spec: Spec) -> Plan:
    """The plan that deletes the cluster's network in CAPA's order (only its security groups in a VPC it does not own).

    Only ``spec["name"]`` is read: what goes is found by ownership. Raises NetworkError,
    before anything is planned, while the cluster's instances or load balancers are still in
    the VPC, while anything not the cluster's uses its network or groups, or when a resource
    is tagged as owned by another cluster too. Without ``ctx.wait`` it stops after starting
    the NAT gateway deletes: their Elastic IPs, the gateway, subnets and VPC can only go after
    them, so a later run finishes the job.
    """
    teardown = NetworkTeardown(ctx, spec["name"])
    problem = refusal(teardown)
    if problem:
        raise NetworkError(problem)
    return teardown.plan(spec)
