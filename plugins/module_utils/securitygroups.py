# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's security groups and their ingress rules, as CAPA's securitygroup service makes them.

Roles ``apiserver-lb``, ``lb``, ``controlplane``, ``node`` and, with a bastion, ``bastion``.
The groups refer to each other, so every missing group is created before any rule; each
group then gets its missing rules in one AuthorizeSecurityGroupIngress call and loses the
rules the spec no longer has in one RevokeSecurityGroupIngress call. The ``lb`` group is
the exception: the AWS cloud-controller-manager adds rules to it for Service load
balancers, so, as CAPA, rules there are added but never revoked. Egress is left at AWS's
default (allow all).

Deletion revokes every ingress rule of every group first, because the groups reference
each other and AWS refuses to delete a group another group's rule points at.
"""

import functools
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, cast

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from . import drift as drifts
from . import lookup
from . import naming
from .aws import ec2 as aws_ec2
from .context import Context
from .plan import UNKNOWN, Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]
# A rule's identity: (protocol name, from port, to port, source kind, source value); ports None when they mean nothing.
RuleKey = Tuple[str, Optional[int], Optional[int], str, str]
Permission = Dict[str, Any]


class Rule(NamedTuple):
    """One ingress rule: ``source`` is ("cidr", "10.0.0.0/16") or ("group", <sg role>)."""

    protocol: str
    from_port: int
    to_port: int
    source: Tuple[str, str]
    description: str


CIDR = "cidr"
GROUP = "group"
IP_IN_IP = "4"
# Port ranges only mean something for these; AWS ignores them for any other protocol.
_PORTED = ("tcp", "udp", "icmp", "icmpv6")
_PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
_CNI_RULES = {
    "calico": (("tcp", 179, 179, "bgp (calico)"), (IP_IN_IP, -1, -1, "IP-in-IP (calico)")),
    "cilium": (("udp", 8472, 8472, "VXLAN (cilium)"), ("tcp", 4240, 4240, "health (cilium)")),
}


def group_ref(role: str) -> str:
    """The plan.refs key of the group id of an sg role."""
    return "security_group:" + role


def wanted_roles(spec: Spec) -> List[str]:
    """The sg roles the cluster needs, in the order CAPA creates them."""
    roles = [naming.SG_APISERVER_LB, naming.SG_LB, naming.SG_CONTROL_PLANE, naming.SG_NODE]
    if spec["network"]["bastion"]["enabled"]:
        roles.append(naming.SG_BASTION)
    return roles


def _from_groups(protocol: str, port: int, roles: Iterable[str], description: str) -> List[Rule]:
    return [Rule(protocol, port, port, (GROUP, role), description) for role in roles]


def _from_cidrs(protocol: str, from_port: int, to_port: int, cidrs: Iterable[str], description: str) -> List[Rule]:
    return [Rule(protocol, from_port, to_port, (CIDR, cidr), description) for cidr in cidrs]


def _cni_rules(spec: Spec) -> List[Rule]:
    members = (naming.SG_CONTROL_PLANE, naming.SG_NODE)
    return [Rule(protocol, from_port, to_port, (GROUP, role), description)
            for protocol, from_port, to_port, description in _CNI_RULES[spec["network"]["cni"]]
            for role in members]


def wanted_rules(spec: Spec, vpc_cidr: str) -> Dict[str, List[Rule]]:
    """{sg role: [Rule]}: the ingress rules of CAPA's default security groups for this spec."""
    network = spec["network"]
    api_lb = network["api_load_balancer"]
    bastion = network["bastion"]
    ssh: List[Rule] = _from_groups("tcp", 22, [naming.SG_BASTION], "SSH") if bastion["enabled"] else []
    members = [naming.SG_CONTROL_PLANE, naming.SG_NODE]
    api_sources = [vpc_cidr] if api_lb["scheme"] == "internal" else api_lb["allowed_cidrs"]
    rules = {
        naming.SG_APISERVER_LB: _from_cidrs("tcp", 6443, 6443, api_sources, "Kubernetes API"),
        naming.SG_LB: [],
        naming.SG_CONTROL_PLANE: (_from_groups("tcp", 6443, [naming.SG_APISERVER_LB] + members, "Kubernetes API")
                                  + _from_groups("tcp", 2379, [naming.SG_CONTROL_PLANE], "etcd")
                                  + _from_groups("tcp", 2380, [naming.SG_CONTROL_PLANE], "etcd peer")
                                  + ssh + _cni_rules(spec)),
        naming.SG_NODE: (_from_cidrs("tcp", 30000, 32767, network["node_port_cidrs"], "Node Port Services")
                         + _from_groups("tcp", 10250, members, "Kubelet API")
                         + ssh + _cni_rules(spec)),
    }
    if api_lb["type"] == "nlb":
        # NLB targets see the load balancer's private address, which is in the VPC.
        rules[naming.SG_LB] = _from_cidrs("tcp", 6443, 6443, [vpc_cidr], "Allow NLB traffic to the control plane instances.")
    if bastion["enabled"]:
        rules[naming.SG_BASTION] = _from_cidrs("tcp", 22, 22, bastion["allowed_cidrs"], "SSH")
    return rules


