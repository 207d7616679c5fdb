# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a cluster owns in a region, and the phase Cluster API would give it.

``survey`` reads each resource type once for the whole region - filtered on one
cluster's ownership tag, or on the ownership tag key of any cluster - and groups what
it finds by the cluster named in that tag, so listing every cluster costs the same
reads as looking at one. It never writes.

``cluster_phase`` is the pure decision of the phase from what exists (``kubectl get
cluster`` shows the same words); ``waiting_for`` names what is not ready yet, which is
what ``wait_until_ready`` polls on and what a timed-out wait reports.
"""

import collections
import time
from typing import Any, Callable, DefaultDict, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from . import lookup
from . import machines
from . import naming
from .aws import ec2 as aws_ec2
from .aws import elb as aws_elb
from .spec import version_key

Resource = Dict[str, Any]
Facts = Dict[str, Any]
View = Dict[str, Any]
# {resource type: {cluster name: [resource]}}, as read_owned groups what it read.
Owned = Dict[str, Dict[str, List[Resource]]]

# Nothing owned exists: with no management cluster there is no Cluster object either, so the
# cluster is not found, as ``clusterctl describe cluster`` says of a name it does not know.
NOT_FOUND = "NotFound"
PROVISIONING = "Provisioning"
PROVISIONED = "Provisioned"
DELETING = "Deleting"
FAILED = "Failed"

# Deleted NAT gateways stay visible for about an hour; they no longer belong to anything.
LIVE_NAT_STATES = ["pending", "failed", "available", "deleting"]
# Without the spec, only the groups every machine needs can be required.
REQUIRED_SG_ROLES = (naming.SG_CONTROL_PLANE, naming.SG_NODE)
# Scale-down, rollouts and deletes terminate through the API; any other reason is a failure.
EXPECTED_TERMINATION = "Client.UserInitiatedShutdown"

# ELBv2 load balancer states that route traffic (active_impaired: serving, short of capacity to scale); a classic ELB reads active.
SERVING_LB_STATES = ("active", "active_impaired")

LB_TYPES: Dict[Any, str] = {"network": aws_elb.NLB, "application": "alb", "gateway": "gwlb"}


class ClusterStatus(NamedTuple):
    """What the module returns for one cluster, and what it still waits for.

    ``settling``: all it waits for is NAT gateways, machines and its API load balancer passing
    through AWS's states on their own (the rest is there and ready), so that a wait need read
    again only those (SETTLING_READS)."""

    view: View
    waiting_for: List[str]
    settling: bool = False


class Desired(NamedTuple):
    """What the spec wants of one cluster's machine sets, when the caller has the spec.

    ``replicas``: {set name: desired count} for every set of the spec; ``outdated``: for one
    instance of a set, whether it was launched from settings the spec no longer has (None when
    that cannot be told, e.g. a set the spec does not have).
    """

    replicas: Dict[str, int]
    outdated: Callable[[Resource], Optional[bool]]


# --- the phase: pure functions of the facts a survey gathered ----------------------------

def cluster_phase(facts: Facts) -> Tuple[str, Optional[str]]:
    """Cluster API's phase for what a cluster owns: ``(phase, failure_message)``.

    ``facts`` is the dict ``survey`` builds (the unit tests write it by hand):
    name, managed_vpc, vpc_state (None when there is no VPC), subnets and
    security_groups (lists of roles), internet_gateway_attached (None without an
    internet gateway), other_resources (a count of owned Elastic IPs and route tables),
    nat_gateways ([{id, state, failure_message}]), load_balancer (None or {name,
    dns_name, state}) and machines ([{instance_id, name, role, state, state_reason}]).
    """
    if not _anything_exists(facts):
        return NOT_FOUND, None
    if _deleting(facts):
        return DELETING, None
    failures = failure_messages(facts)
    if failures:
        return FAILED, "; ".join(failures)
    if infrastructure_waiting_for(facts):
        return PROVISIONING, None
    return PROVISIONED, None


def _live_machines(facts: Facts) -> List[Dict[str, Any]]:
    return [m for m in facts["machines"] if m["state"] != "terminated"]


def _anything_exists(facts: Facts) -> bool:
    return bool(facts["vpc_state"] or facts["subnets"] or facts["security_groups"]
                or facts["internet_gateway_attached"] is not None or facts["nat_gateways"]
                or facts["other_resources"] or facts["load_balancer"] or _live_machines(facts))


def _deleting(facts: Facts) -> bool:
    """Something is going away and nothing is being kept up.

    An instance shutting down next to running ones is a scale-down or a rollout, not a
    delete; the cluster's delete terminates every machine at once.
    """
    if any(nat["state"] == "deleting" for nat in facts["nat_gateways"]):
        return True
    states = {m["state"] for m in _live_machines(facts)}
    return "shutting-down" in states and not states & {"pending", "running", "stopping", "stopped"}


def failure_messages(facts: Facts) -> List[str]:
    """Why the cluster cannot become ready without someone stepping in, one text each."""
    failures = []
    for nat in facts["nat_gateways"]:
        if nat["state"] == "failed":
            failures.append("NAT gateway %s failed: %s" % (nat["id"], nat["failure_message"] or "AWS gave no reason"))
    balancer = facts["load_balancer"]
    if balancer and balancer["state"] == "failed":
        failures.append("API load balancer %s failed" % balancer["name"])
    running_cp = [m["instance_id"] for m in facts["machines"] if m["role"] == naming.ROLE_CONTROL_PLANE and m["state"] == "running"]
    if running_cp and not balancer:
        failures.append("control-plane machines %s are running but the API load balancer %s does not exist"
                        % (", ".join(running_cp), naming.load_balancer_name(facts["name"])))
    for machine in facts["machines"]:
        reason = machine["state_reason"] or {}
        if machine["state"] == "terminated" and reason.get("code") != EXPECTED_TERMINATION:
            failures.append("instance %s (%s) was terminated: %s"
                            % (machine["instance_id"], machine["name"], reason.get("message") or "AWS gave no reason"))
    return failures


def network_waiting_for(facts: Facts) -> List[str]:
    """What of the cluster's network (but its NAT gateways) is missing or not ready."""
    waiting = []
    if not facts["vpc_state"]:
        waiting.append("VPC")
    elif facts["vpc_state"] != "available":
        waiting.append("VPC (%s)" % facts["vpc_state"])
    if not facts["subnets"]:
        waiting.append("subnets")
    missing_groups = [role for role in REQUIRED_SG_ROLES if role not in facts["security_groups"]]
    if missing_groups:
        waiting.append("security groups %s" % ", ".join(missing_groups))
    if facts["managed_vpc"] and not facts["internet_gateway_attached"]:
        waiting.append("internet gateway" if facts["internet_gateway_attached"] is None else "internet gateway attachment")
    return waiting


