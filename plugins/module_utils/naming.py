# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""CAPA's tag keys and resource-name formats, and the ownership filters built on them.

Every name and tag the collection gives an AWS resource comes from here, so that
resources made by this collection look exactly like the ones Cluster API's AWS
provider makes (``clusterawsadm resource list`` and the AWS cloud-controller-manager
understand both).
"""

import hashlib
import string
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

# A resource's tags as a dict; None (no tags at all) reads as empty.
Tags = Optional[Mapping[str, str]]

OWNED = "owned"
SHARED = "shared"

ROLE_TAG = "sigs.k8s.io/cluster-api-provider-aws/role"
SPEC_HASH_TAG = "kubecluster.aws/spec-hash"
MACHINE_SET_TAG = "kubecluster.aws/machine-set"
# A machine's place in its set (0 .. replicas-1). Name suffix and launch ClientToken derive from
# it, so two runs launching the same missing machine send the same request and get one instance.
SLOT_TAG = "kubecluster.aws/slot"
# The machines launched together by one RunInstances (several slots of a set in one zone):
# ``<slot>,<slot>,.../<attempt>``, the slots in launch-index order. Such a launch cannot carry
# each machine's Name and slot tags (TagSpecifications are the same for the whole batch), so they
# are set right after it; should that not happen, the batch tag and the instance's launch index
# still tell its slot and name.
LAUNCH_BATCH_TAG = "kubecluster.aws/launch-batch"
# The Kubernetes version a machine was launched for (the bastion, which runs no Kubernetes, has
# none). create_cluster.yml reads it to refuse a version change on a running cluster, and day 2
# (an upgrade) to tell which machines still run the old version.
KUBERNETES_VERSION_TAG = "kubecluster.aws/kubernetes-version"
# The keys of the spec's additional_tags the collection set on a resource, comma-separated and sorted
# (EC2 tag keys hold no comma). A later run removes from the resource only the keys listed here that the
# spec no longer has, as amazon.aws's purge_tags does: tags someone else set are never touched.
MANAGED_TAGS_TAG = "kubecluster.aws/managed-tags"

# Values of ROLE_TAG, as CAPA sets them.
ROLE_COMMON = "common"
ROLE_PUBLIC = "public"
ROLE_PRIVATE = "private"
ROLE_APISERVER = "apiserver"
ROLE_BASTION = "bastion"
ROLE_CONTROL_PLANE = "control-plane"
ROLE_NODE = "node"

# Security-group roles, in the order CAPA creates them.
SG_APISERVER_LB = "apiserver-lb"
SG_LB = "lb"
SG_CONTROL_PLANE = "controlplane"
SG_NODE = "node"
SG_BASTION = "bastion"

# The well-known set names of machine_set; machine deployments use their own names.
SET_CONTROL_PLANE = "control-plane"
SET_BASTION = "bastion"

IAM_SUFFIX = ".cluster-api-provider-aws.sigs.k8s.io"
IAM_STACK_NAME = "cluster-api-provider-aws-sigs-k8s-io"
CONTROL_PLANE_PROFILE = "control-plane" + IAM_SUFFIX
NODES_PROFILE = "nodes" + IAM_SUFFIX
CONTROLLERS_PROFILE = "controllers" + IAM_SUFFIX

OWNER_TAG_PREFIX = "sigs.k8s.io/cluster-api-provider-aws/cluster/"
CLOUD_PROVIDER_TAG_PREFIX = "kubernetes.io/cluster/"

# Subnet tags the AWS cloud-controller-manager reads to place Service load balancers.
ELB_ROLE_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE_TAG = "kubernetes.io/role/internal-elb"

# The cloud provider's legacy single-cluster tag: its value names the cluster that owns the resource.
LEGACY_CLUSTER_TAG = "KubernetesCluster"

# Tag keys that decide who owns a resource or what it is for, read by this collection, CAPA and
# the AWS cloud provider. A spec's additional_tags may not set them: a copied ownership tag would
# let another cluster's delete take this cluster's resources.
RESERVED_TAG_PREFIXES = (
    "sigs.k8s.io/cluster-api-provider-aws/",
    CLOUD_PROVIDER_TAG_PREFIX,
    "kubernetes.io/role/",
    "kubecluster.aws/",
)
RESERVED_TAG_KEYS = ("Name", LEGACY_CLUSTER_TAG)


def owner_tag(cluster_name: str) -> str:
    """The tag key whose value ``owned`` marks a resource as the cluster's."""
    return OWNER_TAG_PREFIX + cluster_name


