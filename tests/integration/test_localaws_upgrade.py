"""The upgrade on the local AWS (tests/localaws), with playbooks/upgrade_cluster.yml as a user runs it: one cluster for
the module (1 control plane + 1 worker at v1.31.4); a skipped minor and a downgrade are refused with no change (moto, the
stand-ins and the API see no write); an in-place patch upgrade (v1.31.4 -> v1.31.5) in kubeadm's order, with the etcd
snapshot on the controller and the machines marked up to date; a rerun changes nothing; delete.

kubeadm, kubelet, kubectl and crictl are the stand-ins and the API server is the emulator (tests/stand_ins): this proves
the order and arguments of the upgrade calls, what reaches the API and AWS, not that Kubernetes upgrades. Needs root and
Docker. The whole-flow helpers are test_localaws.py's."""

import glob
import os
import stat
import time

import pytest
import yaml

from helpers.modules import load_sibling


# tests/integration/test_localaws.py as a helper module (its tests are not collected twice)
base = load_sibling(__file__, "test_localaws.py", "localaws_whole_flow")
local_aws = base.local_aws  # the module's one local AWS (a fixture)
pytestmark = pytest.mark.localaws
NAME = "capi-upgrade"
VPC_CIDR = "198.19.64.0/19"
FROM, PATCH = base.VERSION, "v1.31.5"
VERSION_TAG = "kubecluster.aws/kubernetes-version"


