"""kubecluster.aws.cluster_info against moto: what clusters own, their phase, waiting, and that it never writes."""

import ipaddress
import time

import boto3
import botocore.client
import botocore.exceptions
import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import instances
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import machine_set_spec, resolve
from helpers.aws import AMI, REGION
from helpers.module_runner import run_module

# Two zones, not the region's three (helpers.aws.ZONES): the fake clusters here span two, and the views the tests expect count on it.
ZONES = ("ap-northeast-2a", "ap-northeast-2b")
READS = ("DescribeVpcs", "DescribeSecurityGroups", "DescribeInternetGateways", "DescribeNatGateways", "DescribeAddresses",
         "DescribeInstances", "DescribeSubnets", "DescribeRouteTables")


def info(args=None, **kwargs):
    return run_module("cluster_info", dict(dict(region=REGION), **(args or {})), **kwargs)


def tag_spec(kind, tags):
    return [{"ResourceType": kind, "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}]


class FakeCluster(object):
    """A cluster as cluster_network, apiserver_lb and machine_set leave it, made directly with boto3."""

    def __init__(self, name, cidr="10.0.0.0/16"):
        self.name = name
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.cidr = ipaddress.ip_network(cidr)
        self.subnets = {}
        self.groups = {}
        self.instances = {}
        self.vpc_id = self.nat_id = self.igw_id = self.allocation_id = self.dns_name = None

    def tags(self, name, role, cloud_provider=False):
        return naming.resource_tags(self.name, name, role, cloud_provider=cloud_provider)

    def network(self, nat=True):
        tags = self.tags(naming.vpc_name(self.name), naming.ROLE_COMMON)
        self.vpc_id = self.ec2.create_vpc(CidrBlock=str(self.cidr), TagSpecifications=tag_spec("vpc", tags))["Vpc"]["VpcId"]
        blocks = self.cidr.subnets(new_prefix=20)
        for zone in ZONES:
            for role in (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE):
                tags = self.tags(naming.subnet_name(self.name, role, zone), role, cloud_provider=True)
                subnet = self.ec2.create_subnet(VpcId=self.vpc_id, CidrBlock=str(next(blocks)), AvailabilityZone=zone,
                                                TagSpecifications=tag_spec("subnet", tags))["Subnet"]
                self.subnets[(role, zone)] = subnet["SubnetId"]
        igw_tags = self.tags(naming.igw_name(self.name), naming.ROLE_COMMON)
        self.igw_id = self.ec2.create_internet_gateway(TagSpecifications=tag_spec("internet-gateway", igw_tags))["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=self.igw_id, VpcId=self.vpc_id)
        public = self.route_table(naming.ROLE_PUBLIC, GatewayId=self.igw_id)
        if nat:
            eip_tags = self.tags(naming.eip_name(self.name), naming.ROLE_COMMON)
            self.allocation_id = self.ec2.allocate_address(Domain="vpc", TagSpecifications=tag_spec("elastic-ip", eip_tags))["AllocationId"]
            nat_tags = self.tags(naming.nat_name(self.name), naming.ROLE_COMMON)
            self.nat_id = self.ec2.create_nat_gateway(SubnetId=self.subnets[(naming.ROLE_PUBLIC, ZONES[0])], AllocationId=self.allocation_id,
                                                      TagSpecifications=tag_spec("natgateway", nat_tags))["NatGateway"]["NatGatewayId"]
            private = self.route_table(naming.ROLE_PRIVATE, NatGatewayId=self.nat_id)
        for (role, _zone), subnet_id in self.subnets.items():
            table = public if role == naming.ROLE_PUBLIC else (private if nat else None)
            if table:
                self.ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
        return self

    def route_table(self, role, **target):
        tags = self.tags(naming.route_table_name(self.name, role, ZONES[0]), role, cloud_provider=True)
        table = self.ec2.create_route_table(VpcId=self.vpc_id, TagSpecifications=tag_spec("route-table", tags))["RouteTable"]["RouteTableId"]
        self.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **target)
        return table

    def security_groups(self, vpc_id=None, roles=(naming.SG_APISERVER_LB, naming.SG_LB, naming.SG_CONTROL_PLANE, naming.SG_NODE, naming.SG_BASTION)):
        for role in roles:
            name = naming.security_group_name(self.name, role)
            self.groups[role] = self.ec2.create_security_group(
                GroupName=name, Description=naming.security_group_description(self.name, role), VpcId=vpc_id or self.vpc_id,
                TagSpecifications=tag_spec("security-group", self.tags(name, role, cloud_provider=role == naming.SG_LB)))["GroupId"]
        return self

    def load_balancer(self, kind="nlb", subnet_ids=None):
        name = naming.load_balancer_name(self.name)
        subnet_ids = subnet_ids or [self.subnets[(naming.ROLE_PUBLIC, zone)] for zone in ZONES]
        tags = [{"Key": key, "Value": value} for key, value in self.tags(name, naming.ROLE_APISERVER).items()]
        if kind == "nlb":
            balancer = boto3.client("elbv2", region_name=REGION).create_load_balancer(
                Name=name, Subnets=subnet_ids, Type="network", Scheme="internet-facing", Tags=tags)["LoadBalancers"][0]
        else:
            balancer = boto3.client("elb", region_name=REGION).create_load_balancer(
                LoadBalancerName=name, Subnets=subnet_ids, Scheme="internet-facing", Tags=tags,
                Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 6443, "InstanceProtocol": "TCP", "InstancePort": 6443}])
        self.dns_name = balancer["DNSName"]
        return self

    def machines(self, set_name, count, subnet_id=None):
        role = naming.machine_role(set_name)
        for index in range(count):
            name = naming.machine_name(self.name, set_name, "m%d" % index)
            tags = dict(self.tags(name, role, cloud_provider=True), **{naming.MACHINE_SET_TAG: set_name, naming.SPEC_HASH_TAG: "abc123"})
            instance = self.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                              SubnetId=subnet_id or self.subnets[(naming.ROLE_PRIVATE, ZONES[index % len(ZONES)])],
                                              TagSpecifications=tag_spec("instance", tags))["Instances"][0]
            self.instances[name] = instance["InstanceId"]
        return self

    def complete(self, lb="nlb"):
        """Everything of the CAPI quick start: network, groups, API load balancer, one control plane, two workers."""
        return self.network().security_groups().load_balancer(lb).machines(naming.SET_CONTROL_PLANE, 1).machines("md-0", 2)


