"""Half-finished kubeadm inits and control-plane joins (issue 7, section 4), on the node harness.

The kubeadm stand-in stops right after a phase when /etc/kubecluster-stand-in/crash-after names it,
leaving what a kubeadm killed there leaves: kubelet.conf and a one-member etcd but no kubeadm-config
after an init's kubelet-start; a registered Node without the control-plane label nor an etcd member
after a control-plane join's kubelet-start. A rerun of playbooks/nodes.yml must see from the API and
etcd (read with etcdctl in the etcd container, through crictl) that such a machine is no member,
say so, reset it and run kubeadm again; a healthy member is never reset.
"""

import os
import shutil
import tempfile

import pytest

pytestmark = pytest.mark.nodes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODES_PLAYBOOK = os.path.join(REPO, "playbooks", "nodes.yml")
# the add-on manifests as test_node_roles.py lays them out (.manifest files under the names the addons role reads)
MANIFESTS_DIR = tempfile.mkdtemp(prefix="kubecluster-manifests-")
for source_name in os.listdir(os.path.join(REPO, "tests", "nodes", "files")):
    shutil.copyfile(os.path.join(REPO, "tests", "nodes", "files", source_name), os.path.join(MANIFESTS_DIR, source_name.replace(".manifest", ".yaml")))
CLUSTER_NAME = "kubecluster-partial"
FAST_SSH = {"ANSIBLE_PIPELINING": "True"}
CRASH_FILE = "/etc/kubecluster-stand-in/crash-after"


def run_nodes(env):
    kubeconfig = os.path.join(env.run_dir, "controller", "kube", CLUSTER_NAME + ".kubeconfig")
    cluster = {"name": CLUSTER_NAME, "region": "ap-northeast-2", "kubernetes_version": env.kubernetes_version,
               "kubernetes_packages": {"source": "binaries", "binaries_dir": env.stand_in_binaries()},
               "addons": {"manifests_dir": MANIFESTS_DIR}, "kubeconfig_path": kubeconfig}
    return env.run_playbook(NODES_PLAYBOOK, extra_vars={"cluster": cluster, "node_prerequisites_load_kernel_modules": False}, env=FAST_SSH)


def crash_after(env, host, command, phase):
    env.exec(host, "echo '%s %s' > %s" % (command, phase, CRASH_FILE))


def kubeadm_writes(env, host):
    return [call["argv"][:2] for call in env.stand_in_calls(host, "kubeadm")
            if call["argv"][:1] in (["init"], ["join"], ["reset"]) and call["argv"][1:2] != ["phase"]]


def etcd_member_names(env):
    return sorted(member.get("name", "") for member in env.api.store.etcd_members)


def etcd_reads(env):
    return [call for host in env.control_planes for call in env.stand_in_calls(host, "crictl")
            if call["argv"][:1] == ["exec"] and call["argv"][-4:] == ["member", "list", "-w", "json"]]


@pytest.fixture
def partial_nodes(clean_nodes):
    yield clean_nodes
    for host in clean_nodes.control_planes:
        clean_nodes.exec(host, "rm -f %s" % CRASH_FILE)


def test_an_init_stopped_before_kubeadm_config_is_reset_and_initialized_again(partial_nodes):
    env = partial_nodes
    first = env.control_planes[0]
    crash_after(env, first, "init", "kubelet-start")
    stopped = run_nodes(env)
    assert stopped.rc != 0 and "kubeadm init failed on %s" % first.name in stopped.stdout, stopped.stdout[-6000:]
    assert env.file_exists(first, "/etc/kubernetes/kubelet.conf")
    assert env.api_object("ConfigMap", "kubeadm-config", "kube-system") is None
    env.clear_stand_in_calls()

    result = run_nodes(env)

    result.assert_ok()
    assert "%s (%s) is not a control-plane member but a half-finished kubeadm init" % (first.name, first.node_name) in result.stdout
    assert "the kubeadm-config ConfigMap" in result.stdout
    assert kubeadm_writes(env, first) == [["reset", "-f"], ["init", "--config"]]
    for host in env.control_planes[1:]:
        assert kubeadm_writes(env, host) == [["join", "--config"]], host.name
    assert env.api_object("ConfigMap", "kubeadm-config", "kube-system") is not None
    assert etcd_member_names(env) == sorted(host.node_name for host in env.control_planes)


def test_a_control_plane_join_stopped_after_kubelet_start_is_reset_and_joined_again(partial_nodes):
    env = partial_nodes
    first, second, third = env.control_planes
    crash_after(env, second, "join", "kubelet-start")
    stopped = run_nodes(env)
    assert stopped.rc != 0 and "kubeadm join failed on %s" % second.name in stopped.stdout, stopped.stdout[-6000:]
    # what the crash left: a kubelet identity, admin.conf and a Node, but no control-plane label and no etcd member
    assert env.file_exists(second, "/etc/kubernetes/kubelet.conf") and env.file_exists(second, "/etc/kubernetes/admin.conf")
    assert "node-role.kubernetes.io/control-plane" not in env.api_object("Node", second.node_name)["metadata"]["labels"]
    assert etcd_member_names(env) == [first.node_name]
    identity = env.exec(first, "sha256sum /etc/kubernetes/kubelet.conf").stdout
    env.clear_stand_in_calls()

    result = run_nodes(env)

    result.assert_ok()
    message = "%s (%s) is not a control-plane member but a half-finished kubeadm join" % (second.name, second.node_name)
    assert message in result.stdout
    assert "the control-plane label on its Node %s, its etcd member" % second.node_name in result.stdout
    assert kubeadm_writes(env, second) == [["reset", "-f"], ["join", "--config"]]
    assert kubeadm_writes(env, first) == []
    assert kubeadm_writes(env, third) == [["join", "--config"]]
    assert env.exec(first, "sha256sum /etc/kubernetes/kubelet.conf").stdout == identity
    assert etcd_member_names(env) == sorted(host.node_name for host in env.control_planes)
    assert env.api_object("Node", second.node_name)["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""


def test_a_rerun_on_a_healthy_cluster_reads_etcd_and_resets_initializes_and_joins_nothing(nodes_env):
    """Runs on what the test before left (a healthy cluster), or builds one."""
    env = nodes_env
    if len(env.api.store.etcd_members) != len(env.control_planes) or env.api_object("ConfigMap", "kubeadm-config", "kube-system") is None:
        env.wipe_hosts()
        env.reset_api()
        run_nodes(env).assert_ok()
    members = list(env.api.store.etcd_members)
    env.clear_stand_in_calls()

    result = run_nodes(env)

    result.assert_ok()
    assert "is not a control-plane member but a half-finished" not in result.stdout
    for host in env.cluster_hosts:
        assert kubeadm_writes(env, host) == [], host.name
    # membership was decided from etcd's own member list, read in the etcd container of a control plane
    assert len(etcd_reads(env)) == 1 and etcd_reads(env)[0]["exit_code"] == 0
    assert env.api.store.etcd_members == members
