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
    IPs are read first (one call each); the key pair, the instance profiles and named availability zones
    are checked when a machine set has fewer machines than its replicas (a run launches machines), the
    Elastic IP quota when the NAT layout needs more addresses than the cluster owns. A cluster that runs
    as its spec says is not checked again (an availability zone count is still read for the names).
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
        instance profiles and the Kubernetes version of the running machines.
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
      run launches machines; the key pair and the instance profiles were checked for them. Empty when every set is full.
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
      description: How many are allocated now, by anyone.
      type: int
      sample: 1
    owned:
      description: How many of them this cluster already owns.
      type: int
      sample: 0
"""

import collections
import copy
import os
from typing import Any, Dict, List, Optional, Set

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from ansible_collections.kubecluster.aws.plugins.module_utils import lookup
from ansible_collections.kubecluster.aws.plugins.module_utils import machines
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import iam as aws_iam
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import servicequotas as aws_servicequotas
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import check_against_account
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import instance_profiles
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import machine_set_spec
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import nat_gateway_count
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import upgrade_summary
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import with_zones

DEFAULT_EIP_QUOTA = 5


def elastic_ip_quota(ctx: Context) -> int:
    """The region's Elastic IP quota: Service Quotas first, as raised quotas only show there."""
    try:
        quota = aws_servicequotas.elastic_ip_quota(ctx.service_quotas)
    except AnsibleAWSError:
        quota = None  # not permitted or not served here: the account attribute holds the default quota
    if quota is None:
        quota = aws_ec2.vpc_max_elastic_ips(ctx.ec2)
    return DEFAULT_EIP_QUOTA if quota is None else quota


def existing_key_pairs(ec2: Any, key_name: Optional[str]) -> Optional[Set[str]]:
    if not key_name:
        return None
    return {pair["KeyName"] for pair in aws_ec2.describe_key_pairs(ec2, KeyNames=[key_name])}


def missing_instance_profiles(ctx: Context, spec: Dict[str, Any]) -> List[str]:
    """Field paths whose instance profile does not exist: machines could not launch with them."""
    profiles = instance_profiles(spec)
    missing = set(aws_iam.missing_instance_profiles(ctx.iam, list(profiles.values())))
    return sorted(path for path, name in profiles.items() if name in missing)


def launches(spec: Dict[str, Any], live: List[Dict[str, Any]]) -> List[str]:
    """The machine sets that are short of their replicas (a run launches machines for them), from the
    cluster's live machines (lookup.live_machines)."""
    sets = [naming.SET_BASTION, naming.SET_CONTROL_PLANE] + [d["name"] for d in spec["machine_deployments"]]
    have = collections.Counter(naming.tags_to_dict(instance.get("Tags")).get(naming.MACHINE_SET_TAG) for instance in live)
    return [name for name in sets if have[name] < machine_set_spec(spec, name)["replicas"]]


def check_account(module: Any, ctx: Context, spec: Dict[str, Any]) -> Dict[str, Any]:
    """The account checks, each only when the run will need what it checks: the key pair, the instance
    profiles and the named zones when a machine set is short of machines (a launch), the Elastic IP quota
    when the NAT layout needs more addresses than the cluster owns. The machines and the addresses are
    read first, once; a cluster that runs as its spec says needs no other read (but a zone count's names)."""
    wanted_zones = spec["network"]["availability_zones"]
    given = spec
    # Named zones need the region only to be checked; a count needs it for the names.
    spec = with_zones(spec, wanted_zones) if isinstance(wanted_zones, list) else runner.resolve_zones(module, spec, ctx.ec2)
    zones = spec["network"]["availability_zones"]
    addresses = aws_ec2.describe_addresses(ctx.ec2)
    owned = [a for a in addresses if naming.is_owned(naming.tags_to_dict(a.get("Tags")), spec["name"])]
    live = lookup.live_machines(ctx.ec2, spec["name"])
    running = [machines.machine_view(instance) for instance in live
               if instance["State"]["Name"] in ("pending", "running") and naming.KUBERNETES_VERSION_TAG in lookup.tags_of(instance)]
    short = launches(spec, live)
    needed_eips = nat_gateway_count(spec, len(zones)) - len(owned)
    if short and isinstance(wanted_zones, list):
        spec = runner.resolve_zones(module, given, ctx.ec2)
    quota = elastic_ip_quota(ctx) if needed_eips > 0 else None
    check_against_account(spec, zones, quota if quota is not None else DEFAULT_EIP_QUOTA, len(addresses), len(owned),
                          existing_key_pairs(ctx.ec2, spec["ssh_key_name"]) if short else None,
                          missing_instance_profiles(ctx, spec) if short else None, running,
                          kubernetes_upgrade=module.params["kubernetes_upgrade"])
    return dict(cluster=spec, nat_gateway_count=nat_gateway_count(spec, len(zones)),
                elastic_ips=dict(quota=quota, in_use=len(addresses), owned=len(owned)), upgrade=upgrade_summary(spec, running),
                launches=short)


def replica_count(set_name: str, value: Any) -> int:
    """A count of the replicas option: a whole number of at least 0, also as the text -e gives."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(["replicas.%s: %r is not a machine count; use a whole number of 0 or more" % (set_name, value)])
    return value


def with_replicas(raw: Any, replicas: Optional[Dict[str, Any]]) -> Any:
    """The user's spec with the replicas option's counts in place of the sets' replicas, so that
    the spec is validated (an even control plane refused) and returned with them.

    Raises SpecError naming an unknown set or a bad count. A spec that is no mapping is returned
    as it is, for resolve to refuse.
    """
    if not replicas or not isinstance(raw, dict):
        return raw
    out = copy.deepcopy(raw)
    deployments = out.get("machine_deployments")
    if deployments is None:
        # The spec's default: one machine deployment md-0 (spec.resolve).
        deployments = [{"name": "md-0"}]
    names = [d.get("name") for d in deployments if isinstance(d, dict)] if isinstance(deployments, list) else []
    errors: List[str] = []
    for set_name, value in replicas.items():
        try:
            count = replica_count(set_name, value)
        except SpecError as error:
            errors.extend(error.errors)
            continue
        if set_name == naming.SET_CONTROL_PLANE:
            control_plane = out.get("control_plane")
            out["control_plane"] = dict(control_plane if isinstance(control_plane, dict) else {}, replicas=count)
        elif set_name in names:
            index = names.index(set_name)
            deployments[index] = dict(deployments[index], replicas=count)
            out["machine_deployments"] = deployments
        else:
            why = ("the bastion is one machine or none (cluster.network.bastion.enabled)" if set_name == naming.SET_BASTION
                   else "it is not a machine set of the spec")
            errors.append("replicas.%s: %s; name %s" % (set_name, why, ", ".join([naming.SET_CONTROL_PLANE] + [str(n) for n in names])))
    if errors:
        raise SpecError(errors)
    return out


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
        result = check_account(module, ctx, spec)
    except KubeclusterError as error:
        runner.fail(module, error)
    except (AnsibleAWSError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        runner.fail_aws(module, error)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
