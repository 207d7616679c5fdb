# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster's network, as CAPA's network service builds a managed VPC.

One VPC (DNS support and hostnames on), a public and a private subnet per availability
zone with CAPA's CIDR split, an internet gateway, NAT gateways (one per zone, a single
one, or none) each with an Elastic IP, and one route table per subnet. Then the
security groups of securitygroups.py in that VPC.

With a bring-your-own VPC (``network.vpc_id`` and ``subnet_ids``) nothing network-side
is created, changed, tagged or deleted; only the cluster's security groups are.

Deletion follows CAPA's order: security groups, route tables, NAT gateways (waited for
until deleted), their Elastic IPs, the internet gateway, subnets, the VPC. It refuses
while the cluster's instances or load balancers are still in the VPC.
"""

import hashlib
import ipaddress

from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import EC2VpcRouteTableErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import allocate_address
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import associate_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import attach_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_nat_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_route
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_subnet
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import create_vpc
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_nat_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_network_interface
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_route
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_subnet
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import delete_vpc
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_addresses
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_instances
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_internet_gateways
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_nat_gateways
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_network_interfaces
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_route_tables
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_subnets
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_vpc_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import detach_internet_gateway
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import disassociate_route_table
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import modify_subnet_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import modify_vpc_attribute
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import release_address
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import replace_route
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_load_balancers
from ansible_collections.amazon.aws.plugins.module_utils.elb_utils import describe_tags as describe_elbv2_tags
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications
from ansible_collections.amazon.aws.plugins.module_utils.waiters import get_waiter

from . import lookup
from .errors import KubeclusterError
from . import naming
from . import securitygroups
from .plan import Plan
from .runner import eventually

ANY_IPV4 = "0.0.0.0/0"
VPC_REF = "vpc_id"
IGW_REF = "internet_gateway_id"
NAT_LIVE_STATES = ["pending", "available"]
NAT_WAIT_DELAY = 5  # seconds between polls, as amazon.aws's ec2_vpc_nat_gateway
INSTANCE_LIVE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
DNS_ATTRIBUTES = (("enableDnsSupport", "EnableDnsSupport", "DNS support"),
                  ("enableDnsHostnames", "EnableDnsHostnames", "DNS hostnames"))
TAG_BATCH = 20  # DescribeTags of both load-balancer APIs takes at most 20 names or ARNs


class NetworkError(KubeclusterError):
    """The network cannot be reconciled as asked; the message names the cause and the fix."""


# --- CAPA's layout of a managed VPC (pure) ------------------------------------------------

def split_cidr(cidr, count):
    """CAPA's SplitIntoSubnetsIPv4: the first ``count`` of 2^k equal blocks of ``cidr``, 2^k >= count."""
    blocks = ipaddress.ip_network(cidr).subnets(prefixlen_diff=(count - 1).bit_length())
    return [str(block) for _index, block in zip(range(count), blocks)]


def subnet_cidrs(vpc_cidr, zone_count):
    """(public CIDRs, private CIDRs), one of each per zone, as CAPA's getDefaultSubnets splits a VPC.

    The VPC is split into zones+1 blocks; the first is split again into the public subnets,
    the others are the private subnets, so the private ones (where machines live) get most
    of the addresses. 3 zones of 10.0.0.0/16: public /20s from 10.0.0.0, private /18s from 10.0.64.0.
    """
    blocks = split_cidr(vpc_cidr, zone_count + 1)
    return split_cidr(blocks[0], zone_count), blocks[1:]


def nat_zones(spec):
    """The zones that get a NAT gateway: every one (per_az), the first (single) or none."""
    zones = spec["network"]["availability_zones"]
    mode = spec["network"]["nat_gateways"]
    if mode == "per_az":
        return list(zones)
    if mode == "single":
        return list(zones[:1])
    return []


def nat_zone_for(spec, zone):
    """The zone of the NAT gateway a private subnet in ``zone`` routes through, or None."""
    zones = nat_zones(spec)
    if zone in zones:
        return zone
    return zones[0] if zones else None


def nat_client_token(cluster, zone, subnet_id):
    """CreateNatGateway's idempotency token: stable for a cluster's zone and subnet, at most 64 characters."""
    return hashlib.sha256(("%s/%s/%s" % (cluster, zone, subnet_id)).encode("utf-8")).hexdigest()[:64]


def wanted_subnets(spec):
    """The subnets CAPA makes: [{role, zone, cidr, name, tags}], public ones first, zones in spec order."""
    cluster = spec["name"]
    zones = spec["network"]["availability_zones"]
    public, private = subnet_cidrs(spec["network"]["vpc_cidr"], len(zones))
    out = []
    for role, cidrs, elb_tag in ((naming.ROLE_PUBLIC, public, naming.ELB_ROLE_TAG),
                                 (naming.ROLE_PRIVATE, private, naming.INTERNAL_ELB_ROLE_TAG)):
        for zone, cidr in zip(zones, cidrs):
            name = naming.subnet_name(cluster, role, zone)
            tags = naming.resource_tags(cluster, name, role, spec["additional_tags"], cloud_provider=True)
            tags[elb_tag] = "1"
            out.append({"role": role, "zone": zone, "cidr": cidr, "name": name, "tags": tags})
    return out


