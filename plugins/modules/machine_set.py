#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: machine_set
version_added: 1.0.0
short_description: Launch, scale, replace and terminate the EC2 instances of one machine set of a cluster
description:
  - A machine set is the EC2 instances of one named set of a cluster spec, C(control-plane), C(bastion),
    or the name of one of the spec's C(machine_deployments), as Cluster API's KubeadmControlPlane and
    MachineDeployments with CAPA's AWSMachines make them.
  - The set is brought to its replicas (C(control_plane.replicas), a machine deployment's C(replicas),
    or 1 for an enabled bastion; O(replicas) overrides them). New machines are spread over the set's
    availability zones, each to the zone with the fewest machines of the set, in that zone's private subnet
    (the bastion in the first zone's public subnet with a public IP; every machine in a public subnet with a
    public IP when the cluster has no private subnets).
  - Machines beyond the replicas are returned in RV(surplus), in the order Cluster API removes them, and left
    running so that a playbook can drain them and remove them one by one (etcd member first for the control
    plane); O(terminate_surplus=true) terminates them in the same run. A machine deployment's order is outdated
    machines first, then its C(deletion_order) (C(random), a stable pseudo-random order from the cluster name and
    instance id; C(newest) or C(oldest) by launch time). The control plane's is KubeadmControlPlane's, outdated
    first, from the zone holding the most machines, the oldest there. The bastion, no Kubernetes node, always
    has its surplus terminated.
  - The AMI is the set's C(ami_id) or, as CAPA looks it up, the newest image named after
    C(cluster.image_lookup.name_format) for the Kubernetes version and the instance type's architecture; it is
    resolved only when a machine is launched. The bastion uses the newest Canonical Ubuntu 24.04 image unless
    C(network.bastion.ami_id) is set.
  - Machines carry CAPA's tags plus C(kubecluster.aws/machine-set), C(kubecluster.aws/kubernetes-version) and
    C(kubecluster.aws/spec-hash), a hash of instance type, image source (the C(ami_id), else the lookup's owner and
    name pattern, not the image it found, so a newly published image does not by itself make machines outdated),
    Kubernetes version, root volume, instance profile, IMDS options and SSH key. A machine whose hash differs from
    the spec's is reported as outdated and left running; replace it with O(remove_machines), or after upgrading it
    in place record it as up to date with O(mark_updated). Machines tagged by earlier versions of the collection,
    whose hash holds the AMI id, count as up to date while that hash matches the spec with the C(ami_id), or
    with a looked-up image the AMI they run.
  - Each machine holds a slot of its set, 0 to replicas-1, in the tag C(kubecluster.aws/slot); missing slots are
    launched lowest first. Machines launched before slots existed keep running and are counted in the lowest free
    slots, in name order, without being retagged.
  - Launches are deterministic, so a retry or a second run racing this one cannot add machines. The missing
    machines of one zone are launched together, with one RunInstances per zone (MinCount = MaxCount, so EC2
    launches all of them or none; a very large batch is split so that its batch tag fits in 256 characters).
    The machine of slot C(s) launched at attempt C(k) is named C(<cluster>-<set>-<suffix>), where the suffix
    (5 base36 characters) comes from sha256(C(<cluster>/<set>/<s>/<k>)); the batch's C(ClientToken) is
    sha256(C(<cluster>/<set>/<zone>/<slots>/<k>)). Attempt 0 is tried first; the next attempt is used when a
    machine the run read already has one of the batch's names, or EC2 answers the token with a machine of an
    earlier launch (known to the run, no longer pending or running, or launched well before the run's read) or
    with C(IdempotentParameterMismatch). A replaced machine so gets a new name and a new instance, and two runs
    filling the same slots get the same ones.
  - A single machine carries all its tags from launch. Several machines launched together carry the tags they
    share (on instances, root volumes and network interfaces) and C(kubecluster.aws/launch-batch) (their slots in
    launch-index order, then the attempt); right after the launch one CreateTags per instance sets its C(Name)
    and slot tags, on the instance only (its volume and network interface keep the shared tags). Should a run
    stop in between, the next run tells these machines' slots and names from the batch tag and their launch
    index, launches nothing for them and tags them (plan action C(ec2 instance name)).
  - Instance metadata options that drift from the spec are fixed in place.
  - The subnets and security groups come from M(kubecluster.aws.cluster_network); only instances tagged as
    owned by the cluster and of this set are ever modified or terminated. In check mode a missing network is
    planned into with C((known after apply)) ids, as a create playbook's check mode would create it.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  set:
    description:
      - The machine set, C(control-plane), C(bastion) or the name of a machine deployment of O(cluster).
      - With O(state=present) a name the spec does not have fails before any AWS call. With O(state=absent)
        any name is accepted, so the machines of a set since dropped from the spec can be terminated.
    type: str
    required: true
  state:
    description:
      - V(present) brings the set to its replicas; V(absent) terminates every machine of the set.
    type: str
    choices: [present, absent]
    default: present
  remove_machines:
    description:
      - Machines of this set to terminate, by instance id or C(Name) tag. The set is then topped back up to its
        replicas in the same run, so naming outdated machines here replaces them (a rolling replace).
      - A name that is not a machine of this set fails before any write; a machine already terminated is skipped.
      - Ignored when O(state=absent).
    type: list
    elements: str
    default: []
  replicas:
    description:
      - How many machines the set is brought to, instead of the spec's count; for example one more than the
        spec's to launch a replacement before an old machine goes (a surge), as rolling upgrades do.
      - New machines take the lowest free slots, up to O(replicas)-1. The bastion takes at most 1.
        Ignored when O(state=absent).
    type: int
  terminate_surplus:
    description:
      - Terminate the machines beyond the replicas (RV(surplus)) in this run.
      - With V(false) they are only reported, so that a playbook can drain them, remove the control plane's etcd
        members and delete their nodes first, then terminate them with O(remove_machines) (the bastion's surplus
        is always terminated).
    type: bool
    default: false
  mark_updated:
    description:
      - Machines of this set, by instance id or C(Name) tag, whose spec-hash and Kubernetes-version tags are set to the
        spec's, in one CreateTags call, after they were upgraded in place; they are then no longer outdated.
      - A name that is not a machine of this set fails before any write; machines already tagged so, and machines
        already terminated, are skipped. Ignored when O(state=absent).
    type: list
    elements: str
    default: []
  user_data:
    description:
      - User data for the machines this run launches (for example the cloud-init that joins them to the cluster).
      - It does not change existing machines and is not part of the spec hash. At most 16384 bytes.
    type: str
  wait:
    description:
      - Wait until launched machines are running and terminated machines are gone.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for each batch of machines when O(wait=true).
    type: int
    default: 600
attributes:
  check_mode:
    description: Can run in check_mode and return the planned machines and actions without changing anything.
    support: full
  diff_mode:
    description: Returns the rendered plan under --diff.
    support: full
notes:
  - One DescribeInstances per run; DescribeImages, DescribeSubnets and DescribeSecurityGroups (and DescribeInstanceTypes
    for the image lookup) only when launching. One RunInstances per zone the set launches in, with a ClientToken
    derived from cluster, set, zone, slots and attempt; then one CreateTags per machine when a zone gets several.
  - Use M(kubecluster.aws.cluster_lease) (the create and delete playbooks do) so that only one run changes a cluster
    at a time; the deterministic tokens are the second line of defence.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Bring the control plane to its replicas
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: control-plane
    user_data: "{{ lookup('file', 'control-plane-cloud-init.yml') }}"
  register: control_plane

- name: Scale the workers of md-0 to the spec's replicas
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0

- name: Replace the outdated workers of md-0 (rolling replace)
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
    remove_machines: "{{ workers.outdated }}"

- name: Launch a replacement first (surge), while the old machines keep serving
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
    replicas: "{{ cluster.machine_deployments[0].replicas + 1 }}"

- name: List the workers to drain before md-0 shrinks to the spec's replicas
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
  register: workers

- name: Terminate one surplus worker once it is drained and its node deleted
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
    remove_machines:
      - "{{ workers.surplus[0].instance_id }}"

- name: Record machines upgraded in place as up to date
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
    mark_updated: "{{ workers.machines | map(attribute='name') | list }}"

- name: Show what scaling md-0 would do, without doing it
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: md-0
  check_mode: true
  diff: true

- name: Terminate the bastion
  kubecluster.aws.machine_set:
    cluster: "{{ cluster }}"
    set: bastion
    state: absent
"""

RETURN = r"""
machines:
  description:
    - The machines of the set that exist after the run, sorted by name. In check mode, the planned ones, whose
      ids and addresses read C((known after apply)).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    name:
      description: The C(Name) tag, C(<cluster>-<set>-<5 base36 characters from the slot and attempt>).
      type: str
      sample: capi-example-md-0-x7kq2
    set:
      description: The machine set.
      type: str
      sample: md-0
    role:
      description: CAPA's role tag, C(control-plane), C(node) or C(bastion).
      type: str
      sample: node
    kubernetes_version:
      description:
        - The Kubernetes version the machine was launched for or, after O(mark_updated), upgraded to in place
          (tag C(kubecluster.aws/kubernetes-version)).
        - Null for the bastion and for machines launched before the collection tagged the version.
      type: str
      sample: v1.31.4
    state:
      description: The instance state.
      type: str
      sample: running
    availability_zone:
      description: The instance's availability zone.
      type: str
      sample: ap-northeast-2a
    subnet_id:
      description: The instance's subnet.
      type: str
      sample: subnet-0123456789abcdef0
    private_ip:
      description: The private IPv4 address.
      type: str
      sample: 10.0.64.12
    private_dns_name:
      description: The private DNS name, which kubeadm uses as the node name.
      type: str
      sample: ip-10-0-64-12.ap-northeast-2.compute.internal
    public_ip:
      description: The public IPv4 address, or null when the machine has none.
      type: str
      sample: 203.0.113.10
    image_id:
      description: The AMI the instance was launched from.
      type: str
      sample: ami-0123456789abcdef0
    instance_type:
      description: The instance type.
      type: str
      sample: t3.large
    outdated:
      description: Whether the machine was launched from settings the spec no longer has (its spec hash differs).
      type: bool
      sample: false
    launch_time:
      description: When the instance was launched, ISO 8601.
      type: str
      sample: "2025-01-31T08:15:00+00:00"
surplus:
  description:
    - The machines beyond the replicas, in the order they go (see the description), as in RV(machines).
      Still running and listed in RV(machines) unless O(terminate_surplus=true), which terminates them
      (their ids are then in RV(terminated)).
  returned: always
  type: list
  elements: dict
  sample:
    - instance_id: i-0123456789abcdef0
      name: capi-example-md-0-xkqzt
      set: md-0
      role: node
      outdated: true
      availability_zone: ap-northeast-2a
      private_dns_name: ip-10-0-64-12.ap-northeast-2.compute.internal
outdated:
  description: Names of the machines that remain and are outdated; pass them in O(remove_machines) to replace them.
  returned: always
  type: list
  elements: str
  sample: [capi-example-md-0-xkqzt]
launched:
  description: Names of the machines launched (in check mode, that would be launched).
  returned: always
  type: list
  elements: str
  sample: [capi-example-md-0-abcde]
terminated:
  description: Ids of the instances terminated (in check mode, that would be terminated).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
plan:
  description: The planned actions, in order; applied unless in check mode.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: create, update, delete or wait.
      type: str
      sample: create
    resource:
      description: The kind of resource.
      type: str
      sample: ec2 instances
    name:
      description: The resources' names.
      type: str
      sample: capi-example-md-0-abcde, capi-example-md-0-fghij
    detail:
      description: What the action does.
      type: str
      sample: 2 x t3.large, ami-0123456789abcdef0 (capa-ami-ubuntu-24.04-v1.31.4-1736000000), ap-northeast-2a/subnet-0a1, ap-northeast-2b/subnet-0b2
"""

from typing import Any, Dict

from ansible_collections.kubecluster.aws.plugins.module_utils import instances
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import machine_set_spec

# EC2's limit on user data before base64 encoding.
MAX_USER_DATA = 16384


def check_options(module: Any, spec: Dict[str, Any]) -> None:
    """Fail, before any AWS call, on a set the spec does not have or options EC2 would refuse."""
    params = module.params
    if params["state"] == "present":
        try:
            machine_set_spec(spec, params["set"])
        except SpecError as error:
            module.fail_json(msg=error.message, errors=error.errors)
    elif not params["set"]:
        module.fail_json(msg="set: must name the machine set to terminate, e.g. md-0")
    if params["user_data"] and len(params["user_data"].encode("utf-8")) > MAX_USER_DATA:
        module.fail_json(msg="user_data: %d bytes is over EC2's limit of %d; gzip it or fetch the rest at boot"
                         % (len(params["user_data"].encode("utf-8")), MAX_USER_DATA))
    if params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout: must be a number of seconds of at least 1, not %d" % params["wait_timeout"])
    if params["replicas"] is not None and params["replicas"] < 0:
        module.fail_json(msg="replicas: %d is not a machine count; use 0 or more, or leave it out to use the spec's replicas"
                         % params["replicas"])
    if params["replicas"] is not None and params["replicas"] > 1 and params["set"] == "bastion":
        module.fail_json(msg="replicas: the bastion is one machine or none (cluster.network.bastion.enabled), not %d"
                         % params["replicas"])


def main() -> None:
    argument_spec = dict(
        set=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        remove_machines=dict(type="list", elements="str", default=[]),
        replicas=dict(type="int"),
        terminate_surplus=dict(type="bool", default=False),
        mark_updated=dict(type="list", elements="str", default=[]),
        user_data=dict(type="str", no_log=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
    )
    module = runner.cluster_module(argument_spec)
    params = module.params
    spec = runner.load_for_state(module)
    check_options(module, spec)
    ctx = Context.from_module(module, spec["region"], wait=params["wait"], wait_timeout=params["wait_timeout"])
    if params["state"] == "absent":
        runner.reconcile(module, lambda: instances.plan_absent(ctx, spec, params["set"]))
    else:
        spec = runner.resolve_zones(module, spec, ctx.ec2)
        runner.reconcile(module, lambda: instances.plan_present(
            ctx, spec, params["set"], params["remove_machines"], params["user_data"], allow_missing_network=module.check_mode,
            replicas=params["replicas"], terminate_surplus=params["terminate_surplus"], mark_updated=params["mark_updated"]))


if __name__ == "__main__":
    main()
