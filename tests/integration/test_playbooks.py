"""The collection's playbooks, run for real with ansible-playbook against a moto server."""

import ipaddress

import pytest

from helpers.aws import CLUSTER as NAME, ROLE
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e


def by_name(resources):
    return dict((tags(r)["Name"], r) for r in resources)


def ingress(group):
    """A group's rules as a set of (protocol, from, to, source) tuples."""
    rules = set()
    for perm in group["IpPermissions"]:
        # AWS leaves the ports out for protocols without ports (IP-in-IP); moto answers -1.
        ports = tuple(None if perm.get(key) in (None, -1) else perm[key] for key in ("FromPort", "ToPort"))
        key = (perm["IpProtocol"],) + ports
        for pair in perm.get("UserIdGroupPairs", []):
            rules.add(key + (pair["GroupId"],))
        for cidr in perm.get("IpRanges", []):
            rules.add(key + (cidr["CidrIp"],))
    return rules


def create(run_playbook, spec, **kwargs):
    # moto's machines are not hosts: only the AWS part (tag infra) runs here; tests/nodes covers the rest.
    done = run_playbook("create_cluster", spec, tags=["infra"], **kwargs)
    assert done.rc == 0, done.explain()
    return done


def delete(run_playbook, spec):
    done = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert done.rc == 0, done.explain()
    return done


def assert_nothing_owned_left(account, name=NAME):
    left = dict((kind, items) for kind, items in account.owned(name).items() if items)
    assert left == {}
    assert account.ec2.describe_addresses()["Addresses"] == []