# --- reporting ----------------------------------------------------------------------------

def test_empty_region_reports_no_clusters_and_writes_nothing(moto_aws, aws_calls):
    result, failed = info()

    assert not failed
    assert result["changed"] is False
    assert result["clusters"] == []
    assert "cluster" not in result
    assert aws_calls.writes() == []


def test_named_cluster_in_empty_region_is_pending(moto_aws):
    result, failed = info({"name": "capi-example"})

    assert not failed
    assert result["changed"] is False
    assert result["cluster"]["phase"] == "NotFound"
    assert result["cluster"]["failure_message"] is None
    assert result["cluster"]["control_plane_endpoint"] is None
    assert set(result["cluster"]["counts"].values()) == {0}
    assert result["clusters"] == [result["cluster"]]


def test_complete_cluster_is_provisioned_with_its_endpoint(moto_aws, aws_calls):
    cluster = FakeCluster("capi-example").complete()
    del aws_calls[:]

    result, failed = info({"name": "capi-example"})

    view = result["cluster"]
    assert not failed and result["changed"] is False
    assert view["phase"] == "Provisioned" and view["failure_message"] is None
    assert view["control_plane_endpoint"] == {"host": cluster.dns_name, "port": 6443}
    # an NLB cluster: the classic ELB API is not asked
    assert [operation for service, operation in aws_calls if service == "elb"] == []
    assert view["vpc_id"] == cluster.vpc_id and view["managed_vpc"] is True
    assert view["internet_gateway_id"] == cluster.igw_id
    assert sorted((s["role"], s["availability_zone"]) for s in view["subnets"]) == sorted(cluster.subnets)
    assert all(s["id"] == cluster.subnets[(s["role"], s["availability_zone"])] and s["cidr"].endswith("/20") for s in view["subnets"])
    assert view["subnets"][0]["name"] == naming.subnet_name("capi-example", "private", ZONES[0])
    assert [(n["id"], n["state"], n["availability_zone"]) for n in view["nat_gateways"]] == [(cluster.nat_id, "available", ZONES[0])]
    assert view["nat_gateways"][0]["public_ip"] == view["elastic_ips"][0]["public_ip"]
    assert view["elastic_ips"][0]["allocation_id"] == cluster.allocation_id
    assert view["security_groups"] == cluster.groups
    assert view["load_balancer"] == {"name": "capi-example-apiserver", "type": "nlb", "dns_name": cluster.dns_name,
                                     "scheme": "internet-facing", "state": "active"}
    assert [(m["name"], m["set"], m["role"], m["state"]) for m in view["machines"]] == [
        ("capi-example-control-plane-m0", "control-plane", "control-plane", "running"),
        ("capi-example-md-0-m0", "md-0", "node", "running"),
        ("capi-example-md-0-m1", "md-0", "node", "running"),
    ]
    first = view["machines"][0]
    assert first["instance_id"] == cluster.instances["capi-example-control-plane-m0"]
    assert first["availability_zone"] == ZONES[0] and first["private_ip"].startswith("10.0.")
    assert first["private_dns_name"] and first["outdated"] is None, "without the spec, outdated is not judged"
    assert (first["subnet_id"], first["instance_type"], first["image_id"]) == (cluster.subnets[("private", ZONES[0])], "t3.micro", AMI)
    assert view["machine_sets"] == {"control-plane": {"replicas": 1, "running": 1, "desired": None, "up_to_date": None},
                                    "md-0": {"replicas": 2, "running": 2, "desired": None, "up_to_date": None}}
    assert view["kubernetes_version"] is None, "the fake machines carry no version tag"
    assert view["counts"] == {"vpcs": 1, "subnets": 4, "internet_gateways": 1, "nat_gateways": 1, "elastic_ips": 1,
                              "route_tables": 2, "security_groups": 5, "instances": 3, "load_balancers": 1}
    assert aws_calls.writes() == []
    ec2_reads = [operation for service, operation in aws_calls if service == "ec2"]
    assert sorted(ec2_reads) == sorted(READS), "one describe per EC2 resource type"


