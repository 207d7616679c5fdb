# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The node contract: how a cluster's machines become the hosts the node plays run on.

From machine views (machines.machine_view, with the cluster's name under ``cluster``) it
decides, once for every consumer - the inventory plugin kubecluster.aws.machines, the
node_hosts filter that create_cluster.yml feeds to add_host, and the day-2 playbooks:

- which machines are hosts: pending and running ones (stopping and stopped ones too when
  asked), with a private IP address (a machine planned in check mode has none yet);
- their groups: ``bastion``; ``kube_control_plane``; ``kubecluster_md_<deployment>`` under
  ``kube_node``; ``k8s_cluster`` above ``kube_control_plane`` and ``kube_node``; and
  ``kubecluster_<cluster>`` with every machine of the cluster. In group names every character
  other than a letter, a digit or ``_`` becomes ``_``;
- the address SSH connects to, and the hop through the bastion (below);
- the host variables: ``ansible_host``, ``ansible_ssh_common_args`` (host key pinning and the
  hop), ``kubecluster_node_name`` (the private DNS name, which is the kubeadm node name),
  ``kubecluster_instance_id``, ``kubecluster_machine_set``, ``kubecluster_availability_zone``,
  ``kubecluster_cluster_name``, and ``ansible_user`` and ``ansible_ssh_private_key_file`` when
  the caller names a user and a key file.

The address, for a controller outside the cluster's VPC (the default, and create_cluster.yml's
case):

- the bastion is reached at its public IP;
- a machine with a public IP of its own is reached at it, directly;
- any other machine at its private IP, through the bastion when the cluster has one that is
  pending or running with a public IP: a ``ProxyCommand`` running ``ssh -W %h:%p`` to the
  bastion (with ``-i <key file>`` when given), never ``ProxyJump``, whose jump connection reads
  only the ssh configuration files and so would not get the host key options below; without
  such a bastion, directly.

For a controller inside the VPC (an execution node there, a VPN; the inventory's
``proxy_jump: false``) every machine but the bastion is reached at its private IP, with no hop.

