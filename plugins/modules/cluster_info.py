#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cluster_info
short_description: Report what a cluster owns in a region and its Cluster API phase
version_added: 1.0.0
description:
  - Reports everything one cluster, or every cluster, owns in a region - VPC, subnets,
    internet gateway, NAT gateways, Elastic IPs, route tables, security groups, machines
    and the API load balancer - found by the ownership tag
    C(sigs.k8s.io/cluster-api-provider-aws/cluster/<name>=owned), with one read per
    resource type whatever the number of clusters.
  - Gives each cluster a phase, as Cluster API's C(kubectl get cluster -A) does.
  - V(NotFound) - the cluster owns nothing in the region (the IAM stack is account-wide and not looked at), so it does
    not exist, or not yet, as C(clusterctl describe cluster) says of a cluster it does not know.
  - V(Provisioning) - some of the network or the API load balancer is missing or not ready.
  - V(Provisioned) - the VPC is available, with subnets, the control-plane and node security groups, for a
    managed VPC an attached internet gateway, every NAT gateway available, and the API load balancer
    active (a network load balancer forwards nothing while C(provisioning)) with its DNS name (the
    control-plane endpoint); as in Cluster API, machines may still be starting.
  - V(Deleting) - a NAT gateway is being deleted, or machines are shutting down with none left running.
  - V(Failed) - a NAT gateway or the load balancer failed, control-plane machines run without the API
    load balancer, or an instance was terminated by something other than an API call;
    RV(clusters[].failure_message) says which.
  - Without the cluster spec the intended NAT layout is unknown, so every NAT gateway that
    exists must be available but none is required.
  - With the spec (O(cluster)), each machine set also gets its desired count and how many of its machines
    are up to date, as Cluster API's KubeadmControlPlane and MachineDeployment report them.
  - Only reads; never changes anything.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  name:
    description:
      - The cluster to report on.
      - Without it, every cluster that owns something in the region is reported.
      - Defaults to the name of O(cluster) when that is given.
    type: str
  cluster:
    description:
      - The cluster spec, as M(kubecluster.aws.cluster_spec) takes it (the C(cluster) key of the spec file), a mapping or
        its YAML or JSON text (an AWX survey's textarea).
      - Optional. Its name and region are the cluster and region read (O(name) and O(region), when given too, must
        agree). From the rest come each machine set's desired replicas and which machines are outdated, as
        M(kubecluster.aws.machine_set) judges them (from the spec alone; no further AWS call).
      - A spec that does not validate as a whole (written for another version of the collection, or being
        edited) is read for its name and region only, with a warning; desired and up-to-date counts are then null.
        So is a spec of nothing but a name and a region, without a warning.
    type: raw
  wait:
    description:
      - Wait until every reported cluster is V(Provisioned) and all of its machines are running,
        reading again every O(wait_delay) seconds. So one wait covers NAT gateways, machines and the API
        load balancer started together without waiting (as C(create_cluster.yml) starts them); a cluster
        already ready is read once and not waited for.
      - Fails at once when a cluster is V(Failed), and after O(wait_timeout) seconds naming what is not ready,
        each NAT gateway, load balancer and machine by its id and state.
    type: bool
    default: false
  wait_timeout:
    description: How many seconds O(wait=true) waits at most.
    type: int
    default: 600
  wait_delay:
    description: Seconds between two reads while waiting.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it reads the same in check mode.
  diff_mode:
    support: none
    description: The module never changes anything.
notes:
  - Load balancers the AWS cloud-controller-manager made for Services are not reported.
  - Without O(cluster) the machines' spec hash is not judged, as that needs the spec; RV(clusters[].machines[].outdated)
    and the desired and up-to-date counts are then null.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Every cluster in the region, as kubectl get cluster -A shows them
  kubecluster.aws.cluster_info:
    region: ap-northeast-2
  register: info

- name: Show name and phase
  ansible.builtin.debug:
    msg: "{{ info.clusters | map(attribute='name') | zip(info.clusters | map(attribute='phase')) | list }}"

- name: Wait until capi-example is provisioned and all its machines run
  kubecluster.aws.cluster_info:
    name: capi-example
    region: ap-northeast-2
    wait: true
    wait_timeout: 900
  register: capi

- name: The API server endpoint
  ansible.builtin.debug:
    msg: "https://{{ capi.cluster.control_plane_endpoint.host }}:{{ capi.cluster.control_plane_endpoint.port }}"

- name: Desired, running and up-to-date machines per set, judged against the spec
  kubecluster.aws.cluster_info:
    cluster: "{{ cluster }}"
  register: described

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.desired }} desired, {{ item.value.running }} running, {{ item.value.up_to_date }} up to date"
  loop: "{{ described.cluster.machine_sets | dict2items }}"
