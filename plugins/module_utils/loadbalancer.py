# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's API load balancer, as CAPA builds its control-plane load balancer.

``plan_present(ctx, spec)`` reads the balancer (NLB or classic ELB, named by
``naming.load_balancer_name``), its target group, listener, attributes and targets once,
and plans what makes them match the spec: create what is missing, fix drift in the health
check, attributes, listener, subnets, security groups and tags, register the running
control-plane machines (but those ``exclude_machines`` names, about to be removed) and
deregister everything else. Its type and scheme are never
changed in place: the cluster's endpoint is the balancer's DNS name, which is immutable
(CAPA#2608).

``plan_absent(ctx, spec)`` deletes in CAPA's order: the API balancer and every balancer the AWS
cloud-controller-manager made for the cluster's Services (tagged
``kubernetes.io/cluster/<name>=owned``) are deleted together, waited for once, then the
target groups go. Nothing without one of the cluster's ownership tags is touched.
"""

import functools
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from . import drift as drifts
from . import lookup
from . import naming
from .aws import ec2 as aws_ec2
from .aws import elb as aws_elb
from .aws.elb import API_PORT
from .aws.elb import CLASSIC
from .aws.elb import NLB
from .context import Context
from .errors import KubeclusterError
from .plan import UNKNOWN, Plan

__all__ = ["API_PORT", "CLASSIC", "NLB", "LoadBalancerError", "plan_present", "plan_absent"]

Resource = Dict[str, Any]
Tags = Dict[str, str]
Found = Dict[str, Any]

READYZ_PATH = "/readyz"
# CAPA's health-check timing (api/v1beta2/network_types.go). NLB target groups accept a
# 4 s timeout with a 5 s interval since AWS made NLB health checks configurable (2022).
HEALTH_CHECK_INTERVAL = 5
HEALTH_CHECK_TIMEOUT = 4
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 6
# Long-lived watches through a classic ELB would be cut at its 60 s default.
CLASSIC_IDLE_TIMEOUT = 600
TARGET_GROUP_ATTRIBUTES = {
    # Client-IP preservation makes a control-plane node's own requests through the NLB
    # hairpin back to itself and time out (kubeadm#1685, CAPA#3088).
    "preserve_client_ip.enabled": "false",
    # Let open connections to a failing apiserver drain instead of being cut at once.
    "target_health_state.unhealthy.connection_termination.enabled": "false",
    "target_health_state.unhealthy.draining_interval_seconds": "300",
}
CROSS_ZONE_ATTRIBUTE = "load_balancing.cross_zone.enabled"
# Seconds between two reads while control-plane machines boot: AWS registers only running instances, and a new
# target takes minutes to be served, so a machine is registered soon after it runs (CAPA requeues every second).
TARGET_WAIT_DELAY = 5

TYPE_NAMES = {NLB: "a network load balancer (nlb)", CLASSIC: "a classic ELB (classic)"}


class TargetChanges(NamedTuple):
    register: List[str]
    deregister: List[str]
    wait: List[str]
    after: List[str]


class LoadBalancerError(KubeclusterError):
    """The balancer cannot be reconciled as asked; the message names the field and the fix."""


# --- small pure helpers ---------------------------------------------------------------

def _attribute_list(attributes: Dict[str, str]) -> List[Dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(attributes.items())]


def _attribute_dict(attribute_list: Iterable[Dict[str, str]]) -> Dict[str, str]:
    return {a["Key"]: a["Value"] for a in attribute_list}


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _describe(values: Dict[str, str]) -> str:
    return ", ".join("%s=%s" % (key, value) for key, value in sorted(values.items()))


def _tag_drift(have: Tags, want: Tags) -> Tags:
    """Wanted tags missing or different on the resource; other tags (CCM's, users') stay."""
    return {key: value for key, value in want.items() if have.get(key) != value}


def _tag_purge(have: Tags, want: Tags) -> List[str]:
    """The additional tag keys the collection set on the resource (its record) that the spec no longer has (drift.py)."""
    additional = {key: value for key, value in want.items() if not naming.reserved_tag_key(key)}
    return drifts.tag_changes(have, additional)[1]


def nlb_health_check(protocol: str) -> Dict[str, Any]:
    """The target group's health-check parameters, as CreateTargetGroup/ModifyTargetGroup take them."""
    check: Dict[str, Any] = {
        "HealthCheckEnabled": True,
        "HealthCheckProtocol": protocol,
        "HealthCheckPort": str(API_PORT),
        "HealthCheckIntervalSeconds": HEALTH_CHECK_INTERVAL,
        "HealthCheckTimeoutSeconds": HEALTH_CHECK_TIMEOUT,
        "HealthyThresholdCount": HEALTHY_THRESHOLD,
        "UnhealthyThresholdCount": UNHEALTHY_THRESHOLD,
    }
    if protocol == "HTTPS":
        check["HealthCheckPath"] = READYZ_PATH
    return check


