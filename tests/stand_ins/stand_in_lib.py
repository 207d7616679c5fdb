# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the kubeadm, kubelet and kubectl stand-ins share: host settings, call records, the API
client, kubeconfigs, config-file loading and validation, tokens and keys. Standard library only.

Host settings come from ``<dir>/config.json``, where <dir> is $KUBECLUSTER_STAND_IN_DIR or
/etc/kubecluster-stand-in (the node test fixtures write it on every test host):

    {"kubernetes_version": "v1.31.4",            # used when the binary carries no version
     "ca_cert": ".../ca.crt", "ca_key": ".../ca.key",   # the cluster CA = the API emulator's CA
     "admin_token": "...",                       # the bearer token admin.conf carries
     "root": "/",                                # prefix for every file the stand-ins write
     "node_ip": "198.18.2.11",                   # optional: the node's InternalIP
     "kubelet_health_timeout": 40,               # seconds kubeadm waits for the kubelet's healthz
     "systemctl": true,                          # restart / stop kubelet.service like kubeadm
     "require_root": true}

Unit tests point $KUBECLUSTER_STAND_IN_DIR at a temp dir with root set to that dir, systemctl
false and kubelet_health_timeout 0, so nothing outside the temp dir is touched.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time

import stand_in_schema
import stand_in_yaml

DEFAULT_DIR = "/etc/kubecluster-stand-in"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
CERTS_SECRET = "kubeadm-certs"
CERTS_TTL_SECONDS = 2 * 3600
# flags kubeadm accepts next to --config (cmd/kubeadm/app/apis/kubeadm/validation: isAllowedFlag)
FLAGS_ALLOWED_WITH_CONFIG = {"ignore-preflight-errors", "dry-run", "kubeconfig", "node-name", "kubeconfig-dir", "upload-certs",
                             "print-join-command", "rootfs", "v", "log-file", "config"}


class StandInError(Exception):
    """A failure reported the way kubeadm reports it: message on stderr, exit code 1."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


# -- host settings and paths --------------------------------------------------------------------
def settings_dir():
    return os.environ.get("KUBECLUSTER_STAND_IN_DIR", DEFAULT_DIR)


def settings():
    path = os.path.join(settings_dir(), "config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        data = {}
    data.setdefault("root", "/")
    data.setdefault("kubelet_health_timeout", 40)
    data.setdefault("systemctl", True)
    data.setdefault("require_root", True)
    return data


def host_path(path, config=None):
    """A fixed system path (/etc/kubernetes/...) under the configured root."""
    root = (config or settings())["root"]
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def write_file(path, content, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# -- crashes half way and stacked etcd ---------------------------------------------------------------
CRASH_FILE = "crash-after"
ETCD_PEER_PORT = 2380


def crash_after(command, phase):
    """A crash half way, for tests: <settings dir>/crash-after holding "<command> <phase>" (e.g. "join kubelet-start")
    makes the kubeadm stand-in exit non-zero right after that phase, once (it removes the file), leaving what a
    kubeadm killed there leaves."""
    path = os.path.join(settings_dir(), CRASH_FILE)
    try:
        wanted = read_text(path).split()
    except OSError:
        return
    if wanted == [command, phase]:
        os.remove(path)
        raise StandInError("stand-in: stopped right after phase %s of kubeadm %s, as %s asked (a crash half way)" % (phase, command, path))


def etcd_peer_url(address):
    return "https://%s:%d" % (address, ETCD_PEER_PORT)


def etcd_client(config=None):
    """The API emulator, which keeps stacked etcd's member list, with the admin token: the server of this host's
    admin.conf, else of its kubelet.conf. None when neither exists."""
    config = config or settings()
    for name in ("admin.conf", "kubelet.conf"):
        path = host_path("/etc/kubernetes/" + name, config)
        if os.path.exists(path):
            server, ca_pem, _token = read_kubeconfig(path)
            return ApiClient(server, ca_pem, config.get("admin_token"))
    return None


# -- versions -------------------------------------------------------------------------------------
def parse_version(text):
    """(major, minor, patch) of "v1.31.4" / "1.31.4"; ValueError otherwise."""
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]*)?$", str(text))
    if not match:
        raise ValueError('couldn\'t parse version "%s"' % text)
    return tuple(int(part) for part in match.groups()[:3])


def binary_version(baked, script):
    """The Kubernetes version a stand-in binary answers: baked into it by the test, or from the
    stand_in_version file next to it, or from the host settings. Always "vX.Y.Z"."""
    candidates = [baked]
    version_file = os.path.join(os.path.dirname(os.path.realpath(script)), "stand_in_version")
    if os.path.exists(version_file):
        candidates.append(read_text(version_file).strip())
    candidates.append(settings().get("kubernetes_version"))
    for candidate in candidates:
        if candidate:
            major, minor, patch = parse_version(candidate)
            return "v%d.%d.%d" % (major, minor, patch)
    raise StandInError("stand-in: no Kubernetes version: bake one into the binary, write stand_in_version next to it, "
                       "or set kubernetes_version in %s/config.json" % settings_dir())


def version_info(version):
    major, minor, _patch = parse_version(version)
    return {"major": str(major), "minor": str(minor), "gitVersion": version, "gitCommit": "0" * 40, "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64"}


# -- call records -----------------------------------------------------------------------------------
def record_call(binary, argv, exit_code, started, configs=None, stdout="", stderr="", extra=None):
    """Append one JSON line to /var/log/kubecluster-stand-in/calls.jsonl (under the root)."""
    entry = {"binary": binary, "argv": list(argv), "exit_code": exit_code, "time": started,
             "duration": round(time.time() - started, 3), "pid": os.getpid(), "configs": configs or [],
             "stdout": stdout[-4000:], "stderr": stderr[-4000:]}
    entry.update(extra or {})
    path = host_path("/var/log/kubecluster-stand-in/calls.jsonl")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


class Output:
    """stdout / stderr that also keep what was written, for the call record."""

    def __init__(self):
        self.out = []
        self.err = []
        self.configs = []  # the config files a command read: [{"path": ..., "documents": [...]}]

    def print(self, text=""):
        self.out.append(text + "\n")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def warn(self, text):
        self.err.append(text + "\n")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def run_main(binary, baked_version, handler):
    """Run handler(argv, version, output) -> exit code; record the call (with output.configs) either way."""
    started = time.time()
    argv = sys.argv[1:]
    output = Output()
    code = 1
    try:
        version = binary_version(baked_version, sys.argv[0])
        code = handler(argv, version, output)
    except StandInError as error:
        output.warn(str(error))
        code = error.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as error:  # a stand-in bug must still leave a record and a clear message
        import traceback
        output.warn("stand-in %s crashed: %s\n%s" % (binary, error, traceback.format_exc()))
        code = 2
    try:
        record_call(binary, argv, code, started, output.configs, "".join(output.out), "".join(output.err))
    except OSError as error:
        sys.stderr.write("stand-in: could not record the call: %s\n" % error)
    return code


# -- flags ------------------------------------------------------------------------------------------
class Flags:
    """GNU-style flags as cobra parses them: --name=value, --name value, -x value, bool flags."""

    def __init__(self, spec, argv, command):
        self.values = {}
        self.given = []
        self.positional = []
        index = 0
        while index < len(argv):
            arg = argv[index]
            if arg == "--":
                self.positional.extend(argv[index + 1:])
                break
            if arg.startswith("--") or (arg.startswith("-") and len(arg) == 2 and arg != "-"):
                name, has_value, value = arg.lstrip("-").partition("=")
                name = spec.get("aliases", {}).get(name, name)
                if name not in spec["flags"]:
                    raise StandInError("unknown flag: %s\nTo see the stack trace of this error execute with --v=5 or higher" % arg.split("=")[0]
                                       if arg.startswith("--") else "unknown shorthand flag: '%s' in %s" % (arg[1], arg))
                kind = spec["flags"][name]
                if kind == "bool":
                    value = value if has_value else "true"
                    if value not in ("true", "false"):
                        raise StandInError('invalid argument "%s" for "--%s" flag: strconv.ParseBool: parsing "%s": invalid syntax' % (value, name, value))
                    value = value == "true"
                elif not has_value:
                    index += 1
                    if index >= len(argv):
                        raise StandInError("flag needs an argument: --%s" % name)
                    value = argv[index]
                if kind == "list":
                    self.values.setdefault(name, []).extend(part for part in value.split(",") if part)
                else:
                    self.values[name] = value
                self.given.append(name)
            else:
                self.positional.append(arg)
            index += 1
        self.command = command

    def get(self, name, default=None):
        return self.values.get(name, default)

    def __contains__(self, name):
        return name in self.values


def check_mixed_with_config(flags):
    """kubeadm's ValidateMixedArguments: only a few flags may go with --config."""
    if "config" not in flags:
        return
    mixed = [name for name in flags.given if name not in FLAGS_ALLOWED_WITH_CONFIG and not name.startswith("skip-")]
    if mixed:
        raise StandInError("can not mix '--config' with arguments %s\nTo see the stack trace of this error execute with --v=5 or higher"
                           % json.dumps(sorted(set(mixed))).replace('"', "").replace(",", " "))


