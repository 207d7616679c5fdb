"""The node roles and plays (playbooks/nodes.yml) against Debian 12 hosts behind a bastion.

The roles run for real over SSH through the bastion: apt installs containerd from Debian's mirror,
the files land on the hosts, and kubeadm/kubelet/kubectl are the stand-ins installed through the
product's `binaries` package source. The stand-ins record every call and validate every config
against the kubeadm API; the API emulator holds the Nodes and add-on objects.

The tests of this module share one cluster and run in file order: an OS refusal on a fresh host,
the first build, what it left, a rerun that changes nothing, then a half-joined worker that is
reset and joined again.
"""

import datetime
import json
import os
import re
import shutil
import stat
import sys
import tempfile

import pytest
import yaml

from helpers.test_hosts import call_document as document, call_interval as interval  # tests/ is on the path: tests/conftest.py

pytestmark = pytest.mark.nodes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODES_PLAYBOOK = os.path.join(REPO, "playbooks", "nodes.yml")
# The add-on manifests hold several YAML documents each, which ansible-test's yamllint refuses
# in a .yaml file; they are kept as .manifest files and laid out under the names the addons
# role looks for (calico.yaml, ...) in a directory of the test run.
MANIFEST_SOURCES = os.path.join(REPO, "tests", "nodes", "files")
MANIFESTS_DIR = tempfile.mkdtemp(prefix="kubecluster-manifests-")
for source_name in os.listdir(MANIFEST_SOURCES):
    shutil.copyfile(os.path.join(MANIFEST_SOURCES, source_name),
                    os.path.join(MANIFESTS_DIR, source_name.replace(".manifest", ".yaml")))
CLUSTER_NAME = "kubecluster-test"
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
KUBEADM_WRITES = ("init", "join", "reset", "token")
TIMINGS = {}
# One SSH round trip per task instead of several (sudo on the test hosts needs no tty); what a
# user's ansible.cfg would set.
FAST_SSH = {"ANSIBLE_PIPELINING": "True"}


def cluster_spec(env, kubeconfig):
    return {
        "name": CLUSTER_NAME,
        "region": "ap-northeast-2",
        "kubernetes_version": env.kubernetes_version,
        "kubernetes_packages": {"source": "binaries", "binaries_dir": env.stand_in_binaries()},
        "addons": {"manifests_dir": MANIFESTS_DIR},
        "kubeconfig_path": kubeconfig,
    }


def node_vars(env, kubeconfig):
    # The containers share this machine's kernel: modprobe cannot work in them (the role still
    # writes /etc/modules-load.d, which test_the_roles_leave_their_files checks).
    return {"cluster": cluster_spec(env, kubeconfig), "node_prerequisites_load_kernel_modules": False}


def run_nodes(env, kubeconfig, name):
    result = env.run_playbook(NODES_PLAYBOOK, extra_vars=node_vars(env, kubeconfig), env=FAST_SSH)
    TIMINGS[name] = result.duration
    return result


def kubeadm_calls(env, host, *subcommands):
    return [call for call in env.stand_in_calls(host, "kubeadm") if not subcommands or call["argv"][:1] in [[s] for s in subcommands]]


def is_init(call):
    return call["argv"][:1] == ["init"] and call["argv"][1:2] != ["phase"]


def is_upload_certs(call):
    return call["argv"][:3] == ["init", "phase", "upload-certs"]


def api_writes(env, since):
    """What the roles wrote to the API since then: not the kubelets' own updates, not dry runs."""
    return [request for request in env.api_requests(writes_only=True, since=since)
            if not (request["user"] or "").startswith("system:node:") and not (request["query"] or {}).get("dryRun")]


def pinned(component, minor):
    with open(os.path.join(REPO, "roles", "addons", "defaults", "main.yml"), encoding="utf-8") as handle:
        pins = yaml.safe_load(handle)["addons_versions"][component]
    return pins[max(key for key in pins if key <= minor)]


@pytest.fixture(scope="module")
def cluster(nodes_env):
    """The cluster the first run of playbooks/nodes.yml built on freshly wiped hosts."""
    nodes_env.wipe_hosts()
    nodes_env.reset_api()
    kubeconfig = os.path.join(nodes_env.run_dir, "controller", "kube", CLUSTER_NAME + ".kubeconfig")
    result = run_nodes(nodes_env, kubeconfig, "first run")
    return nodes_env, result, kubeconfig


