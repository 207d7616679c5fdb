# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubectl stand-in: version, get, apply (server-side), create, delete, label, taint, cordon,
uncordon, drain and wait against the API emulator, with the kubeconfig kubectl would use. Other
subcommands fail with "not implemented" so that a role that starts using one is noticed."""

import json
import os
import re
import sys
import time

import stand_in_lib as lib
import stand_in_yaml
from stand_in_lib import StandInError

FLAGS = {name: "str" for name in ("kubeconfig", "namespace", "output", "context", "selector", "field-manager", "dry-run", "timeout", "for",
                                  "grace-period", "request-timeout", "field-selector", "v", "server", "token", "certificate-authority", "type")}
FLAGS.update({"filename": "list", "client": "bool", "all-namespaces": "bool", "server-side": "bool", "force-conflicts": "bool", "ignore-daemonsets": "bool",
              "delete-emptydir-data": "bool", "force": "bool", "ignore-not-found": "bool", "overwrite": "bool", "all": "bool", "help": "bool",
              "wait": "bool", "insecure-skip-tls-verify": "bool", "recursive": "bool", "show-labels": "bool", "no-headers": "bool"})
ALIASES = {"n": "namespace", "o": "output", "l": "selector", "A": "all-namespaces", "f": "filename", "h": "help", "R": "recursive"}


class Kubectl:
    def __init__(self, flags, version, output):
        self.flags = flags
        self.version = version
        self.output = output
        path = flags.get("kubeconfig") or (os.environ.get("KUBECONFIG") or "").split(":")[0] or os.path.expanduser("~/.kube/config")
        self.kubeconfig = path
        self._client = None
        self._resources = None

    @property
    def client(self):
        if self._client is None:
            if not os.path.exists(self.kubeconfig):
                raise StandInError("The connection to the server localhost:8080 was refused - did you specify the right host or port?")
            self._client = lib.client_from_kubeconfig(self.kubeconfig)
        return self._client

    def resources(self):
        if self._resources is None:
            self._resources = []
            groups = [("", "v1", "/api/v1")]
            for group in self.client.request("GET", "/apis")["groups"]:
                preferred = group["preferredVersion"]["version"]
                groups.append((group["name"], preferred, "/apis/%s/%s" % (group["name"], preferred)))
            for group, version, path in groups:
                for resource in self.client.request("GET", path)["resources"]:
                    if "/" not in resource["name"]:
                        self._resources.append(dict(resource, group=group, version=version))
        return self._resources

    def resolve(self, text):
        name, _sep, group = text.lower().partition(".")
        for resource in self.resources():
            names = {resource["name"], resource.get("singularName") or "", resource["kind"].lower()} | set(resource.get("shortNames") or [])
            if name in names and (not group or resource["group"].startswith(group)):
                return resource
        raise StandInError('error: the server doesn\'t have a resource type "%s"' % text)

    def resolve_kind(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        for resource in self.resources():
            if resource["kind"] == kind and resource["group"] == group:
                return resource
        raise StandInError('error: resource mapping not found for name: "" namespace: "" from "": no matches for kind "%s" in version "%s"\n'
                           "ensure CRDs are installed first" % (kind, api_version))

    def namespace(self):
        return self.flags.get("namespace") or "default"

    def path(self, resource, namespace=None, name=None):
        base = "/api/%s" % resource["version"] if not resource["group"] else "/apis/%s/%s" % (resource["group"], resource["version"])
        if resource["namespaced"] and namespace:
            base += "/namespaces/%s" % namespace
        base += "/" + resource["name"]
        return base + ("/" + name if name else "")

    def print_objects(self, objects, single):
        output = self.flags.get("output") or ""
        if output == "json":
            self.output.print(json.dumps(objects[0] if single else {"apiVersion": "v1", "kind": "List", "items": objects}, indent=4))
        elif output == "yaml":
            self.output.print(stand_in_yaml.dump(objects[0] if single else {"apiVersion": "v1", "kind": "List", "items": objects}).rstrip())
        elif output == "name":
            for obj in objects:
                self.output.print("%s/%s" % (obj["kind"].lower(), obj["metadata"]["name"]))
        elif output.startswith("jsonpath="):
            self.output.print(jsonpath(objects[0] if single else {"items": objects}, output[len("jsonpath="):]))
        elif output in ("", "wide"):
            if not objects:
                self.output.warn("No resources found")
                return
            if objects[0]["kind"] == "Node":
                self.output.print("NAME   STATUS   ROLES   AGE   VERSION")
                for obj in objects:
                    ready = next((c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), "Unknown")
                    labels = obj["metadata"].get("labels", {})
                    roles = ",".join(sorted(label.split("/", 1)[1] for label in labels if label.startswith("node-role.kubernetes.io/")))
                    status = "Ready" if ready == "True" else "NotReady"
                    if obj.get("spec", {}).get("unschedulable"):
                        status += ",SchedulingDisabled"
                    version = obj.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
                    self.output.print("%s   %s   %s   1m   %s" % (obj["metadata"]["name"], status, roles or "<none>", version))
            else:
                self.output.print("NAME")
                for obj in objects:
                    self.output.print(obj["metadata"]["name"])
        else:
            raise StandInError('error: unable to match a printer suitable for the output format "%s"' % output)


def jsonpath(obj, template):
    """A subset of kubectl's JSONPath: {.a.b}, {.items[*].x}, {.items[0].x}, literal text around them."""
    def walk(values, path):
        for part in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path):
            nxt = []
            for value in values:
                if part == "[*]":
                    nxt.extend(value if isinstance(value, list) else (value.values() if isinstance(value, dict) else []))
                elif part.startswith("["):
                    index = int(part[1:-1])
                    if isinstance(value, list) and -len(value) <= index < len(value):
                        nxt.append(value[index])
                elif isinstance(value, dict) and part in value:
                    nxt.append(value[part])
            values = nxt
        return values

    def render(match):
        values = walk([obj], match.group(1).strip().lstrip("."))
        return " ".join(json.dumps(value) if isinstance(value, (dict, list)) else ("true" if value is True else "false" if value is False else str(value))
                        for value in values)

    return re.sub(r"\{([^}]*)\}", render, template)


