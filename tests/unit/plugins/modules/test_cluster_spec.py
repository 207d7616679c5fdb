"""cluster_spec: offline validation first, then read-only account checks."""

from unittest import mock

import boto3
import pytest

from helpers.aws import AMI, CLUSTER, KUBERNETES_VERSION, OWNER, REGION, ROLE, publish_lookup_images
from helpers.module_runner import run_module

SPEC = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION}


PROFILES = ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io")


@pytest.fixture
def aws(ec2):
    """conftest's ec2, in an account with the instance profiles the spec names and the images its lookups find."""
    iam = boto3.client("iam", region_name=REGION)
    for profile in PROFILES:
        iam.create_instance_profile(InstanceProfileName=profile)
    publish_lookup_images(ec2, ["v1.31.2", "v1.31.4", "v1.31.5", "v1.32.0", "v1.32.1", "v1.33.0"])
    return ec2


def test_missing_instance_profiles_name_the_iam_stack(aws):
    boto3.client("iam", region_name=REGION).delete_instance_profile(InstanceProfileName=PROFILES[1])
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert failed
    assert ("cluster.machine_deployments[0].iam_instance_profile: instance profile 'nodes.cluster-api-provider-aws.sigs.k8s.io' "
            "does not exist; create the IAM stack once per account (ansible-playbook kubecluster.aws.bootstrap_iam)") in result["msg"]
    assert "cluster.control_plane.iam_instance_profile" not in result["msg"]


def test_invalid_spec_fails_before_any_aws_call(aws_env):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, control_plane={"replicas": 2})})
    assert failed
    assert "cluster.control_plane.replicas: 2 is even" in result["msg"]
    assert result["errors"] == [line for line in result["errors"] if line.startswith("cluster.")]
    api.assert_not_called()


def test_offline_validation_makes_no_call(aws_env):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("cluster_spec", {"cluster": SPEC, "check_account": False})
    assert not failed and not result["changed"]
    assert result["cluster"]["network"]["availability_zones"] == 3
    api.assert_not_called()


def test_account_check_resolves_zones_and_reports_eips(aws):
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert not failed, result
    assert result["cluster"]["network"]["availability_zones"] == ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    assert result["cluster"]["machine_deployments"][0]["availability_zones"] == result["cluster"]["network"]["availability_zones"]
    assert result["nat_gateway_count"] == 3
    assert result["elastic_ips"] == {"quota": 5, "in_use": 0, "owned": 0}
    assert result["changed"] is False


def test_eip_quota_exhausted_fails_naming_nat_layout(aws):
    for unused_index in range(3):
        aws.allocate_address(Domain="vpc")
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert failed
    assert "cluster.network.nat_gateways: per_az needs 3 more Elastic IP(s) but only 2" in result["msg"]
    single, failed = run_module("cluster_spec", {"cluster": dict(SPEC, network={"nat_gateways": "single"})})
    assert not failed and single["nat_gateway_count"] == 1


def test_eips_the_cluster_already_owns_count_as_available(aws):
    for unused_index in range(2):
        aws.allocate_address(Domain="vpc")
    for unused_index in range(3):
        aws.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [
            {"Key": "sigs.k8s.io/cluster-api-provider-aws/cluster/capi-example", "Value": "owned"}]}])
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert not failed, result["msg"]
    # no new address needed: the quota is not read
    assert result["elastic_ips"] == {"quota": None, "in_use": None, "owned": 3}


def test_more_zones_than_the_region_has(aws):
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, network={"availability_zones": 6})})
    assert failed
    assert "cluster.network.availability_zones: 6 zones asked for but ap-northeast-2 has only" in result["msg"]


def test_missing_key_pair(aws):
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, ssh_key_name="jonnung")})
    assert failed and "cluster.ssh_key_name: key pair 'jonnung' does not exist" in result["msg"]
    aws.create_key_pair(KeyName="jonnung")
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, ssh_key_name="jonnung")})
    assert not failed