def infrastructure_waiting_for(facts: Facts) -> List[str]:
    """What keeps the cluster from Provisioned: its network and API load balancer, as CAPA's AWSCluster."""
    waiting = network_waiting_for(facts)
    for nat in facts["nat_gateways"]:
        if nat["state"] != "available":
            waiting.append("NAT gateway %s (%s)" % (nat["id"], nat["state"]))
    balancer = facts["load_balancer"]
    if not balancer:
        waiting.append("API load balancer %s" % naming.load_balancer_name(facts["name"]))
    elif not balancer["dns_name"]:
        waiting.append("DNS name of API load balancer %s" % balancer["name"])
    elif balancer["state"] not in SERVING_LB_STATES:
        # An NLB answers with its DNS name at once but forwards nothing while provisioning (minutes on AWS).
        waiting.append("API load balancer %s (%s)" % (balancer["name"], balancer["state"]))
    return waiting


# The reads that show NAT gateways, machines and load balancers change state: all a settling cluster's wait reads again.
SETTLING_READS = ("describe_nat_gateways", "describe_instances", "describe_load_balancers")


def settling(facts: Facts) -> bool:
    """Whether the cluster waits only for what AWS moves on by itself: NAT gateways pending, machines pending and
    the API load balancer provisioning. Anything missing (a VPC, subnets, groups, the balancer) is not settling."""
    balancer = facts["load_balancer"]
    return (not network_waiting_for(facts) and bool(balancer and balancer["dns_name"])
            and all(nat["state"] in ("pending", "available") for nat in facts["nat_gateways"]))


