"""A Kubernetes version change on a running cluster, end to end with ansible-playbook against a moto
server: create_cluster.yml refuses it before its first write, naming the machines and the way forward."""

import pytest

from helpers.aws import CLUSTER as NAME, ROLE
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e

VERSION_TAG = "kubecluster.aws/kubernetes-version"


def test_a_new_version_on_a_running_cluster_fails_before_any_write_naming_the_machines(account, run_playbook, moto_server):
    image_id = account.prepare()
    spec = example_spec(image_id, network={"nat_gateways": "single"})
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    machines = [m for m in account.owned(NAME)["instances"] if m["State"]["Name"] in ("pending", "running")]
    versions = {tags(m)["Name"]: tags(m).get(VERSION_TAG) for m in machines}
    assert sorted(versions.values(), key=str) == [None, "v1.31.4", "v1.31.4", "v1.31.4"]
    (bastion,) = [m for m in machines if tags(m)[ROLE] == "bastion"]
    assert versions[tags(bastion)["Name"]] is None
    status = created.result("Reconcile the network, the machines and the API load balancer")["status"]
    assert sorted((m["name"], m["kubernetes_version"]) for m in status["machines"]) == sorted(versions.items())

    newer = example_spec(image_id, network={"nat_gateways": "single"}, kubernetes_version="v1.32.0")
    moto_server.start_recording()
    refused = run_playbook("create_cluster", newer, tags=["infra"])
    moto_server.stop_recording()
    assert refused.rc != 0
    message = refused.explain()
    assert "Reconcile the network, the machines and the API load balancer" in message
    assert "cluster.kubernetes_version: v1.32.0, but cluster capi-example is running and" in message
    for machine in machines:
        if machine is not bastion:
            assert "%s (%s) runs v1.31.4" % (tags(machine)["Name"], machine["InstanceId"]) in message
    assert tags(bastion)["Name"] not in message
    assert ("Keep kubernetes_version: v1.31.4 here, and move the cluster to v1.32.0 with the rolling upgrade: "
            "ansible-playbook kubecluster.aws.upgrade_cluster -e @spec.yml") in message
    # before the network and the machines: not one write but the lease's, taken and given back
    assert [w["action"] for w in moto_server.recorded_writes()] == ["PutParameter", "DeleteParameter"]
    assert sorted(m["InstanceId"] for m in account.owned(NAME)["instances"]) == sorted(m["InstanceId"] for m in machines)

    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
