# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only lookups of a cluster's network that more than one service needs.

The load balancer and the machines live in the cluster's subnets and security groups;
these functions find them the same way for every service: owned resources by their
tags, and a bring-your-own VPC's subnets by the ids the spec lists. One describe call
per resource type.
"""

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_route_tables
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_security_groups
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_subnets
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_vpcs

from . import naming


def _subnet_view(subnet, role):
    return {
        "id": subnet["SubnetId"],
        "name": naming.tags_to_dict(subnet.get("Tags")).get("Name", subnet["SubnetId"]),
        "role": role,
        "availability_zone": subnet["AvailabilityZone"],
        "cidr": subnet["CidrBlock"],
        "vpc_id": subnet["VpcId"],
    }


def _public_subnet_ids(route_tables, subnet_ids):
    """Subnets whose route table (explicit, else the VPC's main one) routes 0.0.0.0/0 to an internet gateway."""
    main_public = False
    explicit = {}
    for table in route_tables:
        public = any(route.get("GatewayId", "").startswith("igw-") and route.get("DestinationCidrBlock") == "0.0.0.0/0"
                     for route in table.get("Routes", []))
        for assoc in table.get("Associations", []):
            if assoc.get("Main"):
                main_public = public
            elif assoc.get("SubnetId"):
                explicit[assoc["SubnetId"]] = public
    return set(sid for sid in subnet_ids if explicit.get(sid, main_public))


def cluster_vpc(ec2, spec):
    """The cluster's VPC (owned, by its Name tag; or the spec's own vpc_id), or None."""
    network = spec["network"]
    if network["vpc_id"]:
        vpcs = describe_vpcs(ec2, VpcIds=[network["vpc_id"]])
    else:
        vpcs = describe_vpcs(ec2, Filters=naming.owned_filters(spec["name"], Name=naming.vpc_name(spec["name"])))
    return vpcs[0] if vpcs else None


def owned_vpc(ec2, cluster_name):
    """The VPC the cluster owns (CAPA's Name tag and the owned tag, both checked), or None."""
    filters = naming.owned_filters(cluster_name, Name=naming.vpc_name(cluster_name))
    vpcs = [v for v in describe_vpcs(ec2, Filters=filters) if naming.is_owned(naming.tags_to_dict(v.get("Tags")), cluster_name)]
    return vpcs[0] if vpcs else None


def deletion_vpc(ec2, cluster_name):
    """``(vpc, managed)``: the VPC a cluster's delete works in, found by ownership alone.

    Deleting needs no spec: the VPC is the one the cluster owns (a managed network, deleted
    with the cluster) or else the VPC its owned security groups are in (a bring-your-own VPC,
    of which only those groups go). ``(None, False)`` when neither exists.
    """
    vpc = owned_vpc(ec2, cluster_name)
    if vpc:
        return vpc, True
    groups = describe_security_groups(ec2, Filters=naming.owned_filters(cluster_name))
    vpc_ids = sorted(set(g["VpcId"] for g in groups if naming.is_owned(naming.tags_to_dict(g.get("Tags")), cluster_name)))
    if not vpc_ids:
        return None, False
    vpcs = describe_vpcs(ec2, VpcIds=vpc_ids[:1])
    return (vpcs[0] if vpcs else None), False


def cluster_subnets(ec2, spec, vpc_id=None):
    """The cluster's subnets as dicts with id, name, role (public|private), availability_zone, cidr, vpc_id.

    Owned subnets are found by their ownership and role tags. A bring-your-own VPC's
    subnets are the spec's subnet_ids, public when their route table leads to an
    internet gateway (as CAPA decides it for unmanaged subnets).
    """
    network = spec["network"]
    if network["vpc_id"]:
        subnets = describe_subnets(ec2, SubnetIds=network["subnet_ids"])
        tables = describe_route_tables(ec2, Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]}])
        public = _public_subnet_ids(tables, [s["SubnetId"] for s in subnets])
        views = [_subnet_view(s, naming.ROLE_PUBLIC if s["SubnetId"] in public else naming.ROLE_PRIVATE) for s in subnets]
    else:
        filters = naming.owned_filters(spec["name"])
        if vpc_id:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        views = []
        for subnet in describe_subnets(ec2, Filters=filters):
            role = naming.tags_to_dict(subnet.get("Tags")).get(naming.ROLE_TAG)
            if role in (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE):
                views.append(_subnet_view(subnet, role))
    return sorted(views, key=lambda s: (s["role"], s["availability_zone"], s["id"]))


def cluster_security_groups(ec2, spec):
    """The cluster's security groups as {sg role: group id}, found by ownership and role tags."""
    groups = {}
    for group in describe_security_groups(ec2, Filters=naming.owned_filters(spec["name"])):
        role = naming.tags_to_dict(group.get("Tags")).get(naming.ROLE_TAG)
        if role:
            groups[role] = group["GroupId"]
    return groups
