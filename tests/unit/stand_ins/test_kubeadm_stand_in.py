"""The kubeadm stand-in run directly against an in-process API emulator: what it accepts, what it rejects
(as kubeadm does, or stricter where the contract says so), what it leaves behind and records."""

import datetime
import json
import os
import textwrap

import pytest

INIT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp-0
  kubeletExtraArgs:
    - name: cloud-provider
      value: external
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.4
controlPlaneEndpoint: "{endpoint}"
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  extraArgs:
    - name: cloud-provider
      value: external
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
"""

JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: {name}
discovery:
  bootstrapToken:
    apiServerEndpoint: "{endpoint}"
    token: {token}
    caCertHashes: ["{ca_hash}"]
{control_plane}"""


def init_cluster(host, endpoint, *extra):
    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", INIT.format(endpoint=endpoint)), "--upload-certs", *extra)
    assert result.returncode == 0, result.stderr
    return result


def join_parts(init_output):
    """(token, ca hash, certificate key) from kubeadm init's printed join commands."""
    words = init_output.replace("\\", " ").split()
    return words[words.index("--token") + 1], words[words.index("--discovery-token-ca-cert-hash") + 1], words[words.index("--certificate-key") + 1]


def validate(host, text):
    return host.run("kubeadm", "config", "validate", "--config", host.write("config.yaml", textwrap.dedent(text)))


# -- versions and records ------------------------------------------------------------------------
def test_versions_and_call_records(make_host):
    host = make_host(version="v1.30.7")

    assert host.run("kubeadm", "version", "-o", "short").stdout == "v1.30.7\n"
    assert host.run("kubelet", "--version").stdout == "Kubernetes v1.30.7\n"
    assert host.run("kubectl", "version", "--client").stdout.startswith("Client Version: v1.30.7\n")
    bad = host.run("kubeadm", "version", "--bogus")

    assert bad.returncode == 1 and "unknown flag: --bogus" in bad.stderr
    calls = host.calls()
    assert [(call["binary"], call["argv"], call["exit_code"]) for call in calls] == [
        ("kubeadm", ["version", "-o", "short"], 0), ("kubelet", ["--version"], 0), ("kubectl", ["version", "--client"], 0),
        ("kubeadm", ["version", "--bogus"], 1)]
    assert calls[0]["stdout"] == "v1.30.7\n" and "unknown flag" in calls[3]["stderr"]


def test_a_version_baked_into_built_binaries_wins(make_host, tmp_path):
    import stand_in_lib
    binaries = stand_in_lib.build_binaries(str(tmp_path / "bin"), "1.32.1")
    host = make_host(version="v1.31.4")
    import os
    import subprocess
    env = dict(os.environ, KUBECLUSTER_STAND_IN_DIR=host.settings_dir)

    out = subprocess.run([binaries + "/kubeadm", "version", "-o", "short"], capture_output=True, text=True, env=env, check=False)

    assert out.stdout == "v1.32.1\n"
    assert open(binaries + "/stand_in_version").read() == "v1.32.1\n"
    assert sorted(os.listdir(binaries)) == ["crictl", "kubeadm", "kubectl", "kubelet", "stand_in_version"]


# -- config validation ----------------------------------------------------------------------------
GOOD_BETA4 = """\
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: ClusterConfiguration
    kubernetesVersion: v1.31.4
    controlPlaneEndpoint: "lb.example.com:6443"
    apiServer:
      extraArgs:
        - name: cloud-provider
          value: external
      certSANs: ["lb.example.com"]
    encryptionAlgorithm: RSA-2048
    ---
    apiVersion: kubeadm.k8s.io/v1beta4
    kind: InitConfiguration
    timeouts:
      controlPlaneComponentHealthCheck: 4m0s
    nodeRegistration:
      criSocket: unix:///var/run/containerd/containerd.sock
      taints: []
"""


def test_config_validate_accepts_v1beta4_for_131(make_host):
    result = validate(make_host(version="v1.31.4"), GOOD_BETA4)

    assert (result.returncode, result.stdout) == (0, "ok\n")