def classic_health_check(protocol: str) -> Dict[str, Any]:
    target = "HTTPS:%d%s" % (API_PORT, READYZ_PATH) if protocol == "HTTPS" else "TCP:%d" % API_PORT
    return {"Target": target, "Interval": HEALTH_CHECK_INTERVAL, "Timeout": HEALTH_CHECK_TIMEOUT,
            "HealthyThreshold": HEALTHY_THRESHOLD, "UnhealthyThreshold": UNHEALTHY_THRESHOLD}


def classic_listener() -> Dict[str, Any]:
    return {"Protocol": "TCP", "LoadBalancerPort": API_PORT, "InstanceProtocol": "TCP", "InstancePort": API_PORT}


def classic_attributes(cross_zone: bool) -> Dict[str, Any]:
    return {"CrossZoneLoadBalancing": {"Enabled": cross_zone}, "ConnectionSettings": {"IdleTimeout": CLASSIC_IDLE_TIMEOUT}}


def balancer_subnet_ids(subnets: Sequence[Resource], scheme: str) -> List[str]:
    """One subnet per zone: private ones for an internal balancer (when there are any), else public."""
    private = [s for s in subnets if s["role"] == naming.ROLE_PRIVATE]
    chosen = private if scheme == "internal" and private else [s for s in subnets if s["role"] == naming.ROLE_PUBLIC]
    by_zone: Dict[str, str] = {}
    for subnet in chosen:
        by_zone.setdefault(subnet["availability_zone"], subnet["id"])
    return [by_zone[zone] for zone in sorted(by_zone)]


def target_changes(running: Iterable[str], pending: Iterable[str], registered: Iterable[str],
                   wait_for_targets: bool) -> TargetChanges:
    """Which instances to register and deregister, which to wait for first, and what stays registered.

    Running control-plane machines are registered; pending ones too when the module waits
    for them. Anything else registered (stopped, terminated, not an owned control-plane
    machine) is deregistered; a pending machine already registered is left alone.
    """
    running_ids, pending_ids, registered_ids = set(running), set(pending), set(registered)
    wanted = running_ids | (pending_ids if wait_for_targets else set())
    register = wanted - registered_ids
    deregister = registered_ids - running_ids - pending_ids
    after = (registered_ids - deregister) | register
    return TargetChanges(sorted(register), sorted(deregister), sorted(register & pending_ids), sorted(after))


# --- reads ----------------------------------------------------------------------------

def control_plane_instances(ec2: Any, cluster: str) -> Dict[str, Any]:
    """The cluster's control-plane machines, in one call: ``pending`` and ``running`` hold their ids;
    ``known`` maps the id and Name tag of every one in any state (also stopped or terminated) to its id."""
    filters: List[Dict[str, Any]] = naming.owned_filters(cluster, **{naming.ROLE_TAG: naming.ROLE_CONTROL_PLANE})
    found: Dict[str, Any] = {"pending": [], "running": [], "known": {}}
    for reservation in aws_ec2.describe_instances(ec2, Filters=filters):
        for instance in reservation["Instances"]:
            tags = naming.tags_to_dict(instance.get("Tags"))
            # The filters already select these; checked again because a target must never be another's instance.
            if not naming.is_owned(tags, cluster) or tags.get(naming.ROLE_TAG) != naming.ROLE_CONTROL_PLANE:
                continue
            instance_id = instance["InstanceId"]
            state = instance["State"]["Name"]
            if state in ("pending", "running"):
                found[state].append(instance_id)
            found["known"][instance_id] = instance_id
            if tags.get("Name"):
                found["known"][tags["Name"]] = instance_id
    return found


def excluded_ids(instances: Dict[str, Any], exclude_machines: Sequence[str], cluster: str) -> List[str]:
    """The instance ids ``exclude_machines`` names (instance ids or Name tags of the cluster's control-plane
    machines, in any state); a name that is none of them raises LoadBalancerError, before any write."""
    known: Dict[str, str] = instances["known"]
    unknown = [name for name in exclude_machines if name not in known]
    if unknown:
        live = sorted(name for name, instance_id in known.items()
                      if name != instance_id and instance_id in instances["pending"] + instances["running"])
        raise LoadBalancerError("exclude_machines: %s %s not a control-plane machine of cluster %s; name control-plane machines "
                                "by instance id or Name tag (it has: %s)"
                                % (", ".join(unknown), "is" if len(unknown) == 1 else "are", cluster, ", ".join(live) or "none"))
    return sorted({known[name] for name in exclude_machines})


def cluster_network(ec2: Any, spec: Dict[str, Any], allow_missing: bool) -> Dict[str, Any]:
    """The VPC, the balancer's subnets and security group; placeholders for missing ones when allowed.

    A real run without the network fails here, before any write; check mode of a whole
    create playbook plans the balancer into the network the same run would create.
    """
    scheme = spec["network"]["api_load_balancer"]["scheme"]
    vpc = lookup.cluster_vpc(ec2, spec)
    network: Dict[str, Any] = {"vpc_id": UNKNOWN, "subnet_ids": [UNKNOWN], "security_group_ids": [UNKNOWN]}
    problems = []
    if vpc is None:
        problems.append("the cluster's VPC was not found")
    else:
        network["vpc_id"] = vpc["VpcId"]
        subnet_ids = balancer_subnet_ids(lookup.cluster_subnets(ec2, spec, vpc["VpcId"]), scheme)
        group_id = lookup.cluster_security_groups(ec2, spec).get(naming.SG_APISERVER_LB)
        if subnet_ids:
            network["subnet_ids"] = subnet_ids
        else:
            problems.append("the cluster has no subnets for an %s balancer" % scheme)
        if group_id:
            network["security_group_ids"] = [group_id]
        else:
            problems.append("the cluster's %s security group was not found" % naming.SG_APISERVER_LB)
    if problems and not allow_missing:
        raise LoadBalancerError(
            "cluster.network: %s in %s; create the network and security groups first "
            "(kubecluster.aws.cluster_network with state: present)" % ("; ".join(problems), spec["region"]))
    return network