def waiting_for(facts: Facts) -> List[str]:
    """Everything not ready yet: the infrastructure, then every machine that is not running."""
    waiting = infrastructure_waiting_for(facts)
    for machine in _live_machines(facts):
        if machine["state"] != "running":
            waiting.append("machine %s (%s, %s)" % (machine["name"], machine["instance_id"], machine["state"]))
    return waiting


# --- reading the region ------------------------------------------------------------------

def owner_filters(name: Optional[str] = None) -> List[Dict[str, Any]]:
    """EC2 filters for one cluster's owned resources, or for those of any cluster."""
    if name:
        filters: List[Dict[str, Any]] = naming.owned_filters(name)
        return filters
    return [{"Name": "tag-key", "Values": [naming.OWNER_TAG_PREFIX + "*"]}]


def owners(tags: Dict[str, str]) -> List[str]:
    """Names of the clusters whose ownership tag says ``owned`` in a tag dict."""
    names = (naming.cluster_name_from_owner_tag(key) for key, value in tags.items() if value == naming.OWNED)
    return [name for name in names if name]


def group_by_owner(resources: Iterable[Resource]) -> DefaultDict[str, List[Resource]]:
    """{cluster name: [resource]} for boto3 resources carrying ``Tags`` lists."""
    groups: DefaultDict[str, List[Resource]] = collections.defaultdict(list)
    for resource in resources:
        for name in owners(_tags(resource)):
            groups[name].append(resource)
    return groups


def _instances(ec2: Any, filters: List[Dict[str, Any]]) -> List[Resource]:
    return [instance for reservation in aws_ec2.describe_instances(ec2, Filters=filters) for instance in reservation["Instances"]]


def nat_addresses(nat_gateways: Iterable[Resource]) -> List[Resource]:
    """The Elastic IPs of NAT gateways as DescribeAddresses gives them (allocation, address, association), with
    their gateway's tags: what a reader that skips DescribeAddresses knows of them."""
    return [{"AllocationId": address.get("AllocationId"), "PublicIp": address.get("PublicIp"),
             "AssociationId": address.get("AssociationId"), "Tags": nat.get("Tags") or []}
            for nat in nat_gateways for address in nat.get("NatGatewayAddresses") or [] if address.get("AllocationId")]


def read_owned(ec2: Any, name: Optional[str] = None, addresses: bool = True) -> Tuple[Owned, Dict[str, Any]]:
    """Owned resources of every EC2 type, one describe each: {type: {cluster: [resource]}}.

    Subnets and route tables are read by the VPCs found (owned VPCs and the VPCs of
    owned security groups), so that a bring-your-own VPC's subnets can be shown too;
    ``network`` holds them all, by id and by VPC. Without ``addresses`` the Elastic IPs are
    those of the NAT gateways (nat_addresses), not read on their own (an address that no
    gateway holds is then not shown).
    """
    filters = owner_filters(name)
    nat_gateways = aws_ec2.describe_nat_gateways(ec2, Filter=filters + [{"Name": "state", "Values": LIVE_NAT_STATES}])
    raw: Dict[str, List[Resource]] = {
        "vpcs": aws_ec2.describe_vpcs(ec2, Filters=filters),
        "security_groups": aws_ec2.describe_security_groups(ec2, Filters=filters),
        "internet_gateways": aws_ec2.describe_internet_gateways(ec2, Filters=filters) or [],
        "nat_gateways": nat_gateways,
        "addresses": aws_ec2.describe_addresses(ec2, Filters=filters) if addresses else nat_addresses(nat_gateways),
        "instances": _instances(ec2, filters),
    }
    vpc_ids = sorted({resource["VpcId"] for resource in raw["vpcs"] + raw["security_groups"]})
    in_vpcs = [{"Name": "vpc-id", "Values": vpc_ids}]
    raw["subnets"] = aws_ec2.describe_subnets(ec2, Filters=in_vpcs) if vpc_ids else []
    raw["route_tables"] = aws_ec2.describe_route_tables(ec2, Filters=in_vpcs) if vpc_ids else []
    route_tables: DefaultDict[str, List[Resource]] = collections.defaultdict(list)
    for table in raw["route_tables"]:
        route_tables[table["VpcId"]].append(table)
    network = {"subnets": {s["SubnetId"]: s for s in raw["subnets"]}, "route_tables": route_tables}
    return {kind: dict(group_by_owner(resources)) for kind, resources in raw.items()}, network


