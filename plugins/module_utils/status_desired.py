# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the spec wants of each machine set, for the cluster's status (cluster_info, cluster_infra)."""

from typing import Any, Callable, Dict, List, Optional

from . import instances
from . import machines
from . import naming
from . import status
from .spec import Spec, machine_set_spec


def set_names(spec: Spec) -> List[str]:
    return [naming.SET_BASTION, naming.SET_CONTROL_PLANE] + [d["name"] for d in spec["machine_deployments"]]


def up_to_date_judge(spec: Spec, set_name: str) -> Callable[[Dict[str, Any]], bool]:
    """Whether a machine of the set is up to date, as machine_set judges it: the ONE place cluster_info does.

    From the spec alone (the spec hash holds the image lookup's inputs, not its answer), so it costs
    no AWS call; a machine tagged with the hash of before that change counts when its AMI matches.
    """
    set_spec = machine_set_spec(spec, set_name)
    current = instances.spec_hash(set_name, set_spec)

    def judge(instance: Dict[str, Any]) -> bool:
        return instances.is_up_to_date(instance, set_name, set_spec, current)

    return judge


def desired_state(spec: Spec) -> status.Desired:
    """What the spec wants of each set, and how to tell whether a machine is outdated (as machine_set does)."""
    replicas = {name: machine_set_spec(spec, name)["replicas"] for name in set_names(spec)}
    # A set without replicas has no machine to be up to date with: its machines are not judged.
    judges = {name: up_to_date_judge(spec, name) for name, count in replicas.items() if count}

    def outdated(instance: Dict[str, Any]) -> Optional[bool]:
        judge = judges.get(machines.tags_of(instance).get(naming.MACHINE_SET_TAG) or "")
        return None if judge is None else not judge(instance)

    return status.Desired(replicas, outdated)