# -- config files ------------------------------------------------------------------------------------
KUBEADM_GROUP = "kubeadm.k8s.io"


def api_version_problem(api_version, kind, minor):
    """Why kubeadm of this minor (or this project's policy) will not take this apiVersion, else None."""
    if not api_version.startswith(KUBEADM_GROUP + "/"):
        return None
    version = api_version.split("/", 1)[1]
    if version in ("v1alpha1", "v1alpha2", "v1alpha3", "v1beta1", "v1beta2"):
        return ('your configuration file uses an old API spec: "%s" (kind: "%s"). Please use kubeadm v1.21 instead and run '
                "'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
                % (api_version, kind))
    if version == "v1beta4" and minor < 31:
        return ('experimental API spec: "%s" is not allowed. You can use the --allow-experimental-api flag for the command '
                "'kubeadm config migrate'. kubeadm 1.%d reads kubeadm.k8s.io/v1beta3" % (api_version, minor))
    if version == "v1beta3" and minor >= 37:
        return 'no kind "%s" is registered for version "%s" in scheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"' % (
            kind, api_version)
    if version == "v1beta3" and minor >= 31:
        return ('your configuration file uses a deprecated API spec: "%s" (kind: "%s"). kubeadm 1.%d reads kubeadm.k8s.io/v1beta4 '
                "(the default since 1.31): the stand-in refuses v1beta3 here so that configs for 1.31+ are v1beta4 "
                "(extraArgs as lists of {name, value}, timeouts block)" % (api_version, kind, minor))
    if version not in ("v1beta3", "v1beta4"):
        return 'no kind "%s" is registered for version "%s"' % (kind, api_version)
    return None