def test_classic_load_balancer_counts_as_the_api_load_balancer(moto_aws):
    cluster = FakeCluster("capi-example").complete(lb="classic")

    view = info({"name": "capi-example"})[0]["cluster"]

    assert view["phase"] == "Provisioned"
    assert view["load_balancer"]["type"] == "classic"
    assert view["control_plane_endpoint"]["host"] == cluster.dns_name


def test_missing_load_balancer_is_provisioning(moto_aws):
    FakeCluster("capi-example").network().security_groups()

    result, failed = info({"name": "capi-example"})

    assert not failed
    assert result["cluster"]["phase"] == "Provisioning"
    assert result["cluster"]["control_plane_endpoint"] is None and result["cluster"]["load_balancer"] is None


def test_vpc_without_subnets_is_provisioning(moto_aws):
    ec2 = boto3.client("ec2", region_name=REGION)
    ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tag_spec("vpc", naming.resource_tags("capi-example", "capi-example-vpc", "common")))

    view = info({"name": "capi-example"})[0]["cluster"]

    assert view["phase"] == "Provisioning" and view["managed_vpc"] is True and view["subnets"] == []


def test_control_plane_running_without_load_balancer_is_failed(moto_aws):
    cluster = FakeCluster("capi-example").network().security_groups().machines(naming.SET_CONTROL_PLANE, 1)

    view = info({"name": "capi-example"})[0]["cluster"]

    assert view["phase"] == "Failed"
    assert cluster.instances["capi-example-control-plane-m0"] in view["failure_message"]
    assert "capi-example-apiserver does not exist" in view["failure_message"]


