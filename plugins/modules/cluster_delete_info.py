#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cluster_delete_info
version_added: 1.0.0
short_description: Find what deleting a cluster would remove, and what would stop the delete, before anything is deleted
description:
  - Plans, without applying it, the whole delete of a cluster in Cluster API's order - the machines of every machine
    set, the API load balancer and the load balancers the AWS cloud-controller-manager made for Services, then the
    security groups and the network, then the admin kubeconfig kept in SSM or Secrets Manager - exactly as
    M(kubecluster.aws.machine_set), M(kubecluster.aws.apiserver_lb), M(kubecluster.aws.cluster_network) and
    M(kubecluster.aws.cluster_kubeconfig) with C(state=absent) would plan it.
  - Everything is found by the ownership tags, so only the cluster's C(name) and C(region) are read from O(cluster),
    and a spec that no longer validates can still be deleted.
  - Lists in RV(blockers) every reason the delete would stop half-way or touch what is not the cluster's, so a
    playbook can refuse before the first delete. A blocker is a resource of the cluster that is tagged as owned by
    another cluster too; an instance, network interface or NAT gateway in the cluster's VPC that is not the
    cluster's; a security group of someone else with rules naming the cluster's groups; an instance tagged as the
    cluster's that belongs to no machine set.
  - Warns that the cluster has nothing in the region when nothing is found, as a module with C(state=absent)
    reports nothing to do.
  - Only reads; never changes anything.
author:
  - kubecluster.aws developers (@kubecluster)
options: {}
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it reads the same in check mode.
  diff_mode:
    support: full
    description: With C(--diff) the delete plan is shown rendered, one line per step.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Find what deleting capi-example removes
  kubecluster.aws.cluster_delete_info:
    cluster:
      name: capi-example
      region: ap-northeast-2
  register: teardown

- name: Stop before the first delete if anything would get in the way
  ansible.builtin.fail:
    msg: "{{ teardown.blockers | join('; ') }}"
  when: teardown.blockers | length > 0

- name: Terminate every machine set, workers first
  kubecluster.aws.machine_set:
    cluster: {name: capi-example, region: ap-northeast-2}
    set: "{{ item }}"
    state: absent
    wait: false
  loop: "{{ teardown.machine_sets }}"
"""

RETURN = r"""
cluster:
  description: The name and region read from O(cluster).
  returned: always
  type: dict
  sample: {"name": "capi-example", "region": "ap-northeast-2"}
found:
  description: Whether the cluster has anything in the region (anything to delete, or anything in the way).
  returned: always
  type: bool
  sample: true
machine_sets:
  description: The machine sets with live machines, in the order a delete terminates them (workers, then V(control-plane), V(bastion)).
  returned: always
  type: list
  elements: str
  sample: ["md-0", "control-plane", "bastion"]
blockers:
  description: One line for each thing that must be fixed before the delete starts, naming its id and what to do.
  returned: always
  type: list
  elements: str
  sample:
    - "instance i-0123456789abcdef0 (reports) in subnet-0123456789abcdef0, not tagged as the cluster's; terminate it or move it
      out of the cluster's network"
plan:
  description: Every step the delete would take, in order.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: V(delete), V(update) (revoke rules before a delete) or V(wait).
      type: str
      sample: delete
    resource:
      description: The kind of resource.
      type: str
      sample: nat-gateway
    name:
      description: The resource's name.
      type: str
      sample: capi-example-nat
    detail:
      description: Its id and how it goes.
      type: str
      sample: nat-0123456789abcdef0
"""

from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils import teardown
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError


def main() -> None:
    module = runner.cluster_module({})
    spec = runner.load_identity(module)
    ctx = Context.from_module(module, spec["region"])
    try:
        found = teardown.survey(ctx, spec)
    except KubeclusterError as error:
        runner.fail(module, error)
    except runner.AWS_ERRORS as error:
        runner.fail_aws(module, error)
    for warning in found.warnings:
        module.warn(warning)
    if not found.found:
        module.warn("cluster %s has nothing in region %s: nothing to delete" % (spec["name"], spec["region"]))
    result = dict(changed=False, cluster=spec, found=found.found, machine_sets=found.machine_sets, blockers=found.blockers,
                  plan=found.plan.as_list())
    if module._diff:
        result["diff"] = found.plan.diff("delete of cluster %s in %s" % (spec["name"], spec["region"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