Host keys (HostKeys): machines are new on every create, so ssh must neither stop at an unknown
key nor take whatever a recycled address presents. Every connection, the jump's included, gets
``-o StrictHostKeyChecking=<checking> -o UserKnownHostsFile=<file> -o HostKeyAlias=<instance id>``:
keys are pinned by instance id, which EC2 never reuses, not by IP, which it does (a recreated
cluster or a replacement machine at a recycled IP is a new host, not a changed key). By default
the file is the cluster's own, ``<directory of the kubeconfig>/<cluster>.known_hosts``, with
``accept-new`` (a new machine's key is pinned on first contact, a pinned key that changes is
refused); a known_hosts file of the user's own is checked strictly (``yes``): they pinned the
keys themselves.
"""

import os
import re
import shlex
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from . import naming
from .errors import KubeclusterError
from .spec import default_kubeconfig_path

GROUP_BASTION = "bastion"
GROUP_CONTROL_PLANE = "kube_control_plane"
GROUP_NODE = "kube_node"
GROUP_CLUSTER = "k8s_cluster"
# The fixed part of the group tree; a deployment's group is a child of kube_node.
GROUP_PARENTS = {GROUP_CONTROL_PLANE: GROUP_CLUSTER, GROUP_NODE: GROUP_CLUSTER}

UP_STATES = ("pending", "running")
STOPPED_STATES = ("stopping", "stopped")
# The login user of the Ubuntu images CAPA and kubecluster.aws launch.
DEFAULT_USER = "ubuntu"
# The address fields a fresher read of the same machines may bring (public IPs come after launch).
FRESH_FIELDS = ("state", "private_ip", "public_ip", "private_dns_name")

# ssh's StrictHostKeyChecking: pin a new key on first contact / only keys pinned beforehand.
ACCEPT_NEW = "accept-new"
STRICT = "yes"
KNOWN_HOSTS_SUFFIX = ".known_hosts"

_IPV4 = re.compile(r"^[0-9.]+$")
# An ssh_config value that needs no double quotes (ssh splits unquoted values at whitespace).
_SSH_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./~-]+$")

Machine = Mapping[str, Any]
HostVars = Dict[str, Any]


class NodeContractError(KubeclusterError):
    """The machines cannot be listed as asked (two of them would share a group they must not)."""


# --- group names -------------------------------------------------------------------------

def group_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def deployment_group(set_name: str) -> str:
    return "kubecluster_md_" + group_safe(set_name)


def cluster_group(cluster_name: str) -> str:
    return "kubecluster_" + group_safe(cluster_name)


# --- which machines, which groups ----------------------------------------------------------

def is_bastion(machine: Machine) -> bool:
    return bool(machine.get("role") == naming.ROLE_BASTION)


def listed(machine: Machine, include_stopped: bool = False) -> bool:
    """Whether the machine is a host: up (or stopped, when asked) and with a private IP."""
    states = UP_STATES + (STOPPED_STATES if include_stopped else ())
    return machine.get("state") in states and bool(_IPV4.match(machine.get("private_ip") or ""))


def groups(machine: Machine) -> List[Tuple[str, Optional[str]]]:
    """[(group, parent group or None)] the machine is put in; GROUP_PARENTS adds the fixed tree above."""
    tree: List[Tuple[str, Optional[str]]] = [(cluster_group(machine["cluster"]), None)]
    if machine.get("role") == naming.ROLE_BASTION:
        tree.append((GROUP_BASTION, None))
    elif machine.get("role") == naming.ROLE_CONTROL_PLANE:
        tree.append((GROUP_CONTROL_PLANE, None))
    elif machine.get("set"):
        tree.append((deployment_group(machine["set"]), GROUP_NODE))
    else:
        tree.append((GROUP_NODE, None))
    return tree


def member_groups(machine: Machine) -> List[str]:
    """Every group the machine is in, its groups' parents included, for a consumer that cannot
    nest groups (add_host): a worker of md-0 is in kubecluster_md_md_0, kube_node and k8s_cluster."""
    members: List[str] = []
    for group, parent in groups(machine):
        chain = [group] + ([parent] if parent else [])
        while chain[-1] in GROUP_PARENTS:
            chain.append(GROUP_PARENTS[chain[-1]])
        members.extend(name for name in chain if name not in members)
    return members


def group_clashes(machines: Iterable[Machine]) -> List[str]:
    """Cluster groups whose name is also a deployment's group (cluster md-0 and deployment 0)."""
    listing = list(machines)
    clusters = {cluster_group(m["cluster"]) for m in listing}
    deployments = {deployment_group(m["set"]) for m in listing if m.get("role") == naming.ROLE_NODE and m.get("set")}
    return sorted(clusters & deployments)


# --- how a machine is reached --------------------------------------------------------------

class Bastion(NamedTuple):
    """The machine to jump through: its public IP and its instance id (its host key's alias)."""
    address: str
    instance_id: str


def jump_host(machines: Iterable[Machine]) -> Optional[Bastion]:
    """The cluster's bastion (the lowest instance id of several); None when no bastion is
    pending or running with a public IP: a stopped one cannot be jumped through."""
    for machine in sorted(machines, key=lambda m: str(m["instance_id"])):
        if is_bastion(machine) and machine.get("state") in UP_STATES and machine.get("public_ip"):
            return Bastion(str(machine["public_ip"]), str(machine["instance_id"]))
    return None


def bastion_address(machines: Iterable[Machine]) -> Optional[str]:
    """The public IP of the cluster's bastion (jump_host), or None."""
    bastion = jump_host(machines)
    return bastion.address if bastion else None


def connect_address(machine: Machine, proxy_jump: bool = True) -> Optional[str]:
    """The address SSH connects to: the bastion's public IP and, from outside the VPC
    (``proxy_jump``), any machine's own public IP; otherwise the private IP."""
    if machine.get("public_ip") and (proxy_jump or is_bastion(machine)):
        return str(machine["public_ip"])
    private: Optional[str] = machine.get("private_ip")
    return private