@pytest.mark.parametrize("version,text,message", [
    ("v1.31.4", GOOD_BETA4.replace("    encryptionAlgorithm", "    networking:\n      podSubnets: 10.0.0.0/8\n    encryptionAlgorithm"),
     'unknown field "networking.podSubnets"'),
    ("v1.31.4", GOOD_BETA4.replace("    kubernetesVersion", "    kubernetesVersoin"), 'unknown field "kubernetesVersoin"'),
    ("v1.31.4", GOOD_BETA4.replace("v1beta4", "v1beta3"), "deprecated API spec: \"kubeadm.k8s.io/v1beta3\""),
    ("v1.30.7", GOOD_BETA4, 'experimental API spec: "kubeadm.k8s.io/v1beta4" is not allowed'),
    ("v1.31.4", GOOD_BETA4.replace("        - name: cloud-provider\n          value: external", "        cloud-provider: external"),
     "cannot unmarshal object into Go struct field ClusterConfiguration.apiServer.extraArgs of type []struct"),
    ("v1.31.4", GOOD_BETA4.replace("kubernetesVersion: v1.31.4", "kubernetesVersion: 1.31"),
     "cannot unmarshal number into Go struct field ClusterConfiguration.kubernetesVersion of type string"),
    ("v1.31.4", GOOD_BETA4.replace("      value: external", "      value: off"),
     "cannot unmarshal bool into Go struct field ClusterConfiguration.apiServer.extraArgs[0].value of type string"),
    ("v1.31.4", GOOD_BETA4 + "    ---\n", "kind and apiVersion is mandatory information that must be specified"),
    ("v1.31.4", GOOD_BETA4.replace("RSA-2048", "ECDSA-P384"), 'encryptionAlgorithm: Unsupported value: "ECDSA-P384"'),
    ("v1.31.4", GOOD_BETA4.replace("      controlPlaneComponentHealthCheck: 4m0s", "      controlPlaneComponentHealthCheck: 4 minutes"),
     'time: invalid duration "4 minutes"'),
    ("v1.31.4", GOOD_BETA4.replace("    kubernetesVersion: v1.31.4", "    kubernetesVersion: v1.31.4\n    kubernetesVersion: v1.31.5"),
     'key "kubernetesVersion" already set in map'),
    ("v1.31.4", GOOD_BETA4 + "    ---\n    apiVersion: kubelet.config.k8s.io/v1beta1\n    kind: KubeletConfiguration\n    cgroupDrvier: systemd\n",
     'unknown field "cgroupDrvier"'),
    ("v1.31.4", GOOD_BETA4 + "    ---\n    apiVersion: kubeproxy.config.k8s.io/v1alpha1\n    kind: KubeProxyConfiguration\n"
     "    mode: ipvs\n    ipvs:\n      strictArp: true\n",
     'unknown field "ipvs.strictArp"'),
    ("v1.31.4", GOOD_BETA4 + "    ---\n    apiVersion: kubeadm.k8s.io/v1beta4\n    kind: ClusterConfiguration\n",
     'kind "ClusterConfiguration" is specified twice'),
])
def test_config_validate_rejects(make_host, version, text, message):
    result = validate(make_host(version=version), text)

    assert result.returncode == 1
    assert message in result.stderr


def test_version_dependent_fields(make_host):
    algorithm = GOOD_BETA4.replace("RSA-2048", "ECDSA-P384")
    http_endpoints = GOOD_BETA4.replace("    encryptionAlgorithm", "    etcd:\n      external:\n        endpoints: [https://e:2379]\n"
                                        "        caFile: /e/ca.crt\n        certFile: /e/c.crt\n        keyFile: /e/c.key\n"
                                        "        httpEndpoints: [https://e:2381]\n    encryptionAlgorithm")

    assert validate(make_host("a", version="v1.34.1"), algorithm).returncode == 0
    assert validate(make_host("b", version="v1.35.0"), http_endpoints).returncode == 0
    assert 'unknown field "etcd.external.httpEndpoints"' in validate(make_host("c", version="v1.34.1"), http_endpoints).stderr


def test_v1beta3_maps_are_right_before_131(make_host):
    text = """\
        apiVersion: kubeadm.k8s.io/v1beta3
        kind: ClusterConfiguration
        kubernetesVersion: v1.30.7
        controlPlaneEndpoint: lb.example.com:6443
        apiServer:
          timeoutForControlPlane: 4m0s
          extraArgs:
            cloud-provider: external
    """

    assert validate(make_host("a", version="v1.30.7"), text).returncode == 0
    as_list = text.replace("            cloud-provider: external", "            - name: cloud-provider\n              value: external")
    listed = validate(make_host("b", version="v1.30.7"), as_list)
    assert "cannot unmarshal array into Go struct field ClusterConfiguration.apiServer.extraArgs of type map[string]string" in listed.stderr


