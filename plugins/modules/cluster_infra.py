#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: cluster_infra
short_description: Reconcile a cluster's whole AWS side in one pass
version_added: 1.0.0
description:
  - Validates the spec, checks the account, then reconciles the network and security groups, every
    machine set and the API server load balancer, and reads the cluster's status - what
    M(kubecluster.aws.cluster_spec), M(kubecluster.aws.cluster_network), M(kubecluster.aws.machine_set) (once per
    set), M(kubecluster.aws.apiserver_lb) and M(kubecluster.aws.cluster_info) do one after the other, in one
    process, as Cluster API's AWSCluster and AWSMachine reconcilers do. C(create_cluster.yml) runs it.
  - Each resource type is read once per run (a read snapshot the services share); a write makes what it
    changed read again. A cluster that already matches its spec costs about one read per resource type and no write.
  - The account checks run only when needed - the key pair, the instance profiles, named availability zones, the
    AMI ids (one DescribeImages for all the sets) and the instance types offered in the sets' zones (one
    DescribeInstanceTypeOfferings) when a machine set is short of machines, named availability zones also when one
    is not yet a zone of the cluster's subnets, the Elastic IP quota when the NAT layout needs new addresses.
  - The long operations are started together and waited for once - NAT gateways are created without waiting,
    machines launched without waiting, the network load balancer created without waiting; then, with O(wait),
    one wait until every NAT gateway is available, every machine runs and the load balancer is active, failing
    after O(wait_timeout) naming what is not ready.
  - Machines over a set's replicas are not terminated but returned in RV(surplus), in Cluster API's deletion
    order, for the playbook to drain and remove after the node plays.
  - With O(lease) it first takes the cluster's run lease, as M(kubecluster.aws.cluster_lease) does, so that a
    playbook needs no module run of its own for it, and with O(lease.release) gives it back when it ends.
  - A spec that does not validate fails before any AWS call; a step that cannot be done as asked fails before
    its first write. Check mode returns the whole plan without changing anything; C(--diff) shows it.
  - Drift is reconciled or refused. The spec's C(additional_tags) are brought to every owned resource on every run
    (machines' volumes and network interfaces included), in one CreateTags per set of tags; a key is removed only
    when the tag C(kubecluster.aws/managed-tags) records that the collection set it. What cannot change in place
    (the VPC CIDR, a zone removed or one the VPC has no room for, NAT gateways to none, the API load balancer's
    type or scheme) fails before the first write, naming what would have to be recreated. A disabled bastion's
    security group is deleted once the bastion is terminated.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  replicas:
    description:
      - Machine counts that replace the spec's, by machine set, as M(kubecluster.aws.cluster_spec)'s O(replicas)
        (validated with the spec; the control plane's count must stay odd).
    type: dict
  surge:
    description:
      - Machine counts for this run only, by machine set, not validated as the spec is (remove_node.yml launches
        a second control-plane machine before removing the first), as M(kubecluster.aws.machine_set)'s O(replicas).
    type: dict
    default: {}
  wait:
    description:
      - Wait, once, after everything is started, until the cluster is provisioned (NAT gateways available, the
        API load balancer active) and every machine runs. Never in check mode.
    type: bool
    default: true
  wait_timeout:
    description: Seconds the wait (and a wait for control-plane machines before their registration) may take.
    type: int
    default: 900
  wait_delay:
    description: Seconds between two reads while waiting.
    type: int
    default: 5
  lease:
    description:
      - Take the cluster's run lease (M(kubecluster.aws.cluster_lease)) once the spec is validated, before any other
        AWS call; another run holding it fails the module naming that run, with nothing read or changed. RV(lease)
        holds its token, for the playbook to renew and release it. Without this option no lease is taken (a
        playbook that holds one already, or a user's own).
      - In check mode the lease is only read, and a lease another run holds is a warning.
    type: dict
    suboptions:
      holder:
        description: Who holds the lease, as M(kubecluster.aws.cluster_lease)'s O(kubecluster.aws.cluster_lease#module:holder).
        type: str
        default: unknown
      ttl:
        description: Seconds from now until the lease expires.
        type: int
        default: 1800
      force:
        description: Break a lease another run holds that has not expired (only when that run is known to be dead).
        type: bool
        default: false
      release:
        description:
          - Give the lease back when the module ends, whether it succeeded or failed, for a run that does nothing
            else under it (C(create_cluster.yml --tags infra)). Without it a failure still returns RV(lease), so
            that the playbook can give it back.
        type: bool
        default: false
attributes:
  check_mode:
    support: full
    description: Returns the whole plan, each step planned into what the steps before would create.
  diff_mode:
    support: full
    description: The planned changes, one line each.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Reconcile the cluster's AWS side and wait until it is provisioned
  kubecluster.aws.cluster_infra:
    cluster: "{{ cluster }}"
  register: infra

- name: Show the endpoint and the machines
  ansible.builtin.debug:
    msg: "{{ infra.load_balancer.control_plane_endpoint }}: {{ infra.machines | map(attribute='name') | join(', ') }}"

- name: Preview, changing nothing
  kubecluster.aws.cluster_infra:
    cluster: "{{ cluster }}"
  check_mode: true
  diff: true

- name: Reconcile under the cluster's run lease, given back at the end
  kubecluster.aws.cluster_infra:
    cluster: "{{ cluster }}"
    lease:
      holder: "{{ lookup('env', 'USER') }} my_playbook.yml"
      release: true

- name: Scale md-0 to 4 workers without waiting
  kubecluster.aws.cluster_infra:
    cluster: "{{ cluster }}"
    replicas:
      md-0: 4
    wait: false
"""

RETURN = r"""
cluster:
  description: The complete spec, every default filled in and the availability zones as names (M(kubecluster.aws.cluster_spec)'s RV(cluster)).
  returned: always
  type: dict
  sample: {name: capi-example, region: ap-northeast-2, kubernetes_version: v1.31.4}
network:
  description: The network and security groups (M(kubecluster.aws.cluster_network)'s RV(network)).
  returned: always
  type: dict
  sample: {vpc_id: vpc-0123456789abcdef0, managed: true, security_groups: {node: sg-0123456789abcdef0}}
machines:
  description:
    - Every machine of every set after the run, in the sets' order (bastion, control plane, deployments), as
      M(kubecluster.aws.machine_set)'s RV(machines); surplus machines included.
  returned: always
  type: list
  elements: dict
  sample: [{name: capi-example-control-plane-abcde, instance_id: i-0123456789abcdef0, set: control-plane, state: pending}]
surplus:
  description: The machines over their set's replicas, in Cluster API's deletion order per set, left running.
  returned: always
  type: list
  elements: dict
  sample: []
load_balancer:
  description: The API server load balancer (M(kubecluster.aws.apiserver_lb)'s RV(load_balancer)).
  returned: always
  type: dict
  sample: {name: capi-example-apiserver, type: nlb, control_plane_endpoint: "capi-example-apiserver-0123.elb.ap-northeast-2.amazonaws.com:6443"}
status:
  description: The cluster's status after the run (and the wait), as M(kubecluster.aws.cluster_info)'s RV(cluster).
  returned: always
  type: dict
  sample: {name: capi-example, phase: Provisioned, machines: []}
nat_gateway_count:
  description: How many NAT gateways, and so Elastic IPs, the NAT layout needs.
  returned: always
  type: int
  sample: 3
elastic_ips:
  description: The Elastic IP quota (null when not read, as no new address is needed), the addresses in use and the cluster's.
  returned: always
  type: dict
  sample: {quota: null, in_use: 3, owned: 3}
upgrade:
  description: What moving the running machines to the spec's Kubernetes version means (M(kubecluster.aws.cluster_spec)'s RV(upgrade)).
  returned: always
  type: dict
  sample: {from: [v1.31.4], to: v1.31.4, minor: false, needed: false}
lease:
  description:
    - The run lease O(lease) took, as M(kubecluster.aws.cluster_lease) returns it - RV(lease.token) (null after
      O(lease.release) and in check mode), RV(lease.outcome) and who holds it since when. Returned on failure too,
      and when another run holds it (RV(lease.outcome) V(held), its holder and times).
  returned: when O(lease) is given and the spec validates
  type: dict
  contains:
    name:
      description: The SSM parameter of the lease.
      type: str
      sample: /kubecluster.aws/clusters/capi-example/lease
    token:
      description: The token of the lease this run holds; pass it to M(kubecluster.aws.cluster_lease) to renew and release it.
      type: str
      sample: 0f8c6c3e-2b7a-4f53-9a57-5f0e2f2f9d71
    outcome:
      description:
        - How it was taken - V(acquired) or V(taken_over) (from RV(lease.previous_holder)); in check mode
          V(would_acquire), V(would_take_over) or V(held) (another run holds it).
      type: str
      sample: acquired
    released:
      description: Whether it was given back (O(lease.release)).
      type: bool
      sample: false
    previous_holder:
      description: The holder of the lease this run took over or broke, and since when.
      type: str
      sample: AWX job 17 since 2025-01-31T07:10:00Z
    holder:
      description: Who holds the lease.
      type: str
      sample: root@ctl01 create_cluster.yml
    since:
      description: When the holder took it, UTC ISO 8601.
      type: str
      sample: "2025-01-31T08:00:00Z"
    expires:
      description: When it expires unless renewed, UTC ISO 8601.
      type: str
      sample: "2025-01-31T08:30:00Z"
launches:
  description: The machine sets that were short of machines when the run started.
  returned: always
  type: list
  elements: str
  sample: []
plan:
  description: The planned actions of every step, in order; applied unless in check mode.
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
      sample: capi-example-nat-ap-northeast-2a
    detail:
      description: What changes.
      type: str
      sample: in capi-example-subnet-public-ap-northeast-2a
"""

import os
from typing import Any, Callable, Dict, List

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from ansible_collections.kubecluster.aws.plugins.module_utils import infra
from ansible_collections.kubecluster.aws.plugins.module_utils import lease as lease_utils
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import replica_count
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import with_replicas


def load(module: Any) -> Dict[str, Any]:
    """The resolved spec with the replicas option applied, and the options checked, before any AWS call."""
    params = module.params
    errors: List[str] = []
    for option in ("wait_timeout", "wait_delay"):
        if params[option] < 1:
            errors.append("%s: must be at least 1 second, not %d" % (option, params[option]))
    if params["lease"] and not lease_utils.MIN_TTL <= params["lease"]["ttl"] <= lease_utils.MAX_TTL:
        errors.append("lease.ttl: must be from %d to %d seconds, not %d" % (lease_utils.MIN_TTL, lease_utils.MAX_TTL, params["lease"]["ttl"]))
    try:
        spec = resolve(with_replicas(params["cluster"], params["replicas"]), os.environ)
        names = infra.set_names(spec)
        for set_name, value in (params["surge"] or {}).items():
            if set_name not in names:
                errors.append("surge.%s: not a machine set of the spec; name %s" % (set_name, ", ".join(names)))
            else:
                params["surge"][set_name] = replica_count(set_name, value)
    except SpecError as error:
        errors = error.errors + errors
    if errors:
        module.fail_json(msg="; ".join(errors), errors=errors)
    return spec


class RunLease:
    """The run lease of O(lease): taken before the reconcile, given back at the end with O(lease.release) (on a
    failure too), returned (RV(lease)) in every result after it was taken."""

    def __init__(self, module: Any, ctx: Context, spec: Dict[str, Any]) -> None:
        self.module = module
        self.wanted = module.params["lease"]
        self.lease = lease_utils.Lease(ctx.ssm, spec["name"], spec["region"]) if self.wanted else None
        self.view: Dict[str, Any] = {}

    def take(self) -> None:
        if self.lease is None:
            return
        wanted = self.wanted
        try:
            out, _diff = lease_utils.take(self.module, self.lease, None, wanted["holder"], wanted["ttl"], wanted["force"])
        except lease_utils.LeaseHeld as held:
            self.module.fail_json(msg=str(held), lease=dict(lease_utils.visible(held.lease), name=self.lease.name, outcome="held",
                                                            token=None))
        except KubeclusterError as error:
            runner.fail(self.module, error)
        except runner.AWS_ERRORS as error:
            runner.fail_aws(self.module, error)
        out.pop("changed")  # bookkeeping: taking and giving back the lease is no change to the cluster
        self.view = dict(out, name=self.lease.name, released=False)

    def returned(self, done: bool) -> Dict[str, Any]:
        """RV(lease), given back first when the run is over (``done``) and O(lease.release) asks for it."""
        if self.lease is None:
            return {}
        if done and self.wanted["release"] and self.view.get("token"):
            out, _diff = lease_utils.give_back(self.module, self.lease, self.view["token"])
            self.view.update(token=None, released=out["outcome"] == "released")
        return {"lease": self.view}

    def fail(self, fail: Callable[..., Any], error: Exception) -> None:
        """Fail as ``fail`` (runner.fail or runner.fail_aws) does, with RV(lease) (given back if asked)."""
        try:
            extra = self.returned(done=True)
        except (KubeclusterError, AnsibleAWSError) as release_error:
            self.module.warn("the lease of cluster %s could not be given back: %s" % (self.lease.cluster if self.lease else "?", release_error))
            extra = {"lease": self.view}
        fail(self.module, error, **extra)


def main() -> None:
    argument_spec = dict(
        replicas=dict(type="dict"),
        surge=dict(type="dict", default={}),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
        wait_delay=dict(type="int", default=5),
        lease=dict(type="dict", options=dict(
            holder=dict(type="str", default="unknown"),
            ttl=dict(type="int", default=lease_utils.DEFAULT_TTL),
            force=dict(type="bool", default=False),
            release=dict(type="bool", default=False),
        )),
    )
    module = runner.cluster_module(argument_spec)
    params = module.params
    spec = load(module)
    ctx = Context.from_module(module, spec["region"], wait=False, wait_timeout=params["wait_timeout"], snapshot=True)
    run_lease = RunLease(module, ctx, spec)
    run_lease.take()

    def apply(plan: Plan, done: List[Dict[str, str]]) -> None:
        if not module.check_mode:
            runner.apply(module, plan, done)

    run = infra.Run(apply)
    try:
        result = infra.reconcile(module, ctx, spec, run, params["surge"], module.check_mode, params["wait"], params["wait_delay"])
    except KubeclusterError as error:
        run_lease.fail(runner.fail, error)
    except runner.AWS_ERRORS as error:
        run_lease.fail(runner.fail_aws, error)
    cluster_status = result.pop("status")
    out = dict(result)
    out.update(run_lease.returned(done=True))
    out.update(status=cluster_status.view, changed=run.changed, plan=run.as_list())
    if module._diff:
        out["diff"] = {"prepared": "kubecluster.aws.cluster_infra %s in %s\n%s" % (spec["name"], spec["region"], run.render())}
    why = infra.not_ready(cluster_status) if params["wait"] and not module.check_mode else None
    if why:
        module.fail_json(msg="Timed out after %d seconds waiting for the cluster: %s" % (params["wait_timeout"], why)
                         if "failed, waiting" not in why else why, **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