def cloud_provider_tag(cluster_name: str) -> str:
    """The tag key the AWS cloud-controller-manager uses to find a cluster's resources."""
    return CLOUD_PROVIDER_TAG_PREFIX + cluster_name


def cluster_name_from_owner_tag(key: str) -> Optional[str]:
    """Return the cluster name of an ownership tag key, or None for any other key."""
    if key.startswith(OWNER_TAG_PREFIX):
        return key[len(OWNER_TAG_PREFIX):]
    return None


def reserved_tag_key(key: str) -> bool:
    """True for a tag key only the collection may set (ownership, roles, its own bookkeeping)."""
    return key in RESERVED_TAG_KEYS or key.startswith(RESERVED_TAG_PREFIXES)


def claiming_clusters(tags: Tags) -> Set[str]:
    """Every cluster whose ownership tag marks the resource ``owned``: CAPA's, or the cloud
    provider's ``kubernetes.io/cluster/<name>`` (which the cloud-controller-manager puts on
    what it makes for a cluster, and CAPA on subnets, route tables and instances)."""
    names: Set[str] = set()
    for key, value in (tags or {}).items():
        if value != OWNED:
            continue
        for prefix in (OWNER_TAG_PREFIX, CLOUD_PROVIDER_TAG_PREFIX):
            if key.startswith(prefix) and len(key) > len(prefix):
                names.add(key[len(prefix):])
    return names


def is_claimed(tags: Tags, cluster_name: str) -> bool:
    """Owned by the cluster, or made for it by its cloud-controller-manager: what its delete removes."""
    return cluster_name in claiming_clusters(tags)


def other_claimants(tags: Tags, cluster_name: str) -> List[str]:
    """The other clusters a resource of this cluster is also tagged as owned by (sorted)."""
    return sorted(claiming_clusters(tags) - {cluster_name})


def double_claims(resources: Iterable[Tuple[str, str, Tags]], cluster_name: str) -> List[str]:
    """Lines naming each resource that is the cluster's but also claims another cluster.

    ``resources`` are ``(kind, id, tags)`` triples. Such a resource cannot be told apart from
    the other cluster's, so no delete may touch it; the lines say what to fix.
    """
    lines = []
    for kind, ident, tags in resources:
        others = other_claimants(tags, cluster_name)
        if is_claimed(tags, cluster_name) and others:
            lines.append("%s %s is tagged as owned by cluster %s and by %s; remove the tag of the cluster it does not "
                         "belong to (ec2 delete-tags / elbv2 remove-tags), then rerun"
                         % (kind, ident, cluster_name, ", ".join(others)))
    return lines


def resource_tags(cluster_name: str, name: str, role: Optional[str], additional_tags: Tags = None,
                  cloud_provider: bool = False) -> Dict[str, str]:
    """The tags CAPA puts on a resource it owns: Name, ownership, role, user tags (with the record of
    their keys, MANAGED_TAGS_TAG, when there are any).

    ``cloud_provider`` adds ``kubernetes.io/cluster/<name>=owned``, which CAPA sets on
    subnets, route tables, instances and the ``lb`` security group so the AWS cloud
    provider can find them.
    """
    tags = dict(additional_tags or {})
    if additional_tags:
        tags[MANAGED_TAGS_TAG] = managed_tags_value(additional_tags)
    tags["Name"] = name
    tags[owner_tag(cluster_name)] = OWNED
    if role:
        tags[ROLE_TAG] = role
    if cloud_provider:
        tags[cloud_provider_tag(cluster_name)] = OWNED
    return tags


def managed_tags_value(additional_tags: Mapping[str, str]) -> str:
    """The MANAGED_TAGS_TAG value recording ``additional_tags``' keys."""
    return ",".join(sorted(additional_tags))


def managed_tag_keys(tags: Tags) -> List[str]:
    """The additional tag keys a resource's MANAGED_TAGS_TAG says the collection set on it."""
    return sorted(key for key in (tags or {}).get(MANAGED_TAGS_TAG, "").split(",") if key)