def owned_tags(cluster=CLUSTER, **tags):
    return [{"ResourceType": "elastic-ip", "Tags": [{"Key": "sigs.k8s.io/cluster-api-provider-aws/cluster/" + cluster, "Value": "owned"}]
             + [{"Key": k, "Value": v} for k, v in tags.items()]}]


def full_cluster(ec2, replicas=None):
    """The machines of SPEC at its replicas (bastion off), tagged by set as machine_set tags them, and its 3 NAT EIPs."""
    replicas = replicas or {"control-plane": 1, "md-0": 1}
    for set_name, count in replicas.items():
        for index in range(count):
            tags = {"Name": "%s-%s-%d" % (CLUSTER, set_name, index), "sigs.k8s.io/cluster-api-provider-aws/cluster/" + CLUSTER: "owned",
                    "kubecluster.aws/machine-set": set_name, VERSION_TAG: KUBERNETES_VERSION}
            ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    for unused_index in range(3):
        ec2.allocate_address(Domain="vpc", TagSpecifications=owned_tags())


FULL_SPEC = dict(SPEC, ssh_key_name="jonnung", network={"bastion": {"enabled": False}}, machine_deployments=[{"name": "md-0", "replicas": 1}])


def test_a_cluster_at_its_spec_reads_only_its_machines_addresses_and_zones(aws, aws_calls):
    full_cluster(aws)
    # no key pair and no instance profile: not checked, as nothing is launched
    boto3.client("iam", region_name=REGION).delete_instance_profile(InstanceProfileName=PROFILES[1])
    aws_calls.clear()
    result, failed = run_module("cluster_spec", {"cluster": FULL_SPEC})
    assert not failed, result["msg"]
    assert sorted(aws_calls.operations()) == ["DescribeAddresses", "DescribeAvailabilityZones", "DescribeInstances"]
    assert result["launches"] == [] and result["elastic_ips"]["quota"] is None


def test_named_zones_of_a_cluster_at_its_spec_are_checked_once_as_its_subnets_are_not_read(aws, aws_calls):
    # cluster_spec does not read the subnets, so it cannot tell a zone new to the cluster: it checks the named zones
    # (cluster_infra, which reads the subnets anyway, checks them only for a launch or a new zone).
    full_cluster(aws)
    aws_calls.clear()
    zones = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    result, failed = run_module("cluster_spec", {"cluster": dict(FULL_SPEC, network={"bastion": {"enabled": False}, "availability_zones": zones})})
    assert not failed, result["msg"]
    assert sorted(aws_calls.operations()) == ["DescribeAddresses", "DescribeAvailabilityZones", "DescribeInstances"]
    assert result["cluster"]["machine_deployments"][0]["availability_zones"] == zones


def test_a_set_short_of_machines_checks_the_key_pair_profiles_and_named_zones(aws, aws_calls):
    full_cluster(aws)
    aws_calls.clear()
    spec = dict(FULL_SPEC, network={"bastion": {"enabled": False}, "availability_zones": ["ap-northeast-2a", "ap-northeast-2z"]},
                machine_deployments=[{"name": "md-0", "replicas": 2}])
    result, failed = run_module("cluster_spec", {"cluster": spec})
    assert failed
    assert "ap-northeast-2z not available" in result["msg"]
    spec["network"]["availability_zones"] = 3
    result, failed = run_module("cluster_spec", {"cluster": spec})
    assert failed and "cluster.ssh_key_name: key pair 'jonnung' does not exist" in result["msg"]
    assert "DescribeKeyPairs" in aws_calls.operations() and "GetInstanceProfile" in aws_calls.operations()
    aws.create_key_pair(KeyName="jonnung")
    result, failed = run_module("cluster_spec", {"cluster": spec})
    assert not failed, result["msg"]
    assert result["launches"] == ["md-0"]


def test_quick_start_variables(aws, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "ap-northeast-2")
    monkeypatch.setenv("KUBERNETES_VERSION", "v1.31.4")
    monkeypatch.setenv("WORKER_MACHINE_COUNT", "2")
    result, failed = run_module("cluster_spec", {"cluster": {"name": "from-env"}})
    assert not failed, result
    assert result["cluster"]["machine_deployments"][0]["replicas"] == 2


