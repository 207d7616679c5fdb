# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The whole AWS side of a cluster in one pass, as CAPA's AWSCluster and AWSMachine reconcilers do.

The same services as the per-resource modules, in create_cluster.yml's order, in one process, on one
Context whose EC2 and load balancing clients answer from a per-run read snapshot (snapshot.py):

1. the account checks (account.py), each only when the run launches or allocates something;
2. the network and security groups (network.py), NAT gateways started without waiting;
3. every machine set (instances.py), launched without waiting, surplus reported, not terminated;
4. the API load balancer (loadbalancer.py), registering the control plane;
5. the status (status.py), waited for once: NAT gateways available, machines running, NLB active.

A step's plan is applied before the next is planned, as the playbook's tasks did, so a step reads
what the one before made (a write makes the snapshot read again what it changed). In check mode
every step is planned against what exists, into what the steps before would create.
"""

from typing import Any, Callable, Dict, List, Optional

from . import account
from . import instances
from . import loadbalancer
from . import naming
from . import network
from . import securitygroups
from . import status
from . import status_desired
from .context import Context
from .plan import Plan

Spec = Dict[str, Any]


def set_names(spec: Spec) -> List[str]:
    """The machine sets in the order create_cluster.yml reconciles them: bastion, control plane, deployments."""
    return [naming.SET_BASTION, naming.SET_CONTROL_PLANE] + [d["name"] for d in spec["machine_deployments"]]


def prefetch(ctx: Context, cluster: str) -> Dict[str, Any]:
    """The broad reads, first: what the cluster owns, one describe per type, as its status reads it (status.read_owned),
    so that the services' narrower reads (by VPC, role, set, state...) are answered from them. The Elastic IPs are
    those of the NAT gateways (read with them). Returns the zones of the cluster's subnets (which name a zone count
    without reading the region) and how many addresses its live NAT gateways hold."""
    owned, network_found = status.read_owned(ctx.ec2, cluster, addresses=False)
    roles = (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE)
    zones = sorted({subnet["AvailabilityZone"] for subnet in network_found["subnets"].values()
                    if naming.is_owned(naming.tags_to_dict(subnet.get("Tags")), cluster)
                    and naming.tags_to_dict(subnet.get("Tags")).get(naming.ROLE_TAG) in roles})
    nat_eips = [nat for nat in owned["nat_gateways"].get(cluster, []) if nat["State"] in ("pending", "available")]
    return dict(zones_in_use=zones, nat_eips=len(status.nat_addresses(nat_eips)))


class Run:
    """One reconcile: the plans of its steps, applied one after the other by ``apply``."""

    def __init__(self, apply: Callable[[Plan, List[Dict[str, str]]], None]) -> None:
        self._apply = apply
        self.plans: List[Plan] = []

    def step(self, plan: Plan) -> Plan:
        self._apply(plan, [action for earlier in self.plans for action in earlier.as_list()])
        self.plans.append(plan)
        return plan

    @property
    def changed(self) -> bool:
        return any(plan.changed for plan in self.plans)

    def as_list(self) -> List[Dict[str, str]]:
        return [action for plan in self.plans for action in plan.as_list()]

    def render(self) -> str:
        actions = [plan.render() for plan in self.plans if plan.actions]
        return "".join(actions) if actions else "No changes: the AWS resources match the spec.\n"


def returned(plan: Plan) -> Dict[str, Any]:
    """A plan's return values, computed now (after its apply)."""
    return {key: value() if callable(value) else value for key, value in plan.returns.items()}


def reconcile(module: Any, ctx: Context, spec: Spec, run: Run, surge: Dict[str, int], check_mode: bool,
              wait: bool, wait_delay: int, kubernetes_upgrade: bool = False) -> Dict[str, Any]:
    """The whole AWS side of the spec; returns the module's values (but changed, plan and diff).

    ``surge``: machine set -> replicas for this run only (remove_node.yml's replacement first).
    Raises KubeclusterError before the step's first write when a step cannot be done as asked.
    """
    found = prefetch(ctx, spec["name"])
    checked = account.check_account(module, ctx, spec, kubernetes_upgrade, found["zones_in_use"], found["nat_eips"])
    spec = checked["cluster"]
    # What cannot change in place is refused before the first write: the network's own refusals come with its plan
    # (the first step), the API load balancer's are checked here (its step comes after the machines'); the same reads
    # answer its step later (snapshot).
    api_lb = spec["network"]["api_load_balancer"]
    loadbalancer.refuse_immutable_changes(loadbalancer.find_api_balancer(ctx, spec["name"], api_lb["type"]), api_lb,
                                          naming.load_balancer_name(spec["name"]))

    network_plan = run.step(network.plan_present(ctx, spec))
    network_view = returned(network_plan)["network"]

    machine_views: List[Dict[str, Any]] = []
    surplus: List[Dict[str, Any]] = []
    for set_name in set_names(spec):
        plan = run.step(instances.plan_present(ctx, spec, set_name, allow_missing_network=check_mode,
                                               replicas=surge.get(set_name), terminate_surplus=False))
        values = returned(plan)
        machine_views += values["machines"]
        surplus += values.get("surplus") or []
    # The bastion's security group, once the bastion is disabled and gone.
    run.step(securitygroups.plan_retired(ctx, spec))

    lb_plan = run.step(loadbalancer.plan_present(ctx, spec, allow_missing_network=check_mode))
    balancer = returned(lb_plan)["load_balancer"]

    desired = status_desired.desired_state(spec)
    last: List[status.ClusterStatus] = []

    def read() -> List[status.ClusterStatus]:
        # Each poll reads AWS again: only the NAT gateways, machines and load balancer once nothing else is awaited.
        if last:
            ctx.forget_reads(status.SETTLING_READS if last[0].settling else None)
        last[:] = status.survey(ctx.ec2, ctx.elbv2, ctx.elb, spec["region"], spec["name"], desired, addresses=False)
        return list(last)

    statuses = status.wait_until_ready(read, ctx.wait_timeout, wait_delay) if wait and not check_mode else read()
    return dict(cluster=spec, network=network_view, machines=machine_views, surplus=surplus, load_balancer=balancer,
                status=statuses[0], nat_gateway_count=checked["nat_gateway_count"], elastic_ips=checked["elastic_ips"],
                upgrade=checked["upgrade"], launches=checked["launches"])


def not_ready(cluster_status: status.ClusterStatus) -> Optional[str]:
    """Why the wait ended without the cluster ready, or None when it is ready."""
    view = cluster_status.view
    if view["phase"] == status.FAILED:
        return "Cluster %s failed, waiting will not help: %s" % (view["name"], view["failure_message"])
    if not status.is_ready(cluster_status):
        return "%s is %s, not ready: %s" % (view["name"], view["phase"], ", ".join(cluster_status.waiting_for))
    return None
