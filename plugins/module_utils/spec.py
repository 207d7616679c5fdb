# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster spec: the one place its defaults, environment fill-in and validation live.

``resolve(raw, environ)`` turns what a user wrote into a complete spec with every
default filled in, or raises ``SpecError`` listing every problem at once, each naming
the field and the fix. It makes no AWS call. What only AWS can tell (the region's
zones, the Elastic IP quota, whether the SSH key exists) is checked by
``check_against_account`` from facts the caller read.

Resolving an already resolved spec gives it back unchanged, so every module can take
either what the user wrote or what ``kubecluster.aws.cluster_spec`` returned.
"""

import copy
import difflib
import ipaddress
import re
from typing import Any, Callable, Collection, Dict, Iterable, List, Mapping, Optional, Pattern, Sequence, Set, Tuple, TypeVar, Union

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load

from .errors import KubeclusterError
from .naming import CONTROL_PLANE_PROFILE, NODES_PROFILE, SET_BASTION, SET_CONTROL_PLANE, reserved_tag_key

T = TypeVar("T")

# A resolved spec (or a part of one) as the modules pass it around: the YAML mapping, every default filled in.
Spec = Dict[str, Any]
# A value check: the problem with a value as a text, or None when there is none.
Check = Callable[[Any], Optional[str]]
# The Cluster API quick-start variables (os.environ, or what a test gives).
Environ = Mapping[str, str]

# Cluster API quick-start variables and the field each fills when the spec leaves it unset.
ENV_REGION = "AWS_REGION"
# The AWS SDKs' and CLI's region variable, read after AWS_REGION (then the profile's region).
ENV_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_SSH_KEY = "AWS_SSH_KEY_NAME"
ENV_CP_TYPE = "AWS_CONTROL_PLANE_MACHINE_TYPE"
ENV_NODE_TYPE = "AWS_NODE_MACHINE_TYPE"
ENV_VERSION = "KUBERNETES_VERSION"
ENV_CP_COUNT = "CONTROL_PLANE_MACHINE_COUNT"
ENV_WORKER_COUNT = "WORKER_MACHINE_COUNT"

NAT_MODES = ("per_az", "single", "none")
LB_TYPES = ("nlb", "classic")
LB_SCHEMES = ("internet-facing", "internal")
HEALTH_CHECK_PROTOCOLS = ("TCP", "HTTPS")
CNI_PLUGINS = ("calico", "cilium")
VOLUME_TYPES = ("gp3", "gp2", "io1", "io2")
HTTP_TOKENS = ("required", "optional")
PACKAGE_SOURCES = ("pkgs.k8s.io", "mirror", "binaries")
# Cluster API's MachineDeployment deletion order (spec.deletion.order; deletePolicy before v1beta2).
DELETION_ORDERS = ("random", "newest", "oldest")
UPGRADE_STRATEGIES = ("immutable", "in_place")
# none: the admin kubeconfig stays only on the controller; otherwise also in that AWS service, encrypted.
KUBECONFIG_SECRETS = ("none", "secretsmanager", "ssm")
# CAPI's MachineHealthCheck nodeStartupTimeout default; its webhook refuses less than 30 s.
DEFAULT_NODE_STARTUP_TIMEOUT = 600
MIN_NODE_STARTUP_TIMEOUT = 30
DEFAULT_NODE_DRAIN_TIMEOUT = 600
# A machine deployment's replicas when neither the spec nor WORKER_MACHINE_COUNT gives them (Cluster API's default).
DEFAULT_WORKER_REPLICAS = 1
MAX_TIMEOUT = 86400
UPGRADE_COMMAND = "ansible-playbook kubecluster.aws.upgrade_cluster -e @spec.yml"

# kubeadm.k8s.io/v1beta3 is read from 1.22; CAPA publishes images for the newest three minors.
MIN_KUBERNETES_MINOR = 28
MAX_AZS = 6  # a /16 split into AZs+1 blocks keeps subnets usable up to here
# AWS's 50 tags per resource, less Name, ownership, role, cloud-provider, set, slot, spec-hash, kubernetes-version,
# launch-batch and the record of the additional tag keys (kubecluster.aws/managed-tags)
MAX_USER_TAGS = 40
# The record holds the keys, comma-separated, in one tag value.
MAX_TAG_VALUE = 256

# Safer than CAPA: IMDSv2 only, hop limit 2 so containers can still reach it.
DEFAULT_INSTANCE_METADATA = {"http_tokens": "required", "http_put_response_hop_limit": 2}
DEFAULT_ROOT_VOLUME = {"size": 80, "type": "gp3", "encrypted": True, "kms_key_id": None}
DEFAULT_IMAGE_LOOKUP = {
    # CAPA's image lookup (pkg/cloud/services/ec2/ami.go): CNCF's account, name format, base OS.
    "owner": "819546954734",
    "name_format": "capa-ami-{base_os}-?{k8s_version}-*",
    "base_os": "ubuntu-24.04",
}
DEFAULT_BASTION_IMAGE_LOOKUP = {
    # CAPA's bastion: the newest Canonical Ubuntu 24.04 image.
    "owner": "099720109477",
    "name_format": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
_ZONE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+[a-z]$|^[a-z]{2}-[a-z]+-\d+-[a-z0-9-]+$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def _resource_id(prefix: str) -> "re.Pattern[str]":
    """An EC2 resource id: the prefix and 8 (older) or 17 hexadecimal digits."""
    return re.compile(r"^%s-([0-9a-f]{8}|[0-9a-f]{17})$" % prefix)


_AMI = _resource_id("ami")
_VPC = _resource_id("vpc")
_SUBNET = _resource_id("subnet")
_KEY_NAME = re.compile(r"^[\x20-\x7e]{1,255}$")
_TAG_CHARS = re.compile(r"^[a-zA-Z0-9 _.:=+\-@/]*$")
_ACCOUNT_OR_ALIAS = re.compile(r"^(\d{12}|self|amazon|aws-marketplace)$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


class SpecError(KubeclusterError):
    """A spec that cannot be used; ``errors`` holds one ``path: problem; fix`` line each."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__("Invalid cluster spec:\n- " + "\n- ".join(self.errors), self.errors)


class _Field:
    """One field of the schema: how to default it, check it and say what it should be."""

    def __init__(self, default: Any = None, check: Optional[Check] = None, env: Union[None, str, Tuple[str, ...]] = None,
                 children: Optional["Schema"] = None, items: Optional["Schema"] = None, nullable: bool = False) -> None:
        self.default = default
        self.check = check
        self.env = env
        self.children = children
        self.items = items
        self.nullable = nullable


def _copy(value: T) -> T:
    return copy.deepcopy(value)


# --- value checks: each returns an error text or None --------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    return None


def _choice(choices: Sequence[str]) -> Check:
    def check(value: Any) -> Optional[str]:
        if value not in choices:
            return "must be one of %s, not %r" % (", ".join(choices), value)
        return None
    return check