def _first(items: Optional[List[Resource]]) -> Optional[Resource]:
    return items[0] if items else None


def find_api_balancer(ctx: Context, cluster: str, wanted_type: Optional[str] = None) -> Found:
    """The API balancer by name, of either type, with its target group and all their tags.

    Returns a dict with ``nlb`` / ``classic`` / ``target_group`` (the description or None)
    and ``tags`` (by ARN, or by name for a classic balancer). With ``wanted_type`` nlb and the
    NLB found, the classic ELB API is not asked (an NLB cluster's rerun); without the NLB it is,
    to refuse a classic balancer of that name (a type change).
    """
    name: str = naming.load_balancer_name(cluster)
    nlb = _first(aws_elb.describe_load_balancers(ctx.elbv2, names=[name]))
    found: Found = {
        "nlb": nlb,
        "classic": None if nlb and wanted_type == NLB else _first(aws_elb.describe_classic_balancers(ctx.elb, names=[name])),
        "target_group": _first(aws_elb.describe_target_groups(ctx.elbv2, Names=[naming.target_group_name(cluster)])),
    }
    arns = [found["nlb"]["LoadBalancerArn"]] if found["nlb"] else []
    arns += [found["target_group"]["TargetGroupArn"]] if found["target_group"] else []
    found["tags"] = aws_elb.elbv2_tags(ctx.elbv2, arns) if arns else {}
    if found["classic"]:
        found["tags"].update(aws_elb.describe_classic_tags(ctx.elb, [name]))
    return found


def _refuse_unowned(found: Found, cluster: str) -> None:
    for key, ident, kind in (("nlb", "LoadBalancerArn", "load balancer"), ("classic", "LoadBalancerName", "load balancer"),
                             ("target_group", "TargetGroupArn", "target group")):
        resource = found[key]
        if resource and not naming.is_owned(found["tags"].get(resource[ident], {}), cluster):
            name = resource.get("LoadBalancerName") or resource.get("TargetGroupName")
            raise LoadBalancerError(
                "cluster.name: a %s named %s already exists and is not tagged %s=owned, so it is left alone; "
                "delete or rename it, or choose another cluster name" % (kind, name, naming.owner_tag(cluster)))


def _existing_type(found: Found) -> Tuple[Optional[str], Optional[str]]:
    if found["classic"]:
        return CLASSIC, found["classic"]["Scheme"]
    if found["nlb"]:
        kind = NLB if found["nlb"]["Type"] == "network" else found["nlb"]["Type"]
        return kind, found["nlb"]["Scheme"]
    return None, None


def refuse_immutable_changes(found: Found, config: Dict[str, Any], name: str) -> None:
    """Fail, before any write, when the spec asks for another type or scheme than the balancer has."""
    kind, scheme = _existing_type(found)
    if found["classic"] and found["nlb"]:
        raise LoadBalancerError(
            "cluster.network.api_load_balancer.type: both a classic ELB and an elbv2 balancer are named %s; "
            "delete the one that is not the cluster's endpoint" % name)
    fix = ("it cannot be changed in place because the cluster's endpoint is the balancer's DNS name, which never changes "
           "(CAPA#2608); keep %s: %s, or delete the balancer (kubecluster.aws.apiserver_lb with state: absent) and "
           "recreate the cluster")
    if kind and kind != config["type"]:
        raise LoadBalancerError("cluster.network.api_load_balancer.type: the API load balancer %s exists as %s, not %s; %s"
                                % (name, TYPE_NAMES.get(kind, kind), TYPE_NAMES[config["type"]], fix % ("type", kind)))
    if scheme and scheme != config["scheme"]:
        raise LoadBalancerError("cluster.network.api_load_balancer.scheme: the API load balancer %s is %s, not %s; %s"
                                % (name, scheme, config["scheme"], fix % ("scheme", scheme)))


# --- present ----------------------------------------------------------------------------

def desired(spec: Dict[str, Any], network: Dict[str, Any]) -> Dict[str, Any]:
    """What the spec asks for: names, settings, placement and tags of the balancer and its target group."""
    cluster = spec["name"]
    config = spec["network"]["api_load_balancer"]
    name = naming.load_balancer_name(cluster)
    target_group = naming.target_group_name(cluster)
    return dict(
        network,
        name=name,
        type=config["type"],
        scheme=config["scheme"],
        cross_zone=config["cross_zone"],
        health_check_protocol=config["health_check_protocol"],
        tags=naming.resource_tags(cluster, name, naming.ROLE_APISERVER, spec["additional_tags"]),
        target_group_name=target_group,
        target_group_tags=naming.resource_tags(cluster, target_group, naming.ROLE_APISERVER, spec["additional_tags"]),
    )