# --- a Kubernetes version change on a running cluster ------------------------------------------

VERSION_TAG = "kubecluster.aws/kubernetes-version"  # spelled out: the test checks the collection's tag key


def launch(ec2, name, role, version=None, cluster=CLUSTER):
    """One instance tagged as the collection tags a machine of ``cluster`` (no version tag when ``version`` is None)."""
    tags = {"Name": name, "sigs.k8s.io/cluster-api-provider-aws/cluster/" + cluster: "owned", ROLE: role}
    if version:
        tags[VERSION_TAG] = version
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["Instances"][0]
    return instance["InstanceId"]


def test_a_version_change_on_a_running_cluster_is_refused_naming_the_machines(aws, aws_calls):
    control_plane = launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.31.4")
    worker = launch(aws, "capi-example-md-0-d3e4f", "node", "v1.31.4")
    aws_calls.clear()
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, kubernetes_version="v1.32.0")})
    assert failed
    assert ("cluster.kubernetes_version: v1.32.0, but cluster capi-example is running and capi-example-control-plane-a1b2c (%s) "
            "runs v1.31.4, capi-example-md-0-d3e4f (%s) runs v1.31.4; nothing was changed. Keep kubernetes_version: v1.31.4 "
            "here, and move the cluster to v1.32.0 with the rolling upgrade: "
            "ansible-playbook kubecluster.aws.upgrade_cluster -e @spec.yml" % (control_plane, worker)) in result["msg"]
    assert aws_calls.written() == []
    # one tag-filtered read of the machines, beside the account checks
    assert aws_calls.operations().count("DescribeInstances") == 1
    (filters,) = [params["Filters"] for params in aws_calls.params_of("DescribeInstances")]
    assert {"Name": "tag:" + OWNER, "Values": ["owned"]} in filters
    assert {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]} in filters


def test_the_same_version_on_a_running_cluster_passes(aws):
    launch(aws, "capi-example-control-plane-a1b2c", "control-plane", KUBERNETES_VERSION)
    launch(aws, "capi-example-md-0-d3e4f", "node", KUBERNETES_VERSION)
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert not failed, result["msg"]


def test_a_version_without_running_machines_passes(aws):
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, kubernetes_version="v1.32.0")})
    assert not failed, result["msg"]


def test_the_bastion_terminated_machines_and_other_clusters_do_not_hold_the_version(aws):
    launch(aws, "capi-example-bastion-g5h6i", "bastion")
    gone = launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.31.4")
    aws.terminate_instances(InstanceIds=[gone])
    launch(aws, "other-control-plane-j7k8l", "control-plane", "v1.31.4", cluster="other")
    # machines launched before the version tag existed are not guessed at (the node-side check covers them)
    launch(aws, "capi-example-md-0-m9n0p", "node")
    result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, kubernetes_version="v1.32.0")})
    assert not failed, result["msg"]


# --- kubernetes_upgrade: what an upgrade may do -------------------------------------------------

def upgrade(version, **options):
    return run_module("cluster_spec", dict(options, cluster=dict(SPEC, kubernetes_version=version), kubernetes_upgrade=True))


def test_a_one_minor_upgrade_passes_and_says_what_runs(aws, aws_calls):
    launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.31.4")
    launch(aws, "capi-example-md-0-d3e4f", "node", "v1.31.4")
    aws_calls.clear()

    result, failed = upgrade("v1.32.0")

    assert not failed, result["msg"]
    assert result["upgrade"] == {"from": ["v1.31.4"], "to": "v1.32.0", "minor": True, "needed": True}
    assert result["cluster"]["kubernetes_version"] == "v1.32.0"
    assert aws_calls.written() == []


def test_a_patch_upgrade_passes_and_a_half_done_one_too(aws):
    launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.31.5")
    launch(aws, "capi-example-md-0-d3e4f", "node", "v1.31.4")

    result, failed = upgrade("v1.31.5")

    assert not failed, result["msg"]
    assert result["upgrade"] == {"from": ["v1.31.4", "v1.31.5"], "to": "v1.31.5", "minor": False, "needed": True}


