"""cluster_status.yml, run for real with ansible-playbook against a moto server: clusterctl describe's tree,
node conditions from the API when it answers (the Kubernetes API emulator) and unknown otherwise, a cluster
that does not exist, and the region's table."""

import os
import socket
import sys

import pytest

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import example_spec

STAND_INS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stand_ins")
if STAND_INS not in sys.path:
    sys.path.insert(0, STAND_INS)

import kube_api_emulator  # noqa: E402  (tests/stand_ins)
import stand_in_lib  # noqa: E402

pytestmark = pytest.mark.e2e

DESCRIBE = "Describe the cluster as clusterctl describe cluster does"
# The JSON callback reports set_stats' data only when asked to, as AWX does.
STATS = {"ANSIBLE_SHOW_CUSTOM_STATS": "1"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def described(run):
    assert run.rc == 0, run.explain()
    facts = run.result(DESCRIBE)["ansible_facts"]["kubecluster_describe"]
    assert run.report["global_custom_stats"]["kubecluster_describe"] == facts, "AWX gets the same data (set_stats)"
    assert run.result("Show the description")["msg"] == facts["lines"]
    return facts


def machines_of(description):
    groups = [description["control_plane"]] + description["machine_deployments"]
    return {machine["name"]: machine for group in groups for machine in group["machines"]}


@pytest.fixture
def emulator(tmp_path):
    pki = str(tmp_path / "pki")
    os.makedirs(pki)
    ca_cert, ca_key = stand_in_lib.make_ca(pki)
    stand_in_lib.make_server_cert(pki, ca_cert, ca_key, ["127.0.0.1"])
    with open(os.path.join(pki, "ca.crt"), encoding="utf-8") as handle:
        ca_pem = handle.read()
    with kube_api_emulator.KubeApiEmulator("127.0.0.1", free_port(), os.path.join(pki, "apiserver.crt"), os.path.join(pki, "apiserver.key"),
                                           admin_token="admin-token-for-tests", ca_pem=ca_pem) as api:
        yield api


def register_node(api, name):
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)
    client.request("POST", "/api/v1/nodes", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})