# -- init -------------------------------------------------------------------------------------------
def test_init_leaves_kubeadms_files_and_objects_and_refuses_to_run_twice(make_host, endpoint, api):
    host = make_host("cp-0")

    result = init_cluster(host, endpoint)
    again = host.run("kubeadm", "init", "--config", host.path("/tmp/init.yaml"), "--upload-certs")

    for path in ("/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt",
                 "/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/sa.key", "/etc/kubernetes/manifests/kube-apiserver.yaml",
                 "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env"):
        assert host.exists(path), path
    assert "--cloud-provider=external" in host.read("/var/lib/kubelet/kubeadm-flags.env")
    assert "cgroupDriver: systemd" in host.read("/var/lib/kubelet/config.yaml")
    assert "--cloud-provider=external" in host.read("/etc/kubernetes/manifests/kube-apiserver.yaml")
    node = api.object("Node", "cp-0")
    assert node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    assert {taint["key"] for taint in node["spec"]["taints"]} == {
        "node-role.kubernetes.io/control-plane", "node.cloudprovider.kubernetes.io/uninitialized", "node.kubernetes.io/not-ready"}
    assert "controlPlaneEndpoint: \"%s\"" % endpoint in api.object("ConfigMap", "kubeadm-config", "kube-system")["data"]["ClusterConfiguration"] or \
        "controlPlaneEndpoint: %s" % endpoint in api.object("ConfigMap", "kubeadm-config", "kube-system")["data"]["ClusterConfiguration"]
    assert api.object("Secret", "kubeadm-certs", "kube-system")["metadata"]["ownerReferences"][0]["kind"] == "Secret"
    assert api.object("Deployment", "coredns", "kube-system") and api.object("DaemonSet", "kube-proxy", "kube-system")
    assert "Your Kubernetes control-plane has initialized successfully!" in result.stdout
    assert again.returncode == 1
    assert "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists" in again.stderr
    assert "[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty" in again.stderr
    record = host.calls("kubeadm")[0]
    assert record["exit_code"] == 0 and [doc["kind"] for doc in record["configs"][0]["documents"]] == [
        "InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]


def test_init_without_control_plane_endpoint_fails(make_host, endpoint):
    host = make_host()
    text = INIT.format(endpoint=endpoint).replace('controlPlaneEndpoint: "%s"\n' % endpoint, "")

    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", text))

    assert result.returncode == 1
    assert "controlPlaneEndpoint" in result.stderr and not host.exists("/etc/kubernetes/admin.conf")


@pytest.mark.parametrize("flag", [["--token", "abcdef.0123456789abcdef"], ["--pod-network-cidr", "10.0.0.0/8"], ["--control-plane-endpoint", "x:6443"]])
def test_init_config_does_not_mix_with_other_flags(make_host, endpoint, flag):
    host = make_host()

    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", INIT.format(endpoint=endpoint)), *flag)

    assert result.returncode == 1
    assert "can not mix '--config' with arguments [%s]" % flag[0].lstrip("-") in result.stderr


def test_preflight_finds_a_missing_container_runtime(make_host, endpoint):
    host = make_host()
    import os
    os.remove(host.path("/var/run/containerd/containerd.sock"))

    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", INIT.format(endpoint=endpoint)))
    ignored = host.run("kubeadm", "init", "--config", host.path("/tmp/init.yaml"), "--ignore-preflight-errors=CRI")

    assert result.returncode == 1 and "[ERROR CRI]: container runtime is not running" in result.stderr
    assert ignored.returncode == 0 and "[WARNING CRI]" in ignored.stderr


# -- join -------------------------------------------------------------------------------------------
def join_config(host, endpoint, token, ca_hash, name, certificate_key=None):
    control_plane = 'controlPlane:\n  certificateKey: "%s"\n' % certificate_key if certificate_key is not None else ""
    if certificate_key == "":
        control_plane = "controlPlane: {}\n"
    return host.write("join.yaml", JOIN.format(endpoint=endpoint, token=token, ca_hash=ca_hash, name=name, control_plane=control_plane))


def test_workers_and_control_planes_join(make_host, endpoint, api):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    worker, second = make_host("worker"), make_host("cp-1")

    by_flags = worker.run("kubeadm", "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", ca_hash, "--node-name", "worker")
    by_config = second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key))

    assert by_flags.returncode == 0, by_flags.stderr
    assert by_config.returncode == 0, by_config.stderr
    assert sorted(node["metadata"]["name"] for node in api.objects("Node")) == ["cp-0", "cp-1", "worker"]
    assert api.object("Node", "cp-1")["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    assert "node-role.kubernetes.io/control-plane" not in api.object("Node", "worker")["metadata"]["labels"]
    with open(second.settings["ca_key"], encoding="utf-8") as handle:
        assert second.read("/etc/kubernetes/pki/ca.key") == handle.read()  # downloaded from kubeadm-certs with the key
    assert worker.exists("/etc/kubernetes/kubelet.conf") and not worker.exists("/etc/kubernetes/admin.conf")
    registered_by = [entry["user"] for entry in api.requests() if entry["path"] == "/api/v1/nodes" and entry["method"] == "POST"]
    assert registered_by == ["kubernetes-admin"] + ["system:bootstrap:" + token[:6]] * 2


def test_join_flags_do_not_mix_with_config(make_host, endpoint):
    token, ca_hash, _key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("worker")
    path = join_config(host, endpoint, token, ca_hash, "worker")

    for extra in (["--token", token], ["--certificate-key", "ab" * 32], ["--discovery-token-ca-cert-hash", ca_hash], ["--control-plane"]):
        result = host.run("kubeadm", "join", "--config", path, *extra)
        assert result.returncode == 1 and "can not mix '--config' with arguments" in result.stderr, extra


def test_join_with_an_unknown_a_wrong_or_an_expired_token_fails(make_host, endpoint, api):
    token, ca_hash, _key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("worker")

    unknown = host.run("kubeadm", "join", endpoint, "--token", "zzzzzz.0123456789abcdef", "--discovery-token-ca-cert-hash", ca_hash)
    wrong_secret = host.run("kubeadm", "join", endpoint, "--token", token[:7] + "0123456789abcdef", "--discovery-token-ca-cert-hash", ca_hash)
    secret = api.store.objects[("", "secrets", "kube-system", "bootstrap-token-" + token[:6])]
    secret["data"]["expiration"] = __import__("base64").b64encode(b"2020-01-01T00:00:00Z").decode()
    expired = host.run("kubeadm", "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", ca_hash)

    assert unknown.returncode == 1 and 'This token id "zzzzzz" is invalid for this cluster, or it has expired' in unknown.stderr
    assert wrong_secret.returncode == 1 and "failed to verify JWS signature" in wrong_secret.stderr
    assert expired.returncode == 1 and 'This token id "%s" is invalid for this cluster, or it has expired' % token[:6] in expired.stderr
    assert api.object("Secret", "bootstrap-token-" + token[:6], "kube-system") is None  # the token cleaner removed it
    assert not host.exists("/etc/kubernetes/kubelet.conf")


def test_join_pins_the_ca(make_host, endpoint):
    token, _hash, _key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("worker")

    pinned = host.run("kubeadm", "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", "sha256:" + "0" * 64)
    unpinned = host.run("kubeadm", "join", endpoint, "--token", token)

    assert pinned.returncode == 1 and "none of the public keys" in pinned.stderr
    assert unpinned.returncode == 1 and "using token-based discovery without caCertHashes can be unsafe" in unpinned.stderr


def test_control_plane_join_needs_the_current_certificate_key(make_host, endpoint, api):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("cp-1")

    without = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", ""))
    wrong = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", "ab" * 32))
    certs = api.store.objects[("", "secrets", "kube-system", "kubeadm-certs")]
    created = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2, minutes=1)
    certs["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    too_old = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", key))

    assert without.returncode == 1 and "failure loading certificate for CA" in without.stderr
    assert wrong.returncode == 1 and "cipher: message authentication failed" in wrong.stderr
    assert too_old.returncode == 1 and 'Secret "kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired' in too_old.stderr
    assert api.object("Node", "cp-1") is None


