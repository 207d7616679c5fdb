# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one machine view: what the collection says about an EC2 instance of a cluster.

machine_set returns it for the machines of a set (with ``outdated`` added, which needs the
set's spec hash), cluster_info for every machine of a cluster, and the inventory plugin reads
its machines through it before the node contract (hosts.py) turns them into hosts. One
function, so that a key means the same thing, with the same value, wherever it shows up.
"""

from typing import Any, Dict

from . import naming

Instance = Dict[str, Any]
MachineView = Dict[str, Any]


def iso(value: Any) -> Any:
    """A launch time as ISO 8601 text (boto3 gives a datetime; a placeholder stays as it is)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def tags_of(instance: Instance) -> Dict[str, str]:
    tags: Dict[str, str] = naming.tags_to_dict(instance.get("Tags"))
    return tags


def machine_view(instance: Instance) -> MachineView:
    """An instance of ``DescribeInstances`` as the collection shows a machine.

    ``name`` is the Name tag, else the instance id; ``set`` the machine-set tag, ``role``
    CAPA's role tag and ``kubernetes_version`` the version it was launched for, each None when
    the instance has no such tag (the bastion has no version; machines launched before the tag
    existed have none either).
    """
    tags = tags_of(instance)
    return {
        "instance_id": instance["InstanceId"],
        "name": tags.get("Name", instance["InstanceId"]),
        "set": tags.get(naming.MACHINE_SET_TAG),
        "role": tags.get(naming.ROLE_TAG),
        "kubernetes_version": tags.get(naming.KUBERNETES_VERSION_TAG),
        "state": instance["State"]["Name"],
        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone"),
        "subnet_id": instance.get("SubnetId"),
        "private_ip": instance.get("PrivateIpAddress"),
        "private_dns_name": instance.get("PrivateDnsName"),
        "public_ip": instance.get("PublicIpAddress"),
        "image_id": instance.get("ImageId"),
        "instance_type": instance.get("InstanceType"),
        "launch_time": iso(instance.get("LaunchTime")),
    }