def _subnet_ref(role, zone):
    return "subnet:%s:%s" % (role, zone)


def _route_table_ref(role, zone):
    return "route_table:%s:%s" % (role, zone)


def _nat_ref(zone):
    return "nat_gateway:" + zone


def _allocation_ref(zone):
    return "allocation:" + zone


def _public_ip_ref(zone):
    return "public_ip:" + zone


def _in_vpc(vpc_id):
    return [{"Name": "vpc-id", "Values": [vpc_id]}]


def _owned(resources, cluster):
    # The owned-tag filter is also checked here: nothing is changed on the word of a filter alone.
    return [r for r in resources or [] if naming.is_owned(naming.tags_to_dict(r.get("Tags")), cluster)]


def _name_of(resource, default):
    return naming.tags_to_dict(resource.get("Tags")).get("Name", default)


def _attached_vpcs(gateway):
    return [a["VpcId"] for a in gateway.get("Attachments", []) if a.get("State") != "detached"]


def _waiter_config(timeout):
    return {"Delay": NAT_WAIT_DELAY, "MaxAttempts": max(1, timeout // NAT_WAIT_DELAY)}


@EC2VpcRouteTableErrorHandler.common_error_handler("replace route table association")
@AWSRetry.jittered_backoff()
def replace_route_table_association(ec2, association_id, route_table_id):
    """Point a subnet's association at another table (amazon.aws has no wrapper for it)."""
    ec2.replace_route_table_association(AssociationId=association_id, RouteTableId=route_table_id)
    return True


class _Ref(object):
    """In the result skeleton: an id read from plan.refs once the plan ran."""

    def __init__(self, key):
        self.key = key


def _resolve(value, refs):
    if isinstance(value, _Ref):
        return refs[value.key]
    if isinstance(value, dict):
        return dict((key, _resolve(item, refs)) for key, item in value.items())
    if isinstance(value, list):
        return [_resolve(item, refs) for item in value]
    return value


class NetworkPlan(Plan):
    """A Plan that also knows the network it leads to, for the module's ``network`` return value."""

    def __init__(self):
        super(NetworkPlan, self).__init__()
        self.skeleton = {}

    def result(self):
        """The network once the plan ran; ids check mode did not create read as plan.UNKNOWN."""
        out = _resolve(self.skeleton, self.refs)
        out["subnets"].sort(key=lambda s: (s["role"], s["availability_zone"], s["id"]))
        return out


# --- state: present, managed VPC -------------------------------------------------------------

class _ManagedHave(object):
    """What exists of the managed network: one describe per resource type, only when the VPC exists."""

    def __init__(self, ec2, spec):
        cluster = spec["name"]
        self.vpc = lookup.cluster_vpc(ec2, spec)
        self.dns = {}
        self.subnets = {}
        self.route_tables = []
        self.nat_gateways = []
        self.internet_gateway = None
        if not self.vpc:
            return
        vpc_id = self.vpc["VpcId"]
        owned_in_vpc = naming.owned_filters(cluster) + _in_vpc(vpc_id)
        for attribute, key, _label in DNS_ATTRIBUTES:
            self.dns[attribute] = describe_vpc_attribute(ec2, vpc_id, attribute)[key]["Value"]
        for subnet in _owned(describe_subnets(ec2, Filters=owned_in_vpc), cluster):
            role = naming.tags_to_dict(subnet.get("Tags")).get(naming.ROLE_TAG)
            self.subnets.setdefault((role, subnet["AvailabilityZone"]), subnet)
        # Every table of the VPC: a subnet may be associated with one that is not the cluster's.
        self.route_tables = describe_route_tables(ec2, Filters=_in_vpc(vpc_id))
        nat_filters = owned_in_vpc + [{"Name": "state", "Values": NAT_LIVE_STATES}]
        self.nat_gateways = [n for n in _owned(describe_nat_gateways(ec2, Filters=nat_filters), cluster)
                             if n["State"] in NAT_LIVE_STATES]
        igw_filters = naming.owned_filters(cluster, Name=naming.igw_name(cluster))
        self.internet_gateway = self._usable_igw(_owned(describe_internet_gateways(ec2, Filters=igw_filters), cluster), vpc_id)

    @staticmethod
    def _usable_igw(gateways, vpc_id):
        """The gateway attached to the VPC, else a detached one an interrupted run left."""
        detached = None
        for gateway in gateways:
            vpcs = _attached_vpcs(gateway)
            if vpc_id in vpcs:
                return gateway
            if not vpcs and detached is None:
                detached = gateway
        return detached


class _ManagedPresent(object):
    """Plans a managed VPC step by step in CAPA's order; every id goes to plan.refs."""

    def __init__(self, ec2, spec, plan, wait, wait_timeout):
        self.ec2 = ec2
        self.spec = spec
        self.cluster = spec["name"]
        self.plan = plan
        self.refs = plan.refs
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.subnets = wanted_subnets(spec)
        self.have = _ManagedHave(ec2, spec)
        self.vpc_label = naming.vpc_name(self.cluster)
        self.surplus_nat_gateways = []
        self.eips = None

    def tags(self, name, role, cloud_provider=False):
        return naming.resource_tags(self.cluster, name, role, self.spec["additional_tags"], cloud_provider)

    def run(self):
        self.plan_vpc()
        self.plan_subnets()
        self.plan_internet_gateway()
        self.plan_nat_gateways()
        self.plan_route_tables()
        self.plan_surplus_nat_gateways()
        self.plan.skeleton = self.skeleton()

    # VPC
    def plan_vpc(self):
        vpc = self.have.vpc
        if vpc:
            self.refs[VPC_REF] = vpc["VpcId"]
            for attribute, key, label in DNS_ATTRIBUTES:
                if not self.have.dns[attribute]:
                    self.plan.update("vpc", self.vpc_label, self._enable(key), "turn on " + label)
            return
        cidr = self.spec["network"]["vpc_cidr"]
        tags = self.tags(self.vpc_label, naming.ROLE_COMMON)

        def create():
            vpc_id = create_vpc(self.ec2, CidrBlock=cidr, TagSpecifications=boto3_tag_specifications(tags, ["vpc"]))["VpcId"]
            self.refs[VPC_REF] = vpc_id
            # A new VPC has DNS support on and DNS hostnames off; CAPA turns hostnames on.
            eventually(modify_vpc_attribute, self.ec2, vpc_id, EnableDnsHostnames={"Value": True})

        self.plan.create("vpc", self.vpc_label, create, "%s, DNS support and hostnames on" % cidr)

    def _enable(self, key):
        return lambda: modify_vpc_attribute(self.ec2, self.refs[VPC_REF], **{key: {"Value": True}})

    # Subnets
    def plan_subnets(self):
        for want in self.subnets:
            have = self.have.subnets.get((want["role"], want["zone"]))
            public = want["role"] == naming.ROLE_PUBLIC
            if not have:
                self._create_subnet(want, public)
                continue
            self.refs[_subnet_ref(want["role"], want["zone"])] = have["SubnetId"]
            want["cidr"] = have["CidrBlock"]
            if public and not have.get("MapPublicIpOnLaunch"):
                self.plan.update("subnet", want["name"], self._map_public_ip(have["SubnetId"]), "map public IPs on launch")

    def _map_public_ip(self, subnet_id):
        return lambda: eventually(modify_subnet_attribute, self.ec2, subnet_id, MapPublicIpOnLaunch={"Value": True})

    def _create_subnet(self, want, public):
        def create():
            subnet_id = eventually(create_subnet, self.ec2, VpcId=self.refs[VPC_REF], CidrBlock=want["cidr"],
                                   AvailabilityZone=want["zone"],
                                   TagSpecifications=boto3_tag_specifications(want["tags"], ["subnet"]))["SubnetId"]
            self.refs[_subnet_ref(want["role"], want["zone"])] = subnet_id
            if public:
                self._map_public_ip(subnet_id)()

        detail = "%s in %s%s" % (want["cidr"], want["zone"], ", public IPs on launch" if public else "")
        self.plan.create("subnet", want["name"], create, detail)

    # Internet gateway
    def plan_internet_gateway(self):
        name = naming.igw_name(self.cluster)
        gateway = self.have.internet_gateway
        if gateway:
            self.refs[IGW_REF] = gateway["InternetGatewayId"]
            if not _attached_vpcs(gateway):
                self.plan.update("internet-gateway", name, self._attach_igw, "attach to " + self.vpc_label)
            return
        tags = self.tags(name, naming.ROLE_COMMON)

        def create():
            self.refs[IGW_REF] = create_internet_gateway(self.ec2, tags)["InternetGatewayId"]
            self._attach_igw()

        self.plan.create("internet-gateway", name, create, "attached to " + self.vpc_label)

    def _attach_igw(self):
        eventually(attach_internet_gateway, self.ec2, self.refs[IGW_REF], self.refs[VPC_REF])

    # Elastic IPs and NAT gateways
    def plan_nat_gateways(self):
        by_subnet = dict((n["SubnetId"], n) for n in self.have.nat_gateways)
        waiting = []
        missing = []
        for zone in nat_zones(self.spec):
            subnet_id = self.refs.get(_subnet_ref(naming.ROLE_PUBLIC, zone))
            nat = by_subnet.pop(subnet_id, None) if subnet_id else None
            if nat:
                self._remember_nat(zone, nat)
                if nat["State"] == "pending":
                    waiting.append(zone)
            else:
                missing.append(zone)
        self.surplus_nat_gateways = sorted(by_subnet.values(), key=lambda n: n["NatGatewayId"])
        free = self._free_eips() if missing else []
        for zone in missing:
            self._plan_eip(zone, free.pop(0) if free else None)
            self._plan_nat(zone)
        waiting.extend(missing)
        if waiting and self.wait:
            self.plan.wait("nat-gateway", naming.nat_name(self.cluster), self._wait_available(waiting),
                           "until %d available" % len(waiting))

    def _remember_nat(self, zone, nat):
        self.refs[_nat_ref(zone)] = nat["NatGatewayId"]
        address = (nat.get("NatGatewayAddresses") or [{}])[0]
        self.refs[_allocation_ref(zone)] = address.get("AllocationId")
        self.refs[_public_ip_ref(zone)] = address.get("PublicIp")

    def owned_eips(self):
        if self.eips is None:
            self.eips = _owned(describe_addresses(self.ec2, Filters=naming.owned_filters(self.cluster)), self.cluster)
        return self.eips

    def _free_eips(self):
        """Owned NAT EIPs an earlier run allocated but did not get to use: CAPA reuses them first."""
        # A pending NAT gateway may not show as the association of its address yet.
        held = set(a.get("AllocationId") for n in self.have.nat_gateways for a in n.get("NatGatewayAddresses", []))
        common = [a for a in self.owned_eips() if not a.get("AssociationId") and a["AllocationId"] not in held
                  and naming.tags_to_dict(a.get("Tags")).get(naming.ROLE_TAG) == naming.ROLE_COMMON]
        return sorted(common, key=lambda a: a["AllocationId"])

    def _plan_eip(self, zone, eip):
        if eip:
            self.refs[_allocation_ref(zone)] = eip["AllocationId"]
            self.refs[_public_ip_ref(zone)] = eip.get("PublicIp")
            return
        name = naming.eip_name(self.cluster)
        tags = self.tags(name, naming.ROLE_COMMON)

        def allocate():
            address = allocate_address(self.ec2, Domain="vpc", TagSpecifications=boto3_tag_specifications(tags, ["elastic-ip"]))
            self.refs[_allocation_ref(zone)] = address["AllocationId"]
            self.refs[_public_ip_ref(zone)] = address["PublicIp"]

        self.plan.create("elastic-ip", name, allocate, "for the NAT gateway in " + zone)

    def _plan_nat(self, zone):
        name = naming.nat_name(self.cluster)
        tags = self.tags(name, naming.ROLE_COMMON)

        def create():
            subnet_id = self.refs[_subnet_ref(naming.ROLE_PUBLIC, zone)]
            nat = eventually(create_nat_gateway, self.ec2, SubnetId=subnet_id, AllocationId=self.refs[_allocation_ref(zone)],
                             ClientToken=nat_client_token(self.cluster, zone, subnet_id),
                             TagSpecifications=boto3_tag_specifications(tags, ["natgateway"]))
            self.refs[_nat_ref(zone)] = nat["NatGatewayId"]

        self.plan.create("nat-gateway", name, create, "in " + naming.subnet_name(self.cluster, naming.ROLE_PUBLIC, zone))

    def _wait_available(self, zones):
        def wait():
            ids = [self.refs[_nat_ref(zone)] for zone in zones]
            get_waiter(self.ec2, "nat_gateway_available").wait(NatGatewayIds=ids, WaiterConfig=_waiter_config(self.wait_timeout))
        return wait

    # Route tables
    def plan_route_tables(self):
        tables = dict((_name_of(t, t["RouteTableId"]), t) for t in _owned(self.have.route_tables, self.cluster))
        associations = {}
        for table in self.have.route_tables:
            for association in table.get("Associations", []):
                if association.get("SubnetId"):
                    associations[association["SubnetId"]] = association
        for want in self.subnets:
            name = naming.route_table_name(self.cluster, want["role"], want["zone"])
            table = tables.get(name)
            subnet_id = self.refs.get(_subnet_ref(want["role"], want["zone"]))
            current = associations.get(subnet_id) if subnet_id else None
            if table:
                self._repair_route_table(want, name, table, current)
            else:
                self._create_route_table(want, name, current)

    def _default_route(self, want):
        """(target parameter, refs key, label) of the subnet's 0.0.0.0/0 route, or None for no route."""
        if want["role"] == naming.ROLE_PUBLIC:
            return "GatewayId", IGW_REF, naming.igw_name(self.cluster)
        zone = nat_zone_for(self.spec, want["zone"])
        if zone is None:
            return None
        return "NatGatewayId", _nat_ref(zone), "%s in %s" % (naming.nat_name(self.cluster), zone)

    def _create_route_table(self, want, name, current):
        key = _route_table_ref(want["role"], want["zone"])
        target = self._default_route(want)
        tags = self.tags(name, naming.ROLE_COMMON, cloud_provider=True)

        def create():
            table_id = eventually(create_route_table, self.ec2, self.refs[VPC_REF], tags)["RouteTableId"]
            self.refs[key] = table_id
            if target:
                self._route(create_route, want, target)()
            self._associate(want, current)()

        route = "0.0.0.0/0 -> %s, " % target[2] if target else "no default route, "
        self.plan.create("route-table", name, create, route + "for " + want["name"])

    def _repair_route_table(self, want, name, table, current):
        self.refs[_route_table_ref(want["role"], want["zone"])] = table["RouteTableId"]
        target = self._default_route(want)
        route = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == ANY_IPV4), None)
        if target is None and route:
            self.plan.update("route-table", name, _call(delete_route, self.ec2, table["RouteTableId"], DestinationCidrBlock=ANY_IPV4),
                             "remove 0.0.0.0/0 (no NAT gateway)")
        elif target and route is None:
            self.plan.update("route-table", name, self._route(create_route, want, target), "add 0.0.0.0/0 -> " + target[2])
        elif target and route.get(target[0]) != self.refs[target[1]]:
            self.plan.update("route-table", name, self._route(replace_route, want, target), "point 0.0.0.0/0 at " + target[2])
        if not current or current["RouteTableId"] != table["RouteTableId"]:
            self.plan.update("route-table", name, self._associate(want, current), "associate with " + want["name"])

    def _route(self, call, want, target):
        parameter, ref, _label = target
        key = _route_table_ref(want["role"], want["zone"])
        return lambda: eventually(call, self.ec2, self.refs[key], DestinationCidrBlock=ANY_IPV4, **{parameter: self.refs[ref]})

    def _associate(self, want, current):
        """Associate the subnet with its table; take it over from another table it is associated with."""
        key = _route_table_ref(want["role"], want["zone"])
        subnet_key = _subnet_ref(want["role"], want["zone"])
        if current:
            return lambda: eventually(replace_route_table_association, self.ec2, current["RouteTableAssociationId"], self.refs[key])
        return lambda: eventually(associate_route_table, self.ec2, self.refs[key], SubnetId=self.refs[subnet_key])

    # NAT gateways the layout no longer has (e.g. per_az -> single)
    def plan_surplus_nat_gateways(self):
        if not self.surplus_nat_gateways:
            return
        name = naming.nat_name(self.cluster)
        ids = [n["NatGatewayId"] for n in self.surplus_nat_gateways]
        for nat_id in ids:
            self.plan.delete("nat-gateway", name, _call(delete_nat_gateway, self.ec2, nat_id),
                             "%s, not in the %s layout" % (nat_id, self.spec["network"]["nat_gateways"]))
        if not self.wait:
            return  # their Elastic IPs can only go once they are deleted: a later run releases them
        self.plan.wait("nat-gateway", name, _wait_deleted(self.ec2, ids, self.wait_timeout), "until %d deleted" % len(ids))
        allocations = set(a["AllocationId"] for n in self.surplus_nat_gateways for a in n.get("NatGatewayAddresses", []))
        for address in self.owned_eips():
            if address["AllocationId"] in allocations:
                self.plan.delete("elastic-ip", naming.eip_name(self.cluster), _call(release_address, self.ec2, address["AllocationId"]),
                                 address["AllocationId"])

    # The module's return value
    def skeleton(self):
        zones = list(self.spec["network"]["availability_zones"])
        subnets = [{"id": _Ref(_subnet_ref(w["role"], w["zone"])), "name": w["name"], "role": w["role"],
                    "availability_zone": w["zone"], "cidr": w["cidr"], "vpc_id": _Ref(VPC_REF)} for w in self.subnets]
        tables = [{"id": _Ref(_route_table_ref(w["role"], w["zone"])),
                   "name": naming.route_table_name(self.cluster, w["role"], w["zone"]),
                   "subnet_id": _Ref(_subnet_ref(w["role"], w["zone"]))} for w in self.subnets]
        nats = [{"id": _Ref(_nat_ref(zone)), "subnet_id": _Ref(_subnet_ref(naming.ROLE_PUBLIC, zone)),
                 "availability_zone": zone, "allocation_id": _Ref(_allocation_ref(zone)),
                 "public_ip": _Ref(_public_ip_ref(zone))} for zone in nat_zones(self.spec)]
        vpc = self.have.vpc
        return {"vpc_id": _Ref(VPC_REF), "vpc_cidr": vpc["CidrBlock"] if vpc else self.spec["network"]["vpc_cidr"],
                "managed": True, "availability_zones": zones, "subnets": subnets,
                "internet_gateway_id": _Ref(IGW_REF), "nat_gateways": nats, "route_tables": tables}


