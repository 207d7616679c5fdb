# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drift of what exists from the spec: reconciled (tags) or refused (what cannot change in place).

Tags. Every owned resource carries the spec's ``additional_tags`` and, when there are any, the
record of their keys (naming.MANAGED_TAGS_TAG). ``TagDrift`` collects the resources a service
read anyway (no read of its own) and plans what brings their tags back to the spec: the added or
changed tags set with one CreateTags per set of tags (every resource needing the same ones in one
call), and the keys the record lists that the spec no longer has removed with one DeleteTags per
set of keys. Keys the collection did not set (not in the record) are never removed, as amazon.aws's
``purge_tags`` keeps tags it was not given; reserved keys (ownership, roles, Name) are never touched.
A resource may bring ids that were tagged with it and follow its tags (an instance's volumes and
network interfaces, a NAT gateway's Elastic IP): they are not read, and get the same writes.

Refusals. What a cluster is built on cannot change in place: the VPC's CIDR, a zone the cluster
has subnets in, a NAT layout with NAT gateways changed to none. ``refuse_*`` raise DriftError,
naming the field, the value the cluster has, the spec's, and what would have to be recreated,
as CAPA's AWSCluster webhook refuses such updates. A zone added is added when its subnets fit
beside the existing ones; CAPA's split cuts the whole VPC for the zone count, so in a VPC it made
they never do, and the addition is refused too (``refuse_overlapping_subnets``). From none to
single or per_az, and between single and per_az, the NAT layout changes in place.
"""

import collections
import ipaddress
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from . import naming
from .aws import ec2 as aws_ec2
from .context import Context
from .errors import KubeclusterError
from .plan import Plan

Resource = Dict[str, Any]
Spec = Dict[str, Any]
Tags = Dict[str, str]

RECREATE = "delete the cluster and create it again (delete_cluster.yml, then create_cluster.yml)"


class DriftError(KubeclusterError):
    """The spec asks for a change that cannot be made in place; the message says what would have to be recreated."""


# --- tags ------------------------------------------------------------------------------------

def wanted_tags(additional_tags: Optional[Tags]) -> Tags:
    """The tags the collection keeps in line with the spec: the additional tags and the record of their keys."""
    wanted = dict(additional_tags or {})
    if wanted:
        wanted[naming.MANAGED_TAGS_TAG] = naming.managed_tags_value(wanted)
    return wanted


def tag_changes(have: Optional[Tags], additional_tags: Optional[Tags]) -> Tuple[Tags, List[str]]:
    """(tags to set, keys to remove) that bring a resource's tags ``have`` to the spec's ``additional_tags``.

    Removed: the keys the resource's record lists that the spec no longer has, and the record itself
    once no additional tag is left; never a reserved key, never a key the record does not list.
    """
    have = dict(have or {})
    additional = dict(additional_tags or {})
    add = {key: value for key, value in wanted_tags(additional).items() if have.get(key) != value}
    remove = [key for key in naming.managed_tag_keys(have)
              if key not in additional and key in have and not naming.reserved_tag_key(key)]
    if not additional and naming.MANAGED_TAGS_TAG in have:
        remove.append(naming.MANAGED_TAGS_TAG)
    return add, sorted(remove)


class _Drifted:
    def __init__(self, kind: str, name: str, ids: List[str], add: Tags, remove: List[str]) -> None:
        self.kind = kind
        self.name = name
        self.ids = ids
        self.add = add
        self.remove = remove


class TagDrift:
    """The resources of one plan whose tags drifted from the spec's additional_tags, planned in batches."""

    def __init__(self, spec: Spec) -> None:
        self.additional: Tags = dict(spec["additional_tags"] or {})
        self.drifted: List[_Drifted] = []

    def check(self, kind: str, name: str, resource_id: Optional[str], tags: Optional[Tags], follow: Iterable[Optional[str]] = ()) -> bool:
        """Note the resource ``resource_id`` (a plan's kind and name, its tags as read) when its tags drifted; the
        ids ``follow`` (tagged with it, not read) get the same writes. Returns whether it drifted."""
        if not resource_id:
            return False
        add, remove = tag_changes(tags, self.additional)
        if not add and not remove:
            return False
        ids = [resource_id] + [ident for ident in follow if ident]
        self.drifted.append(_Drifted(kind, name, ids, add, remove))
        return True

    def plan(self, ctx: Context, plan: Plan) -> None:
        """Add to ``plan`` one CreateTags per set of tags to set, then one DeleteTags per set of keys to remove."""
        adds: Dict[Tuple[Tuple[str, str], ...], List[_Drifted]] = collections.OrderedDict()
        removes: Dict[Tuple[str, ...], List[_Drifted]] = collections.OrderedDict()
        for item in self.drifted:
            if item.add:
                adds.setdefault(tuple(sorted(item.add.items())), []).append(item)
            if item.remove:
                removes.setdefault(tuple(item.remove), []).append(item)
        for tags, items in adds.items():
            detail = "set " + ", ".join("%s=%s" % pair for pair in tags) + _counted(items)
            plan.update(_kind(items), _names(items), _call(aws_ec2.create_tags, ctx, _ids(items), dict(tags)), detail)
        for keys, items in removes.items():
            detail = "remove " + ", ".join(keys) + _counted(items)
            plan.update(_kind(items), _names(items), _call(aws_ec2.delete_tags, ctx, _ids(items), list(keys)), detail)


def _call(call: Callable[..., Any], ctx: Context, ids: List[str], what: Any) -> Callable[[], Any]:
    return lambda: call(ctx.ec2, ids, what)


def _ids(items: Sequence[_Drifted]) -> List[str]:
    return [ident for item in items for ident in item.ids]


def _names(items: Sequence[_Drifted]) -> str:
    return ", ".join(item.name for item in items)


def _kind(items: Sequence[_Drifted]) -> str:
    kinds = sorted({item.kind for item in items})
    return (kinds[0] if len(kinds) == 1 else "resource") + " tags"


def _counted(items: Sequence[_Drifted]) -> str:
    followers = sum(len(item.ids) - 1 for item in items)
    return " (with %d volume(s), interface(s) or address(es) tagged with them)" % followers if followers else ""


# --- what cannot change in place ---------------------------------------------------------------

def refuse_vpc_cidr(spec: Spec, current_vpc: Optional[Resource]) -> None:
    """A managed VPC's CIDR is fixed at its creation (every subnet is cut from it)."""
    wanted = spec["network"]["vpc_cidr"]
    if current_vpc and current_vpc.get("CidrBlock") and current_vpc["CidrBlock"] != wanted:
        raise DriftError("cluster.network.vpc_cidr: cluster %s's VPC %s is %s, not %s, and a VPC's CIDR cannot change in place "
                         "(the VPC, its subnets and everything in them would have to be recreated); keep vpc_cidr: %s, or %s"
                         % (spec["name"], current_vpc["VpcId"], current_vpc["CidrBlock"], wanted, current_vpc["CidrBlock"], RECREATE))


def refuse_removed_zones(spec: Spec, zones_in_use: Iterable[str]) -> None:
    """A zone the cluster has subnets in stays: its subnets, route tables, NAT gateway and machines would go."""
    wanted = list(spec["network"]["availability_zones"])
    in_use = sorted(set(zones_in_use))
    removed = [zone for zone in in_use if zone not in wanted]
    if removed:
        raise DriftError("cluster.network.availability_zones: cluster %s has subnets in %s, but the spec gives %s; a zone cannot be "
                         "removed in place (its subnets, route tables, NAT gateway and the machines in it would have to go): "
                         "list %s again (zones can be added), or %s"
                         % (spec["name"], ", ".join(in_use), ", ".join(wanted), ", ".join(removed), RECREATE))


def refuse_overlapping_subnets(spec: Spec, missing: Sequence[Mapping[str, Any]], existing: Dict[str, str]) -> None:
    """A new zone's subnets are cut from the VPC as CAPA cuts it for the new zone count, which overlaps the
    subnets cut for the old one: such zones cannot be added in place. ``missing``: the wanted subnets that do
    not exist (role, zone, cidr, name); ``existing``: {name: CIDR} of the cluster's subnets."""
    clashes = []
    for want in missing:
        new = ipaddress.ip_network(want["cidr"])
        hit = sorted(name for name, cidr in existing.items() if new.overlaps(ipaddress.ip_network(cidr)))
        if hit:
            clashes.append("%s (%s) overlaps %s" % (want["name"], want["cidr"], ", ".join(hit)))
    if clashes:
        zones = sorted({want["zone"] for want in missing})
        raise DriftError("cluster.network.availability_zones: adding %s needs subnets the VPC has no room for: %s (the VPC "
                         "%s was cut for %d zone(s) when the cluster was created); zones cannot be added in place to this "
                         "cluster: list only the zones it has, or %s"
                         % (", ".join(zones), "; ".join(clashes), spec["network"]["vpc_cidr"],
                            len(spec["network"]["availability_zones"]) - len(zones), RECREATE))


def refuse_nat_removal(spec: Spec, nat_gateways: Sequence[Resource], zone_count: int) -> None:
    """NAT gateways (per_az or single) cannot go in place: the private subnets' machines would lose their way out."""
    mode = spec["network"]["nat_gateways"]
    if mode != "none" or not nat_gateways:
        return
    have = "per_az" if len(nat_gateways) > 1 or zone_count == 1 else "single"
    raise DriftError("cluster.network.nat_gateways: cluster %s has %d NAT gateway(s) (%s), but the spec says none; the machines "
                     "in the private subnets would lose their route to the internet, so the cluster would have to be recreated "
                     "without them; keep nat_gateways: %s (or change between per_az and single, in place), or %s"
                     % (spec["name"], len(nat_gateways), have, have, RECREATE))
