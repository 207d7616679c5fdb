#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cluster_spec
short_description: Validate a cluster spec and fill in its defaults
version_added: 1.0.0
description:
  - Checks a kubecluster.aws cluster spec as a whole and returns it complete, with every
    default and every Cluster API quick-start environment variable filled in, and the
    availability zones resolved to names.
  - The spec is validated before any AWS call; every problem is reported at once, each
    naming the field and the fix.
  - With O(check_account=true) it then reads (never writes) the account to check what only
    AWS knows - the region's availability zones, the Elastic IP quota left for the NAT
    layout, that the SSH key pair exists and that the machines' IAM instance profiles
    exist - so that nothing is created for a cluster that cannot be built.
  - Each of those checks runs only when the run needs what it checks. The cluster's machines and Elastic
    IPs are read first (one call each); the key pair, the instance profiles, named availability zones, the
    AMI ids the launching sets name (one DescribeImages for all) and their instance types, offered in every
    zone the set uses (one DescribeInstanceTypeOfferings), are checked when a machine set has fewer machines
    than its replicas (a run launches machines), the
    Elastic IP quota when the NAT layout needs more addresses than the cluster owns. Named availability zones
    are checked whenever a machine set takes its zones from them, as this module does not read the subnets
    to tell a zone new to the cluster (M(kubecluster.aws.cluster_infra) does). A cluster that runs as its
    spec says is not checked again otherwise (an availability zone count is still read for the names).
  - It also refuses a changed C(cluster.kubernetes_version) on a running cluster - when a pending or
    running machine of the cluster carries another version in its tag
    C(kubecluster.aws/kubernetes-version), the module fails naming each such machine (name,
    instance id, version) and the way forward, the upgrade playbook
    (C(ansible-playbook kubecluster.aws.upgrade_cluster -e @spec.yml)). A new version would otherwise
    reach only the kubelets of new machines, ahead of the control plane. Machines launched before
    the tag existed are checked on the machine itself by the C(kubecluster.aws.kubernetes_packages) role.
  - With O(kubernetes_upgrade=true) (the upgrade playbook) a version change is allowed one minor
    forward at a time, as kubeadm upgrades; a downgrade (a machine runs a newer version) and a skipped
    minor (the spec's minor is more than one above the oldest minor running) are refused before any
    change, naming the machines. RV(upgrade) says what the upgrade moves from and to.
  - Playbooks run it first and pass its RV(cluster) to the other modules.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  check_account:
    description:
      - Read the account to check the zones, the Elastic IP quota, the key pair, the
        instance profiles, the AMI ids, the instance types and the Kubernetes version of the running machines.
      - With V(false) no AWS call is made and an availability zone count stays a count.
    type: bool
    default: true
  replicas:
    description:
      - Machine counts that replace the spec's, by machine set, C(control-plane) or the name of a machine
        deployment, for example C(md-0) mapped to 4; the scale playbook passes what it was asked for here.
      - Applied before the spec is validated, so RV(cluster) carries them and the control plane's count must
        still be odd. A set the spec does not have, the bastion, or a count that is not a whole number of at
        least 0 fails before any AWS call, naming the set.
    type: dict
  kubernetes_upgrade:
    description:
      - Judge a Kubernetes version change as an upgrade (one minor forward at a time) instead of refusing it.
      - Needs O(check_account=true) to read the running machines' versions.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: The module never changes anything.
  diff_mode:
    support: none
    description: The module never changes anything.
notes:
  - The Elastic IP quota is read from Service Quotas (ec2 C(L-0263D0A3)); where that is not
    allowed or not served, from the account attribute C(vpc-max-elastic-ips).
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Validate the spec and resolve its defaults
  kubecluster.aws.cluster_spec:
    cluster: "{{ cluster }}"
  register: spec

- name: Build the network from the resolved spec
  kubecluster.aws.cluster_network:
    cluster: "{{ spec.cluster }}"

- name: Check that the cluster can move to the spec's version (the upgrade playbook does this first)
  kubecluster.aws.cluster_spec:
    cluster: "{{ cluster }}"
    kubernetes_upgrade: true
  register: spec

- name: Resolve the spec with md-0 scaled to 4 workers
  kubecluster.aws.cluster_spec:
    cluster: "{{ cluster }}"
    replicas:
      md-0: 4

- name: Only validate, offline
  kubecluster.aws.cluster_spec:
    cluster:
      name: capi-example
      region: ap-northeast-2
      kubernetes_version: v1.31.4
    check_account: false
"""

RETURN = r"""
cluster:
  description: The complete spec, every default filled in; availability zones as names when the account was read.
  returned: always
  type: dict
  sample:
    name: capi-example
    region: ap-northeast-2
    kubernetes_version: v1.31.4
    network:
      vpc_cidr: 10.0.0.0/16
      availability_zones: [ap-northeast-2a, ap-northeast-2b, ap-northeast-2c]
      nat_gateways: per_az
nat_gateway_count:
  description: How many NAT gateways, and so Elastic IPs, the NAT layout needs.
  returned: when check_account is true
  type: int
  sample: 3
upgrade:
  description: What moving the running machines to the spec's Kubernetes version means.
  returned: when check_account is true
  type: dict
  contains:
    from:
      description: The versions the cluster's pending and running machines carry, oldest first; empty for a new cluster.
      type: list
      elements: str
      sample: [v1.31.4]
    to:
      description: The spec's Kubernetes version.
      type: str
      sample: v1.32.0
    minor:
      description: Whether a machine runs an older minor version than the spec's (a minor upgrade).
      type: bool
      sample: true
    needed:
      description: Whether any machine runs another version than the spec's.
      type: bool
      sample: true
launches:
  description:
    - The machine sets with fewer live (pending, running, stopping or stopped) machines than their replicas, for which a
      run launches machines; the key pair, the instance profiles, the AMI ids and the instance types were checked for
      them. Empty when every set is full.
  returned: when check_account is true
  type: list
  elements: str
  sample: [control-plane, md-0]
elastic_ips:
  description: The Elastic IP quota and use in the region.
  returned: when check_account is true
  type: dict
  contains:
    quota:
      description: How many Elastic IPs the account may hold in the region; null when the run needs no new one (not read).
      type: int
      sample: 5
    in_use:
      description: How many are allocated now, by anyone; null when the run needs no new one (not read).
      type: int
      sample: 1
    owned:
      description: How many of them this cluster already owns.
      type: int
      sample: 0
"""

import os
from typing import Any, Dict

from ansible_collections.kubecluster.aws.plugins.module_utils import account
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import with_replicas


def load_spec(module: Any) -> Dict[str, Any]:
    """The resolved spec with the replicas option applied, or the module failed before any AWS call."""
    try:
        raw = with_replicas(module.params["cluster"], module.params["replicas"])
        return resolve(raw, os.environ)
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)
        raise  # fail_json exits; this only tells type checkers the function never falls through


def main() -> None:
    argument_spec = dict(
        check_account=dict(type="bool", default=True),
        replicas=dict(type="dict"),
        kubernetes_upgrade=dict(type="bool", default=False),
    )
    module = runner.cluster_module(argument_spec)
    if module.params["kubernetes_upgrade"] and not module.params["check_account"]:
        module.fail_json(msg="kubernetes_upgrade: needs check_account: true, to read the versions the machines run; "
                             "remove check_account: false")
    spec = load_spec(module)
    if not module.params["check_account"]:
        module.exit_json(changed=False, cluster=spec)
    ctx = Context.from_module(module, spec["region"])
    try:
        result = account.check_account(module, ctx, spec, module.params["kubernetes_upgrade"])
    except KubeclusterError as error:
        runner.fail(module, error)
    except runner.AWS_ERRORS as error:
        runner.fail_aws(module, error)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
