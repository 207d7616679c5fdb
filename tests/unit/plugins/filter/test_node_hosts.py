"""The node_hosts filter: the node contract (hosts.py) for create_cluster.yml's add_host, called
directly and in create_cluster.yml's own task, through ansible-playbook."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from conftest import COLLECTIONS_ROOT, REPO

from ansible_collections.kubecluster.aws.plugins.filter.node_hosts import FilterModule
from ansible_collections.kubecluster.aws.plugins.filter.node_hosts import host_keys
from ansible_collections.kubecluster.aws.plugins.filter.node_hosts import node_hosts

BIN = os.path.dirname(sys.executable)
BASTION_IP = "203.0.113.10"
BASTION_ID = "i-capi-example-bastion-a"
WORKER_ID = "i-capi-example-md-0-c"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A home of the test's own, where the cluster's known_hosts goes by default."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def pinned(instance_id, known_hosts=None, checking="accept-new"):
    known_hosts = known_hosts or os.path.join(os.environ["HOME"], ".kube", "capi-example.known_hosts")
    return "-o StrictHostKeyChecking=%s -o UserKnownHostsFile=%s -o HostKeyAlias=%s" % (checking, known_hosts, instance_id)


def through_bastion(key="", **keys):
    return "-o 'ProxyCommand=ssh -W %%h:%%p -o LogLevel=ERROR %s %subuntu@%s'" % (pinned(BASTION_ID, **keys), key, BASTION_IP)


def machine(name, set_name, role, private_ip, public_ip=None, state="running"):
    """A machine as machine_set returns it."""
    return {"instance_id": "i-" + name, "name": name, "set": set_name, "role": role, "state": state,
            "availability_zone": "ap-northeast-2a", "subnet_id": "subnet-1", "private_ip": private_ip,
            "private_dns_name": "ip-%s.ap-northeast-2.compute.internal" % private_ip.replace(".", "-"),
            "public_ip": public_ip, "image_id": "ami-1", "instance_type": "t3.large", "outdated": False,
            "launch_time": "2025-01-31T08:15:00+00:00"}


MACHINES = [
    machine("capi-example-bastion-a", "bastion", "bastion", "10.0.0.10", BASTION_IP),
    machine("capi-example-control-plane-b", "control-plane", "control-plane", "10.0.64.11"),
    machine("capi-example-md-0-c", "md-0", "node", "10.0.64.21"),
]


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"node_hosts": node_hosts, "host_keys": host_keys}


def test_the_filter_gives_the_node_contract():
    listed = node_hosts(MACHINES, "capi-example", private_key_file="/keys/k.pem")

    worker = listed[2]
    assert worker["name"] == "capi-example-md-0-c"
    assert worker["groups"] == ["kubecluster_capi_example", "kubecluster_md_md_0", "kube_node", "k8s_cluster"]
    assert worker["vars"] == {
        "ansible_host": "10.0.64.21",
        "ansible_user": "ubuntu",
        "ansible_ssh_private_key_file": "/keys/k.pem",
        "ansible_ssh_common_args": pinned(WORKER_ID) + " " + through_bastion("-i /keys/k.pem "),
        "kubecluster_node_name": "ip-10-0-64-21.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-capi-example-md-0-c",
        "kubecluster_machine_set": "md-0",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": "capi-example",
    }


def test_an_empty_key_file_or_user_counts_as_none_given():
    listed = node_hosts(MACHINES, "capi-example", current=None, user="", private_key_file="")

    assert listed[2]["vars"]["ansible_ssh_common_args"] == pinned(WORKER_ID) + " " + through_bastion()
    assert "ansible_ssh_private_key_file" not in listed[2]["vars"]


def test_the_filter_pins_keys_next_to_the_kubeconfig_or_in_ones_own_file(tmp_path):
    beside = node_hosts(MACHINES, "capi-example", kubeconfig_path=str(tmp_path / "kube" / "c.kubeconfig"), known_hosts_file="")
    own = node_hosts(MACHINES, "capi-example", kubeconfig_path=str(tmp_path / "kube" / "c.kubeconfig"), known_hosts_file="/etc/pinned")

    beside_file = str(tmp_path / "kube" / "capi-example.known_hosts")
    assert beside[0]["vars"]["ansible_ssh_common_args"] == pinned(BASTION_ID, beside_file)
    strict = {"known_hosts": "/etc/pinned", "checking": "yes"}
    assert own[2]["vars"]["ansible_ssh_common_args"] == pinned(WORKER_ID, **strict) + " " + through_bastion(**strict)


def test_host_keys_of_a_cluster_spec(home):
    assert host_keys({"name": "capi-example"}) == {
        "path": str(home / ".kube" / "capi-example.known_hosts"), "checking": "accept-new", "managed": True}
    assert host_keys({"name": "capi-example", "kubeconfig_path": "~/prod/admin.kubeconfig", "ssh_known_hosts_file": None})["path"] == (
        str(home / "prod" / "capi-example.known_hosts"))
    assert host_keys({"name": "capi-example", "kubeconfig_path": None, "ssh_known_hosts_file": "~/pinned"}) == {
        "path": str(home / "pinned"), "checking": "yes", "managed": False}
    with pytest.raises(AnsibleFilterError, match="host_keys expects the cluster spec"):
        host_keys({"region": "ap-northeast-2"})


@pytest.mark.parametrize("machines, message", [
    ("md-0", "expects a list of machines"),
    ([{"name": "x"}], "a machine has no 'instance_id'"),
])
def test_bad_input_fails_naming_what_is_expected(machines, message):
    with pytest.raises(AnsibleFilterError, match=message):
        node_hosts(machines, "capi-example")


def test_a_group_clash_fails_the_filter():
    with pytest.raises(AnsibleFilterError, match="node_hosts: group kubecluster_md_x would hold both cluster md-x"):
        node_hosts([machine("w", "x", "node", "10.0.64.21")], "md-x")


def create_cluster_node_hosts_block():
    """The block of create_cluster.yml that makes the known_hosts and adds the machines to the node plays' groups, as it is."""
    with open(os.path.join(REPO, "playbooks", "create_cluster.yml")) as handle:
        plays = yaml.safe_load(handle)
    (play,) = [p for p in plays if p.get("name") == "Put the machines into the node plays' groups"]
    (block,) = [t for t in play["tasks"] if "block" in t]
    assert [t for t in block["block"] if "ansible.builtin.add_host" in t]
    return block


