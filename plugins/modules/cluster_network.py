#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cluster_network
short_description: Create or delete a cluster's VPC, subnets, gateways, route tables and security groups
version_added: 1.0.0
description:
  - Builds the network Cluster API's AWS provider (CAPA) builds for a self-managed cluster,
    with CAPA's names and tags, so that C(clusterawsadm) and the AWS cloud-controller-manager
    understand it.
  - A VPC C(<cluster>-vpc) with DNS support and DNS hostnames on; in every availability zone
    a public and a private subnet, with CAPA's CIDR split (the VPC is split into zones+1
    blocks, the first split again into the public subnets); an internet gateway; NAT
    gateways with their Elastic IPs as C(network.nat_gateways) asks (C(per_az), C(single)
    or C(none)); one route table per subnet.
  - The security groups C(apiserver-lb), C(lb), C(controlplane), C(node) and, with a
    bastion, C(bastion), with CAPA's ingress rules. Rules the spec no longer has are
    revoked, except on C(lb), where the cloud-controller-manager adds its own.
  - With a bring-your-own VPC (C(network.vpc_id) and C(network.subnet_ids)) nothing
    network-side is created, changed, tagged or deleted; only the security groups are
    made in that VPC.
  - Reads every resource type once, plans, then applies the plan; a second run with the
    same spec changes nothing and makes no write call. Only resources carrying the
    cluster's ownership tag are ever changed or deleted.
  - The spec's C(additional_tags) are brought to every owned network resource on each run (a key is
    removed only when the tag C(kubecluster.aws/managed-tags) records that the collection set it). A
    VPC CIDR, a zone removed or one the VPC has no room for, or NAT gateways to C(none) fail before
    any write, naming what would have to be recreated. A disabled bastion's security group is left
    to M(kubecluster.aws.cluster_infra), which deletes it once the bastion is terminated.
  - With O(state=absent) starts the NAT gateway deletes first (minutes on AWS; nothing depends
    on them), so that they go while machines still shutting down terminate, then deletes in
    CAPA's order - security groups (their rules first), route tables, the NAT gateways waited
    for, Elastic IPs, internet gateway, subnets, VPC - and refuses while the cluster's instances
    or load balancers are still in the VPC.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  state:
    description:
      - V(present) makes the network match the spec; V(absent) deletes what the cluster owns.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until new NAT gateways are available (V(present)) or deleted ones are gone (V(absent)).
      - With V(false) and O(state=present) new NAT gateways are left C(pending) (AWS accepts routes to them, which
        carry traffic once they are available), so that machines can boot meanwhile; M(kubecluster.aws.cluster_info)
        with O(kubecluster.aws.cluster_info#module:wait=true) waits for them later, as C(create_cluster.yml) does.
        NAT gateways the layout no longer has are still waited for until deleted, so that their Elastic IPs are
        released in the same run.
      - With O(state=absent) it also waits, before the first delete, for the cluster's machines that are still
        shutting down (terminated without waiting, as the delete playbook does), because AWS refuses to delete
        security groups and subnets their network interfaces still use. Without it such machines stop the delete.
        So do, the same way, the network interfaces AWS has not yet removed of load balancers deleted already.
      - With V(false) and O(state=absent) the run stops once the NAT gateway deletes are
        started and the security groups and route tables deleted, because their Elastic IPs,
        the subnets and the VPC can only go after them; run again to finish.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for NAT gateways, and with O(state=absent) for machines still shutting down.
    type: int
    default: 600
attributes:
  check_mode:
    support: full
    description: Returns the plan without changing anything.
  diff_mode:
    support: full
    description: Shows the plan, one line per change.
notes:
  - Every NAT gateway holds an Elastic IP; a new account may hold 5 per region. Run
    M(kubecluster.aws.cluster_spec) first to check the quota.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Build the network of the Cluster API quick-start cluster
  kubecluster.aws.cluster_network:
    cluster:
      name: capi-example
      region: ap-northeast-2
      kubernetes_version: v1.31.4
  register: net

- name: One NAT gateway for all zones, to save Elastic IPs and cost
  kubecluster.aws.cluster_network:
    cluster:
      name: capi-example
      region: ap-northeast-2
      kubernetes_version: v1.31.4
      network:
        nat_gateways: single

- name: Only security groups, in a VPC someone else manages
  kubecluster.aws.cluster_network:
    cluster:
      name: capi-example
      region: ap-northeast-2
      kubernetes_version: v1.31.4
      network:
        vpc_id: vpc-0123456789abcdef0
        subnet_ids: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]

