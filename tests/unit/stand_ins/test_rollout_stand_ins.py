"""What the immutable rollout needs of the stand-ins: a control-plane join writes the static pods of the version in the
kubeadm-config ConfigMap, as kubeadm does; and the emulator's test fault keeps the next Nodes to register NotReady."""

import json
import time

from helpers.modules import load_sibling
import stand_in_lib
import stand_in_yaml

# the kubeadm tests' helpers (init, join config, the printed join parts); pytest's importlib mode has no sibling imports
_KUBEADM_TESTS = load_sibling(__file__, "test_kubeadm_stand_in.py", "kubeadm_stand_in_tests")
init_cluster, join_config, join_parts = _KUBEADM_TESTS.init_cluster, _KUBEADM_TESTS.join_config, _KUBEADM_TESTS.join_parts

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def apiserver_image(host):
    return stand_in_yaml.load(host.read(MANIFEST))["spec"]["containers"][0]["image"]


def raise_cluster_version(api, version):
    """What KubeadmControlPlane (and the rollout) does before a new control-plane machine joins."""
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)
    config_map = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    cluster = stand_in_yaml.load(config_map["data"]["ClusterConfiguration"])
    cluster["kubernetesVersion"] = version
    config_map["data"]["ClusterConfiguration"] = stand_in_yaml.dump(cluster)
    client.request("PUT", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", config_map)


def test_a_control_plane_join_takes_the_version_from_kubeadm_config(make_host, endpoint, api):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    stale, fresh = make_host("cp-1", version="v1.32.1"), make_host("cp-2", version="v1.32.1")

    before = stale.run("kubeadm", "join", "--config", join_config(stale, endpoint, token, ca_hash, "cp-1", key))
    raise_cluster_version(api, "v1.32.1")
    after = fresh.run("kubeadm", "join", "--config", join_config(fresh, endpoint, token, ca_hash, "cp-2", key))

    assert before.returncode == 0 and after.returncode == 0, (before.stderr, after.stderr)
    # without the ConfigMap raised first, a v1.32 machine runs a v1.31 API server, as with kubeadm
    assert apiserver_image(stale) == "registry.k8s.io/kube-apiserver:v1.31.4"
    assert apiserver_image(fresh) == "registry.k8s.io/kube-apiserver:v1.32.1"


def test_a_control_plane_join_refuses_a_cluster_version_too_old_for_its_kubeadm(make_host, endpoint):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("cp-1", version="v1.33.0")

    joined = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", key))

    assert joined.returncode == 1 and "control plane version >= 1.32.0. Current version: v1.31.4" in joined.stderr


def ready(api, name):
    node = api.object("Node", name)
    return [condition for condition in node["status"]["conditions"] if condition["type"] == "Ready"][0]


def wait_ready(api, name, status):
    deadline = time.time() + 10
    while time.time() < deadline:
        api.store.reconcile()
        if ready(api, name)["status"] == status:
            return ready(api, name)
        time.sleep(0.1)
    raise AssertionError("%s never got Ready=%s: %s" % (name, status, ready(api, name)))


def test_the_kubelet_fault_keeps_the_next_nodes_not_ready_until_cleared(api):
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)
    client.request("POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", {"metadata": {"name": "calico-node"}, "spec": {}})
    client.request("POST", "/api/v1/nodes", {"metadata": {"name": "before"}})
    fault = client.request("PUT", "/stand-in/kubelet-faults", {"not_ready_registrations": 1, "message": "test: runtime down"})
    for name in ("held", "after"):
        client.request("POST", "/api/v1/nodes", {"metadata": {"name": name}})

    held = wait_ready(api, "held", "False")
    assert fault == {"not_ready_registrations": 1, "message": "test: runtime down", "nodes": []}
    assert held["message"] == "test: runtime down" and held["reason"] == "KubeletNotReady"
    assert wait_ready(api, "before", "True") and wait_ready(api, "after", "True")
    assert client.request("GET", "/stand-in/kubelet-faults") == {"not_ready_registrations": 0, "message": "test: runtime down", "nodes": ["held"]}

    cleared = client.request("DELETE", "/stand-in/kubelet-faults")

    assert cleared["nodes"] == [] and wait_ready(api, "held", "True")["reason"] == "KubeletReady"
    bad = stand_in_lib.ApiError if hasattr(stand_in_lib, "ApiError") else Exception
    try:
        client.request("PUT", "/stand-in/kubelet-faults", {"not_ready_registrations": "1"})
    except bad as error:
        assert "integer" in json.dumps(str(error))
    else:
        raise AssertionError("a count that is not an integer was taken")
