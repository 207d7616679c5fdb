# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Machine sets: the EC2 instances of one named set of a cluster, as CAPA's AWSMachine
controller and Cluster API's MachineSet / KubeadmControlPlane scaling make them.

A set is ``control-plane``, ``bastion`` or a machine deployment's name. ``plan_present``
reads the set's instances once and plans the writes that bring the set to its replicas (the
spec's, or an override to surge): retag machines upgraded in place (``mark_updated``, one
CreateTags), terminate the machines ``remove_machines`` names, fix IMDS options in place,
launch the missing machines spread over the set's zones (resolving the AMI then, with one
DescribeImages), and wait once for each batch. Machines beyond the replicas are the
``surplus``, in Cluster API's deletion order (``surplus_choice``); they are terminated only
when asked (``terminate_surplus``; always for the bastion), so that playbooks can drain them
and remove their etcd members first. ``plan_absent`` terminates the whole set.

A machine is outdated when its spec-hash tag differs from the hash of what the spec says a
machine of the set is now (``spec_hash``: from the spec alone, with the image lookup's inputs
rather than the AMI it finds; ``is_up_to_date`` also accepts the older hash that held the AMI
id); outdated machines are reported, never replaced implicitly: a rolling replace names them in
``remove_machines``.

Launches are deterministic. Every machine holds a slot (tag ``kubecluster.aws/slot``, 0 ..
replicas-1; machines from before slots existed get the lowest free slots in name order, in
memory only). The missing slots are spread over the set's zones, and the slots of one zone are
launched together: one RunInstances per zone (a batch; more when the batch tag would exceed
EC2's 256 characters), MinCount = MaxCount = the batch's size, so EC2 launches all of them or
none. A batch of slots ``s1,s2,...`` in zone ``z`` is launched at attempt ``k`` with the
ClientToken sha256(``<cluster>/<set>/<z>/<s1,s2,...>/<k>``), and its machines are named with the
suffix of sha256(``<cluster>/<set>/<s>/<k>``) for their slots, so two runs racing to fill the
same slots send the same RunInstances, EC2 hands both the same instances, and both name them
alike. ``k`` starts at the first attempt whose names no machine the run read has, and moves on
while EC2 answers with a machine the run already knew, one not pending or running, or one
launched well before the run's read that the read did not list (the token of machines since
terminated), or with IdempotentParameterMismatch (the token was used with other settings);
racing runs walk the same sequence, so they still meet on the same instances.

