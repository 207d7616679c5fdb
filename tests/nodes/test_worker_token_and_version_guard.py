"""A node run that joins workers in rounds, or meets members of another version, against Debian 12
hosts behind a bastion (the harness of tests/nodes/conftest.py, the helpers of test_node_roles.py).

- With forks=1 the workers join one at a time: their bootstrap token lives as many rounds as that
  makes (the bootstrap_token_ttl filter), is deleted once they have joined, and the joins succeed.
- A play with serial gets a fresh token per batch, each deleted after its batch.
- A rerun with another kubernetes_version on the members fails before any change on them, naming
  each machine and both versions, and the kubelets stay at the cluster's version.

The tests share one cluster and run in file order.
"""

import os

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.filter.bootstrap_token_ttl import bootstrap_token_ttl
from helpers.modules import load_sibling

pytestmark = pytest.mark.nodes


# test_node_roles.py's spec, run and record helpers (pytest imports test modules with importlib, off sys.path)
node_roles = load_sibling(__file__, "test_node_roles.py", "node_role_helpers")

NEWER_VERSION = "v1.32.0"


def worker_token(env, host):
    """The bootstrap token of the worker's last join."""
    return node_roles.document(node_roles.kubeadm_calls(env, host, "join")[-1], "JoinConfiguration")["discovery"]["bootstrapToken"]["token"]


def token_calls(env, host, sub):
    return [call for call in node_roles.kubeadm_calls(env, host, "token") if call["argv"][1:2] == [sub]]


def bootstrap_token_secrets(env):
    return sorted(obj["metadata"]["name"] for obj in env.api_objects("Secret", "kube-system")
                  if obj["metadata"]["name"].startswith("bootstrap-token-"))


@pytest.fixture(scope="module")
def one_fork_cluster(nodes_env):
    """A cluster built by playbooks/nodes.yml on wiped hosts with --forks 1."""
    nodes_env.wipe_hosts()
    nodes_env.reset_api()
    kubeconfig = os.path.join(nodes_env.run_dir, "controller", "kube", "one-fork.kubeconfig")
    result = nodes_env.run_playbook(node_roles.NODES_PLAYBOOK, extra_vars=node_roles.node_vars(nodes_env, kubeconfig),
                                    env=node_roles.FAST_SSH, extra_args=["--forks", "1"])
    node_roles.TIMINGS["forks 1"] = result.duration
    return nodes_env, result, kubeconfig


def test_workers_joining_in_rounds_share_a_token_that_outlasts_the_rounds_and_is_deleted(one_fork_cluster):
    env, result, unused_kubeconfig = one_fork_cluster
    result.assert_ok()
    first = env.control_planes[0]
    joins = {}
    for host in env.workers:
        calls = node_roles.kubeadm_calls(env, host, "join")
        assert len(calls) == 1 and calls[0]["exit_code"] == 0, calls
        joins[host.name] = calls[0]
    (token,) = {worker_token(env, host) for host in env.workers}
    (create,) = [call for call in token_calls(env, first, "create") if call["stdout"].strip() == token]
    # one worker per round with forks=1: 2 workers -> 2 rounds of 10m, longer than the 15m floor
    expected = bootstrap_token_ttl(len(env.workers), 1, "10m", "15m")
    assert expected == "%dm" % max(15, 10 * len(env.workers))
    assert create["argv"] == ["token", "create", "--ttl", expected]
    spans = sorted(node_roles.interval(call) for call in joins.values())
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), "forks=1 joins one worker at a time"
    (delete,) = token_calls(env, first, "delete")
    assert delete["argv"] == ["token", "delete", token.split(".")[0]] and delete["exit_code"] == 0
    assert delete["time"] >= spans[-1][1]
    assert "bootstrap-token-" + token.split(".")[0] not in bootstrap_token_secrets(env)
    assert token not in result.stdout
    for host in env.workers:
        node = env.api_object("Node", host.node_name)
        assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"], host.name


def test_a_play_with_serial_gets_a_fresh_token_per_batch_each_deleted(one_fork_cluster):
    env, first_run, kubeconfig = one_fork_cluster
    first_run.assert_ok()
    # the workers lose their kubeadm state; their Nodes stay, so each join first deletes its stale Node
    env.wipe_hosts(env.workers)
    env.clear_stand_in_calls()
    playbook = os.path.join(env.run_dir, "workers-serial.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([
            {"name": "Resolve the spec", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
                {"name": "Resolve the spec", "kubecluster.aws.cluster_spec": {"cluster": "{{ cluster }}", "check_account": False},
                 "register": "resolved"}]},
            {"name": "Join the workers one batch at a time", "hosts": "kube_node", "serial": 1, "become": True, "gather_facts": False,
             "vars": {"kubecluster_cluster": "{{ hostvars['localhost'].resolved.cluster }}"},
             "tasks": [{"name": "Join", "ansible.builtin.include_role": {"name": "kubecluster.aws.workers"}}]},
        ], handle)
    result = env.run_playbook(playbook, extra_vars=node_roles.node_vars(env, kubeconfig), env=node_roles.FAST_SSH)
    node_roles.TIMINGS["serial workers"] = result.duration
    result.assert_ok()
    first = env.control_planes[0]
    tokens = [worker_token(env, host) for host in env.workers]
    assert len(set(tokens)) == len(env.workers), "one token per batch"
    creates = token_calls(env, first, "create")
    assert [call["argv"] for call in creates] == [["token", "create", "--ttl", "15m"]] * len(env.workers)
    assert [call["stdout"].strip() for call in creates] == tokens
    assert [call["argv"] for call in token_calls(env, first, "delete")] == [["token", "delete", t.split(".")[0]] for t in tokens]
    assert not set("bootstrap-token-" + t.split(".")[0] for t in tokens) & set(bootstrap_token_secrets(env))


def test_a_new_version_on_members_is_refused_before_any_change_naming_the_machines(one_fork_cluster):
    env, first_run, kubeconfig = one_fork_cluster
    first_run.assert_ok()
    running = env.kubernetes_version
    extra = node_roles.node_vars(env, kubeconfig)
    extra["cluster"].update(kubernetes_version=NEWER_VERSION,
                            kubernetes_packages={"source": "binaries", "binaries_dir": env.stand_in_binaries(NEWER_VERSION)})
    env.clear_stand_in_calls()
    result = env.run_playbook(node_roles.NODES_PLAYBOOK, extra_vars=extra, env=node_roles.FAST_SSH)
    node_roles.TIMINGS["new version refused"] = result.duration
    assert result.rc != 0
    for host in env.cluster_hosts:
        assert ("%s is a member of the cluster (/etc/kubernetes/kubelet.conf) and runs kubelet %s, but kubernetes_version is %s"
                % (host.name, running, NEWER_VERSION)) in result.stdout, host.name
        assert result.recap[host.name]["changed"] == 0, host.name
        assert env.exec(host, "kubelet --version").stdout.strip() == "Kubernetes " + running
        assert node_roles.kubeadm_calls(env, host, "init", "join", "reset", "token", "upgrade") == []
    assert ("Keep kubernetes_version: %s here, and move the cluster with playbooks/upgrade_cluster.yml (control plane first, "
            "one minor at a time)" % running) in result.stdout
    assert "Copy the binaries to the machine" not in result.stdout