def test_terminated_machine_leaves_replicas_but_stays_listed(moto_aws):
    cluster = FakeCluster("capi-example").complete()
    boto3.client("ec2", region_name=REGION).terminate_instances(InstanceIds=[cluster.instances["capi-example-md-0-m1"]])

    view = info({"name": "capi-example"})[0]["cluster"]

    assert view["phase"] == "Provisioned", "a terminate through the API is a scale-down, not a failure"
    assert view["machine_sets"]["md-0"] == {"replicas": 1, "running": 1, "desired": None, "up_to_date": None}
    assert view["counts"]["instances"] == 2
    assert [m["state"] for m in view["machines"] if m["name"] == "capi-example-md-0-m1"] == ["terminated"]


def test_bring_your_own_vpc_reports_the_subnets_in_use(moto_aws):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_id = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.0.0/20", AvailabilityZone=ZONES[0])["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.16.0/20", AvailabilityZone=ZONES[0])["Subnet"]["SubnetId"]
    ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.9.32.0/20", AvailabilityZone=ZONES[1])  # someone else's
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)
    cluster = FakeCluster("byo").security_groups(vpc_id=vpc_id).load_balancer(subnet_ids=[public])
    cluster.machines(naming.SET_CONTROL_PLANE, 1, subnet_id=private)

    view = info({"name": "byo"})[0]["cluster"]

    assert view["vpc_id"] == vpc_id and view["managed_vpc"] is False
    assert sorted((s["id"], s["role"]) for s in view["subnets"]) == sorted([(public, "public"), (private, "private")])
    assert view["internet_gateway_id"] is None and view["counts"]["vpcs"] == 0 and view["counts"]["subnets"] == 0
    assert view["phase"] == "Provisioned"


# --- many clusters and ownership ------------------------------------------------------------

def test_every_cluster_is_listed_with_the_reads_of_one(moto_aws, aws_calls):
    alpha = FakeCluster("alpha").complete()
    beta = FakeCluster("beta", cidr="10.1.0.0/16").network().security_groups()
    del aws_calls[:]

    result, failed = info()

    assert not failed and "cluster" not in result
    assert [(c["name"], c["phase"]) for c in result["clusters"]] == [("alpha", "Provisioned"), ("beta", "Provisioning")]
    assert [c["vpc_id"] for c in result["clusters"]] == [alpha.vpc_id, beta.vpc_id]
    assert result["clusters"][1]["security_groups"] == beta.groups
    ec2_reads = [operation for service, operation in aws_calls if service == "ec2"]
    assert sorted(ec2_reads) == sorted(READS)
    assert [op for service, op in aws_calls if service == "elbv2"] == ["DescribeLoadBalancers", "DescribeTags"]
    assert [op for service, op in aws_calls if service == "elb"] == ["DescribeLoadBalancers"]
    assert aws_calls.writes() == []


def test_other_clusters_and_unowned_look_alikes_are_never_mixed_in(moto_aws):
    alpha = FakeCluster("alpha").network().security_groups().machines("md-0", 1)
    FakeCluster("beta", cidr="10.1.0.0/16").complete()
    ec2 = boto3.client("ec2", region_name=REGION)
    look_alike = {"Name": "alpha-vpc", naming.ROLE_TAG: "common"}
    ec2.create_vpc(CidrBlock="10.2.0.0/16", TagSpecifications=tag_spec("vpc", look_alike))
    shared = dict(look_alike, **{naming.owner_tag("alpha"): naming.SHARED})
    ec2.create_vpc(CidrBlock="10.3.0.0/16", TagSpecifications=tag_spec("vpc", shared))
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1,
                      TagSpecifications=tag_spec("instance", {"Name": "alpha-md-0-x", naming.MACHINE_SET_TAG: "md-0", naming.ROLE_TAG: "node"}))
    subnet = alpha.subnets[(naming.ROLE_PUBLIC, ZONES[0])]
    boto3.client("elbv2", region_name=REGION).create_load_balancer(Name="alpha-apiserver", Subnets=[subnet], Type="network")

    result = info({"name": "alpha"})[0]
    listed = info()[0]

    view = result["cluster"]
    assert view["vpc_id"] == alpha.vpc_id and view["counts"]["vpcs"] == 1
    assert view["load_balancer"] is None, "an unowned balancer with the cluster's balancer name is not the cluster's"
    assert view["phase"] == "Provisioning"
    assert [m["instance_id"] for m in view["machines"]] == list(alpha.instances.values())
    assert view["machine_sets"] == {"md-0": {"replicas": 1, "running": 1, "desired": None, "up_to_date": None}}
    assert view["counts"] == {"vpcs": 1, "subnets": 4, "internet_gateways": 1, "nat_gateways": 1, "elastic_ips": 1,
                              "route_tables": 2, "security_groups": 5, "instances": 1, "load_balancers": 0}
    assert [c["name"] for c in listed["clusters"]] == ["alpha", "beta"]
    assert listed["clusters"][0] == view


