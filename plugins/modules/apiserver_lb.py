#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: apiserver_lb
short_description: Reconcile a cluster's API server load balancer and its control-plane targets
version_added: 1.0.0
description:
  - Creates or converges the load balancer in front of the cluster's Kubernetes API servers,
    as Cluster API's AWS provider (CAPA) builds its control-plane load balancer, from the
    spec's C(network.api_load_balancer).
  - A network load balancer (C(type=nlb), the default) gets the name C(<cluster>-apiserver),
    one subnet per availability zone (public ones when C(internet-facing), private ones when
    C(internal)), the cluster's C(apiserver-lb) security group, a TCP 6443 listener and the
    target group C(apiserver-target-<hash>) with CAPA's health check (HTTPS C(/readyz) or TCP
    on 6443, every 5 s, timeout 4 s, 2 healthy, 6 unhealthy). Client-IP preservation is
    off so that control-plane nodes can reach the API through the balancer (hairpin), and
    unhealthy targets drain for 300 s instead of having their connections cut.
  - A classic ELB (C(type=classic)) gets the same name, placement and health check, a TCP
    6443 listener to the instances' port 6443 and a 600 s idle timeout.
  - Drift in the health check, attributes, listener, subnets, security groups and tags is
    fixed in place. The type and scheme are not, because the cluster's endpoint is the
    balancer's DNS name (CAPA#2608); asking for another type or scheme fails before any
    change, saying how to proceed.
  - Every running control-plane machine of the cluster is registered and anything else is
    deregistered, as are the machines O(exclude_machines) names. Machines still starting are waited for once, so a playbook can launch
    them without waiting and register them here.
  - With O(state=absent) the API balancer and every load balancer the AWS
    cloud-controller-manager made for the cluster's Services (tagged
    C(kubernetes.io/cluster/<name>=owned), in the cluster's VPC) are deleted together and
    waited for once, then their target groups. Nothing without one of the cluster's
    ownership tags is touched.
  - Everything is read before anything is written; check mode returns the plan, and
    C(--diff) shows it.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  state:
    description:
      - V(present) creates or converges the balancer and its targets.
      - V(absent) deletes the API balancer, the cloud-controller-manager's Service balancers
        and their target groups.
    type: str
    choices: [present, absent]
    default: present
  wait_for_targets:
    description:
      - Wait until the cluster's control-plane machines that are still starting (C(pending))
        are running, then register them too.
      - With V(false) they are left out and registered by a later run.
    type: bool
    default: true
  exclude_machines:
    description:
      - Control-plane machines of the cluster, by instance id or C(Name) tag, to deregister now and not register,
        as before a control-plane machine is removed (its etcd member gone, its node drained, then terminated).
      - Targets deregistered from a network load balancer drain for the target group's deregistration delay;
        the run does not wait for it.
      - A name that is not a control-plane machine of the cluster (in any state) fails before any write; a machine
        already stopped or terminated is accepted, so a rerun after the removal changes nothing.
      - Ignored when O(state=absent).
    type: list
    elements: str
    default: []
  wait_timeout:
    description:
      - How many seconds to wait for starting machines (O(state=present)) or for deleted
        balancers to be gone (O(state=absent)).
    type: int
    default: 600
attributes:
  check_mode:
    support: full
    description: Returns the plan and the expected result without changing anything; values
      only AWS can tell, such as a new balancer's DNS name, read C((known after apply)).
  diff_mode:
    support: full
    description: Shows the plan, one line per change.
notes:
  - The network (VPC, subnets and the C(apiserver-lb) security group) must exist, see
    M(kubecluster.aws.cluster_network). In check mode a missing network is planned into
    with C((known after apply)) ids, as a create playbook's check mode would create it.
  - Service load balancers are found with C(DescribeLoadBalancers) and C(DescribeTags), which
    need no permission beyond Elastic Load Balancing's own.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Create the API server load balancer and register the control plane
  kubecluster.aws.apiserver_lb:
    cluster: "{{ spec.cluster }}"
  register: api_lb