def load_config_documents(path, minor):
    """(documents, errors) of a kubeadm --config file, strictly decoded for this Kubernetes minor."""
    try:
        text = read_text(path)
    except OSError as error:
        raise StandInError('unable to read config from "%s" : open %s: %s' % (path, path, error.strerror.lower()))
    try:
        documents = stand_in_yaml.load_all(text)
    except stand_in_yaml.YamlError as error:
        raise StandInError("error converting YAML to JSON: yaml: %s" % error)
    errors, seen, kept = [], set(), []
    for document in documents:
        if not isinstance(document, dict) or not document.get("apiVersion") or not document.get("kind"):
            shown = "" if not isinstance(document, dict) else "%s, Kind=%s" % (document.get("apiVersion", "/"), document.get("kind", ""))
            errors.append("invalid configuration for GroupVersionKind %s: kind and apiVersion is mandatory information that must be specified"
                          % (shown or "/, Kind="))
            continue
        api_version, kind = document["apiVersion"], document["kind"]
        if not isinstance(api_version, str) or not isinstance(kind, str):
            errors.append("json: cannot unmarshal apiVersion/kind: both must be strings")
            continue
        problem = api_version_problem(api_version, kind, minor)
        if problem:
            errors.append(problem)
            continue
        if stand_in_schema.schema_for(api_version, kind) is None:
            errors.append('unknown configuration schema.GroupVersionKind{Group:"%s", Version:"%s", Kind:"%s"} (kubeadm would ignore this document; '
                          "the stand-in refuses it so that a typo cannot pass)" % (tuple(api_version.partition("/")[::2]) + (kind,)))
            continue
        if kind in seen:
            errors.append('invalid configuration: kind "%s" is specified twice in YAML file' % kind)
            continue
        seen.add(kind)
        for problem in stand_in_schema.decode(document, minor):
            errors.append('error unmarshaling configuration schema.GroupVersionKind{Group:"%s", Version:"%s", Kind:"%s"}: %s'
                          % (api_version.partition("/")[0], api_version.partition("/")[2], kind, problem))
        kept.append(document)
    return kept, errors


def by_kind(documents):
    return {document["kind"]: document for document in documents}


def _endpoint_ok(text):
    host, _sep, port = str(text).rpartition(":") if ":" in str(text) else (str(text), "", "")
    host = host.strip("[]") or str(text)
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", host) is not None


def _extra_args_errors(value, path):
    errors = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict) and not item.get("name"):
                errors.append("%s[%d].name: Required value" % (path, index))
    return errors


def _node_registration_errors(registration, warnings):
    errors = []
    for index, taint in enumerate(registration.get("taints") or []):
        if taint.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            errors.append('nodeRegistration.taints[%d].effect: Unsupported value: "%s": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'
                          % (index, taint.get("effect")))
        if not taint.get("key"):
            errors.append("nodeRegistration.taints[%d].key: Required value" % index)
    socket_path = registration.get("criSocket")
    if socket_path and not str(socket_path).startswith("unix://"):
        warnings.append('[config] WARNING: Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet errors in the future. '
                        'Automatically prepending scheme "unix" to the "criSocket" with value "%s". Please update your configuration!' % socket_path)
    policy = registration.get("imagePullPolicy")
    if policy and policy not in ("Always", "IfNotPresent", "Never"):
        errors.append('nodeRegistration.imagePullPolicy: Unsupported value: "%s"' % policy)
    errors += _extra_args_errors(registration.get("kubeletExtraArgs"), "nodeRegistration.kubeletExtraArgs")
    return errors


# -- kubeadm's validation (cmd/kubeadm/app/apis/kubeadm/validation/validation.go) -------------------------
# Each rule below names the Go function it mirrors; messages follow apimachinery's field.Error:
# "<field path>: Invalid value: <value>: <detail>". kubeadm validates after its static and dynamic
# defaulting (bootstrap token ttl/usages/groups, bindPort 6443, caCertPath, certificatesDir,
# etcd dataDir, dnsDomain cluster.local, node name lowercased), so the rules see the defaulted values.
DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + "(\\." + DNS1123_LABEL + ")*"
WILDCARD_DNS1123_SUBDOMAIN = "\\*\\." + DNS1123_SUBDOMAIN
BOOTSTRAP_GROUP_PATTERN = "\\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z"  # k8s.io/cluster-bootstrap/token/api
BOOTSTRAP_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")
KNOWN_TOKEN_USAGES = ("signing", "authentication")
DEFAULT_TOKEN_TTL = "24h0m0s"  # bootstraptoken/v1 SetDefaults_BootstrapToken: TTL defaults even when expires is set
MINIMUM_ADDRESSES_IN_SERVICE_SUBNET = 10  # constants.go: the DNS service is always the 10th address
MAXIMUM_BITS_FOR_SERVICE_SUBNET = 20  # constants.go: /12 for IPv4, /108 for IPv6
MINIMUM_ADDRESSES_IN_POD_SUBNET = 14
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
CERTIFICATE_KEY_SIZE = 32


def _go_value(value):
    """A bad value as field.Error prints it: %q for strings, %v for numbers, %#v for []string."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[]string{%s}" % ", ".join(json.dumps(str(item), ensure_ascii=False) for item in value)
    return str(value)


def invalid(path, value, detail):
    return "%s: Invalid value: %s: %s" % (path, _go_value(value), detail)


def _regex_error(message, pattern, example):
    return "%s (e.g. '%s', regex used for validation is '%s')" % (message, example, pattern)


def dns1123_subdomain_errors(value):
    """apimachinery validation.IsDNS1123Subdomain."""
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not re.match("^" + DNS1123_SUBDOMAIN + r"\Z", value):
        errors.append(_regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
                                   "and end with an alphanumeric character", DNS1123_SUBDOMAIN, "example.com"))
    return errors


def wildcard_dns1123_subdomain_errors(value):
    """apimachinery validation.IsWildcardDNS1123Subdomain."""
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not re.match("^" + WILDCARD_DNS1123_SUBDOMAIN + r"\Z", value):
        errors.append(_regex_error("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of "
                                   "lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
                                   WILDCARD_DNS1123_SUBDOMAIN, "*.example.com"))
    return errors


def parse_ip_sloppy(text):
    """k8s.io/utils/net ParseIPSloppy: Go's net.ParseIP that also takes IPv4 octets with leading zeros; None if invalid."""
    if not isinstance(text, str) or not text or "%" in text or text.strip() != text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    head, sep, tail = text.rpartition(":")
    octets = tail.split(".")
    if len(octets) != 4 or not all(octet.isdigit() and octet.isascii() and int(octet) < 256 for octet in octets):
        return None
    try:
        return ipaddress.ip_address(head + sep + ".".join(str(int(octet)) for octet in octets))
    except ValueError:
        return None