@pytest.fixture(scope="module", autouse=True)
def report_timings():
    yield
    sys.stderr.write("\nnode role runs (s): %s\n" % json.dumps(TIMINGS))


def test_an_unsupported_os_is_refused_before_any_change(nodes_env):
    host = nodes_env.workers[-1]
    marker = "/etc/modules-load.d/kubernetes.conf"
    before = nodes_env.read_file(host, marker)
    playbook = os.path.join(nodes_env.run_dir, "unsupported-os.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{
            "name": "Run node_prerequisites on a machine that says it is CentOS Stream 9",
            "hosts": host.name,
            "become": True,
            "gather_facts": True,
            "gather_subset": ["min"],
            "tasks": [
                {"name": "Pretend to be another distribution",
                 "ansible.builtin.set_fact": {"ansible_facts": "{{ ansible_facts | combine({'distribution': 'CentOS', "
                                                               "'distribution_version': '9', 'distribution_major_version': '9'}) }}"}},
                {"name": "Prepare the machine", "ansible.builtin.include_role": {"name": "kubecluster.aws.node_prerequisites"},
                 "vars": {"kubecluster_cluster": {"kubernetes_version": nodes_env.kubernetes_version}}},
            ]}], handle)
    result = nodes_env.run_playbook(playbook, env=FAST_SSH)
    TIMINGS["unsupported os"] = result.duration
    assert result.rc != 0
    assert result.failed_hosts == [host.name]
    assert result.recap[host.name]["changed"] == 0
    assert "runs CentOS 9; kubecluster.aws nodes need one of Ubuntu 22.04, Ubuntu 24.04, Debian 12. Nothing was changed" in result.stdout
    assert "Install containerd" not in result.stdout
    assert nodes_env.read_file(host, marker) == before