def read_manifests(paths):
    documents = []
    for path in paths:
        files = [path]
        if path == "-":
            text = sys.stdin.read()
            documents += [doc for doc in stand_in_yaml.load_all(text) if doc]
            continue
        if os.path.isdir(path):
            files = sorted(os.path.join(path, name) for name in os.listdir(path) if name.endswith((".yaml", ".yml", ".json")))
        for file in files:
            try:
                text = lib.read_text(file)
            except OSError:
                raise StandInError('error: the path "%s" does not exist' % file)
            try:
                loaded = [json.loads(text)] if file.endswith(".json") else stand_in_yaml.load_all(text)
            except (ValueError, stand_in_yaml.YamlError) as error:
                raise StandInError("error: error parsing %s: %s" % (file, error))
            for document in loaded:
                if isinstance(document, dict) and document.get("kind", "").endswith("List") and "items" in document:
                    documents += document["items"]
                elif document:
                    documents.append(document)
    return documents


def cmd_get(k, args):
    if not args:
        raise StandInError("You must specify the type of resource to get.")
    kind, _sep, name = args[0].partition("/")
    names = [name] if name else args[1:]
    resource = k.resolve(kind)
    namespace = None if k.flags.get("all-namespaces") else k.namespace()
    if names:
        objects = []
        for item in names:
            try:
                objects.append(k.client.request("GET", k.path(resource, namespace, item)))
            except lib.ApiError as error:
                if error.status == 404 and k.flags.get("ignore-not-found"):
                    continue
                raise StandInError("Error from server (%s): %s" % (error.body.get("reason", "Error"), error))
        k.print_objects(objects, len(names) == 1 and len(objects) == 1)
        return 0
    query = {}
    if k.flags.get("selector"):
        query["labelSelector"] = k.flags.get("selector")
    if k.flags.get("field-selector"):
        query["fieldSelector"] = k.flags.get("field-selector")
    items = k.client.request("GET", k.path(resource, namespace), query=query)["items"]
    k.print_objects(items, False)
    return 0


def apply_one(k, document, server_side, create_only):
    resource = k.resolve_kind(document.get("apiVersion", ""), document.get("kind", ""))
    metadata = document.setdefault("metadata", {})
    namespace = (metadata.get("namespace") or k.namespace()) if resource["namespaced"] else None
    if resource["namespaced"]:
        metadata["namespace"] = namespace
    name = metadata.get("name")
    label = "%s/%s" % (resource["kind"].lower() if not resource["group"] else "%s.%s" % (resource["kind"].lower(), resource["group"]), name)
    if create_only:
        try:
            k.client.request("POST", k.path(resource, namespace), document)
        except lib.ApiError as error:
            raise StandInError("Error from server (%s): error when creating: %s" % (error.body.get("reason", "Error"), error))
        k.output.print("%s created" % label)
        return
    before = k.client.get(k.path(resource, namespace, name), missing_ok=True)
    query = {"fieldManager": k.flags.get("field-manager") or ("kubectl" if server_side else "kubectl-client-side-apply")}
    if k.flags.get("force-conflicts"):
        query["force"] = "true"
    after = k.client.request("PATCH", k.path(resource, namespace, name), document, "application/apply-patch+yaml", query)
    if before is None:
        state = "created"
    elif before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]:
        state = "unchanged"
    else:
        state = "serverside-applied" if server_side else "configured"
    k.output.print("%s %s" % (label, state))