def plan_target_changes(plan: Plan, ctx: Context, changes: TargetChanges, register: Callable[[List[str]], None],
                        deregister: Callable[[List[str]], None], where: str) -> None:
    """Wait for pending machines (once), then register and deregister in one call each."""
    if changes.wait:
        plan.wait("instances", ", ".join(changes.wait),
                  lambda: aws_ec2.wait_for_instances(ctx.ec2, "instance_running", changes.wait, ctx.wait_timeout, TARGET_WAIT_DELAY),
                  "until running, at most %d s" % ctx.wait_timeout)
    if changes.register:
        plan.create("targets", ", ".join(changes.register), lambda: register(changes.register), "register in %s" % where)
    if changes.deregister:
        plan.delete("targets", ", ".join(changes.deregister), lambda: deregister(changes.deregister), "deregister from %s" % where)


class _Planner:
    """What both planners plan with: the context, the plan they add to, what is wanted and what was found."""

    KIND = ""  # the key of the balancer in find_api_balancer's answer

    def __init__(self, ctx: Context, plan: Plan, want: Dict[str, Any], found: Found) -> None:
        self.ctx = ctx
        self.plan = plan
        self.want = want
        self.balancer: Optional[Resource] = found[self.KIND]


class _NlbPlanner(_Planner):
    """Plans the NLB, its target group, attributes, listener and targets against what exists."""

    KIND = "nlb"

    def __init__(self, ctx: Context, plan: Plan, want: Dict[str, Any], found: Found) -> None:
        super().__init__(ctx, plan, want, found)
        self.elbv2 = ctx.elbv2
        self.target_group: Optional[Resource] = found["target_group"]
        self.tags: Dict[str, Tags] = found["tags"]

    def registered(self) -> List[str]:
        if not self.target_group:
            return []
        # A draining target is already on its way out; register it again if it should serve.
        return [d["Target"]["Id"] for d in aws_elb.describe_target_health(self.elbv2, self.target_group["TargetGroupArn"])
                if d.get("TargetHealth", {}).get("State") != "draining"]

    def plan_target_group(self) -> None:
        want = self.want
        health_check = nlb_health_check(want["health_check_protocol"])
        if not self.target_group:
            params = dict(health_check, Name=want["target_group_name"], Protocol="TCP", Port=API_PORT, VpcId=want["vpc_id"],
                          TargetType="instance", Tags=ansible_dict_to_boto3_tag_list(want["target_group_tags"]))
            self.plan.create("target group", want["target_group_name"], lambda: self._create_target_group(params),
                             "TCP %d, health check %s" % (API_PORT, self._health_check_text()))
            self._plan_target_group_attributes(TARGET_GROUP_ATTRIBUTES)
            return
        group = self.target_group
        self._refuse_foreign_target_group(group)
        self.plan.refs["target_group_arn"] = group["TargetGroupArn"]
        drift = {key: value for key, value in health_check.items() if group.get(key) != value}
        if drift:
            self.plan.update("target group health check", group["TargetGroupName"],
                             lambda: aws_elb.modify_target_group(self.elbv2, group["TargetGroupArn"], **health_check),
                             self._health_check_text())
        have = _attribute_dict(aws_elb.describe_target_group_attributes(self.elbv2, group["TargetGroupArn"]))
        self._plan_target_group_attributes({k: v for k, v in TARGET_GROUP_ATTRIBUTES.items() if have.get(k) != v})
        self._plan_tags("target group tags", group["TargetGroupName"], group["TargetGroupArn"], want["target_group_tags"])

    def _refuse_foreign_target_group(self, group: Resource) -> None:
        """A target group's protocol, port, target type and VPC are fixed at creation."""
        have = (group["Protocol"], group["Port"], group["TargetType"], group["VpcId"])
        if self.want["vpc_id"] != UNKNOWN and have != ("TCP", API_PORT, "instance", self.want["vpc_id"]):
            raise LoadBalancerError(
                "cluster.network.api_load_balancer: target group %s is %s %s (%s targets) in %s, not TCP %d (instance targets) in "
                "the cluster's %s, and that cannot be changed in place; delete it (kubecluster.aws.apiserver_lb with state: absent)"
                % (group["TargetGroupName"], group["Protocol"], group["Port"], group["TargetType"], group["VpcId"], API_PORT,
                   self.want["vpc_id"]))

    def _health_check_text(self) -> str:
        check = nlb_health_check(self.want["health_check_protocol"])
        return "%s:%s%s every %ss, timeout %ss, healthy %s, unhealthy %s" % (
            check["HealthCheckProtocol"], check["HealthCheckPort"], check.get("HealthCheckPath", ""),
            check["HealthCheckIntervalSeconds"], check["HealthCheckTimeoutSeconds"], check["HealthyThresholdCount"],
            check["UnhealthyThresholdCount"])

    def _create_target_group(self, params: Dict[str, Any]) -> None:
        self.plan.refs["target_group_arn"] = aws_elb.create_target_group(self.elbv2, **params)

    def _plan_target_group_attributes(self, attributes: Dict[str, str]) -> None:
        if attributes:
            self.plan.update("target group attributes", self.want["target_group_name"],
                             lambda: aws_elb.modify_target_group_attributes(self.elbv2, self.plan.refs["target_group_arn"],
                                                                            _attribute_list(attributes)),
                             _describe(attributes))

    def _plan_tags(self, kind: str, name: str, arn: str, want_tags: Tags) -> None:
        missing = _tag_drift(self.tags.get(arn, {}), want_tags)
        if missing:
            self.plan.update(kind, name, lambda: aws_elb.add_tags(self.elbv2, [arn], ansible_dict_to_boto3_tag_list(missing)),
                             "set " + ", ".join(sorted(missing)))
        purged = _tag_purge(self.tags.get(arn, {}), want_tags)
        if purged:
            self.plan.update(kind, name, lambda: aws_elb.remove_tags(self.elbv2, [arn], purged), "remove " + ", ".join(purged))

    def plan_balancer(self) -> None:
        want = self.want
        cross_zone = {CROSS_ZONE_ATTRIBUTE: _bool_text(want["cross_zone"])}
        if not self.balancer:
            self.plan.create("load balancer", want["name"], self._create_balancer, "nlb %s in %s, security group %s" % (
                want["scheme"], ", ".join(want["subnet_ids"]), ", ".join(want["security_group_ids"])))
            self._plan_balancer_attributes(cross_zone)
            self.plan.create("listener", "%s:%d" % (want["name"], API_PORT), self._create_listener,
                             "TCP %d -> target group %s" % (API_PORT, want["target_group_name"]))
            return
        balancer = self.balancer
        arn = balancer["LoadBalancerArn"]
        self.plan.refs["load_balancer_arn"] = arn
        self.plan.refs["dns_name"] = balancer["DNSName"]
        have = _attribute_dict(aws_elb.describe_load_balancer_attributes(self.elbv2, arn))
        self._plan_balancer_attributes({k: v for k, v in cross_zone.items() if have.get(k) != v})
        self._plan_subnets(balancer)
        self._plan_security_groups(balancer)
        self._plan_tags("load balancer tags", want["name"], arn, want["tags"])
        self._plan_listener(arn)

    def _create_balancer(self) -> None:
        want = self.want
        balancer = aws_elb.create_load_balancer(
            self.elbv2, want["name"], Subnets=want["subnet_ids"], SecurityGroups=want["security_group_ids"],
            Scheme=want["scheme"], Type="network", IpAddressType="ipv4", Tags=ansible_dict_to_boto3_tag_list(want["tags"]))[0]
        self.plan.refs["load_balancer_arn"] = balancer["LoadBalancerArn"]
        self.plan.refs["dns_name"] = balancer["DNSName"]

    def _plan_balancer_attributes(self, attributes: Dict[str, str]) -> None:
        if attributes:
            self.plan.update("load balancer attributes", self.want["name"], lambda: aws_elb.modify_load_balancer_attributes(
                self.elbv2, self.plan.refs["load_balancer_arn"], _attribute_list(attributes)), _describe(attributes))

    def _plan_subnets(self, balancer: Resource) -> None:
        have = sorted(zone["SubnetId"] for zone in balancer.get("AvailabilityZones", []))
        if have != sorted(self.want["subnet_ids"]):
            subnet_ids = self.want["subnet_ids"]
            self.plan.update("load balancer subnets", self.want["name"],
                             lambda: aws_elb.set_subnets(self.elbv2, balancer["LoadBalancerArn"], Subnets=subnet_ids),
                             "%s -> %s" % (", ".join(have), ", ".join(subnet_ids)))

    def _plan_security_groups(self, balancer: Resource) -> None:
        have = sorted(balancer.get("SecurityGroups") or [])
        want = self.want["security_group_ids"]
        if have == sorted(want):
            return
        if not have:
            raise LoadBalancerError(
                "cluster.network.api_load_balancer: the NLB %s was created without security groups, and AWS attaches an NLB's "
                "security groups only at creation; delete it (kubecluster.aws.apiserver_lb with state: absent) and recreate "
                "the cluster" % self.want["name"])
        self.plan.update("load balancer security groups", self.want["name"],
                         lambda: aws_elb.set_security_groups(self.elbv2, balancer["LoadBalancerArn"], want),
                         "%s -> %s" % (", ".join(have), ", ".join(want)))

    def _listener_spec(self) -> Dict[str, Any]:
        return {"Protocol": "TCP", "Port": API_PORT,
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": self.plan.refs["target_group_arn"]}]}

    def _create_listener(self) -> None:
        aws_elb.create_listener(self.elbv2, self.plan.refs["load_balancer_arn"], **self._listener_spec())

    def _plan_listener(self, arn: str) -> None:
        listener = next((item for item in aws_elb.describe_listeners(self.elbv2, load_balancer_arn=arn) if item["Port"] == API_PORT),
                        None)
        text = "TCP %d -> target group %s" % (API_PORT, self.want["target_group_name"])
        if listener is None:
            self.plan.create("listener", "%s:%d" % (self.want["name"], API_PORT), self._create_listener, text)
        elif listener["Protocol"] != "TCP" or _forwarded_groups(listener) != [self.plan.refs["target_group_arn"]]:
            self.plan.update("listener", "%s:%d" % (self.want["name"], API_PORT),
                             lambda: aws_elb.modify_listener(self.elbv2, listener["ListenerArn"], **self._listener_spec()), text)

    def plan_targets(self, instances: Dict[str, List[str]], wait_for_targets: bool) -> List[str]:
        changes = target_changes(instances["running"], instances["pending"], self.registered(), wait_for_targets)
        plan_target_changes(self.plan, self.ctx, changes,
                            lambda ids: aws_elb.register_targets(self.elbv2, self.plan.refs["target_group_arn"], ids, API_PORT),
                            lambda ids: aws_elb.deregister_targets(self.elbv2, self.plan.refs["target_group_arn"], ids, API_PORT),
                            "target group %s" % self.want["target_group_name"])
        return changes.after


def _forwarded_groups(listener: Resource) -> List[Optional[str]]:
    """The target groups a listener's default actions forward to (ForwardConfig or the plain form)."""
    arns = set()
    for action in listener.get("DefaultActions", []):
        if action.get("Type") != "forward":
            return [None]
        if action.get("TargetGroupArn"):
            arns.add(action["TargetGroupArn"])
        arns.update(group["TargetGroupArn"] for group in action.get("ForwardConfig", {}).get("TargetGroups", []))
    return sorted(arns)


class _ClassicPlanner(_Planner):
    """Plans the classic ELB, its listener, health check, attributes and instances against what exists."""

    KIND = "classic"

    def __init__(self, ctx: Context, plan: Plan, want: Dict[str, Any], found: Found) -> None:
        super().__init__(ctx, plan, want, found)
        self.elb = ctx.elb
        self.tags: Tags = found["tags"].get(want["name"], {})

    def plan_balancer(self) -> None:
        want = self.want
        health_check = classic_health_check(want["health_check_protocol"])
        attributes = classic_attributes(want["cross_zone"])
        if not self.balancer:
            self.plan.create("load balancer", want["name"], self._create_balancer, "classic %s in %s, security group %s" % (
                want["scheme"], ", ".join(want["subnet_ids"]), ", ".join(want["security_group_ids"])))
            self._plan_health_check(health_check)
            self._plan_attributes(attributes)
            return
        balancer = self.balancer
        self.plan.refs["dns_name"] = balancer["DNSName"]
        if _classic_health_check_drifted(balancer.get("HealthCheck") or {}, health_check):
            self._plan_health_check(health_check)
        if _classic_attributes_drifted(aws_elb.describe_classic_attributes(self.elb, want["name"]), attributes):
            self._plan_attributes(attributes)
        self._plan_listener(balancer)
        self._plan_subnets(balancer)
        self._plan_security_groups(balancer)
        missing = _tag_drift(self.tags, want["tags"])
        if missing:
            self.plan.update("load balancer tags", want["name"], lambda: aws_elb.add_classic_tags(self.elb, want["name"], missing),
                             "set " + ", ".join(sorted(missing)))
        purged = _tag_purge(self.tags, want["tags"])
        if purged:
            self.plan.update("load balancer tags", want["name"], lambda: aws_elb.remove_classic_tags(self.elb, want["name"], purged),
                             "remove " + ", ".join(purged))

    def _create_balancer(self) -> None:
        want = self.want
        params = dict(LoadBalancerName=want["name"], Listeners=[classic_listener()], Subnets=want["subnet_ids"],
                      SecurityGroups=want["security_group_ids"], Tags=ansible_dict_to_boto3_tag_list(want["tags"]))
        if want["scheme"] == "internal":
            params["Scheme"] = "internal"  # internet-facing is what a classic ELB is unless told otherwise
        self.plan.refs["dns_name"] = aws_elb.create_classic_balancer(self.elb, **params)

    def _plan_health_check(self, health_check: Dict[str, Any]) -> None:
        self.plan.update("load balancer health check", self.want["name"],
                         lambda: aws_elb.configure_classic_health_check(self.elb, self.want["name"], health_check),
                         "%(Target)s every %(Interval)ss, timeout %(Timeout)ss, healthy %(HealthyThreshold)s, "
                         "unhealthy %(UnhealthyThreshold)s" % health_check)

    def _plan_attributes(self, attributes: Dict[str, Any]) -> None:
        self.plan.update("load balancer attributes", self.want["name"],
                         lambda: aws_elb.modify_classic_attributes(self.elb, self.want["name"], attributes),
                         "cross-zone %s, idle timeout %d s" % (
                             _bool_text(attributes["CrossZoneLoadBalancing"]["Enabled"]), attributes["ConnectionSettings"]["IdleTimeout"]))

    def _plan_listener(self, balancer: Resource) -> None:
        want = classic_listener()
        name = "%s:%d" % (self.want["name"], API_PORT)
        listeners = [d["Listener"] for d in balancer.get("ListenerDescriptions", [])]
        have = next((item for item in listeners if item["LoadBalancerPort"] == API_PORT), None)
        if have is not None and all(have.get(key) == value for key, value in want.items()):
            return
        if have is not None:
            self.plan.delete("listener", name, lambda: aws_elb.delete_classic_listener(self.elb, self.want["name"], API_PORT),
                             "%s %d -> %s %d" % (have["Protocol"], API_PORT, have.get("InstanceProtocol"), have.get("InstancePort")))
        self.plan.create("listener", name, lambda: aws_elb.create_classic_listener(self.elb, self.want["name"], want),
                         "TCP %d -> instance TCP %d" % (API_PORT, API_PORT))

    def _plan_subnets(self, balancer: Resource) -> None:
        have, want = set(balancer.get("Subnets", [])), set(self.want["subnet_ids"])
        # Attach first: a balancer must keep at least one subnet per zone it serves.
        if want - have:
            added = sorted(want - have)
            self.plan.update("load balancer subnets", self.want["name"],
                             lambda: aws_elb.attach_classic_subnets(self.elb, self.want["name"], added), "attach " + ", ".join(added))
        if have - want:
            removed = sorted(have - want)
            self.plan.update("load balancer subnets", self.want["name"],
                             lambda: aws_elb.detach_classic_subnets(self.elb, self.want["name"], removed), "detach " + ", ".join(removed))

    def _plan_security_groups(self, balancer: Resource) -> None:
        have, want = sorted(balancer.get("SecurityGroups", [])), self.want["security_group_ids"]
        if have != sorted(want):
            self.plan.update("load balancer security groups", self.want["name"],
                             lambda: aws_elb.set_classic_security_groups(self.elb, self.want["name"], want),
                             "%s -> %s" % (", ".join(have), ", ".join(want)))

    def plan_targets(self, instances: Dict[str, List[str]], wait_for_targets: bool) -> List[str]:
        registered = [i["InstanceId"] for i in (self.balancer or {}).get("Instances", [])]
        changes = target_changes(instances["running"], instances["pending"], registered, wait_for_targets)
        plan_target_changes(self.plan, self.ctx, changes,
                            lambda ids: aws_elb.register_classic_instances(self.elb, self.want["name"], ids),
                            lambda ids: aws_elb.deregister_classic_instances(self.elb, self.want["name"], ids),
                            "load balancer %s" % self.want["name"])
        return changes.after


def _classic_health_check_drifted(have: Dict[str, Any], want: Dict[str, Any]) -> bool:
    return any(str(have.get(key)) != str(value) for key, value in want.items())


def _classic_attributes_drifted(have: Dict[str, Any], want: Dict[str, Any]) -> bool:
    return bool(have.get("CrossZoneLoadBalancing", {}).get("Enabled") != want["CrossZoneLoadBalancing"]["Enabled"]
                or have.get("ConnectionSettings", {}).get("IdleTimeout") != want["ConnectionSettings"]["IdleTimeout"])


def _view(plan: Plan, want: Dict[str, Any], targets: List[str]) -> Callable[[], Dict[str, Any]]:
    """The module's ``load_balancer`` result, read from the plan's refs after the apply."""
    def view() -> Dict[str, Any]:
        dns_name = plan.refs["dns_name"]
        nlb = want["type"] == NLB
        return {
            "name": want["name"],
            "type": want["type"],
            "scheme": want["scheme"],
            "arn": plan.refs["load_balancer_arn"] if nlb else None,
            "dns_name": dns_name,
            "control_plane_endpoint": UNKNOWN if dns_name == UNKNOWN else "%s:%d" % (dns_name, API_PORT),
            "target_group_arn": plan.refs["target_group_arn"] if nlb else None,
            "security_group_ids": list(want["security_group_ids"]),
            "subnet_ids": list(want["subnet_ids"]),
            "targets": list(targets),
        }
    return view


def plan_present(ctx: Context, spec: Dict[str, Any], wait_for_targets: bool = True, allow_missing_network: bool = False,
                 exclude_machines: Sequence[str] = ()) -> Plan:
    """Plan the API balancer for the spec; ``plan.returns["load_balancer"]`` gives the module's result after the apply.

    Waits for pending control-plane machines take at most ``ctx.wait_timeout``. The machines
    ``exclude_machines`` names (ids or Name tags of the cluster's control-plane machines) are
    deregistered and not registered, as before a control-plane machine is removed. Raises
    LoadBalancerError, before any write, for a balancer of another type or scheme, a
    look-alike the cluster does not own, an excluded name that is no control-plane machine of
    the cluster, or (unless ``allow_missing_network``, as in check mode) a network that does
    not exist yet.
    """
    config = spec["network"]["api_load_balancer"]
    instances = control_plane_instances(ctx.ec2, spec["name"])
    excluded = set(excluded_ids(instances, exclude_machines, spec["name"]))
    instances = {state: [i for i in instances[state] if i not in excluded] for state in ("pending", "running")}
    found = find_api_balancer(ctx, spec["name"], config["type"])
    _refuse_unowned(found, spec["name"])
    refuse_immutable_changes(found, config, naming.load_balancer_name(spec["name"]))
    want = desired(spec, cluster_network(ctx.ec2, spec, allow_missing_network))
    plan = Plan()
    planner: Union[_NlbPlanner, _ClassicPlanner]
    if config["type"] == NLB:
        planner = _NlbPlanner(ctx, plan, want, found)
        planner.plan_target_group()
    else:
        planner = _ClassicPlanner(ctx, plan, want, found)
    planner.plan_balancer()
    targets = planner.plan_targets(instances, wait_for_targets)
    plan.returns["load_balancer"] = _view(plan, want, targets)
    return plan


# --- absent -------------------------------------------------------------------------------

def _in_cluster(resource: Resource, vpc_key: str, vpc_id: Optional[str], name_key: str, name: str) -> bool:
    return (vpc_id is not None and resource.get(vpc_key) == vpc_id) or resource.get(name_key) == name


def plan_absent(ctx: Context, spec: Dict[str, Any]) -> Plan:
    """Plan deleting the API balancer, the CCM's Service balancers and their target groups.

    Candidates are the balancers and target groups in the cluster's VPC plus the API
    balancer and target group by name; of those, only ones tagged as the cluster's
    (CAPA's or the cloud-controller-manager's tag) are deleted. The deletions are waited
    for once, at most ``ctx.wait_timeout``.
    """
    cluster = spec["name"]
    api_name = naming.load_balancer_name(cluster)
    vpc, _users = lookup.deletion_vpc(ctx.ec2, cluster)
    vpc_id = vpc["VpcId"] if vpc else None
    classics = [b for b in aws_elb.describe_classic_balancers(ctx.elb) if _in_cluster(b, "VPCId", vpc_id, "LoadBalancerName", api_name)]
    nlbs = [b for b in (aws_elb.describe_load_balancers(ctx.elbv2) or [])
            if _in_cluster(b, "VpcId", vpc_id, "LoadBalancerName", api_name)]
    groups = [g for g in aws_elb.describe_target_groups(ctx.elbv2)
              if _in_cluster(g, "VpcId", vpc_id, "TargetGroupName", naming.target_group_name(cluster))]
    classic_tags = aws_elb.describe_classic_tags(ctx.elb, [b["LoadBalancerName"] for b in classics]) if classics else {}
    v2_tags = aws_elb.elbv2_tags(ctx.elbv2, [b["LoadBalancerArn"] for b in nlbs] + [g["TargetGroupArn"] for g in groups])
    # CAPA's order: the API balancer first, then the Service balancers the CCM made.
    claims = [("load balancer", b["LoadBalancerName"], classic_tags.get(b["LoadBalancerName"], {})) for b in classics]
    claims += [("load balancer", b["LoadBalancerName"], v2_tags.get(b["LoadBalancerArn"], {})) for b in nlbs]
    claims += [("target group", g["TargetGroupName"], v2_tags.get(g["TargetGroupArn"], {})) for g in groups]
    conflicts: List[str] = naming.double_claims(claims, cluster)
    if conflicts:
        raise LoadBalancerError("Not deleting the load balancers of cluster %s; nothing was deleted: %s" % (cluster, "; ".join(conflicts)),
                                conflicts)
    classic_names = sorted((b["LoadBalancerName"] for b in classics if naming.is_claimed(classic_tags.get(b["LoadBalancerName"], {}), cluster)),
                           key=lambda name: (name != api_name, name))
    owned_nlbs = sorted((b for b in nlbs if naming.is_claimed(v2_tags.get(b["LoadBalancerArn"], {}), cluster)),
                        key=lambda b: (b["LoadBalancerName"] != api_name, b["LoadBalancerName"]))
    owned_groups = [g for g in groups if naming.is_claimed(v2_tags.get(g["TargetGroupArn"], {}), cluster)]

    plan = Plan()
    for name in classic_names:
        plan.delete("load balancer", name, functools.partial(aws_elb.delete_classic_balancer, ctx.elb, name), "classic")
    for balancer in owned_nlbs:
        plan.delete("load balancer", balancer["LoadBalancerName"],
                    functools.partial(aws_elb.delete_load_balancer, ctx.elbv2, balancer["LoadBalancerArn"]),
                    "%s, with its listeners" % balancer["Type"])
    if classic_names or owned_nlbs:
        nlb_arns = [b["LoadBalancerArn"] for b in owned_nlbs]
        plan.wait("load balancers", ", ".join(classic_names + [b["LoadBalancerName"] for b in owned_nlbs]),
                  lambda: aws_elb.wait_until_deleted(ctx.elb, ctx.elbv2, classic_names, nlb_arns, ctx.wait_timeout),
                  "until deleted, at most %d s" % ctx.wait_timeout)
    for group in owned_groups:
        plan.delete("target group", group["TargetGroupName"],
                    functools.partial(aws_elb.delete_target_group, ctx.elbv2, group["TargetGroupArn"]))
    return plan