def test_the_first_run_builds_the_cluster(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    assert set(result.recap) >= {host.name for host in env.cluster_hosts} | {"localhost"}


def test_kubeadm_init_runs_once_on_the_first_control_plane_with_a_v1beta4_config(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    inits = {host.name: [call for call in kubeadm_calls(env, host, "init") if is_init(call)] for host in env.cluster_hosts}
    first = env.control_planes[0]
    assert {name: len(calls) for name, calls in inits.items() if calls} == {first.name: 1}
    init = inits[first.name][0]
    assert init["exit_code"] == 0
    assert init["argv"] == ["init", "--config", "/run/kubecluster/kubeadm-init.yaml", "--upload-certs"]
    cluster_config = document(init, "ClusterConfiguration")
    init_config = document(init, "InitConfiguration")
    assert cluster_config["apiVersion"] == init_config["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster_config["controlPlaneEndpoint"] == env.api_endpoint
    assert cluster_config["kubernetesVersion"] == env.kubernetes_version
    assert cluster_config["clusterName"] == CLUSTER_NAME
    assert cluster_config["networking"] == {"podSubnet": "192.168.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert "198.18.2.1" in cluster_config["apiServer"]["certSANs"]
    assert cluster_config["controllerManager"]["extraArgs"] == [{"name": "cloud-provider", "value": "external"}]
    assert init_config["nodeRegistration"]["name"] == first.node_name
    assert init_config["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "cloud-provider", "value": "external"}]
    assert re.match(r"^[0-9a-f]{64}$", init_config["certificateKey"])
    assert init_config["bootstrapTokens"][0]["ttl"] == "15m"
    # validated before use: `kubeadm config validate` ran on the rendered file (a temporary copy)
    validations = [call for call in kubeadm_calls(env, first, "config") if call["argv"][:2] == ["config", "validate"]]
    assert validations and all(call["exit_code"] == 0 for call in validations)
    assert document(validations[0], "InitConfiguration")["certificateKey"] == init_config["certificateKey"]


def test_control_planes_join_one_at_a_time_with_fresh_certs_and_tokens_before_any_worker(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    first, others = env.control_planes[0], env.control_planes[1:]
    assert others, "the HA join test needs at least two control-plane machines"
    joins = []
    for host in others:
        calls = kubeadm_calls(env, host, "join")
        assert len(calls) == 1 and calls[0]["exit_code"] == 0, calls
        assert calls[0]["argv"] == ["join", "--config", "/run/kubecluster/kubeadm-join.yaml"]
        joins.append((host, calls[0]))
    joins.sort(key=lambda pair: pair[1]["time"])
    assert [host.name for host, unused_call in joins] == sorted(host.name for host in others)
    for (unused_first, earlier), (unused_second, later) in zip(joins, joins[1:]):
        assert interval(earlier)[1] <= interval(later)[0], "control-plane joins overlapped"

    init = [call for call in kubeadm_calls(env, first, "init") if is_init(call)][0]
    key = document(init, "InitConfiguration")["certificateKey"]
    uploads = [call for call in kubeadm_calls(env, first, "init") if is_upload_certs(call)]
    tokens = [call for call in kubeadm_calls(env, first, "token") if call["argv"][1:2] == ["create"]]
    previous_end = interval(init)[1]
    for host, join in joins:
        config = document(join, "JoinConfiguration")
        assert config["apiVersion"] == "kubeadm.k8s.io/v1beta4"
        assert config["nodeRegistration"]["name"] == host.node_name
        assert config["controlPlane"]["certificateKey"] == key
        discovery = config["discovery"]["bootstrapToken"]
        assert discovery["apiServerEndpoint"] == env.api_endpoint
        assert len(discovery["caCertHashes"]) == 1 and re.match(r"^sha256:[0-9a-f]{64}$", discovery["caCertHashes"][0])
        start = interval(join)[0]
        # re-uploaded under the same key and a 15-minute token made between the previous join and this one
        upload = [call for call in uploads if previous_end <= call["time"] <= start]
        # the key in a 0600 configuration file, never on the command line (where `ps` shows it)
        assert len(upload) == 1 and upload[0]["argv"] == ["init", "phase", "upload-certs", "--upload-certs", "--config",
                                                          "/run/kubecluster/kubeadm-upload-certs.yaml"]
        assert document(upload[0], "InitConfiguration")["certificateKey"] == key
        assert not [arg for call in uploads for arg in call["argv"] if key in arg]
        token = [call for call in tokens if previous_end <= call["time"] <= start]
        assert len(token) == 1 and token[0]["argv"] == ["token", "create", "--ttl", "15m"]
        assert token[0]["stdout"].strip() == discovery["token"]
        previous_end = interval(join)[1]

    worker_joins = [call for host in env.workers for call in kubeadm_calls(env, host, "join")]
    assert worker_joins
    assert max(interval(join)[1] for unused_host, join in joins) <= min(call["time"] for call in worker_joins)


def test_workers_join_together_with_one_short_lived_token(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    first = env.control_planes[0]
    joins = {}
    for host in env.workers:
        calls = kubeadm_calls(env, host, "join")
        assert len(calls) == 1 and calls[0]["exit_code"] == 0, calls
        joins[host.name] = calls[0]
        config = document(calls[0], "JoinConfiguration")
        assert "controlPlane" not in config
        assert config["nodeRegistration"]["name"] == host.node_name
        assert config["discovery"]["bootstrapToken"]["apiServerEndpoint"] == env.api_endpoint
    worker_tokens = {document(call, "JoinConfiguration")["discovery"]["bootstrapToken"]["token"] for call in joins.values()}
    assert len(worker_tokens) == 1
    created = [call for call in kubeadm_calls(env, first, "token") if call["argv"][1:2] == ["create"]]
    assert len(created) == len(env.control_planes) - 1 + 1
    assert created[-1]["stdout"].strip() in worker_tokens
    if len(joins) > 1:
        # in parallel: every worker started joining before any had finished
        assert max(call["time"] for call in joins.values()) < min(interval(call)[1] for call in joins.values())


def test_no_certificate_key_or_token_reaches_ansible_output(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    secrets = set()
    for host in env.cluster_hosts:
        for call in env.stand_in_calls(host, "kubeadm"):
            if call["argv"][:2] == ["token", "create"]:
                secrets.add(call["stdout"].strip())
            for config in call["configs"]:
                for doc in config["documents"]:
                    secrets.add(doc.get("certificateKey"))
                    secrets.add((doc.get("controlPlane") or {}).get("certificateKey"))
                    secrets.add(((doc.get("discovery") or {}).get("bootstrapToken") or {}).get("token"))
                    secrets.update(token.get("token") for token in doc.get("bootstrapTokens") or [])
    secrets.discard(None)
    secrets.discard("")
    assert len(secrets) >= 3
    output = result.stdout + result.stderr
    leaked = sorted(secret for secret in secrets if secret in output)
    assert not leaked


def test_nodes_are_registered_and_ready_and_the_addons_applied(cluster):
    env, result, unused_names = cluster
    result.assert_ok()
    nodes = {node["metadata"]["name"]: node for node in env.api_objects("Node")}
    assert set(nodes) == {host.node_name for host in env.cluster_hosts}
    for name, node in nodes.items():
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", name
    for kind, name, namespace in (("DaemonSet", "calico-node", "kube-system"), ("Deployment", "calico-kube-controllers", "kube-system"),
                                  ("CustomResourceDefinition", "ippools.crd.projectcalico.org", None),
                                  ("DaemonSet", "aws-cloud-controller-manager", "kube-system"),
                                  ("ClusterRole", "system:cloud-controller-manager", None),
                                  ("Deployment", "ebs-csi-controller", "kube-system"), ("DaemonSet", "ebs-csi-node", "kube-system"),
                                  ("ServiceAccount", "ebs-csi-controller-sa", "kube-system"), ("CSIDriver", "ebs.csi.aws.com", None)):
        assert env.api_object(kind, name, namespace), (kind, name, namespace)
    ccm = env.api_object("DaemonSet", "aws-cloud-controller-manager", "kube-system")
    assert ccm["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["--v=2", "--cloud-provider=aws"]


def test_the_cloud_controller_manager_initialised_every_node(cluster):
    """The wait passed only once the CCM gave every Node its instance: the emulator's CCM knows the
    hosts' instances (their ids and zones) and acts only while the manifest's CCM could run."""
    env, result, unused_names = cluster
    result.assert_ok()
    hosts = {host.node_name: host for host in env.cluster_hosts}
    for name, node in ((node["metadata"]["name"], node) for node in env.api_objects("Node")):
        assert node["spec"]["providerID"] == "aws:///%s/%s" % (hosts[name].zone, hosts[name].instance_id), name
        assert UNINITIALIZED not in [taint["key"] for taint in node["spec"].get("taints") or []], name
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == hosts[name].zone, name
        assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == "ap-northeast-2", name


def test_the_ebs_csi_driver_runs_the_release_named_and_its_controller_on_the_control_plane(cluster):
    """The manifest (as the v1.43.0 kustomize base) names image v1.42.0; the role deploys v1.43.0, and runs the
    controller where the instance profile has the EBS CSI policy."""
    env, result, unused_names = cluster
    result.assert_ok()
    wanted = "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:" + pinned("ebs_csi_driver", int(env.kubernetes_version.split(".")[1]))
    controller = env.api_object("Deployment", "ebs-csi-controller", "kube-system")["spec"]["template"]["spec"]
    node = env.api_object("DaemonSet", "ebs-csi-node", "kube-system")["spec"]["template"]["spec"]
    assert wanted.endswith(":v1.43.0")
    assert [container["image"] for container in controller["containers"] if container["name"] == "ebs-plugin"] == [wanted]
    assert [container["image"] for container in node["containers"] if container["name"] == "ebs-plugin"] == [wanted]
    assert controller["containers"][1]["image"] == "public.ecr.aws/eks-distro/kubernetes-csi/external-provisioner:v5.2.0-eks-1-33-3"
    assert controller["nodeSelector"] == {"kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}
    assert controller["tolerations"][-1] == {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    assert len(controller["tolerations"]) == 3
    assert "node-role.kubernetes.io/control-plane" not in (node.get("nodeSelector") or {})


def test_the_roles_leave_their_files(cluster):
    env, result, kubeconfig = cluster
    result.assert_ok()
    for host in env.cluster_hosts:
        containerd = env.read_file(host, "/etc/containerd/config.toml")
        assert "SystemdCgroup = true" in containerd
        assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in containerd
        assert env.read_file(host, "/etc/crictl.yaml").count("unix:///run/containerd/containerd.sock") == 2
        modules = env.read_file(host, "/etc/modules-load.d/kubernetes.conf").split()
        assert "overlay" in modules and "br_netfilter" in modules
        sysctls = env.read_file(host, "/etc/sysctl.d/99-kubernetes.conf")
        for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
            assert "%s = 1" % key in sysctls
        assert env.exec(host, "sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
        assert "--cloud-provider=external" in env.read_file(host, "/var/lib/kubelet/kubeadm-flags.env")
        assert env.exec(host, "stat -c %a /usr/local/bin/kubeadm /usr/local/bin/kubelet /usr/local/bin/kubectl").stdout.split() == ["755"] * 3
        assert "ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in env.read_file(host, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
        assert env.exec(host, "systemctl is-enabled kubelet containerd").stdout.split() == ["enabled", "enabled"]
        # the configs holding the certificate key and tokens are gone
        assert env.exec(host, "ls -A /run/kubecluster 2>/dev/null || true").stdout.strip() == ""
    mode = stat.S_IMODE(os.stat(kubeconfig).st_mode)
    assert mode == 0o600
    with open(kubeconfig, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    assert [entry["cluster"]["server"] for entry in config["clusters"]] == ["https://" + env.api_endpoint]


def test_a_rerun_on_the_healthy_cluster_changes_nothing(cluster):
    env, first, kubeconfig = cluster
    first.assert_ok()
    env.clear_stand_in_calls()
    since = max(request["time"] for request in env.api_requests()) if env.api_requests() else 0.0
    result = run_nodes(env, kubeconfig, "rerun")
    result.assert_ok()
    assert {host: counts["changed"] for host, counts in result.recap.items() if counts["changed"]} == {}
    for host in env.cluster_hosts:
        calls = [call["argv"] for call in kubeadm_calls(env, host, *KUBEADM_WRITES)]
        assert calls == [], (host.name, calls)
    assert api_writes(env, since) == []


def test_a_run_while_another_changes_the_cluster_stops_before_any_host_and_a_finished_run_leaves_no_lease(cluster):
    env, first, kubeconfig = cluster
    first.assert_ok()
    ssm = env.aws.client("ssm")
    lease = "/kubecluster.aws/clusters/%s/lease" % CLUSTER_NAME
    # The earlier runs gave their lease back.
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"]] == []
    since = datetime.datetime.now(datetime.timezone.utc)
    utc = "%Y-%m-%dT%H:%M:%SZ"
    holder = {"token": "other-run", "holder": "ops@elsewhere create_cluster.yml", "host": "elsewhere", "pid": 1,
              "since": since.strftime(utc), "expires": (since + datetime.timedelta(minutes=30)).strftime(utc)}
    ssm.put_parameter(Name=lease, Type="String", Value=json.dumps(holder))
    env.clear_stand_in_calls()
    try:
        result = run_nodes(env, kubeconfig, "leased")
    finally:
        ssm.delete_parameter(Name=lease)
    assert result.rc != 0
    assert "is being changed by ops@elsewhere create_cluster.yml" in result.stdout
    assert all(not env.stand_in_calls(host, "kubeadm") for host in env.cluster_hosts)


def test_a_half_joined_worker_is_reset_and_joined_again_and_members_are_left_alone(cluster):
    env, first, kubeconfig = cluster
    first.assert_ok()
    broken = env.workers[-1]
    healthy = [host for host in env.cluster_hosts if host is not broken]
    identities = {host.name: env.exec(host, "sha256sum /etc/kubernetes/kubelet.conf").stdout for host in healthy}
    # a join that failed after the certificates but before the kubelet got its identity
    env.exec(broken, "rm /etc/kubernetes/kubelet.conf && test -e /etc/kubernetes/pki/ca.crt")
    env.clear_stand_in_calls()
    result = run_nodes(env, kubeconfig, "half-joined worker")
    result.assert_ok()
    assert [call["argv"] for call in kubeadm_calls(env, broken, "reset", "join")] == [
        ["reset", "-f"], ["join", "--config", "/run/kubecluster/kubeadm-join.yaml"]]
    assert kubeadm_calls(env, broken, "join")[0]["exit_code"] == 0
    for host in healthy:
        assert kubeadm_calls(env, host, "reset", "join", "init") == [], host.name
        assert env.exec(host, "sha256sum /etc/kubernetes/kubelet.conf").stdout == identities[host.name], host.name
    # one token for the one worker that joined, deleted after its join; no control-plane join, so no certificate upload
    first_cp = env.control_planes[0]
    token = document(kubeadm_calls(env, broken, "join")[0], "JoinConfiguration")["discovery"]["bootstrapToken"]["token"]
    assert [call["argv"] for call in kubeadm_calls(env, first_cp, "token", "init")] == [
        ["token", "create", "--ttl", "15m"], ["token", "delete", token.split(".")[0]]]
    node = env.api_object("Node", broken.node_name)
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]


def test_the_default_cloud_controller_manager_manifest_is_the_tested_one():
    """Without manifests_dir the addons role renders its template; it must stay what the tests apply."""
    import jinja2

    with open(os.path.join(REPO, "roles", "addons", "defaults", "main.yml"), encoding="utf-8") as handle:
        pins = yaml.safe_load(handle)["addons_versions"]["aws_cloud_controller_manager"]
    with open(os.path.join(REPO, "roles", "addons", "templates", "aws-cloud-controller-manager.yaml.j2"), encoding="utf-8") as handle:
        rendered = jinja2.Template(handle.read()).render(
            ansible_managed="managed", addons_aws_cloud_controller_manager_image="registry.k8s.io/provider-aws/cloud-controller-manager:" + pins[31])
    with open(os.path.join(MANIFESTS_DIR, "aws-cloud-controller-manager.yaml"), encoding="utf-8") as handle:
        tested = handle.read()
    assert [doc for doc in yaml.safe_load_all(rendered) if doc] == [doc for doc in yaml.safe_load_all(tested) if doc]
    assert pins[31] == "v1.31.8"


def test_the_release_manifests_path_applies_what_the_manifests_dir_did(cluster):
    """Without manifests_dir: Calico's release manifest, the CCM template, the EBS CSI kustomize base.

    The downloads are served from the role's cache, filled here the way a first download would
    (the EBS base split in files without namespaces, as upstream keeps it), so no network is needed.
    """
    env, first, kubeconfig = cluster
    first.assert_ok()
    minor = int(env.kubernetes_version.split(".")[1])
    cache = os.path.join(env.run_dir, "addons-cache")
    calico, ebs = pinned("calico", minor), pinned("ebs_csi_driver", minor)
    os.makedirs(os.path.join(cache, "aws-ebs-csi-driver-" + ebs), exist_ok=True)
    with open(os.path.join(MANIFESTS_DIR, "calico.yaml"), encoding="utf-8") as source, \
            open(os.path.join(cache, "calico-%s.yaml" % calico), "w", encoding="utf-8") as target:
        target.write(source.read())
    with open(os.path.join(MANIFESTS_DIR, "aws-ebs-csi-driver.yaml"), encoding="utf-8") as handle:
        documents = [doc for doc in yaml.safe_load_all(handle) if doc]
    resources = []
    for doc in documents:
        doc["metadata"].pop("namespace", None)
        name = "%s-%s.yaml" % (doc["kind"].lower(), doc["metadata"]["name"])
        with open(os.path.join(cache, "aws-ebs-csi-driver-" + ebs, name), "w", encoding="utf-8") as handle:
            yaml.safe_dump(doc, handle)
        resources.append(name)
    with open(os.path.join(cache, "aws-ebs-csi-driver-" + ebs, "kustomization.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "kube-system",
                        "resources": resources}, handle)
    spec = dict(cluster_spec(env, kubeconfig), addons={"cni_version": None, "aws_cloud_controller_manager_version": None,
                                                       "ebs_csi_driver_version": None, "manifests_dir": None},
                network={"cni": "calico"})
    playbook = os.path.join(env.run_dir, "addons-from-release.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"name": "Install the add-ons from their release manifests", "hosts": "localhost", "connection": "local",
                         "gather_facts": False, "roles": ["kubecluster.aws.addons"]}], handle)
    since = max(request["time"] for request in env.api_requests())
    result = env.run_playbook(playbook, extra_vars={"kubecluster_cluster": spec, "addons_cache_dir": cache})
    TIMINGS["addons from release"] = result.duration
    result.assert_ok()
    # only the CCM manifest, rendered into the cache for the first time, is new
    assert result.recap["localhost"]["changed"] == 1
    assert re.search(r"Render CAPA's cloud controller manager manifest with the pinned image\] \*+\nchanged: \[localhost\]", result.stdout)
    assert api_writes(env, since) == []


def run_addons(env, kubeconfig, name, **extra_vars):
    playbook = os.path.join(env.run_dir, name + ".yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"name": "Install the add-ons and wait for the nodes", "hosts": "localhost", "connection": "local",
                         "gather_facts": False, "roles": ["kubecluster.aws.addons"]}], handle)
    spec = dict(cluster_spec(env, kubeconfig), network={"cni": "calico"}, addons={
        "cni_version": None, "aws_cloud_controller_manager_version": None, "ebs_csi_driver_version": None, "manifests_dir": MANIFESTS_DIR})
    result = env.run_playbook(playbook, extra_vars=dict({"kubecluster_cluster": spec}, **extra_vars))
    TIMINGS[name] = result.duration
    return result


def test_the_wait_names_a_node_the_cloud_controller_manager_cannot_initialise(cluster):
    """A Node the CCM finds no instance for (its instance gone from the cloud as the CCM sees it) is Ready but
    uninitialized: the wait fails naming it and what it lacks; once the CCM can initialise it, the wait passes."""
    env, first, kubeconfig = cluster
    first.assert_ok()
    host, store = env.workers[-1], env.api.store
    known = store.cloud_provider
    nodes = store.resource("", "v1", "nodes")
    before = env.api_object("Node", host.node_name)
    # the kubelet registers its Node again, as after a reinstall: no providerID yet, the uninitialized taint
    registered = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": host.node_name, "labels": {
        key: value for key, value in before["metadata"]["labels"].items() if "topology" not in key and "failure-domain" not in key}},
        "spec": {"taints": [{"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"}]}, "status": before["status"]}
    store.cloud_provider = lambda name: None if name == host.node_name else known(name)
    try:
        with store.lock:
            store.delete(nodes, None, host.node_name)
            store.create(nodes, None, registered)
        failed = run_addons(env, kubeconfig, "addons-uninitialised-node", addons_node_ready_timeout=4, addons_node_ready_delay=2)
    finally:
        store.cloud_provider = known

    assert failed.rc != 0 and failed.failed_hosts == ["localhost"], failed.stdout
    assert ("Not ready after 4 s: %s: no providerID, still tainted %s: the aws-cloud-controller-manager has not initialised it "
            "(check its pods and logs in kube-system and the control-plane instance profile)." % (host.node_name, UNINITIALIZED)) in failed.stdout
    assert not [other.node_name for other in env.cluster_hosts if other is not host and other.node_name in failed.stdout]
    assert "not Ready" not in failed.stdout  # Ready all along: only the cloud part was missing

    passed = run_addons(env, kubeconfig, "addons-initialised-node", addons_node_ready_timeout=20, addons_node_ready_delay=2)
    passed.assert_ok()
    assert env.api_object("Node", host.node_name)["spec"]["providerID"] == "aws:///%s/%s" % (host.zone, host.instance_id)


def test_a_configuration_kubeadm_refuses_is_reported_with_kubeadms_reason_and_nothing_secret(clean_nodes):
    """Runs last: it leaves the hosts without a cluster. A node mask wider than the pod subnet is valid
    YAML and passes the role's own checks; kubeadm's validation refuses it, and says why."""
    env = clean_nodes
    kubeconfig = os.path.join(env.run_dir, "controller", "kube", CLUSTER_NAME + "-refused.kubeconfig")
    extra = dict(node_vars(env, kubeconfig),
                 control_plane_controller_manager_extra_args={"cloud-provider": "external", "node-cidr-mask-size-ipv4": "8"})
    result = env.run_playbook(NODES_PLAYBOOK, extra_vars=extra, env=FAST_SSH)
    assert result.rc != 0
    assert "kubeadm config validate (the configuration of kubeadm init) failed on %s" % env.control_planes[0].name in result.stdout
    assert "the size of pod subnet with mask 16 is smaller than the size of node subnet with mask 8" in result.stdout
    assert not re.search(r"[a-z0-9]{6}\.[a-z0-9]{16}|[0-9a-f]{64}", result.stdout)
    assert [call["argv"][:1] for call in kubeadm_calls(env, env.control_planes[0], "init")] == []
    assert env.exec(env.control_planes[0], "ls -A /run/kubecluster 2>/dev/null || true").stdout.strip() == ""