def test_uploaded_certs_go_with_their_two_hour_token(make_host, endpoint, api):
    init_cluster(make_host("cp-0"), endpoint)
    owner = api.object("Secret", "kubeadm-certs", "kube-system")["metadata"]["ownerReferences"][0]["name"]
    expiry = __import__("base64").b64decode(api.object("Secret", owner, "kube-system")["data"]["expiration"]).decode()
    remaining = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc) - datetime.datetime.now(datetime.timezone.utc)

    api.store.objects[("", "secrets", "kube-system", owner)]["data"]["expiration"] = __import__("base64").b64encode(b"2020-01-01T00:00:00Z").decode()

    assert datetime.timedelta(hours=1, minutes=59) < remaining <= datetime.timedelta(hours=2)
    assert api.object("Secret", "kubeadm-certs", "kube-system") is None


def test_upload_certs_gives_a_key_that_a_control_plane_join_accepts(make_host, endpoint):
    first = make_host("cp-0")
    token, ca_hash, old_key = join_parts(init_cluster(first, endpoint).stdout)

    upload = first.run("kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--kubeconfig", first.path("/etc/kubernetes/admin.conf"))
    new_key = upload.stdout.strip().splitlines()[-1]
    host = make_host("cp-1")
    stale = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", old_key))
    fresh = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", new_key))

    assert upload.returncode == 0 and len(new_key) == 64 and new_key != old_key
    assert stale.returncode == 1 and "message authentication failed" in stale.stderr
    assert fresh.returncode == 0, fresh.stderr


def test_control_plane_join_needs_a_stable_endpoint_in_the_cluster(make_host, endpoint, api):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    config_map = api.store.objects[("", "configmaps", "kube-system", "kubeadm-config")]
    lines = config_map["data"]["ClusterConfiguration"].splitlines()
    config_map["data"]["ClusterConfiguration"] = "\n".join(line for line in lines if not line.startswith("controlPlaneEndpoint"))
    host = make_host("cp-1")

    result = host.run("kubeadm", "join", "--config", join_config(host, endpoint, token, ca_hash, "cp-1", key))

    assert result.returncode == 1
    assert "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address" in result.stderr


def test_token_create_prints_a_join_command_that_works(make_host, endpoint, api):
    first = make_host("cp-0")
    init_cluster(first, endpoint)

    created = first.run("kubeadm", "token", "create", "--print-join-command", "--ttl", "15m", "--kubeconfig", first.path("/etc/kubernetes/admin.conf"))
    words = created.stdout.split()
    joined = make_host("worker").run("kubeadm", *words[1:], "--node-name", "worker")

    assert created.returncode == 0 and words[:3] == ["kubeadm", "join", endpoint]
    assert joined.returncode == 0, joined.stderr
    secret = api.object("Secret", "bootstrap-token-" + words[4][:6], "kube-system")
    assert secret["type"] == "bootstrap.kubernetes.io/token"


# -- reset ------------------------------------------------------------------------------------------
def test_reset_removes_what_init_left_and_needs_force(make_host, endpoint):
    host = make_host("cp-0")
    init_cluster(host, endpoint)

    asked = host.run("kubeadm", "reset", stdin="n\n")
    kept = host.exists("/etc/kubernetes/admin.conf")
    forced = host.run("kubeadm", "reset", "-f")

    assert asked.returncode == 1 and "won't proceed" in asked.stderr and kept
    assert forced.returncode == 0
    for path in ("/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/manifests/etcd.yaml",
                 "/var/lib/kubelet/config.yaml", "/var/lib/etcd/member"):
        assert not host.exists(path), path
    assert init_cluster(host, endpoint).returncode == 0  # init works again after a reset
    assert [call["argv"][0] for call in host.calls("kubeadm")] == ["init", "reset", "reset", "init"]


def test_unimplemented_commands_say_so(make_host):
    result = make_host().run("kubeadm", "alpha", "kubeconfig")
    phase = make_host("b").run("kubeadm", "init", "phase", "addon", "all")

    assert result.returncode == 1 and 'unknown command "alpha"' in result.stderr
    assert phase.returncode == 1 and "not implemented by the kubeadm stand-in" in phase.stderr


# == kubeadm's validation rules ==================================================================================
# cmd/kubeadm/app/apis/kubeadm/validation/validation.go as the stand-in mirrors it (stand_in_lib "kubeadm's validation"):
# one test per rule, each showing a valid config that passes and the rule's violation failing with the field named.
KEY = "0123456789abcdef" * 4

# the shape the control_plane role renders (roles/control_plane/vars/main.yml), plus the fields the rules look at
CLUSTER = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: test
kubernetesVersion: v1.31.4
controlPlaneEndpoint: "lb.example.com:6443"
certificatesDir: /etc/kubernetes/pki
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
  dnsDomain: cluster.local
apiServer:
  certSANs: ["lb.example.com", "Internal-LB.example.com", "*.example.com", "198.18.2.1", "fd00::1"]
etcd:
  local:
    dataDir: /var/lib/etcd
    serverCertSANs: ["etcd.example.com"]
controllerManager:
  extraArgs:
    - name: cloud-provider
      value: external