def _boolean(value: Any) -> Optional[str]:
    if not isinstance(value, bool):
        return "must be true or false (unquoted), not %r" % (value,)
    return None


def _int_range(low: int, high: int) -> Check:
    def check(value: Any) -> Optional[str]:
        if not _is_int(value) or not low <= value <= high:
            return "must be a whole number from %d to %d, not %r" % (low, high, value)
        return None
    return check


def _pattern(regex: Pattern[str], what: str) -> Check:
    def check(value: Any) -> Optional[str]:
        if not isinstance(value, str) or not regex.match(value):
            return "%r is not %s" % (value, what)
        return None
    return check


def _cluster_name(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not _DNS_LABEL.match(value) or len(value) > 63:
        return ("%r is not a valid cluster name; use at most 63 lower-case letters, digits and '-', "
                "starting and ending with a letter or digit (it becomes part of AWS resource names and tags)" % (value,))
    return None


def cluster_name_error(value: Any) -> Optional[str]:
    """Why ``value`` cannot be a cluster name, or None when it can; for options that name clusters outside a spec."""
    return _cluster_name(value)


def _network(value: Any, low: int = 16, high: int = 28) -> Optional[str]:
    if not isinstance(value, str):
        return "must be an IPv4 CIDR such as 10.0.0.0/16, not %r" % (value,)
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return "%r is not an IPv4 CIDR such as 10.0.0.0/16" % (value,)
    if net.version != 4:
        return "%r is IPv6; only IPv4 is supported" % (value,)
    if str(net) != value:
        return "%r has host bits set; use %s" % (value, net)
    if not low <= net.prefixlen <= high:
        return "%r must have a prefix length from /%d to /%d" % (value, low, high)
    return None


def _service_network(value: Any) -> Optional[str]:
    problem = _network(value, 12, 24)
    if problem and "prefix length" in problem:
        return problem + " (kubeadm refuses a service subnet of more than 20 host bits)"
    return problem


def _cidr_list(value: Any) -> Optional[str]:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of IPv4 CIDRs such as [203.0.113.0/24]"
    for item in value:
        problem = _network(item, 0, 32)
        if problem:
            return problem
    return None


def _version(value: Any) -> Optional[str]:
    match = _VERSION.match(value) if isinstance(value, str) else None
    if not match:
        return ("%r is not a Kubernetes version; write it as vMAJOR.MINOR.PATCH, e.g. v1.31.4 "
                "(quote it so YAML keeps it a string)" % (value,))
    major, minor = int(match.group(1)), int(match.group(2))
    if major != 1 or minor < MIN_KUBERNETES_MINOR:
        return "%r is too old; kubecluster.aws supports v1.%d.0 and newer" % (value, MIN_KUBERNETES_MINOR)
    return None


def _zones(value: Any) -> Optional[str]:
    if _is_int(value):
        if not 1 <= value <= MAX_AZS:
            return "must be a count from 1 to %d or a list of zone names, not %r" % (MAX_AZS, value)
        return None
    if isinstance(value, list) and value:
        for zone in value:
            if not isinstance(zone, str) or not _ZONE.match(zone):
                return "%r is not an availability zone name such as us-east-1a" % (zone,)
        if len(set(value)) != len(value):
            return "lists a zone twice"
        if len(value) > MAX_AZS:
            return "may list at most %d zones" % MAX_AZS
        return None
    return "must be a count (e.g. 3) or a list of zone names, not %r" % (value,)


def _subnet_ids(value: Any) -> Optional[str]:
    if not isinstance(value, list):
        return "must be a list of subnet ids such as [subnet-0123456789abcdef0]"
    for item in value:
        if not isinstance(item, str) or not _SUBNET.match(item):
            return "%r is not a subnet id such as subnet-0123456789abcdef0" % (item,)
    return None


def _tags(value: Any) -> Optional[str]:
    if not isinstance(value, dict):
        return "must be a mapping of tag keys to values"
    if len(value) > MAX_USER_TAGS:
        return "may hold at most %d tags (AWS allows 50 per resource; the collection sets up to 10 of its own)" % MAX_USER_TAGS
    if all(isinstance(key, str) for key in value) and len(",".join(value)) > MAX_TAG_VALUE:
        return ("has keys of %d characters in all (with a comma between two), over the %d of the tag kubecluster.aws/managed-tags "
                "that records them; use fewer or shorter keys" % (len(",".join(value)), MAX_TAG_VALUE))
    reserved = sorted(key for key in value if isinstance(key, str) and reserved_tag_key(key))
    if reserved:
        return ("%s %s set by kubecluster.aws itself: ownership, role and name tags decide which cluster a resource "
                "belongs to and what deletes it; remove %s (the collection tags every resource with the cluster's own)"
                % (", ".join(repr(key) for key in reserved), "is" if len(reserved) == 1 else "are",
                   "it" if len(reserved) == 1 else "them"))
    for key, val in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_CHARS.match(key):
            return "tag key %r must be 1-128 characters of letters, digits, spaces and _.:=+-@/" % (key,)
        if key.lower().startswith("aws:"):
            return "tag key %r uses the prefix aws:, which AWS reserves" % (key,)
        if not isinstance(val, str) or len(val) > 256 or not _TAG_CHARS.match(val):
            return "tag %r must have a string value of at most 256 characters of letters, digits, spaces and _.:=+-@/" % (key,)
    return None


_KMS_KEY = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
_KMS_ALIAS = r"alias/[a-zA-Z0-9/_-]{1,250}"
# What EC2 takes as a volume's KmsKeyId: a key id (or a multi-Region key's mrk- id), an alias name, or the ARN of either.
_KMS = re.compile(r"^(%s|%s|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/%s|%s))$" % (_KMS_KEY, _KMS_ALIAS, _KMS_KEY, _KMS_ALIAS))


def _kms(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not _KMS.match(value):
        return ("%r is not a KMS key; give a key id (1234abcd-12ab-34cd-56ef-1234567890ab or mrk-...), an alias name "
                "(alias/my-key), or the ARN of a key or alias (arn:aws:kms:REGION:ACCOUNT:key/ID)" % (value,))
    return None


Schema = Dict[str, _Field]


def _root_volume() -> Schema:
    return {
        "size": _Field(DEFAULT_ROOT_VOLUME["size"], _int_range(8, 16384)),
        "type": _Field(DEFAULT_ROOT_VOLUME["type"], _choice(VOLUME_TYPES)),
        "encrypted": _Field(DEFAULT_ROOT_VOLUME["encrypted"], _boolean),
        "kms_key_id": _Field(None, _kms, nullable=True),
    }


# A machine deployment's fields (the items of machine_deployments).
_MACHINE_DEPLOYMENT: Schema = {
    "name": _Field(None, None),
    "replicas": _Field(None, _int_range(0, 1000), env=ENV_WORKER_COUNT),
    "instance_type": _Field("t3.large", _pattern(_INSTANCE_TYPE, "an EC2 instance type such as t3.large"), env=ENV_NODE_TYPE),
    "ami_id": _Field(None, _pattern(_AMI, "an AMI id such as ami-0123456789abcdef0"), nullable=True),
    "iam_instance_profile": _Field(NODES_PROFILE, _string),
    "availability_zones": _Field(None, _zones, nullable=True),
    "root_volume": _Field(children=_root_volume()),
    # Cluster API's MachineDeployment: which machines go first on scale down, and the rollout's surge.
    "deletion_order": _Field("random", _choice(DELETION_ORDERS)),
    "max_surge": _Field(1, _int_range(0, 1000)),
    "max_unavailable": _Field(0, _int_range(0, 1000)),
}

SCHEMA: Schema = {
    "name": _Field(None, _cluster_name),
    "region": _Field(None, _pattern(_REGION, "an AWS region name such as ap-northeast-2"), env=(ENV_REGION, ENV_DEFAULT_REGION)),
    "kubernetes_version": _Field(None, _version, env=ENV_VERSION),
    "ssh_key_name": _Field(None, _pattern(_KEY_NAME, "an EC2 key-pair name (1-255 printable ASCII characters)"),
                           env=ENV_SSH_KEY, nullable=True),
    "additional_tags": _Field({}, _tags),
    "instance_metadata": _Field(children={
        "http_tokens": _Field(DEFAULT_INSTANCE_METADATA["http_tokens"], _choice(HTTP_TOKENS)),
        "http_put_response_hop_limit": _Field(DEFAULT_INSTANCE_METADATA["http_put_response_hop_limit"], _int_range(1, 64)),
    }),
    "image_lookup": _Field(children={
        "owner": _Field(DEFAULT_IMAGE_LOOKUP["owner"], _pattern(_ACCOUNT_OR_ALIAS, "an AWS account id (12 digits) or self")),
        "name_format": _Field(DEFAULT_IMAGE_LOOKUP["name_format"], _string),
        "base_os": _Field(DEFAULT_IMAGE_LOOKUP["base_os"], _string),
    }),
    "network": _Field(children={
        "vpc_cidr": _Field("10.0.0.0/16", lambda v: _network(v, 16, 24)),
        "availability_zones": _Field(3, _zones),
        "nat_gateways": _Field("per_az", _choice(NAT_MODES)),
        "vpc_id": _Field(None, _pattern(_VPC, "a VPC id such as vpc-0123456789abcdef0"), nullable=True),
        "subnet_ids": _Field([], _subnet_ids),
        # kubeadm: a pod subnet at most 16 bits wider than the /24 node CIDRs and at least one of them wide.
        "pod_cidr": _Field("192.168.0.0/16", lambda v: _network(v, 8, 24)),
        # kubeadm: a service subnet of at most 20 host bits (ValidateServiceSubnetSize).
        "service_cidr": _Field("10.96.0.0/12", _service_network),
        "cni": _Field("calico", _choice(CNI_PLUGINS)),
        "node_port_cidrs": _Field(["0.0.0.0/0"], _cidr_list),
        "api_load_balancer": _Field(children={
            "type": _Field("nlb", _choice(LB_TYPES)),
            "scheme": _Field("internet-facing", _choice(LB_SCHEMES)),
            "allowed_cidrs": _Field(["0.0.0.0/0"], _cidr_list),
            "cross_zone": _Field(False, _boolean),
            "health_check_protocol": _Field("HTTPS", _choice(HEALTH_CHECK_PROTOCOLS)),
        }),
        "bastion": _Field(children={
            "enabled": _Field(True, _boolean),
            "allowed_cidrs": _Field(["0.0.0.0/0"], _cidr_list),
            "instance_type": _Field("t3.micro", _pattern(_INSTANCE_TYPE, "an EC2 instance type such as t3.micro")),
            "ami_id": _Field(None, _pattern(_AMI, "an AMI id such as ami-0123456789abcdef0"), nullable=True),
        }),
    }),
    "control_plane": _Field(children={
        "replicas": _Field(1, None, env=ENV_CP_COUNT),
        "instance_type": _Field("t3.large", _pattern(_INSTANCE_TYPE, "an EC2 instance type such as t3.large"), env=ENV_CP_TYPE),
        "ami_id": _Field(None, _pattern(_AMI, "an AMI id such as ami-0123456789abcdef0"), nullable=True),
        "iam_instance_profile": _Field(CONTROL_PLANE_PROFILE, _string),
        "root_volume": _Field(children=_root_volume()),
    }),
    # Node side (roles): where kubeadm/kubelet/kubectl come from, add-on versions, kubeconfig.
    "kubernetes_packages": _Field(children={
        "source": _Field("pkgs.k8s.io", _choice(PACKAGE_SOURCES)),
        "repository_url": _Field(None, _pattern(_URL, "an http(s) URL of an apt repository laid out like pkgs.k8s.io"),
                                 nullable=True),
        "binaries_dir": _Field(None, _string, nullable=True),
    }),
    "addons": _Field(children={
        # None: the version the addons role pins for the cluster's Kubernetes minor.
        "cni_version": _Field(None, _pattern(_ADDON_VERSION, "a release tag such as v3.29.1"), nullable=True),
        "aws_cloud_controller_manager_version": _Field(None, _pattern(_ADDON_VERSION, "a release tag such as v1.31.8"),
                                                       nullable=True),
        "ebs_csi_driver_version": _Field(None, _pattern(_ADDON_VERSION, "a release tag such as v1.43.0"), nullable=True),
        "manifests_dir": _Field(None, _string, nullable=True),
    }),
    "kubeconfig_path": _Field(None, _string, nullable=True),
    # Where create_cluster.yml keeps a copy of the admin kubeconfig, encrypted, for later jobs (kubeconfig.py).
    "kubeconfig_secret": _Field("none", _choice(KUBECONFIG_SECRETS)),
    # Your own known_hosts with the machines' host keys pinned (checked strictly); None: the
    # cluster's own file next to the kubeconfig, pinned on first contact (hosts.host_keys).
    "ssh_known_hosts_file": _Field(None, _string, nullable=True),
    # Day 2: how upgrade_cluster.yml rolls a change, and the waits of scale, upgrade and remove.
    "upgrade_strategy": _Field("immutable", _choice(UPGRADE_STRATEGIES)),
    "node_startup_timeout": _Field(DEFAULT_NODE_STARTUP_TIMEOUT, _int_range(MIN_NODE_STARTUP_TIMEOUT, MAX_TIMEOUT)),
    "node_drain_timeout": _Field(DEFAULT_NODE_DRAIN_TIMEOUT, _int_range(1, MAX_TIMEOUT)),
    "machine_deployments": _Field(None, items=_MACHINE_DEPLOYMENT),
}

_INT_ENV = (ENV_CP_COUNT, ENV_WORKER_COUNT)


def _from_env(field: _Field, environ: Environ, path: str, errors: List[str]) -> Tuple[bool, Any]:
    """The first of the field's environment variables that is set (and not empty)."""
    names = (field.env,) if isinstance(field.env, str) else field.env or ()
    for name in names:
        raw = environ.get(name)
        if raw in (None, ""):
            continue
        if name in _INT_ENV:
            try:
                return True, int(raw)
            except ValueError:
                errors.append("%s: environment variable %s=%r is not a whole number; export a count such as 1"
                              % (path, name, raw))
                return False, None
        return True, raw
    return False, None


def _unknown_keys(value: Dict[Any, Any], schema: Schema, path: str, errors: List[str]) -> None:
    for key in value:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = "did you mean %s?" % close[0] if close else "known keys: %s" % ", ".join(sorted(schema))
            errors.append("%s.%s: unknown key; %s" % (path, key, hint))


def _resolve_mapping(value: Any, schema: Schema, path: str, environ: Environ, errors: List[str]) -> Spec:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.append("%s: must be a mapping, not %r" % (path, value))
        value = {}
    _unknown_keys(value, schema, path, errors)
    out: Spec = {}
    for key, field in schema.items():
        out[key] = _resolve_field(value.get(key), key in value, field, "%s.%s" % (path, key), environ, errors)
    return out


def _resolve_field(value: Any, present: bool, field: _Field, path: str, environ: Environ, errors: List[str]) -> Any:
    if field.children is not None:
        return _resolve_mapping(value, field.children, path, environ, errors)
    if not present or (value is None and not field.nullable):
        found, env_value = _from_env(field, environ, path, errors)
        value = env_value if found else _copy(field.default)
    if value is None:
        return None
    if field.check:
        problem = field.check(value)
        if problem:
            errors.append("%s: %s" % (path, problem))
    return value


def _resolve_machine_deployments(value: Any, environ: Environ, errors: List[str]) -> List[Spec]:
    path = "cluster.machine_deployments"
    schema = _MACHINE_DEPLOYMENT
    if value is None:
        value = [{"name": "md-0"}]
    if not isinstance(value, list):
        errors.append("%s: must be a list of machine deployments such as [{name: md-0, replicas: 2}]" % path)
        return []
    out: List[Spec] = []
    seen: Set[Any] = set()
    for index, item in enumerate(value):
        item_path = "%s[%d]" % (path, index)
        if not isinstance(item, dict):
            errors.append("%s: must be a mapping such as {name: md-0, replicas: 2}" % item_path)
            continue
        resolved = _resolve_mapping(item, schema, item_path, environ, errors)
        name = resolved["name"]
        if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 40:
            errors.append("%s.name: %r is not a valid machine deployment name; use at most 40 lower-case letters, "
                          "digits and '-'" % (item_path, name))
        elif name in ("control-plane", "bastion"):
            errors.append("%s.name: %r is reserved; choose another name such as md-0" % (item_path, name))
        elif name in seen:
            errors.append("%s.name: %r is used twice; give each machine deployment its own name" % (item_path, name))
        seen.add(name)
        if resolved["replicas"] is None:
            # Cluster API's MachineDeployment default (its webhook sets 1 when replicas is unset), never 0:
            # a spec that leaves replicas out must not scale a running deployment down to nothing.
            resolved["replicas"] = DEFAULT_WORKER_REPLICAS
        if resolved["max_surge"] == 0 and resolved["max_unavailable"] == 0:
            # Cluster API's webhook: a rollout that may neither add nor remove a machine cannot move.
            errors.append("%s.max_surge: max_surge and max_unavailable are both 0, so a rolling upgrade could neither add "
                          "nor remove a machine; set max_surge: 1 (launch first, the default) or max_unavailable: 1 "
                          "(remove first)" % item_path)
        out.append(resolved)
    return out


def _check_control_plane(spec: Spec, errors: List[str]) -> None:
    replicas = spec["control_plane"]["replicas"]
    path = "cluster.control_plane.replicas"
    if not _is_int(replicas) or replicas < 1:
        errors.append("%s: must be an odd whole number such as 1 or 3, not %r" % (path, replicas))
    elif replicas % 2 == 0:
        errors.append("%s: %d is even; stacked etcd needs an odd number of members for quorum, use %d or %d"
                      % (path, replicas, replicas - 1, replicas + 1))


def _check_network(spec: Spec, errors: List[str]) -> None:
    network = spec["network"]
    path = "cluster.network"
    nets: Dict[str, Union[ipaddress.IPv4Network, ipaddress.IPv6Network]] = {}
    for key in ("vpc_cidr", "pod_cidr", "service_cidr"):
        try:
            nets[key] = ipaddress.ip_network(network[key])
        except (TypeError, ValueError):
            pass  # already reported
    keys = sorted(nets)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            if nets[first].overlaps(nets[second]):
                errors.append("%s.%s: %s overlaps %s.%s %s; choose ranges that do not overlap"
                              % (path, first, nets[first], path, second, nets[second]))
    if network["vpc_id"] and not network["subnet_ids"]:
        errors.append("%s.subnet_ids: a bring-your-own VPC (vpc_id) needs the ids of its subnets; list them" % path)
    if network["subnet_ids"] and not network["vpc_id"]:
        errors.append("%s.vpc_id: subnet_ids are only used with your own VPC; set vpc_id too, or remove subnet_ids" % path)
    zones = network["availability_zones"]
    region = spec["region"]
    if isinstance(zones, list) and isinstance(region, str):
        for zone in zones:
            if isinstance(zone, str) and not zone.startswith(region):
                errors.append("%s.availability_zones: %s is not in region %s; list zones of %s"
                              % (path, zone, region, region))
    if "vpc_cidr" in nets and _is_int(zones) and not network["vpc_id"]:
        # Each AZ's public subnet is 1/(2^k) of a quarter of the VPC; AWS's smallest subnet is /28.
        blocks = zones + 1
        bits = (blocks - 1).bit_length()
        public_bits = (zones - 1).bit_length()
        if nets["vpc_cidr"].prefixlen + bits + public_bits > 28:
            errors.append("%s.vpc_cidr: %s is too small for %d availability zones; use a /%d or larger"
                          % (path, nets["vpc_cidr"], zones, 28 - bits - public_bits))


def _check_kubernetes_packages(spec: Spec, errors: List[str]) -> None:
    packages = spec["kubernetes_packages"]
    path = "cluster.kubernetes_packages"
    source = packages["source"]
    if source == "mirror" and not packages["repository_url"]:
        errors.append("%s.repository_url: source mirror needs the URL of your apt repository "
                      "(laid out like https://pkgs.k8s.io/core:/stable:/v1.31/deb/); set it" % path)
    if packages["repository_url"] and source != "mirror":
        errors.append("%s.repository_url: only used with source: mirror; set source: mirror or remove it" % path)
    if source == "binaries" and not packages["binaries_dir"]:
        errors.append("%s.binaries_dir: source binaries needs the directory on the controller holding kubeadm, "
                      "kubelet and kubectl; set it" % path)
    if packages["binaries_dir"] and source != "binaries":
        errors.append("%s.binaries_dir: only used with source: binaries; set source: binaries or remove it" % path)


# AWS's default quota of inbound rules per security group (Service Quotas: vpc L-0EA8095F); each CIDR is one rule.
MAX_SECURITY_GROUP_RULES = 60
# The CIDR lists of the spec and the security group (an sg role of naming) each one's rules go to.
_RULE_FIELDS = (
    ("cluster.network.api_load_balancer.allowed_cidrs", ("api_load_balancer", "allowed_cidrs"), "apiserver-lb"),
    ("cluster.network.node_port_cidrs", ("node_port_cidrs",), "node"),
    ("cluster.network.bastion.allowed_cidrs", ("bastion", "allowed_cidrs"), "bastion"),
)


def _check_rule_counts(spec: Spec, errors: List[str]) -> None:
    """A CIDR list that would make more inbound rules than a security group holds fails here, not after the network
    was made: the rules counted are the ones securitygroups.wanted_rules puts in the group the list feeds."""
    if errors:
        return  # wanted_rules needs a sound spec; the other problems come first
    from . import securitygroups  # pylint: disable=import-outside-toplevel  # it imports what imports this module
    rules = securitygroups.wanted_rules(spec, spec["network"]["vpc_cidr"])
    for path, keys, role in _RULE_FIELDS:
        value: Any = spec["network"]
        for key in keys:
            value = value[key]
        count = len(set(rules.get(role, [])))
        cidrs = len(set(value))
        if count > MAX_SECURITY_GROUP_RULES and role in rules:
            errors.append("%s: %d CIDRs make %d inbound rules in the cluster's %s security group, over the %d AWS allows "
                          "a security group; list at most %d (one wider range can cover several)"
                          % (path, cidrs, count, role, MAX_SECURITY_GROUP_RULES, MAX_SECURITY_GROUP_RULES - (count - cidrs)))


def deployment_zone_errors(spec: Spec) -> List[str]:
    """A machine deployment's zones must be zones the cluster has subnets in (cluster.network.availability_zones).

    Names are judged once the cluster's zones are names (given as a list, or resolved from a count by the account
    checks); a count only against the cluster's count. A bring-your-own VPC's zones are its subnets'; not judged here.
    """
    zones = spec["network"]["availability_zones"]
    if spec["network"]["vpc_id"]:
        return []
    errors: List[str] = []
    for index, deployment in enumerate(spec["machine_deployments"]):
        wanted = deployment["availability_zones"]
        path = "cluster.machine_deployments[%d].availability_zones" % index
        have = zones if _is_int(zones) else len(zones)
        if _is_int(wanted) and wanted > have:
            errors.append("%s: %d zones asked for but the cluster has subnets in %d (cluster.network.availability_zones); "
                          "ask for %d or fewer" % (path, wanted, have, have))
        elif isinstance(wanted, list) and isinstance(zones, list):
            missing = [str(zone) for zone in wanted if zone not in zones]
            if missing:
                errors.append("%s: the cluster has no subnet in %s (cluster.network.availability_zones: %s); list zones among "
                              "those, or add %s to cluster.network.availability_zones"
                              % (path, ", ".join(missing), ", ".join(zones), "it" if len(missing) == 1 else "them"))
    return errors


def default_kubeconfig_path(name: str) -> str:
    """Where the admin kubeconfig goes when the spec names no kubeconfig_path."""
    return "~/.kube/%s.kubeconfig" % name


def _default_kubeconfig_path(spec: Spec) -> None:
    if spec["kubeconfig_path"] is None and isinstance(spec["name"], str) and not _cluster_name(spec["name"]):
        spec["kubeconfig_path"] = default_kubeconfig_path(spec["name"])


def _check_required(spec: Spec, errors: List[str]) -> None:
    if spec["name"] is None:
        errors.append("cluster.name: required; name the cluster, e.g. name: capi-example")
    if spec["region"] is None:
        errors.append("cluster.region: required; set it, or export %s or %s, or use a profile (AWS_PROFILE) that has a region"
                      % (ENV_REGION, ENV_DEFAULT_REGION))
    if spec["kubernetes_version"] is None:
        errors.append("cluster.kubernetes_version: required; set it (e.g. v1.31.4), or export %s" % ENV_VERSION)


def cluster_input(value: Any) -> Any:
    """The ``cluster`` option or variable as a mapping: a mapping as it is, a YAML or JSON text (an AWX survey's
    textarea, ``-e cluster=...``) parsed, a whole spec file's text (``cluster:`` at the top) unwrapped.

    Raises SpecError naming ``cluster`` for a text that does not parse, or parses to no mapping. None and any
    other value are returned as they are, for resolve to refuse.
    """
    if not isinstance(value, str):
        return value
    if not HAS_YAML:  # pragma: no cover  (PyYAML comes with ansible-core)
        raise SpecError(["cluster: given as text, which needs PyYAML to parse; pass the spec as a mapping"])
    try:
        parsed = yaml_load(str(value))  # str(): a tagged str of Ansible 2.19 is no str to libyaml
    except Exception as error:  # pylint: disable=broad-except  # yaml.YAMLError and its many subclasses
        first = str(error).strip().splitlines()
        raise SpecError(["cluster: the text is neither YAML nor JSON (%s); give the spec as a mapping, or as the text of "
                         "one such as 'name: capi-example' or '{\"name\": \"capi-example\"}'"
                         % (first[0] if first else type(error).__name__)]) from None
    if isinstance(parsed, dict) and list(parsed) == ["cluster"] and isinstance(parsed["cluster"], dict):
        parsed = parsed["cluster"]  # a whole spec file pasted, top key included
    if not isinstance(parsed, dict):
        raise SpecError(["cluster: the text is %s, not a mapping; give the spec's fields, e.g. "
                         "'name: capi-example' on one line and 'region: ap-northeast-2' on the next"
                         % ("empty" if parsed is None else "a %s (%r)" % (type(parsed).__name__, _shorten(value)))])
    return parsed


def _shorten(text: str, length: int = 60) -> str:
    return text if len(text) <= length else text[:length] + "..."


def with_region(raw: Any, option: Optional[str], environ: Optional[Environ] = None,
                profile_region: Optional[Callable[[], Optional[str]]] = None) -> Any:
    """The user's spec with its region, found as the AWS SDKs find one when the spec has none.

    ``option`` is a module's ``region`` option (given in the task or through ``module_defaults``). The spec's own
    ``cluster.region`` comes first, and an option that names another region is refused (SpecError naming both):
    one cluster is in one region. Without one: the option, then ``AWS_REGION``, then ``AWS_DEFAULT_REGION`` (resolve
    reads both from ``environ``), then ``profile_region()`` (the profile's region, boto3's Session(profile_name=...)).
    A spec that is no mapping is returned as it is, for resolve to refuse.
    """
    if not isinstance(raw, dict):
        return raw
    environ = environ or {}
    own = raw.get("region")
    if own == "":
        raw, own = {k: v for k, v in raw.items() if k != "region"}, None  # an empty survey answer: no region given
    if own is not None:
        if option and option != own:
            raise SpecError(["region: %s is not the spec's cluster.region %s (region is the module's option, from the task "
                             "or module_defaults); a cluster lives in one region: remove the option or give both the same region"
                             % (option, own)])
        return raw
    found = option or environ.get(ENV_REGION) or environ.get(ENV_DEFAULT_REGION) or (profile_region() if profile_region else None)
    return dict(raw, region=found) if found else raw


def resolve(raw: object, environ: Optional[Environ] = None) -> Spec:
    """Validate a user's spec (the value of the ``cluster`` key) and fill in every default.

    ``environ`` supplies the Cluster API quick-start variables for fields the spec leaves
    unset. Raises SpecError naming every problem; returns the complete spec otherwise.
    """
    environ = environ or {}
    errors: List[str] = []
    if not isinstance(raw, dict):
        raise SpecError(["cluster: must be a mapping with at least a name, e.g. {name: capi-example}"])
    if raw.get("ssh_key_name") == "":
        # CAPA's API: an empty sshKeyName is no key pair (AWS_SSH_KEY_NAME is not read then either).
        raw = dict(raw, ssh_key_name=None)
    schema = {k: v for k, v in SCHEMA.items() if k != "machine_deployments"}
    spec = _resolve_mapping({k: v for k, v in raw.items() if k != "machine_deployments"},
                            schema, "cluster", environ, errors)
    spec["machine_deployments"] = _resolve_machine_deployments(raw.get("machine_deployments"), environ, errors)
    _check_required(spec, errors)
    _check_control_plane(spec, errors)
    _check_network(spec, errors)
    _check_kubernetes_packages(spec, errors)
    if not errors:
        errors.extend(deployment_zone_errors(spec))
    _check_rule_counts(spec, errors)
    _default_kubeconfig_path(spec)
    if spec["kubernetes_version"] and not _version(spec["kubernetes_version"]):
        if not spec["kubernetes_version"].startswith("v"):
            spec["kubernetes_version"] = "v" + spec["kubernetes_version"]
    if errors:
        raise SpecError(errors)
    return spec


def resolve_identity(raw: object, environ: Optional[Environ] = None) -> Spec:
    """Only the cluster's name and region, from a spec that need not validate as a whole.

    Deleting, locking and reading a cluster need nothing else, so a spec written for an older
    or newer version of the collection (an unknown key, an even replica count) can still be
    deleted. Raises SpecError when the name or the region is missing or invalid.
    """
    environ = environ or {}
    if not isinstance(raw, dict):
        raise SpecError(["cluster: must be a mapping with at least a name, e.g. {name: capi-example}"])
    errors: List[str] = []
    identity: Spec = {}
    for key in ("name", "region"):
        field = SCHEMA[key]
        identity[key] = _resolve_field(raw.get(key), key in raw, field, "cluster." + key, environ, errors)
    _check_required(dict(identity, kubernetes_version=True), errors)
    if errors:
        raise SpecError(errors)
    return identity


def _nat_layout(spec: Spec, zones: Sequence[T]) -> List[T]:
    """The one NAT-layout rule: the items of ``zones`` that get a NAT gateway.

    Every zone (per_az), the first (single) or none; none at all with a bring-your-own VPC,
    whose NAT is its owner's.
    """
    mode = spec["network"]["nat_gateways"]
    if spec["network"]["vpc_id"] or mode not in ("per_az", "single"):
        return []
    return list(zones) if mode == "per_az" else list(zones[:1])


def nat_zones(spec: Spec) -> List[str]:
    """The zones (of the spec's resolved availability_zones) that get a NAT gateway, in spec order."""
    return _nat_layout(spec, spec["network"]["availability_zones"])


def nat_gateway_count(spec: Spec, zone_count: int) -> int:
    """How many NAT gateways (and so Elastic IPs) the spec's NAT layout needs for ``zone_count`` zones.

    For callers that know the number of zones before their names (cluster_spec's quota check).
    """
    return len(_nat_layout(spec, range(zone_count)))


def select_zones(spec: Spec, region_zones: Iterable[str]) -> List[str]:
    """The cluster's availability zones, CAPA-style: the first N sorted names, or the given list.

    ``region_zones`` are the names of the region's available zones. Raises SpecError when
    the spec asks for more zones than the region has, or names one it does not have.
    """
    wanted = spec["network"]["availability_zones"]
    available = sorted(region_zones)
    path = "cluster.network.availability_zones"
    if isinstance(wanted, list):
        missing = [zone for zone in wanted if zone not in available]
        if missing:
            raise SpecError(["%s: %s not available in %s; choose from %s"
                             % (path, ", ".join(missing), spec["region"], ", ".join(available))])
        return list(wanted)
    if wanted > len(available):
        raise SpecError(["%s: %d zones asked for but %s has only %d (%s); ask for %d or fewer"
                         % (path, wanted, spec["region"], len(available), ", ".join(available), len(available))])
    return available[:wanted]


def instance_profiles(spec: Spec) -> Dict[str, str]:
    """The instance profiles the spec's machines use, as {field path: profile name}."""
    profiles = {"cluster.control_plane.iam_instance_profile": spec["control_plane"]["iam_instance_profile"]}
    for index, deployment in enumerate(spec["machine_deployments"]):
        profiles["cluster.machine_deployments[%d].iam_instance_profile" % index] = deployment["iam_instance_profile"]
    return profiles


def version_change_errors(spec: Spec, machines: Iterable[Mapping[str, Any]]) -> List[str]:
    """The refusal of a Kubernetes version change outside an upgrade: one error line naming every
    machine that runs another version than the spec's, or none.

    ``machines`` are the cluster's pending and running machines as the machine view
    (machines.machine_view) shows them. A new version given to create_cluster.yml would only reach
    the kubelets of new or reinstalled machines, ahead of the control plane (version skew); the
    upgrade playbook rolls it control plane first. Machines without a version (the bastion;
    machines launched before the version tag) are not judged here: the kubernetes_packages role
    checks the kubelet each member runs.
    """
    wanted = spec["kubernetes_version"]
    other = _sorted_machines(m for m in machines if m.get("kubernetes_version") and m["kubernetes_version"] != wanted)
    if not other:
        return []
    running = sorted({str(m["kubernetes_version"]) for m in other}, key=_version_key)
    listed = ", ".join(_runs(m) for m in other)
    return ["cluster.kubernetes_version: %s, but cluster %s is running and %s; nothing was changed. Keep "
            "kubernetes_version: %s here, and move the cluster to %s with the rolling upgrade: %s"
            % (wanted, spec["name"], listed, " or ".join(running), wanted, UPGRADE_COMMAND)]


def version_key(version: Optional[str]) -> Tuple[int, ...]:
    """vMAJOR.MINOR.PATCH as numbers, for ordering machines' version tags; anything else sorts first."""
    parts = (version or "").lstrip("v").split("-")[0].split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else ()


def _version_key(version: str) -> Tuple[int, int, int]:
    """A vMAJOR.MINOR.PATCH version as numbers, for ordering; what does not parse sorts first."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if not match:
        return (0, 0, 0)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


def _sorted_machines(machines: Iterable[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return sorted(machines, key=lambda m: (str(m["name"]), str(m["instance_id"])))


def _runs(machine: Mapping[str, Any]) -> str:
    return "%s (%s) runs %s" % (machine["name"], machine["instance_id"], machine["kubernetes_version"])


def upgrade_errors(spec: Spec, machines: Iterable[Mapping[str, Any]]) -> List[str]:
    """What refuses moving the running machines to the spec's kubernetes_version in an upgrade, or nothing.

    A downgrade (a machine runs a newer version than the spec's) and a skipped minor (the spec's
    minor is more than one above the oldest minor running) are refused, each naming the machines;
    kubeadm upgrades one minor at a time and never down (Cluster API's KubeadmControlPlane refuses
    both too). Patch upgrades, one-minor upgrades and the version already running pass.
    ``machines`` as for version_change_errors; machines without a version tag are not judged.
    """
    wanted = spec["kubernetes_version"]
    target = _version_key(wanted)
    versioned = _sorted_machines(m for m in machines if m.get("kubernetes_version"))
    errors: List[str] = []
    newer = [m for m in versioned if _version_key(str(m["kubernetes_version"])) > target]
    if newer:
        newest = max((str(m["kubernetes_version"]) for m in newer), key=_version_key)
        errors.append("cluster.kubernetes_version: %s is older than what cluster %s runs (%s); Kubernetes cannot be "
                      "downgraded (kubeadm upgrades only forward), nothing was changed; set kubernetes_version: %s or newer"
                      % (wanted, spec["name"], ", ".join(_runs(m) for m in newer), newest))
    older = [m for m in versioned if _version_key(str(m["kubernetes_version"])) < target]
    if older:
        oldest_minor = min(_version_key(str(m["kubernetes_version"]))[:2] for m in older)
        if target[:2] > (oldest_minor[0], oldest_minor[1] + 1):
            behind = [m for m in older if _version_key(str(m["kubernetes_version"]))[:2] < (target[0], target[1] - 1)]
            errors.append("cluster.kubernetes_version: %s skips a minor version: %s; kubeadm upgrades one minor at a time, "
                          "nothing was changed; upgrade to v%d.%d (its newest patch) first, then to %s"
                          % (wanted, ", ".join(_runs(m) for m in behind), oldest_minor[0], oldest_minor[1] + 1, wanted))
    return errors


def upgrade_summary(spec: Spec, machines: Iterable[Mapping[str, Any]]) -> Dict[str, Any]:
    """What an upgrade to the spec's version means for the running machines.

    ``from``: the versions running, oldest first; ``to``: the spec's version; ``minor``: whether a
    running machine is on an older minor (kubeadm's minor upgrade, with its preflight); ``needed``:
    whether any machine runs another version than the spec's.
    """
    wanted = spec["kubernetes_version"]
    running = sorted({str(m["kubernetes_version"]) for m in machines if m.get("kubernetes_version")}, key=_version_key)
    return {
        "from": running,
        "to": wanted,
        "minor": any(_version_key(version)[:2] < _version_key(wanted)[:2] for version in running),
        "needed": any(version != wanted for version in running),
    }


def set_field(spec: Spec, set_name: str, key: str) -> str:
    """The spec path of a machine set's field (ami_id, instance_type, ...), for messages."""
    if set_name == SET_CONTROL_PLANE:
        return "cluster.control_plane.%s" % key
    if set_name == SET_BASTION:
        return "cluster.network.bastion.%s" % key
    names = [d["name"] for d in spec["machine_deployments"]]
    return "cluster.machine_deployments[%d].%s" % (names.index(set_name), key)


def missing_image_error(spec: Spec, set_name: str, ami_id: str) -> str:
    return ("%s: %s does not exist in %s or this account may not use it; set an AMI id of that region, "
            "or remove the field to use the CAPA image lookup" % (set_field(spec, set_name, "ami_id"), ami_id, spec["region"]))


def launch_errors(spec: Spec, launching: Iterable[str], images: Optional[Collection[str]],
                  offerings: Optional[Mapping[str, Collection[str]]]) -> List[str]:
    """What stops the machine sets ``launching`` (resolved zone names) from launching: a given AMI id that is not
    among ``images`` (the ids of those that exist), an instance type not offered in every zone the set uses
    (``offerings``: instance type -> the region's zones offering it). Either fact None: not read, not judged."""
    errors: List[str] = []
    for set_name in launching:
        set_spec = machine_set_spec(spec, set_name)
        if images is not None and set_spec["ami_id"] and set_spec["ami_id"] not in images:
            errors.append(missing_image_error(spec, set_name, set_spec["ami_id"]))
        if offerings is None:
            continue
        instance_type = set_spec["instance_type"]
        offered = sorted(offerings.get(instance_type, ()))
        path = set_field(spec, set_name, "instance_type")
        if not offered:
            errors.append("%s: %s is not an instance type offered in %s (a typo, or a type this region does not have); "
                          "choose one such as t3.large (aws ec2 describe-instance-type-offerings --region %s)"
                          % (path, instance_type, spec["region"], spec["region"]))
            continue
        missing = [zone for zone in set_spec["availability_zones"] if zone not in offered]
        if missing:
            zones_path = ("cluster.network.availability_zones" if set_name in (SET_CONTROL_PLANE, SET_BASTION)
                          else set_field(spec, set_name, "availability_zones"))
            errors.append("%s: %s is not offered in %s (only in %s); choose another instance type, or zones that offer it in %s"
                          % (path, instance_type, ", ".join(missing), ", ".join(offered), zones_path))
    return errors


def check_against_account(spec: Spec, zones: Sequence[str], eip_quota: int, eips_in_use: int, eips_owned: int,
                          key_pairs: Optional[Collection[str]] = None, missing_profiles: Optional[Iterable[str]] = None,
                          machines: Optional[Iterable[Mapping[str, Any]]] = None, kubernetes_upgrade: bool = False,
                          launching: Sequence[str] = (), images: Optional[Collection[str]] = None,
                          offerings: Optional[Mapping[str, Collection[str]]] = None, lookup_failures: Iterable[str] = ()) -> None:
    """Checks that need facts only AWS has; raise SpecError naming the field and the fix.

    ``eips_in_use`` counts every Elastic IP allocated in the region, ``eips_owned`` the ones
    this cluster already holds (a rerun needs no new ones for them). ``key_pairs`` is the
    set of key-pair names in the region, or None when it was not read; ``missing_profiles``
    the field paths whose instance profile does not exist; ``machines`` the views of the
    cluster's pending and running machines that carry a Kubernetes version
    (version_change_errors), or None when they were not read. With ``kubernetes_upgrade`` a version
    change is judged by upgrade_errors (one minor forward at a time) instead of refused. ``launching``: the machine
    sets a run launches machines for, whose AMI ids (``images``: the ids that exist) and instance types
    (``offerings``: type -> zones offering it) are judged by launch_errors. The machine deployments' zones are judged
    against the cluster's (deployment_zone_errors). ``lookup_failures``: why CAPA's image lookup found no AMI for a
    launching set that names none (each names the set's field and the fix).
    """
    errors: List[str] = (upgrade_errors if kubernetes_upgrade else version_change_errors)(spec, list(machines or []))
    errors += deployment_zone_errors(spec)
    errors += launch_errors(spec, launching, images, offerings)
    errors += list(lookup_failures)
    for path in missing_profiles or []:
        errors.append("%s: instance profile %r does not exist; create the IAM stack once per account "
                      "(ansible-playbook kubecluster.aws.bootstrap_iam) or name an existing profile"
                      % (path, instance_profiles(spec)[path]))
    needed = max(0, nat_gateway_count(spec, len(zones)) - eips_owned)
    free = eip_quota - eips_in_use
    # Nothing new needed (a rerun, or a layout without NAT gateways) is never a quota problem,
    # even in an account that is already over its quota (raised, then lowered; or EIPs made elsewhere).
    if needed and needed > free:
        mode = spec["network"]["nat_gateways"]
        if eips_in_use >= eip_quota:
            have = ("the account already uses %d of its %d Elastic IPs in %s"
                    % (eips_in_use, eip_quota, spec["region"]))
        else:
            have = "only %d of the account's %d remain free in %s" % (free, eip_quota, spec["region"])
        errors.append(
            "cluster.network.nat_gateways: %s needs %d more Elastic IP(s) but %s; use nat_gateways: single (1 EIP) "
            "or none, release unused EIPs, or raise the quota (Service Quotas: ec2 L-0263D0A3)" % (mode, needed, have))
    key = spec["ssh_key_name"]
    if key and key_pairs is not None and key not in key_pairs:
        errors.append("cluster.ssh_key_name: key pair %r does not exist in %s; import it (ec2_key) or set another name"
                      % (key, spec["region"]))
    if errors:
        raise SpecError(errors)


def with_zones(spec: Spec, zones: Iterable[str]) -> Spec:
    """A copy of the spec whose availability_zones is the resolved list of names."""
    out = copy.deepcopy(spec)
    out["network"]["availability_zones"] = list(zones)
    for deployment in out["machine_deployments"]:
        if deployment["availability_zones"] is None:
            deployment["availability_zones"] = list(zones)
        elif _is_int(deployment["availability_zones"]):
            deployment["availability_zones"] = list(zones)[:deployment["availability_zones"]]
    return out


def machine_set_spec(spec: Spec, set_name: str) -> Spec:
    """The part of the spec one machine set is built from, with cluster-wide settings merged in.

    Returns a dict with replicas, instance_type, ami_id, iam_instance_profile, root_volume,
    availability_zones, public (bool) and role-independent settings; a machine deployment's also
    carries deletion_order, max_surge and max_unavailable. Raises SpecError for an unknown set name.
    """
    zones = spec["network"]["availability_zones"]
    common = {
        "instance_metadata": spec["instance_metadata"],
        "ssh_key_name": spec["ssh_key_name"],
        "image_lookup": spec["image_lookup"],
        "kubernetes_version": spec["kubernetes_version"],
        "additional_tags": spec["additional_tags"],
    }
    if set_name == "control-plane":
        cp = spec["control_plane"]
        out = dict(common, replicas=cp["replicas"], instance_type=cp["instance_type"], ami_id=cp["ami_id"],
                   iam_instance_profile=cp["iam_instance_profile"], root_volume=cp["root_volume"],
                   availability_zones=zones, public=False)
        return out
    if set_name == "bastion":
        bastion = spec["network"]["bastion"]
        return dict(common, replicas=1 if bastion["enabled"] else 0, instance_type=bastion["instance_type"],
                    ami_id=bastion["ami_id"], iam_instance_profile=None, root_volume=DEFAULT_ROOT_VOLUME,
                    availability_zones=zones[:1] if isinstance(zones, list) else zones, public=True,
                    image_lookup=DEFAULT_BASTION_IMAGE_LOOKUP)
    for deployment in spec["machine_deployments"]:
        if deployment["name"] == set_name:
            return dict(common, replicas=deployment["replicas"], instance_type=deployment["instance_type"],
                        ami_id=deployment["ami_id"], iam_instance_profile=deployment["iam_instance_profile"],
                        root_volume=deployment["root_volume"],
                        availability_zones=deployment["availability_zones"] or zones, public=False,
                        deletion_order=deployment["deletion_order"], max_surge=deployment["max_surge"],
                        max_unavailable=deployment["max_unavailable"])
    names = ["control-plane", "bastion"] + [d["name"] for d in spec["machine_deployments"]]
    raise SpecError(["set: %r is not a machine set of cluster %s; use one of %s" % (set_name, spec["name"], ", ".join(names))])


def replica_count(set_name: str, value: Any) -> int:
    """A count of the replicas option: a whole number of at least 0, also as the text -e gives."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(["replicas.%s: %r is not a machine count; use a whole number of 0 or more" % (set_name, value)])
    return value


def with_replicas(raw: Any, replicas: Optional[Dict[str, Any]]) -> Any:
    """The user's spec with the replicas option's counts in place of the sets' replicas, so that
    the spec is validated (an even control plane refused) and returned with them.

    Raises SpecError naming an unknown set or a bad count. A spec that is no mapping is returned
    as it is, for resolve to refuse.
    """
    if not replicas or not isinstance(raw, dict):
        return raw
    out = copy.deepcopy(raw)
    deployments = out.get("machine_deployments")
    if deployments is None:
        # The spec's default: one machine deployment md-0 (spec.resolve).
        deployments = [{"name": "md-0"}]
    names = [d.get("name") for d in deployments if isinstance(d, dict)] if isinstance(deployments, list) else []
    errors: List[str] = []
    for set_name, value in replicas.items():
        try:
            count = replica_count(set_name, value)
        except SpecError as error:
            errors.extend(error.errors)
            continue
        if set_name == SET_CONTROL_PLANE:
            control_plane = out.get("control_plane")
            out["control_plane"] = dict(control_plane if isinstance(control_plane, dict) else {}, replicas=count)
        elif set_name in names:
            index = names.index(set_name)
            deployments[index] = dict(deployments[index], replicas=count)
            out["machine_deployments"] = deployments
        else:
            why = ("the bastion is one machine or none (cluster.network.bastion.enabled)" if set_name == SET_BASTION
                   else "it is not a machine set of the spec")
            errors.append("replicas.%s: %s; name %s" % (set_name, why, ", ".join([SET_CONTROL_PLANE] + [str(n) for n in names])))
    if errors:
        raise SpecError(errors)
    return out
