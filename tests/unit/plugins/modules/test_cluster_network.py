"""cluster_network: the module end to end against moto in process.

Every test reads AWS back with its own boto3 client; the module's return value is checked
against what AWS holds, not against itself.
"""

import copy

import boto3
import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import naming

from helpers.aws import CCM, CLUSTER, KUBERNETES_VERSION, OWNER, REGION, ZONES
from helpers.module_runner import run_module

SPEC = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION, "additional_tags": {"team": "infra"}}
UNKNOWN = "(known after apply)"


def spec_with(**network):
    spec = copy.deepcopy(SPEC)
    spec["network"] = network
    return spec


def run(spec=None, check=False, diff=False, **options):
    return run_module("cluster_network", dict(options, cluster=spec or SPEC), check_mode=check, diff=diff)


def apply(spec=None, **options):
    result, failed = run(spec, **options)
    assert not failed, result.get("msg")
    return result


def tags(resource):
    return naming.tags_to_dict(resource.get("Tags"))


def owned(resources):
    return [r for r in resources if tags(r).get(OWNER) == "owned"]


def owned_inventory(ec2):
    """Ids of everything the cluster owns, by type (NAT gateways only while not deleted)."""
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"]
    return {
        "vpc": sorted(v["VpcId"] for v in owned(ec2.describe_vpcs()["Vpcs"])),
        "subnet": sorted(s["SubnetId"] for s in owned(ec2.describe_subnets()["Subnets"])),
        "internet-gateway": sorted(g["InternetGatewayId"] for g in owned(ec2.describe_internet_gateways()["InternetGateways"])),
        "elastic-ip": sorted(a["AllocationId"] for a in owned(ec2.describe_addresses()["Addresses"])),
        "nat-gateway": sorted(n["NatGatewayId"] for n in owned(nats)),
        "route-table": sorted(t["RouteTableId"] for t in owned(ec2.describe_route_tables()["RouteTables"])),
        "security-group": sorted(g["GroupId"] for g in owned(ec2.describe_security_groups()["SecurityGroups"])),
    }


def by_name(resources):
    return dict((tags(r)["Name"], r) for r in resources)