A batch of one machine carries all its tags at launch. A larger batch carries the tags its
machines share (ownership, role, set, spec hash, version, additional tags) on instances, volumes
and network interfaces, plus the batch tag (``kubecluster.aws/launch-batch``: the slots in
launch-index order and the attempt); right after the launch, one CreateTags per instance sets
its Name and slot tags (instances only: the volumes and interfaces keep the batch's tags). A run
interrupted between the two leaves machines with the batch tag but no Name or slot: the next run
tells their slots from the batch tag and their launch index (so nothing is launched twice) and
tags them ("ec2 instance name").
"""

import datetime
import hashlib
import itertools
import json
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import is_ansible_aws_error_code
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from . import drift as drifts
from . import lookup
from . import machines
from . import naming
from .aws import ec2 as aws_ec2
from .context import Context
from .errors import KubeclusterError
from .plan import UNKNOWN
from .plan import Plan
from .spec import machine_set_spec
from .spec import missing_image_error

Instance = Dict[str, Any]
View = Dict[str, Any]
Spec = Dict[str, Any]

LIVE_STATES: Tuple[str, ...] = lookup.MACHINE_LIVE_STATES
# Read too, so that a rerun naming a machine it already removed is a no-op, not an error.
GONE_STATES: Tuple[str, ...] = ("shutting-down", "terminated")

# CAPA's GetCoreSecurityGroups; the bastion has only its own group.
CONTROL_PLANE_GROUPS = (naming.SG_NODE, naming.SG_LB, naming.SG_CONTROL_PLANE)
WORKER_GROUPS = (naming.SG_NODE, naming.SG_LB)
BASTION_GROUPS = (naming.SG_BASTION,)

X86_64 = "x86_64"
ARM64 = "arm64"
# Without ec2:DescribeInstanceTypes CAPA assumes x86_64 rather than failing.
DENIED_CODES = ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException")

# States of an instance RunInstances may hand back for a new launch; any other (shutting-down,
# terminated, stopped...) means the ClientToken was spent on a machine since gone.
LAUNCHED_STATES = ("pending", "running")
# Attempts per slot before giving up: each one skips a machine of that slot that once existed.
MAX_LAUNCH_ATTEMPTS = 10
# EC2 answers a repeated ClientToken with the first call's answer, state "pending" included, even
# for a machine terminated since. Such a machine is older than the run's read yet was not in it
# (EC2 lists terminated machines for about an hour); a machine a racing run launched is younger.
# The margin covers EC2's read-after-launch delay and clock skew.
STALE_LAUNCH = datetime.timedelta(minutes=10)


HASH_LENGTH = 12


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class MachineSetError(KubeclusterError):
    """The set cannot be reconciled as asked; the message names the cause and the fix."""


# --- pure decisions -----------------------------------------------------------------------

def security_group_roles(set_name: str) -> Tuple[str, ...]:
    if set_name == naming.SET_CONTROL_PLANE:
        return CONTROL_PLANE_GROUPS
    if set_name == naming.SET_BASTION:
        return BASTION_GROUPS
    return WORKER_GROUPS


def set_kubernetes_version(set_name: str, set_spec: Spec) -> Optional[str]:
    # The bastion runs no Kubernetes: a version upgrade must not make it outdated.
    if set_name == naming.SET_BASTION:
        return None
    version: str = set_spec["kubernetes_version"]
    return version


def image_source(set_name: str, set_spec: Spec) -> Dict[str, Any]:
    """What decides a set's AMI, without asking EC2: the spec's ami_id, else the image lookup's inputs.

    The lookup's answer (the newest image matching the name) is not part of it, so a newly
    published image does not by itself make the running machines outdated; the architecture the
    lookup filters on follows from the instance type, which the spec hash holds already.
    """
    if set_spec["ami_id"]:
        return {"ami_id": set_spec["ami_id"]}
    image_lookup = set_spec["image_lookup"]
    return {"owner": image_lookup["owner"],
            "name": image_name_pattern(image_lookup, set_kubernetes_version(set_name, set_spec))}


def _hash(defining: Dict[str, Any]) -> str:
    text = json.dumps(defining, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _defining(set_name: str, set_spec: Spec) -> Dict[str, Any]:
    return {
        "instance_type": set_spec["instance_type"],
        "kubernetes_version": set_kubernetes_version(set_name, set_spec),
        "root_volume": set_spec["root_volume"],
        "iam_instance_profile": set_spec["iam_instance_profile"],
        "instance_metadata": set_spec["instance_metadata"],
        "ssh_key_name": set_spec["ssh_key_name"],
    }


def spec_hash(set_name: str, set_spec: Spec) -> str:
    """A short stable hash of what defines a machine of the set, computed from the spec alone.

    Instance type, image source (image_source: the ami_id or the lookup's inputs), Kubernetes
    version, root volume, instance profile, IMDS options and SSH key; user data is not part of it.
    """
    return _hash(dict(_defining(set_name, set_spec), image=image_source(set_name, set_spec)))


def legacy_spec_hash(set_name: str, set_spec: Spec, image_id: str) -> str:
    """The spec hash of machines launched before it left out the looked-up AMI: the same fields with the AMI id."""
    return _hash(dict(_defining(set_name, set_spec), image_id=image_id))


def is_up_to_date(instance: Instance, set_name: str, set_spec: Spec, current_hash: str) -> bool:
    """Whether the machine's spec-hash tag matches the spec: today's hash, or the hash of a machine
    launched before the hash left out the AMI, computed with the spec's ami_id or, for a looked-up
    image, the AMI the machine runs (a newer image does not make it outdated)."""
    tag = tags_of(instance).get(naming.SPEC_HASH_TAG)
    if tag is None:
        return False
    if tag == current_hash:
        return True
    image_id: Optional[str] = set_spec["ami_id"] or instance.get("ImageId")
    return image_id is not None and tag == legacy_spec_hash(set_name, set_spec, image_id)


def client_token(cluster_name: str, set_name: str, zone: str, slots: Sequence[int], attempt: int) -> str:
    """RunInstances' idempotency token for the batch of ``slots`` in ``zone`` at ``attempt``: a retry, or
    another run racing to fill the same slots, gets the instances the first call made (64 characters,
    EC2's limit)."""
    text = "%s/%s/%s/%s/%d" % (cluster_name, set_name, zone, ",".join(str(slot) for slot in slots), attempt)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:64]


# EC2's limit on a tag value.
TAG_VALUE_LENGTH = 256


def launch_batch_tag(slots: Sequence[int], attempt: int) -> str:
    """The value of the batch tag: the slots in launch-index order, then the attempt (``3,0,6/1``)."""
    return "%s/%d" % (",".join(str(slot) for slot in slots), attempt)


def launch_batch_of(instance: Instance) -> Optional[Tuple[int, int]]:
    """(slot, attempt) of a machine launched in a batch, from its batch tag and its launch index; None
    when it has no batch tag, or one that does not say (a tag edited by hand)."""
    value = tags_of(instance).get(naming.LAUNCH_BATCH_TAG)
    index = instance.get("AmiLaunchIndex")
    if value is None or "/" not in value or not isinstance(index, int):
        return None
    slots_text, attempt_text = value.rsplit("/", 1)
    slots = slots_text.split(",")
    if not attempt_text.isdigit() or not 0 <= index < len(slots) or not slots[index].isdigit():
        return None
    return int(slots[index]), int(attempt_text)


def slot_of(instance: Instance) -> Optional[int]:
    """The slot tag of an instance as a number; else the slot its launch batch gave it (a run stopped
    before it tagged it); else None (launched before slots, or a bad tag)."""
    value = tags_of(instance).get(naming.SLOT_TAG)
    if value is not None:
        return int(value) if value.isdigit() else None
    batch = launch_batch_of(instance)
    return batch[0] if batch else None


def launch_batches(planned: Sequence[Tuple[int, str]], limit: int = TAG_VALUE_LENGTH) -> List[Tuple[str, List[int]]]:
    """The missing (slot, zone) pairs grouped into launches: per zone, in the order zones first appear,
    slots in the given order; a zone's slots split where the batch tag would exceed ``limit``."""
    batches: List[Tuple[str, List[int]]] = []
    open_batches: Dict[str, List[int]] = {}
    for slot, zone in planned:
        slots = open_batches.get(zone)
        if slots is None or len(launch_batch_tag(slots + [slot], MAX_LAUNCH_ATTEMPTS)) > limit:
            slots = open_batches[zone] = []
            batches.append((zone, slots))
        slots.append(slot)
    return batches


def assign_slots(instances: Iterable[Instance]) -> Dict[str, int]:
    """{instance id: slot} for live machines: their slot tag, else (no tag, or a slot another machine
    already holds) the lowest free slot, in name order. Nothing is retagged."""
    ordered = sorted(instances, key=lambda i: (tags_of(i).get("Name", ""), i["InstanceId"]))
    slots: Dict[str, int] = {}
    untagged: List[Instance] = []
    for instance in ordered:
        slot = slot_of(instance)
        if slot is None or slot in slots.values():
            untagged.append(instance)
        else:
            slots[instance["InstanceId"]] = slot
    free = (slot for slot in itertools.count() if slot not in set(slots.values()))
    for instance in untagged:
        slots[instance["InstanceId"]] = next(free)
    return slots


def missing_slots(held: Iterable[int], desired: int) -> List[int]:
    """The slots of 0 .. desired-1 no live machine holds, lowest first."""
    taken = set(held)
    return [slot for slot in range(desired) if slot not in taken]


def metadata_options(set_spec: Spec) -> Dict[str, Any]:
    imds = set_spec["instance_metadata"]
    return {
        "HttpTokens": imds["http_tokens"],
        "HttpPutResponseHopLimit": imds["http_put_response_hop_limit"],
        "HttpEndpoint": "enabled",
    }


def metadata_drift(instance: Instance, wanted: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """The IMDS options of an instance that differ from ``wanted``, as {option: (have, want)}."""
    have = dict(instance.get("MetadataOptions") or {})
    # An answer without HttpEndpoint means AWS's default, which is enabled.
    have.setdefault("HttpEndpoint", "enabled")
    return {key: (have.get(key), value) for key, value in wanted.items() if have.get(key) != value}


def image_name_pattern(image_lookup: Dict[str, Any], kubernetes_version: Optional[str]) -> str:
    """CAPA's lookup name: the format with the base OS and the version without its leading v filled in."""
    version = (kubernetes_version or "").lstrip("v")
    name_format: str = image_lookup["name_format"]
    return name_format.replace("{base_os}", image_lookup.get("base_os") or "").replace("{k8s_version}", version)


def architecture_of(instance_types: Sequence[Dict[str, Any]]) -> str:
    """CAPA's choice: arm64 for an Arm-only instance type, else x86_64."""
    supported = instance_types[0]["ProcessorInfo"]["SupportedArchitectures"] if instance_types else []
    if ARM64 in supported and X86_64 not in supported:
        return ARM64
    return X86_64


def spread(zones: Sequence[str], counts: Dict[Optional[str], int], count: int) -> List[str]:
    """Zones for ``count`` new machines: each to the zone with the fewest (ties -> zone order)."""
    per_zone = {zone: counts.get(zone, 0) for zone in zones}
    chosen = []
    for _pick in range(count):
        zone = min(zones, key=lambda z: (per_zone[z], zones.index(z)))
        per_zone[zone] += 1
        chosen.append(zone)
    return chosen


def scale_down_choice(machines: Sequence[View], count: int, zones: Sequence[str]) -> List[View]:
    """The control plane's ``count`` machines to remove, as KubeadmControlPlane's selectMachineForScaleDown
    picks them one after the other: outdated first, from the zone holding the most machines (ties ->
    the later zone), the oldest there (ties -> name)."""
    remaining = list(machines)
    chosen = []
    for _pick in range(min(count, len(remaining))):
        pool = [m for m in remaining if m["outdated"]] or remaining
        zone = fullest_zone(pool, remaining, zones)
        victim = min((m for m in pool if m["availability_zone"] == zone), key=lambda m: (str(m["launch_time"]), str(m["name"])))
        remaining.remove(victim)
        chosen.append(victim)
    return chosen


def random_rank(cluster_name: str, instance_id: str) -> str:
    """A machine's place in the ``random`` deletion order: stable, so check mode and the apply agree."""
    return hashlib.sha256(("%s/%s" % (cluster_name, instance_id)).encode("utf-8")).hexdigest()


def deployment_deletion_order(machines: Sequence[View], order: str, cluster_name: str) -> List[View]:
    """A machine deployment's machines in the order they go on scale down, as a MachineSet deletes:
    outdated first, then by ``order`` (random: a stable pseudo-random order; newest or oldest by launch
    time, ties -> name)."""
    ordered = sorted(machines, key=lambda m: str(m["name"]))
    if order == "random":
        ordered.sort(key=lambda m: random_rank(cluster_name, str(m["instance_id"])))
    else:
        # Stable sorts: equal launch times keep name order, either way.
        ordered.sort(key=lambda m: str(m["launch_time"]), reverse=order == "newest")
    ordered.sort(key=lambda m: not m["outdated"])
    return ordered


def surplus_choice(set_name: str, set_spec: Spec, cluster_name: str, machines: Sequence[View], count: int) -> List[View]:
    """The ``count`` machines of the set that go to reach its replicas, in the order they go."""
    if count <= 0:
        return []
    if set_name == naming.SET_CONTROL_PLANE:
        return scale_down_choice(machines, count, set_spec["availability_zones"])
    order = set_spec.get("deletion_order") or "random"
    return deployment_deletion_order(machines, order, cluster_name)[:count]


def fullest_zone(pool: Sequence[View], machines: Sequence[View], zones: Sequence[str]) -> Optional[str]:
    """The zone of a machine in ``pool`` that holds the most ``machines``; ties -> the later zone."""
    per_zone: Dict[Optional[str], int] = {}
    for machine in machines:
        per_zone[machine["availability_zone"]] = per_zone.get(machine["availability_zone"], 0) + 1

    def rank(zone: Optional[str]) -> Tuple[int, int]:
        return per_zone[zone], zones.index(zone) if zone in zones else len(zones)

    candidates: Set[Optional[str]] = {m["availability_zone"] for m in pool}
    return max(candidates, key=rank)


def subnet_for(subnets: Sequence[Dict[str, Any]], zone: str, public: bool) -> Tuple[Optional[Dict[str, Any]], bool]:
    """The subnet and public-IP choice for a machine in ``zone``.

    Private subnet unless the set is public (bastion); a cluster without private subnets
    (CAPA's public-only layout) puts every machine in a public subnet with a public IP.
    """
    if subnets and not any(s["role"] == naming.ROLE_PRIVATE for s in subnets):
        public = True
    role = naming.ROLE_PUBLIC if public else naming.ROLE_PRIVATE
    for subnet in subnets:
        if subnet["role"] == role and subnet["availability_zone"] == zone:
            return subnet, public
    return None, public


def deployment_path(spec: Spec, set_name: str) -> str:
    names = [d["name"] for d in spec["machine_deployments"]]
    return "cluster.machine_deployments[%d]" % names.index(set_name)


def ami_field(spec: Spec, set_name: str) -> str:
    """The spec path of the set's ami_id, for messages."""
    if set_name == naming.SET_CONTROL_PLANE:
        return "cluster.control_plane.ami_id"
    if set_name == naming.SET_BASTION:
        return "cluster.network.bastion.ami_id"
    return deployment_path(spec, set_name) + ".ami_id"


def zones_field(spec: Spec, set_name: str) -> str:
    """The spec path the set's availability zones come from, for messages."""
    if set_name in (naming.SET_CONTROL_PLANE, naming.SET_BASTION):
        return "cluster.network.availability_zones"
    return deployment_path(spec, set_name) + ".availability_zones"


# --- reading what exists ------------------------------------------------------------------

tags_of = machines.tags_of


def name_of(instance: Instance) -> str:
    """The instance's Name tag, else its id."""
    return tags_of(instance).get("Name", str(instance["InstanceId"]))


def read_set_instances(ec2: Any, cluster_name: str, set_name: str) -> Tuple[List[Instance], List[Instance]]:
    """The set's owned instances in one paginated describe, split into (live, gone)."""
    filters: List[Dict[str, Any]] = naming.owned_filters(cluster_name, **{naming.MACHINE_SET_TAG: set_name})
    filters.append({"Name": "instance-state-name", "Values": list(LIVE_STATES + GONE_STATES)})
    live: List[Instance] = []
    gone: List[Instance] = []
    for reservation in aws_ec2.describe_instances(ec2, Filters=filters):
        for instance in reservation["Instances"]:
            tags = tags_of(instance)
            # The filters already select these; checked again because a write must never reach another's instance.
            if not naming.is_owned(tags, cluster_name) or tags.get(naming.MACHINE_SET_TAG) != set_name:
                continue
            (live if instance["State"]["Name"] in LIVE_STATES else gone).append(instance)
    return live, gone


class Image:
    """The AMI a set launches from, with what the launch request needs of it."""

    def __init__(self, image_id: str, root_device_name: Optional[str], name: Optional[str] = None) -> None:
        self.id = image_id
        self.root_device_name = root_device_name
        self.name = name


def instance_architecture(ec2: Any, instance_type: str) -> str:
    try:
        return architecture_of(aws_ec2.describe_instance_types(ec2, InstanceTypes=[instance_type]))
    except is_ansible_aws_error_code(DENIED_CODES):
        return X86_64


def given_image(ec2: Any, spec: Spec, set_name: str, ami_id: str) -> Image:
    try:
        images = aws_ec2.describe_images(ec2, ImageIds=[ami_id])
    except is_ansible_aws_error_code(("InvalidAMIID.NotFound", "InvalidAMIID.Malformed")):
        images = []
    if not images:
        raise MachineSetError(missing_image_error(spec, set_name, ami_id))
    return Image(images[0]["ImageId"], images[0].get("RootDeviceName"), images[0].get("Name"))


def looked_up_image(ec2: Any, spec: Spec, set_name: str, set_spec: Spec) -> Image:
    image_lookup = set_spec["image_lookup"]
    version = set_kubernetes_version(set_name, set_spec)
    pattern = image_name_pattern(image_lookup, version)
    arch = instance_architecture(ec2, set_spec["instance_type"])
    images = aws_ec2.describe_images(ec2, Owners=[image_lookup["owner"]], Filters=[
        {"Name": "name", "Values": [pattern]},
        {"Name": "architecture", "Values": [arch]},
        {"Name": "state", "Values": ["available"]},
        {"Name": "virtualization-type", "Values": ["hvm"]},
    ])
    if not images:
        if set_name == naming.SET_BASTION:
            fix = "set %s to an Ubuntu AMI of %s" % (ami_field(spec, set_name), spec["region"])
        else:
            fix = ("set %s to an AMI built for Kubernetes %s (clusterawsadm ami list --kubernetes-version %s --region %s, "
                   "or build one with image-builder), or change cluster.image_lookup (owner, name_format, base_os) to images that exist"
                   % (ami_field(spec, set_name), version, version, spec["region"]))
        raise MachineSetError("failed to find AMI for machine set %s: found no AMIs with the name %r owned by %s for %s in %s; %s"
                              % (set_name, pattern, image_lookup["owner"], arch, spec["region"], fix))
    newest = max(images, key=lambda image: (image.get("CreationDate", ""), image["ImageId"]))
    return Image(newest["ImageId"], newest.get("RootDeviceName"), newest.get("Name"))


def resolve_image(ec2: Any, spec: Spec, set_name: str, set_spec: Spec) -> Image:
    """The set's AMI (the spec's ami_id, else CAPA's lookup), with ONE DescribeImages."""
    if set_spec["ami_id"]:
        return given_image(ec2, spec, set_name, set_spec["ami_id"])
    return looked_up_image(ec2, spec, set_name, set_spec)


# --- views returned to the caller ---------------------------------------------------------

def machine_view(instance: Instance, outdated: bool) -> View:
    """The one machine view (machines.py) and whether the machine is outdated, which takes the set's spec."""
    view = machines.machine_view(instance)
    view["outdated"] = outdated
    return view


# --- the reconcile ------------------------------------------------------------------------

class MachineSet:
    """One reconcile of one machine set: what exists, the plan, and what the caller gets back.

    The EC2 client and the wait settings come from the Context, read only when needed.
    """

    def __init__(self, ctx: Context, spec: Spec, set_name: str, allow_missing_network: bool = False,
                 replicas: Optional[int] = None) -> None:
        self.ctx = ctx
        self.spec = spec
        self.cluster: str = spec["name"]
        self.set_name = set_name
        self.allow_missing_network = allow_missing_network
        self.replicas = replicas
        self._set_spec: Optional[Spec] = None
        self.plan = Plan("machine set %s of cluster %s" % (set_name, self.cluster))
        self.current_hash: Optional[str] = None
        self.survivors: List[Instance] = []
        self.surplus: List[Instance] = []
        self.marked: List[Instance] = []
        self.to_terminate: List[Instance] = []
        self.to_launch: List[Dict[str, Any]] = []
        self.batches: List[Dict[str, Any]] = []
        self.new_instances: Dict[str, Instance] = {}
        self.known_names: Set[Optional[str]] = set()
        self.known_ids: Set[str] = set()
        self.read_at: Optional[datetime.datetime] = None
        self.plan.returns.update(machines=self.machines, outdated=self.outdated, launched=self.launched,
                                 terminated=self.terminated, surplus=self.surplus_views)

    @property
    def ec2(self) -> Any:
        return self.ctx.ec2

    @property
    def set_spec(self) -> Spec:
        """The set's settings, with the replicas override; read only when planning present, so that a
        set since dropped from the spec can still be terminated."""
        if self._set_spec is None:
            self._set_spec = machine_set_spec(self.spec, self.set_name)
            if self.replicas is not None:
                self._set_spec["replicas"] = self.replicas
        return self._set_spec

    # what the caller gets back, computed after the apply

    def is_outdated(self, instance: Instance) -> bool:
        if self.current_hash is None or instance in self.marked:
            return False
        return not is_up_to_date(instance, self.set_name, self.set_spec, self.current_hash)

    def view(self, instance: Instance) -> View:
        view = machine_view(instance, self.is_outdated(instance))
        if instance in self.marked:
            # Tagged by this run (or, in check mode, to be): the view says what the tags say after it.
            view["kubernetes_version"] = set_kubernetes_version(self.set_name, self.set_spec)
        return view

    def machines(self) -> List[View]:
        views = [self.view(i) for i in self.survivors]
        views += [self.new_view(planned) for planned in self.to_launch]
        return sorted(views, key=lambda v: str(v["name"]))

    def outdated(self) -> List[str]:
        return sorted(name_of(i) for i in self.survivors if self.is_outdated(i))

    def launched(self) -> List[str]:
        return [planned["name"] for planned in self.to_launch]

    def terminated(self) -> List[str]:
        return [i["InstanceId"] for i in self.to_terminate]

    def surplus_views(self) -> List[View]:
        return [self.view(i) for i in self.surplus]

    def new_view(self, planned: Dict[str, Any]) -> View:
        instance = self.new_instances.get(planned["name"])
        if instance:
            return machine_view(instance, False)
        return {
            "instance_id": UNKNOWN, "name": planned["name"], "set": self.set_name, "role": naming.machine_role(self.set_name),
            "kubernetes_version": set_kubernetes_version(self.set_name, self.set_spec),
            "state": "pending", "availability_zone": planned["zone"], "subnet_id": planned["subnet"]["id"],
            "private_ip": UNKNOWN, "private_dns_name": UNKNOWN, "public_ip": UNKNOWN if planned["public_ip"] else None,
            "image_id": planned["image"].id, "instance_type": self.set_spec["instance_type"], "outdated": False,
            "launch_time": UNKNOWN,
        }

    # planning

    def plan_absent(self) -> Plan:
        live, _gone = read_set_instances(self.ec2, self.cluster, self.set_name)
        self.plan_terminate(live, "state absent")
        self.plan_waits()
        return self.plan

    def plan_present(self, remove_machines: Sequence[str] = (), user_data: Optional[str] = None,
                     terminate_surplus: bool = False, mark_updated: Sequence[str] = ()) -> Plan:
        self.read_at = utc_now()
        live, gone = read_set_instances(self.ec2, self.cluster, self.set_name)
        unnamed = self.recover_batch_names(live + gone)
        removed = self.match_removals(live, gone, remove_machines)
        marked = self.match_names("mark_updated", live, gone, mark_updated)
        survivors = [i for i in live if i not in removed]
        desired: int = self.set_spec["replicas"]
        # From the spec alone: no AWS call unless a machine is launched.
        self.current_hash = spec_hash(self.set_name, self.set_spec)
        self.plan_mark_updated([i for i in marked if i not in removed])
        self.plan_names([(i, tags) for i, tags in unnamed if i in live and i not in removed])
        self.surplus = self.surplus_of(survivors, len(survivors) - desired)
        # The bastion is no Kubernetes node: nothing to drain first, so its surplus always goes.
        if terminate_surplus or self.set_name == naming.SET_BASTION:
            survivors = [i for i in survivors if i not in self.surplus]
            self.plan_terminate(removed + self.surplus, self.termination_reason(removed, self.surplus))
        else:
            self.plan_terminate(removed, self.termination_reason(removed, []))
        self.survivors = survivors
        self.plan_metadata_fixes()
        self.plan_tag_drift()
        if desired > len(survivors):
            # Only a launch needs the AMI (one DescribeImages).
            image = resolve_image(self.ec2, self.spec, self.set_name, self.set_spec)
            self.plan_launch(desired - len(survivors), image, user_data, live + gone)
        self.plan_waits()
        return self.plan

    def batch_names(self, slot: int, attempt: int) -> Dict[str, str]:
        """The tags a machine of a launch batch gets right after the launch."""
        return {"Name": self.slot_machine_name(slot, attempt), naming.SLOT_TAG: str(slot)}

    def recover_batch_names(self, instances: Sequence[Instance]) -> List[Tuple[Instance, Dict[str, str]]]:
        """The machines a launch batch made that a stopped run did not tag, with the tags they lack.

        Their slot and name follow from the batch tag and the launch index; they are set here in
        memory (so the machines count as the slots and names they are) and tagged by plan_names.
        """
        unnamed: List[Tuple[Instance, Dict[str, str]]] = []
        for instance in instances:
            batch = launch_batch_of(instance)
            if batch is None:
                continue
            have = tags_of(instance)
            lacking = {key: value for key, value in self.batch_names(*batch).items() if key not in have}
            if not lacking:
                continue
            instance["Tags"] = list(instance.get("Tags") or []) + [{"Key": key, "Value": value} for key, value in sorted(lacking.items())]
            unnamed.append((instance, lacking))
        return unnamed

    def plan_names(self, unnamed: Sequence[Tuple[Instance, Dict[str, str]]]) -> None:
        """One CreateTags per machine a stopped run launched but did not name."""
        for instance, lacking in unnamed:
            detail = "launch batch %s: %s" % (tags_of(instance).get(naming.LAUNCH_BATCH_TAG),
                                              ", ".join("%s=%s" % (key, value) for key, value in sorted(lacking.items())))
            self.plan.update("ec2 instance name", name_of(instance), self.tag_instance(instance["InstanceId"], lacking), detail)

    def tag_instance(self, instance_id: str, tags: Dict[str, str]) -> Callable[[], Any]:
        # Right after RunInstances EC2 may not know the id yet: retried while it answers NotFound.
        return lambda: aws_ec2.eventually(aws_ec2.create_tags, self.ec2, [instance_id], tags)

    def surplus_of(self, survivors: Sequence[Instance], count: int) -> List[Instance]:
        """The survivors that go to reach the replicas, in deletion order."""
        by_id = {i["InstanceId"]: i for i in survivors}
        views = [machine_view(i, self.is_outdated(i)) for i in survivors]
        return [by_id[v["instance_id"]] for v in surplus_choice(self.set_name, self.set_spec, self.cluster, views, count)]

    def version_tags(self) -> Dict[str, str]:
        """The tags mark_updated writes: the spec hash and (but for the bastion) the Kubernetes version."""
        tags = {naming.SPEC_HASH_TAG: self.current_hash or ""}
        version = set_kubernetes_version(self.set_name, self.set_spec)
        if version:
            tags[naming.KUBERNETES_VERSION_TAG] = version
        return tags

    def plan_mark_updated(self, marked: Sequence[Instance]) -> None:
        """One CreateTags for the named machines whose spec-hash or version tag differs from the spec's."""
        wanted = self.version_tags()
        stale = [i for i in marked if any(tags_of(i).get(key) != value for key, value in wanted.items())]
        self.marked = list(marked)
        if not stale:
            return
        ids = [i["InstanceId"] for i in stale]
        detail = "mark_updated: %s" % ", ".join("%s=%s" % (key, value) for key, value in sorted(wanted.items()))
        self.plan.update("ec2 instance tags", ", ".join(name_of(i) for i in stale),
                         lambda: aws_ec2.create_tags(self.ec2, ids, wanted), detail)

    @staticmethod
    def termination_reason(removed: Sequence[Instance], surplus: Sequence[Instance]) -> str:
        reasons = []
        if removed:
            reasons.append("remove_machines")
        if surplus:
            reasons.append("scale down")
        return ", ".join(reasons)

    def match_removals(self, live: Sequence[Instance], gone: Sequence[Instance], names: Sequence[str]) -> List[Instance]:
        """The live instances ``remove_machines`` names; already-terminated ones are done already."""
        return self.match_names("remove_machines", live, gone, names)

    def match_names(self, option: str, live: Sequence[Instance], gone: Sequence[Instance], names: Sequence[str]) -> List[Instance]:
        """The live instances ``names`` (instance ids or Name tags) name, in their order; terminated ones are
        skipped. A name that is no machine of the set fails, before any write, naming the option."""
        by_key: Dict[Optional[str], Instance] = {}
        for instance in live:
            by_key[instance["InstanceId"]] = instance
            by_key[tags_of(instance).get("Name")] = instance
        done: Set[Optional[str]] = set()
        for instance in gone:
            done.update((instance["InstanceId"], tags_of(instance).get("Name")))
        unknown = [name for name in names if name not in by_key and name not in done]
        if unknown:
            known = sorted(name_of(i) for i in live)
            raise MachineSetError("%s: %s %s not a machine of set %s of cluster %s; name machines of this set by "
                                  "instance id or Name tag (it has: %s)"
                                  % (option, ", ".join(unknown), "is" if len(unknown) == 1 else "are", self.set_name, self.cluster,
                                     ", ".join(known) or "none"))
        found: List[Instance] = []
        for name in names:
            match = by_key.get(name)
            if match is not None and match not in found:
                found.append(match)
        return found

    def plan_terminate(self, instances: Sequence[Instance], reason: str) -> None:
        conflicts: List[str] = naming.double_claims(
            [("instance", "%s (%s)" % (i["InstanceId"], tags_of(i).get("Name")), tags_of(i)) for i in instances], self.cluster)
        if conflicts:
            raise MachineSetError("Not terminating machines of set %s of cluster %s; nothing was terminated: %s"
                                  % (self.set_name, self.cluster, "; ".join(conflicts)), conflicts)
        self.to_terminate = list(instances)
        if not instances:
            return
        ids = [i["InstanceId"] for i in instances]
        names = [name_of(i) for i in instances]
        self.plan.delete("ec2 instances", ", ".join(names), lambda: aws_ec2.terminate_instances(self.ec2, ids),
                         "%s: %s" % (reason, ", ".join(ids)))

    def plan_tag_drift(self) -> None:
        """The machines' tags against the spec's additional tags, in batches (drift.TagDrift). Their volumes and
        network interfaces were tagged alike at launch and are not read: they get the same writes, named from
        the instance's description, when the instance's own tags drifted."""
        drift = drifts.TagDrift(self.spec)
        for instance in self.survivors:
            follow = [mapping.get("Ebs", {}).get("VolumeId") for mapping in instance.get("BlockDeviceMappings") or []]
            follow += [interface.get("NetworkInterfaceId") for interface in instance.get("NetworkInterfaces") or []]
            drift.check("ec2 instance", name_of(instance), instance["InstanceId"], tags_of(instance), follow)
        drift.plan(self.ctx, self.plan)

    def plan_metadata_fixes(self) -> None:
        wanted = metadata_options(self.set_spec)
        for instance in self.survivors:
            drift = metadata_drift(instance, wanted)
            if drift:
                detail = ", ".join("%s %s -> %s" % (key, have, want) for key, (have, want) in sorted(drift.items()))
                self.plan.update("ec2 instance metadata options", name_of(instance),
                                 self.metadata_fix(instance["InstanceId"], wanted), detail)

    def metadata_fix(self, instance_id: str, wanted: Dict[str, Any]) -> Callable[[], Any]:
        return lambda: aws_ec2.modify_instance_metadata_options(self.ec2, instance_id, **wanted)

    def plan_launch(self, count: int, image: Image, user_data: Optional[str], known_instances: Sequence[Instance]) -> None:
        subnets: List[Dict[str, Any]] = lookup.cluster_subnets(self.ec2, self.spec)
        if not subnets and not self.allow_missing_network:
            raise MachineSetError("machine set %s: cluster %s has no subnets in %s; create its network first "
                                  "(kubecluster.aws.cluster_network)" % (self.set_name, self.cluster, self.spec["region"]))
        groups = self.security_group_ids()
        zones = self.set_spec["availability_zones"]
        counts: Dict[Optional[str], int] = {}
        for instance in self.survivors:
            zone = instance.get("Placement", {}).get("AvailabilityZone")
            counts[zone] = counts.get(zone, 0) + 1
        self.known_names = {tags_of(i).get("Name") for i in known_instances}
        self.known_ids = {i["InstanceId"] for i in known_instances}
        slots = missing_slots(assign_slots(self.survivors).values(), self.set_spec["replicas"])[:count]
        by_slot: Dict[int, Dict[str, Any]] = {}
        for zone, batch_slots in launch_batches(list(zip(slots, spread(zones, counts, count)))):
            subnet, public_ip = subnet_for(subnets, zone, self.set_spec["public"])
            if subnet is None:
                if not self.allow_missing_network:
                    raise MachineSetError(self.missing_subnet_message(subnets, zone, public_ip))
                subnet = {"id": UNKNOWN, "availability_zone": zone}
            attempt = self.first_attempt(batch_slots, 0)
            members: List[Dict[str, Any]] = [{"name": self.slot_machine_name(slot, attempt), "slot": slot, "attempt": attempt,
                                              "zone": zone, "subnet": subnet, "public_ip": public_ip, "image": image}
                                             for slot in batch_slots]
            by_slot.update(zip(batch_slots, members))
            self.batches.append({"zone": zone, "slots": batch_slots, "attempt": attempt, "members": members, "subnet": subnet,
                                 "public_ip": public_ip, "image": image, "groups": groups, "user_data": user_data})
        # Returned and shown in slot order, as before batches.
        self.to_launch = [by_slot[slot] for slot in slots]
        self.plan.create("ec2 instances", ", ".join(p["name"] for p in self.to_launch), self.launch, self.launch_detail(image))

    def slot_machine_name(self, slot: int, attempt: int) -> str:
        name: str = naming.machine_name(self.cluster, self.set_name, naming.machine_suffix(self.cluster, self.set_name, slot, attempt))
        return name

    def first_attempt(self, slots: Sequence[int], start: int) -> int:
        """The first attempt from ``start`` at which no machine this run read has the name of one of ``slots``."""
        attempt = start
        while attempt < MAX_LAUNCH_ATTEMPTS and any(self.slot_machine_name(slot, attempt) in self.known_names for slot in slots):
            attempt += 1
        return attempt

    def missing_subnet_message(self, subnets: Sequence[Dict[str, Any]], zone: str, public: bool) -> str:
        role = naming.ROLE_PUBLIC if public else naming.ROLE_PRIVATE
        zones = sorted({s["availability_zone"] for s in subnets if s["role"] == role})
        return ("%s: machine set %s needs a %s subnet in %s but cluster %s has %s subnets only in %s; list zones that have "
                "them, or create the cluster network in %s (kubecluster.aws.cluster_network)"
                % (zones_field(self.spec, self.set_name), self.set_name, role, zone, self.cluster, role,
                   ", ".join(zones) or "no zone", zone))

    def security_group_ids(self) -> List[str]:
        found: Dict[str, str] = lookup.cluster_security_groups(self.ec2, self.spec)
        roles = security_group_roles(self.set_name)
        missing = [role for role in roles if role not in found]
        if missing and self.allow_missing_network:
            return [found.get(role, UNKNOWN) for role in roles]
        if missing:
            raise MachineSetError("machine set %s: cluster %s has no %s security group(s); create its network first "
                                  "(kubecluster.aws.cluster_network%s)"
                                  % (self.set_name, self.cluster, ", ".join(missing),
                                     " with cluster.network.bastion.enabled: true" if naming.SG_BASTION in missing else ""))
        return [found[role] for role in roles]

    def launch_detail(self, image: Image) -> str:
        placed = ", ".join("%s/%s%s" % (p["zone"], p["subnet"]["id"], " public IP" if p["public_ip"] else "") for p in self.to_launch)
        image_text = "%s (%s)" % (image.id, image.name) if image.name else image.id
        return "%d x %s, %s, %s" % (len(self.to_launch), self.set_spec["instance_type"], image_text, placed)

    def instance_tags(self, name: str, slot: int) -> Dict[str, str]:
        tags: Dict[str, str] = naming.resource_tags(self.cluster, name, naming.machine_role(self.set_name),
                                                    self.set_spec["additional_tags"], cloud_provider=True)
        tags[naming.MACHINE_SET_TAG] = self.set_name
        tags[naming.SLOT_TAG] = str(slot)
        tags[naming.SPEC_HASH_TAG] = self.current_hash or ""
        version = set_kubernetes_version(self.set_name, self.set_spec)
        if version:
            tags[naming.KUBERNETES_VERSION_TAG] = version
        return tags

    def root_volume_mapping(self, image: Image) -> Dict[str, Any]:
        volume = self.set_spec["root_volume"]
        ebs = {"VolumeSize": volume["size"], "VolumeType": volume["type"], "Encrypted": volume["encrypted"],
               "DeleteOnTermination": True}
        if volume["encrypted"] and volume["kms_key_id"]:
            ebs["KmsKeyId"] = volume["kms_key_id"]
        return {"DeviceName": image.root_device_name, "Ebs": ebs}

    def batch_tags(self, slots: Sequence[int], attempt: int) -> Dict[str, str]:
        """The tags of a launch: a single machine's own (Name and slot included); for several, those they
        share and the batch tag (each one's Name and slot are set right after the launch)."""
        if len(slots) == 1:
            return self.instance_tags(self.slot_machine_name(slots[0], attempt), slots[0])
        tags = self.instance_tags("", slots[0])
        del tags["Name"], tags[naming.SLOT_TAG]
        tags[naming.LAUNCH_BATCH_TAG] = launch_batch_tag(slots, attempt)
        return tags

    def run_request(self, zone: str, slots: Sequence[int], attempt: int, image: Image, subnet: Dict[str, Any], public_ip: bool,
                    groups: List[str], user_data: Optional[str]) -> Dict[str, Any]:
        """The RunInstances parameters of the machines of ``slots`` in ``zone`` at ``attempt``, all or none;
        the same for every run with the same spec, or EC2 would answer IdempotentParameterMismatch to the token."""
        request: Dict[str, Any] = {
            "ImageId": image.id,
            "InstanceType": self.set_spec["instance_type"],
            "MinCount": len(slots),
            "MaxCount": len(slots),
            "ClientToken": client_token(self.cluster, self.set_name, zone, slots, attempt),
            # One interface carrying subnet, groups and the public-IP choice, as CAPA launches.
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet["id"], "Groups": groups,
                                   "AssociatePublicIpAddress": public_ip, "DeleteOnTermination": True}],
            "MetadataOptions": metadata_options(self.set_spec),
            "BlockDeviceMappings": [self.root_volume_mapping(image)],
            "TagSpecifications": boto3_tag_specifications(self.batch_tags(slots, attempt),
                                                          ["instance", "volume", "network-interface"]),
        }
        if self.set_spec["iam_instance_profile"]:
            request["IamInstanceProfile"] = {"Name": self.set_spec["iam_instance_profile"]}
        if self.set_spec["ssh_key_name"]:
            request["KeyName"] = self.set_spec["ssh_key_name"]
        if user_data:
            request["UserData"] = user_data
        return request

    def plan_waits(self) -> None:
        if not self.ctx.wait:
            return
        if self.to_launch:
            self.plan.wait("ec2 instances running", ", ".join(p["name"] for p in self.to_launch), self.wait_running)
        if self.to_terminate:
            self.plan.wait("ec2 instances terminated", ", ".join(self.terminated()),
                           lambda: aws_ec2.wait_for_instances(self.ec2, "instance_terminated", self.terminated(), self.ctx.wait_timeout))

    # applying

    def launch(self) -> None:
        for batch in self.batches:
            launched = self.launch_batch(batch)
            for planned, instance in zip(batch["members"], launched):
                self.plan.refs[planned["name"]] = instance["InstanceId"]
                self.new_instances[planned["name"]] = instance

    def launch_batch(self, batch: Dict[str, Any]) -> List[Instance]:
        """Launch the machines of a batch of missing slots, one RunInstances per attempt, name them (when
        several) and record their final names; returns the instances in the batch's slot order.

        EC2 answering with an instance this run read (live or gone), or with one that is not pending
        or running, means the attempt's token was spent on earlier machines of the slots; an
        IdempotentParameterMismatch, that it was spent with other settings. Both move to the next
        attempt, as a racing run does, so the two still end on the same instances.
        """
        slots, attempt = batch["slots"], batch["attempt"]
        while attempt < MAX_LAUNCH_ATTEMPTS:
            request = self.run_request(batch["zone"], slots, attempt, batch["image"], batch["subnet"], batch["public_ip"],
                                       batch["groups"], batch["user_data"])
            try:
                answer: List[Instance] = aws_ec2.run_instances(self.ec2, **request)["Instances"]
            except is_ansible_aws_error_code("IdempotentParameterMismatch"):
                attempt = self.first_attempt(slots, attempt + 1)
                continue
            launched = sorted(answer, key=lambda instance: int(instance.get("AmiLaunchIndex") or 0))
            if len(launched) != len(slots) or any(self.spent_token(instance) for instance in launched):
                attempt = self.first_attempt(slots, attempt + 1)
                continue
            for planned in batch["members"]:
                planned.update(name=self.slot_machine_name(planned["slot"], attempt), attempt=attempt)
            if len(slots) > 1:
                self.name_batch(launched, slots, attempt)
            return launched
        raise MachineSetError("machine set %s of cluster %s: slot(s) %s could not be launched in %d attempts: each launch token "
                              "already belongs to machines of those slots; terminate or untag stray machines of the set"
                              % (self.set_name, self.cluster, ", ".join(str(slot) for slot in slots), MAX_LAUNCH_ATTEMPTS))

    def name_batch(self, launched: Sequence[Instance], slots: Sequence[int], attempt: int) -> None:
        """One CreateTags per machine of a batch: its Name and slot, in launch-index order."""
        for instance, slot in zip(launched, slots):
            names = self.batch_names(slot, attempt)
            self.tag_instance(instance["InstanceId"], names)()
            instance["Tags"] = [tag for tag in instance.get("Tags") or [] if tag["Key"] not in names] + [
                {"Key": key, "Value": value} for key, value in sorted(names.items())]

    def spent_token(self, instance: Instance) -> bool:
        """Whether RunInstances handed back a machine an earlier launch with this token made, not a new
        one (nor one a racing run made moments ago): one this run read, one not pending or running,
        or one launched well before the read yet not in it."""
        if instance["InstanceId"] in self.known_ids or instance.get("State", {}).get("Name") not in LAUNCHED_STATES:
            return True
        launched = instance.get("LaunchTime")
        if isinstance(launched, datetime.datetime) and self.read_at is not None:
            if launched.tzinfo is None:
                launched = launched.replace(tzinfo=datetime.timezone.utc)
            return launched < self.read_at - STALE_LAUNCH
        return False

    def wait_running(self) -> None:
        ids = [self.plan.refs[p["name"]] for p in self.to_launch]
        aws_ec2.wait_for_instances(self.ec2, "instance_running", ids, self.ctx.wait_timeout)
        # RunInstances answers before AWS assigns public IPs and DNS names; one describe of
        # the new machines after the wait returns the addresses callers connect to.
        for reservation in aws_ec2.describe_instances(self.ec2, InstanceIds=ids):
            for instance in reservation["Instances"]:
                self.new_instances[name_of(instance)] = instance


def plan_present(ctx: Context, spec: Spec, set_name: str, remove_machines: Sequence[str] = (), user_data: Optional[str] = None,
                 allow_missing_network: bool = False, replicas: Optional[int] = None, terminate_surplus: bool = False,
                 mark_updated: Sequence[str] = ()) -> Plan:
    """Plan bringing the set to its replicas.

    ``spec`` is a resolved spec whose availability zones are names; ``replicas`` overrides the
    set's count (a surge). Machines beyond the replicas are returned as ``surplus`` in deletion
    order and terminated only with ``terminate_surplus``; ``remove_machines`` are terminated and
    replaced; ``mark_updated`` machines get the spec's spec-hash and version tags (after an
    in-place upgrade). The Plan's ``returns`` hold the module's return values (machines, outdated,
    launched, terminated, surplus), computed after the apply; it waits for the machines when
    ``ctx.wait``. Raises MachineSetError (before any write) when the set cannot be built as asked.
    ``allow_missing_network`` (check mode) plans into subnets and security groups the same run
    would create, with "(known after apply)" ids, instead of failing.
    """
    machine_set = MachineSet(ctx, spec, set_name, allow_missing_network, replicas)
    return machine_set.plan_present(remove_machines, user_data, terminate_surplus, mark_updated)


def plan_absent(ctx: Context, spec: Spec, set_name: str) -> Plan:
    """Plan terminating every owned machine of the set, with one call and one wait (when ``ctx.wait``).

    Any set name is accepted, so the machines of a set since dropped from the spec can go.
    """
    return MachineSet(ctx, spec, set_name).plan_absent()