# --- waiting ---------------------------------------------------------------------------------

def test_wait_returns_once_provisioned_and_running(moto_aws, monkeypatch):
    FakeCluster("capi-example").complete()
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("a ready cluster needs no second read"))

    result, failed = info({"name": "capi-example", "wait": True})

    assert not failed and result["changed"] is False
    assert result["cluster"]["phase"] == "Provisioned"


def test_wait_times_out_naming_what_is_not_ready(moto_aws, aws_calls):
    FakeCluster("capi-example").network().security_groups()
    del aws_calls[:]

    started = time.monotonic()
    result, failed = info({"name": "capi-example", "wait": True, "wait_timeout": 1, "wait_delay": 1})

    assert failed
    assert time.monotonic() - started < 10
    assert "Timed out after 1 seconds" in result["msg"]
    assert "capi-example is Provisioning" in result["msg"]
    assert "API load balancer capi-example-apiserver" in result["msg"]
    assert result["cluster"]["phase"] == "Provisioning"
    assert [operation for _service, operation in aws_calls].count("DescribeVpcs") >= 2, "read, wait a second, read again"
    assert aws_calls.writes() == []


def test_wait_names_machines_that_are_not_running(moto_aws):
    cluster = FakeCluster("capi-example").complete()
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[cluster.instances["capi-example-md-0-m0"]])

    result, failed = info({"name": "capi-example", "wait": True, "wait_timeout": 0})

    assert failed
    assert result["cluster"]["phase"] == "Provisioned"
    assert "machine capi-example-md-0-m0 (%s, stopped)" % cluster.instances["capi-example-md-0-m0"] in result["msg"]


def test_wait_stops_at_once_on_a_failed_cluster(moto_aws, monkeypatch):
    FakeCluster("capi-example").network().security_groups().machines(naming.SET_CONTROL_PLANE, 1)
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("a failed cluster is not waited for"))

    result, failed = info({"name": "capi-example", "wait": True})

    assert failed
    assert result["msg"].startswith("Cluster failed, waiting will not help: capi-example: control-plane machines")
    assert result["cluster"]["phase"] == "Failed"


def test_wait_pending_cluster_names_the_missing_vpc(moto_aws):
    result, failed = info({"name": "capi-example", "wait": True, "wait_timeout": 0})

    assert failed
    assert "capi-example is NotFound, not ready: VPC, subnets, security groups controlplane, node" in result["msg"]


# --- check mode and options --------------------------------------------------------------------

def test_check_mode_reports_the_same_and_writes_nothing(moto_aws, aws_calls):
    FakeCluster("capi-example").complete()
    normal = info({"name": "capi-example"})[0]
    del aws_calls[:]

    checked, failed = info({"name": "capi-example"}, check_mode=True, diff=True)

    assert not failed
    assert checked == normal
    assert checked["changed"] is False and "diff" not in checked
    assert aws_calls and aws_calls.writes() == []