"""
INIT_CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: abcdef.0123456789abcdef
    ttl: 15m
    description: kubeadm init (kubecluster.aws)
    usages: [signing, authentication]
    groups: ["system:bootstrappers:kubeadm:default-node-token"]
certificateKey: "%s"
nodeRegistration:
  name: ip-198-18-2-11.ap-northeast-2.compute.internal
  criSocket: unix:///run/containerd/containerd.sock
localAPIEndpoint:
  advertiseAddress: 198.18.2.11
  bindPort: 6443
""" % KEY
VALID_INIT = CLUSTER + "---\n" + INIT_CONFIG
VALID_JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
caCertPath: /etc/kubernetes/pki/ca.crt
discovery:
  bootstrapToken:
    apiServerEndpoint: "lb.example.com:6443"
    token: abcdef.0123456789abcdef
    caCertHashes: ["sha256:%s"]
nodeRegistration:
  name: ip-198-18-2-12.ap-northeast-2.compute.internal
controlPlane:
  certificateKey: "%s"
  localAPIEndpoint:
    advertiseAddress: 198.18.2.12
    bindPort: 6443
""" % ("0" * 64, KEY)


def changed(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


def check(make_host, text, old, new, message):
    """The config as given passes; with old replaced by new it fails with message."""
    host = make_host()
    good = validate(host, text)
    bad = validate(host, changed(text, old, new))
    assert (good.returncode, good.stdout) == (0, "ok\n"), good.stderr
    assert bad.returncode == 1 and message in bad.stderr, bad.stderr


def test_the_valid_configs_pass(make_host):
    host = make_host()

    for text in (VALID_INIT, VALID_JOIN, INIT_CONFIG, CLUSTER):
        result = validate(host, text)
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


# -- ValidateCertificateKey ----------------------------------------------------------------------
@pytest.mark.parametrize("key,message", [
    ("ab" * 16, 'certificateKey: Invalid value: "%s": invalid certificate key size 16, the key must be an AES key of size 32' % ("ab" * 16)),
    ("ab" * 24, "invalid certificate key size 24, the key must be an AES key of size 32"),
    ("xy" * 32, "certificateKey: Invalid value: \"%s\": certificate key decoding error: encoding/hex: invalid byte: U+0078 'x'" % ("xy" * 32)),
    (KEY + "a", "certificate key decoding error: encoding/hex: odd length hex string"),
])
def test_certificate_key_must_be_32_bytes_of_hex(make_host, key, message):
    check(make_host, VALID_INIT, KEY, key, message)


def test_join_certificate_key_is_checked_too(make_host):
    check(make_host, VALID_JOIN, KEY, "ab" * 16, 'controlPlane.certificateKey: Invalid value: "%s": invalid certificate key size 16' % ("ab" * 16))


# -- ValidateNetworking: ValidateIPNetFromString + ValidateServiceSubnetSize ------------------------------
def test_service_subnet_at_most_20_host_bits(make_host):
    check(make_host, VALID_INIT, "serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.96.0.0/11",
          'networking.serviceSubnet: Invalid value: "10.96.0.0/11": specified service subnet is too large; for 32-bit addresses, the mask must be >= 12')


def test_service_subnet_must_hold_the_dns_address(make_host):
    """The DNS service is the 10th address: a /28 (16 addresses) holds it, a /29 (8) does not."""
    check(make_host, changed(VALID_INIT, "10.96.0.0/12", "10.96.0.0/28"), "serviceSubnet: 10.96.0.0/28", "serviceSubnet: 10.96.0.0/29",
          'networking.serviceSubnet: Invalid value: "10.96.0.0/29": subnet with 8 address(es) is too small, the minimum is 10')


def test_subnets_must_parse_and_be_at_most_one_per_family(make_host):
    check(make_host, VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/16,10.0.0.0/16",
          'networking.podSubnet: Invalid value: "192.168.0.0/16,10.0.0.0/16": expected one (IPv4 or IPv6) CIDR or two CIDRs from each family')
    check(make_host, VALID_INIT, "serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.96.0.0",
          'networking.serviceSubnet: Invalid value: "10.96.0.0": couldn\'t parse subnet')


# -- ValidatePodSubnetNodeMask (getClusterNodeMask) ---------------------------------------------------------------
def test_pod_subnet_must_hold_a_node_cidr(make_host):
    check(make_host, VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/25",
          'networking.podSubnet: Invalid value: "192.168.0.0/25": the size of pod subnet with mask 25 is smaller than the size of node subnet '
          "with mask 24")


def test_pod_subnet_node_mask_comes_from_the_controller_manager(make_host):
    smaller_nodes = changed(changed(VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/25"),
                            "      value: external\n", "      value: external\n    - name: node-cidr-mask-size-ipv4\n      value: \"26\"\n")
    no_allocation = changed(changed(VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/25"),
                            "      value: external\n", "      value: external\n    - name: allocate-node-cidrs\n      value: \"false\"\n")
    too_far = changed(VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: 10.0.0.0/7")

    check(make_host, smaller_nodes, 'value: "26"', 'value: "24"', "the size of pod subnet with mask 25 is smaller than the size of node subnet with mask 24")
    assert validate(make_host("b"), no_allocation).returncode == 0
    assert 'networking.podSubnet: Invalid value: "10.0.0.0/7": pod subnet mask (7) and node-mask (24) difference is greater than 16' in \
        validate(make_host("c"), too_far).stderr


# -- ValidateNodeRegistrationOptions: the name (lowercased by GetHostname first) ---------------------------------
def test_node_name_must_be_a_dns_subdomain(make_host):
    name = "ip-198-18-2-11.ap-northeast-2.compute.internal"
    check(make_host, changed(VALID_INIT, name, "IP-198-18-2-11.AP-northeast-2.compute.internal"), "IP-198-18-2-11.AP", "Ip_198-18-2-11.AP",
          'nodeRegistration.name: Invalid value: "ip_198-18-2-11.ap-northeast-2.compute.internal": a lowercase RFC 1123 subdomain must consist of')
    check(make_host, VALID_JOIN, "ip-198-18-2-12.ap", "ip-198-18-2-12..ap", 'nodeRegistration.name: Invalid value: "ip-198-18-2-12..ap')


# -- ValidateBootstrapTokens ---------------------------------------------------------------------------------------
def test_token_usages_must_be_known(make_host):
    check(make_host, VALID_INIT, "usages: [signing, authentication]", "usages: [signing, authentication, bogus]",
          'bootstrapTokens.0.usages: Invalid value: []string{"signing", "authentication", "bogus"}: invalid bootstrap token usage string: bogus, '
          "valid usage options: signing,authentication")


def test_token_groups_must_be_bootstrappers_and_need_authentication(make_host):
    check(make_host, VALID_INIT, '"system:bootstrappers:kubeadm:default-node-token"', '"system:nodes"',
          'bootstrapTokens.0.groups: Invalid value: []string{"system:nodes"}: bootstrap group "system:nodes" is invalid '
          "(must match \\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)")
    # groups default to the default-node-token group, so a signing-only token without groups fails too, as in kubeadm
    check(make_host, VALID_INIT, "usages: [signing, authentication]", "usages: [signing]",
          'bootstrapTokens.0.groups: Invalid value: []string{"system:bootstrappers:kubeadm:default-node-token"}: token groups cannot be specified '
          'unless --usages includes "authentication"')


def test_token_expires_must_be_rfc3339(make_host):
    check(make_host, VALID_INIT, "    ttl: 15m\n", "    expires: tomorrow\n",
          'bootstrapTokens[0].expires: parsing time "tomorrow" as "2006-01-02T15:04:05Z07:00": cannot parse "tomorrow" as "2006"')


def test_token_ttl_and_expires_are_mutually_exclusive(make_host):
    """kubeadm defaults ttl to 24h before it validates (SetDefaults_BootstrapToken), so expires fails even without ttl."""
    check(make_host, VALID_INIT, "    ttl: 15m\n", "    ttl: 15m\n    expires: \"2030-01-01T00:00:00Z\"\n",
          'bootstrapTokens.0: Invalid value: "": the BootstrapToken .TTL and .Expires fields are mutually exclusive')
    alone = validate(make_host("b"), changed(VALID_INIT, "    ttl: 15m\n", "    expires: \"2030-01-01T00:00:00Z\"\n"))
    assert alone.returncode == 1 and "the BootstrapToken .TTL and .Expires fields are mutually exclusive" in alone.stderr


# -- ValidateCertSANs ----------------------------------------------------------------------------------------------
def test_cert_sans_must_be_ips_or_dns_names(make_host):
    check(make_host, VALID_INIT, '"lb.example.com", "Internal', '"lb_example.com", "Internal',
          'apiServer.certSANs: Invalid value: "lb_example.com": altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards: '
          "a lowercase RFC 1123 subdomain must consist of")
    check(make_host, VALID_INIT, '"*.example.com"', '"*.*.example.com"', 'apiServer.certSANs: Invalid value: "*.*.example.com"')
    # etcd's SANs are not lowercased by kubeadm before validation, apiServer's are
    check(make_host, VALID_INIT, '["etcd.example.com"]', '["Etcd.example.com"]', 'etcd.local.serverCertSANs: Invalid value: "Etcd.example.com"')


# -- ValidateAPIEndpoint (and SetAPIEndpointDynamicDefaults, which checks the address first) ---------------------------
def test_bind_port_must_be_1_to_65535(make_host):
    check(make_host, VALID_INIT, "bindPort: 6443", "bindPort: 65536", "localAPIEndpoint.bindPort: Invalid value: 65536: port number is not valid")
    check(make_host, VALID_JOIN, "bindPort: 6443", "bindPort: -1", "controlPlane.localAPIEndpoint.bindPort: Invalid value: -1: port number is not valid")
    assert validate(make_host("b"), changed(VALID_INIT, "bindPort: 6443", "bindPort: 0")).returncode == 0  # 0 is defaulted to 6443


def test_advertise_address_must_be_an_ip(make_host):
    check(make_host, VALID_INIT, "advertiseAddress: 198.18.2.11", "advertiseAddress: cp-0.example.com",
          'couldn\'t use "cp-0.example.com" as "apiserver-advertise-address", must be ipv4 or ipv6 address')
    check(make_host, VALID_JOIN, "advertiseAddress: 198.18.2.12", "advertiseAddress: 198.18.2.300",
          'couldn\'t use "198.18.2.300" as "apiserver-advertise-address", must be ipv4 or ipv6 address')


# -- ValidateAbsolutePath, caCertPath ----------------------------------------------------------------------------
def test_paths_must_be_absolute(make_host):
    check(make_host, VALID_INIT, "certificatesDir: /etc/kubernetes/pki", "certificatesDir: etc/kubernetes/pki",
          'certificatesDir: Invalid value: "etc/kubernetes/pki": path is not absolute')
    check(make_host, VALID_INIT, "dataDir: /var/lib/etcd", "dataDir: var/lib/etcd", 'etcd.local.dataDir: Invalid value: "var/lib/etcd": path is not absolute')


def test_ca_cert_path_must_be_an_absolute_crt_file(make_host):
    check(make_host, VALID_JOIN, "caCertPath: /etc/kubernetes/pki/ca.crt", "caCertPath: pki/ca.crt",
          'caCertPath: Invalid value: "pki/ca.crt": the ca certificate path must be an absolute path')
    check(make_host, VALID_JOIN, "caCertPath: /etc/kubernetes/pki/ca.crt", "caCertPath: /etc/kubernetes/pki/ca.pem",
          'caCertPath: Invalid value: "/etc/kubernetes/pki/ca.pem": the ca certificate path must be an absolute path')


# -- ValidateNetworking: dnsDomain -----------------------------------------------------------------------------------
def test_dns_domain_must_be_a_dns_subdomain(make_host):
    check(make_host, VALID_INIT, "dnsDomain: cluster.local", "dnsDomain: Cluster_Local",
          'networking.dnsDomain: Invalid value: "Cluster_Local": a lowercase RFC 1123 subdomain must consist of')


# -- the rules apply at init, join and token create as in kubeadm, and to flags -----------------------------------------
def test_init_validates_before_it_does_anything(make_host, endpoint):
    host = make_host("cp-0")

    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", changed(INIT.format(endpoint=endpoint), "10.96.0.0/12", "10.0.0.0/8")))
    flags = host.run("kubeadm", "init", "--control-plane-endpoint", endpoint, "--node-name", "CP_0")

    assert result.returncode == 1 and 'networking.serviceSubnet: Invalid value: "10.0.0.0/8": specified service subnet is too large' in result.stderr
    assert flags.returncode == 1 and 'nodeRegistration.name: Invalid value: "cp_0"' in flags.stderr
    assert not host.exists("/etc/kubernetes/admin.conf") and not host.exists("/etc/kubernetes/manifests/kube-apiserver.yaml")


def test_join_validates_before_discovery(make_host, endpoint, api):
    token, ca_hash, key = join_parts(init_cluster(make_host("cp-0"), endpoint).stdout)
    host = make_host("cp-1")
    path = join_config(host, endpoint, token, ca_hash, "cp-1", key)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    bad_address = text + "  localAPIEndpoint:\n    advertiseAddress: not-an-ip\n"

    result = host.run("kubeadm", "join", "--config", host.write("join.yaml", bad_address))
    flags = host.run("kubeadm", "join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", ca_hash, "--control-plane",
                     "--certificate-key", "ab" * 16, "--node-name", "cp-1")

    assert result.returncode == 1 and 'couldn\'t use "not-an-ip" as "apiserver-advertise-address"' in result.stderr
    assert flags.returncode == 1 and "controlPlane.certificateKey: Invalid value" in flags.stderr
    assert api.object("Node", "cp-1") is None and not host.exists("/etc/kubernetes/kubelet.conf")


def test_token_create_checks_usages_and_groups(make_host, endpoint):
    host = make_host("cp-0")
    init_cluster(host, endpoint)
    admin = host.path("/etc/kubernetes/admin.conf")

    usages = host.run("kubeadm", "token", "create", "--usages", "signing,bogus", "--kubeconfig", admin)
    groups = host.run("kubeadm", "token", "create", "--groups", "system:masters", "--kubeconfig", admin)
    fine = host.run("kubeadm", "token", "create", "--usages", "signing,authentication", "--groups", "system:bootstrappers:workers", "--kubeconfig", admin)

    assert usages.returncode == 1 and "bootstrapTokens.0.usages: Invalid value" in usages.stderr
    assert groups.returncode == 1 and 'bootstrap group "system:masters" is invalid' in groups.stderr
    assert fine.returncode == 0, fine.stderr


@pytest.mark.parametrize("pod,service,ok", [
    ("192.168.0.0/16", "10.96.0.0/12", True),   # the spec's defaults
    ("10.0.0.0/8", "10.96.0.0/24", True),       # the spec's widest pod CIDR, narrowest service CIDR
    ("10.0.0.0/24", "10.96.0.0/12", True),      # the spec's narrowest pod CIDR: one /24 node CIDR
    ("192.168.0.0/16", "10.96.0.0/11", False),  # kubeadm refuses wider than /12, and so does the spec
])
def test_the_spec_network_range_against_kubeadm(make_host, pod, service, ok):
    text = changed(changed(VALID_INIT, "podSubnet: 192.168.0.0/16", "podSubnet: %s" % pod), "serviceSubnet: 10.96.0.0/12", "serviceSubnet: %s" % service)

    assert (validate(make_host(), text).returncode == 0) is ok


# -- stacked etcd's members (kubeadm, crictl + etcdctl) and crashes half way (<settings dir>/crash-after) -----------------
ETCDCTL = ["etcdctl", "--endpoints", "https://127.0.0.1:2379", "--cacert", "/etc/kubernetes/pki/etcd/ca.crt",
           "--cert", "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "--key", "/etc/kubernetes/pki/etcd/healthcheck-client.key"]


def crash_after(host, command, phase):
    import stand_in_lib
    stand_in_lib.write_file(os.path.join(host.settings_dir, "crash-after"), "%s %s\n" % (command, phase), 0o644)


def members(api):
    return [(member["name"], member["peerURLs"]) for member in api.store.etcd_members]


def with_runtime_socket(host):
    """crictl's default endpoint, unix:///run/containerd/containerd.sock, on the fake host."""
    if not host.exists("/run/containerd/containerd.sock"):
        host.write("../run/containerd/containerd.sock", "")
    return host


