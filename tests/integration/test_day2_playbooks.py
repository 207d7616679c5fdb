"""scale_cluster.yml and remove_node.yml against a moto server (the AWS part; tests/integration/test_localaws_scale.py
runs them whole on the local AWS): what they refuse before any write, and that a scale-down terminates nothing in
the AWS part, leaving the surplus machines to the node removals."""

import pytest

from helpers.aws import CLUSTER as NAME
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e


def workers(account):
    return sorted(tags(instance)["Name"] for instance in account.owned(NAME)["instances"]
                  if tags(instance).get("kubecluster.aws/machine-set") == "md-0" and instance["State"]["Name"] in ("pending", "running"))


@pytest.mark.parametrize("extra_vars, wanted", [
    ({"machine_deployment": "md-9", "replicas": 2}, "now md-9"),
    ({"machine_deployment": "md-0", "replicas": "two"}, "now two"),
    ({"machine_deployment": "control-plane", "replicas": 2}, "an odd number"),
    ({"replicas": 2}, "now unset"),
])
def test_scale_refuses_a_set_or_count_it_cannot_use_before_any_aws_call(account, run_playbook, extra_vars, wanted):
    image_id = account.prepare()
    done = run_playbook("scale_cluster", example_spec(image_id), extra_vars=extra_vars)
    assert done.rc != 0
    assert "-e machine_deployment=<control-plane | md-0>" in done.explain() and wanted in done.explain()
    assert account.owned(NAME)["vpcs"] == []


def test_scale_knows_the_default_machine_deployment_of_a_spec_that_lists_none(account, run_playbook):
    """md-0 is every spec's machine deployment when it lists none; scaling it is not refused (check mode: the plan)."""
    image_id = account.prepare()
    spec = example_spec(image_id)
    del spec["cluster"]["machine_deployments"]
    done = run_playbook("scale_cluster", spec, tags=["infra"], check=True, extra_vars={"machine_deployment": "md-0", "replicas": 2})
    assert done.rc == 0, done.explain()


def test_scale_down_keeps_the_surplus_running_for_the_node_removals(account, run_playbook):
    image_id = account.prepare()
    spec = example_spec(image_id, machine_deployments=[{"name": "md-0", "replicas": 3, "instance_type": "t3.large"}])
    assert run_playbook("create_cluster", spec, tags=["infra"]).rc == 0
    before = workers(account)
    assert len(before) == 3

    planned = run_playbook("scale_cluster", spec, tags=["infra"], check=True, extra_vars={"machine_deployment": "md-0", "replicas": 1})
    done = run_playbook("scale_cluster", spec, tags=["infra"], extra_vars={"machine_deployment": "md-0", "replicas": 1})

    assert planned.rc == 0 and done.rc == 0, done.explain()
    for run in (planned, done):
        shown = run.result("Show the machines to remove after the node plays")["msg"]
        assert sum(name in shown for name in before) == 2, shown
    # the AWS part launches and reports; it never terminates a machine that was not drained
    assert workers(account) == before


def test_remove_node_names_the_machines_when_it_finds_none(account, run_playbook):
    image_id = account.prepare()
    spec = example_spec(image_id)
    assert run_playbook("create_cluster", spec, tags=["infra"]).rc == 0
    done = run_playbook("remove_node", spec, extra_vars={"node": "ip-10-9-9-9.nowhere"})
    assert done.rc != 0
    message = done.explain()
    assert "ip-10-9-9-9.nowhere is no running machine of cluster %s" % NAME in message
    assert all(name in message for name in workers(account)), message
    bastion = [instance["InstanceId"] for instance in account.owned(NAME)["instances"] if tags(instance).get("kubecluster.aws/machine-set") == "bastion"]
    refused = run_playbook("remove_node", spec, extra_vars={"node": bastion[0]})
    assert refused.rc != 0 and "is the bastion" in refused.explain()
