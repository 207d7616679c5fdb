"""The spec: defaults, quick-start variables and every validation rule."""

import copy

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.module_utils import spec as spec_mod
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, resolve

from conftest import REPO

MINIMAL = {"name": "capi-example", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4"}


def errors_of(raw, environ=None):
    with pytest.raises(SpecError) as caught:
        resolve(raw, environ or {})
    return caught.value.errors


def with_(path, value, base=None):
    raw = copy.deepcopy(base or MINIMAL)
    node = raw
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return raw


def test_example_spec_resolves_with_capa_and_safer_defaults():
    with open(REPO + "/examples/capi-example.yml") as handle:
        spec = resolve(yaml.safe_load(handle)["cluster"])
    assert spec["name"] == "capi-example"
    assert spec["region"] == "ap-northeast-2"
    assert spec["network"]["vpc_cidr"] == "10.0.0.0/16"
    assert spec["network"]["availability_zones"] == 3
    assert spec["network"]["nat_gateways"] == "per_az"
    assert spec["network"]["pod_cidr"] == "192.168.0.0/16"
    assert spec["network"]["api_load_balancer"] == {
        "type": "nlb", "scheme": "internet-facing", "allowed_cidrs": ["0.0.0.0/0"], "cross_zone": False,
        "health_check_protocol": "HTTPS"}
    assert spec["instance_metadata"] == {"http_tokens": "required", "http_put_response_hop_limit": 2}
    assert spec["control_plane"]["root_volume"] == {"size": 80, "type": "gp3", "encrypted": True, "kms_key_id": None}
    assert spec["control_plane"]["iam_instance_profile"] == "control-plane.cluster-api-provider-aws.sigs.k8s.io"
    assert [(d["name"], d["replicas"], d["instance_type"]) for d in spec["machine_deployments"]] == [("md-0", 2, "t3.large")]
    assert spec["machine_deployments"][0]["iam_instance_profile"] == "nodes.cluster-api-provider-aws.sigs.k8s.io"


def test_resolving_a_resolved_spec_changes_nothing():
    once = resolve(MINIMAL)
    assert resolve(copy.deepcopy(once)) == once


def test_quick_start_variables_fill_only_unset_fields():
    environ = {"AWS_REGION": "us-east-1", "AWS_SSH_KEY_NAME": "default", "KUBERNETES_VERSION": "v1.32.1",
               "AWS_CONTROL_PLANE_MACHINE_TYPE": "t3.xlarge", "AWS_NODE_MACHINE_TYPE": "m5.large",
               "CONTROL_PLANE_MACHINE_COUNT": "3", "WORKER_MACHINE_COUNT": "4"}
    spec = resolve({"name": "only-a-name"}, environ)
    assert spec["region"] == "us-east-1"
    assert spec["ssh_key_name"] == "default"
    assert spec["kubernetes_version"] == "v1.32.1"
    assert spec["control_plane"]["instance_type"] == "t3.xlarge"
    assert spec["control_plane"]["replicas"] == 3
    assert [(d["name"], d["replicas"], d["instance_type"]) for d in spec["machine_deployments"]] == [("md-0", 4, "m5.large")]
    written = resolve(dict(MINIMAL, control_plane={"replicas": 1}), environ)
    assert written["region"] == "ap-northeast-2" and written["control_plane"]["replicas"] == 1


def test_worker_count_defaults_to_cluster_api_one_and_version_gets_its_v():
    spec = resolve(dict(MINIMAL, kubernetes_version="1.31.4"))
    assert spec["kubernetes_version"] == "v1.31.4"
    assert spec["machine_deployments"][0]["replicas"] == 1  # Cluster API's MachineDeployment default, never 0 (issue 10)


@pytest.mark.parametrize("raw, expected", [
    (with_("network.natgateways", "single"), "cluster.network.natgateways: unknown key; did you mean nat_gateways?"),
    (with_("control_plane.replicas", 2), "cluster.control_plane.replicas: 2 is even"),
    (with_("control_plane.replicas", 0), "cluster.control_plane.replicas: must be an odd whole number"),
    (with_("kubernetes_version", "1.31"), "cluster.kubernetes_version: '1.31' is not a Kubernetes version"),
    (with_("kubernetes_version", 1.31), "cluster.kubernetes_version: 1.31 is not a Kubernetes version"),
    (with_("kubernetes_version", "v1.20.0"), "cluster.kubernetes_version: 'v1.20.0' is too old"),
    (with_("network.vpc_cidr", "10.0.0.1/16"), "has host bits set; use 10.0.0.0/16"),
    (with_("network.vpc_cidr", "10.0.0.0/33"), "is not an IPv4 CIDR"),
    (with_("network.vpc_cidr", "10.0.0.0/8"), "must have a prefix length from /16 to /24"),
    (with_("network.pod_cidr", "10.0.0.0/8"), "cluster.network.pod_cidr: 10.0.0.0/8 overlaps cluster.network.vpc_cidr"),
    (with_("network.availability_zones", 7), "must be a count from 1 to 6"),
    (with_("network.availability_zones", ["us-east-1a"]), "us-east-1a is not in region ap-northeast-2"),
    (with_("network.nat_gateways", "per-az"), "cluster.network.nat_gateways: must be one of per_az, single, none"),
    (with_("network.vpc_id", "vpc-0123456789abcdef0"), "cluster.network.subnet_ids: a bring-your-own VPC"),
    (with_("network.subnet_ids", ["subnet-0123456789abcdef0"]), "cluster.network.vpc_id: subnet_ids are only used"),
    (with_("name", "Capi_Example"), "cluster.name: 'Capi_Example' is not a valid cluster name"),
    (with_("region", "Seoul"), "cluster.region: 'Seoul' is not an AWS region name"),
    (with_("control_plane.instance_type", "large"), "is not an EC2 instance type"),
    (with_("control_plane.ami_id", "ubuntu"), "is not an AMI id"),
    (with_("network.bastion.enabled", "yes"), "must be true or false"),
    (with_("network.api_load_balancer.type", "alb"), "must be one of nlb, classic"),
    (with_("additional_tags", {"aws:owner": "me"}), "uses the prefix aws:"),
    (with_("additional_tags", {"k%02d" % i: "v" for i in range(41)}), "cluster.additional_tags: may hold at most 40 tags"),
    (with_("additional_tags", {("k%d" % i) * 20: "v" for i in range(10)}),
     "has keys of 409 characters in all (with a comma between two), over the 256 of the tag kubecluster.aws/managed-tags"),
    (with_("machine_deployments", [{"name": "md-0"}, {"name": "md-0"}]), "'md-0' is used twice"),
    (with_("machine_deployments", [{"name": "control-plane"}]), "'control-plane' is reserved"),
    (with_("machine_deployments", [{"name": "md-0", "replicas": -1}]), "replicas: must be a whole number from 0 to 1000"),
    (with_("machine_deployments", [{"name": "md-0", "size": 2}]), "cluster.machine_deployments[0].size: unknown key"),
    (with_("network.vpc_cidr", "10.0.0.0/24", with_("network.availability_zones", 6)), "too small for 6 availability zones"),
    ({"name": "no-region", "kubernetes_version": "v1.31.4"}, "cluster.region: required; set it, or export AWS_REGION"),
])
def test_each_problem_names_the_field_and_the_fix(raw, expected):
    errors = errors_of(raw)
    assert any(expected in line for line in errors), errors


def test_every_problem_is_reported_at_once():
    raw = with_("network.nat_gateways", "many", with_("control_plane.replicas", 4, with_("bogus", 1)))
    assert len(errors_of(raw)) == 3


def test_bad_quick_start_count_is_reported_with_the_variable():
    errors = errors_of({"name": "a", "region": "us-east-1", "kubernetes_version": "v1.31.4"}, {"WORKER_MACHINE_COUNT": "two"})
    assert any("WORKER_MACHINE_COUNT='two' is not a whole number" in line for line in errors)


def test_select_zones_takes_the_first_sorted_or_refuses_too_many():
    spec = resolve(MINIMAL)
    assert spec_mod.select_zones(spec, ["ap-northeast-2c", "ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2d"]) == [
        "ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    with pytest.raises(SpecError, match="3 zones asked for but ap-northeast-2 has only 2"):
        spec_mod.select_zones(spec, ["ap-northeast-2a", "ap-northeast-2b"])
    listed = resolve(with_("network.availability_zones", ["ap-northeast-2z"]))
    with pytest.raises(SpecError, match="ap-northeast-2z not available"):
        spec_mod.select_zones(listed, ["ap-northeast-2a"])


@pytest.mark.parametrize("mode, zones, in_use, owned, fails", [
    ("per_az", 3, 0, 0, False),
    ("per_az", 3, 3, 0, True),    # 3 needed, 2 free
    ("per_az", 3, 5, 3, False),   # a rerun: the cluster already holds its 3
    ("single", 3, 4, 0, False),
    ("single", 3, 5, 0, True),
    ("none", 3, 5, 0, False),
])
def test_eip_quota_check(mode, zones, in_use, owned, fails):
    spec = resolve(with_("network.nat_gateways", mode))
    names = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"][:zones]
    if fails:
        with pytest.raises(SpecError, match="cluster.network.nat_gateways: .* use nat_gateways: single"):
            spec_mod.check_against_account(spec, names, 5, in_use, owned)
    else:
        spec_mod.check_against_account(spec, names, 5, in_use, owned)


@pytest.mark.parametrize("mode, owned", [("per_az", 3), ("single", 1), ("none", 0)])
def test_eip_quota_over_already_is_no_error_when_nothing_new_is_needed(mode, owned):
    # An account using more EIPs than its quota (quota lowered, or EIPs from a racing run) must not
    # block a rerun that needs no new EIP: issue 12 saw "needs 0 more ... only 0 of 5 remain free".
    spec = resolve(with_("network.nat_gateways", mode))
    names = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]

    spec_mod.check_against_account(spec, names, 5, 6, owned)
    spec_mod.check_against_account(spec, names, 5, 5, owned)


def test_eip_quota_over_already_says_how_many_the_account_uses():
    spec = resolve(with_("network.nat_gateways", "per_az"))
    names = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]

    with pytest.raises(SpecError) as caught:
        spec_mod.check_against_account(spec, names, 5, 6, 1)

    message = caught.value.errors[0]
    assert "per_az needs 2 more Elastic IP(s) but the account already uses 6 of its 5 Elastic IPs in ap-northeast-2" in message
    assert "remain free" not in message and "needs 0" not in message


