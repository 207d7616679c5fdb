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
from ansible_collections.kubecluster.aws.plugins.filter.node_hosts import node_hosts

BIN = os.path.dirname(sys.executable)
BASTION_IP = "203.0.113.10"


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
    assert FilterModule().filters() == {"node_hosts": node_hosts}


def test_the_filter_gives_the_node_contract():
    listed = node_hosts(MACHINES, "capi-example", private_key_file="/keys/k.pem")

    worker = listed[2]
    assert worker["name"] == "capi-example-md-0-c"
    assert worker["groups"] == ["kubecluster_capi_example", "kubecluster_md_md_0", "kube_node", "k8s_cluster"]
    assert worker["vars"] == {
        "ansible_host": "10.0.64.21",
        "ansible_user": "ubuntu",
        "ansible_ssh_private_key_file": "/keys/k.pem",
        "ansible_ssh_common_args": '-o ProxyCommand="ssh -W %h:%p -q -i /keys/k.pem ubuntu@203.0.113.10"',
        "kubecluster_node_name": "ip-10-0-64-21.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-capi-example-md-0-c",
        "kubecluster_machine_set": "md-0",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": "capi-example",
    }


def test_an_empty_key_file_or_user_counts_as_none_given():
    listed = node_hosts(MACHINES, "capi-example", current=None, user="", private_key_file="")

    assert listed[2]["vars"]["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@" + BASTION_IP
    assert "ansible_ssh_private_key_file" not in listed[2]["vars"]


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


def create_cluster_add_host_task():
    """The task of create_cluster.yml that adds the machines to the node plays' groups, as it is."""
    with open(os.path.join(REPO, "playbooks", "create_cluster.yml")) as handle:
        plays = yaml.safe_load(handle)
    (play,) = [p for p in plays if p.get("name") == "Put the machines into the node plays' groups"]
    (block,) = [t for t in play["tasks"] if "block" in t]
    (task,) = [t for t in block["block"] if "ansible.builtin.add_host" in t]
    return task


SEEN = ("ansible_host", "ansible_user", "ansible_ssh_common_args", "ansible_ssh_private_key_file", "kubecluster_node_name",
        "kubecluster_instance_id", "kubecluster_machine_set", "kubecluster_availability_zone", "kubecluster_cluster_name")


def play(task, out):
    """create_cluster.yml's task, then what the node plays will see written to ``out``."""
    write = {"name": "Write what the node plays will see", "ansible.builtin.copy": {
        "dest": out, "mode": "0600",
        "content": "{{ {'groups': groups, 'worker': hostvars['capi-example-md-0-c'] | dict2items"
                   " | selectattr('key', 'in', %r) | items2dict} | to_json }}" % (list(SEEN),)}}
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task, write]}]


def test_create_cluster_adds_the_hosts_through_the_filter(tmp_path):
    launched = [dict(m, public_ip=None, state="pending") if m["set"] == "bastion" else m for m in MACHINES]
    extra = {"kubecluster_machines": launched, "kubecluster_spec": {"cluster": {"name": "capi-example"}},
             "kubecluster_status": {"cluster": {"machines": MACHINES}}}
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play(create_cluster_add_host_task(), str(tmp_path / "seen.json"))))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("ANSIBLE_CONFIG", None)

    completed = subprocess.run([os.path.join(BIN, "ansible-playbook"), "play.yml", "-e", "@vars.yml"], env=env, cwd=str(tmp_path),
                               capture_output=True, text=True, timeout=300, check=False)

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
        "ansible_ssh_common_args": "-o ProxyJump=ubuntu@" + BASTION_IP,
        "kubecluster_node_name": "ip-10-0-64-21.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-capi-example-md-0-c",
        "kubecluster_machine_set": "md-0",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": "capi-example",
    }
