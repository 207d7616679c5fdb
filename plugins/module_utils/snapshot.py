# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A per-run read snapshot: the reads of one reconcile, shared by its services.

The services each read what they need, with their own filters (the network by the cluster's
ownership tag and VPC, each machine set by its set tag, the load balancer's security group by
its role...). Run one after another in one process, they would read each resource type several
times. ``SnapshotClient`` wraps a boto3 client (or amazon.aws's retrying wrapper) and answers a
read from an earlier answer of the same operation when it can:

- the same request: the same answer;
- a narrower request: the earlier request's filters are all in the new one, the new one's other
  filters are ones this module can evaluate (tags, ``tag-key``, ``vpc-id``, ``state``,
  ``instance-state-name``...), and any list of ids it gives is within the earlier answer's: the
  earlier answer, filtered here.

Anything else reaches AWS, as without the snapshot. ``prefetch`` makes the broad reads first
(e.g. everything the cluster owns, one call per type), so that the services' narrower reads are
answered from them. A write (any call that is no describe/get/list) forgets the answers of the
resource types it may change (for a tag write, those of the ids it tags), so that what it changed
is read again; waiters always read AWS.
"""

import copy
import fnmatch
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

Resource = Dict[str, Any]

# The list of resources in each answer (for paginated answers: after build_full_result).
RESULT_KEYS: Dict[str, str] = {
    "describe_vpcs": "Vpcs", "describe_subnets": "Subnets", "describe_route_tables": "RouteTables",
    "describe_internet_gateways": "InternetGateways", "describe_nat_gateways": "NatGateways",
    "describe_security_groups": "SecurityGroups", "describe_instances": "Reservations", "describe_addresses": "Addresses",
    "describe_load_balancers": "LoadBalancers", "describe_target_groups": "TargetGroups", "describe_tags": "TagDescriptions",
}
# Lists of ids a request may give, and the key of each resource's id.
ID_PARAMS: Dict[str, str] = {
    "VpcIds": "VpcId", "SubnetIds": "SubnetId", "RouteTableIds": "RouteTableId", "InternetGatewayIds": "InternetGatewayId",
    "NatGatewayIds": "NatGatewayId", "GroupIds": "GroupId", "InstanceIds": "InstanceId", "AllocationIds": "AllocationId",
    "Names": "LoadBalancerName", "ResourceArns": "ResourceArn",
}
ID_KEYS_BY_OPERATION: Dict[Tuple[str, str], str] = {("describe_target_groups", "Names"): "TargetGroupName"}
# Which answers a write may change, by the noun of its operation; a write not listed forgets every answer.
NOUNS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("vpc_attribute", ("describe_vpc_attribute",)),
    ("subnet_attribute", ("describe_subnets",)),
    ("vpc", ("describe_vpcs", "describe_vpc_attribute")),
    ("subnet", ("describe_subnets", "describe_route_tables")),
    ("route", ("describe_route_tables",)),
    ("internet_gateway", ("describe_internet_gateways",)),
    ("nat_gateway", ("describe_nat_gateways", "describe_addresses")),
    ("address", ("describe_addresses", "describe_nat_gateways")),
    ("security_group", ("describe_security_groups",)),
    ("instance", ("describe_instances", "describe_target_health")),
    ("target_group_attributes", ("describe_target_group_attributes",)),
    ("load_balancer_attributes", ("describe_load_balancer_attributes",)),
    ("listener", ("describe_listeners",)),
    ("target_group", ("describe_target_groups", "describe_target_health", "describe_tags")),
    ("target", ("describe_target_health", "describe_target_groups")),
    ("load_balancer", ("describe_load_balancers", "describe_listeners", "describe_tags")),
)
# What a tag write on EC2 resources may change, by the prefix of their ids (all of them for any other id).
TAGGED_READS: Dict[str, Tuple[str, ...]] = {
    "i-": ("describe_instances",), "vpc-": ("describe_vpcs",), "subnet-": ("describe_subnets",),
    "rtb-": ("describe_route_tables",), "igw-": ("describe_internet_gateways",), "nat-": ("describe_nat_gateways",),
    "sg-": ("describe_security_groups",), "eipalloc-": ("describe_addresses",),
    "vol-": ("describe_volumes",), "eni-": ("describe_network_interfaces",),
}
TAG_WRITES = ("create_tags", "delete_tags")
READ_PREFIXES = ("describe_", "get_", "list_")
NOT_CALLS = ("get_paginator", "get_waiter", "can_paginate")


def _tags(resource: Resource) -> Dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags") or []}


def _state(resource: Resource) -> Any:
    state = resource.get("State")
    return state.get("Name") if isinstance(state, dict) else state


# Filters evaluated here: name -> the values a resource has for it.
def _values(resource: Resource, name: str) -> Optional[List[str]]:
    if name.startswith("tag:"):
        value = _tags(resource).get(name[4:])
        return [] if value is None else [value]
    if name == "tag-key":
        return list(_tags(resource))
    if name == "vpc-id":
        return [resource["VpcId"]] if resource.get("VpcId") else []
    if name == "attachment.vpc-id":
        return [attachment["VpcId"] for attachment in resource.get("Attachments") or []]
    if name in ("state", "instance-state-name"):
        return [_state(resource)]
    if name == "subnet-id":
        return [resource["SubnetId"]] if resource.get("SubnetId") else []
    if name == "domain":
        return [resource["Domain"]] if resource.get("Domain") else []
    return None


def _matches(resource: Resource, flt: Dict[str, Any]) -> bool:
    values = _values(resource, flt["Name"])
    if values is None:  # _evaluable() lets through only the filters _values knows
        raise AssertionError("filter %s is not answered from the snapshot" % flt["Name"])
    return any(fnmatch.fnmatchcase(value, pattern) for value in values for pattern in flt["Values"])


def _evaluable(flt: Dict[str, Any]) -> bool:
    return _values({}, flt["Name"]) is not None


def _literal(values: List[str]) -> bool:
    return not any(char in value for value in values for char in "*?")


def _covered(old: Dict[str, Any], new_filters: List[Dict[str, Any]]) -> bool:
    """Whether the new request asks for no more than the earlier filter ``old`` let through: the same filter,
    or one of the same name whose values are among ``old``'s (then evaluated here)."""
    return any(new == old or (new["Name"] == old["Name"] and _literal(new["Values"]) and _literal(old["Values"])
                              and set(new["Values"]) <= set(old["Values"]))
               for new in new_filters)


def _key(value: Any) -> Any:
    """A hashable, order-keeping form of request parameters."""
    if isinstance(value, dict):
        return tuple(sorted((name, _key(item)) for name, item in value.items()))
    if isinstance(value, list):
        return tuple(_key(item) for item in value)
    return value


def _tagged_reads(resources: Optional[List[str]]) -> Optional[Set[str]]:
    """The reads a tag write on the EC2 ids ``resources`` may change; None when an id is of no type listed."""
    if not resources:
        return None
    reads: Set[str] = set()
    for resource in resources:
        prefix = next((known for known in TAGGED_READS if str(resource).startswith(known)), None)
        if prefix is None:
            return None
        reads.update(TAGGED_READS[prefix])
    return reads


class _Answer:
    def __init__(self, params: Dict[str, Any], answer: Any) -> None:
        self.params = params
        self.answer = answer


class Snapshot:
    """The answers of one client's reads in a run, by operation; see the module's docstring.

    ``by_noun``: a write forgets only the answers NOUNS gives for it (EC2's operation names); else every answer.
    """

    def __init__(self, by_noun: bool = False) -> None:
        self.by_noun = by_noun
        self.answers: Dict[str, List[_Answer]] = {}
        self.calls: List[str] = []  # the reads that reached AWS, for tests and counts

    def forget(self, operation: str, params: Optional[Dict[str, Any]] = None) -> None:
        """What the write ``operation`` (a boto3 method name) with ``params`` may change is read again."""
        tagged = _tagged_reads((params or {}).get("Resources")) if self.by_noun and operation in TAG_WRITES else None
        if tagged is not None:
            for read in tagged:
                self.answers.pop(read, None)
            return
        for noun, reads in NOUNS if self.by_noun else ():
            if noun in operation:
                for read in reads:
                    self.answers.pop(read, None)
                return
        self.answers.clear()

    def read(self, operation: str, params: Dict[str, Any], call: Callable[[], Any]) -> Any:
        params = {name: value for name, value in params.items() if name != "aws_retry"}
        answer = self._from_earlier(operation, params)
        if answer is None:
            self.calls.append(operation)
            answer = call()
            self.answers.setdefault(operation, []).append(_Answer(copy.deepcopy(params), copy.deepcopy(answer)))
            return answer
        return answer

    def _from_earlier(self, operation: str, params: Dict[str, Any]) -> Any:
        for earlier in self.answers.get(operation, []):
            if _key(earlier.params) == _key(params):
                return copy.deepcopy(earlier.answer)
        result_key = RESULT_KEYS.get(operation)
        if result_key is None:
            return None
        for earlier in self.answers.get(operation, []):
            narrowed = _narrow(operation, result_key, earlier, params)
            if narrowed is not None:
                return narrowed
        return None


def _filter_key(params: Dict[str, Any]) -> str:
    return "Filter" if "Filter" in params else "Filters"


def _narrow(operation: str, result_key: str, earlier: _Answer, params: Dict[str, Any]) -> Any:
    """The earlier answer filtered to the narrower request ``params``, or None when it cannot answer it."""
    old_filters = earlier.params.get(_filter_key(earlier.params)) or []
    new_filters = params.get(_filter_key(params)) or []
    if not all(_covered(flt, new_filters) for flt in old_filters):
        return None
    extra = [flt for flt in new_filters if flt not in old_filters]
    if not all(_evaluable(flt) for flt in extra):
        return None
    ids: Dict[str, List[str]] = {}
    for name in set(earlier.params) | set(params):
        if name in ("Filters", "Filter"):
            continue
        old, new = earlier.params.get(name), params.get(name)
        if _key(old) == _key(new):
            continue
        # A list of ids narrows: none before (any id), or a list holding every id asked for now.
        if name not in ID_PARAMS or new is None or (old is not None and not set(new) <= set(old)):
            return None
        ids[ID_KEYS_BY_OPERATION.get((operation, name), ID_PARAMS[name])] = list(new)

    def keep(resource: Resource) -> bool:
        return (all(_matches(resource, flt) for flt in extra)
                and all(resource.get(id_key) in wanted for id_key, wanted in ids.items()))

    answer = copy.deepcopy(earlier.answer)
    if operation == "describe_instances":
        reservations = []
        for reservation in answer[result_key]:
            reservation["Instances"] = [instance for instance in reservation["Instances"] if keep(instance)]
            if reservation["Instances"]:
                reservations.append(reservation)
        answer[result_key] = reservations
        kept = [instance for reservation in reservations for instance in reservation["Instances"]]
    else:
        answer[result_key] = [resource for resource in answer[result_key] if keep(resource)]
        kept = answer[result_key]
    # Ids asked for that the earlier answer does not hold: AWS must answer (it may know them, or fail).
    if any(set(wanted) - {resource.get(id_key) for resource in kept} for id_key, wanted in ids.items()):
        return None
    return answer


class _Paginator:
    def __init__(self, snapshot: Snapshot, operation: str, real: Any) -> None:
        self.snapshot = snapshot
        self.operation = operation
        self.real = real

    def paginate(self, **params: Any) -> "_Pages":
        return _Pages(self, params)


class _Pages:
    def __init__(self, paginator: _Paginator, params: Dict[str, Any]) -> None:
        self.paginator = paginator
        self.params = params

    def build_full_result(self) -> Any:
        paginator = self.paginator
        return paginator.snapshot.read(paginator.operation, self.params, lambda: paginator.real.paginate(**self.params).build_full_result())

    def __iter__(self) -> Any:
        return iter([self.build_full_result()])


class SnapshotClient:
    """A client whose reads go through a Snapshot and whose writes make it forget what they change."""

    def __init__(self, client: Any, snapshot: Snapshot) -> None:
        self._client = client
        self._snapshot = snapshot

    def forget(self, operations: Optional[Sequence[str]] = None) -> None:
        """Every later read (or of ``operations`` only, boto3 method names) reaches AWS (once) again."""
        if operations is None:
            self._snapshot.answers.clear()
        for operation in operations or ():
            self._snapshot.answers.pop(operation, None)

    def get_paginator(self, operation: str) -> Any:
        real = self._client.get_paginator(operation)
        if operation.startswith(READ_PREFIXES):
            return _Paginator(self._snapshot, operation, real)
        return real

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name in NOT_CALLS or name.startswith("_"):
            return attribute
        if name.startswith(READ_PREFIXES):
            return lambda **params: self._snapshot.read(name, params, lambda: attribute(**params))

        def write(*args: Any, **params: Any) -> Any:
            try:
                return attribute(*args, **params)
            finally:
                self._snapshot.forget(name, params)

        return write


def snapshot_client(service: str, client: Any) -> SnapshotClient:
    """``client`` of ``service`` (boto3's name) behind a fresh Snapshot."""
    return SnapshotClient(client, Snapshot(by_noun=service == "ec2"))