def etcd_id(host):
    result = with_runtime_socket(host).run("crictl", "ps", "--name", "etcd", "-q")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_init_adds_the_first_etcd_member_and_a_control_plane_join_another(make_host, endpoint, api):
    first, second, worker = make_host("cp-0"), make_host("cp-1"), make_host("worker")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)

    assert second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key)).returncode == 0
    assert worker.run("kubeadm", "join", "--config", join_config(worker, endpoint, token, ca_hash, "worker")).returncode == 0

    assert members(api) == [("cp-0", ["https://%s:2380" % first.node_ip]), ("cp-1", ["https://%s:2380" % second.node_ip])]


def test_reset_of_a_control_plane_removes_its_own_member(make_host, endpoint, api):
    first, second = make_host("cp-0"), make_host("cp-1")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    assert second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key)).returncode == 0

    reset = second.run("kubeadm", "reset", "-f")

    assert reset.returncode == 0, reset.stderr
    assert [name for name, _urls in members(api)] == ["cp-0"]


def test_crictl_finds_the_etcd_container_while_its_manifest_exists_and_the_kubelet_runs(make_host, endpoint):
    host = with_runtime_socket(make_host("cp-0"))
    before = host.run("crictl", "ps", "--name", "etcd", "-q")
    init_cluster(host, endpoint)
    running = host.run("crictl", "ps", "--name", "etcd", "-q")
    other = host.run("crictl", "ps", "--name", "kube-apiserver", "-q")
    host.settings["kubelet_running"] = False
    host.save()
    stopped = host.run("crictl", "ps", "--name", "etcd", "-q")

    assert before.returncode == 0 and before.stdout == ""
    assert len(running.stdout.strip()) == 64 and other.stdout == ""
    assert stopped.stdout == ""