def test_without_a_version_change_no_upgrade_is_needed(aws):
    launch(aws, "capi-example-control-plane-a1b2c", "control-plane", KUBERNETES_VERSION)

    for options in ({"kubernetes_upgrade": True}, {}):
        result, failed = run_module("cluster_spec", dict(options, cluster=SPEC))
        assert not failed, result["msg"]
        assert result["upgrade"] == {"from": [KUBERNETES_VERSION], "to": KUBERNETES_VERSION, "minor": False, "needed": False}


def test_a_skipped_minor_is_refused_naming_the_machines_behind(aws, aws_calls):
    control_plane = launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.32.1")
    worker = launch(aws, "capi-example-md-0-d3e4f", "node", "v1.31.4")
    aws_calls.clear()

    result, failed = upgrade("v1.33.0")

    assert failed
    assert ("cluster.kubernetes_version: v1.33.0 skips a minor version: capi-example-md-0-d3e4f (%s) runs v1.31.4; kubeadm "
            "upgrades one minor at a time, nothing was changed; upgrade to v1.32 (its newest patch) first, then to v1.33.0"
            % worker) in result["msg"]
    assert control_plane not in result["msg"]
    assert aws_calls.written() == []


def test_a_downgrade_is_refused_naming_the_newer_machines(aws, aws_calls):
    launch(aws, "capi-example-control-plane-a1b2c", "control-plane", "v1.31.4")
    aws_calls.clear()

    result, failed = upgrade("v1.31.2")

    assert failed
    assert ("cluster.kubernetes_version: v1.31.2 is older than what cluster capi-example runs (capi-example-control-plane-a1b2c "
            in result["msg"])
    assert "cannot be downgraded" in result["msg"] and "set kubernetes_version: v1.31.4 or newer" in result["msg"]
    assert aws_calls.written() == []


# --- replicas: the counts scale_cluster.yml asks for --------------------------------------------

def test_replicas_override_the_spec_before_validation(aws_env):
    spec = dict(SPEC, machine_deployments=[{"name": "md-0", "replicas": 2}, {"name": "md-1", "replicas": 1}])

    result, failed = run_module("cluster_spec", {"cluster": spec, "check_account": False,
                                                 "replicas": {"md-1": 4, "control-plane": 3, "md-0": "0"}})

    assert not failed, result.get("msg")
    assert [d["replicas"] for d in result["cluster"]["machine_deployments"]] == [0, 4]
    assert result["cluster"]["control_plane"]["replicas"] == 3


def test_replicas_of_the_default_machine_deployment(aws_env):
    result, failed = run_module("cluster_spec", {"cluster": SPEC, "check_account": False, "replicas": {"md-0": 5}})

    assert not failed, result.get("msg")
    assert result["cluster"]["machine_deployments"][0]["name"] == "md-0"
    assert result["cluster"]["machine_deployments"][0]["replicas"] == 5


@pytest.mark.parametrize("replicas, message", [
    ({"md-9": 1}, "replicas.md-9: it is not a machine set of the spec; name control-plane, md-0"),
    ({"bastion": 1}, "replicas.bastion: the bastion is one machine or none"),
    ({"md-0": -1}, "replicas.md-0: -1 is not a machine count"),
    ({"md-0": "two"}, "replicas.md-0: 'two' is not a machine count"),
    ({"md-0": True}, "replicas.md-0: True is not a machine count"),
    ({"control-plane": 2}, "cluster.control_plane.replicas: 2 is even"),
])
def test_bad_replicas_fail_before_any_aws_call_naming_the_set(aws_env, replicas, message):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("cluster_spec", {"cluster": SPEC, "replicas": replicas})

    assert failed and message in result["msg"]
    api.assert_not_called()


def test_kubernetes_upgrade_needs_the_account_read(aws_env):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("cluster_spec", {"cluster": SPEC, "check_account": False, "kubernetes_upgrade": True})

    assert failed and result["msg"].startswith("kubernetes_upgrade: needs check_account: true")
    api.assert_not_called()