- name: Show what deleting the network would do
  kubecluster.aws.cluster_network:
    cluster: "{{ cluster }}"
    state: absent
  check_mode: true
  diff: true
"""

RETURN = r"""
network:
  description:
    - The cluster's network. In check mode, ids of resources not created yet read
      C((known after apply)).
  returned: when state is present
  type: complex
  contains:
    vpc_id:
      description: The VPC's id.
      type: str
      sample: vpc-0a1b2c3d4e5f60718
    vpc_cidr:
      description: The VPC's IPv4 CIDR.
      type: str
      sample: 10.0.0.0/16
    managed:
      description: True when the collection manages the VPC, false for a bring-your-own VPC.
      type: bool
      sample: true
    availability_zones:
      description: The zones the subnets are in.
      type: list
      elements: str
      sample: [ap-northeast-2a, ap-northeast-2b, ap-northeast-2c]
    subnets:
      description: The cluster's subnets, sorted by role and zone.
      type: list
      elements: dict
      contains:
        id:
          description: The subnet's id.
          type: str
          sample: subnet-0a1b2c3d4e5f60718
        name:
          description: Its Name tag (the id when it has none).
          type: str
          sample: capi-example-subnet-private-ap-northeast-2a
        role:
          description: V(public) or V(private).
          type: str
          sample: private
        availability_zone:
          description: Its zone.
          type: str
          sample: ap-northeast-2a
        cidr:
          description: Its IPv4 CIDR.
          type: str
          sample: 10.0.64.0/18
        vpc_id:
          description: Its VPC.
          type: str
          sample: vpc-0a1b2c3d4e5f60718
    internet_gateway_id:
      description: The internet gateway's id; null for a bring-your-own VPC.
      type: str
      sample: igw-0a1b2c3d4e5f60718
    nat_gateways:
      description: The NAT gateways, one per zone that has one.
      type: list
      elements: dict
      contains:
        id:
          description: The NAT gateway's id.
          type: str
          sample: nat-0a1b2c3d4e5f60718
        subnet_id:
          description: The public subnet it is in.
          type: str
          sample: subnet-0a1b2c3d4e5f60718
        availability_zone:
          description: Its zone.
          type: str
          sample: ap-northeast-2a
        allocation_id:
          description: Its Elastic IP's allocation id.
          type: str
          sample: eipalloc-0a1b2c3d4e5f60718
        public_ip:
          description: Its Elastic IP.
          type: str
          sample: 203.0.113.10
    route_tables:
      description: The route tables, one per subnet.
      type: list
      elements: dict
      contains:
        id:
          description: The route table's id.
          type: str
          sample: rtb-0a1b2c3d4e5f60718
        name:
          description: Its Name tag.
          type: str
          sample: capi-example-rt-private-ap-northeast-2a
        subnet_id:
          description: The subnet it is associated with.
          type: str
          sample: subnet-0a1b2c3d4e5f60718
    security_groups:
      description: The security groups' ids by CAPA role.
      type: dict
      sample: {apiserver-lb: sg-0a1b2c3d4e5f60718, lb: sg-0a1b2c3d4e5f60719, controlplane: sg-0a1b2c3d4e5f6071a,
               node: sg-0a1b2c3d4e5f6071b, bastion: sg-0a1b2c3d4e5f6071c}
plan:
  description: The planned changes, in order; applied unless in check mode.
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
      sample: nat-gateway
    name:
      description: The resource's name.
      type: str
      sample: capi-example-nat
    detail:
      description: What changes.
      type: str
      sample: in capi-example-subnet-public-ap-northeast-2a
"""

from ansible_collections.kubecluster.aws.plugins.module_utils import network
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
    )
    module = runner.cluster_module(argument_spec)
    spec = runner.load_for_state(module)
    params = module.params
    ctx = Context.from_module(module, spec["region"], wait=params["wait"], wait_timeout=params["wait_timeout"])

    def build() -> Plan:
        if params["state"] == "absent":
            plan = network.plan_absent(ctx, spec)
        else:
            wanted = spec if spec["network"]["vpc_id"] else runner.resolve_zones(module, spec, ctx.ec2)
            plan = network.plan_present(ctx, wanted)
        plan.header = "kubecluster.aws.cluster_network %s (state=%s)" % (spec["name"], params["state"])
        return plan

    runner.reconcile(module, build)


if __name__ == "__main__":
    main()
