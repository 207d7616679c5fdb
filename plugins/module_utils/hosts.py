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
- the host variables: ``ansible_host``, ``ansible_ssh_common_args`` (the hop),
  ``kubecluster_node_name`` (the private DNS name, which is the kubeadm node name),
  ``kubecluster_instance_id``, ``kubecluster_machine_set``, ``kubecluster_availability_zone``,
  ``kubecluster_cluster_name``, and ``ansible_user`` and ``ansible_ssh_private_key_file`` when
  the caller names a user and a key file.

The address, for a controller outside the cluster's VPC (the default, and create_cluster.yml's
case):

- the bastion is reached at its public IP;
- a machine with a public IP of its own is reached at it, directly;
- any other machine at its private IP, through the bastion when the cluster has one that is
  pending or running with a public IP (``-o ProxyJump=<user>@<bastion IP>``, or, given a
  private key file, a ``ProxyCommand`` running ``ssh -W %h:%p -i <key file>`` so that the jump
  uses the same key as the node); without such a bastion, directly.

For a controller inside the VPC (an execution node there, a VPN; the inventory's
``proxy_jump: false``) every machine but the bastion is reached at its private IP, with no hop.
"""

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import naming
from .errors import KubeclusterError

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

_IPV4 = re.compile(r"^[0-9.]+$")

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

def bastion_address(machines: Iterable[Machine]) -> Optional[str]:
    """The public IP of the cluster's bastion (the lowest instance id of several); None when no
    bastion is pending or running with a public IP: a stopped one cannot be jumped through."""
    for machine in sorted(machines, key=lambda m: str(m["instance_id"])):
        if is_bastion(machine) and machine.get("state") in UP_STATES and machine.get("public_ip"):
            return str(machine["public_ip"])
    return None


def connect_address(machine: Machine, proxy_jump: bool = True) -> Optional[str]:
    """The address SSH connects to: the bastion's public IP and, from outside the VPC
    (``proxy_jump``), any machine's own public IP; otherwise the private IP."""
    if machine.get("public_ip") and (proxy_jump or is_bastion(machine)):
        return str(machine["public_ip"])
    private: Optional[str] = machine.get("private_ip")
    return private


def needs_hop(machine: Machine, bastion_ip: Optional[str], proxy_jump: bool = True) -> bool:
    """Whether SSH to the machine goes through the bastion: from outside the VPC, to a machine
    without a public IP of its own, when there is a bastion to jump through."""
    return bool(proxy_jump and bastion_ip and not is_bastion(machine) and not machine.get("public_ip"))


def bastion_hop(bastion_user: str, bastion_ip: str, private_key_file: Optional[str] = None) -> str:
    """``ansible_ssh_common_args`` that jump through the bastion.

    ProxyJump uses the ssh configuration and agent for the jump; given a key file, the jump
    runs its own ``ssh -i`` (ProxyCommand), as ProxyJump cannot be given a key.
    """
    if private_key_file:
        return '-o ProxyCommand="ssh -W %%h:%%p -q -i %s %s@%s"' % (private_key_file, bastion_user, bastion_ip)
    return "-o ProxyJump=%s@%s" % (bastion_user, bastion_ip)


def host_vars(machine: Machine, bastion_ip: Optional[str], proxy_jump: bool = True, bastion_user: str = DEFAULT_USER,
              user: Optional[str] = None, private_key_file: Optional[str] = None) -> HostVars:
    """The host variables of one machine (see the module's docstring)."""
    variables: HostVars = {"ansible_host": connect_address(machine, proxy_jump)}
    if user:
        variables["ansible_user"] = user
    if private_key_file:
        variables["ansible_ssh_private_key_file"] = private_key_file
    if bastion_ip and needs_hop(machine, bastion_ip, proxy_jump):
        variables["ansible_ssh_common_args"] = bastion_hop(bastion_user, bastion_ip, private_key_file)
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
               bastion_user: Optional[str] = None, private_key_file: Optional[str] = None) -> List[Dict[str, Any]]:
    """The hosts of one cluster's machines as ``[{name, groups, vars}]``, in the machines' order.

    ``current`` is a later read of the cluster's machines (cluster_info's); the bastion is taken
    from it when given. ``user`` logs in to every machine and, unless ``bastion_user`` says
    otherwise, to the bastion for the jump. Hosts are named by the machines' names.
    """
    fresh = [dict(machine, cluster=cluster_name) for machine in refreshed(machines, current)]
    bastion_ip = bastion_address([dict(m, cluster=cluster_name) for m in current] or fresh)
    hosts = [m for m in fresh if listed(m)]
    clashes = group_clashes(hosts)
    if clashes:
        raise NodeContractError("group %s would hold both cluster %s and the machine deployment of that name; "
                                "rename the cluster or the machine deployment" % (", ".join(clashes), cluster_name))
    return [{"name": machine["name"], "groups": member_groups(machine),
             "vars": host_vars(machine, bastion_ip, True, bastion_user or user, user, private_key_file)}
            for machine in hosts]