# --- comparing rules: one key per (protocol, ports, single source) ------------------------

def _rule_key(protocol: str, from_port: Optional[int], to_port: Optional[int], kind: str, value: str) -> RuleKey:
    name = _PROTOCOL_NAMES.get(str(protocol), str(protocol).lower())
    if name not in _PORTED:
        from_port = to_port = None
    return (name, from_port, to_port, kind, value)


def _permission(protocol: str, from_port: Optional[int], to_port: Optional[int], field: str, entry: Dict[str, Any]) -> Permission:
    permission: Permission = {"IpProtocol": protocol, field: [entry]}
    if from_port is not None:
        permission["FromPort"] = from_port
        permission["ToPort"] = to_port
    return permission


def existing_rules(group: Resource) -> Dict[RuleKey, Permission]:
    """{rule key: IpPermission for exactly that rule} of a described group's ingress."""
    rules: Dict[RuleKey, Permission] = {}
    for perm in group.get("IpPermissions", []):
        protocol, from_port, to_port = perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort")
        sources = ([("IpRanges", CIDR, "CidrIp", r) for r in perm.get("IpRanges", [])]
                   + [("Ipv6Ranges", "cidr6", "CidrIpv6", r) for r in perm.get("Ipv6Ranges", [])]
                   + [("PrefixListIds", "prefix_list", "PrefixListId", r) for r in perm.get("PrefixListIds", [])]
                   + [("UserIdGroupPairs", GROUP, "GroupId", r) for r in perm.get("UserIdGroupPairs", [])])
        for field, kind, id_key, entry in sources:
            # Described as AWS holds it, description included, so a revoke matches it exactly.
            source = {k: v for k, v in entry.items() if k in (id_key, "UserId", "Description")}
            key = _rule_key(protocol, from_port, to_port, kind, entry[id_key])
            rules[key] = _permission(protocol, from_port, to_port, field, source)
    return rules


def _wanted_permission(rule: Rule, group_ids: Dict[str, str]) -> Permission:
    kind, value = rule.source
    if kind == CIDR:
        return _permission(rule.protocol, rule.from_port, rule.to_port, "IpRanges",
                           {"CidrIp": value, "Description": rule.description})
    return _permission(rule.protocol, rule.from_port, rule.to_port, "UserIdGroupPairs",
                       {"GroupId": group_ids[value], "Description": rule.description})


def _render(key: RuleKey, names: Dict[str, str]) -> str:
    protocol, from_port, to_port, _kind, value = key
    if from_port is None:
        text = "protocol %s" % protocol
    elif from_port == to_port:
        text = "%s %s" % (protocol, from_port)
    else:
        text = "%s %s-%s" % (protocol, from_port, to_port)
    return "%s from %s" % (text, names.get(value, value))


# --- present ---------------------------------------------------------------------------------

def _groups_by_role(ctx: Context, spec: Spec, vpc_id: str) -> Dict[str, Resource]:
    """The cluster's owned groups in the VPC as {sg role: group}, read once."""
    cluster = spec["name"]
    filters = naming.owned_filters(cluster) + lookup.in_vpc(vpc_id)
    groups: Dict[str, Resource] = {}
    for group in lookup.owned(aws_ec2.describe_security_groups(ctx.ec2, Filters=filters), cluster):
        role = lookup.tags_of(group).get(naming.ROLE_TAG)
        if not role:
            continue
        # Two groups with one role: keep the one with CAPA's name.
        if role not in groups or group["GroupName"] == naming.security_group_name(cluster, role):
            groups[role] = group
    return groups