def test_eip_quota_message_names_what_remains_free():
    spec = resolve(with_("network.nat_gateways", "per_az"))
    names = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]

    with pytest.raises(SpecError) as caught:
        spec_mod.check_against_account(spec, names, 5, 3, 0)

    assert "per_az needs 3 more Elastic IP(s) but only 2 of the account's 5 remain free in ap-northeast-2" in caught.value.errors[0]


def test_missing_key_pair_is_named():
    spec = resolve(with_("ssh_key_name", "jonnung"))
    with pytest.raises(SpecError, match="cluster.ssh_key_name: key pair 'jonnung' does not exist"):
        spec_mod.check_against_account(spec, ["ap-northeast-2a"], 5, 0, 0, key_pairs=set())


def test_machine_set_spec_merges_cluster_settings():
    spec = spec_mod.with_zones(resolve(MINIMAL), ["ap-northeast-2a", "ap-northeast-2b"])
    control_plane = spec_mod.machine_set_spec(spec, "control-plane")
    assert control_plane["replicas"] == 1 and control_plane["public"] is False
    assert control_plane["availability_zones"] == ["ap-northeast-2a", "ap-northeast-2b"]
    bastion = spec_mod.machine_set_spec(spec, "bastion")
    assert bastion["public"] is True and bastion["availability_zones"] == ["ap-northeast-2a"]
    assert bastion["image_lookup"]["owner"] == "099720109477"
    worker = spec_mod.machine_set_spec(spec, "md-0")
    assert worker["iam_instance_profile"] == "nodes.cluster-api-provider-aws.sigs.k8s.io"
    with pytest.raises(SpecError, match="'md-9' is not a machine set of cluster capi-example"):
        spec_mod.machine_set_spec(spec, "md-9")