def test_etcdctl_in_the_etcd_container_lists_members_as_json_and_removes_one(make_host, endpoint, api):
    first, second = make_host("cp-0"), make_host("cp-1")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    assert second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key)).returncode == 0
    container = etcd_id(first)

    listed = first.run("crictl", "exec", container, *ETCDCTL, "member", "list", "-w", "json")
    document = json.loads(listed.stdout)
    cp1 = [member for member in document["members"] if member["name"] == "cp-1"][0]
    removed = first.run("crictl", "exec", container, *ETCDCTL, "member", "remove", "%x" % cp1["ID"])
    again = first.run("crictl", "exec", container, *ETCDCTL, "member", "remove", "%x" % cp1["ID"])

    assert listed.returncode == 0, listed.stderr
    assert set(document) == {"header", "members"} and isinstance(cp1["ID"], int)
    assert cp1["peerURLs"] == ["https://%s:2380" % second.node_ip] and cp1["clientURLs"] == ["https://%s:2379" % second.node_ip]
    assert removed.returncode == 0 and "removed from cluster" in removed.stdout
    assert again.returncode == 1 and "etcdserver: member not found" in again.stderr
    assert [name for name, _urls in members(api)] == ["cp-0"]


def test_etcdctl_needs_the_etcd_client_certificate_and_a_running_container(make_host, endpoint):
    host = make_host("cp-0")
    init_cluster(host, endpoint)
    container = etcd_id(host)

    without_certs = host.run("crictl", "exec", container, "etcdctl", "member", "list")
    wrong_container = host.run("crictl", "exec", "0123456789ab", *ETCDCTL, "member", "list")

    assert without_certs.returncode == 1 and "context deadline exceeded" in without_certs.stderr
    assert wrong_container.returncode == 1 and "not found" in wrong_container.stderr


