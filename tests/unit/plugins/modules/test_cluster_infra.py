"""kubecluster.aws.cluster_infra against moto in process: the whole AWS side in one module, each type read once."""

import collections
import json
import time
from unittest import mock

import boto3
import pytest

from helpers import moto_fixes
from helpers import moto_timing
from helpers.aws import AMI, CLUSTER, KUBERNETES_VERSION, LEASE, REGION
from helpers.aws import KEY_NAME as KEY
from helpers.module_runner import run_module

PROFILES = ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io")
SPEC = {
    "name": CLUSTER,
    "region": REGION,
    "kubernetes_version": KUBERNETES_VERSION,
    "ssh_key_name": KEY,
    "network": {"availability_zones": 3, "nat_gateways": "per_az", "bastion": {"enabled": True, "ami_id": AMI}},
    "control_plane": {"replicas": 1, "ami_id": AMI},
    "machine_deployments": [{"name": "md-0", "replicas": 2, "ami_id": AMI}],
}
# One read per resource type of the example: the floor of a no-op reconcile (issue 9).
FLOOR = sorted([
    ("ec2", "DescribeVpcs"), ("ec2", "DescribeVpcAttribute"), ("ec2", "DescribeVpcAttribute"), ("ec2", "DescribeSubnets"),
    ("ec2", "DescribeRouteTables"), ("ec2", "DescribeInternetGateways"), ("ec2", "DescribeNatGateways"),
    ("ec2", "DescribeSecurityGroups"), ("ec2", "DescribeInstances"),
    ("elbv2", "DescribeLoadBalancers"), ("elbv2", "DescribeTargetGroups"),
    ("elbv2", "DescribeListeners"), ("elbv2", "DescribeLoadBalancerAttributes"),
    ("elbv2", "DescribeTargetGroupAttributes"), ("elbv2", "DescribeTargetHealth"),
    ("elbv2", "DescribeTags"),
])


@pytest.fixture
def account(ec2, monkeypatch):
    moto_fixes.apply(monkeypatch)
    iam = boto3.client("iam", region_name=REGION)
    for profile in PROFILES:
        iam.create_instance_profile(InstanceProfileName=profile)
    ec2.create_key_pair(KeyName=KEY)
    return ec2


def infra(check_mode=False, diff=False, **options):
    return run_module("cluster_infra", dict({"cluster": SPEC, "wait_timeout": 60, "wait_delay": 1}, **options), check_mode, diff)


def test_create_then_a_rerun_reads_each_type_once_and_writes_nothing(account, aws_calls):
    created, failed = infra()
    assert not failed, created.get("msg")
    assert created["changed"] is True
    assert created["status"]["phase"] == "Provisioned"
    assert sorted(m["set"] for m in created["machines"]) == ["bastion", "control-plane", "md-0", "md-0"]
    assert created["surplus"] == [] and created["network"]["vpc_id"].startswith("vpc-")
    assert created["load_balancer"]["control_plane_endpoint"].endswith(":6443")
    assert created["cluster"]["network"]["availability_zones"] == ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    aws_calls.clear()

    again, failed = infra()

    assert not failed, again.get("msg")
    assert again["changed"] is False and again["plan"] == []
    assert aws_calls.writes() == []
    assert sorted(aws_calls) == FLOOR
    assert again["status"]["phase"] == "Provisioned" and again["launches"] == []
    assert [m["instance_id"] for m in again["machines"]] == [m["instance_id"] for m in created["machines"]]
    assert again["network"] == created["network"]
    assert again["elastic_ips"] == {"quota": None, "in_use": None, "owned": 3}
    assert len(again["status"]["elastic_ips"]) == 3


