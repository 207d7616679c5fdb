"""Issue 10 part 1: what the spec alone can tell is refused before any AWS call (KMS keys, a machine deployment's zones,
CIDR lists over a security group's rules), and what the account tells (AMI ids, instance type offerings) is judged
from the facts the account checks read."""

import copy

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import spec as spec_mod
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, resolve

MINIMAL = {"name": "capi-example", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4"}
ZONES = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


def errors_of(raw):
    with pytest.raises(SpecError) as caught:
        resolve(raw, {})
    return caught.value.errors


def spec_with(**changes):
    raw = copy.deepcopy(MINIMAL)
    raw.update(copy.deepcopy(changes))
    return raw


def kms(value):
    return spec_with(control_plane={"root_volume": {"kms_key_id": value}})


@pytest.mark.parametrize("value", [
    KEY_ID, "mrk-1234abcd12ab34cd56ef1234567890ab", "alias/my-key", "alias/aws/ebs",
    "arn:aws:kms:ap-northeast-2:111122223333:key/" + KEY_ID,
    "arn:aws:kms:ap-northeast-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    "arn:aws:kms:ap-northeast-2:111122223333:alias/my-key", "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + KEY_ID,
])
def test_a_kms_key_id_alias_or_arn_is_taken(value):
    assert resolve(kms(value), {})["control_plane"]["root_volume"]["kms_key_id"] == value


@pytest.mark.parametrize("value", [
    "my-key", "alias/", "1234abcd", "mrk-123", "arn:", "arn:aws:kms:ap-northeast-2:111122223333:key/not-a-key",
    "arn:aws:s3:::bucket", "arn:aws:kms:ap-northeast-2:1111:key/" + KEY_ID, KEY_ID.upper() + "x",
])
def test_a_kms_key_that_is_no_key_id_alias_or_arn_is_refused_naming_the_forms(value):
    (error,) = errors_of(kms(value))
    assert error.startswith("cluster.control_plane.root_volume.kms_key_id: %r is not a KMS key; give a key id" % value)
    assert "alias/my-key" in error and "arn:aws:kms:REGION:ACCOUNT:key/ID" in error


def test_a_deployment_zone_where_the_cluster_has_no_subnet_is_refused():
    raw = spec_with(network={"availability_zones": ZONES[:2]},
                    machine_deployments=[{"name": "md-0", "replicas": 1, "availability_zones": ["ap-northeast-2a", "ap-northeast-2c"]}])
    assert errors_of(raw) == [
        "cluster.machine_deployments[0].availability_zones: the cluster has no subnet in ap-northeast-2c "
        "(cluster.network.availability_zones: ap-northeast-2a, ap-northeast-2b); list zones among those, or add it to "
        "cluster.network.availability_zones"]


def test_a_deployment_zone_count_over_the_clusters_is_refused():
    raw = spec_with(network={"availability_zones": 2}, machine_deployments=[{"name": "md-0", "availability_zones": 3}])
    assert errors_of(raw) == ["cluster.machine_deployments[0].availability_zones: 3 zones asked for but the cluster has "
                              "subnets in 2 (cluster.network.availability_zones); ask for 2 or fewer"]


def test_deployment_zone_names_under_a_zone_count_are_judged_once_the_zones_are_names():
    raw = spec_with(machine_deployments=[{"name": "md-0", "availability_zones": ["ap-northeast-2d"]}])
    spec = resolve(raw, {})  # a count: the names are not known yet
    resolved = spec_mod.with_zones(spec, ZONES)
    assert spec_mod.deployment_zone_errors(resolved) == [
        "cluster.machine_deployments[0].availability_zones: the cluster has no subnet in ap-northeast-2d "
        "(cluster.network.availability_zones: ap-northeast-2a, ap-northeast-2b, ap-northeast-2c); list zones among those, "
        "or add it to cluster.network.availability_zones"]
    with pytest.raises(SpecError) as caught:
        spec_mod.check_against_account(resolved, ZONES, 5, 0, 0)
    assert caught.value.errors == spec_mod.deployment_zone_errors(resolved)


def cidrs(count):
    return ["10.%d.%d.0/24" % (n // 256, n % 256) for n in range(count)]


@pytest.mark.parametrize("network, path, rules, most", [
    # the API load balancer's group: only the allowed CIDRs
    ({"api_load_balancer": {"allowed_cidrs": cidrs(61)}}, "cluster.network.api_load_balancer.allowed_cidrs", 61, 60),
    # the node group: node ports from each CIDR, plus kubelet (2), SSH from the bastion (1) and calico's (4)
    ({"node_port_cidrs": cidrs(54)}, "cluster.network.node_port_cidrs", 61, 53),
    ({"bastion": {"allowed_cidrs": cidrs(70)}}, "cluster.network.bastion.allowed_cidrs", 70, 60),
])
def test_more_cidrs_than_a_security_group_holds_are_refused_naming_the_field(network, path, rules, most):
    (error,) = errors_of(spec_with(network=network))
    cidr_count = rules if "node_port" not in path else 54
    group = {"cluster.network.api_load_balancer.allowed_cidrs": "apiserver-lb", "cluster.network.node_port_cidrs": "node",
             "cluster.network.bastion.allowed_cidrs": "bastion"}[path]
    assert error == ("%s: %d CIDRs make %d inbound rules in the cluster's %s security group, over the 60 AWS allows a "
                     "security group; list at most %d (one wider range can cover several)" % (path, cidr_count, rules, group, most))


def test_as_many_cidrs_as_the_groups_hold_are_taken():
    network = {"api_load_balancer": {"allowed_cidrs": cidrs(60)}, "node_port_cidrs": cidrs(53), "bastion": {"allowed_cidrs": cidrs(60)}}
    assert resolve(spec_with(network=network), {})["network"]["node_port_cidrs"] == cidrs(53)


def test_an_internal_api_load_balancer_does_not_count_its_allowed_cidrs():
    # An internal load balancer is reached from the VPC alone: its allowed_cidrs make no rule.
    network = {"api_load_balancer": {"scheme": "internal", "allowed_cidrs": cidrs(61)}}
    assert resolve(spec_with(network=network), {})["network"]["api_load_balancer"]["scheme"] == "internal"


def resolved(**changes):
    return spec_mod.with_zones(resolve(spec_with(**changes), {}), ZONES)


def test_launch_errors_name_a_missing_ami_of_each_set():
    spec = resolved(control_plane={"ami_id": "ami-0123456789abcdef0"}, network={"bastion": {"ami_id": "ami-03cf127a"}},
                    machine_deployments=[{"name": "md-0", "replicas": 1, "ami_id": "ami-0fedcba9876543210"}])
    errors = spec_mod.launch_errors(spec, ["bastion", "control-plane", "md-0"], {"ami-03cf127a"}, None)
    assert errors == [
        "cluster.control_plane.ami_id: ami-0123456789abcdef0 does not exist in ap-northeast-2 or this account may not use it; "
        "set an AMI id of that region, or remove the field to use the CAPA image lookup",
        "cluster.machine_deployments[0].ami_id: ami-0fedcba9876543210 does not exist in ap-northeast-2 or this account may "
        "not use it; set an AMI id of that region, or remove the field to use the CAPA image lookup"]
    # a set that launches nothing is not judged
    assert spec_mod.launch_errors(spec, ["bastion"], {"ami-03cf127a"}, None) == []


def test_launch_errors_name_an_instance_type_that_does_not_exist_or_is_not_offered_in_the_sets_zones():
    spec = resolved(control_plane={"instance_type": "t3.lage"},
                    machine_deployments=[{"name": "gpu", "replicas": 1, "instance_type": "p4d.24xlarge"}])
    offerings = {"t3.lage": set(), "t3.micro": set(ZONES), "p4d.24xlarge": {"ap-northeast-2b", "ap-northeast-2d"}}
    assert spec_mod.launch_errors(spec, ["bastion", "control-plane", "gpu"], None, offerings) == [
        "cluster.control_plane.instance_type: t3.lage is not an instance type offered in ap-northeast-2 (a typo, or a type "
        "this region does not have); choose one such as t3.large (aws ec2 describe-instance-type-offerings --region ap-northeast-2)",
        "cluster.machine_deployments[0].instance_type: p4d.24xlarge is not offered in ap-northeast-2a, ap-northeast-2c (only in "
        "ap-northeast-2b, ap-northeast-2d); choose another instance type, or zones that offer it in "
        "cluster.machine_deployments[0].availability_zones"]
