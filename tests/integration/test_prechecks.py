"""Issue 10 part 1, end to end against a moto server: a spec that cannot be built (an AMI id or an instance type that
does not exist, an instance type not offered in the cluster's zones, a machine deployment zone without a cluster
subnet, more CIDRs than a security group holds, a KMS key that is no key, a region that does not exist) fails
create_cluster.yml before its first write (the lease's aside), naming the field, with nothing owned left behind; in
check mode too. Every playbook that takes the spec fails in one line, before any AWS call, when none was given."""

import copy

import pytest

from helpers.aws import CLUSTER as NAME
from helpers.e2e import example_spec

pytestmark = pytest.mark.e2e

MISSING_AMI = "ami-0123456789abcdef0"
REACH = "Reconcile the network, the machines and the API load balancer"
# The run lease's parameter, taken and given back: the only writes a refused run may make.
LEASE_WRITES = ("PutParameter", "DeleteParameter")


def worker(**changes):
    return {"machine_deployments": [dict({"name": "md-0", "replicas": 2, "instance_type": "t3.large"}, **changes)]}


BAD = {
    "control plane AMI": ({"control_plane": {"ami_id": MISSING_AMI}},
                          "cluster.control_plane.ami_id: %s does not exist in ap-northeast-2" % MISSING_AMI),
    "worker AMI": (worker(ami_id=MISSING_AMI), "cluster.machine_deployments[0].ami_id: %s does not exist" % MISSING_AMI),
    "bastion AMI": ({"network": {"bastion": {"ami_id": MISSING_AMI}}},
                    "cluster.network.bastion.ami_id: %s does not exist" % MISSING_AMI),
    "instance type": ({"control_plane": {"instance_type": "t3.lage"}},
                      "cluster.control_plane.instance_type: t3.lage is not an instance type offered in ap-northeast-2"),
    # moto, as AWS, offers p4d.24xlarge in ap-northeast-2b and 2d only
    "instance type zones": (worker(instance_type="p4d.24xlarge"),
                            "cluster.machine_deployments[0].instance_type: p4d.24xlarge is not offered in ap-northeast-2a, "
                            "ap-northeast-2c (only in ap-northeast-2b, ap-northeast-2d)"),
    "deployment zone": (worker(availability_zones=["ap-northeast-2d"]),
                        "cluster.machine_deployments[0].availability_zones: the cluster has no subnet in ap-northeast-2d"),
    "node port CIDRs": ({"network": {"node_port_cidrs": ["10.%d.0.0/16" % n for n in range(60)]}},
                        "cluster.network.node_port_cidrs: 60 CIDRs make 67 inbound rules in the cluster's node security group"),
    # an ARN, but of no key: passed to AWS before
    "KMS key": ({"control_plane": {"root_volume": {"kms_key_id": "arn:aws:kms:ap-northeast-2:123456789012:key/my-key"}}},
                "cluster.control_plane.root_volume.kms_key_id: 'arn:aws:kms:ap-northeast-2:123456789012:key/my-key' is not a KMS key"),
    "region": ({"region": "us-east-9"}, "no such region us-east-9; regions are like us-east-1"),
}


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_spec_that_cannot_be_built_fails_before_any_write_naming_the_field(account, run_playbook, moto_server, case, check):
    image_id = account.prepare()
    changes, message = BAD[case]
    spec = example_spec(image_id, **copy.deepcopy(changes))

    moto_server.start_recording()
    refused = run_playbook("create_cluster", spec, tags=["infra"], check=check)
    moto_server.stop_recording()

    assert refused.rc != 0
    explained = refused.explain()
    assert REACH in explained and message in explained, explained
    writes = [w["action"] for w in moto_server.recorded_writes()]
    # a run takes the lease first and gives it back (in a region that does not exist it only tries to take it)
    assert writes == [] if check else set(writes) <= set(LEASE_WRITES), writes
    assert all(found == [] for found in account.owned(NAME).values()), account.owned(NAME)


def test_a_good_spec_still_builds_and_its_rerun_reads_no_image_or_offering(account, run_playbook, moto_server):
    image_id = account.prepare()
    spec = example_spec(image_id, network={"nat_gateways": "single"})
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    moto_server.start_recording()
    again = run_playbook("create_cluster", spec, tags=["infra"])
    moto_server.stop_recording()
    assert again.rc == 0 and again.changed == 0, again.explain()
    actions = [call["action"] for call in moto_server.recorded_calls()]
    assert "DescribeImages" not in actions and "DescribeInstanceTypeOfferings" not in actions
    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()


PLAYBOOKS = ["create_cluster", "delete_cluster", "export_capi", "nodes", "remove_node", "rollout_machines", "scale_cluster",
             "upgrade_cluster"]
NO_SPEC = "no cluster spec: pass it with -e @spec.yml (a file whose top key is `cluster:`)"


@pytest.mark.parametrize("extra_vars", [{}, {"clustr": {"name": NAME, "region": "ap-northeast-2"}}, {"cluster": ""}],
                         ids=["none", "typo", "empty"])
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_a_playbook_without_a_spec_says_how_to_pass_one(account, run_playbook, moto_server, playbook, extra_vars):
    moto_server.start_recording()
    run = run_playbook(playbook, extra_vars=dict(extra_vars, node="ip-10-0-64-12", machine_deployment="md-0", replicas=1))
    moto_server.stop_recording()
    assert run.rc != 0
    explained = run.explain()
    assert NO_SPEC in explained, explained
    assert "is undefined" not in explained
    assert moto_server.recorded_calls() == []