SEEN = ("ansible_host", "ansible_user", "ansible_ssh_common_args", "ansible_ssh_private_key_file", "kubecluster_node_name",
        "kubecluster_instance_id", "kubecluster_machine_set", "kubecluster_availability_zone", "kubecluster_cluster_name")


def play(task, out):
    """create_cluster.yml's task (or block), then what the node plays will see written to ``out``."""
    write = {"name": "Write what the node plays will see", "ansible.builtin.copy": {
        "dest": out, "mode": "0600",
        "content": "{{ {'groups': groups, 'worker': hostvars['capi-example-md-0-c'] | dict2items"
                   " | selectattr('key', 'in', %r) | items2dict} | to_json }}" % (list(SEEN),)}}
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task, write]}]


def run_create_cluster_block(tmp_path, cluster):
    """create_cluster.yml's block for ``cluster`` (a resolved spec's fields); returns the finished run."""
    launched = [dict(m, public_ip=None, state="pending") if m["set"] == "bastion" else m for m in MACHINES]
    extra = {"kubecluster_machines": launched, "kubecluster_spec": {"cluster": cluster},
             "kubecluster_status": {"cluster": {"machines": MACHINES}},
             "kubecluster_api_lb": {"load_balancer": {"control_plane_endpoint": "capi-example-apiserver.example:6443"}}}
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play(create_cluster_node_hosts_block(), str(tmp_path / "seen.json"))))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("ANSIBLE_CONFIG", None)
    return subprocess.run([os.path.join(BIN, "ansible-playbook"), "play.yml", "-e", "@vars.yml"], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)