def _call(function, *args, **kwargs):
    return lambda: function(*args, **kwargs)


def _wait_deleted(ec2, nat_ids, timeout):
    return lambda: get_waiter(ec2, "nat_gateway_deleted").wait(NatGatewayIds=nat_ids, WaiterConfig=_waiter_config(timeout))


# --- state: present, bring-your-own VPC ------------------------------------------------------

def _byo_skeleton(ec2, spec, plan):
    """Check the spec's VPC and subnets exist and belong together; the network is theirs, as it is."""
    network = spec["network"]
    vpc = lookup.cluster_vpc(ec2, spec)
    if not vpc:
        raise NetworkError("cluster.network.vpc_id: %s does not exist in %s; give the id of an existing VPC"
                           % (network["vpc_id"], spec["region"]))
    subnets = lookup.cluster_subnets(ec2, spec)
    missing = sorted(set(network["subnet_ids"]) - set(s["id"] for s in subnets))
    if missing:
        raise NetworkError("cluster.network.subnet_ids: %s not found in %s; list subnets of %s"
                           % (", ".join(missing), spec["region"], vpc["VpcId"]))
    elsewhere = sorted(s["id"] for s in subnets if s["vpc_id"] != vpc["VpcId"])
    if elsewhere:
        raise NetworkError("cluster.network.subnet_ids: %s not in %s; list only subnets of that VPC"
                           % (", ".join(elsewhere), vpc["VpcId"]))
    plan.refs[VPC_REF] = vpc["VpcId"]
    return {"vpc_id": vpc["VpcId"], "vpc_cidr": vpc["CidrBlock"], "managed": False,
            "availability_zones": sorted(set(s["availability_zone"] for s in subnets)), "subnets": subnets,
            "internet_gateway_id": None, "nat_gateways": [], "route_tables": []}