def parse_cidr_sloppy(text):
    """ParseCIDRSloppy: "<ip>/<prefix length>", host bits allowed; the network, or None."""
    address, sep, prefix = text.partition("/")
    ip = parse_ip_sloppy(address)
    if not sep or ip is None or not prefix.isdigit() or not prefix.isascii() or int(prefix) > ip.max_prefixlen:
        return None
    return ipaddress.ip_network("%s/%s" % (ip, int(prefix)), strict=False)


def _range_size(network):
    """k8s.io/utils/net RangeSize."""
    host_bits = network.max_prefixlen - network.prefixlen
    if (network.version == 4 and host_bits >= 31) or (network.version == 6 and host_bits >= 127):
        return 0
    return 2 ** 63 - 1 if host_bits >= 63 else 1 << host_bits


def ip_net_errors(text, minimum, path):
    """ValidateIPNetFromString: (errors, the parsed networks or None)."""
    networks = [parse_cidr_sloppy(part) for part in str(text).split(",")]
    if any(network is None for network in networks):
        return [invalid(path, text, "couldn't parse subnet")], None
    errors = []
    dual_stack = "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"
    if len(networks) > 2 or (len(networks) == 2 and networks[0].version == networks[1].version):
        errors.append(invalid(path, text, dual_stack))
    for network in networks:
        size = _range_size(network)
        if size < minimum:
            errors.append(invalid(path, str(network), "subnet with %d address(es) is too small, the minimum is %d" % (size, minimum)))
    return errors, networks


def _arg_value(args, name):
    """kubeadm.GetArgValue(args, name, -1): the last value given for a flag in extraArgs (list or map)."""
    if isinstance(args, dict):
        return args.get(name)
    found = None
    for item in args or []:
        if isinstance(item, dict) and item.get("name") == name:
            found = item.get("value", "")
    return found


def networking_errors(cluster):
    """ValidateNetworking with ValidateServiceSubnetSize and ValidatePodSubnetNodeMask (and getClusterNodeMask)."""
    networking = cluster.get("networking") or {}
    errors = []
    domain = networking.get("dnsDomain") or "cluster.local"
    errors += [invalid("networking.dnsDomain", domain, error) for error in dns1123_subdomain_errors(domain)]
    service = networking.get("serviceSubnet") or "10.96.0.0/12"
    found, networks = ip_net_errors(service, MINIMUM_ADDRESSES_IN_SERVICE_SUBNET, "networking.serviceSubnet")
    errors += found
    for network in networks or []:
        if network.max_prefixlen - network.prefixlen > MAXIMUM_BITS_FOR_SERVICE_SUBNET:
            errors.append(invalid("networking.serviceSubnet", str(network), "specified service subnet is too large; for %d-bit addresses, the mask "
                                  "must be >= %d" % (network.max_prefixlen, network.max_prefixlen - MAXIMUM_BITS_FOR_SERVICE_SUBNET)))
    pods = networking.get("podSubnet")
    if pods:
        found, networks = ip_net_errors(pods, MINIMUM_ADDRESSES_IN_POD_SUBNET, "networking.podSubnet")
        errors += found
        manager_args = (cluster.get("controllerManager") or {}).get("extraArgs")
        for network in (networks or []) if _arg_value(manager_args, "allocate-node-cidrs") != "false" else []:
            flag = "node-cidr-mask-size-ipv6" if network.version == 6 else "node-cidr-mask-size-ipv4"
            given = _arg_value(manager_args, flag)
            if given:
                if not re.match(r"^[+-]?[0-9]+\Z", given):
                    errors.append(invalid("networking.podSubnet", str(network), "could not parse the value of the kube-controller-manager flag %s as "
                                          'an integer: strconv.Atoi: parsing "%s": invalid syntax' % (flag, given)))
                    continue
                node_mask = int(given)
            else:
                node_mask = 64 if network.version == 6 else 24
            if network.prefixlen > node_mask:
                errors.append(invalid("networking.podSubnet", str(network), "the size of pod subnet with mask %d is smaller than the size of node "
                                      "subnet with mask %d" % (network.prefixlen, node_mask)))
            elif node_mask - network.prefixlen > POD_SUBNET_NODE_MASK_MAX_DIFF:
                errors.append(invalid("networking.podSubnet", str(network), "pod subnet mask (%d) and node-mask (%d) difference is greater than %d"
                                      % (network.prefixlen, node_mask, POD_SUBNET_NODE_MASK_MAX_DIFF)))
    return errors


def cert_sans_errors(names, path):
    """ValidateCertSANs: each an IP, a DNS-1123 subdomain or a wildcard one."""
    errors = []
    for name in names or []:
        name = str(name)
        plain = dns1123_subdomain_errors(name)
        if plain:
            wildcard = wildcard_dns1123_subdomain_errors(name)
            if wildcard and parse_ip_sloppy(name) is None:
                errors.append(invalid(path, name, "altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards: %s; %s"
                                      % ("; ".join(plain), "; ".join(wildcard))))
    return errors


def absolute_path_errors(value, path):
    """ValidateAbsolutePath (isAbs is filepath.IsAbs on Linux)."""
    return [] if str(value).startswith("/") else [invalid(path, value, "path is not absolute")]


