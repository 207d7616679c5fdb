"""SSH host keys on first contact, pinned per cluster (hosts.py, the node contract), against real sshd.

The harness hosts (a bastion with a public IP, machines behind it) get the host variables the
product's node contract builds (the node_hosts filter, from machine views shaped like
machines.machine_view) and a trivial playbook (ansible.builtin.ping over the bastion hop) runs with
an empty home, so that no ssh configuration or known_hosts of the machine's own pins anything, and
Ansible's host_key_checking on, as in a terminal. The cluster's known_hosts is in a directory whose
name holds a space and a %, and the key file's a space, to check the quoting through Ansible's split,
the ProxyCommand's shell and ssh's %-tokens.
"""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.filter.node_hosts import node_hosts
from ansible_collections.kubecluster.aws.plugins.module_utils import hosts as contract

pytestmark = pytest.mark.nodes

CLUSTER = "capi-keys"
PING = [{"name": "Reach every machine", "hosts": "all", "gather_facts": False,
         "tasks": [{"name": "Ping", "ansible.builtin.ping": {}}]}]
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


def machine(host, instance_id=None):
    """A harness host as machines.machine_view (and machine_set) give a machine."""
    role = "bastion" if "bastion" in host.groups else "control-plane" if "kube_control_plane" in host.groups else "node"
    return {"instance_id": instance_id or host.instance_id, "name": host.name, "set": host.machine_set or "bastion", "role": role,
            "state": "running", "availability_zone": host.zone, "subnet_id": "subnet-test", "private_ip": host.private_ip,
            "private_dns_name": host.node_name, "public_ip": host.public_ip, "image_id": "ami-test", "instance_type": "t3.large",
            "launch_time": "2025-01-31T08:15:00+00:00"}


class Controller:
    """A controller with an empty home: ansible-playbook runs with the contract's host vars."""

    def __init__(self, env, base):
        self.env = env
        self.base = base
        self.home = os.path.join(base, "home")
        self.kubeconfig_path = os.path.join(base, "kube dir %", CLUSTER + ".kubeconfig")
        # not "%": Ansible passes ansible_ssh_private_key_file to ssh as IdentityFile="<path>" unescaped
        self.private_key = os.path.join(base, "my keys", "id")
        os.makedirs(os.path.join(self.home, ".ssh"), mode=0o700)
        os.makedirs(os.path.dirname(self.private_key), mode=0o700)
        shutil.copyfile(env.private_key, self.private_key)
        os.chmod(self.private_key, 0o600)
        self.runs = 0

    @property
    def known_hosts(self):
        return contract.host_keys(CLUSTER, self.kubeconfig_path).known_hosts_file

    def inventory(self, machines, pinned=True):
        """The node contract's hosts for ``machines``; without ``pinned``, host vars as before pinning."""
        if pinned:
            listed = node_hosts(machines, CLUSTER, user="ansible", private_key_file=self.private_key, kubeconfig_path=self.kubeconfig_path)
        else:
            bastion = contract.jump_host([dict(m, cluster=CLUSTER) for m in machines])
            listed = [{"name": m["name"], "vars": contract.host_vars(dict(m, cluster=CLUSTER), bastion, True, "ansible", "ansible",
                                                                     self.private_key)} for m in machines]
        return {"all": {"vars": {"ansible_python_interpreter": "/usr/bin/python3"},
                        "hosts": {host["name"]: host["vars"] for host in listed}}}

    def ping(self, machines, pinned=True, host_key_checking=True):
        """ansible-playbook of PING; its own session (no terminal for ssh to ask on) and control path.

        Unpinned, the machines' own connections use an empty known_hosts of the run's (ssh's default
        is the user's ~/.ssh/known_hosts of the passwd entry, whatever HOME says; the jump's ssh,
        which gets no options, reads that one, and finds nothing: no test writes it).
        """
        self.runs += 1
        run_dir = os.path.join(self.base, "run-%d" % self.runs)
        os.makedirs(run_dir)
        for name, content in (("inventory.yml", self.inventory(machines, pinned)), ("ping.yml", PING)):
            with open(os.path.join(run_dir, name), "w", encoding="utf-8") as handle:
                yaml.safe_dump(content, handle)
        extra = {"HOME": self.home, "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(run_dir, "cp"),
                 "ANSIBLE_HOST_KEY_CHECKING": str(host_key_checking), "ANSIBLE_LOCAL_TEMP": os.path.join(run_dir, "tmp")}
        if not pinned:
            extra["ANSIBLE_SSH_ARGS"] = "-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=%s" % (
                os.path.join(run_dir, "known_hosts"))
        env = self.env.ansible_env(extra)
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "inventory.yml", "ping.yml"]
        return subprocess.run(command, cwd=run_dir, env=env, capture_output=True, text=True, timeout=600, check=False,
                              stdin=subprocess.DEVNULL, start_new_session=True)

    def entries(self):
        """The known_hosts entries (ssh may hash their names: HashKnownHosts)."""
        with open(self.known_hosts, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip() and not line.startswith("#")]

    def keys_of(self, name):
        """The entries ssh finds for ``name`` (an instance id or an address), as (key type, key) pairs."""
        found = subprocess.run(["ssh-keygen", "-F", name, "-f", self.known_hosts], capture_output=True, text=True, check=False)
        return [tuple(line.split()[1:3]) for line in found.stdout.splitlines() if line.strip() and not line.startswith("#")]

    def pinned(self, name):
        """Whether the known_hosts holds a key for ``name``."""
        return bool(self.keys_of(name))

    def assert_pinned_once(self, names):
        """Each of ``names`` pinned under one key, and nothing else in the file.

        The machines' connections all hop through the bastion at once, so on first contact several
        jump connections may each find its key missing and append it: the same key, a duplicate
        line ssh reads as one. What pinning promises is one key per name, not one line.
        """
        keys = {name: self.keys_of(name) for name in names}
        assert all(len(set(found)) == 1 for found in keys.values()), keys
        assert sum(len(found) for found in keys.values()) == len(self.entries()), (keys, self.entries())