def _nlb_view(balancer: Resource) -> View:
    return {
        "name": balancer["LoadBalancerName"],
        "type": LB_TYPES.get(balancer.get("Type"), balancer.get("Type")),
        "dns_name": balancer.get("DNSName") or None,
        "scheme": balancer.get("Scheme"),
        "state": balancer.get("State", {}).get("Code"),
        "subnet_ids": [zone["SubnetId"] for zone in balancer.get("AvailabilityZones", []) if zone.get("SubnetId")],
    }


def _classic_view(balancer: Resource) -> View:
    return {
        "name": balancer["LoadBalancerName"],
        "type": aws_elb.CLASSIC,
        "dns_name": balancer.get("DNSName") or None,
        "scheme": balancer.get("Scheme"),
        # A classic ELB has no state: it serves from the moment it exists.
        "state": "active",
        "subnet_ids": list(balancer.get("Subnets", [])),
    }


def read_api_load_balancers(elbv2: Any, elb: Any, cluster_names: Iterable[str]) -> Dict[str, List[View]]:
    """{cluster: API load balancer view} for the clusters whose balancer exists and is theirs.

    The balancer is found by CAPA's name for it; one cluster's is asked for by name, many
    clusters' by listing the region once (a name lookup fails as a whole when one name
    is missing). Its tags then prove it is the cluster's, not a look-alike. The classic ELB API is
    asked only when a name has no NLB (an NLB cluster's status reads no classic balancer).
    """
    wanted: DefaultDict[str, List[str]] = collections.defaultdict(list)
    for name in cluster_names:
        wanted[naming.load_balancer_name(name)].append(name)
    if not wanted:
        return {}
    names = list(wanted) if len(wanted) == 1 else None
    nlbs: List[Resource] = [lb for lb in (aws_elb.describe_load_balancers(elbv2, names=names) or []) if lb["LoadBalancerName"] in wanted]
    without_nlb = set(wanted) - {lb["LoadBalancerName"] for lb in nlbs}
    classic_names = list(without_nlb) if len(without_nlb) == 1 else None
    classics: List[Resource] = ([lb for lb in aws_elb.describe_classic_balancers(elb, names=classic_names) if lb["LoadBalancerName"] in without_nlb]
                                if without_nlb else [])
    nlb_tags: Dict[str, Dict[str, str]] = aws_elb.elbv2_tags(elbv2, [lb["LoadBalancerArn"] for lb in nlbs]) if nlbs else {}
    classic_tags: Dict[str, Dict[str, str]] = (aws_elb.describe_classic_tags(elb, [lb["LoadBalancerName"] for lb in classics])
                                               if classics else {})
    candidates = [(nlb_tags.get(lb["LoadBalancerArn"], {}), _nlb_view(lb)) for lb in nlbs]
    candidates += [(classic_tags.get(lb["LoadBalancerName"], {}), _classic_view(lb)) for lb in classics]
    found: Dict[str, List[View]] = {}
    for tags, view in candidates:
        for name in wanted[view["name"]]:
            if naming.is_owned(tags, name):
                found.setdefault(name, []).append(view)
    return found


# --- one cluster's view --------------------------------------------------------------------

_tags = machines.tags_of


def _subnet_view(subnet: Resource, role: Optional[str]) -> View:
    return {
        "id": subnet["SubnetId"],
        "name": _tags(subnet).get("Name", subnet["SubnetId"]),
        "role": role,
        "availability_zone": subnet["AvailabilityZone"],
        "cidr": subnet["CidrBlock"],
    }