def test_init_stopped_after_kubelet_start_leaves_kubelet_conf_and_etcd_but_no_kubeadm_config(make_host, endpoint, api):
    host = make_host("cp-0")
    crash_after(host, "init", "kubelet-start")

    result = host.run("kubeadm", "init", "--config", host.write("init.yaml", INIT.format(endpoint=endpoint)))

    assert result.returncode == 1 and "stopped right after phase kubelet-start of kubeadm init" in result.stderr
    assert host.exists("/etc/kubernetes/kubelet.conf") and host.exists("/etc/kubernetes/admin.conf")
    assert api.object("ConfigMap", "kubeadm-config", "kube-system") is None and api.object("Node", "cp-0") is None
    assert [name for name, _urls in members(api)] == ["cp-0"]
    assert not host.exists("/etc/kubecluster-stand-in/crash-after")  # once only
    assert host.run("kubeadm", "reset", "-f").returncode == 0 and members(api) == []


def test_control_plane_join_stopped_after_kubelet_start_has_a_node_but_no_member_nor_label(make_host, endpoint, api):
    first, second = make_host("cp-0"), make_host("cp-1")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    crash_after(second, "join", "kubelet-start")

    result = second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key))

    assert result.returncode == 1 and "stopped right after phase kubelet-start of kubeadm join" in result.stderr
    assert second.exists("/etc/kubernetes/kubelet.conf") and not second.exists("/etc/kubernetes/manifests/etcd.yaml")
    assert "node-role.kubernetes.io/control-plane" not in api.object("Node", "cp-1")["metadata"]["labels"]
    assert [name for name, _urls in members(api)] == ["cp-0"]


def test_control_plane_join_stopped_after_etcd_has_a_member_but_no_label(make_host, endpoint, api):
    first, second = make_host("cp-0"), make_host("cp-1")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    crash_after(second, "join", "control-plane-join/etcd")

    result = second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key))

    assert result.returncode == 1
    assert [name for name, _urls in members(api)] == ["cp-0", "cp-1"]
    assert "node-role.kubernetes.io/control-plane" not in api.object("Node", "cp-1")["metadata"]["labels"]