def upgrade_spec(aws, spec_file, version):
    """The cluster's spec with another kubernetes_version (and its stand-in binaries) and the in-place strategy."""
    with open(spec_file, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    spec["cluster"]["kubernetes_version"] = version
    spec["cluster"]["upgrade_strategy"] = "in_place"
    spec["cluster"]["kubernetes_packages"] = {"source": "binaries", "binaries_dir": aws.binaries_dir(version)}
    out = os.path.join(aws.state_dir, "%s-%s.yml" % (NAME, version))
    with open(out, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)
    return out


def instances(aws):
    return [instance for instance in base.owned(aws, NAME)["instances"] if base.role(instance) != "bastion"]


def upgrade_calls(aws, machines, since=0):
    return {machine: [call for call in aws.stand_in_calls(machine, "kubeadm", "upgrade") if call["time"] >= since] for machine in machines}


def snapshots(aws):
    return sorted(glob.glob(os.path.join(aws.state_dir, "controller-home", ".kube", NAME + "-etcd-*.db")))


def assert_refused(aws, label, spec_file, vpc_id, machines, *message):
    """The run fails before any change: no AWS write, no kubeadm upgrade, no API write, no snapshot."""
    since, before = time.time(), snapshots(aws)
    aws.start_recording()
    try:
        refused = base.Run(aws, label, "upgrade_cluster.yml", spec_file)
    finally:
        aws.stop_recording()
    assert refused.rc != 0, refused.stdout[-3000:]
    for text in message:
        assert text in refused.stdout, (text, refused.stdout[-4000:])
    assert [(call["service"], call["action"]) for call in aws.recorded_writes()] == []
    assert {machine: calls for machine, calls in upgrade_calls(aws, machines, since).items() if calls} == {}
    assert base.api_writes_since(aws, vpc_id, since) == []
    assert snapshots(aws) == before


def kubelet_starts(aws, machine, since):
    return [call["time"] for call in aws.stand_in_calls(machine, "kubelet") if call.get("event") == "started" and call["time"] >= since]


def node_writes(aws, vpc_id, node, since):
    """Writes to a Node by the controller (the drain's cordon, the uncordon), oldest first."""
    return [request for request in base.api_writes_since(aws, vpc_id, since) if request["path"].startswith("/api/v1/nodes/" + node)]


def test_in_place_upgrade_refusals_patch_rerun_and_delete(local_aws):
    aws = local_aws
    spec_file, vpc_id, by_role = base.create_and_check(aws, "upgrade", NAME, VPC_CIDR, 1, 1, "single")
    (control_plane,), (worker,) = by_role["control-plane"], by_role["node"]
    machines = [control_plane["InstanceId"], worker["InstanceId"]]
    names = {base.tags(instance)["Name"] for instance in (control_plane, worker)}

    # a skipped minor and a downgrade change nothing, naming the machines
    assert_refused(aws, "upgrade-skip-minor", upgrade_spec(aws, spec_file, "v1.33.1"), vpc_id, machines, *sorted(names))
    assert_refused(aws, "upgrade-downgrade", upgrade_spec(aws, spec_file, "v1.30.8"), vpc_id, machines, *sorted(names))

    # the patch upgrade, in place
    patch_spec = upgrade_spec(aws, spec_file, PATCH)
    since = time.time()
    run = base.Run(aws, "upgrade-in-place", "upgrade_cluster.yml", patch_spec)
    run.assert_ok()

    calls = upgrade_calls(aws, machines, since)
    (apply,) = calls[control_plane["InstanceId"]]
    assert apply["argv"] == ["upgrade", "apply", PATCH, "--yes"] and apply["exit_code"] == 0, apply
    (worker_node,) = calls[worker["InstanceId"]]
    assert worker_node["argv"] == ["upgrade", "node"] and worker_node["exit_code"] == 0, worker_node
    # each kubelet restarts once, after its Node was cordoned (the drain), and the worker only after the control plane
    cp_starts, worker_starts = (kubelet_starts(aws, machine, since) for machine in machines)
    assert len(cp_starts) == 1 and len(worker_starts) == 1, (cp_starts, worker_starts)
    for instance, (start,) in ((control_plane, cp_starts), (worker, worker_starts)):
        writes = node_writes(aws, vpc_id, instance["PrivateDnsName"], since)
        assert writes and writes[0]["time"] < start, (instance["InstanceId"], writes)
        assert writes[-1]["time"] > start  # the uncordon
    assert apply["time"] < worker_node["time"] and cp_starts[0] < worker_node["time"]

    # the API: every kubelet and the cluster at the new version, nothing left cordoned
    objects = base.api_objects(aws, vpc_id)
    nodes = [item for item in objects if item["kind"] == "Node"]
    assert {node["metadata"]["name"]: node["status"]["nodeInfo"]["kubeletVersion"] for node in nodes} == {
        control_plane["PrivateDnsName"]: PATCH, worker["PrivateDnsName"]: PATCH}
    assert [node["metadata"]["name"] for node in nodes if node["spec"].get("unschedulable")
            or "kubecluster.aws/upgrade-cordoned" in (node["metadata"].get("annotations") or {})] == []
    (config,) = [item for item in objects if item["kind"] == "ConfigMap" and item["metadata"]["name"] == "kubeadm-config"]
    assert yaml.safe_load(config["data"]["ClusterConfiguration"])["kubernetesVersion"] == PATCH
    # the machines, marked up to date in place (same instances, the new version tag)
    after = instances(aws)
    assert sorted(instance["InstanceId"] for instance in after) == sorted(machines)
    assert {base.tags(instance)[VERSION_TAG] for instance in after} == {PATCH}
    # the snapshot: one, on the controller, 0600, gone from the node
    (snapshot,) = snapshots(aws)
    # (the run prints the path in the controller container, whose home is the state dir's controller-home)
    assert stat.S_IMODE(os.stat(snapshot).st_mode) == 0o600 and "/.kube/" + os.path.basename(snapshot) in run.stdout
    assert aws.exec(control_plane["InstanceId"], "ls /var/lib/etcd/ | grep -c '\\.db' || true").stdout.strip() == "0"

    # a rerun changes nothing: no host changed, no AWS write but the lease's, no kubeadm upgrade, no API write, no snapshot
    since = time.time()
    aws.start_recording()
    try:
        rerun = base.Run(aws, "upgrade-rerun", "upgrade_cluster.yml", patch_spec)
    finally:
        aws.stop_recording()
    rerun.assert_ok()
    assert {host: counts["changed"] for host, counts in rerun.recap.items() if counts["changed"]} == {}, rerun.recap
    writes = [(call["service"], call["action"]) for call in aws.recorded_writes()]
    assert [write for write in writes if write not in {("ssm", "PutParameter"), ("ssm", "DeleteParameter")}] == [], writes
    assert {machine: found for machine, found in upgrade_calls(aws, machines, since).items() if found} == {}
    assert base.api_writes_since(aws, vpc_id, since) == []
    assert snapshots(aws) == [snapshot]

    base.assert_delete_leaves_nothing(aws, "upgrade-delete", NAME, patch_spec)