def api_endpoint_errors(endpoint, path):
    """SetAPIEndpointDynamicDefaults (runs before validation and fails first on a bad address) and ValidateAPIEndpoint's port."""
    errors = []
    address = endpoint.get("advertiseAddress")
    if address and parse_ip_sloppy(address) is None:
        errors.append('couldn\'t use "%s" as "apiserver-advertise-address", must be ipv4 or ipv6 address' % address)
    port = endpoint.get("bindPort") or 6443  # SetDefaults_APIEndpoint: 0 -> 6443
    if not 1 <= port <= 65535:
        errors.append(invalid(path + ".bindPort", port, "port number is not valid"))
    return errors


def certificate_key_errors(key, path):
    """ValidateCertificateKey: hex.DecodeString, then exactly CertificateKeySize (32) bytes."""
    if not key:
        return []
    raw = str(key).encode("utf-8")
    hexdigits = b"0123456789abcdefABCDEF"
    bad = next((index for index in range(len(raw) - len(raw) % 2) if raw[index] not in hexdigits), None)
    if bad is None and len(raw) % 2 and raw[-1] not in hexdigits:
        bad = len(raw) - 1
    if bad is not None:
        character = bytes([raw[bad]]).decode("latin-1")
        return [invalid(path, key, "certificate key decoding error: encoding/hex: invalid byte: U+%04X '%s'" % (raw[bad], character))]
    if len(raw) % 2:
        return [invalid(path, key, "certificate key decoding error: encoding/hex: odd length hex string")]
    if len(raw) // 2 != CERTIFICATE_KEY_SIZE:
        return [invalid(path, key, "invalid certificate key size %d, the key must be an AES key of size %d" % (len(raw) // 2, CERTIFICATE_KEY_SIZE))]
    return []


_certificate_key_errors = certificate_key_errors  # the name stand_in_kubeadm used before


def bootstrap_token_errors(tokens, path="bootstrapTokens"):
    """ValidateBootstrapTokens (ValidateToken, ValidateTokenUsages, ValidateTokenGroups, ttl/expires) on the defaulted tokens."""
    errors = []
    for index, token in enumerate(tokens or []):
        token_path = "%s.%d" % (path, index)  # kubeadm: fldPath.Child(fmt.Sprintf("%d", i))
        value = token.get("token")
        if value is not None and not TOKEN_RE.match(str(value)):
            errors.append(invalid(token_path + ".token", value, "the bootstrap token is invalid"))
        usages = list(token.get("usages") or KNOWN_TOKEN_USAGES)
        groups = list(token.get("groups") or [DEFAULT_TOKEN_GROUP])
        unknown = sorted(set(usage for usage in usages if usage not in KNOWN_TOKEN_USAGES))
        if unknown:
            errors.append(invalid(token_path + ".usages", usages, "invalid bootstrap token usage string: %s, valid usage options: %s"
                                  % (",".join(unknown), ",".join(KNOWN_TOKEN_USAGES))))
        if groups and "authentication" not in usages:
            errors.append(invalid(token_path + ".groups", groups, 'token groups cannot be specified unless --usages includes "authentication"'))
        for group in groups:
            if not BOOTSTRAP_GROUP_RE.match(str(group)):
                errors.append(invalid(token_path + ".groups", groups, "bootstrap group %s is invalid (must match %s)"
                                      % (json.dumps(str(group)), BOOTSTRAP_GROUP_PATTERN)))
        ttl = token.get("ttl") if token.get("ttl") is not None else DEFAULT_TOKEN_TTL
        if token.get("expires") is not None and ttl is not None:
            errors.append(invalid(token_path, "", "the BootstrapToken .TTL and .Expires fields are mutually exclusive"))
    return errors


def registration_name(registration):
    """SetNodeRegistrationDynamicDefaults -> GetHostname: the given name trimmed and lowercased (empty: the hostname)."""
    return str(registration.get("name") or "").strip().lower()


def node_name_errors(registration):
    """ValidateNodeRegistrationOptions: the (defaulted) name must be a DNS-1123 subdomain."""
    name = registration_name(registration)
    if not name:
        return []
    return [invalid("nodeRegistration.name", name, error) for error in dns1123_subdomain_errors(name)]


def semantic_errors(kinds, minor, warnings):
    """What kubeadm's validation.go (and the stand-in's stricter rules) find in valid-typed documents."""
    errors = []
    cluster = kinds.get("ClusterConfiguration")
    if cluster:
        endpoint = cluster.get("controlPlaneEndpoint")
        if endpoint and not _endpoint_ok(endpoint):
            errors.append('controlPlaneEndpoint: Invalid value: "%s": must be a valid IP address or a valid RFC-1123 DNS subdomain with an optional port'
                          % endpoint)
        errors += networking_errors(cluster)
        # SetClusterDynamicDefaults lowercases apiServer.certSANs before validation; etcd's SANs are taken as given
        errors += cert_sans_errors([str(name).lower() for name in (cluster.get("apiServer") or {}).get("certSANs") or []], "apiServer.certSANs")
        errors += absolute_path_errors(cluster.get("certificatesDir") or "/etc/kubernetes/pki", "certificatesDir")
        algorithm = cluster.get("encryptionAlgorithm")
        if algorithm and (algorithm not in stand_in_schema.ENCRYPTION_ALGORITHMS or stand_in_schema.ENCRYPTION_ALGORITHMS[algorithm] > minor):
            allowed = sorted(name for name, since in stand_in_schema.ENCRYPTION_ALGORITHMS.items() if since <= minor)
            errors.append('encryptionAlgorithm: Unsupported value: "%s": supported values: %s' % (algorithm, ", ".join('"%s"' % name for name in allowed)))
        etcd = cluster.get("etcd") or {}
        if etcd.get("local") and etcd.get("external"):
            errors.append("etcd: Invalid value: \"\": either etcd.local or etcd.external must be set, not both")
        elif etcd.get("external"):  # ValidateEtcd: the external files, when given, must be absolute paths
            for field in ("caFile", "certFile", "keyFile"):
                if etcd["external"].get(field):
                    errors += absolute_path_errors(etcd["external"][field], "etcd.external." + field)
        else:  # SetDefaults_Etcd: local etcd with dataDir /var/lib/etcd unless given
            local = etcd.get("local") or {}
            errors += absolute_path_errors(local.get("dataDir") or "/var/lib/etcd", "etcd.local.dataDir")
            errors += cert_sans_errors(local.get("serverCertSANs"), "etcd.local.serverCertSANs")
            errors += cert_sans_errors(local.get("peerCertSANs"), "etcd.local.peerCertSANs")
        for component in ("apiServer", "controllerManager", "scheduler"):
            errors += _extra_args_errors((cluster.get(component) or {}).get("extraArgs"), component + ".extraArgs")
        errors += _extra_args_errors((etcd.get("local") or {}).get("extraArgs"), "etcd.local.extraArgs")
        version = cluster.get("kubernetesVersion")
        if version:
            try:
                parse_version(version)
            except ValueError:
                errors.append('kubernetesVersion: Invalid value: "%s": must be a semantic version like "v1.31.4"' % version)
    init = kinds.get("InitConfiguration")
    if init:
        errors += bootstrap_token_errors(init.get("bootstrapTokens"))
        errors += certificate_key_errors(init.get("certificateKey"), "certificateKey")
        errors += node_name_errors(init.get("nodeRegistration") or {})
        errors += _node_registration_errors(init.get("nodeRegistration") or {}, warnings)
        errors += api_endpoint_errors(init.get("localAPIEndpoint") or {}, "localAPIEndpoint")
    join = kinds.get("JoinConfiguration")
    if join:
        errors += node_name_errors(join.get("nodeRegistration") or {})
        errors += _node_registration_errors(join.get("nodeRegistration") or {}, warnings)
        ca_cert_path = join.get("caCertPath") or "/etc/kubernetes/pki/ca.crt"  # ValidateJoinConfiguration: absolute and *.crt
        if not ca_cert_path.startswith("/") or not ca_cert_path.endswith(".crt"):
            errors.append(invalid("caCertPath", ca_cert_path, "the ca certificate path must be an absolute path"))
        discovery = join.get("discovery") or {}
        token_discovery, file_discovery = discovery.get("bootstrapToken"), discovery.get("file")
        if not token_discovery and not file_discovery:
            errors.append('discovery: Invalid value: "": bootstrapToken or file must be set')
        if token_discovery and file_discovery:
            errors.append('discovery: Invalid value: "": bootstrapToken and file cannot both be set')
        if token_discovery:
            if not TOKEN_RE.match(str(token_discovery.get("token", ""))):
                errors.append('discovery.bootstrapToken.token: Invalid value: "%s": the bootstrap token is invalid' % token_discovery.get("token", ""))
            if not token_discovery.get("apiServerEndpoint"):
                errors.append("discovery.bootstrapToken.apiServerEndpoint: Required value: the API server endpoint to discover the cluster from is required")
            hashes = token_discovery.get("caCertHashes") or []
            if not hashes and not token_discovery.get("unsafeSkipCAVerification"):
                errors.append("discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using token-based discovery without caCertHashes "
                              "can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass "
                              "--discovery-token-unsafe-skip-ca-verification flag to continue")
            for value in hashes:
                if not CA_HASH_RE.match(str(value)):
                    errors.append('discovery.bootstrapToken.caCertHashes: Invalid value: "%s": invalid hash, expected "sha256:<64 hex digits>"' % value)
        tls_token = discovery.get("tlsBootstrapToken")
        if tls_token and not TOKEN_RE.match(str(tls_token)):
            errors.append('discovery.tlsBootstrapToken: Invalid value: "%s": the bootstrap token is invalid' % tls_token)
        if join.get("controlPlane") is not None:  # ValidateJoinControlPlane
            control_plane = join["controlPlane"] or {}
            errors += api_endpoint_errors(control_plane.get("localAPIEndpoint") or {}, "controlPlane.localAPIEndpoint")
            errors += certificate_key_errors(control_plane.get("certificateKey"), "controlPlane.certificateKey")
    reset = kinds.get("ResetConfiguration")
    if reset and reset.get("certificatesDir"):
        errors += absolute_path_errors(reset["certificatesDir"], "certificatesDir")
    kubelet = kinds.get("KubeletConfiguration")
    if kubelet:
        driver = kubelet.get("cgroupDriver")
        if driver and driver not in ("systemd", "cgroupfs"):
            errors.append('invalid configuration: cgroupDriver (--cgroup-driver) "%s" is not a valid driver, must be "systemd" or "cgroupfs"' % driver)
    return errors


def check_kubernetes_version(cluster_version, kubeadm_version, output):
    """kubeadm's version policy: control plane >= kubeadm minor - 1; newer than kubeadm only warns."""
    if not cluster_version:
        return
    _first, cluster_minor, _last = parse_version(cluster_version)
    _first, kubeadm_minor, _last = parse_version(kubeadm_version)
    if cluster_minor < kubeadm_minor - 1:
        raise StandInError("this version of kubeadm only supports deploying clusters with the control plane version >= 1.%d.0. Current version: %s"
                           % (kubeadm_minor - 1, cluster_version))
    if cluster_minor > kubeadm_minor:
        output.warn("W0101 00:00:00.000000       1 version.go:104] Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. "
                    "Kubernetes version: %s. Kubeadm version: 1.%d.x" % (cluster_version, kubeadm_minor))


def load_config(path, version, output, allowed_kinds=None):
    """Strictly load and validate a --config file; StandInError with every problem found."""
    _first, minor, _last = parse_version(version)
    documents, errors = load_config_documents(path, minor)
    warnings = []
    kinds = by_kind(documents)
    if not errors:
        errors = semantic_errors(kinds, minor, warnings)
    for warning in warnings:
        output.warn(warning)
    if errors:
        raise StandInError("\n".join(errors) + "\nTo see the stack trace of this error execute with --v=5 or higher")
    if allowed_kinds is not None:
        for kind in list(kinds):
            if kind not in allowed_kinds:
                output.warn('[config] WARNING: Ignored configuration document with GroupVersionKind %s, Kind=%s' % (kinds[kind]["apiVersion"], kind))
                kinds.pop(kind)
    return documents, kinds


# -- the API client -----------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(self, status, body):
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(message)
        self.status = status
        self.body = body


class ApiClient:
    """JSON over HTTPS with a bearer token, verified against the cluster CA."""

    def __init__(self, server, ca_pem, token=None, timeout=20):
        parsed = re.match(r"^https://(\[[^\]]+\]|[^:/]+)(?::(\d+))?/?$", server)
        if not parsed:
            raise StandInError('invalid API server URL "%s"' % server)
        self.server = server.rstrip("/")
        self.host = parsed.group(1).strip("[]")
        self.port = int(parsed.group(2) or 443)
        self.token = token
        self.timeout = timeout
        if ca_pem:
            self.context = ssl.create_default_context(cadata=ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem)
        else:
            # kubeadm's token discovery reads cluster-info before it can trust the server: it checks the JWS and the CA pin instead
            self.context = ssl._create_unverified_context()  # pylint: disable=protected-access

    def request(self, method, path, body=None, content_type="application/json", query=None):
        if query:
            path += "?" + "&".join("%s=%s" % (key, value) for key, value in query.items())
        headers = {"Accept": "application/json", "User-Agent": "kubeadm-stand-in"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = content_type
        try:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            connection.close()
        except ssl.SSLCertVerificationError as error:
            raise StandInError('Get "%s%s": tls: failed to verify certificate: %s' % (self.server, path, error.verify_message))
        except (OSError, http.client.HTTPException) as error:
            raise StandInError('Get "%s%s": dial tcp %s:%d: %s' % (self.server, path, self.host, self.port, error))
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            payload = {"message": raw.decode("utf-8", "replace")}
        if response.status >= 400:
            raise ApiError(response.status, payload)
        return payload

    def get(self, path, missing_ok=False):
        try:
            return self.request("GET", path)
        except ApiError as error:
            if missing_ok and error.status == 404:
                return None
            raise

    def create_or_replace(self, collection_path, obj):
        """POST, or PUT over an existing object of the same name (kubeadm's CreateOrUpdate)."""
        try:
            return self.request("POST", collection_path, obj)
        except ApiError as error:
            if error.status != 409:
                raise
        current = self.request("GET", "%s/%s" % (collection_path, obj["metadata"]["name"]))
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.request("PUT", "%s/%s" % (collection_path, obj["metadata"]["name"]), obj)


# -- kubeconfigs ----------------------------------------------------------------------------------------
def kubeconfig(server, ca_pem, user, token, cluster_name="kubernetes"):
    context = "%s@%s" % (user, cluster_name)
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server}, "name": cluster_name}],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context, "preferences": {},
        "users": [{"name": user, "user": {"token": token}}],
    }