def default_route(table):
    return next((r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)


def ingress(ec2, group_id, names):
    """A group's ingress as {(protocol, from, to, source name or CIDR, description)}."""
    described = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    out = set()
    for perm in described["IpPermissions"]:
        ports = (perm.get("FromPort"), perm.get("ToPort")) if perm["IpProtocol"] == "tcp" else ()
        for entry in perm["IpRanges"]:
            out.add((perm["IpProtocol"],) + ports + (entry["CidrIp"], entry.get("Description")))
        for entry in perm["UserIdGroupPairs"]:
            out.add((perm["IpProtocol"],) + ports + (names[entry["GroupId"]], entry.get("Description")))
    return out


def common_tags(name, role, cloud_provider=False):
    return naming.resource_tags(CLUSTER, name, role, SPEC["additional_tags"], cloud_provider)


# --- create ------------------------------------------------------------------------------

def test_default_spec_builds_capas_network_per_az(ec2):
    result = apply()
    net = result["network"]
    assert result["changed"] is True and result["plan"]

    (vpc,) = owned(ec2.describe_vpcs()["Vpcs"])
    assert net["vpc_id"] == vpc["VpcId"] and net["vpc_cidr"] == vpc["CidrBlock"] == "10.0.0.0/16" and net["managed"] is True
    assert tags(vpc) == common_tags("capi-example-vpc", "common")
    for attribute, key in (("enableDnsHostnames", "EnableDnsHostnames"), ("enableDnsSupport", "EnableDnsSupport")):
        assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"] is True
    assert net["availability_zones"] == ZONES

    subnets = by_name(owned(ec2.describe_subnets()["Subnets"]))
    cidrs = {"public": ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"], "private": ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]}
    for role, elb_tag in (("public", "kubernetes.io/role/elb"), ("private", "kubernetes.io/role/internal-elb")):
        for zone, block in zip(ZONES, cidrs[role]):
            name = "capi-example-subnet-%s-%s" % (role, zone)
            subnet = subnets.pop(name)
            assert (subnet["CidrBlock"], subnet["AvailabilityZone"], subnet["VpcId"]) == (block, zone, vpc["VpcId"])
            assert subnet["MapPublicIpOnLaunch"] is (role == "public")
            assert tags(subnet) == dict(common_tags(name, role, cloud_provider=True), **{elb_tag: "1"})
            assert {"id": subnet["SubnetId"], "name": name, "role": role, "availability_zone": zone, "cidr": block,
                    "vpc_id": vpc["VpcId"]} in net["subnets"]
    assert subnets == {}
    assert [(s["role"], s["availability_zone"]) for s in net["subnets"]] == [("private", z) for z in ZONES] + [("public", z) for z in ZONES]
    subnet_ids = dict((s["name"], s["id"]) for s in net["subnets"])

    (igw,) = owned(ec2.describe_internet_gateways()["InternetGateways"])
    assert igw["Attachments"] == [{"State": "available", "VpcId": vpc["VpcId"]}]
    assert tags(igw) == common_tags("capi-example-igw", "common")
    assert net["internet_gateway_id"] == igw["InternetGatewayId"]

    eips = dict((a["AllocationId"], a) for a in owned(ec2.describe_addresses()["Addresses"]))
    assert len(eips) == 3
    for address in eips.values():
        assert address["Domain"] == "vpc" and tags(address) == common_tags("capi-example-eip-common", "common")

    nats = dict((n["NatGatewayId"], n) for n in owned(ec2.describe_nat_gateways()["NatGateways"]))
    assert [n["availability_zone"] for n in net["nat_gateways"]] == ZONES
    for returned in net["nat_gateways"]:
        nat = nats.pop(returned["id"])
        assert nat["SubnetId"] == returned["subnet_id"] == subnet_ids["capi-example-subnet-public-" + returned["availability_zone"]]
        assert nat["NatGatewayAddresses"][0]["AllocationId"] == returned["allocation_id"]
        assert returned["allocation_id"] in eips
        assert returned["public_ip"] == eips[returned["allocation_id"]]["PublicIp"]
        assert tags(nat) == common_tags("capi-example-nat", "common")
    assert nats == {}
    nat_in = dict((n["availability_zone"], n["id"]) for n in net["nat_gateways"])

    tables = by_name(owned(ec2.describe_route_tables()["RouteTables"]))
    assert len(tables) == 6 and len(net["route_tables"]) == 6
    for returned in net["route_tables"]:
        table = tables[returned["name"]]
        role, zone = returned["name"][len("capi-example-rt-"):].split("-", 1)
        assert tags(table) == common_tags(returned["name"], "common", cloud_provider=True)
        assert table["RouteTableId"] == returned["id"]
        assert [a["SubnetId"] for a in table["Associations"]] == [returned["subnet_id"]]
        assert returned["subnet_id"] == subnet_ids["capi-example-subnet-%s-%s" % (role, zone)]
        route = default_route(table)
        if role == "public":
            assert route["GatewayId"] == igw["InternetGatewayId"]
        else:
            assert route["NatGatewayId"] == nat_in[zone]

    groups = net["security_groups"]
    assert sorted(groups) == ["apiserver-lb", "bastion", "controlplane", "lb", "node"]
    names = dict((group_id, role) for role, group_id in groups.items())
    for role, group_id in groups.items():
        described = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        assert described["VpcId"] == vpc["VpcId"] and described["GroupName"] == "capi-example-" + role
        assert tags(described) == common_tags("capi-example-" + role, role, cloud_provider=role == "lb")
    cni = {("tcp", 179, 179, "controlplane", "bgp (calico)"), ("tcp", 179, 179, "node", "bgp (calico)"),
           ("4", "controlplane", "IP-in-IP (calico)"), ("4", "node", "IP-in-IP (calico)")}
    assert ingress(ec2, groups["controlplane"], names) == cni | {
        ("tcp", 6443, 6443, "apiserver-lb", "Kubernetes API"), ("tcp", 6443, 6443, "controlplane", "Kubernetes API"),
        ("tcp", 6443, 6443, "node", "Kubernetes API"), ("tcp", 2379, 2379, "controlplane", "etcd"),
        ("tcp", 2380, 2380, "controlplane", "etcd peer"), ("tcp", 22, 22, "bastion", "SSH")}
    assert ingress(ec2, groups["node"], names) == cni | {
        ("tcp", 30000, 32767, "0.0.0.0/0", "Node Port Services"), ("tcp", 10250, 10250, "controlplane", "Kubelet API"),
        ("tcp", 10250, 10250, "node", "Kubelet API"), ("tcp", 22, 22, "bastion", "SSH")}
    assert ingress(ec2, groups["apiserver-lb"], names) == {("tcp", 6443, 6443, "0.0.0.0/0", "Kubernetes API")}
    assert ingress(ec2, groups["lb"], names) == {("tcp", 6443, 6443, "10.0.0.0/16", "Allow NLB traffic to the control plane instances.")}
    assert ingress(ec2, groups["bastion"], names) == {("tcp", 22, 22, "0.0.0.0/0", "SSH")}


def test_single_nat_serves_every_private_subnet_from_the_first_zone(ec2):
    net = apply(spec_with(nat_gateways="single"))["network"]
    (nat,) = net["nat_gateways"]
    public_a = next(s["id"] for s in net["subnets"] if s["name"] == "capi-example-subnet-public-ap-northeast-2a")
    assert (nat["availability_zone"], nat["subnet_id"]) == ("ap-northeast-2a", public_a)
    tables = by_name(owned(ec2.describe_route_tables()["RouteTables"]))
    assert [default_route(tables["capi-example-rt-private-" + z])["NatGatewayId"] for z in ZONES] == [nat["id"]] * 3
    assert len(owned(ec2.describe_addresses()["Addresses"])) == 1
    assert len(owned(ec2.describe_nat_gateways()["NatGateways"])) == 1


def test_no_nat_means_no_eip_and_no_private_default_route(ec2, aws_calls):
    net = apply(spec_with(nat_gateways="none"))["network"]
    assert not [c for c in aws_calls if c[1] in ("AllocateAddress", "CreateNatGateway", "DescribeAddresses")]
    assert net["nat_gateways"] == []
    assert owned(ec2.describe_addresses()["Addresses"]) == [] and owned(ec2.describe_nat_gateways()["NatGateways"]) == []
    tables = by_name(owned(ec2.describe_route_tables()["RouteTables"]))
    for zone in ZONES:
        assert default_route(tables["capi-example-rt-private-" + zone]) is None
        assert default_route(tables["capi-example-rt-public-" + zone])["GatewayId"] == net["internet_gateway_id"]


def test_zone_count_is_resolved_with_one_read_and_split_as_capa(ec2, aws_calls):
    net = apply(spec_with(availability_zones=2))["network"]
    assert aws_calls.count(("ec2", "DescribeAvailabilityZones")) == 1
    assert net["availability_zones"] == ZONES[:2]
    assert sorted((s["role"], s["cidr"]) for s in net["subnets"]) == [
        ("private", "10.0.128.0/18"), ("private", "10.0.64.0/18"), ("public", "10.0.0.0/19"), ("public", "10.0.32.0/19")]


def test_wait_false_starts_nat_gateways_without_waiting(ec2, aws_calls):
    result = apply(wait=False)
    assert not [a for a in result["plan"] if a["action"] == "wait"]
    assert not [c for c in aws_calls if c[1] == "DescribeNatGateways"]


# --- rerun, check mode, diff -----------------------------------------------------------------

def test_rerun_changes_nothing_makes_no_write_and_returns_the_same_network(ec2, aws_calls):
    first = apply()
    del aws_calls[:]
    second = apply()
    assert second["changed"] is False and second["plan"] == []
    assert aws_calls.writes() == []
    # One read per resource type (plus the zones and the two VPC attributes).
    assert len(aws_calls) == len(set(aws_calls)) + 1
    assert second["network"] == first["network"]


def test_check_mode_on_an_empty_account_plans_everything_and_creates_nothing(ec2, aws_calls):
    result, failed = run(check=True)
    assert not failed and result["changed"] is True
    assert aws_calls.writes() == []
    assert owned_inventory(ec2) == dict((kind, []) for kind in owned_inventory(ec2))
    planned = [(a["action"], a["resource"]) for a in result["plan"]]
    assert planned.count(("create", "vpc")) == 1 and planned.count(("create", "subnet")) == 6
    assert planned.count(("create", "internet-gateway")) == 1 and planned.count(("create", "elastic-ip")) == 3
    assert planned.count(("create", "nat-gateway")) == 3 and planned.count(("wait", "nat-gateway")) == 1
    assert planned.count(("create", "route-table")) == 6
    assert planned.count(("create", "security-group")) == 5 and planned.count(("update", "security-group")) == 5
    net = result["network"]
    assert net["vpc_id"] == UNKNOWN and net["internet_gateway_id"] == UNKNOWN
    assert set(s["id"] for s in net["subnets"]) == {UNKNOWN} and set(net["security_groups"].values()) == {UNKNOWN}
    assert [s["cidr"] for s in net["subnets"] if s["role"] == "public"] == ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]


def test_check_mode_after_create_plans_nothing(ec2, aws_calls):
    created = apply()
    del aws_calls[:]
    result, failed = run(check=True, diff=True)
    assert not failed and result["changed"] is False and result["plan"] == []
    assert aws_calls.writes() == []
    assert result["network"] == created["network"]
    assert result["diff"]["prepared"].endswith("No changes: the AWS resources match the spec.\n")


def test_diff_shows_the_plan_line_by_line(ec2):
    result, failed = run(check=True, diff=True)
    assert not failed
    lines = result["diff"]["prepared"].splitlines()
    assert lines[0] == "kubecluster.aws.cluster_network capi-example (state=present)"
    assert lines[1] == "+ vpc capi-example-vpc (10.0.0.0/16, DNS support and hostnames on)"
    assert "+ subnet capi-example-subnet-public-ap-northeast-2a (10.0.0.0/20 in ap-northeast-2a, public IPs on launch)" in lines
    assert "+ nat-gateway capi-example-nat (in capi-example-subnet-public-ap-northeast-2b)" in lines
    assert ". nat-gateway capi-example-nat (until 3 available)" in lines
    assert ("+ route-table capi-example-rt-private-ap-northeast-2c (0.0.0.0/0 -> capi-example-nat in ap-northeast-2c, "
            "for capi-example-subnet-private-ap-northeast-2c)") in lines
    assert "~ security-group capi-example-bastion (authorize tcp 22 from 0.0.0.0/0)" in lines
    assert len(lines) == 1 + len(result["plan"])


def test_no_diff_key_without_diff_mode(ec2):
    result, failed = run(check=True)
    assert not failed and "diff" not in result


# --- drift ---------------------------------------------------------------------------------

def test_drift_is_repaired_and_rules_on_lb_are_left_to_the_ccm(ec2, aws_calls):
    net = apply()["network"]
    groups = net["security_groups"]
    tables = dict((t["name"], t["id"]) for t in net["route_tables"])
    ec2.delete_route(RouteTableId=tables["capi-example-rt-private-ap-northeast-2b"], DestinationCidrBlock="0.0.0.0/0")
    ec2.replace_route(RouteTableId=tables["capi-example-rt-public-ap-northeast-2a"], DestinationCidrBlock="0.0.0.0/0",
                      NatGatewayId=net["nat_gateways"][0]["id"])
    ec2.revoke_security_group_ingress(GroupId=groups["node"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250,
        "UserIdGroupPairs": [{"GroupId": groups["controlplane"], "Description": "Kubelet API"}]}])
    extra = {"IpProtocol": "tcp", "FromPort": 31000, "ToPort": 31000, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}
    ec2.authorize_security_group_ingress(GroupId=groups["node"], IpPermissions=[extra])
    ec2.authorize_security_group_ingress(GroupId=groups["lb"], IpPermissions=[extra])
    del aws_calls[:]

    result, failed = run(diff=True)
    assert not failed and result["changed"] is True
    assert result["diff"]["prepared"].splitlines()[1:] == [
        "~ route-table capi-example-rt-public-ap-northeast-2a (point 0.0.0.0/0 at capi-example-igw)",
        "~ route-table capi-example-rt-private-ap-northeast-2b (add 0.0.0.0/0 -> capi-example-nat in ap-northeast-2b)",
        "~ security-group capi-example-node (revoke tcp 31000 from 192.0.2.0/24)",
        "~ security-group capi-example-node (authorize tcp 10250 from capi-example-controlplane)",
    ]
    writes = sorted(c[1] for c in aws_calls.writes())
    assert writes == ["AuthorizeSecurityGroupIngress", "CreateRoute", "ReplaceRoute", "RevokeSecurityGroupIngress"]
    by_id = dict((t["RouteTableId"], t) for t in ec2.describe_route_tables()["RouteTables"])
    assert default_route(by_id[tables["capi-example-rt-private-ap-northeast-2b"]])["NatGatewayId"] == net["nat_gateways"][1]["id"]
    assert default_route(by_id[tables["capi-example-rt-public-ap-northeast-2a"]])["GatewayId"] == net["internet_gateway_id"]
    names = dict((group_id, role) for role, group_id in groups.items())
    assert ("tcp", 10250, 10250, "controlplane", "Kubelet API") in ingress(ec2, groups["node"], names)
    assert ("tcp", 31000, 31000, "192.0.2.0/24", None) not in ingress(ec2, groups["node"], names)
    assert ("tcp", 31000, 31000, "192.0.2.0/24", None) in ingress(ec2, groups["lb"], names)
    assert apply()["changed"] is False