def plan_present(ec2, spec, wait=True, wait_timeout=600):
    """The plan that makes the cluster's network and security groups match the spec.

    ``spec`` has its availability zones resolved to names (runner.resolve_zones) unless it
    brings its own VPC. ``wait`` adds one wait for every NAT gateway to be available.
    The returned NetworkPlan's ``result()`` is the module's ``network`` value.
    """
    plan = NetworkPlan()
    if spec["network"]["vpc_id"]:
        plan.skeleton = _byo_skeleton(ec2, spec, plan)
    else:
        _ManagedPresent(ec2, spec, plan, wait, wait_timeout).run()
    securitygroups.plan_present(ec2, spec, plan, lambda: plan.refs[VPC_REF], plan.skeleton["vpc_cidr"])
    plan.skeleton["security_groups"] = dict((role, _Ref(securitygroups.group_ref(role)))
                                            for role in securitygroups.wanted_roles(spec))
    return plan


# --- state: absent ---------------------------------------------------------------------------

def _instances_in(ec2, vpc_id):
    filters = _in_vpc(vpc_id) + [{"Name": "instance-state-name", "Values": INSTANCE_LIVE_STATES}]
    return [i for reservation in describe_instances(ec2, Filters=filters) for i in reservation["Instances"]]


def instance_label(instance):
    return "instance %s (%s)" % (instance["InstanceId"], naming.tags_to_dict(instance.get("Tags")).get("Name", "no Name tag"))


