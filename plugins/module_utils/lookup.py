# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only lookups of a cluster's network that more than one service needs.

The load balancer and the machines live in the cluster's subnets and security groups;
these functions find them the same way for every service, for the status read and for
the network's own planning: owned resources by their tags, and a bring-your-own VPC's
subnets by the ids the spec lists. One describe call per resource type. Nothing here
writes, so status and inventory can use it without importing a service that does.
"""

from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple


from . import naming
from .aws import ec2 as aws_ec2
from .aws import elb as aws_elb

Client = Any
Resource = Dict[str, Any]
Spec = Dict[str, Any]
Filters = List[Dict[str, Any]]

# A machine of its set until it is shutting down (instances.LIVE_STATES).
MACHINE_LIVE_STATES = ("pending", "running", "stopping", "stopped")
# Every state an instance still uses its subnet and security groups in.
INSTANCE_LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


# --- small views over described resources ------------------------------------------------

def tags_of(resource: Resource) -> Dict[str, str]:
    """A described resource's tags as a dict (EC2 says ``Tags``, network interfaces ``TagSet``)."""
    tags: Dict[str, str] = naming.tags_to_dict(resource.get("Tags", resource.get("TagSet")))
    return tags


def owned(resources: Optional[Iterable[Resource]], cluster: str) -> List[Resource]:
    """The resources tagged as owned by the cluster.

    The owned-tag filter of the describe is checked again here: nothing is changed on the
    word of a filter alone.
    """
    return [r for r in resources or [] if naming.is_owned(tags_of(r), cluster)]


def name_of(resource: Resource, default: str) -> str:
    """The resource's Name tag, or ``default`` when it has none."""
    return tags_of(resource).get("Name", default)


def in_vpc(vpc_id: str) -> Filters:
    """The describe filter for resources of one VPC."""
    return [{"Name": "vpc-id", "Values": [vpc_id]}]


def _subnet_view(subnet: Resource, role: str) -> Dict[str, str]:
    return {
        "id": subnet["SubnetId"],
        "name": name_of(subnet, subnet["SubnetId"]),
        "role": role,
        "availability_zone": subnet["AvailabilityZone"],
        "cidr": subnet["CidrBlock"],
        "vpc_id": subnet["VpcId"],
    }


def public_subnet_ids(route_tables: Sequence[Resource], subnet_ids: Iterable[str]) -> Set[str]:
    """Subnets whose route table (explicit, else the VPC's main one) routes 0.0.0.0/0 to an internet gateway.

    This is how CAPA tells public from private for subnets it does not manage.
    """
    main_public = False
    explicit: Dict[str, bool] = {}
    for table in route_tables:
        public = any(route.get("GatewayId", "").startswith("igw-") and route.get("DestinationCidrBlock") == "0.0.0.0/0"
                     for route in table.get("Routes", []))
        for assoc in table.get("Associations", []):
            if assoc.get("Main"):
                main_public = public
            elif assoc.get("SubnetId"):
                explicit[assoc["SubnetId"]] = public
    return {sid for sid in subnet_ids if explicit.get(sid, main_public)}


# --- the cluster's VPC ------------------------------------------------------------------------

def _first(resources: Optional[List[Resource]]) -> Optional[Resource]:
    return resources[0] if resources else None


def cluster_vpc(ec2: Client, spec: Spec) -> Optional[Resource]:
    """The cluster's VPC (owned, by its Name tag; or the spec's own vpc_id), or None."""
    network = spec["network"]
    if network["vpc_id"]:
        return _first(aws_ec2.describe_vpcs(ec2, VpcIds=[network["vpc_id"]]))
    return _first(aws_ec2.describe_vpcs(ec2, Filters=naming.owned_filters(spec["name"], Name=naming.vpc_name(spec["name"]))))


def owned_vpc(ec2: Client, cluster_name: str) -> Optional[Resource]:
    """The VPC the cluster owns (CAPA's Name tag and the owned tag, both checked), or None."""
    filters = naming.owned_filters(cluster_name, Name=naming.vpc_name(cluster_name))
    return _first(owned(aws_ec2.describe_vpcs(ec2, Filters=filters), cluster_name))


def deletion_vpc(ec2: Client, cluster_name: str) -> Tuple[Optional[Resource], bool]:
    """``(vpc, managed)``: the VPC a cluster's delete works in, found by ownership alone.

    Deleting needs no spec: the VPC is the one the cluster owns (a managed network, deleted
    with the cluster) or else the VPC its owned security groups are in (a bring-your-own VPC,
    of which only those groups go). ``(None, False)`` when neither exists.
    """
    vpc = owned_vpc(ec2, cluster_name)
    if vpc:
        return vpc, True
    groups = aws_ec2.describe_security_groups(ec2, Filters=naming.owned_filters(cluster_name))
    vpc_ids = sorted({g["VpcId"] for g in owned(groups, cluster_name)})
    if not vpc_ids:
        return None, False
    return _first(aws_ec2.describe_vpcs(ec2, VpcIds=vpc_ids[:1])), False


