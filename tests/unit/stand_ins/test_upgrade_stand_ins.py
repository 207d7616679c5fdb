"""What the in-place upgrade asks of the stand-ins: `kubeadm upgrade apply|node` as kubeadm (the new kubeadm first, one
minor at a time, the nodes after the apply), etcdctl's `snapshot save` in the etcd container, and
a kubelet that reports its version on its Node after a restart."""

import json
import os
import stat
import threading

import pytest

from helpers.modules import load_sibling


# The kubeadm stand-in tests' helpers (init, join, etcdctl flags), without collecting their tests twice.
_HELPERS = load_sibling(__file__, "test_kubeadm_stand_in.py", "kubeadm_stand_in_helpers")
ETCDCTL, etcd_id, init_cluster, join_config, join_parts = (_HELPERS.ETCDCTL, _HELPERS.etcd_id, _HELPERS.init_cluster, _HELPERS.join_config,
                                                           _HELPERS.join_parts)

CLUSTER_CONFIG = ("ConfigMap", "kubeadm-config", "kube-system")


def cluster_version(api):
    import stand_in_yaml
    return stand_in_yaml.load(api.object(*CLUSTER_CONFIG)["data"]["ClusterConfiguration"])["kubernetesVersion"]


def apiserver_image(host):
    import stand_in_yaml
    return stand_in_yaml.load(host.read("/etc/kubernetes/manifests/kube-apiserver.yaml"))["spec"]["containers"][0]["image"]


@pytest.fixture
def two_control_planes_and_a_worker(make_host, endpoint):
    first, second, worker = make_host("cp-0"), make_host("cp-1"), make_host("worker")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    assert second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key)).returncode == 0
    assert worker.run("kubeadm", "join", "--config", join_config(worker, endpoint, token, ca_hash, "worker")).returncode == 0
    return first, second, worker


# -- kubeadm upgrade ----------------------------------------------------------------------------------------------
def test_upgrade_apply_needs_the_new_kubeadm_first(two_control_planes_and_a_worker, api):
    first, _second, _worker = two_control_planes_and_a_worker

    old_kubeadm = first.run("kubeadm", "upgrade", "apply", "v1.31.5", "-y")

    assert old_kubeadm.returncode == 1 and 'higher than the kubeadm version "v1.31.4"' in old_kubeadm.stderr
    assert cluster_version(api) == "v1.31.4"


@pytest.mark.parametrize("kubeadm,target,message", [
    ("v1.33.1", "v1.33.1", "kubeadm can upgrade only 1 minor version at a time"),
    ("v1.31.4", "v1.30.8", "at least one minor release version lower than the current"),
    ("v1.32.0", "v1.31.5", "can only be used to upgrade to Kubernetes version 1.32"),
])
def test_upgrade_apply_refuses_a_skipped_minor_a_downgrade_and_a_kubeadm_of_another_minor(two_control_planes_and_a_worker, api, kubeadm, target,
                                                                                          message):
    first, _second, _worker = two_control_planes_and_a_worker
    first.set_version(kubeadm)

    result = first.run("kubeadm", "upgrade", "apply", target, "-y")

    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert cluster_version(api) == "v1.31.4" and apiserver_image(first).endswith(":v1.31.4")


def test_upgrade_apply_then_node_moves_every_control_plane_and_the_worker_follows(two_control_planes_and_a_worker, api):
    first, second, worker = two_control_planes_and_a_worker
    for host in (first, second, worker):
        host.set_version("v1.31.5")

    early = second.run("kubeadm", "upgrade", "node")
    unanswered = first.run("kubeadm", "upgrade", "apply", "v1.31.5")
    applied = first.run("kubeadm", "upgrade", "apply", "v1.31.5", "-y")
    on_worker = worker.run("kubeadm", "upgrade", "apply", "v1.31.5", "-y")
    node = second.run("kubeadm", "upgrade", "node")
    worker_node = worker.run("kubeadm", "upgrade", "node")

    # a node upgraded before the apply follows the cluster, which is still at the old version
    assert early.returncode == 0 and 'control plane instance to version "v1.31.4"' in early.stdout
    assert unanswered.returncode == 1 and "won't proceed" in unanswered.stderr
    assert applied.returncode == 0 and 'upgraded to "v1.31.5"' in applied.stdout, applied.stderr
    assert on_worker.returncode == 1 and "admin.conf" in on_worker.stderr  # as kubeadm: a worker has no admin kubeconfig
    assert cluster_version(api) == "v1.31.5" and apiserver_image(first).endswith(":v1.31.5")
    assert node.returncode == 0 and apiserver_image(second).endswith(":v1.31.5")
    assert worker_node.returncode == 0 and "Not a control plane node" in worker_node.stdout
    assert not worker.exists("/etc/kubernetes/manifests/kube-apiserver.yaml") and worker.exists("/var/lib/kubelet/config.yaml")


def test_upgrade_node_refuses_a_kubeadm_older_than_the_cluster(two_control_planes_and_a_worker, api):
    first, second, _worker = two_control_planes_and_a_worker
    first.set_version("v1.31.5")
    assert first.run("kubeadm", "upgrade", "apply", "v1.31.5", "-y").returncode == 0

    stale = second.run("kubeadm", "upgrade", "node")

    assert stale.returncode == 1 and 'cluster version "v1.31.5" is higher than the kubeadm version "v1.31.4"' in stale.stderr
    assert apiserver_image(second).endswith(":v1.31.4")


# -- etcdctl: snapshot save ------------------------------------------------------------------
def test_snapshot_save_writes_under_the_etcd_data_dir_only(two_control_planes_and_a_worker):
    first, _second, _worker = two_control_planes_and_a_worker
    container = etcd_id(first)

    saved = first.run("crictl", "exec", container, *ETCDCTL, "snapshot", "save", "/var/lib/etcd/kubecluster-snapshot.db")
    inside = first.run("crictl", "exec", container, *ETCDCTL, "snapshot", "save", "/tmp/snapshot.db")

    assert saved.returncode == 0 and "Snapshot saved at /var/lib/etcd/kubecluster-snapshot.db" in saved.stdout, saved.stderr
    path = first.path("/var/lib/etcd/kubecluster-snapshot.db")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and not os.path.exists(path + ".part")
    with open(path, encoding="utf-8") as handle:
        assert [member["name"] for member in json.load(handle)["members"]] == ["cp-0", "cp-1"]
    assert inside.returncode == 1 and "inside the etcd container" in inside.stderr and not first.exists("/tmp/snapshot.db")


# -- the kubelet reports its version -------------------------------------------------------------------------------
def test_a_restarted_kubelet_reports_its_version_on_its_node(two_control_planes_and_a_worker, api):
    import stand_in_kubelet
    _first, _second, worker = two_control_planes_and_a_worker
    assert api.object("Node", "worker")["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4"

    stand_in_kubelet.report_version(worker.path("/etc/kubernetes/kubelet.conf"), "v1.31.5", threading.Event(), attempts=1)

    assert api.object("Node", "worker")["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.5"
    assert [request["user"] for request in api.requests(writes_only=True) if request["path"].startswith("/api/v1/nodes/worker/status")] == [
        "system:node:worker"]