@pytest.mark.parametrize("args, message", [
    ({"name": ""}, "name: must not be empty; omit it to report every cluster in the region"),
    ({"name": "  "}, "name: must not be empty"),
    ({"wait_timeout": -1}, "wait_timeout: must be 0 or more seconds, not -1"),
    ({"wait_delay": 0}, "wait_delay: must be at least 1 second, not 0"),
    ({"wait": "sometimes"}, "wait"),
    ({"cluster": {"name": "x"}, "region": None}, "cluster.region: required"),
    ({"cluster": {}}, "cluster: must be a cluster spec with at least a name and a region"),
    ({"cluster": {"name": "x", "region": REGION}, "name": "y"}, "name: y is not the spec's cluster.name x; omit name"),
    ({"cluster": {"name": "x", "region": "us-east-1"}, "region": REGION}, "region: %s is not the spec's cluster.region us-east-1" % REGION),
    ({"cluster": "name: [x"}, "cluster: the text is neither YAML nor JSON"),
    ({"cluster": "capi-example"}, "cluster: the text is a str ('capi-example'), not a mapping"),
])
def test_bad_options_fail_before_any_aws_call(moto_aws, aws_calls, monkeypatch, args, message):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # no region but the spec's or the option's
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result, failed = info(args)

    assert failed
    assert message in result["msg"]
    assert aws_calls == []


@pytest.mark.parametrize("service, operation, message", [
    ("ec2", "DescribeVpcs", "describe vpcs"),
    ("elb", "DescribeLoadBalancers", "UnauthorizedOperation"),
])
def test_aws_errors_fail_the_module(moto_aws, monkeypatch, service, operation, message):
    original = botocore.client.BaseClient._make_api_call

    def denying(self, operation_name, api_params):
        if (self.meta.service_model.service_name, operation_name) == (service, operation):
            raise botocore.exceptions.ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "denied"}}, operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", denying)

    result, failed = info({"name": "capi-example"})

    assert failed
    assert message in result["msg"]
    assert result["error"]["code"] == "UnauthorizedOperation"


def test_missing_region_fails_naming_it(moto_aws, monkeypatch, aws_calls):
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    result, failed = run_module("cluster_info", {})

    assert failed
    assert "requires a region" in result["msg"]
    assert aws_calls == []


# --- with the spec: desired and up-to-date counts, as machine_set judges them -------------------

def spec_of(name="capi-example", md0_replicas=2, instance_type="t3.large", **extra):
    return dict({
        "name": name, "region": REGION, "kubernetes_version": "v1.31.4", "ssh_key_name": "jonnung",
        "network": {"availability_zones": list(ZONES), "bastion": {"enabled": False}},
        "control_plane": {"replicas": 1, "ami_id": AMI},
        "machine_deployments": [{"name": "md-0", "replicas": md0_replicas, "ami_id": AMI, "instance_type": instance_type},
                                {"name": "md-1", "replicas": 1, "ami_id": AMI}],
    }, **extra)


@pytest.fixture
def launched(moto_aws):
    """A provisioned cluster whose machines machine_set launched from spec_of()."""
    iam = boto3.client("iam", region_name=REGION)
    for profile in (naming.CONTROL_PLANE_PROFILE, naming.NODES_PROFILE):
        iam.create_instance_profile(InstanceProfileName=profile)
    cluster = FakeCluster("capi-example").network().security_groups().load_balancer()
    cluster.ec2.create_key_pair(KeyName="jonnung")
    for set_name in ("control-plane", "md-0"):
        result, failed = run_module("machine_set", {"cluster": spec_of(), "set": set_name, "wait": False})
        assert not failed, result.get("msg")
    return cluster