def _plan_create(ctx: Context, spec: Spec, plan: Plan, role: str, vpc_id: Callable[[], str]) -> None:
    cluster = spec["name"]
    name = naming.security_group_name(cluster, role)
    tags = naming.resource_tags(cluster, name, role, spec["additional_tags"], cloud_provider=role == naming.SG_LB)

    def create() -> None:
        group = aws_ec2.eventually(aws_ec2.create_security_group, ctx.ec2, GroupName=name, VpcId=vpc_id(),
                                   Description=naming.security_group_description(cluster, role),
                                   TagSpecifications=boto3_tag_specifications(tags, ["security-group"]))
        plan.refs[group_ref(role)] = group["GroupId"]

    plan.create("security-group", name, create, role)


def _plan_rules(ctx: Context, spec: Spec, plan: Plan, role: str, group: Optional[Resource], rules: List[Rule],
                known_ids: Dict[str, str], names: Dict[str, str]) -> None:
    """Revoke what the spec no longer has (never on ``lb``), then authorize what is missing.

    ``known_ids`` maps the roles of existing groups to their ids; ``names`` maps group ids
    and roles to group names, for the plan's text.
    """
    name = naming.security_group_name(spec["name"], role)
    have = existing_rules(group) if group else {}
    wanted_keys: set[Optional[RuleKey]] = set()
    missing: Dict[RuleKey, Rule] = {}
    for rule in rules:
        kind, value = rule.source
        now = known_ids.get(value) if kind == GROUP else value
        key = _rule_key(rule.protocol, rule.from_port, rule.to_port, kind, now) if now else None
        wanted_keys.add(key)
        if key not in have:
            # Keyed by source role or CIDR, so a source listed twice is authorized once.
            missing.setdefault(_rule_key(rule.protocol, rule.from_port, rule.to_port, kind, value), rule)
    extra = [] if role == naming.SG_LB else sorted((k for k in have if k not in wanted_keys), key=str)

    def group_id() -> str:
        return str(plan.refs[group_ref(role)])

    if extra:
        revoke = [have[key] for key in extra]
        plan.update("security-group", name, lambda: aws_ec2.revoke_security_group_ingress(ctx.ec2, GroupId=group_id(), IpPermissions=revoke),
                    "revoke " + ", ".join(_render(key, names) for key in extra))
    if missing:
        def authorize() -> None:
            ids = group_ids(plan, spec)
            permissions = [_wanted_permission(rule, ids) for rule in missing.values()]
            aws_ec2.eventually(aws_ec2.authorize_security_group_ingress, ctx.ec2, GroupId=group_id(), IpPermissions=permissions)

        plan.update("security-group", name, authorize, "authorize " + ", ".join(_render(key, names) for key in missing))


def plan_present(ctx: Context, spec: Spec, plan: Plan, vpc_id: Callable[[], str], vpc_cidr: str,
                 drift: Optional[drifts.TagDrift] = None) -> Plan:
    """Add to ``plan`` what makes the cluster's security groups and rules match the spec.

    ``vpc_id`` is a callable giving the VPC's id: plan.UNKNOWN while the VPC is still to be
    created (then no group can exist yet), the real id when the actions run. ``vpc_cidr``
    is the VPC's CIDR, the source of the internal API and NLB rules. Group ids go to
    ``plan.refs[group_ref(role)]``. The groups' tags are checked with ``drift``.
    """
    current_vpc = vpc_id()
    groups = _groups_by_role(ctx, spec, current_vpc) if current_vpc != UNKNOWN else {}
    roles = wanted_roles(spec)
    for role in roles:
        if role in groups:
            plan.refs[group_ref(role)] = groups[role]["GroupId"]
            if drift:
                drift.check("security-group", groups[role]["GroupName"], groups[role]["GroupId"], lookup.tags_of(groups[role]))
        else:
            _plan_create(ctx, spec, plan, role, vpc_id)
    known_ids = {role: group["GroupId"] for role, group in groups.items() if role in roles}
    names = {group["GroupId"]: group["GroupName"] for group in groups.values()}
    names.update((role, naming.security_group_name(spec["name"], role)) for role in roles)
    rules = wanted_rules(spec, vpc_cidr)
    for role in roles:
        _plan_rules(ctx, spec, plan, role, groups.get(role), rules[role], known_ids, names)
    return plan


def group_ids(plan: Plan, spec: Spec) -> Dict[str, str]:
    """{sg role: group id} once the plan ran (plan.UNKNOWN for a group check mode did not create)."""
    return {role: cast(str, plan.refs[group_ref(role)]) for role in wanted_roles(spec)}