def test_a_public_subnet_that_stopped_mapping_public_ips_is_fixed(ec2):
    net = apply()["network"]
    subnet = next(s for s in net["subnets"] if s["name"] == "capi-example-subnet-public-ap-northeast-2c")
    ec2.modify_subnet_attribute(SubnetId=subnet["id"], MapPublicIpOnLaunch={"Value": False})
    result = apply()
    assert [(a["action"], a["name"], a["detail"]) for a in result["plan"]] == [
        ("update", "capi-example-subnet-public-ap-northeast-2c", "map public IPs on launch")]
    assert ec2.describe_subnets(SubnetIds=[subnet["id"]])["Subnets"][0]["MapPublicIpOnLaunch"] is True


# --- bring your own VPC ---------------------------------------------------------------------------

@pytest.fixture
def byo(ec2):
    """Someone else's VPC: a public subnet (routed to an IGW) and a private one, none of it tagged."""
    vpc = ec2.create_vpc(CidrBlock="172.16.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="172.16.0.0/24", AvailabilityZone=ZONES[0])["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="172.16.1.0/24", AvailabilityZone=ZONES[1])["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    return {"vpc": vpc, "igw": igw, "public": public, "private": private, "table": table}


def network_state(ec2, vpc):
    """Everything network-side of a VPC, tags included, to prove it was not touched."""
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
    return {
        "vpc": ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=in_vpc)["Subnets"],
        "tables": ec2.describe_route_tables(Filters=in_vpc)["RouteTables"],
        "igws": ec2.describe_internet_gateways()["InternetGateways"],
        "nats": ec2.describe_nat_gateways()["NatGateways"],
        "eips": ec2.describe_addresses()["Addresses"],
    }