def write_kubeconfig(path, server, ca_pem, user, token, cluster_name="kubernetes"):
    write_file(path, stand_in_yaml.dump(kubeconfig(server, ca_pem, user, token, cluster_name)), 0o600)


def read_kubeconfig(path):
    """(server, ca_pem bytes, token) of the current context of a kubeconfig."""
    try:
        config = stand_in_yaml.load(read_text(path))
    except OSError as error:
        raise StandInError('failed to load admin kubeconfig: open %s: %s' % (path, error.strerror.lower()))
    except stand_in_yaml.YamlError as error:
        raise StandInError("error loading config file \"%s\": %s" % (path, error))
    contexts = {item["name"]: item["context"] for item in config.get("contexts") or []}
    context = contexts.get(config.get("current-context")) or (next(iter(contexts.values())) if contexts else {})
    clusters = {item["name"]: item["cluster"] for item in config.get("clusters") or []}
    users = {item["name"]: item["user"] for item in config.get("users") or []}
    cluster = clusters.get(context.get("cluster")) or {}
    user = users.get(context.get("user")) or {}
    ca_pem = base64.b64decode(cluster["certificate-authority-data"]) if cluster.get("certificate-authority-data") else (
        open(cluster["certificate-authority"], "rb").read() if cluster.get("certificate-authority") else None)
    return cluster.get("server"), ca_pem, user.get("token")