"""

RETURN = r"""
region:
  description: The region read.
  returned: always
  type: str
  sample: ap-northeast-2
clusters:
  description:
    - The reported clusters, sorted by name; the one named by O(name) even when it owns nothing.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The cluster name.
      type: str
      sample: capi-example
    region:
      description: The region read.
      type: str
      sample: ap-northeast-2
    phase:
      description: The Cluster API phase (V(NotFound), V(Provisioning), V(Provisioned), V(Deleting) or V(Failed)).
      type: str
      sample: Provisioned
    kubernetes_version:
      description:
        - The lowest Kubernetes version of the control-plane machines that are not terminated (their version tag), as
          KubeadmControlPlane's C(status.version); null without any.
      type: str
      sample: v1.31.4
    failure_message:
      description: Why the phase is V(Failed); null otherwise.
      type: str
      sample: "NAT gateway nat-0a1b2c3d4e5f67890 failed: Elastic IP address is already associated"
    infrastructure_waiting_for:
      description:
        - What keeps the cluster from V(Provisioned) (its InfrastructureReady condition) - missing or not ready network parts, NAT
          gateways and the API load balancer, each with its id and state; empty when V(Provisioned) or V(NotFound).
      type: list
      elements: str
      sample: ["NAT gateway nat-0a1b2c3d4e5f67890 (pending)", "API load balancer capi-example-apiserver (provisioning)"]
    control_plane_endpoint:
      description: The API load balancer's DNS name and the API port; null until the balancer has a DNS name.
      type: dict
      contains:
        host:
          description: The DNS name.
          type: str
          sample: capi-example-apiserver-0123456789abcdef.elb.ap-northeast-2.amazonaws.com
        port:
          description: The API server port.
          type: int
          sample: 6443
    vpc_id:
      description: The cluster's VPC, owned or brought (found from the cluster's security groups); null when none.
      type: str
      sample: vpc-0a1b2c3d4e5f67890
    managed_vpc:
      description: Whether the cluster owns its VPC.
      type: bool
      sample: true
    subnets:
      description:
        - The owned subnets; in a VPC the cluster does not own, the subnets its load balancer and machines use.
      type: list
      elements: dict
      contains:
        id:
          description: The subnet id.
          type: str
          sample: subnet-0a1b2c3d4e5f67890
        name:
          description: The Name tag, else the id.
          type: str
          sample: capi-example-subnet-private-ap-northeast-2a
        role:
          description: V(public) or V(private).
          type: str
          sample: private
        availability_zone:
          description: The availability zone.
          type: str
          sample: ap-northeast-2a
        cidr:
          description: The IPv4 CIDR block.
          type: str
          sample: 10.0.0.0/19
    nat_gateways:
      description: The owned NAT gateways that are not deleted.
      type: list
      elements: dict
      contains:
        id:
          description: The NAT gateway id.
          type: str
          sample: nat-0a1b2c3d4e5f67890
        availability_zone:
          description: The availability zone of its subnet.
          type: str
          sample: ap-northeast-2a
        state:
          description: V(pending), V(available), V(deleting) or V(failed).
          type: str
          sample: available
        public_ip:
          description: Its Elastic IP address.
          type: str
          sample: 3.36.10.20
    elastic_ips:
      description: The owned Elastic IPs.
      type: list
      elements: dict
      contains:
        allocation_id:
          description: The allocation id.
          type: str
          sample: eipalloc-0a1b2c3d4e5f67890
        public_ip:
          description: The address.
          type: str
          sample: 3.36.10.20
        association_id:
          description: The association, null when the address is not in use.
          type: str
          sample: eipassoc-0a1b2c3d4e5f67890
    internet_gateway_id:
      description: The owned internet gateway; null when none.
      type: str
      sample: igw-0a1b2c3d4e5f67890
    security_groups:
      description: The owned security groups by CAPA role (V(apiserver-lb), V(lb), V(controlplane), V(node), V(bastion)).
      type: dict
      sample: {"controlplane": "sg-0a1b2c3d4e5f67890", "node": "sg-0b1b2c3d4e5f67890"}
    load_balancer:
      description: The API load balancer, found by CAPA's name for it and owned by the cluster; null when none.
      type: dict
      contains:
        name:
          description: Its name.
          type: str
          sample: capi-example-apiserver
        type:
          description: V(nlb) or V(classic).
          type: str
          sample: nlb
        dns_name:
          description: Its DNS name.
          type: str
          sample: capi-example-apiserver-0123456789abcdef.elb.ap-northeast-2.amazonaws.com
        scheme:
          description: V(internet-facing) or V(internal).
          type: str
          sample: internet-facing
        state:
          description: The NLB state (V(provisioning), V(active), V(active_impaired), V(failed)); V(active) for a classic ELB, which has none.
          type: str
          sample: active
    machines:
      description: The owned instances, terminated ones included while EC2 still shows them.
      type: list
      elements: dict
      contains:
        instance_id:
          description: The instance id.
          type: str
          sample: i-0a1b2c3d4e5f67890
        name:
          description: The Name tag, else the instance id.
          type: str
          sample: capi-example-control-plane-a1b2c
        set:
          description: The machine set (tag C(kubecluster.aws/machine-set)).
          type: str
          sample: control-plane
        role:
          description: The CAPA role, V(control-plane), V(node) or V(bastion).
          type: str
          sample: control-plane
        kubernetes_version:
          description:
            - The Kubernetes version the machine was launched for (tag C(kubecluster.aws/kubernetes-version)).
            - Null for the bastion and for machines launched before the collection tagged the version.
          type: str
          sample: v1.31.4
        state:
          description: The EC2 instance state.
          type: str
          sample: running
        availability_zone:
          description: The availability zone.
          type: str
          sample: ap-northeast-2a
        subnet_id:
          description: The subnet.
          type: str
          sample: subnet-0a1b2c3d4e5f67890
        private_ip:
          description: The private IPv4 address.
          type: str
          sample: 10.0.12.34
        private_dns_name:
          description: The private DNS name.
          type: str
          sample: ip-10-0-12-34.ap-northeast-2.compute.internal
        public_ip:
          description: The public IPv4 address, null when none.
          type: str
          sample: 3.36.10.21
        image_id:
          description: The AMI.
          type: str
          sample: ami-0a1b2c3d4e5f67890
        instance_type:
          description: The instance type.
          type: str
          sample: t3.large
        launch_time:
          description: When the instance was launched, ISO 8601.
          type: str
          sample: "2025-01-31T09:30:00+00:00"
        outdated:
          description:
            - Whether the machine was launched from settings the spec no longer has (its spec hash differs), as
              M(kubecluster.aws.machine_set) returns it.
            - Null without O(cluster), and for a machine of a set without replicas in the spec.
          type: bool
          sample: false
    machine_sets:
      description:
        - Per machine set, the instances not terminated (V(replicas)), those running and, with O(cluster), the spec's
          V(desired) count and the machines V(up_to_date) (not outdated); both null without O(cluster).
        - With O(cluster), every set of the spec is listed, also one without machines; a set the spec no longer has
          has V(desired) 0.
      type: dict
      sample: {"control-plane": {"replicas": 1, "running": 1, "desired": 1, "up_to_date": 1},
               "md-0": {"replicas": 2, "running": 2, "desired": 3, "up_to_date": 1}}
    counts:
      description:
        - How many resources of each type the cluster owns (instances not terminated, NAT gateways not deleted).
        - Keys are V(vpcs), V(subnets), V(internet_gateways), V(nat_gateways), V(elastic_ips), V(route_tables),
          V(security_groups), V(instances) and V(load_balancers).
      type: dict
      sample: {"vpcs": 1, "subnets": 6, "internet_gateways": 1, "nat_gateways": 3, "elastic_ips": 3, "route_tables": 6,
               "security_groups": 5, "instances": 3, "load_balancers": 1}
    ownership_conflicts:
      description:
        - One line for each resource of the cluster that is tagged as owned by another cluster too. No delete touches
          such a resource until the tag of the cluster it does not belong to is removed.
      type: list
      elements: str
      sample: ["instance i-0123456789abcdef0 is tagged as owned by cluster staging and by prod; remove the tag ..."]