def _subnet_views(owned: Dict[str, List[Resource]], vpc_id: Optional[str], used_subnet_ids: Iterable[str],
                  network: Dict[str, Any]) -> List[View]:
    """Owned subnets by their role tag; in a bring-your-own VPC, the subnets the balancer and machines use.

    A used subnet without a role tag is public when its route table leads to an internet
    gateway, as CAPA decides it for subnets it does not manage.
    """
    views = [_subnet_view(s, _tags(s).get(naming.ROLE_TAG)) for s in owned["subnets"]]
    seen = {view["id"] for view in views}
    used = [network["subnets"][sid] for sid in sorted(used_subnet_ids) if sid in network["subnets"] and sid not in seen]
    public = lookup.public_subnet_ids(network["route_tables"].get(vpc_id, []), [s["SubnetId"] for s in used])
    views += [_subnet_view(s, naming.ROLE_PUBLIC if s["SubnetId"] in public else naming.ROLE_PRIVATE) for s in used]
    return sorted(views, key=lambda view: (view["role"] or "", view["availability_zone"], view["id"]))


def _nat_view(nat: Resource, network: Dict[str, Any]) -> View:
    subnet = network["subnets"].get(nat.get("SubnetId"), {})
    addresses = nat.get("NatGatewayAddresses") or [{}]
    return {
        "id": nat["NatGatewayId"],
        "availability_zone": subnet.get("AvailabilityZone"),
        "state": nat["State"],
        "public_ip": addresses[0].get("PublicIp"),
    }


def _address_view(address: Resource) -> View:
    return {
        "allocation_id": address.get("AllocationId"),
        "public_ip": address.get("PublicIp"),
        "association_id": address.get("AssociationId"),
    }


# Without ``outdated``, which takes the spec's hash: _machine_view_judged adds it when the caller has the spec.
_machine_view = machines.machine_view


def _machine_sets(views: Iterable[View], desired: Optional[Desired]) -> Dict[str, Dict[str, Any]]:
    """Per set: the machines not terminated (replicas), those running and, with the spec, the
    desired count and the machines that are up to date (not outdated); None when unknown."""
    sets: Dict[str, Dict[str, Any]] = {}

    def entry(set_name: str) -> Dict[str, Any]:
        return sets.setdefault(set_name, {"replicas": 0, "running": 0,
                                          "desired": desired.replicas.get(set_name, 0) if desired else None,
                                          "up_to_date": 0 if desired else None})

    for set_name in (desired.replicas if desired else {}):
        entry(set_name)
    for machine in views:
        if machine["set"] and machine["state"] != "terminated":
            counts = entry(machine["set"])
            counts["replicas"] += 1
            counts["running"] += machine["state"] == "running"
            if counts["up_to_date"] is not None:
                if machine["outdated"] is None:
                    counts["up_to_date"] = None
                else:
                    counts["up_to_date"] += not machine["outdated"]
    return sets


def control_plane_version(views: Iterable[View]) -> Optional[str]:
    """The lowest Kubernetes version of the live control-plane machines, as KubeadmControlPlane's
    status.version is; None without any."""
    versions = [m["kubernetes_version"] for m in views
                if m["role"] == naming.ROLE_CONTROL_PLANE and m["state"] != "terminated" and m["kubernetes_version"]]
    return min(versions, key=version_key) if versions else None


def _machine_order(instance: Resource) -> Tuple[str, str, str]:
    tags = _tags(instance)
    return (tags.get(naming.MACHINE_SET_TAG) or "", tags.get("Name") or "", instance["InstanceId"])


def _igw_attached(igw: Resource, vpc_id: Optional[str]) -> bool:
    # EC2 reports an attached internet gateway's attachment as "available".
    return any(a.get("VpcId") == vpc_id and a.get("State") in ("available", "attached") for a in igw.get("Attachments", []))


def _public_balancer_view(balancer: Optional[View]) -> Optional[View]:
    # The subnet ids only serve to find a bring-your-own VPC's subnets.
    return {key: value for key, value in balancer.items() if key != "subnet_ids"} if balancer else None


def _state_reason(instance: Resource) -> Optional[Dict[str, Any]]:
    reason = instance.get("StateReason")
    return {"code": reason.get("Code"), "message": reason.get("Message")} if reason else None