def client_from_kubeconfig(path):
    server, ca_pem, token = read_kubeconfig(path)
    return ApiClient(server, ca_pem, token)


# -- certificates and keys --------------------------------------------------------------------------------
def _der_read(data, index):
    """(tag, content start, content end) of the DER element at data[index]."""
    tag = data[index]
    length = data[index + 1]
    index += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[index:index + count], "big")
        index += count
    return tag, index, index + length


def pem_to_der(pem):
    text = pem.decode() if isinstance(pem, bytes) else pem
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not body:
        raise ValueError("no PEM certificate found")
    return base64.b64decode("".join(body.group(1).split()))


def ca_cert_hash(pem):
    """kubeadm's discovery-token-ca-cert-hash: sha256 of the CA's DER SubjectPublicKeyInfo."""
    der = pem_to_der(pem)
    _first, start, _last = _der_read(der, 0)  # Certificate
    _first, start, _last = _der_read(der, start)  # TBSCertificate
    index = start
    if der[index] == 0xA0:  # [0] version
        index = _der_read(der, index)[2]
    for _index in range(5):  # serial, signature, issuer, validity, subject
        index = _der_read(der, index)[2]
    _tag, _start, end = _der_read(der, index)
    return "sha256:" + hashlib.sha256(der[index:end]).hexdigest()