def plan_retired(ctx: Context, spec: Spec) -> Plan:
    """The plan that deletes the bastion's group once the bastion is disabled (owned, and no longer of use).

    Runs after the machine sets: the bastion was terminated by then (or is to be, in check mode), and the
    network's plan revoked the SSH rules of the other groups that named it. The group goes once the
    bastion's machines are terminated (waited for); while any other instance still uses it, it stays.
    Nothing is read unless the group exists.
    """
    plan = Plan()
    cluster = spec["name"]
    if spec["network"]["bastion"]["enabled"]:
        return plan
    groups = [g for g in lookup.owned(aws_ec2.describe_security_groups(ctx.ec2, Filters=naming.owned_filters(cluster)), cluster)
              if lookup.tags_of(g).get(naming.ROLE_TAG) == naming.SG_BASTION]
    for group in groups:
        users = lookup.instances(ctx.ec2, [{"Name": "instance.group-id", "Values": [group["GroupId"]]},
                                           {"Name": "instance-state-name", "Values": lookup.INSTANCE_LIVE_STATES}])
        bastions = [i for i in users if naming.is_owned(lookup.tags_of(i), cluster)
                    and lookup.tags_of(i).get(naming.MACHINE_SET_TAG) == naming.SET_BASTION]
        if len(bastions) != len(users):
            continue
        group_id = group["GroupId"]
        if bastions:
            ids = [i["InstanceId"] for i in bastions]
            plan.wait("ec2 instances terminated", ", ".join(lookup.name_of(i, i["InstanceId"]) for i in bastions),
                      functools.partial(aws_ec2.wait_for_instances, ctx.ec2, "instance_terminated", ids, ctx.wait_timeout),
                      "the bastion, before its security group goes")
        plan.delete("security-group", group["GroupName"], functools.partial(aws_ec2.delete_security_group, ctx.ec2, group_id),
                    "%s, cluster.network.bastion.enabled is false" % group_id)
    return plan


# --- absent ----------------------------------------------------------------------------------

def is_cluster_group(group: Resource, cluster: str) -> bool:
    """Owned by the cluster, or made for it by the cloud-controller-manager (as CAPA's GC counts them)."""
    return group["GroupName"] != "default" and bool(naming.is_claimed(lookup.tags_of(group), cluster))


def groups_in_vpc(ctx: Context, vpc_id: str) -> List[Resource]:
    """Every security group of the VPC, the cluster's and others' (one describe)."""
    groups: List[Resource] = aws_ec2.describe_security_groups(ctx.ec2, Filters=lookup.in_vpc(vpc_id))
    return groups


def referencing_groups(groups: Sequence[Resource], cluster: str) -> List[Tuple[Resource, List[str]]]:
    """``(group, referenced cluster group ids)`` for the groups not of the cluster whose rules name one of its groups.

    AWS refuses to delete a group another group's rule refers to, so such a rule stops a delete.
    """
    mine = {g["GroupId"] for g in groups if is_cluster_group(g, cluster)}
    found = []
    for group in groups:
        if group["GroupId"] in mine:
            continue
        pairs = [p for perm in group.get("IpPermissions", []) + group.get("IpPermissionsEgress", [])
                 for p in perm.get("UserIdGroupPairs", [])]
        referenced = sorted({p["GroupId"] for p in pairs if p.get("GroupId") in mine})
        if referenced:
            found.append((group, referenced))
    return found


def plan_absent(ctx: Context, spec: Spec, plan: Plan, vpc_id: str, groups: Optional[List[Resource]] = None) -> Plan:
    """Add to ``plan`` the revoke of every ingress rule of the cluster's groups in the VPC, then their deletes.

    ``groups`` are the VPC's groups when the caller read them already.
    """
    cluster = spec["name"]
    if groups is None:
        groups = groups_in_vpc(ctx, vpc_id)
    mine = sorted((g for g in groups if is_cluster_group(g, cluster)), key=lambda g: g["GroupName"])
    for group in mine:
        rules = list(existing_rules(group).values())
        if rules:
            plan.update("security-group", group["GroupName"],
                        functools.partial(aws_ec2.revoke_security_group_ingress, ctx.ec2, GroupId=group["GroupId"], IpPermissions=rules),
                        "revoke all %d ingress rule(s)" % len(rules))
    for group in mine:
        plan.delete("security-group", group["GroupName"],
                    functools.partial(aws_ec2.delete_security_group, ctx.ec2, group["GroupId"]), group["GroupId"])
    return plan
