"""The pieces under the kubeadm stand-in: the YAML reader, the API emulator, and the kubelet, kubectl
and crictl stand-ins."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import kube_api_emulator
import stand_in_lib
import stand_in_yaml

BIN = os.path.join(os.path.dirname(os.path.abspath(stand_in_lib.__file__)), "bin")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- YAML ---------------------------------------------------------------------------------------------
def test_yaml_resolves_plain_scalars_like_go_yaml_v2():
    loaded = stand_in_yaml.load("version: 1.31\nflag: off\nshort: y\nmode: 0755\nhex: 0x1F\nempty:\nquoted: '1.31'\nword: v1.31.4\n")

    assert loaded == {"version": 1.31, "flag": False, "short": True, "mode": 493, "hex": 31, "empty": None, "quoted": "1.31", "word": "v1.31.4"}


def test_yaml_reads_the_shapes_templates_produce():
    text = ("a:\n- x\n- k: 1\n  l: [p, \"q r\", {s: t}]\nb: |\n  line 1\n  line 2\nc: >-\n  folded\n  text\nd: \"esc\\n\\u00e9\"\n"
            "e: 'it''s'\nurl: https://h:6443/x # comment\n---\n---\nz: 1\n")

    documents = stand_in_yaml.load_all(text)

    assert documents == [{"a": ["x", {"k": 1, "l": ["p", "q r", {"s": "t"}]}], "b": "line 1\nline 2\n", "c": "folded text", "d": "esc\né",
                          "e": "it's", "url": "https://h:6443/x"}, None, {"z": 1}]


@pytest.mark.parametrize("text,message", [
    ("a: 1\na: 2\n", 'key "a" already set in map'),
    ("a: &anchor 1\nb: *anchor\n", "anchors and aliases are not supported"),
    ("a:\n\tb: 1\n", "tab character"),
    ("a: [1, 2\n", "unterminated flow collection"),
])
def test_yaml_refuses_what_it_does_not_understand(text, message):
    with pytest.raises(stand_in_yaml.YamlError, match=message):
        stand_in_yaml.load(text)


def test_yaml_dump_round_trips_and_quotes_what_would_change_type():
    value = {"s": "1.31", "b": "off", "n": 3, "nested": [{"name": "a", "value": "true"}, []], "multi": "x\ny\n", "empty": {}}

    text = stand_in_yaml.dump(value)

    assert stand_in_yaml.load(text) == value
    assert 's: "1.31"' in text and 'b: "off"' in text


# -- the API emulator -------------------------------------------------------------------------------------
def request(api, method, path, body=None, token="admin-token-for-tests", content_type="application/json"):
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, token)
    return client.request(method, path, body, content_type)


def test_emulator_discovery_lists_core_and_group_resources(api):
    groups = {group["name"] for group in request(api, "GET", "/apis")["groups"]}
    core = {resource["name"] for resource in request(api, "GET", "/api/v1")["resources"]}
    apps = request(api, "GET", "/apis/apps/v1")

    assert {"apps", "rbac.authorization.k8s.io", "storage.k8s.io", "apiextensions.k8s.io", "policy"} <= groups
    assert {"nodes", "namespaces", "configmaps", "secrets", "serviceaccounts", "services", "pods", "pods/eviction"} <= core
    assert {"deployments", "daemonsets", "deployments/status"} <= {resource["name"] for resource in apps["resources"]}


def test_emulator_crds_register_their_kind(api):
    request(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
        "metadata": {"name": "ippools.crd.projectcalico.org"},
        "spec": {"group": "crd.projectcalico.org", "scope": "Cluster", "names": {"plural": "ippools", "kind": "IPPool", "singular": "ippool"},
                 "versions": [{"name": "v1", "served": True, "storage": True}]}})

    created = request(api, "POST", "/apis/crd.projectcalico.org/v1/ippools", {"metadata": {"name": "default"}, "spec": {"cidr": "192.168.0.0/16"}})
    crd = api.object("CustomResourceDefinition", "ippools.crd.projectcalico.org")

    assert created["kind"] == "IPPool" and created["apiVersion"] == "crd.projectcalico.org/v1"
    assert "crd.projectcalico.org" in {group["name"] for group in request(api, "GET", "/apis")["groups"]}
    assert {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"} in crd["status"]["conditions"]


def test_emulator_patch_kinds_and_conflicts(api):
    base = "/apis/apps/v1/namespaces/default/deployments"
    request(api, "POST", base, {"metadata": {"name": "d", "labels": {"a": "1"}}, "spec": {"replicas": 1, "template": {"spec": {
        "containers": [{"name": "one", "image": "i:1"}, {"name": "two", "image": "j:1"}]}}}})

    strategic = request(api, "PATCH", base + "/d", {"spec": {"template": {"spec": {"containers": [{"name": "two", "image": "j:2"}]}}}},
                        content_type="application/strategic-merge-patch+json")
    merged = request(api, "PATCH", base + "/d", {"metadata": {"labels": {"a": None, "b": "2"}}}, content_type="application/merge-patch+json")
    jsonpatched = request(api, "PATCH", base + "/d", [{"op": "replace", "path": "/spec/replicas", "value": 3}], content_type="application/json-patch+json")
    with pytest.raises(stand_in_lib.ApiError) as conflict:
        request(api, "PUT", base + "/d", dict(jsonpatched, metadata=dict(jsonpatched["metadata"], resourceVersion="1")))

    assert [c["image"] for c in strategic["spec"]["template"]["spec"]["containers"]] == ["i:1", "j:2"]
    assert merged["metadata"]["labels"] == {"b": "2"}
    assert jsonpatched["spec"]["replicas"] == 3 and jsonpatched["metadata"]["generation"] == 3
    assert conflict.value.status == 409


def test_emulator_server_side_apply_creates_and_needs_a_field_manager(api):
    path = "/api/v1/namespaces/default/configmaps/applied"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}}
    client = stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)

    with pytest.raises(stand_in_lib.ApiError) as missing:
        client.request("PATCH", path, body, "application/apply-patch+yaml")
    created = client.request("PATCH", path, body, "application/apply-patch+yaml", {"fieldManager": "test"})
    again = client.request("PATCH", path, body, "application/apply-patch+yaml", {"fieldManager": "test"})

    assert missing.value.status == 400
    assert created["data"] == {"k": "v"} and again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_emulator_selects_by_label_and_field(api):
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}), ("c", {})):
        request(api, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name, "labels": labels}})

    def names(query):
        return [item["metadata"]["name"] for item in request(api, "GET", "/api/v1/namespaces/default/configmaps?" + query)["items"]
                if item["metadata"]["name"] in "abc"]

    assert names("labelSelector=tier%3Dweb") == ["a"]
    assert names("labelSelector=tier%20in%20(web,db)") == ["a", "b"]
    assert names("labelSelector=!tier") == ["c"]
    assert names("labelSelector=tier,env!%3Dprod") == ["b"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]


def test_emulator_nodes_become_ready_with_a_cni_and_keep_the_cloud_taint_without_a_cloud(api):
    request(api, "POST", "/api/v1/nodes", {"metadata": {"name": "n"}, "spec": {"taints": [
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}]}})
    before = api.object("Node", "n")

    request(api, "POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", {"metadata": {"name": "calico-node"}, "spec": {}})
    request(api, "POST", "/apis/apps/v1/namespaces/kube-system/daemonsets", {"metadata": {"name": "aws-cloud-controller-manager"}, "spec": {}})
    after = api.object("Node", "n")

    assert before["status"]["conditions"][-1]["status"] == "False" and "cni plugin not initialized" in before["status"]["conditions"][-1]["message"]
    assert {taint["key"] for taint in before["spec"]["taints"]} == {"node.cloudprovider.kubernetes.io/uninitialized", "node.kubernetes.io/not-ready"}
    # Ready, but nothing initialised it: a workload's name is not a cloud controller manager, and there is no cloud
    assert after["status"]["conditions"][-1]["status"] == "True"
    assert [taint["key"] for taint in after["spec"]["taints"]] == ["node.cloudprovider.kubernetes.io/uninitialized"]
    assert "providerID" not in after["spec"]
    assert api.object("DaemonSet", "calico-node", "kube-system")["status"]["numberReady"] == 1


def test_emulator_authenticates_and_authorizes(api):
    token = stand_in_lib.generate_token()
    request(api, "POST", "/api/v1/namespaces/kube-system/secrets", stand_in_lib.token_secret(token, 600))

    with pytest.raises(stand_in_lib.ApiError) as unknown:
        request(api, "GET", "/api/v1/nodes", token="nobody")
    with pytest.raises(stand_in_lib.ApiError) as anonymous:
        request(api, "GET", "/api/v1/namespaces/kube-system/secrets", token=None)
    with pytest.raises(stand_in_lib.ApiError) as bootstrap_secrets:
        request(api, "GET", "/api/v1/namespaces/kube-system/secrets", token=token)
    node = request(api, "POST", "/api/v1/nodes", {"metadata": {"name": "joined"}}, token=token)

    assert unknown.value.status == 401
    assert anonymous.value.status == 403
    assert bootstrap_secrets.value.status == 403 and 'User "system:bootstrap:%s"' % token[:6] in str(bootstrap_secrets.value)
    assert node["metadata"]["name"] == "joined"
    assert api.requests()[-1]["user"] == "system:bootstrap:" + token[:6]


def test_emulator_stand_in_endpoints(api):
    request(api, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "seen"}})

    objects = request(api, "GET", "/stand-in/objects")["items"]
    requests = request(api, "GET", "/stand-in/requests")["items"]

    assert any(obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "seen" for obj in objects)
    assert [(entry["method"], entry["path"], entry["write"]) for entry in requests][:1] == [("POST", "/api/v1/namespaces/default/configmaps", True)]


# -- kubelet, kubectl, crictl ------------------------------------------------------------------------------------
def test_kubelet_needs_its_config_then_serves_healthz(make_host):
    host = make_host()
    missing = host.run("kubelet", "--config=" + host.path("/var/lib/kubelet/config.yaml"))
    port = free_port()
    config = host.write("kubelet.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: %d\n"
                                        "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n" % port)
    bad = host.write("bad.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPrt: 1\n")
    env = dict(os.environ, KUBECLUSTER_STAND_IN_DIR=host.settings_dir)
    invalid = host.run("kubelet", "--config", bad)
    unknown_flag = host.run("kubelet", "--no-such-flag")

    process = subprocess.Popen([sys.executable, os.path.join(BIN, "kubelet"), "--config", config], env=env)
    try:
        for _index in range(50):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

    assert missing.returncode == 1 and "failed to load kubelet config file" in missing.stderr
    assert invalid.returncode == 1 and 'unknown field "healthzPrt"' in invalid.stderr
    assert unknown_flag.returncode == 1 and "unknown flag: --no-such-flag" in unknown_flag.stderr
    assert body == b"ok" and process.returncode == 0
    assert [call.get("event") for call in host.calls("kubelet")][-2:] == ["started", None]


def test_kubectl_applies_gets_and_cordons(make_host, api, tmp_path):
    host = make_host()
    kubeconfig = str(tmp_path / "admin.conf")
    stand_in_lib.write_kubeconfig(kubeconfig, api.url, api.store.ca_pem.encode(), "kubernetes-admin", api.admin_token)
    manifest = host.write("m.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n---\napiVersion: v1\nkind: ConfigMap\n"
                                    "metadata:\n  name: c\n  namespace: extra\ndata:\n  k: v\n")
    request(api, "POST", "/api/v1/nodes", {"metadata": {"name": "n1"}})

    applied = host.run("kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", manifest)
    reapplied = host.run("kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", manifest)
    got = host.run("kubectl", "--kubeconfig", kubeconfig, "-n", "extra", "get", "configmap", "c", "-o", "jsonpath={.data.k}")
    cordoned = host.run("kubectl", "--kubeconfig", kubeconfig, "cordon", "n1")
    nodes = json.loads(host.run("kubectl", "--kubeconfig", kubeconfig, "get", "nodes", "-o", "json").stdout)
    missing = host.run("kubectl", "--kubeconfig", kubeconfig, "rollout", "status", "deploy/x")

    assert applied.stdout == "namespace/extra created\nconfigmap/c created\n"
    assert reapplied.stdout == "namespace/extra unchanged\nconfigmap/c unchanged\n"
    assert got.stdout == "v\n"
    assert cordoned.stdout == "node/n1 cordoned\n" and nodes["items"][0]["spec"]["unschedulable"] is True
    assert missing.returncode == 1 and "not implemented by the kubectl stand-in" in missing.stderr


def test_crictl_needs_the_runtime_socket(make_host):
    host = make_host()

    present = host.run("crictl", "--runtime-endpoint", "unix:///var/run/containerd/containerd.sock", "info")
    absent = host.run("crictl", "--runtime-endpoint", "unix:///run/nothing.sock", "ps")

    assert present.returncode == 0 and json.loads(present.stdout)["status"]["conditions"][0]["type"] == "RuntimeReady"
    assert absent.returncode == 1 and "no such file or directory" in absent.stderr


def test_ca_cert_hash_matches_openssl(pki):
    pem = open(os.path.join(pki, "ca.crt")).read()
    der = subprocess.run("openssl x509 -pubkey -noout -in %s | openssl pkey -pubin -outform der | sha256sum" % os.path.join(pki, "ca.crt"),
                         shell=True, capture_output=True, text=True, check=True).stdout.split()[0]

    assert stand_in_lib.ca_cert_hash(pem) == "sha256:" + der


def test_emulator_module_is_self_contained():
    # the emulator and the stand-ins' modules must import with the standard library alone
    source = " ".join(open(os.path.join(os.path.dirname(kube_api_emulator.__file__), name)).read()
                      for name in ("kube_api_emulator.py", "stand_in_lib.py", "stand_in_yaml.py", "stand_in_schema.py", "stand_in_kubeadm.py"))
    imported = set()
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("import ") or (stripped.startswith("from ") and " import " in stripped):
            imported.add(stripped.split()[1].split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"stand_in_lib", "stand_in_yaml", "stand_in_schema"}


def test_emulator_version_follows_the_cluster_configuration(api):
    before = request(api, "GET", "/version")["gitVersion"]
    request(api, "POST", "/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "kubeadm-config"}, "data": {
        "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\n"}})

    after = request(api, "GET", "/version")

    assert before == "v1.31.4"
    assert (after["gitVersion"], after["minor"]) == ("v1.32.2", "32")