def test_create_rerun_delete_default_cluster(account, run_playbook, moto_server):
    image_id = account.prepare(iam=False)
    spec = example_spec(image_id)

    missing_iam = run_playbook("create_cluster", spec, tags=["infra"])
    assert missing_iam.rc != 0
    assert "cluster.control_plane.iam_instance_profile: instance profile" in missing_iam.explain()
    assert "kubecluster.aws.bootstrap_iam" in missing_iam.explain()
    assert account.owned(NAME)["vpcs"] == []
    # The seed flow: the IAM stack once per account, then the cluster.
    iam = run_playbook("bootstrap_iam", spec)
    assert iam.rc == 0, iam.explain()

    preview = run_playbook("create_cluster", spec, check=True, diff=True, tags=["infra"])
    assert preview.rc == 0, preview.explain()
    planned = preview.result("Reconcile the network, the machines and the API load balancer")["plan"]
    assert {"action": "create", "resource": "vpc"} in [dict(action=p["action"], resource=p["resource"]) for p in planned]
    assert account.owned(NAME)["vpcs"] == [], "check mode created something"

    created = create(run_playbook, spec)
    assert created.result("Reconcile the network, the machines and the API load balancer")["status"]["phase"] == "Provisioned"
    owned = account.owned(NAME)

    (vpc,) = owned["vpcs"]
    assert vpc["CidrBlock"] == "10.0.0.0/16" and tags(vpc)["Name"] == "capi-example-vpc"
    for attribute in ("enableDnsHostnames", "enableDnsSupport"):
        answer = account.ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
        assert answer[attribute[0].upper() + attribute[1:]]["Value"] is True

    subnets = by_name(owned["subnets"])
    zones = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    expected = dict(
        [("capi-example-subnet-public-%s" % z, c) for z, c in zip(zones, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"])]
        + [("capi-example-subnet-private-%s" % z, c) for z, c in zip(zones, ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"])])
    assert dict((n, s["CidrBlock"]) for n, s in subnets.items()) == expected
    for name, subnet in subnets.items():
        role = "public" if "-public-" in name else "private"
        assert tags(subnet)[ROLE] == role
        assert tags(subnet)["kubernetes.io/cluster/" + NAME] == "owned"
        assert tags(subnet)["kubernetes.io/role/elb" if role == "public" else "kubernetes.io/role/internal-elb"] == "1"
        assert subnet["MapPublicIpOnLaunch"] is (role == "public")

    (igw,) = owned["internet_gateways"]
    assert igw["Attachments"][0]["VpcId"] == vpc["VpcId"]
    assert len(owned["nat_gateways"]) == 3 and len(owned["addresses"]) == 3
    nat_by_zone = {}
    public_subnets = dict((s["SubnetId"], s["AvailabilityZone"]) for n, s in subnets.items() if "-public-" in n)
    for nat in owned["nat_gateways"]:
        assert nat["State"] == "available" and nat["SubnetId"] in public_subnets
        nat_by_zone[public_subnets[nat["SubnetId"]]] = nat["NatGatewayId"]
    assert sorted(nat_by_zone) == zones

    tables = by_name(owned["route_tables"])
    assert len(tables) == 6
    for zone in zones:
        public_routes = [r for r in tables["capi-example-rt-public-%s" % zone]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        private_routes = [r for r in tables["capi-example-rt-private-%s" % zone]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert public_routes[0]["GatewayId"] == igw["InternetGatewayId"]
        assert private_routes[0]["NatGatewayId"] == nat_by_zone[zone]

    groups = dict((tags(g)[ROLE], g) for g in owned["security_groups"])
    assert sorted(groups) == ["apiserver-lb", "bastion", "controlplane", "lb", "node"]
    ids = dict((role, g["GroupId"]) for role, g in groups.items())
    assert {("tcp", 6443, 6443, ids["apiserver-lb"]), ("tcp", 6443, 6443, ids["controlplane"]), ("tcp", 6443, 6443, ids["node"]),
            ("tcp", 2379, 2379, ids["controlplane"]), ("tcp", 2380, 2380, ids["controlplane"]),
            ("tcp", 22, 22, ids["bastion"]), ("tcp", 179, 179, ids["node"]), ("4", None, None, ids["node"])} <= ingress(groups["controlplane"])
    assert {("tcp", 30000, 32767, "0.0.0.0/0"), ("tcp", 10250, 10250, ids["controlplane"]),
            ("tcp", 10250, 10250, ids["node"]), ("tcp", 22, 22, ids["bastion"])} <= ingress(groups["node"])
    assert ingress(groups["apiserver-lb"]) == {("tcp", 6443, 6443, "0.0.0.0/0")}
    assert ingress(groups["lb"]) == {("tcp", 6443, 6443, "10.0.0.0/16")}
    assert ingress(groups["bastion"]) == {("tcp", 22, 22, "0.0.0.0/0")}
    assert tags(groups["lb"]).get("kubernetes.io/cluster/" + NAME) == "owned"
    assert "kubernetes.io/cluster/" + NAME not in tags(groups["node"])

    (balancer,) = owned["load_balancers"]
    assert balancer["LoadBalancerName"] == "capi-example-apiserver" and balancer["Type"] == "network"
    assert balancer["Scheme"] == "internet-facing"
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(public_subnets)
    (group,) = account.elbv2.describe_target_groups(LoadBalancerArn=balancer["LoadBalancerArn"])["TargetGroups"]
    assert (group["Protocol"], group["Port"], group["HealthCheckProtocol"], group["HealthCheckPath"]) == ("TCP", 6443, "HTTPS", "/readyz")
    (listener,) = account.elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 6443)

    machines = owned["instances"]
    roles = sorted(tags(m)[ROLE] for m in machines)
    assert roles == ["bastion", "control-plane", "node", "node"]
    private_ids = set(s["SubnetId"] for n, s in subnets.items() if "-private-" in n)
    for machine in machines:
        machine_tags = tags(machine)
        assert machine_tags["kubernetes.io/cluster/" + NAME] == "owned"
        assert machine_tags["Name"].startswith("capi-example-")
        assert machine["MetadataOptions"]["HttpTokens"] == "required"
        assert machine["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        if machine_tags[ROLE] == "bastion":
            assert machine["SubnetId"] in public_subnets and machine.get("PublicIpAddress")
        else:
            assert machine["SubnetId"] in private_ids and not machine.get("PublicIpAddress")
            assert ipaddress.ip_address(machine["PrivateIpAddress"]) in ipaddress.ip_network("10.0.0.0/16")
    control_plane = [m["InstanceId"] for m in machines if tags(m)[ROLE] == "control-plane"]
    health = account.elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    assert [h["Target"]["Id"] for h in health] == control_plane
    workers = [m for m in machines if tags(m)[ROLE] == "node"]
    assert len(set(m["Placement"]["AvailabilityZone"] for m in workers)) == 2, "workers are spread over zones"

    # A second run changes nothing and makes no write call.
    moto_server.start_recording()
    again = create(run_playbook, spec)
    moto_server.stop_recording()
    assert again.changed == 0, again.stats
    # Only the cluster lease (taken and released by every run) is written.
    writes = moto_server.recorded_writes()
    assert [w for w in writes if w["service"] != "ssm"] == []
    assert [w["action"] for w in writes] == ["PutParameter", "DeleteParameter"]

    preview = run_playbook("create_cluster", spec, check=True, diff=True, tags=["infra"])
    assert preview.rc == 0 and preview.changed == 0, preview.explain()

    status = run_playbook("cluster_status", spec)
    assert status.rc == 0, status.explain()
    (listed,) = status.result("Read what the clusters own")["clusters"]
    assert listed["phase"] == "Provisioned" and listed["name"] == NAME

    dry_run = run_playbook("delete_cluster", spec)
    assert dry_run.rc == 0 and "confirm_delete=true" in "\n".join(dry_run.result("Show what deleting the cluster removes")["msg"])
    assert len(account.owned(NAME)["instances"]) == 4, "an unconfirmed delete deleted something"

    delete(run_playbook, spec)
    assert_nothing_owned_left(account)
    second = delete(run_playbook, spec)
    assert second.changed == 0


@pytest.mark.parametrize("layout, nat_count", [("single", 1), ("none", 0)])
def test_nat_layouts(account, run_playbook, layout, nat_count):
    image_id = account.prepare()
    spec = example_spec(image_id, network={"nat_gateways": layout})
    create(run_playbook, spec)
    owned = account.owned(NAME)
    assert len(owned["nat_gateways"]) == nat_count
    assert len(owned["addresses"]) == nat_count
    private_defaults = [r for t in owned["route_tables"] if tags(t)["Name"].startswith("capi-example-rt-private-")
                        for r in t["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    if nat_count:
        assert len(private_defaults) == 3
        assert set(r["NatGatewayId"] for r in private_defaults) == set(n["NatGatewayId"] for n in owned["nat_gateways"])
    else:
        assert private_defaults == []
    delete(run_playbook, spec)
    assert_nothing_owned_left(account)


def test_eip_quota_is_checked_before_anything_is_created(account, run_playbook):
    image_id = account.prepare()
    for unused_index in range(3):
        account.ec2.allocate_address(Domain="vpc")
    done = run_playbook("create_cluster", example_spec(image_id), tags=["infra"])
    assert done.rc != 0
    assert "cluster.network.nat_gateways: per_az needs 3 more Elastic IP(s)" in done.explain()
    assert account.owned(NAME)["vpcs"] == [] and account.owned(NAME)["security_groups"] == []


def test_invalid_spec_fails_naming_the_field(account, run_playbook):
    image_id = account.prepare()
    done = run_playbook("create_cluster", example_spec(image_id, control_plane={"replicas": 2}), tags=["infra"])
    assert done.rc != 0
    assert "cluster.control_plane.replicas: 2 is even" in done.explain()
    assert account.owned(NAME)["vpcs"] == []


def test_bring_your_own_vpc_is_left_untouched(account, run_playbook):
    image_id = account.prepare()
    ec2 = account.ec2
    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.0.0/24", AvailabilityZone="ap-northeast-2a")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24", AvailabilityZone="ap-northeast-2a")["Subnet"]["SubnetId"]
    public_table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
    before = {"vpcs": ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"],
              "subnets": ec2.describe_subnets(SubnetIds=[public, private])["Subnets"],
              "tables": ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}

    spec = example_spec(image_id, network={"vpc_id": vpc_id, "subnet_ids": [public, private], "availability_zones": ["ap-northeast-2a"],
                                           "vpc_cidr": "10.20.0.0/16"})
    create(run_playbook, spec)
    owned = account.owned(NAME)
    assert owned["vpcs"] == [] and owned["subnets"] == [] and owned["nat_gateways"] == [] and owned["route_tables"] == []
    assert len(owned["security_groups"]) == 5
    assert all(g["VpcId"] == vpc_id for g in owned["security_groups"])
    for machine in owned["instances"]:
        assert machine["SubnetId"] == (public if tags(machine)[ROLE] == "bastion" else private)

    delete(run_playbook, spec)
    assert_nothing_owned_left(account)
    after = {"vpcs": ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"],
             "subnets": ec2.describe_subnets(SubnetIds=[public, private])["Subnets"],
             "tables": ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]}
    assert after == before


def test_iam_stack_create_rerun_delete(account, run_playbook, moto_server):
    created = run_playbook("bootstrap_iam", extra_vars={"region": "ap-northeast-2"})
    assert created.rc == 0 and created.changed > 0, created.explain()
    profiles = set(p["InstanceProfileName"] for p in account.iam.list_instance_profiles()["InstanceProfiles"])
    assert {"control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io",
            "controllers.cluster-api-provider-aws.sigs.k8s.io"} <= profiles

    moto_server.start_recording()
    again = run_playbook("bootstrap_iam", extra_vars={"region": "ap-northeast-2"})
    moto_server.stop_recording()
    assert again.rc == 0 and again.changed == 0, again.explain()
    assert moto_server.recorded_writes() == []

    deleted = run_playbook("bootstrap_iam", extra_vars={"region": "ap-northeast-2", "iam_state": "absent"})
    assert deleted.rc == 0 and deleted.changed > 0, deleted.explain()
    assert account.iam.list_instance_profiles()["InstanceProfiles"] == []
    stacks = [s for s in account.cloudformation.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert stacks == []
