# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small Kubernetes API server emulator over real HTTPS, for the node tests. Standard library only.

It serves what the python ``kubernetes`` client's dynamic client (so kubernetes.core.k8s and
k8s_info), the kubeadm / kubectl stand-ins and the add-on manifests need:

- discovery: /version, /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>, with the core,
  apps, rbac, storage, apiextensions, policy, ... groups; a CustomResourceDefinition registers its
  kind (and group) as soon as it is created;
- GET (one object, or a list with labelSelector / fieldSelector), POST, PUT (optimistic concurrency
  on resourceVersion), PATCH (merge; strategic merge with the merge keys of the core types; JSON
  patch; server-side apply treated as a merge that creates when missing), DELETE and delete
  collection, on namespaced and cluster-scoped resources, plus the status subresource and
  ``?dryRun=All``;
- the controllers whose effects the roles observe: nodes are NotReady (with the not-ready taint)
  until a CNI DaemonSet exists (calico-node or cilium); the AWS cloud controller manager's node
  controller, while a workload running it could run (see Store._cloud_node_controller), gives each
  Node the ``cloud_provider`` knows its providerID and topology labels and removes the cloud-provider
  "uninitialized" taint (no cloud_provider, unknown Node: the taint stays); workload status fields
  (Deployments, DaemonSets, StatefulSets) follow their specs, CRDs get Established, expired
  bootstrap tokens are deleted, the bootstrap signer keeps kube-public/cluster-info signed, and
  objects whose owners are gone are garbage-collected (so kubeadm-certs lives 2 h with its token).

Authentication is by bearer token: the admin token (the one admin.conf carries), bootstrap tokens
("<id>.<secret>", valid while their bootstrap-token-<id> Secret exists and has not expired) and
node tokens handed out by POST /stand-in/node-credentials. Bootstrap tokens and anonymous callers get
only what real RBAC gives them during a kubeadm join.

Test endpoints (admin token): GET /stand-in/objects (every object), GET /stand-in/requests (every
request: method, path, user, status). In process: ``KubeApiEmulator.objects()``, ``.requests()``.
A test fault, as a kubelet that cannot get ready would report it (its runtime or network broken):
PUT /stand-in/kubelet-faults {"not_ready_registrations": N, "message": "..."} keeps the next N Nodes
that register NotReady, whatever else runs; GET shows the budget left and the Nodes held; DELETE clears
the fault, and those Nodes get Ready as any other on the next reconcile.

Run alone: python kube_api_emulator.py --listen 198.18.2.1:6443 --cert apiserver.crt --key apiserver.key
--admin-token TOKEN [--version v1.31.4]
"""

import argparse
import base64
import copy
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stand_in_lib  # noqa: E402  (this directory, whether imported or run as a script)
import stand_in_yaml  # noqa: E402

CORE_RESOURCES = [
    # group, version, plural, kind, namespaced, short names, subresources
    ("", "v1", "namespaces", "Namespace", False, ["ns"], ["status", "finalize"]),
    ("", "v1", "nodes", "Node", False, ["no"], ["status", "proxy"]),
    ("", "v1", "pods", "Pod", True, ["po"], ["status", "eviction", "log", "exec", "binding"]),
    ("", "v1", "services", "Service", True, ["svc"], ["status", "proxy"]),
    ("", "v1", "endpoints", "Endpoints", True, ["ep"], []),
    ("", "v1", "configmaps", "ConfigMap", True, ["cm"], []),
    ("", "v1", "secrets", "Secret", True, [], []),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"], ["token"]),
    ("", "v1", "events", "Event", True, ["ev"], []),
    ("", "v1", "persistentvolumes", "PersistentVolume", False, ["pv"], ["status"]),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"]),
    ("", "v1", "resourcequotas", "ResourceQuota", True, ["quota"], ["status"]),
    ("", "v1", "limitranges", "LimitRange", True, ["limits"], []),
    ("", "v1", "replicationcontrollers", "ReplicationController", True, ["rc"], ["status", "scale"]),
    ("", "v1", "podtemplates", "PodTemplate", True, [], []),
    ("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["status", "scale"]),
    ("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ["status"]),
    ("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], ["status", "scale"]),
    ("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], ["status", "scale"]),
    ("apps", "v1", "controllerrevisions", "ControllerRevision", True, [], []),
    ("batch", "v1", "jobs", "Job", True, [], ["status"]),
    ("batch", "v1", "cronjobs", "CronJob", True, ["cj"], ["status"]),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, [], []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, [], []),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, [], []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, [], []),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"], []),
    ("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False, [], []),
    ("storage.k8s.io", "v1", "csinodes", "CSINode", False, [], []),
    ("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, [], ["status"]),
    ("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", True, [], []),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ["crd", "crds"], ["status"]),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ["status"]),
    ("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ["pc"], []),
    ("coordination.k8s.io", "v1", "leases", "Lease", True, [], []),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, [], []),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"], []),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], ["status"]),
    ("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False, [], []),
    ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False, [], []),
    ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False, [], []),
    ("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, [], ["status"]),
    ("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False, ["csr"], ["status", "approval"]),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ["hpa"], ["status"]),
    ("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False, [], []),
    ("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", False, [], ["status"]),
    ("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "PriorityLevelConfiguration", False, [], ["status"]),
]
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
CNI_DAEMONSETS = ("calico-node", "cilium")
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
# What the DaemonSet controller adds to every DaemonSet pod (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations);
# the network-unavailable one only with hostNetwork. The not-ready NoSchedule taint is not among them.
DAEMONSET_TOLERATIONS = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                         {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                         {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
                         {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
                         {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
                         {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
# strategic merge: list fields merged by a key, as the core types' patchMergeKey says; others are replaced
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name", "env": "name",
              "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name", "hostAliases": "ip",
              "conditions": "type", "ownerReferences": "uid", "topologySpreadConstraints": "topologyKey", "addresses": "type"}


class ApiProblem(Exception):
    """An error answered as a metav1.Status."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Resource:
    def __init__(self, group, version, plural, kind, namespaced, short_names=(), subresources=(), singular=None, crd=None, list_kind=None):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.short_names = list(short_names)
        self.subresources = list(subresources)
        self.singular = singular or kind.lower()
        self.crd = crd
        self.list_kind = list_kind or kind + "List"

    @property
    def group_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    def discovery(self):
        entries = [{"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced, "kind": self.kind,
                    "verbs": ALL_VERBS, "shortNames": self.short_names}]
        if not self.short_names:
            entries[0].pop("shortNames")
        for sub in self.subresources:
            entries.append({"name": "%s/%s" % (self.plural, sub), "singularName": "", "namespaced": self.namespaced, "kind": self.kind,
                            "verbs": ["get", "patch", "update"] if sub in ("status", "scale") else ["create", "get"]})
        return entries