# --- day 2: rollout and removal settings ----------------------------------------------------------

def test_day_two_defaults_are_cluster_apis():
    spec = resolve(MINIMAL)

    (deployment,) = spec["machine_deployments"]
    assert (deployment["deletion_order"], deployment["max_surge"], deployment["max_unavailable"]) == ("random", 1, 0)
    assert spec["upgrade_strategy"] == "immutable"
    assert (spec["node_startup_timeout"], spec["node_drain_timeout"]) == (600, 600)
    set_spec = spec_mod.machine_set_spec(spec, "md-0")
    assert (set_spec["deletion_order"], set_spec["max_surge"], set_spec["max_unavailable"]) == ("random", 1, 0)


@pytest.mark.parametrize("raw, expected", [
    ({"machine_deployments": [{"name": "md-0", "deletion_order": "Newest"}]},
     "cluster.machine_deployments[0].deletion_order: must be one of random, newest, oldest, not 'Newest'"),
    ({"machine_deployments": [{"name": "md-0", "max_surge": -1}]},
     "cluster.machine_deployments[0].max_surge: must be a whole number from 0 to 1000, not -1"),
    ({"machine_deployments": [{"name": "md-0", "max_unavailable": "1"}]},
     "cluster.machine_deployments[0].max_unavailable: must be a whole number from 0 to 1000, not '1'"),
    ({"machine_deployments": [{"name": "md-0", "max_surge": 0, "max_unavailable": 0}]},
     "cluster.machine_deployments[0].max_surge: max_surge and max_unavailable are both 0, so a rolling upgrade could neither "
     "add nor remove a machine; set max_surge: 1 (launch first, the default) or max_unavailable: 1 (remove first)"),
    ({"upgrade_strategy": "inplace"}, "cluster.upgrade_strategy: must be one of immutable, in_place, not 'inplace'"),
    ({"node_startup_timeout": 10}, "cluster.node_startup_timeout: must be a whole number from 30 to 86400, not 10"),
    ({"node_drain_timeout": 0}, "cluster.node_drain_timeout: must be a whole number from 1 to 86400, not 0"),
])
def test_day_two_fields_name_the_field_and_the_fix(raw, expected):
    assert expected in errors_of(dict(MINIMAL, **raw))