# --- the cluster's subnets and security groups ------------------------------------------------

def cluster_subnets(ec2: Client, spec: Spec, vpc_id: Optional[str] = None) -> List[Dict[str, str]]:
    """The cluster's subnets as dicts with id, name, role (public|private), availability_zone, cidr, vpc_id.

    Owned subnets are found by their ownership and role tags. A bring-your-own VPC's
    subnets are the spec's subnet_ids, public when their route table leads to an
    internet gateway (as CAPA decides it for unmanaged subnets).
    """
    network = spec["network"]
    if network["vpc_id"]:
        subnets = aws_ec2.describe_subnets(ec2, SubnetIds=network["subnet_ids"])
        tables = aws_ec2.describe_route_tables(ec2, Filters=in_vpc(network["vpc_id"]))
        public = public_subnet_ids(tables, [s["SubnetId"] for s in subnets])
        views = [_subnet_view(s, naming.ROLE_PUBLIC if s["SubnetId"] in public else naming.ROLE_PRIVATE) for s in subnets]
    else:
        filters: Filters = naming.owned_filters(spec["name"])
        if vpc_id:
            filters += in_vpc(vpc_id)
        views = []
        for subnet in aws_ec2.describe_subnets(ec2, Filters=filters):
            role = tags_of(subnet).get(naming.ROLE_TAG)
            if role in (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE):
                views.append(_subnet_view(subnet, role))
    return sorted(views, key=lambda s: (s["role"], s["availability_zone"], s["id"]))


def cluster_security_groups(ec2: Client, spec: Spec) -> Dict[str, str]:
    """The cluster's security groups as {sg role: group id}, found by ownership and role tags."""
    groups = {}
    for group in aws_ec2.describe_security_groups(ec2, Filters=naming.owned_filters(spec["name"])):
        role = tags_of(group).get(naming.ROLE_TAG)
        if role:
            groups[role] = group["GroupId"]
    return groups


# --- what uses a VPC: instances and load balancers -------------------------------------------

def instances(ec2: Client, filters: Filters) -> List[Resource]:
    """The instances the filters select, out of their reservations (one paginated describe)."""
    return [instance for reservation in aws_ec2.describe_instances(ec2, Filters=filters) for instance in reservation["Instances"]]


def versioned_machines(ec2: Client, cluster_name: str) -> List[Resource]:
    """The cluster's pending and running instances that carry a Kubernetes version tag (one describe).

    Every machine the collection launches but the bastion has the tag; machines launched before
    it existed do not, and are not listed.
    """
    filters: Filters = naming.owned_filters(cluster_name) + [
        {"Name": "tag-key", "Values": [naming.KUBERNETES_VERSION_TAG]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ]
    return [instance for instance in owned(instances(ec2, filters), cluster_name)
            if naming.KUBERNETES_VERSION_TAG in tags_of(instance)]


def live_machines(ec2: Client, cluster_name: str) -> List[Resource]:
    """The cluster's owned instances that count as machines of their set (pending, running, stopping,
    stopped: machine_set's live states), in one describe, whatever their tags else."""
    filters: Filters = naming.owned_filters(cluster_name) + [{"Name": "instance-state-name", "Values": list(MACHINE_LIVE_STATES)}]
    return owned(instances(ec2, filters), cluster_name)


def instances_in_vpc(ec2: Client, vpc_id: str) -> List[Resource]:
    """Every instance of the VPC that still holds an address in it, whoever's it is."""
    return instances(ec2, in_vpc(vpc_id) + [{"Name": "instance-state-name", "Values": INSTANCE_LIVE_STATES}])


def instance_label(instance: Resource) -> str:
    """How messages name an instance: its id and Name tag."""
    return "instance %s (%s)" % (instance["InstanceId"], name_of(instance, "no Name tag"))


def load_balancers_in_vpc(elb: Client, elbv2: Client, vpc_id: str) -> List[Tuple[str, str, Dict[str, str]]]:
    """Every load balancer of the VPC, of both APIs, as (label, name, tags)."""
    arns = {lb["LoadBalancerArn"]: lb["LoadBalancerName"]
            for lb in aws_elb.describe_load_balancers(elbv2) or [] if lb.get("VpcId") == vpc_id}
    v2_tags = aws_elb.elbv2_tags(elbv2, sorted(arns)) if arns else {}
    found = [("load balancer " + arns[arn], arns[arn], dict(tags)) for arn, tags in sorted(v2_tags.items())]
    names = sorted(lb["LoadBalancerName"] for lb in aws_elb.describe_classic_balancers(elb) if lb.get("VPCId") == vpc_id)
    classic_tags = aws_elb.describe_classic_tags(elb, names) if names else {}
    found += [("classic load balancer " + name, name, dict(tags)) for name, tags in sorted(classic_tags.items())]
    return found