def needs_hop(machine: Machine, bastion: Optional[Bastion], proxy_jump: bool = True) -> bool:
    """Whether SSH to the machine goes through the bastion: from outside the VPC, to a machine
    without a public IP of its own, when there is a bastion to jump through."""
    return bool(proxy_jump and bastion and not is_bastion(machine) and not machine.get("public_ip"))


# --- host keys ---------------------------------------------------------------------------------

class HostKeys(NamedTuple):
    """Where ssh pins the machines' host keys (an absolute path) and how strictly it checks them."""
    known_hosts_file: str
    checking: str = ACCEPT_NEW

    @property
    def managed(self) -> bool:
        """Whether the file is the cluster's own (made before the first contact, removed with the
        cluster) rather than one the user pinned keys in."""
        return self.checking == ACCEPT_NEW


def _controller_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def cluster_known_hosts(cluster_name: str, directory: str) -> str:
    """The cluster's own known_hosts in ``directory``: ``<directory>/<cluster>.known_hosts``."""
    return os.path.join(_controller_path(directory or "."), cluster_name + KNOWN_HOSTS_SUFFIX)


def host_keys(cluster_name: str, kubeconfig_path: Optional[str] = None, known_hosts_file: Optional[str] = None,
              directory: Optional[str] = None) -> HostKeys:
    """The host key policy of a cluster's machines.

    ``known_hosts_file`` (the user's own, ``cluster.ssh_known_hosts_file``) is checked strictly;
    otherwise the cluster's own file in ``directory``, by default the directory of
    ``kubeconfig_path`` (the spec's default kubeconfig path when None), pins new keys.
    ``~`` is expanded here, on the controller.
    """
    if known_hosts_file:
        return HostKeys(_controller_path(known_hosts_file), STRICT)
    if directory is None:
        directory = os.path.dirname(os.path.expanduser(kubeconfig_path or default_kubeconfig_path(cluster_name)))
    return HostKeys(cluster_known_hosts(cluster_name, directory), ACCEPT_NEW)


def prepare_known_hosts(keys: HostKeys) -> None:
    """Make the cluster's own known_hosts (directory 0700, file 0600) when missing, so that ssh can
    pin keys in it (it makes neither); a file of the user's own is left as it is."""
    if not keys.managed or os.path.exists(keys.known_hosts_file):
        return
    directory = os.path.dirname(keys.known_hosts_file)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.close(os.open(keys.known_hosts_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))


def ssh_percent(value: str) -> str:
    """A literal for an ssh argument that expands %-tokens (file names, ProxyCommand)."""
    return value.replace("%", "%%")


def ssh_config_value(value: str) -> str:
    """A value for ``-o Option=value``: %-tokens escaped, double-quoted when it holds anything but
    plain path characters (ssh splits unquoted values at whitespace, as in UserKnownHostsFile)."""
    value = ssh_percent(value)
    if _SSH_PLAIN.match(value):
        return value
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def host_key_options(alias: str, keys: HostKeys) -> List[str]:
    """ssh arguments that check the host's key against ``keys`` under ``alias`` (its instance id)."""
    return ["-o", "StrictHostKeyChecking=" + keys.checking, "-o", "UserKnownHostsFile=" + ssh_config_value(keys.known_hosts_file),
            "-o", "HostKeyAlias=" + alias]


def ssh_args(arguments: Sequence[str]) -> str:
    """``ansible_ssh_common_args`` for ``arguments``, which Ansible splits as a shell would."""
    return " ".join(shlex.quote(argument) for argument in arguments)