def cmd_apply(k, args, create_only=False):
    if not k.flags.get("filename"):
        raise StandInError("error: must specify one of -f and -k")
    for document in read_manifests(k.flags.get("filename")):
        apply_one(k, document, k.flags.get("server-side"), create_only)
    return 0


def cmd_delete(k, args):
    targets = []
    if k.flags.get("filename"):
        for document in read_manifests(k.flags.get("filename")):
            resource = k.resolve_kind(document.get("apiVersion", ""), document.get("kind", ""))
            targets.append((resource, document["metadata"].get("namespace") or k.namespace(), document["metadata"]["name"]))
    elif args:
        kind, _sep, name = args[0].partition("/")
        resource = k.resolve(kind)
        for item in ([name] if name else args[1:]):
            targets.append((resource, k.namespace(), item))
    else:
        raise StandInError("error: You must provide one or more resources by argument or filename.")
    for resource, namespace, name in targets:
        try:
            k.client.request("DELETE", k.path(resource, namespace if resource["namespaced"] else None, name))
            k.output.print('%s "%s" deleted' % (resource["kind"].lower(), name))
        except lib.ApiError as error:
            if error.status == 404 and k.flags.get("ignore-not-found"):
                continue
            raise StandInError("Error from server (%s): %s" % (error.body.get("reason", "Error"), error))
    return 0


def patch_node(k, name, patch):
    return k.client.request("PATCH", "/api/v1/nodes/%s" % name, patch, "application/merge-patch+json")


def cmd_cordon(k, args, unschedulable=True):
    for name in args:
        node = k.client.request("GET", "/api/v1/nodes/%s" % name)
        word = "cordoned" if unschedulable else "uncordoned"
        if bool(node.get("spec", {}).get("unschedulable")) == unschedulable:
            k.output.print("node/%s already %s" % (name, word))
            continue
        patch_node(k, name, {"spec": {"unschedulable": True if unschedulable else None}})
        k.output.print("node/%s %s" % (name, word))
    return 0


def cmd_drain(k, args):
    if not args:
        raise StandInError("error: USAGE: drain NODE [flags]")
    cmd_cordon(k, args[:1])
    pods = k.client.request("GET", "/api/v1/pods", query={"fieldSelector": "spec.nodeName=%s" % args[0]})["items"]
    for pod in pods:
        owners = pod["metadata"].get("ownerReferences") or []
        if any(owner.get("kind") == "DaemonSet" for owner in owners):
            if not k.flags.get("ignore-daemonsets"):
                raise StandInError("error: unable to drain node %r due to error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
                                   % args[0])
            continue
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        k.client.request("POST", "/api/v1/namespaces/%s/pods/%s/eviction" % (namespace, name),
                         {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}})
        k.output.print("pod/%s evicted" % pod["metadata"]["name"])
    k.output.print("node/%s drained" % args[0])
    return 0


def cmd_label(k, args):
    if len(args) < 3:
        raise StandInError("error: one or more resources must be specified as <resource> <name> or <resource>/<name>")
    resource = k.resolve(args[0])
    obj = k.client.request("GET", k.path(resource, k.namespace() if resource["namespaced"] else None, args[1]))
    labels = {}
    for item in args[2:]:
        if item.endswith("-"):
            labels[item[:-1]] = None
            continue
        key, _sep, value = item.partition("=")
        if key in (obj["metadata"].get("labels") or {}) and obj["metadata"]["labels"][key] != value and not k.flags.get("overwrite"):
            raise StandInError("error: '%s' already has a value (%s), and --overwrite is false" % (key, obj["metadata"]["labels"][key]))
        labels[key] = value
    k.client.request("PATCH", k.path(resource, k.namespace() if resource["namespaced"] else None, args[1]), {"metadata": {"labels": labels}},
                     "application/merge-patch+json")
    k.output.print("%s/%s labeled" % (resource["kind"].lower(), args[1]))
    return 0