def test_byo_vpc_gets_only_security_groups_and_loses_only_them(ec2, byo, aws_calls):
    spec = spec_with(vpc_id=byo["vpc"], subnet_ids=[byo["public"], byo["private"]])
    before = network_state(ec2, byo["vpc"])
    del aws_calls[:]

    net = apply(spec)["network"]
    assert set(c[1] for c in aws_calls.writes()) == {"CreateSecurityGroup", "AuthorizeSecurityGroupIngress"}
    assert ("ec2", "DescribeAvailabilityZones") not in aws_calls
    assert network_state(ec2, byo["vpc"]) == before
    assert net["managed"] is False and net["vpc_id"] == byo["vpc"] and net["vpc_cidr"] == "172.16.0.0/16"
    assert net["nat_gateways"] == [] and net["route_tables"] == [] and net["internet_gateway_id"] is None
    assert [(s["id"], s["role"]) for s in net["subnets"]] == [(byo["private"], "private"), (byo["public"], "public")]
    assert net["availability_zones"] == ZONES[:2]
    names = dict((group_id, role) for role, group_id in net["security_groups"].items())
    assert ingress(ec2, net["security_groups"]["lb"], names) == {
        ("tcp", 6443, 6443, "172.16.0.0/16", "Allow NLB traffic to the control plane instances.")}

    del aws_calls[:]
    assert apply(spec)["changed"] is False and aws_calls.writes() == []

    result = apply(spec, state="absent")
    assert set(c[1] for c in aws_calls.writes()) == {"RevokeSecurityGroupIngress", "DeleteSecurityGroup"}
    assert set(a["resource"] for a in result["plan"]) == {"security-group"}
    assert network_state(ec2, byo["vpc"]) == before
    assert owned_inventory(ec2)["security-group"] == []