@AWSRetry.jittered_backoff()
def _classic_elb_tags(elb, names):
    return elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"]


def _batches(items):
    return [items[i:i + TAG_BATCH] for i in range(0, len(items), TAG_BATCH)]


def _load_balancers_in(elb, elbv2, vpc_id):
    """Every load balancer of the VPC, of both APIs, as (label, name, tags)."""
    found = []
    arns = dict((lb["LoadBalancerArn"], lb["LoadBalancerName"]) for lb in describe_load_balancers(elbv2) or [] if lb.get("VpcId") == vpc_id)
    for batch in _batches(sorted(arns)):
        for description in describe_elbv2_tags(elbv2, batch):
            name = arns[description["ResourceArn"]]
            found.append(("load balancer " + name, name, naming.tags_to_dict(description.get("Tags"))))
    classic = paginated_query_with_retries(elb, "describe_load_balancers")["LoadBalancerDescriptions"]
    names = sorted(lb["LoadBalancerName"] for lb in classic if lb.get("VPCId") == vpc_id)
    for batch in _batches(names):
        for description in _classic_elb_tags(elb, batch):
            name = description["LoadBalancerName"]
            found.append(("classic load balancer " + name, name, naming.tags_to_dict(description.get("Tags"))))
    return found


def _balancer_name_of_interface(interface):
    """The load balancer an ENI serves, from the description AWS gives it ("ELB net/NAME/ID", "ELB NAME")."""
    description = interface.get("Description") or ""
    if not description.startswith("ELB "):
        return None
    parts = description[4:].split("/")
    return parts[1] if len(parts) == 3 else parts[0]


