# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The managed VPC's route tables, as CAPA's network service (routetables.go) makes them.

Want: one table per subnet, named for its role and zone, whose 0.0.0.0/0 route goes to the
internet gateway (public) or to the zone's NAT gateway (private; none without NAT), associated
with its subnet. Have: every table of the VPC, since a subnet may be associated with one that
is not the cluster's. Plan: create a missing table with its route and association; repair a
table's default route; take a subnet back from another table.
"""

from typing import Any, Callable, Dict, List, Optional

from . import drift as drifts
from . import gateways
from . import lookup
from . import naming
from . import subnets
from . import vpc
from .aws import ec2 as aws_ec2
from .context import Context
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]

ANY_IPV4 = "0.0.0.0/0"


def ref(role: str, zone: str) -> str:
    """The plan.refs key of the id of the route table of the subnet of a role in a zone."""
    return "route_table:%s:%s" % (role, zone)


class _RouteTables:
    """Plans the table of every wanted subnet against the VPC's tables, read once."""

    def __init__(self, ctx: Context, spec: Spec, plan: Plan, current_vpc: Optional[Resource],
                 drift: Optional[drifts.TagDrift] = None) -> None:
        self.ctx = ctx
        self.drift = drift
        self.spec = spec
        self.cluster: str = spec["name"]
        self.plan = plan
        have = aws_ec2.describe_route_tables(ctx.ec2, Filters=lookup.in_vpc(current_vpc["VpcId"])) if current_vpc else []
        self.tables = {lookup.name_of(t, t["RouteTableId"]): t for t in lookup.owned(have, self.cluster)}
        self.associations: Dict[str, Resource] = {}
        for table in have:
            for association in table.get("Associations", []):
                if association.get("SubnetId"):
                    self.associations[association["SubnetId"]] = association

    def plan_present(self, wanted: List[subnets.WantedSubnet]) -> None:
        for want in wanted:
            name = naming.route_table_name(self.cluster, want["role"], want["zone"])
            table = self.tables.get(name)
            subnet_id = self.plan.refs.get(subnets.ref(want["role"], want["zone"]))
            current = self.associations.get(subnet_id) if subnet_id else None
            if table:
                self._repair(want, name, table, current)
            else:
                self._create(want, name, current)

    def _create(self, want: subnets.WantedSubnet, name: str, current: Optional[Resource]) -> None:
        key = ref(want["role"], want["zone"])
        target = gateways.route_target(self.spec, want["role"], want["zone"])
        tags = naming.resource_tags(self.cluster, name, naming.ROLE_COMMON, self.spec["additional_tags"], cloud_provider=True)

        def create() -> None:
            self.plan.refs[key] = aws_ec2.eventually(aws_ec2.create_route_table, self.ctx.ec2, self.plan.refs[vpc.REF], tags)["RouteTableId"]
            if target:
                self._route(aws_ec2.create_route, want, target)()
            self._associate(want, current)()

        route = "0.0.0.0/0 -> %s, " % target[2] if target else "no default route, "
        self.plan.create("route-table", name, create, route + "for " + want["name"])

    def _repair(self, want: subnets.WantedSubnet, name: str, table: Resource, current: Optional[Resource]) -> None:
        table_id = table["RouteTableId"]
        self.plan.refs[ref(want["role"], want["zone"])] = table_id
        if self.drift:
            self.drift.check("route-table", name, table_id, lookup.tags_of(table))
        target = gateways.route_target(self.spec, want["role"], want["zone"])
        route = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANY_IPV4), None)
        if target is None and route:
            self.plan.update("route-table", name, lambda: aws_ec2.delete_route(self.ctx.ec2, table_id, DestinationCidrBlock=ANY_IPV4),
                             "remove 0.0.0.0/0 (no NAT gateway)")
        elif target and route is None:
            self.plan.update("route-table", name, self._route(aws_ec2.create_route, want, target), "add 0.0.0.0/0 -> " + target[2])
        elif target and route and route.get(target[0]) != self.plan.refs[target[1]]:
            self.plan.update("route-table", name, self._route(aws_ec2.replace_route, want, target), "point 0.0.0.0/0 at " + target[2])
        if not current or current["RouteTableId"] != table_id:
            self.plan.update("route-table", name, self._associate(want, current), "associate with " + want["name"])

    def _route(self, call: Callable[..., Any], want: subnets.WantedSubnet, target: gateways.RouteTarget) -> Callable[[], Any]:
        parameter, target_ref, _label = target
        key = ref(want["role"], want["zone"])
        return lambda: aws_ec2.eventually(call, self.ctx.ec2, self.plan.refs[key], DestinationCidrBlock=ANY_IPV4,
                                          **{parameter: self.plan.refs[target_ref]})

    def _associate(self, want: subnets.WantedSubnet, current: Optional[Resource]) -> Callable[[], Any]:
        """Associate the subnet with its table; take it over from another table it is associated with."""
        key = ref(want["role"], want["zone"])
        subnet_key = subnets.ref(want["role"], want["zone"])
        if current:
            association_id = current["RouteTableAssociationId"]
            return lambda: aws_ec2.eventually(aws_ec2.replace_route_table_association, self.ctx.ec2, association_id, self.plan.refs[key])
        return lambda: aws_ec2.eventually(aws_ec2.associate_route_table, self.ctx.ec2, self.plan.refs[key], SubnetId=self.plan.refs[subnet_key])


def plan_present(ctx: Context, spec: Spec, plan: Plan, current_vpc: Optional[Resource], wanted: List[subnets.WantedSubnet],
                 drift: Optional[drifts.TagDrift] = None) -> None:
    """Add to ``plan`` what gives every ``wanted`` subnet its own table, default route and association.

    Runs after the gateways are planned: the routes read their ids from plan.refs. The tables'
    tags are checked with ``drift``.
    """
    _RouteTables(ctx, spec, plan, current_vpc, drift).plan_present(wanted)


def plan_delete(ctx: Context, plan: Plan, tables: List[Resource]) -> None:
    """Add the deletes of ``tables`` to ``plan``, each disassociated from its subnets first."""
    for table in tables:
        table_id = table["RouteTableId"]
        associations = [a["RouteTableAssociationId"] for a in table.get("Associations", []) if not a.get("Main")]

        def delete(table_id: str = table_id, associations: List[str] = associations) -> None:
            for association in associations:
                aws_ec2.disassociate_route_table(ctx.ec2, association)
            aws_ec2.delete_route_table(ctx.ec2, table_id)

        detail = "%s, disassociated from %d subnet(s) first" % (table_id, len(associations))
        plan.delete("route-table", lookup.name_of(table, table_id), delete, detail)