def test_byo_subnet_that_does_not_exist_fails_naming_it(ec2, byo):
    missing = "subnet-0123456789abcdef0"
    result, failed = run(spec_with(vpc_id=byo["vpc"], subnet_ids=[byo["public"], missing]))
    assert failed and result["msg"].startswith("cluster.network.subnet_ids: ")
    assert missing in result["msg"]


# --- absent --------------------------------------------------------------------------------

def test_absent_deletes_everything_nat_gateways_first_then_in_capas_order_and_releases_every_eip(ec2, aws_calls):
    apply()
    checked, failed = run(state="absent", check=True, diff=True)
    assert not failed and checked["changed"] is True
    assert len(owned_inventory(ec2)["elastic-ip"]) == 3
    kinds = []
    for action in checked["plan"]:
        if not kinds or kinds[-1] != action["resource"]:
            kinds.append(action["resource"])
    # The NAT gateways' deletes start first (minutes on AWS, nothing waits on them); then CAPA's order, in which their
    # wait comes before their Elastic IPs are released.
    assert kinds == ["nat-gateway", "security-group", "route-table", "nat-gateway", "elastic-ip", "internet-gateway", "subnet", "vpc"]
    assert [a["action"] for a in checked["plan"] if a["resource"] == "nat-gateway"] == ["delete"] * 3 + ["wait"]
    security_group_verbs = [a["action"] for a in checked["plan"] if a["resource"] == "security-group"]
    assert security_group_verbs == ["update"] * 5 + ["delete"] * 5

    del aws_calls[:]
    result = apply(state="absent")
    assert result["changed"] is True and "network" not in result
    assert owned_inventory(ec2) == dict((kind, []) for kind in owned_inventory(ec2))
    assert ec2.describe_addresses()["Addresses"] == []
    writes = [c[1] for c in aws_calls.writes()]
    assert writes.index("DeleteNatGateway") < writes.index("ReleaseAddress") < writes.index("DeleteInternetGateway")
    assert writes[-1] == "DeleteVpc"

    del aws_calls[:]
    again = apply(state="absent")
    assert again["changed"] is False and again["plan"] == [] and aws_calls.writes() == []


