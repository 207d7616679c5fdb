# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: machines
short_description: A cluster's EC2 machines, in the groups the kubeadm playbooks use
version_added: 1.0.0
description:
  - Lists the EC2 machines of kubecluster.aws clusters (and of clusters made by Cluster API's AWS
    provider, which tags machines the same way) in the groups C(playbooks/nodes.yml) and kubespray
    use, so that the node plays can run from an inventory source - for example an AWX / Automation
    Controller inventory source - instead of after the C(infra) play of C(create_cluster.yml).
  - A machine belongs to cluster C(<name>) when it carries the tag
    C(sigs.k8s.io/cluster-api-provider-aws/cluster/<name>=owned). Its tag
    C(sigs.k8s.io/cluster-api-provider-aws/role) (V(bastion), V(control-plane) or V(node)) gives its
    group and its tag C(kubecluster.aws/machine-set) its machine deployment. Only pending and running
    machines are listed, unless O(include_stopped=true).
  - Reads with one paginated C(DescribeInstances) call per region, whatever the number of clusters and machines.
  - Groups - C(bastion); C(kube_control_plane); C(kube_node) with one child C(kubecluster_md_<deployment>)
    per machine deployment; C(k8s_cluster) with the children C(kube_control_plane) and C(kube_node); and
    C(kubecluster_<cluster>) with every machine of one cluster. In group names every character other
    than a letter, a digit or C(_) becomes C(_) (C(md-0) gives C(kubecluster_md_md_0)).
  - The kubespray-style groups (C(bastion), C(kube_control_plane), C(kube_node), C(k8s_cluster),
    C(kubecluster_md_*)) are meant for B(one cluster per inventory source). When a source lists
    several clusters they hold the machines of all of them; use one source per cluster, or target
    one cluster with an intersection such as C(kubecluster_capi_example:&kube_control_plane).
  - Host variables - C(ansible_host) (the private IP; the bastion's public IP; see O(proxy_jump)),
    C(ansible_ssh_common_args) (host key pinning, see O(known_hosts_dir), and the hop through the bastion),
    C(kubecluster_node_name) (the EC2 private DNS name, which is the kubeadm node name),
    C(kubecluster_instance_id), C(kubecluster_machine_set), C(kubecluster_availability_zone),
    C(kubecluster_cluster_name), C(kubecluster_role) and C(kubecluster_region).
  - O(compose), O(groups) and O(keyed_groups) see those variables plus the instance's
    C(DescribeInstances) data, snake-cased as P(amazon.aws.aws_ec2#inventory) gives it (for example
    C(instance_type), C(placement.region), C(tags), C(private_ip_address)).
  - Credentials, O(endpoint_url), O(assume_role_arn) and caching work as with P(amazon.aws.aws_ec2#inventory);
    without O(endpoint_url) the AWS SDK also honours C(AWS_ENDPOINT_URL).
  - The inventory file must end in C(machines.yml) or C(machines.yaml), for example C(capi-example.machines.yml).
author:
  - kubecluster.aws developers (@kubecluster)
options:
  plugin:
    description: Marks the file as an inventory source of this plugin.
    required: true
    choices: [kubecluster.aws.machines]
    type: str
  clusters:
    description:
      - Names of the clusters whose machines are listed.
      - Empty (the default) lists the machines of every cluster in the region, found by the key
        prefix C(sigs.k8s.io/cluster-api-provider-aws/cluster/) of the ownership tag.
    type: list
    elements: str
    default: []
  regions:
    description:
      - The regions to read.
      - Empty (the default) reads the one region of O(region), C(AWS_REGION), C(AWS_DEFAULT_REGION)
        or the profile; unlike P(amazon.aws.aws_ec2#inventory), never every region.
    type: list
    elements: str
    default: []
  hostnames:
    description:
      - What names the hosts.
      - V(private_dns_name) - the EC2 private DNS name, for example C(ip-10-0-64-12.ap-northeast-2.compute.internal);
        it is also the kubeadm node name, so hosts and Kubernetes nodes have the same names.
      - V(instance_id) - the EC2 instance id.
      - V(name_tag) - the C(Name) tag, C(<cluster>-<set>-<suffix>).
      - A machine without that value is named by its instance id, as is one whose name another machine of the source already has.
    type: str
    choices: [private_dns_name, instance_id, name_tag]
    default: private_dns_name
  include_stopped:
    description:
      - Also list stopping and stopped machines.
      - A stopped machine has no public IP unless an Elastic IP is attached, and a stopped bastion is never jumped through.
    type: bool
    default: false
  proxy_jump:
    description:
      - When V(true), the controller is taken to be outside the cluster's VPC. A machine without a
        public IP in a cluster whose bastion has a public IP is reached through the bastion -
        C(ansible_ssh_common_args) holds a C(ProxyCommand) running C(ssh -W %h:%p <bastion_user>@<bastion public IP>)
        with the same host key options as every connection (a C(ProxyJump) would not pass them
        on to the jump); a machine with a public IP gets it as C(ansible_host) and is reached directly.
      - Set V(false) when the controller reaches the private network itself (an execution node in
        the VPC, a VPN) or your own SSH configuration or AWS Systems Manager does the jump;
        there is no hop and C(ansible_host) is the private IP of every machine but the bastion.
      - The jump to the bastion uses your ssh configuration and agent for the bastion's key, not
        C(ansible_ssh_private_key_file); when the key is only in a file, load it into the agent or
        name it in your ssh configuration.
    type: bool
    default: true
  bastion_user:
    description:
      - The SSH user on the bastion for the jump.
      - V(ubuntu) is the user of the Ubuntu images Cluster API's AWS provider and kubecluster.aws launch the bastion from.
    type: str
    default: ubuntu
  known_hosts_dir:
    description:
      - Where each cluster's own known_hosts file, C(<cluster>.known_hosts), is kept. Every
        connection (the jump's included) gets C(-o StrictHostKeyChecking=accept-new
        -o UserKnownHostsFile=<file> -o HostKeyAlias=<instance id>) - a new machine's key is
        pinned on first contact and a pinned key that changes is refused - and keys are pinned by
        instance id, which EC2 never reuses, so a new machine at a recycled private IP is a new host.
      - The default is the directory of C(create_cluster.yml)'s default kubeconfig path, so both
        use the same file; set the directory of your C(cluster.kubeconfig_path) when you changed it.
      - The directory (mode 0700) and the file (mode 0600) are made when missing.
      - Ansible's own C(host_key_checking=false) (AWX and Automation Controller jobs run with it
        off unless configured otherwise) makes Ansible put C(-o StrictHostKeyChecking=no) ahead of
        these options and ssh takes the first; the machines' keys are then still recorded but not
        checked (the jump's are). Set the host variable C(ansible_host_key_checking=true) to
        have them checked.
    type: path
    default: ~/.kube
  known_hosts_file:
    description:
      - A known_hosts file of your own in which you pinned the machines' host keys, under their
        instance ids (lines C(<instance id> <key type> <key>)), for example from their console
        output. ssh checks them strictly (C(StrictHostKeyChecking=yes)) and never writes the file.
      - Takes the place of O(known_hosts_dir) for every cluster of the source.
    type: path
extends_documentation_fragment:
  - inventory_cache
  - constructed
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
  - amazon.aws.assume_role.plugins
notes:
  - Only reads; makes one C(DescribeInstances) call per region (plus C(AssumeRole) with O(assume_role_arn)).
  - The IAM permission needed is C(ec2:DescribeInstances).
"""

EXAMPLES = r"""
# capi-example.machines.yml: the machines of the cluster capi-example, for playbooks/nodes.yml
# ansible-inventory -i capi-example.machines.yml --graph
plugin: kubecluster.aws.machines
regions:
  - ap-northeast-2
clusters:
  - capi-example
compose:
  # the login user of the Ubuntu images kubecluster.aws launches
  ansible_user: "'ubuntu'"

---

# Every cluster of two regions, named by their Name tags, grouped by instance type and region;
# each cluster's machines are in kubecluster_<cluster>
plugin: kubecluster.aws.machines
regions:
  - ap-northeast-2
  - eu-west-1
hostnames: name_tag
keyed_groups:
  - key: instance_type
    prefix: instance_type
  - key: kubecluster_region
    prefix: aws_region

---

# From an AWX execution node inside the VPC: no jump through the bastion, assumed role, cached for 5 minutes
plugin: kubecluster.aws.machines
regions:
  - ap-northeast-2
clusters:
  - capi-example
proxy_jump: false
assume_role_arn: arn:aws:iam::123456789012:role/kubecluster-inventory
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/kubecluster-inventory-cache
cache_timeout: 300
"""

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_instances
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.plugin_utils.inventory import AWSInventoryBase

from ansible_collections.kubecluster.aws.plugins.module_utils import hosts
from ansible_collections.kubecluster.aws.plugins.module_utils import machines as machine_views
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import cluster_name_error

ROLES = (naming.ROLE_BASTION, naming.ROLE_CONTROL_PLANE, naming.ROLE_NODE)
# Machines made by Cluster API itself have no machine-set tag; their role names their set.
ROLE_SETS = {naming.ROLE_BASTION: naming.SET_BASTION, naming.ROLE_CONTROL_PLANE: naming.SET_CONTROL_PLANE}
# What the inventory keeps of the one machine view (machines.py), cached as it is.
VIEW_KEYS = ("role", "instance_id", "private_dns_name", "private_ip", "public_ip", "availability_zone", "state")
HOSTNAME_KEYS = {"private_dns_name": "private_dns_name", "instance_id": "instance_id", "name_tag": "name"}

Machine = Dict[str, Any]


def machine_filters(clusters: Sequence[str], include_stopped: bool) -> List[Dict[str, Any]]:
    """DescribeInstances filters for the machines of ``clusters`` (every cluster when empty).

    EC2 ANDs filter names and ORs the values of one name, so several clusters' ownership tags
    go in one ``tag-key`` filter (their value is checked on the result) and no cluster at all
    is a wildcard on the ownership tag's key prefix.
    """
    filters: List[Dict[str, Any]]
    if len(clusters) == 1:
        filters = naming.owned_filters(clusters[0])
    else:
        keys = [naming.owner_tag(name) for name in clusters] or [naming.OWNER_TAG_PREFIX + "*"]
        filters = [{"Name": "tag-key", "Values": keys}]
    states = hosts.UP_STATES + (hosts.STOPPED_STATES if include_stopped else ())
    filters.append({"Name": "tag:" + naming.ROLE_TAG, "Values": list(ROLES)})
    filters.append({"Name": "instance-state-name", "Values": list(states)})
    return filters


def owning_cluster(tags: Dict[str, str], clusters: Sequence[str]) -> Optional[str]:
    """The cluster whose ownership tag is ``owned`` on the instance (one of ``clusters`` when given), or None."""
    owners = sorted(naming.cluster_name_from_owner_tag(key) or "" for key, value in tags.items() if value == naming.OWNED)
    owners = [name for name in owners if name and (not clusters or name in clusters)]
    return owners[0] if owners else None


def machine_view(instance: Dict[str, Any], region: str, clusters: Sequence[str]) -> Optional[Machine]:
    """What the inventory needs of one instance, or None when it is not a machine of ``clusters``.

    The machine view of machines.py, with the cluster and region the node contract (hosts.py)
    needs; ``ec2`` is the instance's data as amazon.aws.aws_ec2 hands it to compose and keyed_groups.
    """
    tags = machine_views.tags_of(instance)
    cluster = owning_cluster(tags, clusters)
    role = tags.get(naming.ROLE_TAG)
    if cluster is None or role not in ROLES:
        return None
    ec2 = camel_dict_to_snake_dict(instance, ignore_list=["Tags"])
    ec2["tags"] = tags
    ec2.setdefault("placement", {})["region"] = region
    view = machine_views.machine_view(instance)
    machine = {key: view[key] for key in VIEW_KEYS}
    machine.update(cluster=cluster, region=region, set=view["set"] or ROLE_SETS.get(role), name=tags.get("Name"), ec2=ec2)
    return machine


def bastions(machines: Iterable[Machine]) -> Dict[str, Optional[hosts.Bastion]]:
    """{cluster: its bastion to jump through, or None}, as the node contract picks it."""
    by_cluster: Dict[str, List[Machine]] = {}
    for machine in machines:
        by_cluster.setdefault(machine["cluster"], []).append(machine)
    return {cluster: hosts.jump_host(members) for cluster, members in by_cluster.items()}


def host_vars(machine: Machine, bastion: Optional[hosts.Bastion], proxy_jump: bool, bastion_user: str,
              keys: Optional[hosts.HostKeys] = None) -> Dict[str, Any]:
    """The node contract's host variables, and the role and region, which tell machines of several
    roles and regions apart in one source."""
    variables = hosts.host_vars(machine, bastion, proxy_jump, bastion_user, keys=keys)
    variables.update(kubecluster_role=machine["role"], kubecluster_region=machine["region"])
    return variables


class InventoryModule(AWSInventoryBase):  # type: ignore[misc]  # amazon.aws is read as untyped
    NAME = "kubecluster.aws.machines"
    INVENTORY_FILE_SUFFIXES = ("machines.yml", "machines.yaml")

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache=cache)
        clusters = self._clusters()
        regions = self._regions()
        cached, machines = self.get_cached_result(path, cache)
        if not cached:
            machines = [machine for region in regions for machine in self._read_machines(region, clusters)]
        self._populate(machines)
        self.update_cached_result(path, cache, machines)

    def _clusters(self) -> List[str]:
        clusters = self.get_option("clusters") or []
        errors = [error for error in (cluster_name_error(name) for name in clusters) if error]
        if errors:
            self.fail_aws("clusters: %s" % "; ".join(errors))
        return sorted(set(clusters))

    def _regions(self) -> List[str]:
        regions: List[str] = self.get_option("regions")
        if regions:
            return regions
        if not self.region:
            self.fail_aws("regions: no region to read; list the clusters' region in regions, or set region or AWS_REGION")
        return [self.region]

    def _read_machines(self, region: str, clusters: Sequence[str]) -> List[Machine]:
        ec2 = self.client("ec2", region=region)
        include_stopped = self.get_option("include_stopped")
        try:
            reservations = describe_instances(ec2, Filters=machine_filters(clusters, include_stopped))
        except AnsibleAWSError as error:
            self.fail_aws("Failed to read the machines in %s" % region, exception=error)
        views = (machine_view(instance, region, clusters) for reservation in reservations for instance in reservation["Instances"])
        return [view for view in views if view is not None and hosts.listed(view, include_stopped)]

    def _populate(self, machines: List[Machine]) -> None:
        clashes = hosts.group_clashes(machines)
        if clashes:
            self.fail_aws("clusters: group %s would hold both a cluster and a machine deployment; "
                          "list the cluster in its own inventory source (clusters: [name])" % ", ".join(clashes))
        for group in (hosts.GROUP_BASTION, hosts.GROUP_CONTROL_PLANE, hosts.GROUP_NODE, hosts.GROUP_CLUSTER):
            self.inventory.add_group(group)
        for fixed_child, fixed_parent in hosts.GROUP_PARENTS.items():
            self.inventory.add_child(fixed_parent, fixed_child)
        jumps = bastions(machines)
        keys = {cluster: self._host_keys(cluster) for cluster in jumps}
        for host, machine in self._named(machines):
            for group, parent in hosts.groups(machine):
                self.inventory.add_group(group)
                if parent:
                    self.inventory.add_child(parent, group)
                self.inventory.add_host(host, group=group)
            variables = host_vars(machine, jumps.get(machine["cluster"]), self.get_option("proxy_jump"), self.get_option("bastion_user"),
                                  keys[machine["cluster"]])
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            self._construct(host, dict(machine["ec2"], **variables))

    def _host_keys(self, cluster: str) -> hosts.HostKeys:
        """The cluster's host key policy, its own known_hosts made when missing."""
        keys = hosts.host_keys(cluster, known_hosts_file=self.get_option("known_hosts_file"), directory=self.get_option("known_hosts_dir"))
        try:
            hosts.prepare_known_hosts(keys)
        except OSError as error:
            self.warn("could not make %s (%s); ssh cannot pin the host keys of cluster %s in it" % (keys.known_hosts_file, error, cluster))
        return keys

    def _named(self, machines: Iterable[Machine]) -> List[Tuple[str, Machine]]:
        """(host name, machine) pairs sorted by cluster and host name; a name taken twice falls back to the instance id."""
        key = HOSTNAME_KEYS[self.get_option("hostnames")]
        named = sorted(((m[key] or m["instance_id"], m) for m in machines), key=lambda pair: (pair[1]["cluster"], pair[0], pair[1]["instance_id"]))
        seen = set()
        out = []
        for host, machine in named:
            if host in seen:
                self.warn("host name %s is taken by another machine; listing %s under its instance id" % (host, machine["instance_id"]))
                host = machine["instance_id"]
            seen.add(host)
            out.append((host, machine))
        return out

    def _construct(self, host: str, variables: Dict[str, Any]) -> None:
        """compose, groups and keyed_groups, as amazon.aws.aws_ec2 applies them."""
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