class Clock:
    """A clock that only a sleep moves: AWS's transitions (moto_timing) pass as fast as the module's waits poll."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_one_wait_reads_again_only_what_aws_moves_on(account, aws_calls, monkeypatch):
    # NAT gateways pending 90 s, machines 40 s, the NLB provisioning 150 s (apiserver_lb's wait for the control
    # plane to run, every 5 s, takes the first 40): a dozen polls at wait_delay 7. Once the network is there, each
    # poll reads the NAT gateways, the machines and the load balancer, nothing else.
    clock = Clock()
    monkeypatch.setattr(time, "sleep", clock.sleep)
    with moto_timing.applied(1.0, clock=clock):
        created, failed = infra(wait_delay=7, wait_timeout=600)

    assert not failed, created.get("msg")
    assert created["status"]["phase"] == "Provisioned" and created["status"]["load_balancer"]["state"] == "active"
    polls = clock.sleeps.count(7) + 1
    assert polls >= 10, clock.sleeps
    reads = collections.Counter(operation for _service, operation in aws_calls)
    for polled in ("DescribeNatGateways", "DescribeInstances", "DescribeLoadBalancers"):
        assert reads[polled] >= polls, (polled, reads)
    for settled in ("DescribeVpcs", "DescribeSubnets", "DescribeRouteTables", "DescribeSecurityGroups", "DescribeInternetGateways"):
        assert reads[settled] <= 4, (settled, reads)
    assert reads["DescribeTags"] <= 3, reads


def test_check_mode_returns_the_whole_plan_and_changes_nothing(account, aws_calls):
    preview, failed = infra(check_mode=True, diff=True)

    assert not failed, preview.get("msg")
    assert aws_calls.writes() == []
    planned = {(p["action"], p["resource"]) for p in preview["plan"]}
    assert {("create", "vpc"), ("create", "nat-gateway"), ("create", "ec2 instances"), ("create", "load balancer")} <= planned
    assert preview["changed"] is True
    assert preview["diff"]["prepared"].startswith("kubecluster.aws.cluster_infra capi-example in ap-northeast-2\n")
    assert "+ vpc" in preview["diff"]["prepared"]


def test_scaling_up_launches_only_the_new_machines_and_a_scale_down_reports_the_surplus(account):
    created, failed = infra()
    assert not failed, created.get("msg")

    more, failed = infra(replicas={"md-0": 3})
    assert not failed, more.get("msg")
    assert [p["action"] for p in more["plan"] if p["resource"] == "ec2 instances"] == ["create"]
    assert more["launches"] == ["md-0"] and len(more["machines"]) == 5

    fewer, failed = infra()
    assert not failed, fewer.get("msg")
    assert fewer["changed"] is False and [m["set"] for m in fewer["surplus"]] == ["md-0"]


@pytest.mark.parametrize("options, message", [
    ({"cluster": dict(SPEC, control_plane={"replicas": 2})}, "cluster.control_plane.replicas: 2 is even"),
    ({"surge": {"md-9": 1}}, "surge.md-9: not a machine set of the spec"),
    ({"replicas": {"bastion": 2}}, "replicas.bastion"),
    ({"wait_delay": 0}, "wait_delay: must be at least 1 second"),
    ({"lease": {"ttl": 5}}, "lease.ttl: must be from 60 to"),
])
def test_bad_input_fails_before_any_aws_call(aws_env, options, message):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = infra(**options)
    assert failed and message in result["msg"]
    api.assert_not_called()


def test_a_missing_key_pair_is_refused_before_any_write(ec2, aws_calls):
    iam = boto3.client("iam", region_name=REGION)
    for profile in PROFILES:
        iam.create_instance_profile(InstanceProfileName=profile)
    aws_calls.clear()

    result, failed = infra()

    assert failed and "cluster.ssh_key_name: key pair 'jonnung' does not exist" in result["msg"]
    assert aws_calls.writes() == []


def test_a_misspelt_new_zone_is_refused_before_any_write_though_nothing_launches(account, aws_calls):
    # No machine launches and the single NAT gateway needs no new address, so no other pre-check runs: the new zone
    # alone, not yet among the cluster's subnets' zones, makes the run check the named zones against the region.
    named = dict(SPEC, network=dict(SPEC["network"], availability_zones=["ap-northeast-2a", "ap-northeast-2b"], nat_gateways="single"))
    created, failed = infra(cluster=named)
    assert not failed, created.get("msg")
    aws_calls.clear()

    typo = dict(named, network=dict(named["network"], availability_zones=["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2z"]))
    result, failed = infra(cluster=typo)

    assert failed and "ap-northeast-2z" in result["msg"], result.get("msg")
    assert aws_calls.writes() == []


# --- the run lease ----------------------------------------------------------------------------

def lease_value(ssm):
    found = ssm.get_parameters(Names=[LEASE])["Parameters"]
    return json.loads(found[0]["Value"]) if found else None


def test_the_run_lease_is_taken_first_held_during_the_run_and_given_back_when_asked(account, ssm, aws_calls):
    held = infra(lease={"holder": "alice create_cluster.yml"})
    result, failed = held
    assert not failed, result.get("msg")
    assert aws_calls[0] == ("ssm", "PutParameter")  # before any EC2 or load balancing call
    lease = result["lease"]
    assert lease["outcome"] == "acquired" and lease["holder"] == "alice create_cluster.yml" and lease["token"]
    assert lease["released"] is False and lease_value(ssm)["token"] == lease["token"]
    ssm.delete_parameter(Name=LEASE)
    aws_calls.clear()

    again, failed = infra(lease={"holder": "alice create_cluster.yml", "release": True})

    assert not failed, again.get("msg")
    assert again["changed"] is False, "taking and giving back the lease is no change to the cluster"
    assert again["lease"]["released"] is True and again["lease"]["token"] is None
    assert lease_value(ssm) is None
    assert aws_calls.writes() == [("ssm", "PutParameter"), ("ssm", "DeleteParameter")]


def test_a_lease_another_run_holds_fails_before_any_other_aws_call(account, ssm, aws_calls):
    theirs = {"token": "0f8c6c3e-2b7a-4f53-9a57-5f0e2f2f9d71", "holder": "AWX job 17", "host": "awx", "pid": 4242,
              "since": "2099-01-01T00:00:00Z", "expires": "2099-01-01T00:30:00Z"}
    ssm.put_parameter(Name=LEASE, Type="String", Value=json.dumps(theirs))
    aws_calls.clear()

    result, failed = infra(lease={"holder": "bob", "release": True})

    assert failed and "is being changed by AWX job 17" in result["msg"]
    assert result["lease"]["outcome"] == "held" and result["lease"]["holder"] == "AWX job 17"
    assert {service for service, _operation in aws_calls} == {"ssm"}
    assert aws_calls.writes() == [("ssm", "PutParameter")]  # create-if-absent, refused: the parameter exists
    assert lease_value(ssm)["token"] == theirs["token"]


def test_a_failed_run_returns_its_lease_or_gives_it_back(ec2, ssm, aws_calls):
    # No key pair: the account check fails after the lease was taken.
    iam = boto3.client("iam", region_name=REGION)
    for profile in PROFILES:
        iam.create_instance_profile(InstanceProfileName=profile)

    kept, failed = infra(lease={"holder": "alice"})
    assert failed and "ssh_key_name" in kept["msg"]
    assert kept["lease"]["token"] == lease_value(ssm)["token"], "the playbook's rescue gives it back with this token"
    ssm.delete_parameter(Name=LEASE)

    given_back, failed = infra(lease={"holder": "alice", "release": True})
    assert failed and "ssh_key_name" in given_back["msg"]
    assert given_back["lease"]["released"] is True and lease_value(ssm) is None


def test_check_mode_only_reads_the_lease(account, ssm, aws_calls):
    preview, failed = infra(check_mode=True, lease={"holder": "alice", "release": True})
    assert not failed, preview.get("msg")
    assert preview["lease"]["outcome"] == "would_acquire" and preview["lease"]["token"] is None
    assert aws_calls.writes() == [] and lease_value(ssm) is None


def _with(**changes):
    spec = json.loads(json.dumps(SPEC))
    for key, value in changes.items():
        spec[key] = value
    return spec


def _tags(resource):
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", resource.get("TagSet")) or []}


def test_changed_additional_tags_reach_every_owned_resource_in_batches_and_a_rerun_is_at_the_floor(account, aws_calls):
    created, failed = infra()
    assert not failed, created.get("msg")
    aws_calls.clear()

    tagged = _with(additional_tags={"team": "platform"})
    preview, failed = infra(check_mode=True, diff=True, cluster=tagged)
    assert not failed, preview.get("msg")
    assert aws_calls.writes() == []
    assert "~ ec2 instance tags" in preview["diff"]["prepared"] and "~ vpc tags" not in preview["diff"]["prepared"]
    assert "set kubecluster.aws/managed-tags=team, team=platform" in preview["diff"]["prepared"]
    aws_calls.clear()

    changed, failed = infra(cluster=tagged)
    assert not failed, changed.get("msg")
    # One CreateTags for the whole network, one per machine set (instances, volumes and interfaces together).
    assert aws_calls.writes().count(("ec2", "CreateTags")) == 4
    owned = [r for reservation in account.describe_instances()["Reservations"] for r in reservation["Instances"]]
    everything = (account.describe_vpcs()["Vpcs"] + account.describe_subnets()["Subnets"] + account.describe_route_tables()["RouteTables"]
                  + account.describe_internet_gateways()["InternetGateways"] + account.describe_nat_gateways()["NatGateways"]
                  + account.describe_addresses()["Addresses"] + account.describe_security_groups()["SecurityGroups"] + owned)
    mine = [r for r in everything if "sigs.k8s.io/cluster-api-provider-aws/cluster/" + CLUSTER in _tags(r)]
    volumes = account.describe_volumes()["Volumes"]
    interface_ids = [n["NetworkInterfaceId"] for i in owned for n in i["NetworkInterfaces"]]
    interfaces = account.describe_network_interfaces(NetworkInterfaceIds=interface_ids)["NetworkInterfaces"]
    assert len(mine) == 1 + 6 + 6 + 1 + 3 + 3 + 5 + 4 and len(volumes) == 4 and len(interfaces) == 4
    for resource in mine + volumes + interfaces:
        assert _tags(resource).get("team") == "platform", resource
    aws_calls.clear()

    again, failed = infra(cluster=tagged)
    assert not failed, again.get("msg")
    assert again["changed"] is False and aws_calls.writes() == []
    assert sorted(aws_calls) == FLOOR

    elbv2 = boto3.client("elbv2", region_name=REGION)
    arns = [b["LoadBalancerArn"] for b in elbv2.describe_load_balancers()["LoadBalancers"]]
    arns += [g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]]
    assert [_tags(d).get("team") for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]] == ["platform", "platform"]

    untagged, failed = infra()
    assert not failed, untagged.get("msg")
    assert aws_calls.writes().count(("ec2", "DeleteTags")) == 4 and aws_calls.writes().count(("elbv2", "RemoveTags")) == 2
    assert not any("team" in _tags(v) for v in account.describe_volumes()["Volumes"])
    assert [_tags(d).get("team") for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]] == [None, None]


def test_another_load_balancer_scheme_is_refused_before_any_write(account, aws_calls):
    created, failed = infra()
    assert not failed, created.get("msg")
    aws_calls.clear()
    internal = _with(network=dict(SPEC["network"], api_load_balancer={"scheme": "internal"}), additional_tags={"team": "x"})

    refused, failed = infra(cluster=internal)

    assert failed
    assert refused["msg"].startswith("cluster.network.api_load_balancer.scheme: the API load balancer capi-example-apiserver is "
                                     "internet-facing, not internal")
    assert aws_calls.writes() == []


def test_a_disabled_bastion_loses_its_machine_and_its_security_group(account, aws_calls):
    created, failed = infra()
    assert not failed, created.get("msg")
    no_bastion = _with(network=dict(SPEC["network"], bastion={"enabled": False}))

    preview, failed = infra(check_mode=True, diff=True, cluster=no_bastion)
    assert not failed, preview.get("msg")
    assert "- security-group capi-example-bastion" in preview["diff"]["prepared"]
    changed, failed = infra(cluster=no_bastion)
    assert not failed, changed.get("msg")
    groups = [g["GroupName"] for g in account.describe_security_groups()["SecurityGroups"]]
    assert "capi-example-bastion" not in groups and "capi-example-node" in groups
    aws_calls.clear()

    again, failed = infra(cluster=no_bastion)
    assert not failed, again.get("msg")
    assert again["changed"] is False and aws_calls.writes() == []
    assert sorted(aws_calls) == FLOOR