cluster:
  description: The one cluster of RV(clusters) when O(name) is given, with the same keys.
  returned: when name is given
  type: dict
  sample: {"name": "capi-example", "region": "ap-northeast-2", "phase": "NotFound", "failure_message": null}
"""

import os
from typing import Any, List, Optional, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils import status
from ansible_collections.kubecluster.aws.plugins.module_utils import status_desired
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import Spec, SpecError, resolve, resolve_identity


def check_options(module: Any) -> None:
    """Options the argument spec cannot check, before any AWS call."""
    params = module.params
    if params["name"] is not None and not params["name"].strip():
        module.fail_json(msg="name: must not be empty; omit it to report every cluster in the region")
    if params["cluster"] is not None and not params["cluster"]:
        module.fail_json(msg="cluster: must be a cluster spec with at least a name and a region; omit it to report without the spec")
    if params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout: must be 0 or more seconds, not %d" % params["wait_timeout"])
    if params["wait_delay"] < 1:
        module.fail_json(msg="wait_delay: must be at least 1 second, not %d" % params["wait_delay"])


def not_ready_message(statuses: List[status.ClusterStatus], timeout: int) -> str:
    pending = ["%s is %s, not ready: %s" % (s.view["name"], s.view["phase"], ", ".join(s.waiting_for))
               for s in statuses if not status.is_ready(s)]
    return "Timed out after %d seconds waiting for Provisioned clusters with every machine running: %s" % (timeout, "; ".join(pending))


def load_cluster(module: Any) -> Tuple[Optional[Spec], Optional[Spec]]:
    """(identity, full spec) of the ``cluster`` option, before any AWS call; (None, None) without it.

    The full spec is None, with a warning, when the spec does not validate as a whole: the
    cluster is still reported, without what only the spec tells.
    """
    params = module.params
    if params["cluster"] is None:
        return None, None
    try:
        identity = resolve_identity(params["cluster"], os.environ)
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)
    for option in ("name", "region"):
        value = params[option]
        if value is not None and value != identity[option]:
            module.fail_json(msg="%s: %s is not the spec's cluster.%s %s; omit %s to read the spec's cluster"
                             % (option, value, option, identity[option], option))
    try:
        return identity, resolve(params["cluster"], os.environ)
    except SpecError as error:
        if set(params["cluster"]) <= {"name", "region"}:
            return identity, None  # only which cluster: nothing to warn about
        module.warn("cluster: the spec does not validate, so desired and up-to-date counts are not reported: %s" % error.message)
        return identity, None


def failed_message(statuses: List[status.ClusterStatus]) -> str:
    failed = ["%s: %s" % (s.view["name"], s.view["failure_message"]) for s in statuses if s.view["phase"] == status.FAILED]
    return "Cluster failed, waiting will not help: %s" % "; ".join(failed)


def main() -> None:
    argument_spec = dict(
        name=dict(type="str"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        wait_delay=dict(type="int", default=5),
        cluster=dict(type="raw"),
    )
    module = AnsibleAWSModule(argument_spec=runner.connection_argument_spec(argument_spec), default_args=False, supports_check_mode=True)
    check_options(module)
    runner.take_cluster(module)
    params = module.params
    identity, spec = load_cluster(module)
    name = identity["name"] if identity else params["name"]
    region = identity["region"] if identity else runner.required_region(module)

    ctx = Context.from_module(module, region, wait=params["wait"], wait_timeout=params["wait_timeout"])
    ec2, elbv2, elb = ctx.ec2, ctx.elbv2, ctx.elb
    desired: Optional[status.Desired] = None

    def read() -> List[status.ClusterStatus]:
        return status.survey(ec2, elbv2, elb, region, name, desired)

    try:
        if spec is not None:
            desired = status_desired.desired_state(spec)
        if params["wait"]:
            statuses = status.wait_until_ready(read, params["wait_timeout"], params["wait_delay"])
        else:
            statuses = read()
    except KubeclusterError as error:
        runner.fail(module, error)
    except runner.AWS_ERRORS as error:
        runner.fail_aws(module, error)

    result = dict(changed=False, region=region, clusters=[s.view for s in statuses])
    if name:
        result["cluster"] = statuses[0].view
    if params["wait"] and any(s.view["phase"] == status.FAILED for s in statuses):
        module.fail_json(msg=failed_message(statuses), **result)
    if params["wait"] and not all(status.is_ready(s) for s in statuses):
        module.fail_json(msg=not_ready_message(statuses, params["wait_timeout"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
