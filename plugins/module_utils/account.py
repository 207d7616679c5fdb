# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The account checks of a spec (cluster_spec, cluster_infra): what only AWS knows, each read only when
the run needs what it checks."""

import collections
from typing import Any, Dict, List, Optional, Set

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from . import instances
from . import lookup
from . import machines
from . import naming
from . import runner
from .aws import ec2 as aws_ec2
from .aws import iam as aws_iam
from .aws import servicequotas as aws_servicequotas
from .context import Context
from .spec import check_against_account
from .spec import instance_profiles
from .spec import machine_set_spec
from .spec import nat_gateway_count
from .spec import upgrade_summary
from .spec import with_zones

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


def existing_images(ec2: Any, spec: Dict[str, Any], launching: List[str]) -> Optional[Set[str]]:
    """Which of the AMI ids the launching sets name exist (and this account may use): one DescribeImages for them all,
    filtered by id so that a missing one is left out rather than failing the call; None when no set names one."""
    ids = sorted({machine_set_spec(spec, name)["ami_id"] for name in launching} - {None})
    if not ids:
        return None
    return {image["ImageId"] for image in aws_ec2.describe_images(ec2, Filters=[{"Name": "image-id", "Values": ids}])}


def type_offerings(ec2: Any, spec: Dict[str, Any], launching: List[str]) -> Optional[Dict[str, Set[str]]]:
    """The zones of the region that offer each instance type the launching sets use: one DescribeInstanceTypeOfferings
    for them all (its pages); None when nothing launches."""
    types = sorted({machine_set_spec(spec, name)["instance_type"] for name in launching})
    if not types:
        return None
    offered: Dict[str, Set[str]] = {instance_type: set() for instance_type in types}
    for offering in aws_ec2.describe_instance_type_offerings(ec2, LocationType="availability-zone",
                                                             Filters=[{"Name": "instance-type", "Values": types}]):
        offered.setdefault(offering["InstanceType"], set()).add(offering["Location"])
    return offered


def image_lookup_failures(ec2: Any, spec: Dict[str, Any], launching: List[str],
                          offerings: Optional[Dict[str, Set[str]]]) -> List[str]:
    """Why CAPA's image lookup finds no AMI for a launching set that names none: the same lookup the launch makes
    (instances.looked_up_image, whose reads the run's snapshot answers again at the launch), done before any write.
    A set whose instance type is offered nowhere is left to that refusal: the lookup reads the type's architecture."""
    failures: List[str] = []
    for name in launching:
        set_spec = machine_set_spec(spec, name)
        if set_spec["ami_id"] or not (offerings or {}).get(set_spec["instance_type"]):
            continue
        try:
            instances.looked_up_image(ec2, spec, name, set_spec)
        except instances.MachineSetError as error:
            failures.append(error.message)
    return failures


def launches(spec: Dict[str, Any], live: List[Dict[str, Any]]) -> List[str]:
    """The machine sets that are short of their replicas (a run launches machines for them), from the
    cluster's live machines (lookup.live_machines)."""
    sets = [naming.SET_BASTION, naming.SET_CONTROL_PLANE] + [d["name"] for d in spec["machine_deployments"]]
    have = collections.Counter(naming.tags_to_dict(instance.get("Tags")).get(naming.MACHINE_SET_TAG) for instance in live)
    return [name for name in sets if have[name] < machine_set_spec(spec, name)["replicas"]]


def check_account(module: Any, ctx: Context, spec: Dict[str, Any], kubernetes_upgrade: bool = False,
                  zones_in_use: Optional[List[str]] = None, nat_eips: Optional[int] = None) -> Dict[str, Any]:
    """The account checks, each only when the run will need what it checks: the key pair, the instance
    profiles and the named zones when a machine set is short of machines (a launch), the Elastic IP quota
    (and every address of the region) when the NAT layout needs more addresses than the cluster owns. The
    machines and the cluster's addresses are read first, once; a cluster that runs as its spec says needs no
    other read (but a zone count's names). Before a launch, the launching sets' AMI ids and instance types are checked
    too (one read each for all the sets). ``zones_in_use``: the zones of the cluster's subnets, which name a
    zone count of as many zones without reading the region; ``nat_eips``: the addresses the cluster's live NAT
    gateways hold, which spare reading its addresses when they are as many as the NAT layout needs."""
    wanted_zones = spec["network"]["availability_zones"]
    given = spec
    # Named zones need the region only to be checked; a count needs it for the names, unless the cluster has them.
    if isinstance(wanted_zones, list):
        spec = with_zones(spec, wanted_zones)
    elif zones_in_use and len(zones_in_use) == wanted_zones and all(
            isinstance(d["availability_zones"], (list, int, type(None))) for d in spec["machine_deployments"]):
        spec = with_zones(spec, sorted(zones_in_use))
    else:
        spec = runner.resolve_zones(module, spec, ctx.ec2)
    zones = spec["network"]["availability_zones"]
    nat_count = nat_gateway_count(spec, len(zones))
    owned_count = (nat_eips if nat_eips is not None and nat_eips >= nat_count
                   else len(aws_ec2.describe_addresses(ctx.ec2, Filters=naming.owned_filters(spec["name"]))))
    live = lookup.live_machines(ctx.ec2, spec["name"])
    running = [machines.machine_view(instance) for instance in live
               if instance["State"]["Name"] in ("pending", "running") and naming.KUBERNETES_VERSION_TAG in lookup.tags_of(instance)]
    short = launches(spec, live)
    needed_eips = nat_count - owned_count
    # Named zones are checked against the region (when a machine set takes its zones from them) before a launch,
    # and before a subnet would be made in a zone the cluster's subnets are not in yet: a misspelt zone fails here.
    if isinstance(wanted_zones, list) and (short or not zones_in_use or set(wanted_zones) - set(zones_in_use)):
        spec = runner.resolve_zones(module, given, ctx.ec2)
    quota: Optional[int] = None
    in_use: Optional[int] = None
    if needed_eips > 0:
        quota = elastic_ip_quota(ctx)
        in_use = len(aws_ec2.describe_addresses(ctx.ec2))
    offerings = type_offerings(ctx.ec2, spec, short)
    check_against_account(spec, zones, quota if quota is not None else DEFAULT_EIP_QUOTA, in_use or 0, owned_count,
                          existing_key_pairs(ctx.ec2, spec["ssh_key_name"]) if short else None,
                          missing_instance_profiles(ctx, spec) if short else None, running,
                          kubernetes_upgrade=kubernetes_upgrade, launching=short,
                          images=existing_images(ctx.ec2, spec, short), offerings=offerings,
                          lookup_failures=image_lookup_failures(ctx.ec2, spec, short, offerings))
    return dict(cluster=spec, nat_gateway_count=nat_count,
                elastic_ips=dict(quota=quota, in_use=in_use, owned=owned_count), upgrade=upgrade_summary(spec, running),
                launches=short)