@pytest.fixture
def controller(nodes_env, tmp_path):
    return Controller(nodes_env, str(tmp_path))


def machines_of(env, **instance_ids):
    return [machine(host, instance_ids.get(host.name)) for host in sorted(env.hosts.values(), key=lambda host: host.name)]


def ok(completed):
    return completed.returncode == 0 and "unreachable=0" in completed.stdout and "failed=0" in completed.stdout


def test_without_pinning_the_first_contact_stops_at_host_key_verification(nodes_env, controller):
    """What the contract gave before: no host key options, the hop's ssh without them either."""
    completed = controller.ping(machines_of(nodes_env), pinned=False)

    assert completed.returncode != 0
    assert "Host key verification failed" in completed.stdout, completed.stdout

    # with Ansible's host_key_checking off (AWX's default) the machines' own connections go, but the jump does not
    awx = controller.ping(machines_of(nodes_env), pinned=False, host_key_checking=False)
    unreachable = [line for line in awx.stdout.splitlines() if "UNREACHABLE!" in line]
    assert len(unreachable) == len(nodes_env.hosts) - 1 and not any("[bastion]" in line for line in unreachable), awx.stdout
    # the jump's own refusal does not reach Ansible's message: the connection is just closed
    assert "Connection closed" in awx.stdout, awx.stdout


def test_host_keys_are_pinned_on_first_contact_under_instance_ids(nodes_env, controller):
    machines = machines_of(nodes_env)
    contract.prepare_known_hosts(contract.host_keys(CLUSTER, controller.kubeconfig_path))  # as create_cluster.yml does
    assert controller.entries() == []

    first = controller.ping(machines)

    assert ok(first), first.stdout + first.stderr
    # one key per instance id, the bastion's included, and none for an address
    controller.assert_pinned_once([host.instance_id for host in nodes_env.hosts.values()])
    assert not any(controller.pinned(address) for host in nodes_env.hosts.values() for address in (host.private_ip, host.public_ip) if address)
    assert oct(os.stat(controller.known_hosts).st_mode & 0o777) == "0o600"

    with open(controller.known_hosts, encoding="utf-8") as handle:
        pinned = handle.read()
    second = controller.ping(machines)
    assert ok(second), second.stdout + second.stderr
    with open(controller.known_hosts, encoding="utf-8") as handle:
        assert handle.read() == pinned


def test_a_changed_key_is_refused_and_a_new_instance_at_the_same_ip_is_pinned(nodes_env, controller):
    machines = machines_of(nodes_env)
    contract.prepare_known_hosts(contract.host_keys(CLUSTER, controller.kubeconfig_path))
    assert ok(controller.ping(machines))
    worker = nodes_env.workers[0]
    nodes_env.exec(worker, "cp -p {0} {0}.pinned && cp -p {0}.pub {0}.pub.pinned && rm {0} {0}.pub && "
                           "ssh-keygen -q -t ed25519 -N '' -f {0} && systemctl restart ssh".format(HOST_KEY))
    try:
        changed = controller.ping(machines)

        assert changed.returncode != 0
        unreachable = [line for line in changed.stdout.splitlines() if "UNREACHABLE!" in line]
        assert len(unreachable) == 1 and worker.name in unreachable[0], changed.stdout
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in changed.stdout and "Host key verification failed" in changed.stdout

        # a replacement machine: a new instance at the recycled IP, with another key
        replaced = controller.ping(machines_of(nodes_env, **{worker.name: "i-0feedfacecafe0001"}))

        assert ok(replaced), replaced.stdout + replaced.stderr
        controller.assert_pinned_once([host.instance_id for host in nodes_env.hosts.values()] + ["i-0feedfacecafe0001"])
    finally:
        nodes_env.exec(worker, "mv {0}.pinned {0} && mv {0}.pub.pinned {0}.pub && systemctl restart ssh".format(HOST_KEY))


def test_with_host_key_checking_off_the_keys_are_still_recorded_and_the_jump_checked(nodes_env, controller):
    contract.prepare_known_hosts(contract.host_keys(CLUSTER, controller.kubeconfig_path))

    completed = controller.ping(machines_of(nodes_env), host_key_checking=False)

    assert ok(completed), completed.stdout + completed.stderr
    controller.assert_pinned_once([host.instance_id for host in nodes_env.hosts.values()])