def test_create_cluster_adds_the_hosts_through_the_filter(tmp_path, home):
    completed = run_create_cluster_block(tmp_path, {"name": "capi-example", "kubeconfig_path": "~/.kube/capi-example.kubeconfig",
                                                    "ssh_known_hosts_file": None})

    assert completed.returncode == 0, completed.stdout + completed.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["groups"]["bastion"] == ["capi-example-bastion-a"]
    assert seen["groups"]["kube_control_plane"] == ["capi-example-control-plane-b"]
    assert seen["groups"]["kube_node"] == ["capi-example-md-0-c"]
    assert seen["groups"]["kubecluster_md_md_0"] == ["capi-example-md-0-c"]
    assert sorted(seen["groups"]["k8s_cluster"]) == ["capi-example-control-plane-b", "capi-example-md-0-c"]
    assert len(seen["groups"]["kubecluster_capi_example"]) == 3
    assert seen["worker"] == {
        "ansible_host": "10.0.64.21",
        "ansible_user": "ubuntu",
        "ansible_ssh_common_args": pinned(WORKER_ID) + " " + through_bastion(),
        "kubecluster_node_name": "ip-10-0-64-21.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-capi-example-md-0-c",
        "kubecluster_machine_set": "md-0",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": "capi-example",
    }
    # ssh pins keys in the cluster's own known_hosts, which it does not make itself
    assert oct((home / ".kube").stat().st_mode & 0o777) == "0o700"
    assert oct((home / ".kube" / "capi-example.known_hosts").stat().st_mode & 0o777) == "0o600"
    assert "changed=0" not in completed.stdout

    (home / ".kube" / "capi-example.known_hosts").write_text("i-capi-example-bastion-a ssh-ed25519 AAAA\n")
    again = run_create_cluster_block(tmp_path, {"name": "capi-example", "kubeconfig_path": "~/.kube/capi-example.kubeconfig",
                                                "ssh_known_hosts_file": None})
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout
    assert (home / ".kube" / "capi-example.known_hosts").read_text() == "i-capi-example-bastion-a ssh-ed25519 AAAA\n"


def test_create_cluster_leaves_a_known_hosts_of_ones_own_alone(tmp_path, home):
    own = tmp_path / "mine" / "pinned"
    completed = run_create_cluster_block(tmp_path, {"name": "capi-example", "kubeconfig_path": "~/.kube/capi-example.kubeconfig",
                                                    "ssh_known_hosts_file": str(own)})

    assert completed.returncode == 0, completed.stdout + completed.stderr
    seen = json.loads((tmp_path / "seen.json").read_text())
    strict = {"known_hosts": str(own), "checking": "yes"}
    assert seen["worker"]["ansible_ssh_common_args"] == pinned(WORKER_ID, **strict) + " " + through_bastion(**strict)
    assert not (tmp_path / "mine").exists() and not (home / ".kube").exists()


def delete_cluster_forget_task():
    """The task of delete_cluster.yml that forgets the machines' host keys, as it is."""
    with open(os.path.join(REPO, "playbooks", "delete_cluster.yml")) as handle:
        (play,) = yaml.safe_load(handle)
    (task,) = [t for t in play["tasks"] if "host keys" in t.get("name", "")]
    return task


@pytest.mark.parametrize("confirmed, own, forgotten", [(True, False, True), (False, False, False), (True, True, False)])
def test_delete_cluster_forgets_only_the_clusters_own_known_hosts(tmp_path, home, confirmed, own, forgotten):
    cluster_file = home / "kube" / "capi-example.known_hosts"
    own_file = tmp_path / "pinned"
    for path in (cluster_file, own_file):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("i-1 ssh-ed25519 AAAA\n")
    # delete_cluster.yml reads the spec as given (kubeconfig_path may be unset; spec_input.yml sets kubecluster_spec_input
    # from `cluster`), the name as cluster_delete_info checked it
    cluster = {"name": "capi-example", "region": "ap-northeast-2", "kubeconfig_path": "~/kube/admin.kubeconfig"}
    if own:
        cluster["ssh_known_hosts_file"] = str(own_file)
    extra = {"kubecluster_spec_input": cluster, "kubecluster_teardown": {"cluster": {"name": "capi-example", "region": "ap-northeast-2"}},
             "kubecluster_confirm_delete": confirmed}
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                                        "tasks": [delete_cluster_forget_task()]}]))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("ANSIBLE_CONFIG", None)

    completed = subprocess.run([os.path.join(BIN, "ansible-playbook"), "play.yml", "-e", "@vars.yml"], env=env, cwd=str(tmp_path),
                               capture_output=True, text=True, timeout=300, check=False)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert cluster_file.exists() is not forgotten
    assert own_file.exists()
