# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What deleting a whole cluster would remove, and what would stop it, before anything is deleted.

A delete goes in Cluster API's order (machines, load balancers, network) through three
modules; a problem found only by the last one (an instance of someone else in a private
subnet, a resource tagged as two clusters') would leave the cluster half-deleted. ``survey``
plans all three deletes up front, read-only, by ownership alone (only the cluster's name is
needed), and collects every reason not to start. The kubeconfig the cluster kept in SSM or Secrets
Manager (kubeconfig.py) goes last.
"""

from typing import Any, Dict, List

from . import instances
from . import kubeconfig
from . import loadbalancer
from . import lookup
from . import naming
from . import network
from .context import Context
from .errors import KubeclusterError
from .plan import Plan

Spec = Dict[str, Any]

LIVE_STATES = list(instances.LIVE_STATES)


class Teardown:
    """The survey's outcome: ``plan`` (every delete, in order), ``machine_sets`` (in the order they go) and ``blockers``."""

    def __init__(self) -> None:
        self.plan = Plan()
        self.machine_sets: List[str] = []
        self.blockers: List[str] = []
        self.warnings: List[str] = []

    @property
    def found(self) -> bool:
        return bool(self.plan.actions or self.blockers)

    def block(self, error: KubeclusterError) -> None:
        """Take a service's refusal as blockers: its problems one by one, else its message."""
        self.blockers.extend(error.problems or [str(error)])


def _machine_sets(ctx: Context, cluster: str) -> List[str]:
    """The sets the cluster's live machines belong to, workers first, then the control plane and the bastion."""
    filters = naming.owned_filters(cluster) + [{"Name": "instance-state-name", "Values": LIVE_STATES}]
    names = set()
    for instance in lookup.instances(ctx.ec2, filters):
        name = lookup.tags_of(instance).get(naming.MACHINE_SET_TAG)
        if name:
            names.add(name)
    last = (naming.SET_CONTROL_PLANE, naming.SET_BASTION)
    return sorted(n for n in names if n not in last) + [n for n in last if n in names]


def survey(ctx: Context, spec: Spec) -> Teardown:
    """Plan the whole delete of ``spec["name"]`` without applying it; nothing is written."""
    cluster = spec["name"]
    teardown = Teardown()
    teardown.machine_sets = _machine_sets(ctx, cluster)
    for set_name in teardown.machine_sets:
        try:
            teardown.plan.extend(instances.plan_absent(ctx.with_wait(False), spec, set_name))
        except instances.MachineSetError as error:
            teardown.block(error)
            continue
    try:
        teardown.plan.extend(loadbalancer.plan_absent(ctx, spec))
    except loadbalancer.LoadBalancerError as error:
        teardown.block(error)
    net = network.NetworkTeardown(ctx, cluster)
    teardown.blockers.extend(net.double_claims() + net.stray_resources() + net.foreign_users)
    for instance in net.cluster_instances:
        # Machines go with their sets (and balancers with the API one); any other would stay in the way.
        if not lookup.tags_of(instance).get(naming.MACHINE_SET_TAG):
            teardown.blockers.append("%s is tagged as the cluster's but belongs to no machine set; terminate it, then rerun"
                                     % lookup.instance_label(instance))
    teardown.plan.extend(net.plan(spec))
    # Last, once the machines that used it are gone: the admin kubeconfig kept in SSM or Secrets Manager.
    stored, teardown.warnings = kubeconfig.plan_absent(ctx, cluster)
    teardown.plan.extend(stored)
    return teardown