def test_max_surge_zero_with_max_unavailable_passes():
    spec = resolve(dict(MINIMAL, machine_deployments=[{"name": "md-0", "max_surge": 0, "max_unavailable": 1}]))

    assert spec["machine_deployments"][0]["max_surge"] == 0


# --- version changes: refused outside an upgrade, one minor forward within one ------------------------

def machine(name, version):
    return {"name": name, "instance_id": "i-" + name, "kubernetes_version": version}


def test_a_version_change_outside_an_upgrade_points_at_the_upgrade_playbook():
    (error,) = spec_mod.version_change_errors(resolve(dict(MINIMAL, kubernetes_version="v1.32.0")), [machine("cp", "v1.31.4")])

    assert error.endswith("with the rolling upgrade: ansible-playbook kubecluster.aws.upgrade_cluster -e @spec.yml")
    assert "cp (i-cp) runs v1.31.4" in error


@pytest.mark.parametrize("target, running", [
    ("v1.31.5", ["v1.31.4"]),
    ("v1.32.0", ["v1.31.4"]),
    ("v1.32.0", ["v1.31.4", "v1.32.0"]),
    ("v1.31.4", ["v1.31.4"]),
    ("v1.32.0", []),
])
def test_patch_and_one_minor_upgrades_pass(target, running):
    spec = resolve(dict(MINIMAL, kubernetes_version=target))

    assert spec_mod.upgrade_errors(spec, [machine("m%d" % i, v) for i, v in enumerate(running)] + [machine("b", None)]) == []


def test_a_skipped_minor_names_the_machines_behind():
    spec = resolve(dict(MINIMAL, kubernetes_version="v1.33.2"))

    (error,) = spec_mod.upgrade_errors(spec, [machine("a", "v1.32.0"), machine("b", "v1.31.4"), machine("c", "v1.31.9")])

    assert error == ("cluster.kubernetes_version: v1.33.2 skips a minor version: b (i-b) runs v1.31.4, c (i-c) runs v1.31.9; kubeadm "
                     "upgrades one minor at a time, nothing was changed; upgrade to v1.32 (its newest patch) first, then to v1.33.2")


def test_a_downgrade_names_the_newer_machines():
    spec = resolve(dict(MINIMAL, kubernetes_version="v1.31.4"))

    (error,) = spec_mod.upgrade_errors(spec, [machine("a", "v1.31.4"), machine("b", "v1.31.10")])

    assert error.startswith("cluster.kubernetes_version: v1.31.4 is older than what cluster capi-example runs (b (i-b) runs v1.31.10)")
    assert error.endswith("set kubernetes_version: v1.31.10 or newer")


def test_upgrade_summary():
    spec = resolve(dict(MINIMAL, kubernetes_version="v1.32.0"))

    summary = spec_mod.upgrade_summary(spec, [machine("a", "v1.31.10"), machine("b", "v1.31.9"), machine("c", None)])

    assert summary == {"from": ["v1.31.9", "v1.31.10"], "to": "v1.32.0", "minor": True, "needed": True}
    assert spec_mod.upgrade_summary(spec, [])["needed"] is False


def test_check_against_account_judges_a_version_change_by_the_upgrade_rules_when_asked():
    spec = resolve(dict(MINIMAL, kubernetes_version="v1.32.0", network={"nat_gateways": "none"}))
    running = [machine("a", "v1.31.4")]

    with pytest.raises(SpecError):
        spec_mod.check_against_account(spec, ["ap-northeast-2a"], 5, 0, 0, machines=running)
    spec_mod.check_against_account(spec, ["ap-northeast-2a"], 5, 0, 0, machines=running, kubernetes_upgrade=True)
