# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What deleting a whole cluster would remove, and what would stop it, before anything is deleted.

A delete goes in Cluster API's order (machines, load balancers, network) through three
modules; a problem found only by the last one (an instance of someone else in a private
subnet, a resource tagged as two clusters') would leave the cluster half-deleted. ``survey``
plans all three deletes up front, read-only, by ownership alone (only the cluster's name is
needed), and collects every reason not to start.
"""

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import describe_instances

from . import instances
from . import loadbalancer
from . import naming
from . import network
from .plan import Plan

LIVE_STATES = list(instances.LIVE_STATES)


class Teardown(object):
    """The survey's outcome: ``plan`` (every delete, in order), ``machine_sets`` (in the order they go) and ``blockers``."""

    def __init__(self):
        self.plan = Plan()
        self.machine_sets = []
        self.blockers = []

    @property
    def found(self):
        return bool(self.plan.actions or self.blockers)


def _machine_sets(ec2, cluster):
    """The sets the cluster's live machines belong to, workers first, then the control plane and the bastion."""
    filters = naming.owned_filters(cluster) + [{"Name": "instance-state-name", "Values": LIVE_STATES}]
    names = set()
    for reservation in describe_instances(ec2, Filters=filters):
        for instance in reservation["Instances"]:
            name = naming.tags_to_dict(instance.get("Tags")).get(naming.MACHINE_SET_TAG)
            if name:
                names.add(name)
    last = (naming.SET_CONTROL_PLANE, naming.SET_BASTION)
    return sorted(n for n in names if n not in last) + [n for n in last if n in names]


def survey(clients, spec):
    """Plan the whole delete of ``spec["name"]`` without applying it; nothing is written."""
    cluster = spec["name"]
    teardown = Teardown()
    teardown.machine_sets = _machine_sets(clients.ec2, cluster)
    for set_name in teardown.machine_sets:
        try:
            machine_set = instances.plan_absent(clients.ec2, spec, set_name, wait=False)
        except instances.MachineSetError as error:
            teardown.blockers.extend(error.problems or [str(error)])
            continue
        teardown.plan.extend(machine_set.plan)
    try:
        teardown.plan.extend(loadbalancer.plan_absent(clients, spec))
    except loadbalancer.LoadBalancerError as error:
        teardown.blockers.extend(error.problems or [str(error)])
    net = network.NetworkTeardown(clients.ec2, clients.elb, clients.elbv2, cluster)
    teardown.blockers.extend(net.double_claims() + net.stray_resources() + net.foreign_users)
    for instance in net.cluster_instances:
        # Machines go with their sets (and balancers with the API one); any other would stay in the way.
        if not naming.tags_to_dict(instance.get("Tags")).get(naming.MACHINE_SET_TAG):
            teardown.blockers.append("%s is tagged as the cluster's but belongs to no machine set; terminate it, then rerun"
                                     % network.instance_label(instance))
    teardown.plan.extend(net.plan(spec))
    return teardown