# -- label and field selectors -----------------------------------------------------------------------
def _split_selector(text):
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def label_matcher(selector):
    """A predicate over a labels dict for a Kubernetes label selector string."""
    tests = []
    for part in _split_selector(selector or ""):
        match = re.match(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$", part)
        if match:
            key, operator, values = match.group(1), match.group(2), {value.strip() for value in match.group(3).split(",")}
            if operator == "in":
                tests.append(lambda labels, k=key, v=values: labels.get(k) in v)
            else:
                tests.append(lambda labels, k=key, v=values: labels.get(k) not in v)
            continue
        match = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", part)
        if match:
            key, operator, value = match.groups()
            if operator == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        if part.startswith("!"):
            tests.append(lambda labels, k=part[1:].strip(): k not in labels)
            continue
        if re.match(r"^[^\s!=(),]+$", part):
            tests.append(lambda labels, k=part: k in labels)
            continue
        raise ApiProblem(400, "BadRequest", 'unable to parse requirement: found "%s", expected: valid label selector' % part)
    return lambda labels: all(test(labels or {}) for test in tests)


def _selects(selector, labels):
    """Whether a LabelSelector object (matchLabels, matchExpressions) selects these labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if (operator == "In" and labels.get(key) not in values or operator == "NotIn" and labels.get(key) in values
                or operator == "Exists" and key not in labels or operator == "DoesNotExist" and key in labels):
            return False
    return True


def _budget_count(value, total):
    """A PodDisruptionBudget's minAvailable / maxUnavailable: an integer, or a percentage of the selected pods (rounded up)."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * total // 100)
    return int(value)


def _dotted(obj, path):
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def field_matcher(selector):
    tests = []
    for part in _split_selector(selector or ""):
        match = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise ApiProblem(400, "BadRequest", 'invalid field selector: "%s"' % part)
        path, operator, value = match.groups()
        if operator == "!=":
            tests.append(lambda obj, p=path, v=value: str(_dotted(obj, p) or "") != v)
        else:
            tests.append(lambda obj, p=path, v=value: str(_dotted(obj, p) or "") == v)
    return lambda obj: all(test(obj) for test in tests)


# -- patches ------------------------------------------------------------------------------------------------
def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target, patch, field=None):
    """Strategic merge patch with the core types' merge keys and the $patch / $setElementOrder directives."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "replace":
            return {key: value for key, value in patch.items() if key != "$patch"}
        if directive == "delete":
            return None
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$setElementOrder/") or key.startswith("$deleteFromPrimitiveList/") or key in ("$retainKeys", "$patch"):
                if key.startswith("$deleteFromPrimitiveList/"):
                    name = key.split("/", 1)[1]
                    result[name] = [item for item in result.get(name) or [] if item not in value]
                continue
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge(result.get(key), value, key)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    if isinstance(patch, list):
        merge_key = MERGE_KEYS.get(field)
        if field == "ports":
            merge_key = "containerPort" if any(isinstance(item, dict) and "containerPort" in item for item in patch) else "port"
        if not merge_key or not isinstance(target, list) or not all(isinstance(item, dict) for item in patch):
            return [copy.deepcopy(item) for item in patch if not (isinstance(item, dict) and item.get("$patch") == "delete")]
        result = copy.deepcopy(target)
        for item in patch:
            key_value = item.get(merge_key)
            index = next((position for position, existing in enumerate(result) if isinstance(existing, dict) and existing.get(merge_key) == key_value), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    result.pop(index)
            elif index is None:
                result.append({key: value for key, value in item.items() if key != "$patch"})
            else:
                result[index] = strategic_merge(result[index], item)
        return result
    return copy.deepcopy(patch)


def _pointer(path):
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path.lstrip("/").split("/")]


def json_patch(target, operations):
    document = copy.deepcopy(target)

    def parent_of(parts):
        node = document
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        try:
            if op in ("move", "copy"):
                source = _pointer(operation["from"])
                holder = parent_of(source)
                value = holder[int(source[-1])] if isinstance(holder, list) else holder[source[-1]]
                if op == "move":
                    if isinstance(holder, list):
                        holder.pop(int(source[-1]))
                    else:
                        holder.pop(source[-1])
                operation = dict(operation, value=copy.deepcopy(value))
                op = "add"
            holder = parent_of(parts)
            last = parts[-1]
            if op == "add":
                if isinstance(holder, list):
                    holder.insert(len(holder) if last == "-" else int(last), operation["value"])
                else:
                    holder[last] = operation["value"]
            elif op == "replace":
                if isinstance(holder, list):
                    holder[int(last)] = operation["value"]
                else:
                    if last not in holder:
                        raise KeyError(last)
                    holder[last] = operation["value"]
            elif op == "remove":
                if isinstance(holder, list):
                    holder.pop(int(last))
                else:
                    holder.pop(last)
            elif op == "test":
                current = holder[int(last)] if isinstance(holder, list) else holder[last]
                if current != operation["value"]:
                    raise ApiProblem(422, "Invalid", "the server rejected our request due to an error in our request: testing value failed")
            else:
                raise ApiProblem(400, "BadRequest", "unknown JSON patch operation %r" % op)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiProblem(422, "Invalid", "the server rejected our request due to an error in our request: doc is missing path: %s" % operation.get("path"))
    return document


# -- the store -----------------------------------------------------------------------------------------------
class Store:
    """Objects, the resource registry, users and the controllers, behind one lock."""

    def __init__(self, version="v1.31.4", admin_token=None, service_ip="10.96.0.1", cloud_provider=None):
        self.lock = threading.RLock()
        self.version = version
        self.cloud_provider = cloud_provider  # see KubeApiEmulator
        self.admin_token = admin_token or uuid.uuid4().hex
        self.node_secret = uuid.uuid4().bytes
        self.objects = {}  # (group, plural, namespace, name) -> object
        self.resources = {}  # (group, version, plural) -> Resource
        self.request_log = []
        self.revision = 0
        self.service_ip = service_ip
        self.next_cluster_ip = 10
        # stacked etcd's member list, as etcdctl member list shows it; the kubeadm stand-in adds and removes members
        self.etcd_members = []
        # the test fault of /stand-in/kubelet-faults: Nodes whose kubelet reports NotReady, and how many new ones will
        self.kubelet_faults = {"not_ready_registrations": 0, "message": "", "nodes": []}
        for entry in CORE_RESOURCES:
            self.register(Resource(*entry))
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.resource("", "v1", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        self.create(self.resource("", "v1", "services"), "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": service_ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}], "type": "ClusterIP"}})

    # -- registry ---------------------------------------------------------------
    def register(self, resource):
        self.resources[(resource.group, resource.version, resource.plural)] = resource

    def resource(self, group, version, plural):
        found = self.resources.get((group, version, plural))
        if not found:
            raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
        return found

    def resource_for_kind(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        for resource in self.resources.values():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        return None

    def groups(self):
        grouped = {}
        for resource in self.resources.values():
            if resource.group:
                grouped.setdefault(resource.group, set()).add(resource.version)
        return grouped

    # -- objects ----------------------------------------------------------------
    def _bump(self, obj):
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)

    def key(self, resource, namespace, name):
        return (resource.group, resource.plural, namespace if resource.namespaced else None, name)

    def get(self, resource, namespace, name):
        obj = self.objects.get(self.key(resource, namespace, name))
        if obj is None:
            raise ApiProblem(404, "NotFound", '%s "%s" not found' % (resource.plural + ("." + resource.group if resource.group else ""), name),
                             {"name": name, "group": resource.group, "kind": resource.plural})
        return obj

    def list(self, resource, namespace=None, label_selector=None, field_selector=None):
        labels_ok, fields_ok = label_matcher(label_selector), field_matcher(field_selector)
        items = []
        for (group, plural, item_namespace, _name), obj in sorted(self.objects.items(), key=lambda item: (item[0][2] or "", item[0][3])):
            if group != resource.group or plural != resource.plural:
                continue
            if namespace and item_namespace != namespace:
                continue
            if labels_ok(obj["metadata"].get("labels")) and fields_ok(obj):
                items.append(obj)
        return items

    def _check_namespace(self, resource, namespace):
        if resource.namespaced:
            if not namespace:
                raise ApiProblem(400, "BadRequest", "the namespace of the object does not match the namespace on the request")
            if (("", "namespaces", None, namespace)) not in self.objects:
                raise ApiProblem(404, "NotFound", 'namespaces "%s" not found' % namespace, {"name": namespace, "kind": "namespaces"})

    def _defaults(self, resource, namespace, obj):
        obj["apiVersion"] = resource.group_version
        obj["kind"] = resource.kind
        metadata = obj.setdefault("metadata", {})
        if resource.namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", now_rfc3339())
        metadata["generation"] = 1
        if resource.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif resource.kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) if string_data else obj.get("data")
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        elif resource.kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") in (None, "") and spec["type"] != "ExternalName":
                spec["clusterIP"] = "10.96.%d.%d" % divmod(self.next_cluster_ip, 256)
                self.next_cluster_ip += 1
            if spec.get("clusterIP") not in (None, "None"):
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
        elif resource.kind == "ServiceAccount":
            pass
        elif resource.kind == "Pod":
            # the apiserver ignores a status given on create; a new pod is Pending (the emulator runs no pods)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def create(self, resource, namespace, obj, dry_run=False):
        with self.lock:
            obj = copy.deepcopy(obj)
            metadata = obj.setdefault("metadata", {})
            body_namespace = metadata.get("namespace")
            if resource.namespaced and body_namespace and namespace and body_namespace != namespace:
                raise ApiProblem(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            namespace = namespace or body_namespace
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
            name = metadata.get("name")
            if not name:
                raise ApiProblem(422, "Invalid", "%s.%s \"\" is invalid: metadata.name: Required value: name or generateName is required"
                                 % (resource.kind, resource.group or "core"))
            if resource.kind != "Namespace":
                self._check_namespace(resource, namespace)
            key = self.key(resource, namespace, name)
            if key in self.objects:
                raise ApiProblem(409, "AlreadyExists", '%s "%s" already exists' % (resource.plural + ("." + resource.group if resource.group else ""), name),
                                 {"name": name, "group": resource.group, "kind": resource.plural})
            metadata.pop("resourceVersion", None)
            for field in ("uid", "creationTimestamp", "deletionTimestamp"):
                metadata.pop(field, None)
            self._defaults(resource, namespace, obj)
            if resource.kind == "CustomResourceDefinition":
                self._validate_crd(obj)
            if dry_run:
                obj["metadata"]["resourceVersion"] = str(self.revision)
                return obj
            self._bump(obj)
            self.objects[key] = obj
            if resource.kind == "Node" and self.kubelet_faults["not_ready_registrations"] > 0:
                self.kubelet_faults["not_ready_registrations"] -= 1
                self.kubelet_faults["nodes"].append(name)
            self._after_write(resource, obj)
            return obj

    def replace(self, resource, namespace, name, obj, subresource=None, dry_run=False):
        with self.lock:
            current = self.get(resource, namespace, name)
            obj = copy.deepcopy(obj)
            given = (obj.get("metadata") or {}).get("resourceVersion")
            if given and given != current["metadata"]["resourceVersion"]:
                raise ApiProblem(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been modified; please apply your changes '
                                 "to the latest version and try again" % (resource.plural, name), {"name": name, "kind": resource.plural})
            if (obj.get("metadata") or {}).get("name", name) != name:
                raise ApiProblem(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)" % (obj["metadata"]["name"], name))
            return self._store_update(resource, current, obj, subresource, dry_run)

    def _store_update(self, resource, current, new, subresource, dry_run):
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = new.get("status")
        else:
            updated = new
            if resource.kind not in ("ConfigMap", "Secret", "Namespace", "Node") or "status" not in new:
                if "status" in current and resource.kind not in ("ConfigMap", "Secret"):
                    updated["status"] = copy.deepcopy(current["status"])
        metadata = updated.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
        updated["apiVersion"], updated["kind"] = resource.group_version, resource.kind
        if resource.kind == "Secret" and updated.get("stringData"):
            data = updated.setdefault("data", {})
            for key, value in updated.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        if json.dumps(updated.get("spec"), sort_keys=True) != json.dumps(current.get("spec"), sort_keys=True):
            metadata["generation"] = current["metadata"].get("generation", 1) + 1
        if self._same(current, updated):
            return current
        if dry_run:
            return updated
        self._bump(updated)
        self.objects[self.key(resource, current["metadata"].get("namespace"), current["metadata"]["name"])] = updated
        self._after_write(resource, updated)
        return updated

    @staticmethod
    def _same(left, right):
        """Equal but for the resourceVersion: an update that changes nothing is not a change."""
        def comparable(obj):
            body = {key: value for key, value in obj.items() if key != "metadata"}
            body["metadata"] = {key: value for key, value in obj["metadata"].items() if key != "resourceVersion"}
            return json.dumps(body, sort_keys=True)
        return comparable(left) == comparable(right)

    def patch(self, resource, namespace, name, patch_type, body, subresource=None, dry_run=False, field_manager=None):
        with self.lock:
            if patch_type == "application/apply-patch+yaml":
                if not field_manager:
                    raise ApiProblem(400, "BadRequest", "PATCH /apply requires fieldManager to be set")
                if self.key(resource, namespace, name) not in self.objects:
                    body = copy.deepcopy(body)
                    body.setdefault("metadata", {})["name"] = name
                    return self.create(resource, namespace, body, dry_run)
            current = self.get(resource, namespace, name)
            base = current if subresource != "status" else {"status": current.get("status")}
            if patch_type == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ApiProblem(400, "BadRequest", "json patch must be a list of operations")
                result = json_patch(current, body)
            elif patch_type == "application/merge-patch+json":
                result = merge_patch(base, body)
            elif patch_type in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
                if resource.crd and patch_type == "application/strategic-merge-patch+json":
                    raise ApiProblem(415, "UnsupportedMediaType", "strategic merge patch is not supported for custom resources; use merge patch")
                result = strategic_merge(base, body)
            else:
                raise ApiProblem(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: "
                                 "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                                 "application/strategic-merge-patch+json")
            if subresource == "status":
                result = dict(copy.deepcopy(current), status=result.get("status"))
            result.setdefault("metadata", {})
            result["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self._store_update(resource, current, result, None if subresource != "status" else "status", dry_run)

    def delete(self, resource, namespace, name, dry_run=False):
        with self.lock:
            obj = self.get(resource, namespace, name)
            if dry_run:
                return obj
            self.objects.pop(self.key(resource, namespace, name))
            self.revision += 1
            if resource.kind == "Namespace":
                for key in [key for key in self.objects if key[2] == name]:
                    self.objects.pop(key)
            if resource.kind == "CustomResourceDefinition":
                self._unregister_crd(obj)
            return obj

    # -- the eviction API's disruption check -------------------------------------------
    def check_disruption_budgets(self, namespace, pod):
        """Refuse an eviction as the apiserver does (429) when a PodDisruptionBudget selecting the pod allows no
        disruption: the pods it selects (this one included) minus one would fall below minAvailable, or more
        than maxUnavailable would be gone. Every pod the budget selects counts as healthy (the emulator runs none)."""
        resource = self.resource("policy", "v1", "poddisruptionbudgets")
        pods = self.resource("", "v1", "pods")
        labels = pod["metadata"].get("labels") or {}
        for budget in self.list(resource, namespace):
            spec = budget.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or not _selects(selector, labels):
                continue
            selected = [item for item in self.list(pods, namespace) if _selects(selector, item["metadata"].get("labels") or {})]
            healthy = len(selected)
            if "minAvailable" in spec:
                allowed = healthy - _budget_count(spec["minAvailable"], healthy)
            else:
                allowed = _budget_count(spec.get("maxUnavailable", 0), healthy)
            if allowed < 1:
                raise ApiProblem(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                                 {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget %s needs %s healthy pods and has %d "
                                              "currently" % (budget["metadata"]["name"], spec.get("minAvailable", "?"), healthy)}]})

    # -- CRDs -------------------------------------------------------------------
    @staticmethod
    def _validate_crd(obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            raise ApiProblem(422, "Invalid", "CustomResourceDefinition.apiextensions.k8s.io \"%s\" is invalid: spec.group, spec.names.plural and "
                             "spec.names.kind are required" % obj["metadata"]["name"])
        if obj["metadata"]["name"] != "%s.%s" % (names["plural"], spec["group"]):
            raise ApiProblem(422, "Invalid", 'CustomResourceDefinition.apiextensions.k8s.io "%s" is invalid: metadata.name: Invalid value: "%s": '
                             'must be spec.names.plural+"."+spec.group' % (obj["metadata"]["name"], obj["metadata"]["name"]))

    def _crd_resources(self, crd):
        spec = crd["spec"]
        names = spec["names"]
        versions = [version["name"] for version in spec.get("versions") or [] if version.get("served", True)] or [spec.get("version", "v1")]
        subresources = {}
        for version in spec.get("versions") or []:
            subresources[version["name"]] = list((version.get("subresources") or {}).keys())
        for version in versions:
            yield Resource(spec["group"], version, names["plural"], names["kind"], spec.get("scope", "Namespaced") == "Namespaced",
                           names.get("shortNames") or [], subresources.get(version, []), names.get("singular"), crd=crd["metadata"]["name"],
                           list_kind=names.get("listKind"))

    def _unregister_crd(self, crd):
        spec = crd["spec"]
        for resource in list(self._crd_resources(crd)):
            self.resources.pop((resource.group, resource.version, resource.plural), None)
        for key in [key for key in self.objects if key[0] == spec["group"] and key[1] == spec["names"]["plural"]]:
            self.objects.pop(key)

    def _after_write(self, resource, obj):
        if resource.kind == "CustomResourceDefinition":
            for registered in self._crd_resources(obj):
                self.register(registered)
        if resource.kind == "Namespace":
            root_ca = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": obj["metadata"]["name"]},
                       "data": {"ca.crt": getattr(self, "ca_pem", "")}}
            key = ("", "configmaps", obj["metadata"]["name"], "kube-root-ca.crt")
            if key not in self.objects:
                self._defaults(self.resource("", "v1", "configmaps"), obj["metadata"]["name"], root_ca)
                self._bump(root_ca)
                self.objects[key] = root_ca

    # -- controllers ------------------------------------------------------------------
    def reconcile(self):
        """What the controllers of a real control plane would have done by now."""
        with self.lock:
            self._clean_tokens()
            self._collect_garbage()
            self._sign_cluster_info()
            self._nodes()
            self._cloud_node_controller()
            self._workloads()
            self._crds()

    def _set(self, key, obj):
        if not self._same(self.objects[key], obj):
            self._bump(obj)
            self.objects[key] = obj

    def _token_secrets(self):
        for key, obj in self.objects.items():
            if key[:3] == ("", "secrets", "kube-system") and obj.get("type") == "bootstrap.kubernetes.io/token":
                yield key, obj

    @staticmethod
    def _decoded(secret, field):
        value = (secret.get("data") or {}).get(field)
        return base64.b64decode(value).decode() if value else None

    def _clean_tokens(self):
        for key, secret in list(self._token_secrets()):
            expiration = self._decoded(secret, "expiration")
            if expiration and datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp() <= time.time():
                self.objects.pop(key)
                self.revision += 1

    def _collect_garbage(self):
        uids = {obj["metadata"].get("uid") for obj in self.objects.values()}
        for key, obj in list(self.objects.items()):
            owners = obj["metadata"].get("ownerReferences") or []
            if owners and all(owner.get("uid") not in uids for owner in owners):
                self.objects.pop(key)
                self.revision += 1

    def valid_token(self, token):
        """The bootstrap-token Secret for "<id>.<secret>" if it exists, matches and has not expired."""
        match = re.match(r"^([a-z0-9]{6})\.([a-z0-9]{16})$", token or "")
        if not match:
            return None
        secret = self.objects.get(("", "secrets", "kube-system", "bootstrap-token-" + match.group(1)))
        if not secret or self._decoded(secret, "token-secret") != match.group(2):
            return None
        expiration = self._decoded(secret, "expiration")
        if expiration and datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp() <= time.time():
            return None
        return secret

    def _sign_cluster_info(self):
        key = ("", "configmaps", "kube-public", "cluster-info")
        cluster_info = self.objects.get(key)
        if not cluster_info:
            return
        data = cluster_info.get("data") or {}
        content = data.get("kubeconfig", "")
        signed = {name: value for name, value in data.items() if not name.startswith("jws-kubeconfig-")}
        for _key, secret in self._token_secrets():
            if self._decoded(secret, "usage-bootstrap-signing") == "true":
                token_id, token_value = self._decoded(secret, "token-id"), self._decoded(secret, "token-secret")
                signed["jws-kubeconfig-" + token_id] = stand_in_lib.jws_detached(content, token_id, token_value)
        if signed != data:
            updated = copy.deepcopy(cluster_info)
            updated["data"] = signed
            self._set(key, updated)

    def _has_daemonset(self, names):
        return any(key[1] == "daemonsets" and key[3] in names for key in self.objects)

    def _nodes(self):
        cni = self._has_daemonset(CNI_DAEMONSETS)
        for key, node in list(self.objects.items()):
            if key[1] != "nodes":
                continue
            updated = copy.deepcopy(node)
            spec, status = updated.setdefault("spec", {}), updated.setdefault("status", {})
            taints = [taint for taint in spec.get("taints") or [] if taint.get("key") != NOT_READY_TAINT]
            if not cni:
                taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            conditions = [condition for condition in status.get("conditions") or [] if condition.get("type") != "Ready"]
            previous = next((condition for condition in status.get("conditions") or [] if condition.get("type") == "Ready"), {})
            faulty = key[3] in self.kubelet_faults["nodes"]
            ready = "True" if cni and not faulty else "False"
            transition = previous.get("lastTransitionTime") if previous.get("status") == ready else now_rfc3339()
            conditions.append({"type": "Ready", "status": ready, "lastHeartbeatTime": previous.get("lastHeartbeatTime") or now_rfc3339(),
                               "lastTransitionTime": transition,
                               "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
                               "message": "kubelet is posting ready status" if ready == "True" else
                               self.kubelet_faults["message"] or "stand-in test fault: the kubelet reports NotReady" if faulty else
                               "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                               "message:Network plugin returns error: cni plugin not initialized"})
            status["conditions"] = conditions
            self._set(key, updated)

    # -- the AWS cloud controller manager's node controller -----------------------------------------
    # A real cloud-node-controller initialises a Node registered with --cloud-provider=external: it looks the
    # instance up in the cloud, sets spec.providerID and the topology / instance-type labels, and removes the
    # uninitialized taint. Here that happens only while such a controller could actually run (a workload running
    # `--cloud-provider=aws` whose pods can be scheduled, with its ServiceAccount and RBAC on Nodes) and only for
    # the Nodes the emulator's cloud_provider knows; any other Node keeps its taint, as the real one logs
    # "instance not found" and retries.
    @staticmethod
    def _runs_aws_ccm(pod_spec):
        return any("--cloud-provider=aws" in (container.get("command") or []) + (container.get("args") or [])
                   for container in pod_spec.get("containers") or [])

    @staticmethod
    def _tolerated(taint, tolerations):
        for toleration in tolerations:
            if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
                continue
            if toleration.get("operator") == "Exists":
                if not toleration.get("key") or toleration["key"] == taint.get("key"):
                    return True
            elif toleration.get("key") == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or ""):
                return True
        return False

    @staticmethod
    def _node_matches(pod_spec, node):
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(key) != value for key, value in (pod_spec.get("nodeSelector") or {}).items()):
            return False
        required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
        terms = required.get("nodeSelectorTerms")
        if not terms:
            return True

        def holds(expression):
            key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
            return {"In": lambda: labels.get(key) in values, "NotIn": lambda: labels.get(key) not in values,
                    "Exists": lambda: key in labels, "DoesNotExist": lambda: key not in labels,
                    "Gt": lambda: key in labels and int(labels[key]) > int(values[0]),
                    "Lt": lambda: key in labels and int(labels[key]) < int(values[0])}.get(operator, lambda: False)()
        return any(all(holds(expression) for expression in term.get("matchExpressions") or []) for term in terms)

    def _schedulable_somewhere(self, kind, pod_spec):
        tolerations = list(pod_spec.get("tolerations") or [])
        if kind == "DaemonSet":
            tolerations += DAEMONSET_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])
        for key, node in self.objects.items():
            if key[1] != "nodes" or not self._node_matches(pod_spec, node):
                continue
            blocking = [taint for taint in (node.get("spec") or {}).get("taints") or []
                        if taint.get("effect") in ("NoSchedule", "NoExecute") and not self._tolerated(taint, tolerations)]
            if not blocking:
                return True
        return False

    def _may_update_nodes(self, namespace, account):
        for key, binding in self.objects.items():
            if key[1] != "clusterrolebindings" or (binding.get("roleRef") or {}).get("kind") != "ClusterRole":
                continue
            if not any(subject.get("kind") == "ServiceAccount" and subject.get("name") == account and subject.get("namespace") == namespace
                       for subject in binding.get("subjects") or []):
                continue
            role = self.objects.get(("rbac.authorization.k8s.io", "clusterroles", None, binding["roleRef"].get("name")))
            for rule in (role or {}).get("rules") or []:
                if ({"", "*"} & set(rule.get("apiGroups") or []) and {"nodes", "*"} & set(rule.get("resources") or [])
                        and {"update", "patch", "*"} & set(rule.get("verbs") or [])):
                    return True
        return False

    def _aws_ccm_running(self):
        for key, workload in self.objects.items():
            if key[0] != "apps" or key[1] not in ("daemonsets", "deployments"):
                continue
            pod_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
            account = pod_spec.get("serviceAccountName") or "default"
            if (self._runs_aws_ccm(pod_spec) and ("", "serviceaccounts", key[2], account) in self.objects
                    and self._may_update_nodes(key[2], account) and self._schedulable_somewhere(workload["kind"], pod_spec)):
                return True
        return False

    def _cloud_instance(self, node_name):
        """What the cloud_provider says about a Node: {provider_id, zone, region, instance_type} or None."""
        found = self.cloud_provider(node_name) if self.cloud_provider else None
        if not found:
            return None
        if isinstance(found, str):
            found = {"provider_id": found}
        instance = dict(found)
        match = re.match(r"^aws:///([^/]+)/(i-[0-9a-f]+)$", instance.get("provider_id") or "")
        if not match:
            raise ValueError("cloud_provider(%r) gave no provider id of the form aws:///<zone>/<instance-id>: %r" % (node_name, found))
        instance.setdefault("zone", match.group(1))
        if not instance.get("region"):
            region = re.match(r"^([a-z]+(?:-[a-z]+)+-\d+)", instance["zone"])
            instance["region"] = region.group(1) if region else None
        return instance

    def _cloud_node_controller(self):
        if not self.cloud_provider or not self._aws_ccm_running():
            return
        for key, node in list(self.objects.items()):
            if key[1] != "nodes" or not any(taint.get("key") == UNINITIALIZED_TAINT for taint in (node.get("spec") or {}).get("taints") or []):
                continue
            instance = self._cloud_instance(node["metadata"]["name"])
            if not instance:
                continue
            updated = copy.deepcopy(node)
            spec, labels = updated.setdefault("spec", {}), updated["metadata"].setdefault("labels", {})
            spec["providerID"] = instance["provider_id"]
            for stable, beta, value in (("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone", instance["zone"]),
                                        ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region", instance["region"]),
                                        ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type", instance.get("instance_type"))):
                if value:
                    labels[stable] = labels[beta] = value
            spec["taints"] = [taint for taint in spec.get("taints") or [] if taint.get("key") != UNINITIALIZED_TAINT]
            if not spec["taints"]:
                spec.pop("taints")
            self._set(key, updated)

    def _workloads(self):
        ready_nodes = [node for key, node in self.objects.items() if key[1] == "nodes"
                       and any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", []))]
        node_count = len([key for key in self.objects if key[1] == "nodes"])
        for key, obj in list(self.objects.items()):
            if key[0] != "apps" or key[1] not in ("deployments", "daemonsets", "statefulsets", "replicasets"):
                continue
            updated = copy.deepcopy(obj)
            generation = updated["metadata"].get("generation", 1)
            if key[1] == "daemonsets":
                # DaemonSet pods run on NotReady nodes (the CNI itself is one), so they count every node
                updated["status"] = {"currentNumberScheduled": node_count, "desiredNumberScheduled": node_count, "numberAvailable": node_count,
                                     "numberMisscheduled": 0, "numberReady": node_count, "observedGeneration": generation,
                                     "updatedNumberScheduled": node_count}
            else:
                wanted = (updated.get("spec") or {}).get("replicas", 1)
                ready = wanted if ready_nodes else 0
                status = {"observedGeneration": generation, "replicas": wanted, "updatedReplicas": wanted, "readyReplicas": ready,
                          "availableReplicas": ready}
                if wanted - ready:
                    status["unavailableReplicas"] = wanted - ready
                if key[1] == "deployments":
                    status["conditions"] = [{"type": "Available", "status": "True" if ready == wanted else "False",
                                             "reason": "MinimumReplicasAvailable" if ready == wanted else "MinimumReplicasUnavailable"}]
                for field in ("readyReplicas", "availableReplicas"):
                    if not status[field]:
                        status.pop(field)
                updated["status"] = status
            self._set(key, updated)

    def _crds(self):
        for key, crd in list(self.objects.items()):
            if key[1] != "customresourcedefinitions":
                continue
            updated = copy.deepcopy(crd)
            updated["status"] = {"acceptedNames": updated["spec"]["names"], "storedVersions": [
                version["name"] for version in updated["spec"].get("versions") or [] if version.get("storage")],
                "conditions": [{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                               {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]}
            self._set(key, updated)

    def cluster_version(self):
        """The control plane's version: kubeadm-config's kubernetesVersion once kubeadm wrote it (init, upgrade apply)."""
        with self.lock:
            config_map = self.objects.get(("", "configmaps", "kube-system", "kubeadm-config"))
        try:
            stored = stand_in_yaml.load(config_map["data"]["ClusterConfiguration"])
            stand_in_lib.parse_version(stored["kubernetesVersion"])
            return stored["kubernetesVersion"]
        except (TypeError, KeyError, ValueError):
            return self.version

    # -- users --------------------------------------------------------------------------
    def node_token(self, node_name):
        # the node name travels in the token (base32), the HMAC proves the emulator issued it
        signature = hmac.new(self.node_secret, node_name.encode(), hashlib.sha256).hexdigest()[:40]
        return "node-%s-%s" % (signature, base64.b32encode(node_name.encode()).decode().rstrip("=").lower())

    def authenticate(self, header):
        """(user, groups) of an Authorization header; ApiProblem 401 for a token nobody issued."""
        if not header:
            return "system:anonymous", ["system:unauthenticated"]
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise ApiProblem(401, "Unauthorized", "Unauthorized")
        token = token.strip()
        if hmac.compare_digest(token, self.admin_token):
            return "kubernetes-admin", ["system:masters", "system:authenticated"]
        with self.lock:
            secret = self.valid_token(token)
            if secret:
                groups = (self._decoded(secret, "auth-extra-groups") or "").split(",")
                return "system:bootstrap:" + token[:6], ["system:bootstrappers"] + [group for group in groups if group] + ["system:authenticated"]
        match = re.match(r"^node-[0-9a-f]{40}-([a-z2-7]+)$", token)
        if match:
            encoded = match.group(1).upper()
            name = base64.b32decode(encoded + "=" * (-len(encoded) % 8)).decode()
            if hmac.compare_digest(token, self.node_token(name)):
                return "system:node:" + name, ["system:nodes", "system:authenticated"]
        raise ApiProblem(401, "Unauthorized", "Unauthorized")


# -- authorization: what RBAC gives the non-admin users during a kubeadm join --------------------------------
def authorize(user, groups, method, target):
    """None when allowed, else the Forbidden message."""
    if "system:masters" in groups:
        return None
    verbs = {"GET": "list" if target.get("name") is None else "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method, method.lower())
    kind, namespace, name = target.get("plural"), target.get("namespace"), target.get("name")
    if target.get("nonresource"):
        path = target["nonresource"]
        if path in ("/version", "/healthz", "/readyz", "/livez") or (path.startswith(("/api", "/apis")) and "system:authenticated" in groups):
            return None
    elif kind == "configmaps" and namespace == "kube-public" and name == "cluster-info" and verb == "get":
        return None
    elif "system:bootstrappers" in groups:
        allowed = (kind == "configmaps" and namespace == "kube-system" and name in ("kubeadm-config", "kubelet-config", "kube-proxy") and verb == "get") or \
            (kind == "secrets" and namespace == "kube-system" and name == "kubeadm-certs" and verb == "get") or \
            (kind == "nodes" and verb in ("get", "create", "patch", "update")) or \
            (kind == "certificatesigningrequests" and verb in ("create", "get", "list")) or target.get("stand_in") == "node-credentials"
        if allowed:
            return None
    elif "system:nodes" in groups:
        own_node = user == "system:node:%s" % name
        if verb in ("get", "list") or (kind == "nodes" and own_node) or (kind in ("leases", "events") and verb in ("create", "update", "patch")):
            return None
    if target.get("nonresource"):
        return 'forbidden: User "%s" cannot %s path "%s"' % (user, method.lower(), target["nonresource"])
    scope = ' in the namespace "%s"' % namespace if namespace else " at the cluster scope"
    return '%s "%s" is forbidden: User "%s" cannot %s resource "%s" in API group "%s"%s' % (
        kind, name or "", user, verb, kind, target.get("group", ""), scope)


# -- HTTP ----------------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-emulator"

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass

    @property
    def store(self):
        return self.server.store

    def _send(self, code, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            pass
        try:
            return stand_in_yaml.load(raw.decode("utf-8"))
        except (stand_in_yaml.YamlError, UnicodeDecodeError):
            raise ApiProblem(400, "BadRequest", "the request body could not be decoded as JSON or YAML")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method):
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        user, code = "?", 500
        body = None
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH") else None
            user, groups = self.store.authenticate(self.headers.get("Authorization"))
            self.store.reconcile()
            code, response = self._route(method, unquote(url.path), query, body, user, groups)
        except ApiProblem as problem:
            code, response = problem.code, problem.status()
        except Exception as error:  # answer like an apiserver would rather than dropping the connection
            code, response = 500, ApiProblem(500, "InternalError", "emulator error: %r" % error).status()
        with self.store.lock:
            self.store.request_log.append({"time": time.time(), "method": method, "path": url.path, "query": query, "user": user,
                                           "status": code, "content_type": self.headers.get("Content-Type"),
                                           "field_manager": query.get("fieldManager"), "write": method in WRITE_METHODS})
        self._send(code, response)

    # -- routing ----------------------------------------------------------------------------
    def _route(self, method, path, query, body, user, groups):
        parts = [part for part in path.split("/") if part]
        if not parts:
            raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
        if path.startswith("/stand-in/"):
            return self._stand_in(method, path, body, user, groups)
        if path in ("/healthz", "/readyz", "/livez", "/version") or (parts[0] in ("api", "apis") and self._is_discovery(parts)):
            problem = authorize(user, groups, method, {"nonresource": path})
            if problem:
                raise ApiProblem(403, "Forbidden", problem)
            return self._discovery(path, parts)
        target = self._target(parts)
        problem = authorize(user, groups, method, target)
        if problem:
            raise ApiProblem(403, "Forbidden", problem, {"name": target.get("name") or "", "kind": target["plural"]})
        return self._resource_request(method, target, query, body)

    def _is_discovery(self, parts):
        if parts[0] == "api":
            return len(parts) <= 2
        return len(parts) <= 3

    def _discovery(self, path, parts):
        store = self.store
        if path in ("/healthz", "/readyz", "/livez"):
            return 200, "ok"
        if path == "/version":
            return 200, stand_in_lib.version_info(store.cluster_version())
        with store.lock:
            if parts == ["api"]:
                return 200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % self.server.server_address[:2]}]}
            if parts == ["apis"]:
                groups = []
                for name, versions in sorted(store.groups().items()):
                    ordered = sorted(versions, reverse=True)
                    entries = [{"groupVersion": "%s/%s" % (name, version), "version": version} for version in ordered]
                    groups.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            if parts[0] == "api" and len(parts) == 2:
                if parts[1] != "v1":
                    raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
                group, version = "", "v1"
            elif len(parts) == 2:
                versions = store.groups().get(parts[1])
                if not versions:
                    raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
                entries = [{"groupVersion": "%s/%s" % (parts[1], version), "version": version} for version in sorted(versions, reverse=True)]
                return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1], "versions": entries, "preferredVersion": entries[0]}
            else:
                group, version = parts[1], parts[2]
            resources = [resource for resource in store.resources.values() if resource.group == group and resource.version == version]
            if not resources:
                raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
            listed = [entry for resource in sorted(resources, key=lambda item: item.plural) for entry in resource.discovery()]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "%s/%s" % (group, version) if group else version,
                         "resources": listed}

    def _target(self, parts):
        """Which resource, namespace, name and subresource a resource path names."""
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        store = self.store
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in store.resources and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        resource = store.resource(group, version, plural)
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource and subresource not in resource.subresources:
            raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
        if resource.namespaced and name and not namespace:
            raise ApiProblem(404, "NotFound", "the server could not find the requested resource")
        return {"resource": resource, "group": group, "plural": plural, "namespace": namespace, "name": name, "subresource": subresource}

    def _resource_request(self, method, target, query, body):
        store, resource = self.store, target["resource"]
        namespace, name, subresource = target["namespace"], target["name"], target["subresource"]
        dry_run = query.get("dryRun") == "All"
        if method == "GET" and query.get("watch") in ("true", "1"):
            raise ApiProblem(405, "MethodNotAllowed", "the emulator does not serve watches; poll instead")
        if method == "GET" and name:
            return 200, store.get(resource, namespace, name)
        if method == "GET":
            with store.lock:
                items = store.list(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
                return 200, {"kind": resource.list_kind, "apiVersion": resource.group_version,
                             "metadata": {"resourceVersion": str(store.revision)}, "items": copy.deepcopy(items)}
        if method == "POST" and subresource == "eviction":
            with store.lock:
                store.check_disruption_budgets(namespace, store.get(resource, namespace, name))
                store.delete(resource, namespace, name, dry_run)
            return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
        if method == "POST":
            if not isinstance(body, dict):
                raise ApiProblem(400, "BadRequest", "the body of the request must be an object")
            return 201, store.create(resource, namespace, body, dry_run)
        if method == "PUT":
            return 200, store.replace(resource, namespace, name, body or {}, subresource, dry_run)
        if method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            return 200, store.patch(resource, namespace, name, content_type, body, subresource, dry_run, query.get("fieldManager"))
        if method == "DELETE" and name:
            deleted = store.delete(resource, namespace, name, dry_run)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": resource.group, "kind": resource.plural, "uid": deleted["metadata"].get("uid")}}
        if method == "DELETE":
            with store.lock:
                items = store.list(resource, namespace, query.get("labelSelector"), query.get("fieldSelector"))
                for item in list(items):
                    store.delete(resource, item["metadata"].get("namespace"), item["metadata"]["name"], dry_run)
                return 200, {"kind": resource.list_kind, "apiVersion": resource.group_version, "metadata": {}, "items": items}
        raise ApiProblem(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _stand_in(self, method, path, body, user, groups):
        store = self.store
        if path == "/stand-in/node-credentials" and method == "POST":
            if "system:bootstrappers" not in groups and "system:masters" not in groups:
                raise ApiProblem(403, "Forbidden", "only a bootstrap token or the admin may ask for node credentials")
            name = (body or {}).get("nodeName")
            if not name:
                raise ApiProblem(400, "BadRequest", "nodeName is required")
            return 201, {"token": store.node_token(name), "user": "system:node:" + name}
        if "system:masters" not in groups:
            raise ApiProblem(403, "Forbidden", "the stand-in endpoints need the admin token")
        if path == "/stand-in/objects" and method == "GET":
            with store.lock:
                return 200, {"items": copy.deepcopy(list(store.objects.values())), "resourceVersion": str(store.revision)}
        if path == "/stand-in/requests" and method == "GET":
            with store.lock:
                return 200, {"items": list(store.request_log)}
        if path.startswith("/stand-in/etcd/members"):
            return self._etcd_members(method, path, body)
        if path == "/stand-in/kubelet-faults":
            return self._kubelet_faults(method, body)
        raise ApiProblem(404, "NotFound", "no such stand-in endpoint")

    def _kubelet_faults(self, method, body):
        """The test fault that keeps the next Nodes to register NotReady (see the module's docstring)."""
        store = self.store
        with store.lock:
            if method == "PUT":
                count = (body or {}).get("not_ready_registrations")
                if not isinstance(count, int) or count < 0:
                    raise ApiProblem(400, "BadRequest", "not_ready_registrations must be an integer >= 0")
                store.kubelet_faults.update(not_ready_registrations=count, message=str((body or {}).get("message") or ""))
            elif method == "DELETE":
                store.kubelet_faults = {"not_ready_registrations": 0, "message": "", "nodes": []}
            elif method != "GET":
                raise ApiProblem(405, "MethodNotAllowed", "GET, PUT or DELETE")
            return 200, copy.deepcopy(store.kubelet_faults)

    def _etcd_members(self, method, path, body):
        """Stacked etcd's members: GET the list, POST {name, peerURLs} (kubeadm's member add), DELETE .../<hex id>."""
        store = self.store
        with store.lock:
            if path == "/stand-in/etcd/members" and method == "GET":
                return 200, {"members": copy.deepcopy(store.etcd_members)}
            if path == "/stand-in/etcd/members" and method == "POST":
                peer_urls = list((body or {}).get("peerURLs") or [])
                if any(url in member["peerURLs"] for member in store.etcd_members for url in peer_urls):
                    raise ApiProblem(409, "AlreadyExists", "etcdserver: Peer URLs already exists")
                member = {"ID": int.from_bytes(os.urandom(8), "big") >> 1, "name": (body or {}).get("name") or "", "peerURLs": peer_urls,
                          "clientURLs": list((body or {}).get("clientURLs") or [])}
                store.etcd_members.append(member)
                return 201, copy.deepcopy(member)
            if path.startswith("/stand-in/etcd/members/") and method == "DELETE":
                wanted = path.rsplit("/", 1)[1]
                kept = [member for member in store.etcd_members if "%x" % member["ID"] != wanted.lower()]
                if len(kept) == len(store.etcd_members):
                    raise ApiProblem(404, "NotFound", "etcdserver: member not found")
                store.etcd_members[:] = kept
                return 200, {"removed": wanted}
        raise ApiProblem(404, "NotFound", "no such stand-in endpoint")


class KubeApiEmulator:
    """The emulator on host:port with the given serving certificate, in a background thread.

        with KubeApiEmulator("198.18.2.1", 6443, cert, key, admin_token="...", ca_pem=ca) as api:
            api.objects(kind="Node")

    ``cloud_provider`` is the cloud as the AWS cloud controller manager would see it: a callable taking a
    Node name and answering None (no such instance: the Node stays uninitialized) or its provider id
    "aws:///<zone>/<instance-id>", or a dict {"provider_id", "zone", "region", "instance_type"} (zone and
    region default to what the provider id says, instance_type to no label). Without it no Node is ever
    initialised, whatever runs in the cluster.
    """

    def __init__(self, host, port, cert_file, key_file, admin_token=None, version="v1.31.4", ca_pem="", cloud_provider=None):
        self.store = Store(version=version, admin_token=admin_token, cloud_provider=cloud_provider)
        self.store.ca_pem = ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem
        for (group, plural, namespace, name), obj in list(self.store.objects.items()):
            if plural == "configmaps" and name == "kube-root-ca.crt":
                obj["data"]["ca.crt"] = self.store.ca_pem
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.store = self.store
        self.thread = None

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return "https://%s:%d" % (host, port)

    @property
    def admin_token(self):
        return self.store.admin_token

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name="kube-api-emulator", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- test helpers ------------------------------------------------------------------------
    def objects(self, kind=None, namespace=None, name=None):
        """Copies of the stored objects (after the controllers ran), filtered by kind / namespace / name."""
        self.store.reconcile()
        with self.store.lock:
            found = [obj for obj in self.store.objects.values()
                     if (kind is None or obj["kind"] == kind) and (namespace is None or obj["metadata"].get("namespace") == namespace)
                     and (name is None or obj["metadata"]["name"] == name)]
            return copy.deepcopy(sorted(found, key=lambda obj: (obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])))

    def object(self, kind, name, namespace=None):
        found = self.objects(kind, namespace, name)
        return found[0] if found else None

    def requests(self, writes_only=False, since=0.0):
        with self.store.lock:
            return [dict(entry) for entry in self.store.request_log if entry["time"] >= since and (entry["write"] or not writes_only)]

    def clear_requests(self):
        with self.store.lock:
            self.store.request_log.clear()

    def reset(self, version=None):
        """A fresh API state: no objects but the defaults; the same address, CA, admin token and cloud."""
        store = self.store
        with store.lock:
            store.__init__(version=version or store.version, admin_token=store.admin_token, cloud_provider=store.cloud_provider)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--listen", default="127.0.0.1:6443")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", default=None)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--version", default="v1.31.4")
    args = parser.parse_args(argv)
    host, _sep, port = args.listen.rpartition(":")
    ca_pem = open(args.ca).read() if args.ca else ""
    emulator = KubeApiEmulator(host, int(port), args.cert, args.key, args.admin_token, args.version, ca_pem)
    print("kube API emulator on %s" % emulator.url, flush=True)
    try:
        emulator.server.serve_forever()
    except KeyboardInterrupt:
        emulator.server.server_close()


if __name__ == "__main__":
    main()
