# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Cluster API manifests in: the YAML ``clusterctl generate cluster`` writes for CAPA, read as a cluster spec.

``manifest_to_spec(manifest)`` returns the raw spec (what goes under ``cluster:`` in a spec file) holding only the
fields the manifest sets; ``spec.resolve`` adds the defaults. The mapping is the contract shared with the export
(issue 11): every field it names is used, every other field is reported, so that nothing a user wrote is silently
dropped. Problems are collected and raised together in one CapiManifestError, each naming the object (kind/name)
and the field path.
"""

import json
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load_all

from .capi_machines import ADOPTED_KINDS
from .errors import KubeclusterError
from .spec import _MACHINE_DEPLOYMENT as MACHINE_DEPLOYMENT_SCHEMA
from .spec import SCHEMA, cluster_input

# The Cluster API groups and the versions read of each kind (v1beta1 is what clusterctl writes today for the core
# kinds; v1beta2 is Cluster API's current API, read so a manifest converted by `clusterctl convert` still imports).
CORE = "cluster.x-k8s.io"
CONTROL_PLANE = "controlplane.cluster.x-k8s.io"
BOOTSTRAP = "bootstrap.cluster.x-k8s.io"
INFRASTRUCTURE = "infrastructure.cluster.x-k8s.io"
ADDONS = "addons.cluster.x-k8s.io"
KINDS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "Cluster": (CORE, ("v1beta1", "v1beta2")),
    "MachineDeployment": (CORE, ("v1beta1", "v1beta2")),
    "KubeadmControlPlane": (CONTROL_PLANE, ("v1beta1", "v1beta2")),
    "KubeadmConfigTemplate": (BOOTSTRAP, ("v1beta1", "v1beta2")),
    "AWSCluster": (INFRASTRUCTURE, ("v1beta2", "v1beta1")),
    "AWSMachineTemplate": (INFRASTRUCTURE, ("v1beta2", "v1beta1")),
    "ClusterResourceSet": (ADDONS, ("v1beta1", "v1beta2")),
    "ConfigMap": ("", ("v1",)),
    # Only in a kubecluster.aws export: the running machines, for Cluster API to adopt (capi_machines.py).
    "Machine": (CORE, ("v1beta1", "v1beta2")),
    "AWSMachine": (INFRASTRUCTURE, ("v1beta2", "v1beta1")),
    "KubeadmConfig": (BOOTSTRAP, ("v1beta1", "v1beta2")),
}

SETTINGS_ANNOTATION = "kubecluster.aws/settings"
EXPORTED_ANNOTATION = "kubecluster.aws/exported-from"
OWNED_TAG = "sigs.k8s.io/cluster-api-provider-aws/cluster/%s"
LOCAL_HOSTNAME = "{{ ds.meta_data.local_hostname }}"
UNSUPPORTED_MODES = ("fail", "warn")

# CAPA's default flavor: the ClusterResourceSets and the add-on ConfigMaps they apply, and the image in each
# ConfigMap whose tag is the add-on version the collection installs itself.
ADDON_RESOURCE_SETS = ("crs-ccm", "crs-csi")
ADDON_CONFIG_MAPS = {
    "cloud-controller-manager-addon": ("aws_cloud_controller_manager_version",
                                       "registry.k8s.io/provider-aws/cloud-controller-manager"),
    "aws-ebs-csi-driver-addon": ("ebs_csi_driver_version", "registry.k8s.io/provider-aws/aws-ebs-csi-driver"),
}

# What network.cni is, from the CNI rules CAPA's AWSCluster carries (securitygroups._CNI_RULES): protocol and ports.
_CNI_RULE_SETS = {
    "calico": ({("tcp", 179, 179)}, {("4", -1, -1), ("4", -1, 65535)}),
    "cilium": ({("udp", 8472, 8472)}, {("tcp", 4240, 4240)}),
}

# The settings annotation's fields: only what no Cluster API field carries (the export writes these there).
_ANNOTATION_FIELDS = {
    "network": {"nat_gateways", "availability_zones"},
    "kubernetes_packages": None,
    # The add-on versions too: an export applies no add-on ConfigMaps (nothing is installed twice), so the versions
    # the cluster runs travel here; a manifest with CAPA's ConfigMaps and the annotation's version is a conflict.
    "addons": {"cni_version", "manifests_dir", "aws_cloud_controller_manager_version", "ebs_csi_driver_version"},
    "kubeconfig_path": None,
    "kubeconfig_secret": None,
    "ssh_known_hosts_file": None,
    "upgrade_strategy": None,
    "node_startup_timeout": None,
    "machine_deployments": None,
}

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-[^}]*)?\}")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s)")
_GO_BASE_OS = re.compile(r"\{\{\s*\.BaseOS\s*\}\}")
_GO_K8S_VERSION = re.compile(r"\{\{\s*\.K8sVersion\s*\}\}")

Path = Tuple[Union[str, int], ...]
Raw = Dict[str, Any]


class CapiManifestError(KubeclusterError):
    """A manifest that cannot be read as a spec; ``problems`` holds one line per problem, each naming the object."""

    def __init__(self, problems: Sequence[str], hint: str = "") -> None:
        super().__init__("Cannot read the Cluster API manifest%s:\n- " % hint + "\n- ".join(problems), problems)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += "[%d]" % part if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def parse_duration(value: Any) -> Optional[int]:
    """A Go duration ("10m", "600s", "1h30m") in whole seconds, or None when it is none."""
    if not isinstance(value, str) or not value:
        return None
    position = 0
    total = 0.0
    factors = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for match in _DURATION.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * factors[match.group(2)]
        position = match.end()
    if position != len(value) or total != int(total):
        return None
    return int(total)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Object:
    """One manifest object, and which of its fields the mapping used (the rest is reported)."""

    def __init__(self, doc: Dict[str, Any], index: int) -> None:
        self.doc = doc
        self.index = index
        self.kind = str(doc.get("kind"))
        api_version = str(doc.get("apiVersion", ""))
        self.group, unused_slash, self.version = api_version.rpartition("/")
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        self.name = name if isinstance(name, str) else "(document %d)" % (index + 1)
        self.used: Set[Path] = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}

    @property
    def label(self) -> str:
        return "%s %s" % (self.kind, self.name)

    def _lookup(self, path: Path) -> Tuple[bool, Any]:
        """Whether the object has ``path``, and the value there."""
        value: Any = self.doc
        for part in path:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    return False, None
            elif not isinstance(value, dict) or part not in value:
                return False, None
            value = value[part]
        return True, value

    def get(self, *path: Union[str, int]) -> Any:
        """The value at ``path`` (None when absent), marked as used."""
        found, value = self._lookup(path)
        if found:
            self.used.add(tuple(path))
        return value

    def has(self, *path: Union[str, int]) -> bool:
        return self._lookup(path)[0]

    def unused(self) -> Iterator[Path]:
        """The paths of the highest parts of the object the mapping did not use (empty maps and nulls left out)."""
        touched: Set[Path] = set()
        for path in self.used:
            for length in range(len(path)):
                touched.add(path[:length])

        def walk(value: Any, path: Path) -> Iterator[Path]:
            if path in self.used:
                return
            if value is None or value == {} or value == []:
                return
            if path not in touched:
                yield path
                return
            if isinstance(value, dict):
                for key, child in value.items():
                    yield from walk(child, path + (key,))
            elif isinstance(value, list):
                for index, child in enumerate(value):
                    yield from walk(child, path + (index,))

        yield from walk(self.doc, ())


class _Reader:
    """The import of one manifest: the spec it builds, and its problems."""

    def __init__(self, objects: List[_Object]) -> None:
        self.objects = objects
        self.errors: List[str] = []
        self.unsupported: List[str] = []
        self.raw: Raw = {}
        # Which manifest field set each spec path, to name both sides of a disagreement or a conflict.
        self.origin: Dict[Tuple[str, ...], str] = {}
        self.exported = False
        self.cluster_name = ""

    # --- problems ---------------------------------------------------------------------------------------------

    def error(self, obj: _Object, path: Path, problem: str) -> None:
        self.errors.append("%s: %s: %s" % (obj.label, _dotted(path), problem))

    def not_supported(self, obj: _Object, path: Path, why: str = "") -> None:
        why = why or "kubecluster.aws has no such setting; remove it"
        self.unsupported.append("%s: %s: not supported (%s)" % (obj.label, _dotted(path), why))

    # --- the spec being built ---------------------------------------------------------------------------------

    def put(self, spec_path: Tuple[str, ...], value: Any, obj: _Object, path: Path) -> None:
        """Set a spec field from a manifest field; a second source with another value is an error naming both."""
        where = "%s %s" % (obj.label, _dotted(path))
        target = self.raw
        for key in spec_path[:-1]:
            target = target.setdefault(key, {})
        if spec_path in self.origin and target.get(spec_path[-1]) != value:
            self.errors.append("%s: %s is %r but %s is %r; cluster.%s is one value for the cluster, make them agree"
                               % (obj.label, _dotted(path), value, self.origin[spec_path], target[spec_path[-1]],
                                  ".".join(spec_path)))
            return
        target[spec_path[-1]] = value
        self.origin.setdefault(spec_path, where)

    # --- objects ----------------------------------------------------------------------------------------------

    def find(self, kind: str, name: Any) -> Optional[_Object]:
        for obj in self.objects:
            if obj.kind == kind and obj.name == name:
                return obj
        return None

    def ref(self, obj: _Object, path: Path, kind: str) -> Optional[_Object]:
        """The object a reference names (v1beta1 {apiVersion, kind, name}, v1beta2 {apiGroup, kind, name})."""
        ref = obj.get(*path)
        if not isinstance(ref, dict):
            self.error(obj, path, "missing; it must name the %s of the cluster" % kind)
            return None
        for key in ref:
            if key not in ("apiVersion", "apiGroup", "kind", "name", "namespace"):
                self.not_supported(obj, path + (key,))
        if ref.get("kind") != kind:
            self.error(obj, path + ("kind",), "is %r; kubecluster.aws reads a %s here" % (ref.get("kind"), kind))
            return None
        target = self.find(kind, ref.get("name"))
        if target is None:
            self.error(obj, path + ("name",), "names %s %s, which is not in the manifest; add it (the whole output of "
                       "clusterctl generate cluster is needed)" % (kind, ref.get("name")))
        return target

    # --- values -----------------------------------------------------------------------------------------------

    def string(self, obj: _Object, *path: Union[str, int]) -> Optional[str]:
        value = obj.get(*path)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(obj, path, "must be a string, not %r" % (value,))
            return None
        return value

    def integer(self, obj: _Object, *path: Union[str, int]) -> Optional[int]:
        value = obj.get(*path)
        if value is None:
            return None
        if not _is_int(value):
            self.error(obj, path, "must be a whole number, not %r" % (value,))
            return None
        return int(value)

    def boolean(self, obj: _Object, *path: Union[str, int]) -> Optional[bool]:
        value = obj.get(*path)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.error(obj, path, "must be true or false, not %r" % (value,))
            return None
        return value

    def duration(self, obj: _Object, path: Path, seconds: bool) -> Optional[int]:
        """A drain timeout: a Go duration (v1beta1) or whole seconds (v1beta2's ...Seconds fields)."""
        value = obj.get(*path)
        if value is None:
            return None
        parsed = value if seconds and _is_int(value) else None if seconds else parse_duration(value)
        if parsed is None:
            self.error(obj, path, "%r is not %s" % (value, "a whole number of seconds" if seconds
                                                    else "a duration such as 10m, 600s or 1h30m"))
            return None
        if parsed == 0:
            self.not_supported(obj, path, "0 waits for ever; the collection bounds every drain, give a duration")
            return None
        return parsed

    def common_metadata(self, obj: _Object) -> None:
        namespace = obj.get("metadata", "namespace")
        if namespace is not None and not isinstance(namespace, str):
            self.error(obj, ("metadata", "namespace"), "must be a string")

    # --- the mapping ------------------------------------------------------------------------------------------

    def read(self) -> None:
        clusters = [obj for obj in self.objects if obj.kind == "Cluster"]
        if not clusters:
            self.errors.append("the manifest holds no Cluster (cluster.x-k8s.io); give the whole output of "
                               "clusterctl generate cluster")
            return
        if len(clusters) > 1:
            self.errors.append("the manifest holds %d Clusters (%s); kubecluster.aws reads one cluster per manifest, "
                               "split it" % (len(clusters), ", ".join(obj.name for obj in clusters)))
            return
        cluster = clusters[0]
        self.check_namespaces()
        self.read_cluster(cluster)
        infra = self.ref(cluster, self.ref_path(cluster, "infrastructureRef"), "AWSCluster")
        control_plane = self.ref(cluster, self.ref_path(cluster, "controlPlaneRef"), "KubeadmControlPlane")
        if infra is not None:
            self.read_aws_cluster(infra)
        templates: List[_Object] = []
        if control_plane is not None:
            template = self.read_control_plane(control_plane)
            if template is not None:
                templates.append(template)
        deployments = [obj for obj in self.objects if obj.kind == "MachineDeployment"]
        configs: List[_Object] = []
        for deployment in deployments:
            template, config = self.read_machine_deployment(deployment, control_plane)
            templates += [template] if template is not None else []
            configs += [config] if config is not None else []
        self.check_ssh_keys(infra, templates)
        self.read_addons()
        for obj in self.objects:
            unused = ""
            if obj.kind in ADOPTED_KINDS and self.exported:
                # The export's description of a running machine: the collection finds it by its tags.
                obj.used.add(())
            elif obj.kind in ADOPTED_KINDS:
                unused = ("a machine Cluster API adopts, read only in a kubecluster.aws export; the collection "
                          "launches the machines the KubeadmControlPlane and MachineDeployments ask for")
            elif obj.kind == "AWSMachineTemplate" and obj not in templates:
                unused = "no KubeadmControlPlane or MachineDeployment uses it; remove it"
            elif obj.kind == "KubeadmConfigTemplate" and obj not in configs:
                unused = "no MachineDeployment uses it; remove it"
            elif obj.kind in ("AWSCluster", "KubeadmControlPlane") and obj not in (infra, control_plane):
                unused = "the Cluster does not reference it; remove it"
            if unused:
                # The object as a whole is the problem, not each of its fields.
                self.not_supported(obj, ("metadata", "name"), unused)
                obj.used.add(())
        for obj in self.objects:
            self.common_metadata(obj)
            for path in obj.unused():
                if path == ():
                    continue
                self.not_supported(obj, path)

    @staticmethod
    def ref_path(obj: _Object, name: str) -> Path:
        return ("spec", name)

    def check_namespaces(self) -> None:
        namespaces: Dict[str, str] = {}
        for obj in self.objects:
            metadata = obj.doc.get("metadata")
            namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
            if isinstance(namespace, str):
                namespaces.setdefault(namespace, obj.label)
        if len(namespaces) > 1:
            self.errors.append("the objects are in several namespaces (%s); a cluster's objects share one namespace"
                               % ", ".join("%s in %s" % (label, ns) for ns, label in sorted(namespaces.items())))

    def read_cluster(self, obj: _Object) -> None:
        name = self.string(obj, "metadata", "name")
        if name:
            self.cluster_name = name
            self.put(("name",), name, obj, ("metadata", "name"))
        labels = obj.get("metadata", "labels")
        if labels is not None and not isinstance(labels, dict):
            self.error(obj, ("metadata", "labels"), "must be a mapping")
        for key, value in (labels or {}).items() if isinstance(labels, dict) else ():
            if key in ("ccm", "csi") and value == "external":
                continue
            self.not_supported(obj, ("metadata", "labels", key), "only ccm: external and csi: external, the add-ons "
                               "the collection installs, are read")
        annotations = obj.get("metadata", "annotations")
        if annotations is not None and not isinstance(annotations, dict):
            self.error(obj, ("metadata", "annotations"), "must be a mapping")
            annotations = {}
        for key in annotations or {}:
            if key not in (SETTINGS_ANNOTATION, EXPORTED_ANNOTATION):
                self.not_supported(obj, ("metadata", "annotations", key))
        exported = (annotations or {}).get(EXPORTED_ANNOTATION)
        self.exported = isinstance(exported, str) and exported.startswith("kubecluster.aws")
        for kind, key in (("pods", "pod_cidr"), ("services", "service_cidr")):
            path = ("spec", "clusterNetwork", kind, "cidrBlocks")
            blocks = obj.get(*path)
            if blocks is None:
                continue
            if not isinstance(blocks, list) or not all(isinstance(block, str) for block in blocks):
                self.error(obj, path, "must be a list of CIDRs")
            elif len(blocks) != 1:
                self.not_supported(obj, path, "kubecluster.aws makes IPv4 single-stack clusters: give exactly one CIDR")
            else:
                self.put(("network", key), blocks[0], obj, path)
        domain = obj.get("spec", "clusterNetwork", "serviceDomain")
        if domain is not None and domain != "cluster.local":
            self.not_supported(obj, ("spec", "clusterNetwork", "serviceDomain"), "kubeadm's default cluster.local only")
        for field in ("paused", "controlPlaneEndpoint"):
            # An export is paused until the certificate authorities are in the management cluster, and names the
            # endpoint the collection's load balancer has: both describe, neither sets anything.
            if obj.get("spec", field) not in (None, False, {}) and not self.exported:
                self.not_supported(obj, ("spec", field), "read only in a kubecluster.aws export")
        port = obj.get("spec", "clusterNetwork", "apiServerPort")
        if port is not None and port != 6443:
            self.not_supported(obj, ("spec", "clusterNetwork", "apiServerPort"), "the API server listens on 6443")

    def read_settings_annotation(self, cluster: _Object) -> Raw:
        """The settings annotation: a JSON object holding only spec fields no Cluster API field carries."""
        path: Path = ("metadata", "annotations", SETTINGS_ANNOTATION)
        errors = len(self.errors)
        text = cluster.get(*path)
        if text is None:
            return {}
        try:
            settings = json.loads(text) if isinstance(text, str) else None
        except ValueError as error:
            self.error(cluster, path, "is not JSON (%s); it holds a JSON object of spec fields" % error)
            return {}
        if not isinstance(settings, dict):
            self.error(cluster, path, "must be a JSON object of spec fields such as {\"nat_gateways\": ...}")
            return {}
        for key, value in settings.items():
            allowed = _ANNOTATION_FIELDS.get(key, False)
            if allowed is False:
                self.error(cluster, path, "%s is a field Cluster API's own fields carry; set it there, not in the "
                           "annotation" % key)
            elif isinstance(allowed, set) and not isinstance(value, dict):
                self.error(cluster, path, "%s must be a JSON object of its fields" % key)
            elif isinstance(allowed, set):
                for child in value:
                    if child not in allowed:
                        self.error(cluster, path, "%s.%s is a field Cluster API's own fields carry; set it there, "
                                   "not in the annotation" % (key, child))
                    elif (key, child) == ("network", "availability_zones") and not isinstance(value[child], list):
                        # A count has a home: AWSCluster spec.network.vpc.availabilityZoneUsageLimit.
                        self.error(cluster, path, "network.availability_zones is a count here; Cluster API's own "
                                   "field carries a count (AWSCluster spec.network.vpc.availabilityZoneUsageLimit), "
                                   "the annotation only a list of zone names")
        deployments = settings.get("machine_deployments")
        for index, item in enumerate(deployments if isinstance(deployments, list) else []):
            for key in item if isinstance(item, dict) else ():
                if key not in ("name", "availability_zones"):
                    self.error(cluster, path, "machine_deployments[%d].%s is a field Cluster API's own fields carry; "
                               "set it there, not in the annotation" % (index, key))
        # A field refused above is not merged too (its conflict with the manifest would say the same twice).
        return {} if len(self.errors) > errors else settings

    def read_aws_cluster(self, obj: _Object) -> None:
        spec = ("spec",)
        region = self.string(obj, "spec", "region")
        if region is not None:
            self.put(("region",), region, obj, spec + ("region",))
        key = self.string(obj, "spec", "sshKeyName")
        if key is not None:
            self.put(("ssh_key_name",), key, obj, spec + ("sshKeyName",))
        tags = obj.get("spec", "additionalTags")
        if tags is not None:
            self.put(("additional_tags",), tags, obj, spec + ("additionalTags",))
        self.image_lookup(obj, spec)
        self.load_balancer(obj)
        self.bastion(obj)
        self.network(obj)
        identity = obj.get("spec", "identityRef")
        if identity is not None and (not isinstance(identity, dict)
                                     or identity != {"kind": "AWSClusterControllerIdentity", "name": "default"}):
            self.not_supported(obj, ("spec", "identityRef"), "credentials come from Ansible's AWS environment; only "
                               "the controller's default identity (AWSClusterControllerIdentity default) is read")
        endpoint = obj.get("spec", "controlPlaneEndpoint")
        if endpoint not in (None, {}, {"host": "", "port": 0}) and not self.exported:
            self.not_supported(obj, ("spec", "controlPlaneEndpoint"), "the collection makes the API load balancer; "
                               "an endpoint is read only in a kubecluster.aws export")

    def image_lookup(self, obj: _Object, base: Path) -> None:
        for field, key in (("imageLookupFormat", "name_format"), ("imageLookupOrg", "owner"),
                           ("imageLookupBaseOS", "base_os")):
            value = self.string(obj, *(base + (field,)))
            if value is None:
                continue
            if field == "imageLookupFormat":
                value = _GO_K8S_VERSION.sub("{k8s_version}", _GO_BASE_OS.sub("{base_os}", value))
                if "{{" in value:
                    self.not_supported(obj, base + (field,), "only {{.BaseOS}} and {{.K8sVersion}} are read")
                    continue
            self.put(("image_lookup", key), value, obj, base + (field,))

    def load_balancer(self, obj: _Object) -> None:
        base: Path = ("spec", "controlPlaneLoadBalancer")
        lb = ("network", "api_load_balancer")
        lb_type = obj.get(*(base + ("loadBalancerType",)))
        if lb_type is not None:
            types = {"nlb": "nlb", "classic": "classic", "elb": "classic"}
            if lb_type in types:
                self.put(lb + ("type",), types[lb_type], obj, base + ("loadBalancerType",))
            else:
                self.not_supported(obj, base + ("loadBalancerType",), "nlb and classic load balancers only")
        for field, key, choices in (("scheme", "scheme", ("internet-facing", "internal")),
                                    ("healthCheckProtocol", "health_check_protocol", ("TCP", "HTTPS"))):
            value = obj.get(*(base + (field,)))
            if value is None:
                continue
            if value in choices:
                self.put(lb + (key,), value, obj, base + (field,))
            else:
                self.not_supported(obj, base + (field,), "%s only" % " or ".join(choices))
        cross = self.boolean(obj, *(base + ("crossZoneLoadBalancing",)))
        if cross is not None:
            self.put(lb + ("cross_zone",), cross, obj, base + ("crossZoneLoadBalancing",))
        rules = obj.get(*(base + ("ingressRules",)))
        if rules is not None:
            rule = rules[0] if isinstance(rules, list) and len(rules) == 1 and isinstance(rules[0], dict) else {}
            cidrs = rule.get("cidrBlocks")
            if (set(rule) <= {"protocol", "fromPort", "toPort", "cidrBlocks", "description"}
                    and rule.get("protocol") == "tcp" and rule.get("fromPort") == 6443 and rule.get("toPort") == 6443
                    and isinstance(cidrs, list) and cidrs):
                self.put(lb + ("allowed_cidrs",), cidrs, obj, base + ("ingressRules",))
            else:
                self.not_supported(obj, base + ("ingressRules",), "one rule {protocol: tcp, fromPort: 6443, "
                                   "toPort: 6443, cidrBlocks: [...]} is read, as "
                                   "network.api_load_balancer.allowed_cidrs")

    def bastion(self, obj: _Object) -> None:
        base: Path = ("spec", "bastion")
        for field, key, kind in (("enabled", "enabled", "bool"), ("allowedCIDRBlocks", "allowed_cidrs", "list"),
                                 ("instanceType", "instance_type", "str"), ("ami", "ami_id", "str")):
            if not obj.has(*(base + (field,))):
                continue
            value: Any
            if kind == "bool":
                value = self.boolean(obj, *(base + (field,)))
            elif kind == "str":
                value = self.string(obj, *(base + (field,)))
            else:
                value = obj.get(*(base + (field,)))
            if value is not None:
                self.put(("network", "bastion", key), value, obj, base + (field,))

    def network(self, obj: _Object) -> None:
        base: Path = ("spec", "network")
        vpc: Path = base + ("vpc",)
        vpc_id = self.string(obj, *(vpc + ("id",)))
        tags = obj.get(*(vpc + ("tags",)))
        owned = isinstance(tags, dict) and tags.get(OWNED_TAG % self.cluster_name) == "owned"
        if vpc_id and not owned:
            # Bring-your-own: the VPC and its subnets by id; what a subnet entry says of itself is descriptive.
            self.put(("network", "vpc_id"), vpc_id, obj, vpc + ("id",))
            obj.get(*(vpc + ("cidrBlock",)))
            obj.get(*(vpc + ("tags",)))
            subnets = obj.get(*(base + ("subnets",)))
            ids: List[str] = []
            for index, subnet in enumerate(subnets or []):
                path = base + ("subnets", index)
                subnet_id = subnet.get("id") if isinstance(subnet, dict) else None
                if not isinstance(subnet_id, str):
                    self.error(obj, path + ("id",), "missing; a subnet of your own VPC is named by its id")
                    continue
                ids.append(subnet_id)
                for key in subnet:
                    if key not in ("id", "cidrBlock", "availabilityZone", "isPublic", "natGatewayId", "routeTableId",
                                   "tags", "resourceID"):
                        self.not_supported(obj, path + (key,))
            if ids:
                self.put(("network", "subnet_ids"), ids, obj, base + ("subnets",))
        else:
            if vpc_id:
                # The collection's own VPC (CAPA's owned tag): ids, tags and subnets describe what it made.
                obj.get(*(vpc + ("tags",)))
                obj.get(*(base + ("subnets",)))
            else:
                if tags is not None:
                    self.not_supported(obj, vpc + ("tags",), "the collection tags its own VPC; use spec.additionalTags")
                    obj.get(*(vpc + ("tags",)))
                if obj.get(*(base + ("subnets",))) not in (None, []):
                    self.not_supported(obj, base + ("subnets",), "the collection lays out the subnets of the VPC it "
                                       "makes; subnets are read by id with your own VPC (spec.network.vpc.id)")
            cidr = self.string(obj, *(vpc + ("cidrBlock",)))
            if cidr is not None:
                self.put(("network", "vpc_cidr"), cidr, obj, vpc + ("cidrBlock",))
        limit = self.integer(obj, *(vpc + ("availabilityZoneUsageLimit",)))
        if limit is not None:
            self.put(("network", "availability_zones"), limit, obj, vpc + ("availabilityZoneUsageLimit",))
        selection = obj.get(*(vpc + ("availabilityZoneSelection",)))
        if selection is not None and selection != "Ordered":
            self.not_supported(obj, vpc + ("availabilityZoneSelection",), "the collection takes zones in name order, "
                               "as Ordered does")
        overrides = obj.get(*(base + ("securityGroupOverrides",)))
        if overrides not in (None, {}) and not self.exported:
            self.not_supported(obj, base + ("securityGroupOverrides",), "the collection makes and finds its own "
                               "security groups; read only in a kubecluster.aws export")
        rules = obj.get(*(base + ("cni", "cniIngressRules")))
        if rules is not None:
            cni = self.cni(rules)
            if cni is None:
                self.not_supported(obj, base + ("cni", "cniIngressRules"), "calico's rules (tcp 179, IP-in-IP) or "
                                   "cilium's (udp 8472, tcp 4240) only, as network.cni")
            else:
                self.put(("network", "cni"), cni, obj, base + ("cni", "cniIngressRules"))
        cidrs = obj.get(*(base + ("nodePortIngressRuleCidrBlocks",)))
        if cidrs is not None:
            self.put(("network", "node_port_cidrs"), cidrs, obj, base + ("nodePortIngressRuleCidrBlocks",))

    @staticmethod
    def cni(rules: Any) -> Optional[str]:
        if not isinstance(rules, list):
            return None
        seen = []
        for rule in rules:
            if not isinstance(rule, dict) or not set(rule) <= {"protocol", "fromPort", "toPort", "description"}:
                return None
            seen.append((str(rule.get("protocol")), rule.get("fromPort"), rule.get("toPort")))
        for name, wanted in _CNI_RULE_SETS.items():
            if len(seen) == len(wanted) and all(any(rule in choices for rule in seen) for choices in wanted) \
                    and all(any(rule in choices for choices in wanted) for rule in seen):
                return name
        return None

    def kubeadm_args(self, obj: _Object, path: Path, wanted: Mapping[str, str]) -> None:
        """extraArgs/kubeletExtraArgs: a map (v1beta1) or a list of {name, value} (v1beta2); only ``wanted``."""
        value = obj.get(*path)
        if value is None:
            return
        if isinstance(value, dict):
            pairs = [((key,), key, val) for key, val in value.items()]
        elif isinstance(value, list):
            pairs = [((index,), item.get("name"), item.get("value")) if isinstance(item, dict)
                     else ((index,), None, None) for index, item in enumerate(value)]
        else:
            self.error(obj, path, "must be a mapping of flags to values")
            return
        for sub, key, val in pairs:
            if key in wanted and val == wanted[key]:
                continue
            self.not_supported(obj, path + sub, "only %s, what the collection sets, is read"
                               % ", ".join("%s: %s" % item for item in wanted.items()))

    def node_registration(self, obj: _Object, path: Path) -> None:
        node = obj.get(*path)
        if node is None:
            return
        if not isinstance(node, dict):
            self.error(obj, path, "must be a mapping")
            return
        for key in node:
            if node[key] in (None, {}, []):
                continue
            if key == "kubeletExtraArgs":
                self.kubeadm_args(obj, path + (key,), {"cloud-provider": "external"})
            elif key == "name" and node[key] == LOCAL_HOSTNAME:
                continue
            else:
                self.not_supported(obj, path + (key,), "the collection registers nodes by their private DNS name "
                                   "(name: '%s') with an external cloud provider" % LOCAL_HOSTNAME
                                   if key == "name" else "")

    def read_control_plane(self, obj: _Object) -> Optional[_Object]:
        replicas = self.integer(obj, "spec", "replicas")
        if replicas is not None:
            self.put(("control_plane", "replicas"), replicas, obj, ("spec", "replicas"))
        version = self.string(obj, "spec", "version")
        if version is not None:
            self.put(("kubernetes_version",), version, obj, ("spec", "version"))
        config: Path = ("spec", "kubeadmConfigSpec")
        cluster_config = config + ("clusterConfiguration",)
        self.kubeadm_args(obj, cluster_config + ("controllerManager", "extraArgs"), {"cloud-provider": "external"})
        # Older CAPA templates also pass the flag to kube-apiserver; same meaning, read the same.
        self.kubeadm_args(obj, cluster_config + ("apiServer", "extraArgs"), {"cloud-provider": "external"})
        for phase in ("initConfiguration", "joinConfiguration"):
            self.node_registration(obj, config + (phase, "nodeRegistration"))
        v1beta2 = obj.version == "v1beta2"
        if v1beta2:
            template = self.ref(obj, ("spec", "machineTemplate", "spec", "infrastructureRef"), "AWSMachineTemplate")
            drain_path: Path = ("spec", "machineTemplate", "spec", "deletion", "nodeDrainTimeoutSeconds")
            surge_path: Path = ("spec", "rollout", "strategy")
        else:
            template = self.ref(obj, ("spec", "machineTemplate", "infrastructureRef"), "AWSMachineTemplate")
            drain_path = ("spec", "machineTemplate", "nodeDrainTimeout")
            surge_path = ("spec", "rolloutStrategy")
        drain = self.duration(obj, drain_path, v1beta2)
        if drain is not None:
            self.put(("node_drain_timeout",), drain, obj, drain_path)
        strategy = obj.get(*(surge_path + ("type",)))
        if strategy is not None and strategy != "RollingUpdate":
            self.not_supported(obj, surge_path + ("type",), "RollingUpdate only")
        surge = obj.get(*(surge_path + ("rollingUpdate", "maxSurge")))
        if surge is not None and surge != 1:
            self.not_supported(obj, surge_path + ("rollingUpdate", "maxSurge"), "the collection's control-plane "
                               "rollout adds one machine before it removes one (maxSurge 1)")
        if template is not None:
            self.machine_template(obj, template, ("control_plane",))
        return template

    def machine_template(self, user: _Object, obj: _Object, target: Tuple[str, ...]) -> None:
        base: Path = ("spec", "template", "spec")
        instance_type = self.string(obj, *(base + ("instanceType",)))
        if instance_type is not None:
            self.put(target + ("instance_type",), instance_type, obj, base + ("instanceType",))
        ami = self.string(obj, *(base + ("ami", "id")))
        if ami is not None:
            self.put(target + ("ami_id",), ami, obj, base + ("ami", "id"))
        profile = self.string(obj, *(base + ("iamInstanceProfile",)))
        if profile is not None:
            self.put(target + ("iam_instance_profile",), profile, obj, base + ("iamInstanceProfile",))
        volume = obj.get(*(base + ("rootVolume",)))
        if volume is not None:
            out: Raw = {}
            for field, key in (("size", "size"), ("type", "type"), ("encrypted", "encrypted"),
                               ("encryptionKey", "kms_key_id")):
                if isinstance(volume, dict) and field in volume:
                    out[key] = volume[field]
            for field in volume if isinstance(volume, dict) else ():
                if field not in ("size", "type", "encrypted", "encryptionKey"):
                    self.not_supported(obj, base + ("rootVolume", field))
            self.put(target + ("root_volume",), out, obj, base + ("rootVolume",))
        metadata = obj.get(*(base + ("instanceMetadataOptions",)))
        if isinstance(metadata, dict):
            out = {}
            for field, key in (("httpTokens", "http_tokens"),
                               ("httpPutResponseHopLimit", "http_put_response_hop_limit")):
                if field in metadata:
                    out[key] = metadata[field]
            for field, value in metadata.items():
                if field in ("httpTokens", "httpPutResponseHopLimit") or (field, value) in (
                        ("httpEndpoint", "enabled"), ("instanceMetadataTags", "disabled")):
                    continue
                self.not_supported(obj, base + ("instanceMetadataOptions", field), "the collection keeps the metadata "
                                   "service on (httpEndpoint: enabled) and instance tags off it")
            if out:
                self.put(("instance_metadata",), out, obj, base + ("instanceMetadataOptions",))
        self.image_lookup(obj, base)
        obj.get(*(base + ("sshKeyName",)))  # judged across the cluster by check_ssh_keys
        if obj.has(*(base + ("spotMarketOptions",))):
            obj.get(*(base + ("spotMarketOptions",)))
            self.not_supported(obj, base + ("spotMarketOptions",), "the collection launches on-demand instances")

    def check_ssh_keys(self, infra: Optional[_Object], templates: List[_Object]) -> None:
        """One key pair for the cluster: every template that names one must name the AWSCluster's."""
        path = ("spec", "template", "spec", "sshKeyName")
        for obj in templates:
            if not obj.has(*path):
                continue
            key = obj.get(*path)
            if not isinstance(key, str):
                self.error(obj, path, "must be a string")
            elif infra is not None and infra.has("spec", "sshKeyName"):
                if key != infra.get("spec", "sshKeyName"):
                    self.error(obj, path, "is %r but %s spec.sshKeyName is %r; kubecluster.aws uses one key pair for "
                               "the whole cluster (cluster.ssh_key_name), make them the same"
                               % (key, infra.label, infra.get("spec", "sshKeyName")))
            else:
                self.put(("ssh_key_name",), key, obj, path)

    def read_machine_deployment(self, obj: _Object, control_plane: Optional[_Object]
                                ) -> Tuple[Optional[_Object], Optional[_Object]]:
        name = obj.name
        prefix = self.cluster_name + "-"
        deployment: Raw = {"name": name[len(prefix):] if self.cluster_name and name.startswith(prefix)
                           and len(name) > len(prefix) else name}
        for path in (("spec", "clusterName"), ("spec", "template", "spec", "clusterName")):
            cluster_name = obj.get(*path)
            if cluster_name is not None and cluster_name != self.cluster_name:
                self.error(obj, path, "is %r, not the Cluster's name %r; a manifest holds one cluster"
                           % (cluster_name, self.cluster_name))
        replicas = self.integer(obj, "spec", "replicas")
        if replicas is not None:
            deployment["replicas"] = replicas
        version = self.string(obj, "spec", "template", "spec", "version")
        cp_version = control_plane.get("spec", "version") if control_plane is not None else None
        if version is not None and cp_version is not None and version != cp_version:
            self.error(obj, ("spec", "template", "spec", "version"), "is %s but %s spec.version is %s; kubecluster.aws "
                       "runs one Kubernetes version (cluster.kubernetes_version), make them the same"
                       % (version, control_plane.label if control_plane else "", cp_version))
        zone = self.string(obj, "spec", "template", "spec", "failureDomain")
        if zone is not None:
            deployment["availability_zones"] = [zone]
        selector = obj.get("spec", "selector", "matchLabels")
        if selector not in (None, {}):
            self.not_supported(obj, ("spec", "selector", "matchLabels"), "Cluster API sets the labels itself")
        v1beta2 = obj.version == "v1beta2"
        if v1beta2:
            strategy: Path = ("spec", "rollout", "strategy")
            order_path: Path = ("spec", "deletion", "order")
            drain_path: Path = ("spec", "template", "spec", "deletion", "nodeDrainTimeoutSeconds")
        else:
            strategy = ("spec", "strategy")
            order_path = ("spec", "strategy", "rollingUpdate", "deletePolicy")
            drain_path = ("spec", "template", "spec", "nodeDrainTimeout")
        drain = self.duration(obj, drain_path, v1beta2)
        if drain is not None:
            self.put(("node_drain_timeout",), drain, obj, drain_path)
        strategy_type = obj.get(*(strategy + ("type",)))
        if strategy_type is not None and strategy_type != "RollingUpdate":
            self.not_supported(obj, strategy + ("type",), "RollingUpdate only")
        for field, key in (("maxSurge", "max_surge"), ("maxUnavailable", "max_unavailable")):
            value = obj.get(*(strategy + ("rollingUpdate", field)))
            if value is None:
                continue
            if _is_int(value):
                deployment[key] = value
            else:
                self.not_supported(obj, strategy + ("rollingUpdate", field),
                                   "a number of machines only, not a percentage")
        order = obj.get(*order_path)
        if order is not None:
            if order in ("Random", "Newest", "Oldest"):
                deployment["deletion_order"] = str(order).lower()
            else:
                self.not_supported(obj, order_path, "Random, Newest or Oldest")
        template_path: Path = ("spec", "template", "spec", "infrastructureRef")
        config_path: Path = ("spec", "template", "spec", "bootstrap", "configRef")
        template = self.ref(obj, template_path, "AWSMachineTemplate")
        config = self.ref(obj, config_path, "KubeadmConfigTemplate")
        index = len(self.raw.setdefault("machine_deployments", []))
        self.raw["machine_deployments"].append(deployment)
        if template is not None:
            # Put under a key of its own (the deployment entry is a list item); machine_deployment_fields moves them in.
            self.machine_template(obj, template, ("machine_deployments[%d]" % index,))
        if config is not None:
            self.node_registration(config, ("spec", "template", "spec", "joinConfiguration", "nodeRegistration"))
        return template, config

    def read_addons(self) -> None:
        for obj in self.objects:
            if obj.kind == "ClusterResourceSet":
                if obj.name in ADDON_RESOURCE_SETS:
                    obj.get("spec")  # CAPA's own add-on plumbing: the collection installs the add-ons itself
                else:
                    self.not_supported(obj, ("metadata", "name"), "only CAPA's crs-ccm and crs-csi are read; the "
                                       "collection installs its add-ons itself (cluster.addons)")
                    obj.get("spec")
            elif obj.kind == "ConfigMap":
                if obj.name not in ADDON_CONFIG_MAPS:
                    self.not_supported(obj, ("metadata", "name"), "only CAPA's add-on ConfigMaps are read")
                    obj.get("data")
                    continue
                key, image = ADDON_CONFIG_MAPS[obj.name]
                obj.get("metadata")
                data = obj.get("data")
                text = "\n".join(str(v) for v in data.values()) if isinstance(data, dict) else ""
                tags = sorted(set(re.findall(re.escape(image) + r":(v[0-9][0-9A-Za-z.+-]*)", text)))
                if len(tags) > 1:
                    self.error(obj, ("data",), "runs %s at %s; one version is installed, keep one"
                               % (image, " and ".join(tags)))
                elif tags:
                    self.put(("addons", key), tags[0], obj, ("data",))

    def machine_deployment_fields(self) -> None:
        """The machine templates' fields were put under an index; move them into the deployments' entries."""
        deployments = self.raw.get("machine_deployments") or []
        for index, deployment in enumerate(deployments):
            deployment.update(self.raw.pop("machine_deployments[%d]" % index, {}))


def _parse(manifest: Union[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    if isinstance(manifest, (str, bytes)):
        if not HAS_YAML:  # pragma: no cover  (PyYAML comes with ansible-core)
            raise CapiManifestError(["the manifest is text, which needs PyYAML to parse; pass the parsed objects"])
        try:
            # yaml.safe_load_all through ansible-core (its SafeLoader, libyaml's when present); str(): a tagged str of
            # Ansible 2.19 is no str to libyaml.
            docs = list(yaml_load_all(str(manifest) if isinstance(manifest, str) else manifest))
        except Exception as error:  # pylint: disable=broad-except  # yaml.YAMLError and its many subclasses
            first = str(error).strip().splitlines()
            raise CapiManifestError(["the manifest is not YAML: %s; give the text clusterctl generate cluster wrote"
                                     % " ".join(line.strip() for line in first)]) from None
    elif isinstance(manifest, (list, tuple)):
        docs = list(manifest)
    else:
        raise CapiManifestError(["the manifest must be the text of a multi-document YAML file or a list of objects, "
                                 "not %s" % type(manifest).__name__])
    out = []
    problems = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append("document %d is a %s, not a Kubernetes object" % (index + 1, type(doc).__name__))
            continue
        out.append(doc)
    if problems:
        raise CapiManifestError(problems)
    return out


def placeholders(value: Any, found: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, Optional[str]]:
    """The envsubst placeholders (${NAME}, ${NAME:-default}) left in any key or string, first seen first: each name
    and its default (None when it has none)."""
    found = {} if found is None else found
    if isinstance(value, dict):
        for key, child in value.items():
            placeholders(key, found)
            placeholders(child, found)
    elif isinstance(value, list):
        for child in value:
            placeholders(child, found)
    elif isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            default = match.group(2).lstrip(":")[1:] if match.group(2) else None
            if found.get(match.group(1)) is None:
                found[match.group(1)] = default
    return found


def _check_kinds(docs: List[Dict[str, Any]]) -> Tuple[List[_Object], List[str], List[str]]:
    """The objects of known kinds; the errors (unknown versions, duplicates); the unsupported (unknown kinds)."""
    objects: List[_Object] = []
    errors: List[str] = []
    unknown: List[str] = []
    seen: Set[Tuple[str, str]] = set()
    for index, doc in enumerate(docs):
        obj = _Object(doc, index)
        if not isinstance(doc.get("kind"), str) or not isinstance(doc.get("apiVersion"), str):
            errors.append("document %d: apiVersion and kind: missing; every object of the manifest names both"
                          % (index + 1))
            continue
        if not isinstance(doc.get("metadata"), dict) or not isinstance(doc["metadata"].get("name"), str):
            errors.append("%s (document %d): metadata.name: missing" % (obj.kind, index + 1))
            continue
        known = KINDS.get(obj.kind)
        if known is None:
            unknown.append("%s: not supported (kubecluster.aws reads %s; remove it)"
                           % (obj.label, ", ".join(sorted(KINDS))))
            continue
        group, versions = known
        if obj.group != group or obj.version not in versions:
            errors.append("%s: apiVersion: %s is not read; kubecluster.aws reads %s"
                          % (obj.label, doc["apiVersion"], " and ".join("%s/%s" % (group, v) if group else v
                                                                        for v in versions)))
            continue
        if (obj.kind, obj.name) in seen:
            errors.append("%s: defined twice; keep one" % obj.label)
            continue
        seen.add((obj.kind, obj.name))
        objects.append(obj)
    return objects, errors, unknown


def _merge(raw: Raw, extra: Mapping[str, Any], source: str, origin: str, errors: List[str],
           prefix: str = "cluster") -> None:
    """Merge a partial spec into ``raw``; a field both set is an error naming it and both sources."""
    for key, value in extra.items():
        path = "%s.%s" % (prefix, key)
        if key == "machine_deployments" and isinstance(value, list) and isinstance(raw.get(key), list):
            names = [d.get("name") for d in raw[key]]
            for index, item in enumerate(value):
                name = item.get("name") if isinstance(item, dict) else None
                if name not in names:
                    errors.append("%s[%d]: %r is not a MachineDeployment of the manifest (%s); name one of those"
                                  % ("%s %s" % (source, path), index, name, ", ".join(str(n) for n in names)))
                    continue
                fields = {k: v for k, v in item.items() if k != "name"}
                position = names.index(name)
                _merge(raw[key][position], fields, source, origin, errors, "%s[%d]" % (path, position))
        elif isinstance(value, dict) and isinstance(raw.get(key), dict):
            _merge(raw[key], value, source, origin, errors, path)
        elif key in raw:
            errors.append("%s: %s sets it and so does %s; set it in one place" % (path, source, origin))
        else:
            raw[key] = value


def manifest_to_spec(manifest: Union[str, Sequence[Any]], settings: Optional[Any] = None,
                     unsupported: str = "fail") -> Tuple[Dict[str, Any], List[str]]:
    """The raw spec a Cluster API manifest describes, and the warnings.

    ``manifest``: the multi-document YAML text (or the parsed objects). ``settings``: a partial spec for what
    Cluster API cannot say (kubernetes_packages, addons.manifests_dir, ...), merged in; a field the manifest also
    sets is an error. ``unsupported``: ``fail`` (every field the mapping does not read is an error) or ``warn``
    (those are returned as warnings). Conflicts, missing objects, placeholders and parse errors always fail.
    Raises CapiManifestError listing every problem.
    """
    if unsupported not in UNSUPPORTED_MODES:
        raise CapiManifestError(["unsupported: %r is not fail or warn" % (unsupported,)])
    docs = _parse(manifest)
    found = placeholders(docs)
    if found:
        names = list(found)
        required = [name for name in names if found[name] is None]
        defaults = ["%s (default %s)" % (name, default) for name, default in found.items() if default is not None]
        raise CapiManifestError(["the manifest still holds the placeholder%s %s (left unexpanded); %srun clusterctl "
                                 "generate cluster again%s, or edit the manifest to hold the values"
                                 % ("s" if len(names) > 1 else "", ", ".join("${%s}" % n for n in names),
                                    "set %s and " % ", ".join(required) if required else "",
                                    " (it fills in %s)" % ", ".join(defaults) if defaults else "")])
    objects, kind_errors, unknown_kinds = _check_kinds(docs)
    if kind_errors:
        raise CapiManifestError(kind_errors)
    reader = _Reader(objects)
    reader.unsupported.extend(unknown_kinds)
    reader.read()
    reader.machine_deployment_fields()
    cluster = next((obj for obj in objects if obj.kind == "Cluster"), None)
    raw = reader.raw
    errors = list(reader.errors)
    if cluster is not None and not errors:
        annotation = reader.read_settings_annotation(cluster)
        errors += reader.errors[len(errors):]
        where = "%s metadata.annotations[%s]" % (cluster.label, SETTINGS_ANNOTATION)
        _merge(raw, annotation, where, "the manifest's Cluster API fields", errors)
    if settings is not None and not errors:
        parsed = cluster_input(settings)
        if not isinstance(parsed, dict):
            errors.append("settings: must be a mapping of spec fields such as {kubernetes_packages: {...}}")
        else:
            _merge(raw, parsed, "settings", "the manifest", errors)
    if errors or (reader.unsupported and unsupported == "fail"):
        hint = (" (fields kubecluster.aws does not read are listed as not supported: remove them, or import with "
                "unsupported=warn, capi_manifest_unsupported: warn in the playbooks, to go on without them)"
                if reader.unsupported else "")
        raise CapiManifestError(errors + reader.unsupported, hint)
    return _ordered(raw, SCHEMA), list(reader.unsupported)


def _ordered(raw: Raw, schema: Mapping[str, Any]) -> Raw:
    """The spec's keys in the schema's order (a spec file reads as the README documents it); others after."""
    out: Raw = {}
    for key in list(schema) + [k for k in raw if k not in schema]:
        if key not in raw:
            continue
        value = raw[key]
        field = schema.get(key)
        if isinstance(value, dict) and field is not None and field.children is not None:
            value = _ordered(value, field.children)
        elif key == "machine_deployments" and isinstance(value, list):
            value = [_ordered(item, MACHINE_DEPLOYMENT_SCHEMA) if isinstance(item, dict) else item for item in value]
        out[key] = value
    return out