def owned_filters(cluster_name: str, **tags: str) -> List[Dict[str, Any]]:
    """EC2 ``Filters`` that select what the cluster owns, optionally narrowed by more tags."""
    filters: List[Dict[str, Any]] = [{"Name": "tag:" + owner_tag(cluster_name), "Values": [OWNED]}]
    for key, value in sorted(tags.items()):
        filters.append({"Name": "tag:" + key, "Values": [value]})
    return filters


def is_owned(tags: Tags, cluster_name: str) -> bool:
    """True when a tag dict marks the resource as owned by the cluster."""
    return (tags or {}).get(owner_tag(cluster_name)) == OWNED


def tags_to_dict(tag_list: Optional[Iterable[Mapping[str, str]]]) -> Dict[str, str]:
    """Turn a boto3 ``[{'Key': k, 'Value': v}]`` list into a dict."""
    return {t["Key"]: t["Value"] for t in tag_list or []}


def vpc_name(cluster_name: str) -> str:
    return "%s-vpc" % cluster_name


def subnet_name(cluster_name: str, role: str, zone: str) -> str:
    return "%s-subnet-%s-%s" % (cluster_name, role, zone)


def igw_name(cluster_name: str) -> str:
    return "%s-igw" % cluster_name


def nat_name(cluster_name: str) -> str:
    return "%s-nat" % cluster_name


def eip_name(cluster_name: str, role: str = ROLE_COMMON) -> str:
    return "%s-eip-%s" % (cluster_name, role)


def route_table_name(cluster_name: str, role: str, zone: str) -> str:
    return "%s-rt-%s-%s" % (cluster_name, role, zone)


def security_group_name(cluster_name: str, sg_role: str) -> str:
    # AWS reserves the "sg-" prefix for group ids, so CAPA prefixes such names with "@".
    prefix = "@" if cluster_name.startswith("sg-") else ""
    return "%s%s-%s" % (prefix, cluster_name, sg_role)


def security_group_description(cluster_name: str, sg_role: str) -> str:
    return "Kubernetes cluster %s: %s" % (cluster_name, sg_role)


_BASE36 = string.digits + string.ascii_lowercase


def _base36(number: int) -> str:
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = _BASE36[rem] + out
    return out or "0"


def load_balancer_name(cluster_name: str) -> str:
    """The API load balancer's name, as CAPA's GenerateELBName makes it.

    AWS limits load-balancer names to 32 characters; a longer ``<cluster>-apiserver``
    becomes a stable 28-character base36 hash of it plus ``-k8s``.
    """
    name = ("%s-apiserver" % cluster_name).replace(".", "-")
    if len(name) <= 32:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return _base36(int(digest, 16))[:28] + "-k8s"


def target_group_name(cluster_name: str) -> str:
    """The API target group's name: ``apiserver-target-`` plus a stable hash of the cluster."""
    digest = hashlib.sha256(cluster_name.encode("utf-8")).hexdigest()
    return "apiserver-target-" + _base36(int(digest, 16))[:15]


MACHINE_SUFFIX_LENGTH = 5


def machine_digest(cluster_name: str, set_name: str, slot: int, attempt: int) -> str:
    """The sha256 hex digest of ``<cluster>/<set>/<slot>/<attempt>``, from which a machine's name
    suffix and its launch ClientToken come: the same for every run that launches that machine."""
    text = "%s/%s/%d/%d" % (cluster_name, set_name, slot, attempt)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def machine_suffix(cluster_name: str, set_name: str, slot: int, attempt: int) -> str:
    """5 base36 characters naming the machine of ``slot`` launched at ``attempt`` (0, then 1 for its
    replacement, ...); stable, so racing runs name (and tag) the same machine alike."""
    digest = machine_digest(cluster_name, set_name, slot, attempt)
    return _base36(int(digest, 16)).rjust(MACHINE_SUFFIX_LENGTH, "0")[-MACHINE_SUFFIX_LENGTH:]


def machine_name(cluster_name: str, set_name: str, suffix: str) -> str:
    """A machine's Name tag: ``<cluster>-<set>-<suffix>``, as Cluster API names machines."""
    return "%s-%s-%s" % (cluster_name, set_name, suffix)


def machine_role(set_name: str) -> str:
    """The CAPA role tag of a machine set's instances."""
    if set_name == SET_CONTROL_PLANE:
        return ROLE_CONTROL_PLANE
    if set_name == SET_BASTION:
        return ROLE_BASTION
    return ROLE_NODE