def bastion_hop(bastion_user: str, bastion: Bastion, private_key_file: Optional[str] = None,
                keys: Optional[HostKeys] = None) -> List[str]:
    """ssh arguments that jump through the bastion.

    A ``ProxyCommand`` running ``ssh -W %h:%p`` to the bastion, which gets the host key options
    (under the bastion's instance id) and the key file as arguments of its own: ``ProxyJump``
    would pass on neither. ssh runs the command with ``/bin/sh -c``, after expanding %-tokens.
    The jump logs errors only (``LogLevel=ERROR``): no notice for a newly pinned key, while ``-q``
    would silence a refused one too.
    """
    jump = ["-o", "LogLevel=ERROR"] + (host_key_options(bastion.instance_id, keys) if keys else [])
    if private_key_file:
        jump += ["-i", ssh_percent(os.path.expanduser(private_key_file))]
    jump.append("%s@%s" % (bastion_user, bastion.address))
    return ["-o", "ProxyCommand=ssh -W %h:%p " + ssh_percent(" ".join(shlex.quote(argument) for argument in jump))]


def host_vars(machine: Machine, bastion: Optional[Bastion], proxy_jump: bool = True, bastion_user: str = DEFAULT_USER,
              user: Optional[str] = None, private_key_file: Optional[str] = None, keys: Optional[HostKeys] = None) -> HostVars:
    """The host variables of one machine (see the module's docstring); without ``keys`` host keys
    are left to the ssh configuration."""
    variables: HostVars = {"ansible_host": connect_address(machine, proxy_jump)}
    if user:
        variables["ansible_user"] = user
    if private_key_file:
        variables["ansible_ssh_private_key_file"] = private_key_file
    arguments = host_key_options(str(machine["instance_id"]), keys) if keys else []
    if bastion and needs_hop(machine, bastion, proxy_jump):
        arguments += bastion_hop(bastion_user, bastion, private_key_file, keys)
    if arguments:
        variables["ansible_ssh_common_args"] = ssh_args(arguments)
    variables.update({
        "kubecluster_node_name": machine.get("private_dns_name"),
        "kubecluster_instance_id": machine["instance_id"],
        "kubecluster_machine_set": machine.get("set"),
        "kubecluster_availability_zone": machine.get("availability_zone"),
        "kubecluster_cluster_name": machine["cluster"],
    })
    return variables


# --- one cluster's hosts, for add_host ------------------------------------------------------

def refreshed(machines: Iterable[Machine], current: Iterable[Machine]) -> List[Dict[str, Any]]:
    """``machines`` with the state and addresses of the same instances in ``current``, a later read.

    Machines launched without waiting get their public IPs after the launch returned; a read
    after the wait has them.
    """
    now = {m["instance_id"]: m for m in current}
    fresh = []
    for machine in machines:
        later = now.get(machine["instance_id"])
        fresh.append(dict(machine, **{key: later.get(key) for key in FRESH_FIELDS}) if later else dict(machine))
    return fresh


def node_hosts(machines: Sequence[Machine], cluster_name: str, current: Sequence[Machine] = (), user: str = DEFAULT_USER,
               bastion_user: Optional[str] = None, private_key_file: Optional[str] = None,
               kubeconfig_path: Optional[str] = None, known_hosts_file: Optional[str] = None) -> List[Dict[str, Any]]:
    """The hosts of one cluster's machines as ``[{name, groups, vars}]``, in the machines' order.

    ``current`` is a later read of the cluster's machines (cluster_info's); the bastion is taken
    from it when given. ``user`` logs in to every machine and, unless ``bastion_user`` says
    otherwise, to the bastion for the jump. Host keys are pinned as host_keys() decides from
    ``kubeconfig_path`` and ``known_hosts_file``. Hosts are named by the machines' names.
    """
    keys = host_keys(cluster_name, kubeconfig_path, known_hosts_file)
    fresh = [dict(machine, cluster=cluster_name) for machine in refreshed(machines, current)]
    bastion = jump_host([dict(m, cluster=cluster_name) for m in current] or fresh)
    hosts = [m for m in fresh if listed(m)]
    clashes = group_clashes(hosts)
    if clashes:
        raise NodeContractError("group %s would hold both cluster %s and the machine deployment of that name; "
                                "rename the cluster or the machine deployment" % (", ".join(clashes), cluster_name))
    return [{"name": machine["name"], "groups": member_groups(machine),
             "vars": host_vars(machine, bastion, True, bastion_user or user, user, private_key_file, keys)}
            for machine in hosts]