def _first(resources: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    return resources[0] if resources else None


def _cluster_vpc_id(owned: Dict[str, List[Resource]]) -> Optional[str]:
    """The owned VPC's id, else the VPC of the cluster's security groups (a bring-your-own VPC)."""
    vpc = _first(owned["vpcs"])
    if vpc:
        vpc_id: str = vpc["VpcId"]
        return vpc_id
    vpc_ids = sorted({group["VpcId"] for group in owned["security_groups"]})
    return vpc_ids[0] if vpc_ids else None


def _used_subnet_ids(instances: Iterable[Resource], balancer: Optional[View]) -> set[str]:
    used = {i["SubnetId"] for i in instances if i.get("SubnetId") and i["State"]["Name"] != "terminated"}
    return used | set(balancer["subnet_ids"] if balancer else [])


def _security_group_roles(groups: Iterable[Resource]) -> Dict[str, str]:
    return {_tags(group)[naming.ROLE_TAG]: group["GroupId"] for group in groups if naming.ROLE_TAG in _tags(group)}


def _counts(owned: Dict[str, List[Resource]], views: Sequence[View], balancers: Sequence[View]) -> Dict[str, int]:
    return {
        "vpcs": len(owned["vpcs"]),
        "subnets": len(owned["subnets"]),
        "internet_gateways": len(owned["internet_gateways"]),
        "nat_gateways": len(owned["nat_gateways"]),
        "elastic_ips": len(owned["addresses"]),
        "route_tables": len(owned["route_tables"]),
        "security_groups": len(owned["security_groups"]),
        "instances": len([m for m in views if m["state"] != "terminated"]),
        "load_balancers": len(balancers),
    }


# (kind as a message names it, id key) of each type read_owned returns.
_IDENTITIES = (("vpcs", "vpc", "VpcId"), ("subnets", "subnet", "SubnetId"), ("internet_gateways", "internet gateway", "InternetGatewayId"),
               ("nat_gateways", "NAT gateway", "NatGatewayId"), ("addresses", "Elastic IP", "AllocationId"),
               ("route_tables", "route table", "RouteTableId"), ("security_groups", "security group", "GroupId"),
               ("instances", "instance", "InstanceId"))


def ownership_conflicts(name: str, owned: Dict[str, List[Resource]]) -> List[str]:
    """Lines naming what the cluster owns that is tagged as another cluster's too (no delete touches it)."""
    resources = [(label, item[key], _tags(item)) for kind, label, key in _IDENTITIES for item in owned.get(kind, [])]
    conflicts: List[str] = naming.double_claims(resources, name)
    return conflicts


def _machine_view_judged(instance: Resource, desired: Optional[Desired]) -> View:
    """The machine view with ``outdated``, as machine_set returns it; None without the spec."""
    view = _machine_view(instance)
    view["outdated"] = desired.outdated(instance) if desired else None
    return view


def _cluster_view(name: str, region: str, owned: Dict[str, List[Resource]], balancers: Sequence[View],
                  network: Dict[str, Any], desired: Optional[Desired] = None) -> View:
    """What the module returns for one cluster; the phase is filled in from the facts."""
    vpc_id = _cluster_vpc_id(owned)
    balancer = _first(balancers)
    instances = sorted(owned["instances"], key=_machine_order)
    views = [_machine_view_judged(instance, desired) for instance in instances]
    igw = _first(owned["internet_gateways"])
    return {
        "name": name,
        "region": region,
        "phase": None,
        "failure_message": None,
        "control_plane_endpoint": {"host": balancer["dns_name"], "port": aws_elb.API_PORT} if balancer and balancer["dns_name"] else None,
        "vpc_id": vpc_id,
        "managed_vpc": bool(owned["vpcs"]),
        "subnets": _subnet_views(owned, vpc_id, _used_subnet_ids(instances, balancer), network),
        "nat_gateways": sorted((_nat_view(nat, network) for nat in owned["nat_gateways"]), key=lambda n: (n["availability_zone"] or "", n["id"])),
        "elastic_ips": sorted((_address_view(a) for a in owned["addresses"]), key=lambda a: a["allocation_id"] or ""),
        "internet_gateway_id": igw["InternetGatewayId"] if igw else None,
        "security_groups": _security_group_roles(owned["security_groups"]),
        "load_balancer": _public_balancer_view(balancer),
        "kubernetes_version": control_plane_version(views),
        "machines": views,
        "machine_sets": _machine_sets(views, desired),
        "counts": _counts(owned, views, balancers),
        "ownership_conflicts": ownership_conflicts(name, owned),
    }


def _phase_facts(view: View, owned: Dict[str, List[Resource]], balancer: Optional[View]) -> Facts:
    """The facts ``cluster_phase`` decides on, from the view and what only the raw reads hold."""
    vpc = _first(owned["vpcs"])
    igw = _first(owned["internet_gateways"])
    reasons = {instance["InstanceId"]: _state_reason(instance) for instance in owned["instances"]}
    return {
        "name": view["name"],
        "managed_vpc": view["managed_vpc"],
        # A bring-your-own VPC is used as it is; owned groups inside it prove it exists.
        "vpc_state": vpc["State"] if vpc else ("available" if view["vpc_id"] else None),
        "subnets": [subnet["role"] for subnet in view["subnets"]],
        "security_groups": sorted(view["security_groups"]),
        "internet_gateway_attached": _igw_attached(igw, view["vpc_id"]) if igw else None,
        "other_resources": view["counts"]["elastic_ips"] + view["counts"]["route_tables"],
        "nat_gateways": [{"id": nat["NatGatewayId"], "state": nat["State"], "failure_message": nat.get("FailureMessage")}
                         for nat in owned["nat_gateways"]],
        "load_balancer": balancer,
        "machines": [dict(machine, state_reason=reasons[machine["instance_id"]]) for machine in view["machines"]],
    }


def cluster_status(name: str, region: str, owned: Dict[str, List[Resource]], balancers: Optional[Sequence[View]],
                   network: Dict[str, Any], desired: Optional[Desired] = None) -> ClusterStatus:
    """The view of one cluster (what the module returns) and what it is still waiting for."""
    balancers = balancers or []
    view = _cluster_view(name, region, owned, balancers, network, desired)
    facts = _phase_facts(view, owned, _first(balancers))
    view["phase"], view["failure_message"] = cluster_phase(facts)
    # What keeps a cluster that exists from Provisioned, for its InfrastructureReady condition (describe_cluster).
    view["infrastructure_waiting_for"] = infrastructure_waiting_for(facts) if view["phase"] != NOT_FOUND else []
    return ClusterStatus(view, waiting_for(facts), settling(facts))


def survey(ec2: Any, elbv2: Any, elb: Any, region: str, name: Optional[str] = None,
           desired: Optional[Desired] = None, addresses: bool = True) -> List[ClusterStatus]:
    """The status of cluster ``name``, or of every cluster owning something in the region, by name.

    A named cluster is always reported (NotFound when it owns nothing); without a
    name, a cluster is any name found in an ownership tag with the value ``owned``.
    ``desired`` (the spec's wants) is for the named cluster only.
    """
    owned, network = read_owned(ec2, name, addresses)
    names = [name] if name else sorted({cluster for groups in owned.values() for cluster in groups})
    balancers = read_api_load_balancers(elbv2, elb, names)
    statuses = []
    for cluster in names:
        mine = {kind: groups.get(cluster, []) for kind, groups in owned.items()}
        statuses.append(cluster_status(cluster, region, mine, balancers.get(cluster), network,
                                       desired if cluster == name else None))
    return statuses


def is_ready(status: ClusterStatus) -> bool:
    """Provisioned (every NAT gateway available, the API load balancer active) and every machine running:
    what ``wait`` waits for."""
    return status.view["phase"] == PROVISIONED and not status.waiting_for


def wait_until_ready(read: Callable[[], List[ClusterStatus]], timeout: float, delay: float,
                     clock: Optional[Callable[[], float]] = None, sleep: Optional[Callable[[float], Any]] = None) -> List[ClusterStatus]:
    """Poll ``read()`` (a list of ClusterStatus) until all are ready, one failed, or time is up.

    Returns the last statuses. A Failed cluster ends the wait at once: a failed NAT
    gateway or a lost balancer does not heal by waiting. ``clock`` and ``sleep``
    default to the time module's, looked up at call time.
    """
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout
    while True:
        statuses = read()
        settled = all(is_ready(status) for status in statuses)
        failed = any(status.view["phase"] == FAILED for status in statuses)
        remaining = deadline - clock()
        if settled or failed or remaining <= 0:
            return statuses
        sleep(min(delay, remaining))
