"""The API emulator's AWS cloud controller manager: a Node loses the cloud-provider "uninitialized"
taint and gets its providerID and topology labels only when a cloud controller manager could really
run (its workload, ServiceAccount, RBAC and a node to run on) and the cloud knows the Node."""

import os
import socket

import pytest
import yaml

import kube_api_emulator
import stand_in_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CCM_MANIFEST = os.path.join(REPO, "tests", "nodes", "files", "aws-cloud-controller-manager.manifest")
UNINITIALIZED = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
ZONE = "ap-northeast-2a"
CLOUD = {"ip-10-0-64-11.ap-northeast-2.compute.internal": "aws:///ap-northeast-2a/i-0123456789abcdef0",
         "ip-10-0-64-21.ap-northeast-2.compute.internal": {"provider_id": "aws:///ap-northeast-2b/i-0fedcba9876543210",
                                                           "instance_type": "t3.large"}}
CONTROL_PLANE, WORKER = sorted(CLOUD)
STRANGER = "ip-10-0-64-99.ap-northeast-2.compute.internal"
PATHS = {"DaemonSet": "/apis/apps/v1/namespaces/%s/daemonsets", "Deployment": "/apis/apps/v1/namespaces/%s/deployments",
         "ServiceAccount": "/api/v1/namespaces/%s/serviceaccounts", "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings",
         "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles", "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def make_api(pki):
    started = []

    def make(cloud_provider):
        with open(os.path.join(pki, "ca.crt"), encoding="utf-8") as handle:
            ca_pem = handle.read()
        emulator = kube_api_emulator.KubeApiEmulator("127.0.0.1", free_port(), os.path.join(pki, "apiserver.crt"),
                                                     os.path.join(pki, "apiserver.key"), admin_token="admin-token-for-tests",
                                                     ca_pem=ca_pem, cloud_provider=cloud_provider).start()
        started.append(emulator)
        return emulator
    yield make
    for emulator in started:
        emulator.stop()


def post(api, document):
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)
    path = PATHS[document["kind"]]
    return client.request("POST", path % document["metadata"].get("namespace", "kube-system") if "%s" in path else path, document)


def ccm_documents():
    with open(CCM_MANIFEST, encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document]


def register(api, name, control_plane=False):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    taints = [dict(UNINITIALIZED)]
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        taints.insert(0, dict(CONTROL_PLANE_TAINT))
    post_node = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)
    post_node.request("POST", "/api/v1/nodes", {"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})


def cluster(api, documents=None, cni=True):
    """Nodes as kubeadm registers them with --cloud-provider=external, a CNI, then the CCM's objects."""
    register(api, CONTROL_PLANE, control_plane=True)
    register(api, WORKER)
    register(api, STRANGER)
    if cni:
        post(api, {"kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"}, "spec": {}})
    for document in ccm_documents() if documents is None else documents:
        post(api, document)
    return {name: api.object("Node", name) for name in (CONTROL_PLANE, WORKER, STRANGER)}


def taint_keys(node):
    return [taint["key"] for taint in node["spec"].get("taints") or []]


def test_the_ccm_initialises_the_nodes_the_cloud_knows(make_api):
    api = make_api(CLOUD.get)

    nodes = cluster(api)

    control_plane, worker = nodes[CONTROL_PLANE], nodes[WORKER]
    assert control_plane["spec"]["providerID"] == "aws:///ap-northeast-2a/i-0123456789abcdef0"
    assert taint_keys(control_plane) == ["node-role.kubernetes.io/control-plane"]
    assert worker["spec"]["providerID"] == "aws:///ap-northeast-2b/i-0fedcba9876543210" and "taints" not in worker["spec"]
    assert {key: value for key, value in worker["metadata"]["labels"].items() if "kubernetes.io/" in key and "hostname" not in key
            and "/os" not in key} == {
        "topology.kubernetes.io/zone": "ap-northeast-2b", "failure-domain.beta.kubernetes.io/zone": "ap-northeast-2b",
        "topology.kubernetes.io/region": "ap-northeast-2", "failure-domain.beta.kubernetes.io/region": "ap-northeast-2",
        "node.kubernetes.io/instance-type": "t3.large", "beta.kubernetes.io/instance-type": "t3.large"}
    # a string gives no instance type: no label is made up
    assert "node.kubernetes.io/instance-type" not in control_plane["metadata"]["labels"]
    assert control_plane["metadata"]["labels"]["topology.kubernetes.io/zone"] == ZONE


def test_a_node_the_cloud_does_not_know_stays_uninitialized(make_api):
    api = make_api(CLOUD.get)

    stranger = cluster(api)[STRANGER]

    assert taint_keys(stranger) == ["node.cloudprovider.kubernetes.io/uninitialized"]
    assert "providerID" not in stranger["spec"] and "topology.kubernetes.io/zone" not in stranger["metadata"]["labels"]


def test_without_a_cloud_no_node_is_initialised(make_api):
    api = make_api(None)

    nodes = cluster(api)

    assert all("node.cloudprovider.kubernetes.io/uninitialized" in taint_keys(node) for node in nodes.values())
    assert all("providerID" not in node["spec"] for node in nodes.values())


def without(kind, documents=None):
    return [document for document in documents or ccm_documents() if document["kind"] != kind]


def ccm_with(change):
    documents = ccm_documents()
    daemonset = next(document for document in documents if document["kind"] == "DaemonSet")
    change(daemonset["spec"]["template"]["spec"])
    return documents


@pytest.mark.parametrize("documents, why", [
    (lambda: [], "no cloud controller manager at all"),
    (lambda: without("ServiceAccount"), "its pods cannot be created without their ServiceAccount"),
    (lambda: without("ClusterRoleBinding"), "it may not update Nodes"),
    (lambda: ccm_with(lambda spec: spec["containers"][0].update(args=["--v=2"])), "it does not run --cloud-provider=aws"),
    (lambda: ccm_with(lambda spec: spec.update(nodeSelector={"node-role.kubernetes.io/master": ""})), "no node matches its nodeSelector"),
    (lambda: ccm_with(lambda spec: spec.update(tolerations=[])), "it does not tolerate the uninitialized and control-plane taints"),
])
def test_a_ccm_that_cannot_run_initialises_nothing(make_api, documents, why):
    api = make_api(CLOUD.get)

    nodes = cluster(api, documents())

    assert all("node.cloudprovider.kubernetes.io/uninitialized" in taint_keys(node) for node in nodes.values()), why


def test_the_ccm_waits_for_the_cni_as_its_pods_do(make_api):
    """DaemonSet pods do not tolerate the not-ready NoSchedule taint: the CCM runs once a node is Ready."""
    api = make_api(CLOUD.get)

    before = cluster(api, cni=False)[CONTROL_PLANE]
    post(api, {"kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"}, "spec": {}})
    after = api.object("Node", CONTROL_PLANE)

    assert "node.cloudprovider.kubernetes.io/uninitialized" in taint_keys(before)
    assert after["spec"]["providerID"] == CLOUD[CONTROL_PLANE]


def test_reset_keeps_the_cloud(make_api):
    api = make_api(CLOUD.get)
    cluster(api)

    api.reset()
    register(api, WORKER)
    post(api, {"kind": "DaemonSet", "metadata": {"name": "calico-node", "namespace": "kube-system"}, "spec": {}})
    register(api, CONTROL_PLANE, control_plane=True)
    for document in ccm_documents():
        post(api, document)

    assert api.object("Node", WORKER)["spec"]["providerID"] == CLOUD[WORKER]["provider_id"]
    assert api.admin_token == "admin-token-for-tests"