def test_spec_gives_desired_and_up_to_date_per_set(launched, aws_calls):
    result, failed = info({"cluster": spec_of(md0_replicas=3), "region": None})

    assert not failed, result.get("msg")
    view = result["cluster"]
    assert view["name"] == "capi-example" and view["phase"] == "Provisioned"
    assert view["kubernetes_version"] == "v1.31.4"
    assert view["machine_sets"] == {
        "bastion": {"replicas": 0, "running": 0, "desired": 0, "up_to_date": 0},
        "control-plane": {"replicas": 1, "running": 1, "desired": 1, "up_to_date": 1},
        "md-0": {"replicas": 2, "running": 2, "desired": 3, "up_to_date": 2},
        "md-1": {"replicas": 0, "running": 0, "desired": 1, "up_to_date": 0},
    }
    assert [m["outdated"] for m in view["machines"]] == [False, False, False]
    assert aws_calls.writes() == []


def test_a_changed_machine_spec_makes_the_machines_outdated(launched):
    result, failed = info({"cluster": spec_of(instance_type="m5.xlarge")})

    assert not failed, result.get("msg")
    sets = result["cluster"]["machine_sets"]
    assert sets["md-0"] == {"replicas": 2, "running": 2, "desired": 2, "up_to_date": 0}
    assert sets["control-plane"]["up_to_date"] == 1
    assert [(m["set"], m["outdated"]) for m in result["cluster"]["machines"]] == [
        ("control-plane", False), ("md-0", True), ("md-0", True)]


def test_a_set_dropped_from_the_spec_wants_none_and_is_not_judged(launched):
    spec = spec_of()
    spec["machine_deployments"] = spec["machine_deployments"][1:]

    view = info({"cluster": spec})[0]["cluster"]

    assert view["machine_sets"]["md-0"] == {"replicas": 2, "running": 2, "desired": 0, "up_to_date": None}
    assert "md-0" not in [m["set"] for m in view["machines"] if m["outdated"] is not None]


def test_an_invalid_spec_reports_without_the_counts_and_warns(launched):
    spec = spec_of(control_plane={"replicas": 2, "ami_id": AMI})

    result, failed = info({"cluster": spec})

    assert not failed, result.get("msg")
    assert result["cluster"]["phase"] == "Provisioned"
    assert result["cluster"]["machine_sets"]["md-0"]["desired"] is None
    assert any("cluster.control_plane.replicas: 2 is even" in warning for warning in result["warnings"])


def test_machines_of_the_hash_before_it_left_out_the_ami_are_up_to_date(launched):
    old, forged = sorted(launched.ec2.describe_instances(Filters=[{"Name": "tag:" + naming.MACHINE_SET_TAG, "Values": ["md-0"]}])[
        "Reservations"], key=lambda r: r["Instances"][0]["InstanceId"])
    legacy = instances.legacy_spec_hash("md-0", machine_set_spec(resolve(spec_of()), "md-0"), AMI)
    launched.ec2.create_tags(Resources=[old["Instances"][0]["InstanceId"]], Tags=[{"Key": naming.SPEC_HASH_TAG, "Value": legacy}])
    launched.ec2.create_tags(Resources=[forged["Instances"][0]["InstanceId"]], Tags=[{"Key": naming.SPEC_HASH_TAG, "Value": "0123456789ab"}])

    view = info({"cluster": spec_of()})[0]["cluster"]

    assert view["machine_sets"]["md-0"]["up_to_date"] == 1
    assert {m["instance_id"]: m["outdated"] for m in view["machines"] if m["set"] == "md-0"} == {
        old["Instances"][0]["InstanceId"]: False, forged["Instances"][0]["InstanceId"]: True}


def test_the_spec_costs_no_further_aws_call(launched, aws_calls):
    aws_calls.clear()
    info({"cluster": spec_of()})
    without = list(aws_calls)
    aws_calls.clear()
    info({"name": "capi-example"})

    assert sorted(without) == sorted(aws_calls), "desired and up to date come from the spec alone"


def test_a_cluster_that_owns_nothing_is_not_found(moto_aws):
    result, failed = info({"cluster": spec_of(name="ghost")})

    assert not failed
    assert result["cluster"]["phase"] == "NotFound" and result["cluster"]["name"] == "ghost"
    assert result["cluster"]["machine_sets"]["md-0"] == {"replicas": 0, "running": 0, "desired": 2, "up_to_date": 0}
