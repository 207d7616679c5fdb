# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: node_hosts
short_description: A cluster's machines as the hosts of the node plays, for add_host
version_added: 1.0.0
description:
  - Turns the machines of one cluster, as M(kubecluster.aws.machine_set) and M(kubecluster.aws.cluster_info)
    return them, into the hosts the node plays run on - the same node contract as the inventory plugin
    P(kubecluster.aws.machines#inventory), so that C(playbooks/nodes.yml) sees the same groups and host
    variables from either.
  - Lists pending and running machines that have a private IP (a machine planned in check mode has none yet).
  - Groups - C(bastion); C(kube_control_plane) and C(k8s_cluster); C(kube_node), C(k8s_cluster) and
    C(kubecluster_md_<deployment>); and C(kubecluster_<cluster>) for every machine. In group names every
    character other than a letter, a digit or C(_) becomes C(_).
  - The address - the bastion's public IP; a machine's own public IP when it has one; else its private IP,
    through the bastion when the cluster has a pending or running bastion with a public IP
    (C(ansible_ssh_common_args) with a C(ProxyCommand) running C(ssh -W %h:%p <user>@<bastion IP>), which
    passes the host key options and O(private_key_file) on to the jump, as C(ProxyJump) would not).
  - Host keys - every connection, the jump's included, gets C(-o StrictHostKeyChecking=accept-new
    -o UserKnownHostsFile=<file> -o HostKeyAlias=<instance id>) in C(ansible_ssh_common_args) - a new
    machine's key is pinned on first contact in the cluster's own known_hosts, C(<directory of
    O(kubeconfig_path)>/<cluster>.known_hosts), and a pinned key that changes is refused. Keys are pinned
    by instance id, which EC2 never reuses, not by IP, which it does. With O(known_hosts_file) that file is
    used instead and checked strictly (C(StrictHostKeyChecking=yes)).
  - The cluster's own known_hosts must exist for ssh to pin keys in it (ssh makes neither the file nor its
    directory); C(create_cluster.yml) makes it, see P(kubecluster.aws.host_keys#filter).
  - Host variables - C(ansible_host), C(ansible_user), C(ansible_ssh_private_key_file) (with O(private_key_file)),
    C(ansible_ssh_common_args) (through the bastion), C(kubecluster_node_name) (the private DNS name, which is
    the kubeadm node name), C(kubecluster_instance_id), C(kubecluster_machine_set),
    C(kubecluster_availability_zone) and C(kubecluster_cluster_name).
  - Fails when the cluster's group would also be a machine deployment's group (cluster C(md-x) with deployment C(x)).
positional: cluster_name
options:
  _input:
    description: The machines, as M(kubecluster.aws.machine_set) returns them in RV(kubecluster.aws.machine_set#module:machines).
    type: list
    elements: dict
    required: true
  cluster_name:
    description: The name of the cluster the machines belong to.
    type: str
    required: true
  current:
    description:
      - A later read of the cluster's machines, RV(kubecluster.aws.cluster_info#module:cluster.machines).
      - Their state and addresses replace those of the same instances in the input (machines launched without
        waiting get their public IPs later), and the bastion to jump through is looked for among them.
    type: list
    elements: dict
    default: []
  user:
    description: The SSH user of every machine (C(ansible_user)), and of the bastion for the jump.
    type: str
    default: ubuntu
  bastion_user:
    description: The SSH user on the bastion for the jump, when it is not O(user).
    type: str
  private_key_file:
    description:
      - The private key of the cluster's key pair (C(cluster.ssh_key_name)), for every machine and the jump.
      - Without it ssh uses your ssh configuration and agent.
    type: path
  kubeconfig_path:
    description:
      - The cluster's C(cluster.kubeconfig_path); its directory holds the cluster's own known_hosts.
      - Unset, the spec's default C(~/.kube/<cluster>.kubeconfig).
    type: path
  known_hosts_file:
    description:
      - The cluster's C(cluster.ssh_known_hosts_file), a known_hosts of your own with the machines' keys
        pinned under their instance ids; checked strictly, never written.
    type: path
"""

EXAMPLES = r"""
- name: Add the machines to the node plays' groups
  ansible.builtin.add_host: "{{ item.vars | combine({'name': item.name, 'groups': item.groups}) }}"
  loop: >-
    {{ kubecluster_machines | kubecluster.aws.node_hosts(kubecluster_spec.cluster.name,
       current=kubecluster_status.cluster.machines, private_key_file=ssh_private_key_file | default(none),
       kubeconfig_path=kubecluster_spec.cluster.kubeconfig_path,
       known_hosts_file=kubecluster_spec.cluster.ssh_known_hosts_file) }}
  loop_control:
    label: "{{ item.name }}"
  changed_when: false
"""

RETURN = r"""
_value:
  description: One host per listed machine, in the input's order.
  type: list
  elements: dict
  contains:
    name:
      description: The host name, the machine's name (its C(Name) tag).
      type: str
      sample: capi-example-md-0-abcde
    groups:
      description: Every group the host is in, parent groups included.
      type: list
      elements: str
      sample: [kubecluster_capi_example, kubecluster_md_md_0, kube_node, k8s_cluster]
    vars:
      description: The host variables.
      type: dict
      sample:
        ansible_host: 10.0.64.12
        ansible_user: ubuntu
        ansible_ssh_common_args: >-
          -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/home/me/.kube/capi-example.known_hosts
          -o HostKeyAlias=i-0123456789abcdef0 -o 'ProxyCommand=ssh -W %h:%p -o LogLevel=ERROR -o StrictHostKeyChecking=accept-new
          -o UserKnownHostsFile=/home/me/.kube/capi-example.known_hosts -o HostKeyAlias=i-0fedcba9876543210
          ubuntu@203.0.113.10'
        kubecluster_node_name: ip-10-0-64-12.ap-northeast-2.compute.internal
        kubecluster_instance_id: i-0123456789abcdef0
        kubecluster_machine_set: md-0
        kubecluster_availability_zone: ap-northeast-2a
        kubecluster_cluster_name: capi-example
"""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.module_utils import hosts
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError


def node_hosts(machines: Sequence[Dict[str, Any]], cluster_name: str, current: Optional[Sequence[Dict[str, Any]]] = None,
               user: str = hosts.DEFAULT_USER, bastion_user: Optional[str] = None,
               private_key_file: Optional[str] = None, kubeconfig_path: Optional[str] = None,
               known_hosts_file: Optional[str] = None) -> List[Dict[str, Any]]:
    """The node contract of hosts.py for one cluster's machines, as ``[{name, groups, vars}]``."""
    if not isinstance(machines, (list, tuple)) or not all(isinstance(m, dict) for m in machines):
        raise AnsibleFilterError("node_hosts expects a list of machines as machine_set returns them, not %r" % (machines,))
    try:
        return hosts.node_hosts(machines, cluster_name, current or (), user or hosts.DEFAULT_USER, bastion_user,
                                private_key_file or None, kubeconfig_path or None, known_hosts_file or None)
    except KubeclusterError as error:
        raise AnsibleFilterError("node_hosts: %s" % error) from None
    except KeyError as error:
        raise AnsibleFilterError("node_hosts: a machine has no %s; pass the machines as machine_set returns them" % error) from None


def host_keys(cluster: Mapping[str, Any]) -> Dict[str, Any]:
    """Where a cluster's host keys are pinned (hosts.host_keys), for the playbooks that make and forget the file."""
    if not isinstance(cluster, Mapping) or not isinstance(cluster.get("name"), str) or not cluster["name"]:
        raise AnsibleFilterError("host_keys expects the cluster spec, a mapping with a name, not %r" % (cluster,))
    keys = hosts.host_keys(cluster["name"], cluster.get("kubeconfig_path") or None, cluster.get("ssh_known_hosts_file") or None)
    return {"path": keys.known_hosts_file, "checking": keys.checking, "managed": keys.managed}


class FilterModule:
    """The node contract's filters."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"node_hosts": node_hosts, "host_keys": host_keys}