def make_ca(directory, name="kubernetes"):
    """A self-signed CA (ca.crt, ca.key) made with the openssl CLI; returns the two paths."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "3650",
                    "-subj", "/CN=%s" % name, "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
                   check=True, capture_output=True)
    return cert, key


def make_server_cert(directory, ca_cert, ca_key, ips, names=("kubernetes", "kubernetes.default", "localhost")):
    """An apiserver serving certificate for the given IPs and DNS names, signed by the CA."""
    cert, key, csr = (os.path.join(directory, name) for name in ("apiserver.crt", "apiserver.key", "apiserver.csr"))
    extensions = os.path.join(directory, "apiserver.ext")
    sans = ["IP:%s" % ip for ip in ips] + ["DNS:%s" % name for name in names]
    write_file(extensions, "subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n" % ",".join(sans), 0o644)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "365",
                    "-extfile", extensions], check=True, capture_output=True)
    return cert, key


# -- bootstrap tokens and the certificate key --------------------------------------------------------------
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _random_text(count):
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _index in range(count))


def generate_token():
    return "%s.%s" % (_random_text(6), _random_text(16))


def generate_certificate_key():
    return secrets.token_hex(32)


def rfc3339(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def token_secret(token, ttl_seconds=None, description="", usages=("authentication", "signing"), groups=(DEFAULT_TOKEN_GROUP,), expires=None):
    """The bootstrap-token-<id> Secret kubeadm creates for a token."""
    token_id, token_value = TOKEN_RE.match(token).groups()
    data = {"token-id": b64(token_id), "token-secret": b64(token_value)}
    if expires:
        data["expiration"] = b64(expires)
    elif ttl_seconds:
        data["expiration"] = b64(rfc3339(time.time() + ttl_seconds))
    if description:
        data["description"] = b64(description)
    for usage in usages:
        data["usage-bootstrap-%s" % usage] = b64("true")
    if groups:
        data["auth-extra-groups"] = b64(",".join(groups))
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-%s" % token_id, "namespace": "kube-system"}, "data": data}


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_detached(content, token_id, token_value):
    """The detached HS256 JWS the bootstrap signer puts in cluster-info (key: the whole token)."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    signature = hmac.new(("%s.%s" % (token_id, token_value)).encode(), ("%s.%s" % (header, payload)).encode(), hashlib.sha256).digest()
    return "%s..%s" % (header, _b64url(signature))


def _keystream(key, nonce, length):
    blocks, counter = [], 0
    while sum(len(block) for block in blocks) < length:
        blocks.append(hashlib.sha256(key + nonce + counter.to_bytes(8, "big")).digest())
        counter += 1
    return b"".join(blocks)[:length]


def encrypt_with_key(hex_key, data):
    """Authenticated encryption with the certificate key (kubeadm uses AES-GCM; the stdlib has no AES,
    so this is a SHA-256 keystream with an HMAC tag: a wrong key fails the same way)."""
    key = bytes.fromhex(hex_key)
    nonce = secrets.token_bytes(12)
    body = bytes(a ^ b for a, b in zip(data, _keystream(key, nonce, len(data))))
    tag = hmac.new(key, nonce + body, hashlib.sha256).digest()[:16]
    return base64.b64encode(nonce + body + tag).decode()


def decrypt_with_key(hex_key, text):
    key = bytes.fromhex(hex_key)
    raw = base64.b64decode(text)
    nonce, body, tag = raw[:12], raw[12:-16], raw[-16:]
    if not hmac.compare_digest(tag, hmac.new(key, nonce + body, hashlib.sha256).digest()[:16]):
        raise StandInError("error downloading certs: error decoding secret data with provided key: cipher: message authentication failed")
    return bytes(a ^ b for a, b in zip(body, _keystream(key, nonce, len(body))))


# -- the node ----------------------------------------------------------------------------------------------
def node_ip(config, server_host=None):
    """The node's InternalIP: from the settings, else the source address towards the API server."""
    if config.get("node_ip"):
        return config["node_ip"]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((server_host or "198.18.2.1", 6443))
            return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def is_root():
    return os.geteuid() == 0


# -- packaging the stand-ins (on the controller) ----------------------------------------------------------
STAND_IN_NAMES = ("kubeadm", "kubelet", "kubectl", "crictl")
MODULES = ("stand_in_lib.py", "stand_in_yaml.py", "stand_in_schema.py")


def build_binaries(target_dir, version, names=STAND_IN_NAMES):
    """Self-contained executables (zipapps: a shebang line and a zip of the modules) with the version
    baked in, plus a stand_in_version file, in target_dir: a `binaries_dir` for the product."""
    import shutil
    import tempfile
    import zipapp

    major, minor, patch = parse_version(version)
    version = "v%d.%d.%d" % (major, minor, patch)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(target_dir, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory() as source:
            for module in MODULES + ("stand_in_%s.py" % name,):
                shutil.copy(os.path.join(here, module), source)
            with open(os.path.join(source, "__main__.py"), "w", encoding="utf-8") as handle:
                handle.write("import sys\nimport stand_in_%s\nsys.exit(stand_in_%s.main(%r))\n" % (name, name, version))
            zipapp.create_archive(source, os.path.join(target_dir, name), interpreter="/usr/bin/env python3")
        os.chmod(os.path.join(target_dir, name), 0o755)
    write_file(os.path.join(target_dir, "stand_in_version"), version + "\n", 0o644)
    return target_dir