class NetworkTeardown(object):
    """What deleting a cluster's network finds, by ownership alone, before anything is planned.

    The VPC is the one the cluster owns (a managed network: everything the cluster owns in it
    goes) or the one its security groups are in (a bring-your-own VPC: only the groups go).
    Besides the resources to delete it finds what would stop the delete half-way on AWS:
    ``cluster_users`` (the cluster's own machines and load balancers, which other steps delete
    first), ``foreign_users`` (anything else using the network or the cluster's groups), and
    ``double_claims`` (resources tagged as owned by another cluster too, which nothing deletes).
    """

    def __init__(self, ec2, elb, elbv2, cluster):
        self.ec2 = ec2
        self.cluster = cluster
        self.vpc, self.managed = lookup.deletion_vpc(ec2, cluster)
        self.vpc_id = self.vpc["VpcId"] if self.vpc else None
        self.groups = securitygroups.groups_in_vpc(ec2, self.vpc_id) if self.vpc_id else []
        self.route_tables, self.nat_gateways, self.subnets = [], [], []
        self.interfaces = []  # the cluster's own, left detached
        owned = naming.owned_filters(cluster)
        # Subnets and route tables are read wherever they are: one tagged as the cluster's in a VPC that
        # is not the cluster's (``strays``) is not deleted, and is named so the delete does not look done.
        self.strays = []
        for kind, items, key in (("subnet", describe_subnets(ec2, Filters=owned), "SubnetId"),
                                 ("route table", describe_route_tables(ec2, Filters=owned), "RouteTableId")):
            for item in sorted(_owned(items, cluster), key=lambda i: _name_of(i, "")):
                if self.managed and item["VpcId"] == self.vpc_id:
                    (self.subnets if kind == "subnet" else self.route_tables).append(item)
                else:
                    self.strays.append((kind, item, key))
        if self.managed:
            states = NAT_LIVE_STATES + ["deleting", "deleted"]
            nats = describe_nat_gateways(ec2, Filters=owned + _in_vpc(self.vpc_id) + [{"Name": "state", "Values": states}])
            self.nat_gateways = [n for n in _owned(nats, cluster) if n["State"] in states]
        self.addresses, self.internet_gateways = [], []
        if self.managed or not self.vpc:
            # Without any VPC these are what an interrupted delete left; a bring-your-own VPC has none.
            self.addresses = _owned(describe_addresses(ec2, Filters=naming.owned_filters(cluster)), cluster)
            gateways = _owned(describe_internet_gateways(ec2, Filters=naming.owned_filters(cluster)), cluster)
            # One attached to a VPC that is not the cluster's is not ours to take away.
            self.internet_gateways = [g for g in gateways if _attached_vpcs(g) in ([], [self.vpc_id])]
        self.cluster_instances, self.cluster_balancers, self.foreign_users = [], [], []
        if self.vpc_id:
            self._find_users(elb, elbv2)

    def _cluster_groups(self):
        return [g for g in self.groups if securitygroups.is_cluster_group(g, self.cluster)]

    def _find_users(self, elb, elbv2):
        cluster = self.cluster
        group_ids = [g["GroupId"] for g in self._cluster_groups()]
        instances = _instances_in(self.ec2, self.vpc_id)
        if self.managed:
            interfaces = describe_network_interfaces(self.ec2, Filters=_in_vpc(self.vpc_id))
        elif group_ids:
            interfaces = describe_network_interfaces(self.ec2, Filters=[{"Name": "group-id", "Values": group_ids}])
        else:
            interfaces = []
        by_instance = set(i["NetworkInterfaceId"] for i in interfaces if i.get("Attachment", {}).get("InstanceId"))
        users_of_groups = set(i.get("Attachment", {}).get("InstanceId") for i in interfaces)
        for instance in instances:
            if naming.is_claimed(naming.tags_to_dict(instance.get("Tags")), cluster):
                self.cluster_instances.append(instance)
            elif self.managed or instance["InstanceId"] in users_of_groups:
                self.foreign_users.append("%s in %s, not tagged as the cluster's; terminate it or move it out of the "
                                          "cluster's network" % (instance_label(instance), instance.get("SubnetId")))
        balancers = _load_balancers_in(elb, elbv2, self.vpc_id)
        self.cluster_balancers = [label for label, dummy, tags in balancers if naming.is_claimed(tags, cluster)]
        mine = set(name for dummy, name, tags in balancers if naming.is_claimed(tags, cluster))
        nat_interfaces = set(a.get("NetworkInterfaceId") for n in self.nat_gateways for a in n.get("NatGatewayAddresses", []))
        for interface in interfaces:
            if interface["NetworkInterfaceId"] in by_instance:
                continue  # reported with its instance
            balancer = _balancer_name_of_interface(interface)
            if balancer in mine or interface["NetworkInterfaceId"] in nat_interfaces:
                continue
            if naming.is_claimed(naming.tags_to_dict(interface.get("TagSet")), cluster):
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
    def cluster_users(self):
        """The cluster's own machines and load balancers still in its network, as message labels."""
        return [instance_label(i) for i in self.cluster_instances] + self.cluster_balancers

    def double_claims(self):
        resources = [("vpc", self.vpc_id, naming.tags_to_dict(self.vpc.get("Tags")))] if self.managed else []
        for kind, items, key in (("security group", self._cluster_groups(), "GroupId"), ("subnet", self.subnets, "SubnetId"),
                                 ("route table", self.route_tables, "RouteTableId"), ("NAT gateway", self.nat_gateways, "NatGatewayId"),
                                 ("Elastic IP", self.addresses, "AllocationId"),
                                 ("internet gateway", self.internet_gateways, "InternetGatewayId")):
            resources += [(kind, item[key], naming.tags_to_dict(item.get("Tags"))) for item in items]
        resources += [(kind, item[key], naming.tags_to_dict(item.get("Tags"))) for kind, item, key in self.strays]
        return naming.double_claims(resources, self.cluster)

    def stray_resources(self):
        """Lines naming the cluster's subnets and route tables outside a VPC it owns (not double-claimed ones)."""
        return ["%s %s (%s) is tagged as owned by cluster %s but is in %s, a VPC the cluster does not own; delete it or remove "
                "the tag %s, then rerun" % (kind, item[key], _name_of(item, "no Name tag"), self.cluster, item["VpcId"],
                                            naming.owner_tag(self.cluster))
                for kind, item, key in self.strays if not naming.other_claimants(naming.tags_to_dict(item.get("Tags")), self.cluster)]

    def plan(self, spec, wait=True, wait_timeout=600):
        """The deletes in CAPA's order; without ``wait`` it stops after starting the NAT gateway deletes."""
        plan = Plan()
        if self.vpc_id:
            securitygroups.plan_absent(self.ec2, spec, plan, self.vpc_id, self.groups)
        if not self.managed and self.vpc:
            return plan
        self._plan_route_tables(plan)
        going = [n for n in self.nat_gateways if n["State"] != "deleted"]
        for nat in going:
            if nat["State"] != "deleting":
                plan.delete("nat-gateway", _name_of(nat, nat["NatGatewayId"]), _call(delete_nat_gateway, self.ec2, nat["NatGatewayId"]),
                            nat["NatGatewayId"])
        if going and not wait:
            return plan  # the Elastic IPs, gateway, subnets and VPC can only go after them: a later run finishes
        if going:
            plan.wait("nat-gateway", naming.nat_name(self.cluster),
                      _wait_deleted(self.ec2, [n["NatGatewayId"] for n in going], wait_timeout), "until %d deleted" % len(going))
        self._plan_eips(plan)
        self._plan_internet_gateways(plan)
        if self.vpc:
            for interface in self.interfaces:
                plan.delete("network-interface", interface["NetworkInterfaceId"],
                            _call(delete_network_interface, self.ec2, interface["NetworkInterfaceId"]), "left detached")
            for subnet in self.subnets:
                plan.delete("subnet", _name_of(subnet, subnet["SubnetId"]), _call(delete_subnet, self.ec2, subnet["SubnetId"]),
                            subnet["SubnetId"])
            plan.delete("vpc", _name_of(self.vpc, self.vpc_id), _call(delete_vpc, self.ec2, self.vpc_id), self.vpc_id)
        return plan

    def _plan_route_tables(self, plan):
        for table in self.route_tables:
            associations = [a["RouteTableAssociationId"] for a in table.get("Associations", []) if not a.get("Main")]

            def delete(table_id=table["RouteTableId"], associations=associations):
                for association in associations:
                    disassociate_route_table(self.ec2, association)
                delete_route_table(self.ec2, table_id)

            detail = "%s, disassociated from %d subnet(s) first" % (table["RouteTableId"], len(associations))
            plan.delete("route-table", _name_of(table, table["RouteTableId"]), delete, detail)

    def _plan_eips(self, plan):
        """Release the owned Elastic IPs that are free or held by the NAT gateways being deleted.

        Deleted NAT gateways stay listed for a while; they count for finding the Elastic IPs
        they held, which an earlier run may have left allocated.
        """
        nat_allocations = set(a.get("AllocationId") for n in self.nat_gateways for a in n.get("NatGatewayAddresses", []))
        for address in self.addresses:
            if not address.get("AssociationId") or address["AllocationId"] in nat_allocations:
                plan.delete("elastic-ip", _name_of(address, address["AllocationId"]), _call(release_address, self.ec2, address["AllocationId"]),
                            "%s (%s)" % (address["AllocationId"], address.get("PublicIp")))

    def _plan_internet_gateways(self, plan):
        for gateway in self.internet_gateways:
            attached = _attached_vpcs(gateway)

            def delete(gateway_id=gateway["InternetGatewayId"], attached=attached):
                for vpc in attached:
                    detach_internet_gateway(self.ec2, gateway_id, vpc)
                delete_internet_gateway(self.ec2, gateway_id)

            detail = gateway["InternetGatewayId"] + (", detached first" if attached else "")
            plan.delete("internet-gateway", _name_of(gateway, gateway["InternetGatewayId"]), delete, detail)


def refusal(teardown, machines_gone=True):
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


def plan_absent(ec2, elb, elbv2, spec, wait=True, wait_timeout=600):
    """The plan that deletes the cluster's network in CAPA's order (only its security groups in a VPC it does not own).

    Only ``spec["name"]`` is read: what goes is found by ownership. Raises NetworkError,
    before anything is planned, while the cluster's instances or load balancers are still in
    the VPC, while anything not the cluster's uses its network or groups, or when a resource
    is tagged as owned by another cluster too. Without ``wait`` it stops after starting the
    NAT gateway deletes: their Elastic IPs, the gateway, subnets and VPC can only go after
    them, so a later run finishes the job.
    """
    teardown = NetworkTeardown(ec2, elb, elbv2, spec["name"])
    problem = refusal(teardown)
    if problem:
        raise NetworkError(problem)
    return teardown.plan(spec, wait, wait_timeout)