def test_describe_a_cluster_without_and_with_its_api(account, run_playbook, tmp_path, emulator):
    image_id = account.prepare()
    kubeconfig = tmp_path / "kube" / ("%s.kubeconfig" % NAME)
    spec = example_spec(image_id, kubeconfig_path=str(kubeconfig))

    # Nothing exists yet: not found, not Pending, and the run fails in one line (AWX still gets the data).
    missing = run_playbook("cluster_status", spec, env=STATS)
    assert missing.rc != 0, missing.explain()
    line = "cluster %s owns nothing in %s: it does not exist (create it with create_cluster.yml)" % (NAME, REGION)
    failures = [(task["task"]["name"], result["msg"]) for play in missing.report["plays"] for task in play["tasks"]
                for result in task["hosts"].values() if result.get("failed")]
    assert failures == [("Fail for a cluster that does not exist, in one line", line)]
    assert missing.result("Show the description").get("skipped") is True
    stat = missing.report["global_custom_stats"]["kubecluster_describe"]
    assert stat["phase"] == "NotFound" and stat["exists"] is False and stat["lines"] == [line]
    assert {kind: condition["status"] for kind, condition in stat["conditions"].items()} == dict.fromkeys(
        ("InfrastructureReady", "ControlPlaneInitialized", "ControlPlaneReady", "WorkersReady"), "False")

    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()

    # No kubeconfig: every node condition is unknown; desired and up to date come from the spec.
    offline = described(run_playbook("cluster_status", spec, env=STATS))
    assert offline["phase"] == "Provisioned" and offline["ready"] is None and offline["nodes_known"] is False
    # Provisioned is not "works": the conditions beside the phase say what is known.
    assert {kind: condition["status"] for kind, condition in offline["conditions"].items()} == {
        "InfrastructureReady": "True", "ControlPlaneInitialized": "Unknown", "ControlPlaneReady": "Unknown", "WorkersReady": "Unknown"}
    assert offline["conditions"]["ControlPlaneInitialized"]["message"] == "no kubeconfig at %s" % kubeconfig
    assert offline["workers"] == {"ready": None, "desired": 2}
    assert offline["lines"][1].split()[1:7] == ["Unknown", "Provisioned", "InfrastructureReady=True", "ControlPlaneInitialized=Unknown",
                                                "ControlPlaneReady=Unknown", "WorkersReady=?/2"]
    control_plane, (md0,) = offline["control_plane"], offline["machine_deployments"]
    assert (control_plane["desired"], control_plane["ready"], control_plane["up_to_date"]) == (1, None, 1)
    assert (md0["name"], md0["desired"], md0["running"], md0["ready"], md0["up_to_date"]) == (NAME + "-md-0", 2, 2, None, 2)
    machines = machines_of(offline)
    assert len(machines) == 3 and {m["node_condition"] for m in machines.values()} == {"unknown"}
    for machine in machines.values():
        assert machine["instance_id"].startswith("i-") and machine["availability_zone"].startswith(REGION)
        assert machine["private_ip"].startswith("10.0.") and machine["kubernetes_version"] == "v1.31.4"
    assert offline["infrastructure"]["bastion"]["state"] == "running"
    assert offline["lines"][-1] == "Node conditions unknown: no kubeconfig at %s" % kubeconfig
    text = "\n".join(offline["lines"])
    assert "├─ControlPlane - KubeadmControlPlane/%s-control-plane" % NAME in text
    assert "  └─MachineDeployment/%s-md-0" % NAME in text and "desired/ready/up-to-date 2/?/2" in text

    # A kubeconfig whose API server does not answer: unknown, said why, within the probe's timeout.
    closed = "https://127.0.0.1:%d" % free_port()
    stand_in_lib.write_kubeconfig(str(kubeconfig), closed, emulator.store.ca_pem.encode(), "admin", emulator.admin_token)
    silent = described(run_playbook("cluster_status", spec, extra_vars={"kubecluster_api_timeout": 2}, env=STATS))
    assert silent["nodes_known"] is False
    assert silent["lines"][-1] == "Node conditions unknown: the API server %s did not answer within 2 s" % closed

    # The API answers: the control-plane machine's Node (matched by its private DNS name) is NotReady, as a
    # node is before its CNI runs; the workers have no Node yet; a Node of no machine is named.
    control_plane_machine = next(m for m in machines.values() if m["set"] == "control-plane")
    (reservation,) = account.ec2.describe_instances(InstanceIds=[control_plane_machine["instance_id"]])["Reservations"]
    dns_name = reservation["Instances"][0]["PrivateDnsName"]
    register_node(emulator, dns_name)
    register_node(emulator, "ip-10-0-255-254.ap-northeast-2.compute.internal")
    stand_in_lib.write_kubeconfig(str(kubeconfig), emulator.url, emulator.store.ca_pem.encode(), "admin", emulator.admin_token)
    online = described(run_playbook("cluster_status", spec, env=STATS))
    assert online["nodes_known"] is True and online["ready"] is False
    assert {kind: condition["status"] for kind, condition in online["conditions"].items()} == {
        "InfrastructureReady": "True", "ControlPlaneInitialized": "True", "ControlPlaneReady": "False", "WorkersReady": "False"}
    assert online["conditions"]["ControlPlaneReady"]["message"] == "0/1 control-plane machines ready"
    assert online["conditions"]["ControlPlaneInitialized"]["message"] == (
        "the API server answered at %s, which is not the control-plane endpoint %s" % (emulator.url, online["control_plane_endpoint"]))
    assert "ControlPlaneInitialized=True ControlPlaneReady=False WorkersReady=0/2" in online["lines"][1]
    machines = machines_of(online)
    assert machines[control_plane_machine["name"]]["node_condition"] == "NotReady"
    assert machines[control_plane_machine["name"]]["node_name"] == dns_name
    assert {m["node_condition"] for m in machines.values() if m["set"] == "md-0"} == {"NoNode"}
    assert online["control_plane"]["ready"] == 0 and online["machine_deployments"][0]["ready"] == 0
    assert online["nodes_without_machine"] == ["ip-10-0-255-254.ap-northeast-2.compute.internal"]

    # A spec change makes the machines outdated: up to date drops, desired follows the spec.
    changed = example_spec(image_id, kubeconfig_path=str(kubeconfig),
                           machine_deployments=[{"name": "md-0", "replicas": 3, "instance_type": "m5.large"}])
    outdated = described(run_playbook("cluster_status", changed, env=STATS))
    (md0,) = outdated["machine_deployments"]
    assert (md0["desired"], md0["replicas"], md0["up_to_date"]) == (3, 2, 0)
    assert outdated["control_plane"]["up_to_date"] == 1
    # ... and are named in a plain run's output, not only with -v.
    workers = sorted(m["name"] for m in md0["machines"])
    assert outdated["outdated_machines"] == workers
    assert ("Outdated machines (launched from settings the spec no longer has; rollout_machines.yml replaces them): %s"
            % ", ".join(workers)) in outdated["lines"]


def test_region_table_lists_every_cluster_with_phase_and_version(account, run_playbook):
    image_id = account.prepare()
    spec = example_spec(image_id)
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()

    run = run_playbook("cluster_status", extra_vars={"region": REGION}, env=STATS)

    assert run.rc == 0, run.explain()
    table = run.result("Describe every cluster of the region")["ansible_facts"]["kubecluster_describe"]
    assert run.report["global_custom_stats"]["kubecluster_describe"] == table
    (row,) = table["clusters"]
    assert (row["name"], row["region"], row["phase"], row["kubernetes_version"]) == (NAME, REGION, "Provisioned", "v1.31.4")
    assert row["control_plane"] == {"running": 1, "replicas": 1} and row["workers"] == {"running": 2, "replicas": 2}
    assert table["lines"][0].split()[:4] == ["NAME", "REGION", "PHASE", "VERSION"]
    assert table["lines"][1].split()[:4] == [NAME, REGION, "Provisioned", "v1.31.4"]
    assert table["lines"][2].startswith("Provisioned: the infrastructure and the control-plane endpoint exist, not that the cluster works")

    empty = run_playbook("cluster_status", extra_vars={"region": "eu-west-1"})
    assert empty.rc == 0, empty.explain()
    assert empty.result("Show the description")["msg"] == ["no clusters in eu-west-1: nothing there carries a cluster's ownership tag"]