- name: Show the endpoint kubeadm's controlPlaneEndpoint takes
  ansible.builtin.debug:
    msg: "{{ api_lb.load_balancer.control_plane_endpoint }}"

- name: Register only machines already running; do not wait for starting ones
  kubecluster.aws.apiserver_lb:
    cluster: "{{ spec.cluster }}"
    wait_for_targets: false

- name: Take a control-plane machine out of the balancer before it is removed
  kubecluster.aws.apiserver_lb:
    cluster: "{{ spec.cluster }}"
    exclude_machines:
      - capi-example-control-plane-x7kq2

- name: Delete the API balancer and the Service balancers before the network
  kubecluster.aws.apiserver_lb:
    cluster: "{{ spec.cluster }}"
    state: absent
"""

RETURN = r"""
load_balancer:
  description: The API server load balancer as it is after the run (or would be, in check mode).
  returned: when state is present
  type: complex
  contains:
    name:
      description: The balancer's name.
      type: str
      sample: capi-example-apiserver
    type:
      description: V(nlb) or V(classic).
      type: str
      sample: nlb
    scheme:
      description: V(internet-facing) or V(internal).
      type: str
      sample: internet-facing
    arn:
      description: The balancer's ARN; null for a classic ELB.
      type: str
      sample: arn:aws:elasticloadbalancing:ap-northeast-2:123456789012:loadbalancer/net/capi-example-apiserver/0123456789abcdef
    dns_name:
      description: The balancer's DNS name.
      type: str
      sample: capi-example-apiserver-0123456789abcdef.elb.ap-northeast-2.amazonaws.com
    control_plane_endpoint:
      description: The cluster's API endpoint, C(<dns_name>:6443), for kubeadm's C(controlPlaneEndpoint).
      type: str
      sample: capi-example-apiserver-0123456789abcdef.elb.ap-northeast-2.amazonaws.com:6443
    target_group_arn:
      description: The target group's ARN; null for a classic ELB.
      type: str
      sample: arn:aws:elasticloadbalancing:ap-northeast-2:123456789012:targetgroup/apiserver-target-1a2b3c4d5e6f7g8/0123456789abcdef
    security_group_ids:
      description: The balancer's security groups.
      type: list
      elements: str
      sample: [sg-0123456789abcdef0]
    subnet_ids:
      description: The balancer's subnets, one per availability zone.
      type: list
      elements: str
      sample: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
    targets:
      description: The instances registered after the run.
      type: list
      elements: str
      sample: [i-0123456789abcdef0]
plan:
  description: The changes, in order, that the run made (or would make, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(create), V(update), V(delete) or V(wait).
      type: str
      sample: create
    resource:
      description: The kind of resource.
      type: str
      sample: load balancer
    name:
      description: The resource's name or ids.
      type: str
      sample: capi-example-apiserver
    detail:
      description: What changes, in words.
      type: str
      sample: nlb internet-facing in subnet-0123456789abcdef0, security group sg-0123456789abcdef0
"""

from ansible_collections.kubecluster.aws.plugins.module_utils import loadbalancer
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        wait_for_targets=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        exclude_machines=dict(type="list", elements="str", default=[]),
    )
    module = runner.cluster_module(argument_spec)
    spec = runner.load_for_state(module)
    params = module.params
    if params["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout: %d is not a number of seconds; use 1 or more (default 600)" % params["wait_timeout"])
    ctx = Context.from_module(module, spec["region"], wait_timeout=params["wait_timeout"])

    def build() -> Plan:
        if params["state"] == "present":
            plan = loadbalancer.plan_present(ctx, spec, wait_for_targets=params["wait_for_targets"],
                                             allow_missing_network=module.check_mode, exclude_machines=params["exclude_machines"])
        else:
            plan = loadbalancer.plan_absent(ctx, spec)
        plan.header = "kubecluster.aws.apiserver_lb: cluster %s in %s, state %s" % (spec["name"], spec["region"], params["state"])
        return plan

    runner.reconcile(module, build)


if __name__ == "__main__":
    main()