def test_absent_refuses_while_an_owned_instance_is_in_the_vpc(ec2, aws_calls):
    net = apply()["network"]
    subnet = next(s["id"] for s in net["subnets"] if s["role"] == "private")
    instance = ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1, SubnetId=subnet, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": OWNER, "Value": "owned"}, {"Key": "Name", "Value": "capi-example-md-0-abcde"}]}
    ])["Instances"][0]["InstanceId"]
    before = owned_inventory(ec2)
    del aws_calls[:]
    for check in (True, False):
        result, failed = run(state="absent", check=check)
        assert failed
        assert "instance %s (capi-example-md-0-abcde)" % instance in result["msg"]
        assert "Delete the machines first" in result["msg"]
    assert aws_calls.writes() == []
    assert owned_inventory(ec2) == before


def test_absent_refuses_while_a_ccm_load_balancer_is_in_the_vpc(ec2):
    net = apply()["network"]
    elbv2 = boto3.client("elbv2", region_name=REGION)
    public = [s["id"] for s in net["subnets"] if s["role"] == "public"]
    elbv2.create_load_balancer(Name="a1b2c3-service", Subnets=public, Type="network", Scheme="internet-facing",
                               Tags=[{"Key": CCM, "Value": "owned"}])
    result, failed = run(state="absent")
    assert failed and "load balancer a1b2c3-service" in result["msg"]
    assert owned_inventory(ec2)["vpc"] == [net["vpc_id"]]


# --- ownership and bad input ------------------------------------------------------------------

def test_an_unowned_vpc_named_like_the_cluster_is_never_touched(ec2):
    lookalike = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "capi-example-vpc"}]}])["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=lookalike, CidrBlock="10.0.0.0/20", AvailabilityZone=ZONES[0])["Subnet"]["SubnetId"]
    before = network_state(ec2, lookalike)
    lookalike_state = (before["vpc"], before["subnets"], before["tables"])

    net = apply()["network"]
    assert net["vpc_id"] != lookalike
    assert subnet not in [s["id"] for s in net["subnets"]]
    after = network_state(ec2, lookalike)
    assert (after["vpc"], after["subnets"], after["tables"]) == lookalike_state
    assert ec2.describe_vpc_attribute(VpcId=lookalike, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is False

    apply(state="absent")
    after = network_state(ec2, lookalike)
    assert (after["vpc"], after["subnets"], after["tables"]) == lookalike_state


@pytest.mark.parametrize("args, field", [
    ({"cluster": spec_with(nat_gateways="many")}, "cluster.network.nat_gateways"),
    ({"cluster": spec_with(vpc_cidr="10.0.0.0/8")}, "cluster.network.vpc_cidr"),
    ({"cluster": spec_with(vpc_id="vpc-0123456789abcdef0")}, "cluster.network.subnet_ids"),
    ({"cluster": SPEC, "state": "gone"}, "state"),
    ({"cluster": SPEC, "wait_timeout": "soon"}, "wait_timeout"),
])
def test_bad_input_fails_before_any_aws_call(aws_env, aws_calls, args, field):
    result, failed = run_module("cluster_network", args)
    assert failed and field in result["msg"]
    assert aws_calls == []