def cmd_taint(k, args):
    if len(args) < 3 or k.resolve(args[0])["kind"] != "Node":
        raise StandInError("error: the stand-in taints nodes only: kubectl taint nodes NAME KEY[=VALUE]:EFFECT[-]")
    node = k.client.request("GET", "/api/v1/nodes/%s" % args[1])
    taints = list(node.get("spec", {}).get("taints") or [])
    for item in args[2:]:
        remove = item.endswith("-")
        item = item.rstrip("-")
        key_value, _sep, effect = item.partition(":")
        key, _sep, value = key_value.partition("=")
        taints = [taint for taint in taints if not (taint["key"] == key and (not effect or taint.get("effect") == effect))]
        if not remove:
            taint = {"key": key, "effect": effect}
            if value:
                taint["value"] = value
            taints.append(taint)
    patch_node(k, args[1], {"spec": {"taints": taints or None}})
    k.output.print("node/%s %s" % (args[1], "untainted" if all(item.endswith("-") for item in args[2:]) else "tainted"))
    return 0


def cmd_wait(k, args):
    condition = k.flags.get("for") or ""
    match = re.match(r"^condition=([^=]+)(?:=(.*))?$", condition)
    if not match:
        raise StandInError("error: the stand-in supports --for=condition=NAME[=VALUE] only")
    wanted_type, wanted = match.group(1), match.group(2) or "True"
    timeout = lib.stand_in_schema.parse_duration(k.flags.get("timeout") or "30s")
    kind, _sep, name = (args[0] if args else "").partition("/")
    resource = k.resolve(kind)
    deadline = time.time() + timeout
    while True:
        namespace = k.namespace() if resource["namespaced"] else None
        if name or (len(args) > 1):
            objects = [k.client.request("GET", k.path(resource, namespace, name or args[1]))]
        else:
            query = {"labelSelector": k.flags.get("selector")} if k.flags.get("selector") else None
            objects = k.client.request("GET", k.path(resource, namespace), query=query)["items"]
        pending = [obj for obj in objects
                   if not any(c.get("type") == wanted_type and c.get("status") == wanted for c in obj.get("status", {}).get("conditions") or [])]
        if objects and not pending:
            for obj in objects:
                k.output.print("%s/%s condition met" % (resource["kind"].lower(), obj["metadata"]["name"]))
            return 0
        if time.time() >= deadline:
            names = ", ".join("%s/%s" % (resource["name"], obj["metadata"]["name"]) for obj in pending) or resource["name"]
            raise StandInError("error: timed out waiting for the condition on %s" % names)
        time.sleep(1)


def cmd_version(k, args):
    info = lib.version_info(k.version)
    output = k.flags.get("output") or ""
    server = None
    if not k.flags.get("client"):
        server = k.client.request("GET", "/version")
    if output == "json":
        body = {"clientVersion": info, "kustomizeVersion": "v5.4.2"}
        if server:
            body["serverVersion"] = server
        k.output.print(json.dumps(body, indent=2))
    elif output == "yaml":
        body = {"clientVersion": info, "kustomizeVersion": "v5.4.2"}
        if server:
            body["serverVersion"] = server
        k.output.print(stand_in_yaml.dump(body).rstrip())
    else:
        k.output.print("Client Version: %s\nKustomize Version: v5.4.2" % k.version)
        if server:
            k.output.print("Server Version: %s" % server["gitVersion"])
    return 0


COMMANDS = {"get": cmd_get, "apply": cmd_apply, "create": lambda k, args: cmd_apply(k, args, True), "delete": cmd_delete, "cordon": cmd_cordon,
            "uncordon": lambda k, args: cmd_cordon(k, args, False), "drain": cmd_drain, "label": cmd_label, "taint": cmd_taint, "wait": cmd_wait,
            "version": cmd_version}


def handle(argv, version, output):
    flags = lib.Flags({"flags": FLAGS, "aliases": ALIASES}, argv, "kubectl")
    if not flags.positional:
        output.print("kubectl stand-in (kubecluster.aws tests): %s" % ", ".join(sorted(COMMANDS)))
        return 0
    command = COMMANDS.get(flags.positional[0])
    if command is None:
        raise StandInError("stand-in: `kubectl %s` is not implemented by the kubectl stand-in (implemented: %s)"
                           % (flags.positional[0], ", ".join(sorted(COMMANDS))))
    kubectl = Kubectl(flags, version, output)
    try:
        return command(kubectl, flags.positional[1:])
    except lib.ApiError as error:
        raise StandInError("Error from server (%s): %s" % ((error.body or {}).get("reason", "Error"), error))


def main(baked_version=None):
    return lib.run_main("kubectl", baked_version, handle)
