# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubeadm stand-in: validates like kubeadm, talks to the API emulator, leaves kubeadm's files.

Commands: version, init (and `init phase upload-certs`), join, reset, token create|list|delete|generate,
certs certificate-key, config validate|images list|images pull|print init-defaults|print join-defaults,
upgrade plan|apply|node. Anything else fails with "the stand-in does not implement ...", so a role
that starts using a new command is noticed. See tests/stand_ins/README.md for what each checks.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import stand_in_lib as lib
import stand_in_yaml
from stand_in_lib import StandInError

ADMIN_CONF = "/etc/kubernetes/admin.conf"
PKI = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
ETCD_DIR = "/var/lib/etcd"
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
DEFAULT_CRI = "unix:///var/run/containerd/containerd.sock"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
SHARED_CERTS = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key")
OTHER_CERTS = ("apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key", "front-proxy-client.crt",
               "front-proxy-client.key", "apiserver-etcd-client.crt", "apiserver-etcd-client.key", "etcd/server.crt", "etcd/server.key",
               "etcd/peer.crt", "etcd/peer.key", "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key")
COMMON_FLAGS = {"v": "str", "rootfs": "str", "help": "bool"}
INIT_FLAGS = dict(COMMON_FLAGS, **{
    "apiserver-advertise-address": "str", "apiserver-bind-port": "str", "apiserver-cert-extra-sans": "list", "cert-dir": "str",
    "certificate-key": "str", "config": "str", "control-plane-endpoint": "str", "cri-socket": "str", "dry-run": "bool", "feature-gates": "str",
    "ignore-preflight-errors": "list", "image-repository": "str", "kubernetes-version": "str", "node-name": "str", "patches": "str",
    "pod-network-cidr": "str", "service-cidr": "str", "service-dns-domain": "str", "skip-certificate-key-print": "bool", "skip-phases": "list",
    "skip-token-print": "bool", "token": "str", "token-ttl": "str", "upload-certs": "bool"})
JOIN_FLAGS = dict(COMMON_FLAGS, **{
    "apiserver-advertise-address": "str", "apiserver-bind-port": "str", "certificate-key": "str", "config": "str", "control-plane": "bool",
    "cri-socket": "str", "discovery-file": "str", "discovery-token": "str", "discovery-token-ca-cert-hash": "list",
    "discovery-token-unsafe-skip-ca-verification": "bool", "dry-run": "bool", "ignore-preflight-errors": "list", "node-name": "str", "patches": "str",
    "skip-phases": "list", "tls-bootstrap-token": "str", "token": "str"})
RESET_FLAGS = dict(COMMON_FLAGS, **{"cert-dir": "str", "cleanup-tmp-dir": "bool", "config": "str", "cri-socket": "str", "dry-run": "bool",
                                    "force": "bool", "ignore-preflight-errors": "list", "kubeconfig": "str", "skip-phases": "list"})
TOKEN_FLAGS = dict(COMMON_FLAGS, **{"certificate-key": "str", "config": "str", "description": "str", "groups": "list", "print-join-command": "bool",
                                    "ttl": "str", "usages": "list", "kubeconfig": "str", "dry-run": "bool", "output": "str",
                                    "allow-missing-template-keys": "bool", "show-managed-fields": "bool"})
UPLOAD_CERTS_FLAGS = dict(COMMON_FLAGS, **{"certificate-key": "str", "config": "str", "kubeconfig": "str", "skip-certificate-key-print": "bool",
                                           "upload-certs": "bool", "dry-run": "bool"})
CONFIG_FLAGS = dict(COMMON_FLAGS, **{"config": "str", "kubeconfig": "str", "kubernetes-version": "str", "image-repository": "str",
                                     "cri-socket": "str", "feature-gates": "str", "allow-experimental-api": "bool", "output": "str",
                                     "component-configs": "list"})
UPGRADE_FLAGS = dict(COMMON_FLAGS, **{"config": "str", "kubeconfig": "str", "yes": "bool", "force": "bool", "dry-run": "bool", "etcd-upgrade": "bool",
                                      "certificate-renewal": "bool", "ignore-preflight-errors": "list", "patches": "str", "print-config": "bool",
                                      "allow-experimental-upgrades": "bool", "allow-release-candidate-upgrades": "bool", "skip-phases": "list",
                                      "output": "str"})
ALIASES = {"f": "force", "y": "yes", "o": "output", "h": "help"}


def flags(argv, spec, command):
    return lib.Flags({"flags": spec, "aliases": ALIASES}, argv, command)


class Context:
    """What every command needs: the version, settings, output and the configs it read."""

    def __init__(self, version, output):
        self.version = version
        self.minor = lib.parse_version(version)[1]
        self.settings = lib.settings()
        self.output = output
        self.configs = output.configs

    def path(self, path):
        return lib.host_path(path, self.settings)

    @property
    def api_version(self):
        return "kubeadm.k8s.io/v1beta4" if self.minor >= 31 else "kubeadm.k8s.io/v1beta3"

    def ca_pem(self):
        path = self.settings.get("ca_cert")
        if not path or not os.path.exists(path):
            raise StandInError("stand-in: the cluster CA (ca_cert in %s/config.json) is missing" % lib.settings_dir())
        with open(path, "rb") as handle:
            return handle.read()

    def load(self, path, allowed):
        documents, kinds = lib.load_config(path, self.version, self.output, allowed)
        self.configs.append({"path": path, "documents": documents})
        return kinds


# -- helpers shared by init and join ------------------------------------------------------------------
def extra_args(value):
    """kubeletExtraArgs / extraArgs as a dict, from a v1beta4 list or a v1beta3 map."""
    if isinstance(value, list):
        return {item["name"]: item.get("value", "") for item in value if isinstance(item, dict)}
    return dict(value or {})


def require_root(ctx):
    if ctx.settings.get("require_root") and not lib.is_root():
        raise StandInError("[preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not running as root\n"
                           "[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")


def preflight(ctx, checks, ignored, phase="preflight"):
    """Run (name, problem-or-None, is_error) checks; fail like kubeadm on errors not ignored."""
    ignored = {name.lower() for name in ignored}
    ctx.output.print("[preflight] Running pre-flight checks")
    errors = []
    for name, problem, is_error in checks:
        if not problem:
            continue
        if is_error and "all" not in ignored and name.lower() not in ignored:
            errors.append("\t[ERROR %s]: %s" % (name, problem))
        else:
            ctx.output.warn("\t[WARNING %s]: %s" % (name, problem))
    if errors:
        raise StandInError("error execution phase %s: [preflight] Some fatal errors occurred:\n%s\n[preflight] If you know what you are doing, "
                           "you can make a check non-fatal with `--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with "
                           "--v=5 or higher" % (phase, "\n".join(errors)))


def file_available(ctx, path):
    name = "FileAvailable-" + path.replace("/", "-")
    return (name, "%s already exists" % path if os.path.exists(ctx.path(path)) else None, True)


def dir_available(ctx, path):
    name = "DirAvailable-" + path.replace("/", "-")
    full = ctx.path(path)
    return (name, "%s is not empty" % path if os.path.isdir(full) and os.listdir(full) else None, True)


def node_checks(ctx, cri_socket, kubelet_config):
    checks = []
    socket_path = cri_socket.replace("unix://", "", 1)
    checks.append(("CRI", None if os.path.exists(ctx.path(socket_path)) else
                   'container runtime is not running: output: time="now" level=fatal msg="validate service connection: validate CRI v1 runtime API for '
                   'endpoint \\"%s\\": rpc error: code = Unavailable desc = connection error: desc = \\"transport: Error while dialing: dial unix %s: '
                   'connect: no such file or directory\\""' % (cri_socket, socket_path), True))
    for tool in ("crictl",):
        checks.append(("FileExisting-" + tool, None if shutil.which(tool) else "%s not found in system path" % tool, True))
    forward = ctx.path("/proc/sys/net/ipv4/ip_forward")
    if os.path.exists(forward):
        value = lib.read_text(forward).strip()
        checks.append(("FileContent--proc-sys-net-ipv4-ip_forward", None if value == "1" else "/proc/sys/net/ipv4/ip_forward contents are not set to 1", True))
    swaps = ctx.path("/proc/swaps")
    if os.path.exists(swaps) and len(lib.read_text(swaps).strip().splitlines()) > 1 and (kubelet_config or {}).get("failSwapOn", True):
        checks.append(("Swap", "running with swap on is not supported. Please disable swap", True))
    if ctx.settings.get("systemctl") and shutil.which("systemctl"):
        enabled = subprocess.run(["systemctl", "is-enabled", "kubelet.service"], capture_output=True, text=True, check=False).stdout.strip()
        problem = "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"
        checks.append(("Service-Kubelet", None if enabled == "enabled" else problem, False))
    return checks


def control_plane_checks(ctx):
    return [file_available(ctx, "%s/%s.yaml" % (MANIFESTS, name)) for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")] + \
        [dir_available(ctx, ETCD_DIR)]


def restart_kubelet(ctx):
    """kubeadm's kubelet-start phase: restart kubelet.service, then wait for its healthz."""
    ctx.output.print("[kubelet-start] Starting the kubelet")
    if ctx.settings.get("systemctl") and shutil.which("systemctl"):
        result = subprocess.run(["systemctl", "restart", "kubelet"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            ctx.output.warn("[kubelet-start] WARNING: unable to start the kubelet service: %s" % result.stderr.strip())
    timeout = float(ctx.settings.get("kubelet_health_timeout") or 0)
    if timeout <= 0:
        return
    ctx.output.print("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=2) as response:
                if response.status == 200:
                    ctx.output.print("[kubelet-check] The kubelet is healthy after %.6fs" % (timeout - (deadline - time.time())))
                    return
        except OSError:
            pass
        time.sleep(1)
    raise StandInError("[kubelet-check] The kubelet is not healthy after %ds\n\nUnfortunately, an error has occurred, likely caused by:\n"
                       "\t- The kubelet is not running\n"
                       "\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\n"
                       "If you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n"
                       "\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'\n\n"
                       "error execution phase kubelet-start: The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned error: "
                       "Get \"http://127.0.0.1:10248/healthz\": dial tcp 127.0.0.1:10248: connect: connection refused" % timeout)


def kubelet_config(ctx, given, cluster):
    """/var/lib/kubelet/config.yaml content: the given KubeletConfiguration plus kubeadm's defaults."""
    config = json.loads(json.dumps(given or {}))
    networking = (cluster or {}).get("networking") or {}
    service = networking.get("serviceSubnet") or "10.96.0.0/12"
    first = service.split("/")[0].split(".")
    config.setdefault("apiVersion", "kubelet.config.k8s.io/v1beta1")
    config.setdefault("kind", "KubeletConfiguration")
    config.setdefault("authentication", {"anonymous": {"enabled": False}, "webhook": {"cacheTTL": "0s", "enabled": True},
                                         "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}})
    config.setdefault("authorization", {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}})
    config.setdefault("cgroupDriver", "systemd")
    config.setdefault("clusterDNS", [".".join(first[:3] + [str(int(first[3]) + 10)])])
    config.setdefault("clusterDomain", networking.get("dnsDomain") or "cluster.local")
    config.setdefault("healthzBindAddress", "127.0.0.1")
    config.setdefault("healthzPort", 10248)
    config.setdefault("rotateCertificates", True)
    config.setdefault("staticPodPath", MANIFESTS)
    config.setdefault("containerRuntimeEndpoint", DEFAULT_CRI)
    return config


def write_kubelet_files(ctx, config, registration):
    cri = registration.get("criSocket") or DEFAULT_CRI
    args = ["--container-runtime-endpoint=%s" % cri, "--pod-infra-container-image=registry.k8s.io/pause:3.10"]
    args += ["--%s=%s" % (name, value) for name, value in extra_args(registration.get("kubeletExtraArgs")).items()]
    lib.write_file(ctx.path(KUBELET_DIR + "/config.yaml"), stand_in_yaml.dump(config), 0o644)
    lib.write_file(ctx.path(KUBELET_DIR + "/kubeadm-flags.env"), 'KUBELET_KUBEADM_ARGS="%s"\n' % " ".join(args), 0o644)
    ctx.output.print('[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"')
    ctx.output.print('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')


def node_object(ctx, name, registration, control_plane, address, kubelet):
    """The Node the kubelet would register, with kubeadm's control-plane label and taints."""
    args = extra_args(registration.get("kubeletExtraArgs"))
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
    for pair in (args.get("node-labels") or "").split(","):
        if "=" in pair:
            key, _sep, value = pair.partition("=")
            labels[key.strip()] = value.strip()
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
    taints = registration.get("taints")
    if taints is None:
        taints = [dict(CP_TAINT)] if control_plane else []
    taints = [dict(taint) for taint in taints]
    if args.get("cloud-provider") == "external":
        taints.append({"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"})
    spec = {"taints": taints} if taints else {}
    provider_id = args.get("provider-id") or (kubelet or {}).get("providerID")
    if provider_id:
        spec["providerID"] = provider_id
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {"kubeadm.alpha.kubernetes.io/cri-socket": registration.get("criSocket") or DEFAULT_CRI,
                                         "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": spec,
            "status": {"addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                       "capacity": {"cpu": str(os.cpu_count() or 2), "memory": "4010364Ki", "pods": "110", "ephemeral-storage": "20134592Ki"},
                       "nodeInfo": {"kubeletVersion": ctx.version, "kubeProxyVersion": ctx.version, "containerRuntimeVersion": "containerd://1.7.24",
                                    "operatingSystem": "linux", "architecture": "amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "", "bootID": ""}}}


def node_name(flags_, registration):
    """--node-name, else nodeRegistration.name trimmed and lowercased as kubeadm's GetHostname does, else the hostname."""
    return flags_.get("node-name") or lib.registration_name(registration) or os.uname().nodename.lower()


def bind_port_flag(flags_):
    """--apiserver-bind-port is an int32 flag in kubeadm: cobra refuses what does not parse."""
    value = flags_.get("apiserver-bind-port")
    if value is None:
        return None
    if not lib.re.match(r"^[+-]?[0-9]+\Z", value) or not -2 ** 31 <= int(value) < 2 ** 31:
        raise StandInError('invalid argument "%s" for "--apiserver-bind-port" flag: strconv.ParseInt: parsing "%s": %s'
                           % (value, value, "invalid syntax" if not lib.re.match(r"^[+-]?[0-9]+\Z", value) else "value out of range"))
    return int(value)


def static_pod(ctx, name, cluster, version, advertise):
    component = {"kube-apiserver": "apiServer", "kube-controller-manager": "controllerManager", "kube-scheduler": "scheduler"}.get(name)
    settings = (cluster.get(component) or {}) if component else ((cluster.get("etcd") or {}).get("local") or {})
    args = extra_args(settings.get("extraArgs"))
    image = "%s/%s:%s" % (cluster.get("imageRepository") or "registry.k8s.io", name, version if name != "etcd" else "3.5.15-0")
    command = [name] + ["--%s=%s" % (key, value) for key, value in sorted(args.items())]
    if name == "kube-apiserver":
        command.append("--advertise-address=%s" % advertise)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"component": name, "tier": "control-plane"},
                         "annotations": {"kubecluster.aws/stand-in": "static pod manifest written by the kubeadm stand-in"}},
            "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical", "containers": [{"name": name, "image": image, "command": command}]}}


def write_static_pods(ctx, cluster, advertise, names):
    """The manifests of the cluster's kubernetesVersion, as kubeadm writes them: a join takes it from the kubeadm-config
    ConfigMap, not from its own version (so Cluster API's KubeadmControlPlane raises it there before a rollout)."""
    version = cluster.get("kubernetesVersion") or ctx.version
    for name in names:
        lib.write_file(ctx.path("%s/%s.yaml" % (MANIFESTS, name)), stand_in_yaml.dump(static_pod(ctx, name, cluster, version, advertise)), 0o600)


def add_etcd_member(ctx, client, name, address):
    """Stacked etcd gains this node's member: init's etcd starts as the first one, a control-plane join adds one
    (control-plane-join/etcd). The API emulator keeps the member list."""
    client.request("POST", "/stand-in/etcd/members", {"name": name, "peerURLs": [lib.etcd_peer_url(address)],
                                                      "clientURLs": ["https://%s:2379" % address]})
    ctx.output.print("[etcd] Added etcd member %s (%s) to the local/stacked etcd cluster" % (name, lib.etcd_peer_url(address)))


def write_control_plane_files(ctx, cluster, advertise, server, admin_token, node, pods=STATIC_PODS):
    ca_pem = ctx.ca_pem()
    write_static_pods(ctx, cluster, advertise, pods)
    ctx.output.print('[control-plane] Using manifest folder "/etc/kubernetes/manifests"')
    os.makedirs(ctx.path(ETCD_DIR + "/member/snap"), exist_ok=True)
    local = "https://%s:6443" % advertise
    lib.write_kubeconfig(ctx.path("/etc/kubernetes/admin.conf"), server, ca_pem, "kubernetes-admin", admin_token)
    for conf, user in (("controller-manager.conf", "system:kube-controller-manager"), ("scheduler.conf", "system:kube-scheduler")):
        lib.write_kubeconfig(ctx.path("/etc/kubernetes/" + conf), local, ca_pem, user, admin_token)
    ctx.output.print('[kubeconfig] Writing "admin.conf" kubeconfig file')
    return node


def write_placeholder_certs(ctx, names):
    for name in names:
        path = ctx.path("%s/%s" % (PKI, name))
        if not os.path.exists(path):
            lib.write_file(path, "# kubecluster.aws stand-in placeholder for %s\n" % name, 0o600 if name.endswith(".key") else 0o644)


def cluster_defaults(ctx, cluster, endpoint):
    config = json.loads(json.dumps(cluster or {}))
    config["apiVersion"] = config.get("apiVersion") or ctx.api_version
    config["kind"] = "ClusterConfiguration"
    config.setdefault("kubernetesVersion", ctx.version)
    config["controlPlaneEndpoint"] = endpoint
    config.setdefault("certificatesDir", PKI)
    config.setdefault("clusterName", "kubernetes")
    config.setdefault("imageRepository", "registry.k8s.io")
    networking = config.setdefault("networking", {})
    networking.setdefault("dnsDomain", "cluster.local")
    networking.setdefault("serviceSubnet", "10.96.0.0/12")
    config.setdefault("etcd", {}).setdefault("local", {}).setdefault("dataDir", ETCD_DIR)
    return config


def endpoint_server(endpoint):
    host, _sep, port = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "6443")
    return "https://%s:%s" % (host or endpoint, port or "6443")


def wait_for_api(ctx, client, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            client.request("GET", "/healthz")
            return
        except (StandInError, lib.ApiError) as error:
            last = error
            time.sleep(1)
    raise StandInError("[api-check] The API server is not healthy after %ds\n\nerror execution phase wait-control-plane: could not initialize a Kubernetes "
                       "cluster: %s" % (timeout, last))


def create_token(client, token, ttl_seconds, description="", usages=("authentication", "signing"), groups=(lib.DEFAULT_TOKEN_GROUP,)):
    secret = lib.token_secret(token, ttl_seconds, description, usages, groups)
    return client.create_or_replace("/api/v1/namespaces/kube-system/secrets", secret)


def upload_certs(ctx, client, key):
    """The kubeadm-certs Secret, encrypted with the certificate key, owned by a 2 h token."""
    data = {}
    for name in SHARED_CERTS:
        path = ctx.path("%s/%s" % (PKI, name))
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as error:
            raise StandInError("error execution phase upload-certs: error uploading certs: failed to load a certificate or key: open %s/%s: %s"
                               % (PKI, name, error.strerror.lower()))
        data[name.replace("/", "-")] = lib.encrypt_with_key(key, content)
    owner = create_token(client, lib.generate_token(), lib.CERTS_TTL_SECONDS, "Proxy for managing TTL for the kubeadm-certs secret", usages=(), groups=())
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": lib.CERTS_SECRET, "namespace": "kube-system",
                           "annotations": {"kubecluster.aws/stand-in-key-sha256": lib.hashlib.sha256(key.encode()).hexdigest()},
                           "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                                "blockOwnerDeletion": True, "controller": True}]},
              "data": data}
    client.create_or_replace("/api/v1/namespaces/kube-system/secrets", secret)
    ctx.output.print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')


def create_addons(ctx, client, cluster, skip):
    if not ({"addon", "addon/all", "addon/coredns"} & skip) and not (cluster.get("dns") or {}).get("disabled"):
        labels = {"k8s-app": "kube-dns"}
        client.create_or_replace("/api/v1/namespaces/kube-system/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n}\n"}})
        client.create_or_replace("/apis/apps/v1/namespaces/kube-system/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.11.3"}],
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, dict(CP_TAINT)]}}}})
        networking = cluster.get("networking") or {}
        first = (networking.get("serviceSubnet") or "10.96.0.0/12").split("/")[0].split(".")
        client.create_or_replace("/api/v1/namespaces/kube-system/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {"clusterIP": ".".join(first[:3] + [str(int(first[3]) + 10)]), "selector": labels,
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}})
        ctx.output.print("[addons] Applied essential addon: CoreDNS")
    if not ({"addon", "addon/all", "addon/kube-proxy"} & skip) and not (cluster.get("proxy") or {}).get("disabled"):
        labels = {"k8s-app": "kube-proxy"}
        client.create_or_replace("/api/v1/namespaces/kube-system/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": stand_in_yaml.dump({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                                                        "clusterCIDR": (cluster.get("networking") or {}).get("podSubnet", "")})}})
        client.create_or_replace("/apis/apps/v1/namespaces/kube-system/daemonsets", {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": labels},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True, "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:%s" % ctx.version}]}}}})
        ctx.output.print("[addons] Applied essential addon: kube-proxy")


def join_command(endpoint, token, ca_hash, certificate_key=None):
    command = "kubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s" % (endpoint, token, ca_hash)
    if certificate_key:
        command += " \\\n\t--control-plane --certificate-key %s" % certificate_key
    return command


# -- init ------------------------------------------------------------------------------------------------
def init_config_from_flags(ctx, flags_):
    init = {"nodeRegistration": {}, "localAPIEndpoint": {}}
    cluster = {"networking": {}}
    if flags_.get("apiserver-advertise-address"):
        init["localAPIEndpoint"]["advertiseAddress"] = flags_.get("apiserver-advertise-address")
    if bind_port_flag(flags_) is not None:
        init["localAPIEndpoint"]["bindPort"] = bind_port_flag(flags_)
    if flags_.get("node-name"):
        init["nodeRegistration"]["name"] = flags_.get("node-name")
    if flags_.get("cri-socket"):
        init["nodeRegistration"]["criSocket"] = flags_.get("cri-socket")
    if flags_.get("certificate-key"):
        init["certificateKey"] = flags_.get("certificate-key")
    if flags_.get("token"):
        init["bootstrapTokens"] = [{"token": flags_.get("token"), "ttl": flags_.get("token-ttl", "24h0m0s")}]
    for flag, field in (("control-plane-endpoint", "controlPlaneEndpoint"), ("kubernetes-version", "kubernetesVersion"),
                        ("image-repository", "imageRepository")):
        if flags_.get(flag):
            cluster[field] = flags_.get(flag)
    for flag, field in (("pod-network-cidr", "podSubnet"), ("service-cidr", "serviceSubnet"), ("service-dns-domain", "dnsDomain")):
        if flags_.get(flag):
            cluster["networking"][field] = flags_.get(flag)
    if flags_.get("apiserver-cert-extra-sans"):
        cluster["apiServer"] = {"certSANs": flags_.get("apiserver-cert-extra-sans")}
    kinds = {"InitConfiguration": dict(init, apiVersion=ctx.api_version, kind="InitConfiguration"),
             "ClusterConfiguration": dict(cluster, apiVersion=ctx.api_version, kind="ClusterConfiguration")}
    warnings = []
    errors = lib.semantic_errors(kinds, ctx.minor, warnings)
    for warning in warnings:
        ctx.output.warn(warning)
    if errors:
        raise StandInError("\n".join(errors))
    return kinds


def cmd_init(ctx, argv):
    if argv[:1] == ["phase"]:
        return cmd_init_phase(ctx, argv[1:])
    flags_ = flags(argv, INIT_FLAGS, "init")
    if flags_.positional:
        raise StandInError('unknown command "%s" for "kubeadm init"' % flags_.positional[0])
    lib.check_mixed_with_config(flags_)
    if flags_.get("config"):
        kinds = ctx.load(flags_.get("config"), {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"})
    else:
        kinds = init_config_from_flags(ctx, flags_)
    init = kinds.get("InitConfiguration") or {}
    cluster = kinds.get("ClusterConfiguration") or {}
    registration = init.get("nodeRegistration") or {}
    skip = set(flags_.get("skip-phases") or []) | set(init.get("skipPhases") or [])
    if not cluster.get("kubernetesVersion"):
        ctx.output.warn('W0101 00:00:00.000000       1 version.go:104] could not fetch a Kubernetes version from the internet: unable to get URL '
                        '"https://dl.k8s.io/release/stable-1.txt"\nW0101 00:00:00.000000       1 version.go:105] falling back to the local client version: %s'
                        % ctx.version)
    lib.check_kubernetes_version(cluster.get("kubernetesVersion"), ctx.version, ctx.output)
    endpoint = cluster.get("controlPlaneEndpoint")
    if not endpoint:
        raise StandInError("stand-in: ClusterConfiguration.controlPlaneEndpoint (or --control-plane-endpoint) is required: without a stable endpoint "
                           "no further control-plane node can join (\"unable to add a new control plane instance to a cluster that doesn't have a stable "
                           "controlPlaneEndpoint address\"); kubecluster.aws puts the API load balancer there")
    version = cluster.get("kubernetesVersion") or ctx.version
    ctx.output.print("[init] Using Kubernetes version: %s" % version)
    require_root(ctx)
    name = node_name(flags_, registration)
    cri = registration.get("criSocket") or DEFAULT_CRI
    ignored = list(flags_.get("ignore-preflight-errors") or []) + list(registration.get("ignorePreflightErrors") or [])
    if "preflight" not in skip:
        preflight(ctx, control_plane_checks(ctx) + node_checks(ctx, cri, kinds.get("KubeletConfiguration")), ignored)
    if flags_.get("dry-run") or init.get("dryRun"):
        ctx.output.print("[dryrun] Would perform init; nothing was written")
        return 0
    server = endpoint_server(endpoint)
    ca_pem = ctx.ca_pem()
    admin_token = ctx.settings.get("admin_token")
    advertise = (init.get("localAPIEndpoint") or {}).get("advertiseAddress") or lib.node_ip(ctx.settings, server.split("//")[1].rsplit(":", 1)[0])
    # certs phase: the cluster CA is the emulator's; the other files only need to exist
    lib.write_file(ctx.path(PKI + "/ca.crt"), ca_pem, 0o644)
    with open(ctx.settings["ca_key"], "rb") as handle:
        lib.write_file(ctx.path(PKI + "/ca.key"), handle.read(), 0o600)
    write_placeholder_certs(ctx, [name for name in SHARED_CERTS if not name.startswith("ca.")] + list(OTHER_CERTS))
    ctx.output.print('[certs] Using certificateDir folder "/etc/kubernetes/pki"')
    write_control_plane_files(ctx, cluster, advertise, server, admin_token, name)
    lib.write_kubeconfig(ctx.path("/etc/kubernetes/super-admin.conf"), server, ca_pem, "kubernetes-super-admin", admin_token)
    config = kubelet_config(ctx, kinds.get("KubeletConfiguration"), cluster)
    client = lib.ApiClient(server, ca_pem, admin_token)
    # Real kubeadm signs kubelet.conf's client certificate locally, before any API server runs: behind a load balancer
    # (tests/localaws) the API answers only once the kubelet runs the kube-apiserver static pod. So the node's
    # credential is asked of the emulator after the API check, and kubelet.conf exists (placeholder) before.
    lib.write_kubeconfig(ctx.path("/etc/kubernetes/kubelet.conf"), server, ca_pem, "system:node:%s" % name, "pending")
    write_kubelet_files(ctx, config, registration)
    restart_kubelet(ctx)
    # the kubelet now runs the etcd static pod: a one-member etcd cluster. The emulator keeping the member list is
    # reached through the load balancer, which forwards only once its health check found the kubelet's API port.
    wait_for_api(ctx, client)
    add_etcd_member(ctx, client, name, advertise)
    lib.crash_after("init", "kubelet-start")
    node_token = client.request("POST", "/stand-in/node-credentials", {"nodeName": name})["token"]
    lib.write_kubeconfig(ctx.path("/etc/kubernetes/kubelet.conf"), server, ca_pem, "system:node:%s" % name, node_token)
    stored_cluster = cluster_defaults(ctx, cluster, endpoint)
    client.create_or_replace("/api/v1/namespaces/kube-system/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": stand_in_yaml.dump(stored_cluster)}})
    client.create_or_replace("/api/v1/namespaces/kube-system/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
        "data": {"kubelet": stand_in_yaml.dump(config)}})
    ctx.output.print('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    lib.crash_after("init", "upload-config")
    node = node_object(ctx, name, registration, True, advertise, kinds.get("KubeletConfiguration"))
    client.create_or_replace("/api/v1/nodes", node)
    ctx.output.print("[mark-control-plane] Marking the node %s as control-plane by adding the labels: [node-role.kubernetes.io/control-plane "
                     "node.kubernetes.io/exclude-from-external-load-balancers]" % name)
    certificate_key = None
    if flags_.get("upload-certs"):
        certificate_key = init.get("certificateKey") or flags_.get("certificate-key") or lib.generate_certificate_key()
        upload_certs(ctx, client, certificate_key)
        if not flags_.get("skip-certificate-key-print"):
            ctx.output.print("[upload-certs] Using certificate key:\n%s" % certificate_key)
    # SetDefaults_BootstrapTokens / SetBootstrapTokensDynamicDefaults: one token if none, a random value where the token is unset
    tokens = [dict(token, token=token.get("token") or lib.generate_token()) for token in init.get("bootstrapTokens") or [{"ttl": "24h0m0s"}]]
    for token in tokens:
        ttl = lib.stand_in_schema.parse_duration(token.get("ttl", "24h0m0s"))
        create_token(client, token["token"], ttl, token.get("description", ""), tuple(token.get("usages") or ("authentication", "signing")),
                     tuple(token.get("groups") or (lib.DEFAULT_TOKEN_GROUP,)))
    ctx.output.print("[bootstrap-token] Using token: %s" % tokens[0]["token"])
    cluster_info = stand_in_yaml.dump({"apiVersion": "v1", "kind": "Config", "preferences": {},
                                       "clusters": [{"name": "", "cluster": {"certificate-authority-data": lib.b64(ca_pem), "server": server}}],
                                       "contexts": None, "current-context": "", "users": None})
    client.create_or_replace("/api/v1/namespaces/kube-public/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": {"kubeconfig": cluster_info}})
    ctx.output.print('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    create_addons(ctx, client, cluster, skip)
    token_line = tokens[0]["token"] if not flags_.get("skip-token-print") else "<value withheld>"
    ca_hash = lib.ca_cert_hash(ca_pem)
    ctx.output.print("\nYour Kubernetes control-plane has initialized successfully!\n\n"
                     "To start using your cluster, you need to run the following as a regular user:\n\n"
                     "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n")
    if certificate_key:
        ctx.output.print("You can now join any number of control-plane nodes running the following command on each as root:\n\n  %s\n"
                         % join_command(endpoint, token_line, ca_hash, certificate_key if not flags_.get("skip-certificate-key-print") else "<value withheld>"))
        ctx.output.print("Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n"
                         "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n"
                         '"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n')
    ctx.output.print("Then you can join any number of worker nodes by running the following on each as root:\n\n%s"
                     % join_command(endpoint, token_line, ca_hash))
    return 0


def cmd_init_phase(ctx, argv):
    if argv[:1] != ["upload-certs"]:
        raise StandInError("stand-in: `kubeadm init phase %s` is not implemented by the kubeadm stand-in (only upload-certs is)" % " ".join(argv[:1]))
    flags_ = flags(argv[1:], UPLOAD_CERTS_FLAGS, "init phase upload-certs")
    lib.check_mixed_with_config(flags_)
    key = flags_.get("certificate-key")
    if flags_.get("config"):
        kinds = ctx.load(flags_.get("config"), {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"})
        key = key or (kinds.get("InitConfiguration") or {}).get("certificateKey")
    if not flags_.get("upload-certs"):
        ctx.output.print("[upload-certs] Skipping phase. Please see --upload-certs")
        return 0
    require_root(ctx)
    client = lib.client_from_kubeconfig(ctx.path(flags_.get("kubeconfig") or ADMIN_CONF) if not flags_.get("kubeconfig") else flags_.get("kubeconfig"))
    key = key or lib.generate_certificate_key()
    if lib.certificate_key_errors(key, "certificateKey"):
        raise StandInError(lib.certificate_key_errors(key, "certificateKey")[0])
    upload_certs(ctx, client, key)
    if not flags_.get("skip-certificate-key-print"):
        ctx.output.print("[upload-certs] Using certificate key:\n%s" % key)
    return 0


# -- join -------------------------------------------------------------------------------------------------
def join_config_from_flags(ctx, flags_):
    token = flags_.get("token")
    discovery_token = flags_.get("discovery-token") or token
    discovery = {}
    if flags_.get("discovery-file"):
        discovery["file"] = {"kubeConfigPath": flags_.get("discovery-file")}
    elif discovery_token or flags_.positional:
        discovery["bootstrapToken"] = {"token": discovery_token or "", "apiServerEndpoint": flags_.positional[0] if flags_.positional else "",
                                       "caCertHashes": flags_.get("discovery-token-ca-cert-hash") or [],
                                       "unsafeSkipCAVerification": bool(flags_.get("discovery-token-unsafe-skip-ca-verification"))}
    if flags_.get("tls-bootstrap-token") or token:
        discovery["tlsBootstrapToken"] = flags_.get("tls-bootstrap-token") or token
    join = {"apiVersion": ctx.api_version, "kind": "JoinConfiguration", "discovery": discovery, "nodeRegistration": {}}
    if flags_.get("cri-socket"):
        join["nodeRegistration"]["criSocket"] = flags_.get("cri-socket")
    if flags_.get("node-name"):
        join["nodeRegistration"]["name"] = flags_.get("node-name")
    if flags_.get("control-plane"):
        join["controlPlane"] = {"localAPIEndpoint": {}}
        if bind_port_flag(flags_) is not None:
            join["controlPlane"]["localAPIEndpoint"]["bindPort"] = bind_port_flag(flags_)
        if flags_.get("certificate-key"):
            join["controlPlane"]["certificateKey"] = flags_.get("certificate-key")
        if flags_.get("apiserver-advertise-address"):
            join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] = flags_.get("apiserver-advertise-address")
    warnings = []
    errors = lib.semantic_errors({"JoinConfiguration": join}, ctx.minor, warnings)
    for warning in warnings:
        ctx.output.warn(warning)
    if errors:
        raise StandInError("\n".join(errors) + "\nTo see the stack trace of this error execute with --v=5 or higher")
    return {"JoinConfiguration": join}


def discover(ctx, discovery):
    """Token discovery as kubeadm does it: fetch cluster-info, check its JWS with the token, pin the CA."""
    token_discovery = discovery.get("bootstrapToken")
    if not token_discovery:
        raise StandInError("stand-in: file discovery is not implemented; use bootstrap token discovery")
    endpoint = token_discovery["apiServerEndpoint"]
    token_id, token_value = lib.TOKEN_RE.match(token_discovery["token"]).groups()
    ctx.output.print("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...")
    insecure = lib.ApiClient(endpoint_server(endpoint), None)
    try:
        cluster_info = insecure.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    except StandInError as error:
        raise StandInError("error execution phase preflight: couldn't validate the identity of the API Server: %s" % error)
    except lib.ApiError as error:
        raise StandInError("error execution phase preflight: couldn't validate the identity of the API Server: failed to request the cluster-info "
                           "ConfigMap: %s" % error)
    data = cluster_info.get("data") or {}
    signature = data.get("jws-kubeconfig-" + token_id)
    if not signature:
        raise StandInError("error execution phase preflight: couldn't validate the identity of the API Server: there is no JWS signed token in the "
                           'cluster-info ConfigMap. This token id "%s" is invalid for this cluster, or it has expired. Use "kubeadm token create" '
                           "on the control-plane node to create a new valid token" % token_id)
    if signature != lib.jws_detached(data.get("kubeconfig", ""), token_id, token_value):
        raise StandInError("error execution phase preflight: couldn't validate the identity of the API Server: failed to verify JWS signature of received "
                           "cluster info object, can't trust this API Server")
    info = stand_in_yaml.load(data["kubeconfig"])
    cluster = info["clusters"][0]["cluster"]
    ca_pem = lib.base64.b64decode(cluster["certificate-authority-data"])
    found = lib.ca_cert_hash(ca_pem)
    if not token_discovery.get("unsafeSkipCAVerification") and found not in (token_discovery.get("caCertHashes") or []):
        raise StandInError('error execution phase preflight: couldn\'t validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is '
                           'invalid: none of the public keys "%s" are pinned' % found)
    return cluster["server"], ca_pem


def cmd_join(ctx, argv):
    flags_ = flags(argv, JOIN_FLAGS, "join")
    lib.check_mixed_with_config(flags_)
    if flags_.get("config"):
        if flags_.positional:
            raise StandInError("can not mix '--config' with arguments [%s]" % flags_.positional[0])
        kinds = ctx.load(flags_.get("config"), {"JoinConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"})
        if "JoinConfiguration" not in kinds:
            raise StandInError("no JoinConfiguration kind was found in the YAML file %s" % flags_.get("config"))
    else:
        kinds = join_config_from_flags(ctx, flags_)
    join = kinds["JoinConfiguration"]
    registration = join.get("nodeRegistration") or {}
    control_plane = join.get("controlPlane")
    skip = set(flags_.get("skip-phases") or []) | set(join.get("skipPhases") or [])
    require_root(ctx)
    cri = registration.get("criSocket") or DEFAULT_CRI
    ignored = list(flags_.get("ignore-preflight-errors") or []) + list(registration.get("ignorePreflightErrors") or [])
    checks = [file_available(ctx, "/etc/kubernetes/kubelet.conf"), file_available(ctx, "/etc/kubernetes/bootstrap-kubelet.conf"),
              file_available(ctx, PKI + "/ca.crt")] + node_checks(ctx, cri, None)
    if control_plane is not None:
        checks += control_plane_checks(ctx)
    if "preflight" not in skip:
        preflight(ctx, checks, ignored)
    discovery = join.get("discovery") or {}
    server, ca_pem = discover(ctx, discovery)
    tls_token = discovery.get("tlsBootstrapToken") or (discovery.get("bootstrapToken") or {}).get("token")
    client = lib.ApiClient(server, ca_pem, tls_token)
    try:
        stored = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        kubelet_cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    except lib.ApiError as error:
        raise StandInError("error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: %s" % error)
    cluster = stand_in_yaml.load(stored["data"]["ClusterConfiguration"])
    if control_plane is not None:  # kubeadm's defaulting of the fetched config: a control plane too old for this kubeadm fails
        lib.check_kubernetes_version(cluster.get("kubernetesVersion"), ctx.version, ctx.output)
    name = node_name(flags_, registration)
    existing = client.get("/api/v1/nodes/%s" % name, missing_ok=True)
    if existing and any(c.get("type") == "Ready" and c.get("status") == "True" for c in (existing.get("status") or {}).get("conditions") or []):
        raise StandInError("error execution phase kubelet-start: a Node with name %r and status \"Ready\" already exists in the cluster. You must delete the "
                           "existing Node or change the name of this new joining Node" % name)
    address = (control_plane or {}).get("localAPIEndpoint", {}).get("advertiseAddress") if control_plane else None
    address = address or lib.node_ip(ctx.settings, server.split("//")[1].rsplit(":", 1)[0])
    if flags_.get("dry-run") or join.get("dryRun"):
        ctx.output.print("[dryrun] Would join the cluster; nothing was written")
        return 0
    if control_plane is not None:
        join_control_plane_files(ctx, client, cluster, control_plane, server, address)
    lib.write_file(ctx.path(PKI + "/ca.crt"), ca_pem, 0o644)
    node_token = client.request("POST", "/stand-in/node-credentials", {"nodeName": name})["token"]
    lib.write_kubeconfig(ctx.path("/etc/kubernetes/kubelet.conf"), server, ca_pem, "system:node:%s" % name, node_token)
    write_kubelet_files(ctx, stand_in_yaml.load(kubelet_cm["data"]["kubelet"]), registration)
    restart_kubelet(ctx)
    # the kubelet registers its Node; kubeadm's mark-control-plane adds the control-plane label and taint later
    node = node_object(ctx, name, registration, False, address, None)
    ctx.output.print("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    if existing:
        node["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        client.request("PUT", "/api/v1/nodes/%s" % name, node)
    else:
        client.request("POST", "/api/v1/nodes", node)
    lib.crash_after("join", "kubelet-start")
    if control_plane is not None:
        add_etcd_member(ctx, lib.etcd_client(ctx.settings), name, address)
        write_static_pods(ctx, cluster, address, ("etcd",))
        ctx.output.print('[etcd] Creating static Pod manifest for "etcd"')
        lib.crash_after("join", "control-plane-join/etcd")
        mark_control_plane(client, name, node_object(ctx, name, registration, True, address, None))
        ctx.output.print("[mark-control-plane] Marking the node %s as control-plane by adding the labels: [node-role.kubernetes.io/control-plane "
                         "node.kubernetes.io/exclude-from-external-load-balancers]" % name)
        ctx.output.print("\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to "
                         "apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label "
                         "and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to "
                         "the local/stacked etcd cluster.\n")
    else:
        ctx.output.print("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n"
                         "* The Kubelet was informed of the new secure connection details.\n\n"
                         "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")
    return 0


def mark_control_plane(client, name, marked):
    """kubeadm's mark-control-plane: the control-plane labels and taints on the Node the kubelet registered."""
    for _attempt in range(5):
        current = client.request("GET", "/api/v1/nodes/%s" % name)
        current["metadata"].setdefault("labels", {}).update(marked["metadata"]["labels"])
        taints = current.setdefault("spec", {}).setdefault("taints", [])
        taints.extend(taint for taint in marked["spec"].get("taints", []) if taint["key"] not in [known["key"] for known in taints])
        try:
            return client.request("PUT", "/api/v1/nodes/%s" % name, current)
        except lib.ApiError as error:
            if error.status != 409:
                raise
    raise StandInError("error execution phase control-plane-join/mark-control-plane: error applying control-plane label and taints: conflict")


def join_control_plane_files(ctx, client, cluster, control_plane, server, address):
    if not cluster.get("controlPlaneEndpoint"):
        raise StandInError("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n"
                           "unable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\n"
                           "Please ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n"
                           "* The certificates that must be shared among control plane instances are provided.\n")
    key = control_plane.get("certificateKey")
    if not key:
        if not os.path.exists(ctx.path(PKI + "/ca.crt")):
            raise StandInError("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n"
                               "[failure loading certificate for CA: couldn't load the certificate file /etc/kubernetes/pki/ca.crt: open "
                               "/etc/kubernetes/pki/ca.crt: no such file or directory, failure loading key for service account: couldn't load the private "
                               "key file /etc/kubernetes/pki/sa.key: open /etc/kubernetes/pki/sa.key: no such file or directory]\n\n"
                               "Please ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n"
                               "* The certificates that must be shared among control plane instances are provided.\n")
    else:
        ctx.output.print('[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
        secret = client.get("/api/v1/namespaces/kube-system/secrets/%s" % lib.CERTS_SECRET, missing_ok=True)
        too_old = secret and time.time() - lib.parse_rfc3339(secret["metadata"]["creationTimestamp"]) > lib.CERTS_TTL_SECONDS
        if not secret or too_old:
            raise StandInError('error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret '
                               '"kubeadm-certs" was not found in the "kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase '
                               'upload-certs --upload-certs` on a control plane to generate a new one')
        for name in SHARED_CERTS:
            content = lib.decrypt_with_key(key, secret["data"][name.replace("/", "-")])
            lib.write_file(ctx.path("%s/%s" % (PKI, name)), content, 0o600 if name.endswith(".key") else 0o644)
    write_placeholder_certs(ctx, OTHER_CERTS)
    admin_token = ctx.settings.get("admin_token")
    # etcd's manifest comes with its member, in control-plane-join/etcd
    write_control_plane_files(ctx, cluster, address, server, admin_token, None, [name for name in STATIC_PODS if name != "etcd"])


# -- reset --------------------------------------------------------------------------------------------------
def cmd_reset(ctx, argv):
    flags_ = flags(argv, RESET_FLAGS, "reset")
    lib.check_mixed_with_config(flags_)
    force = flags_.get("force")
    if flags_.get("config"):
        kinds = ctx.load(flags_.get("config"), {"ResetConfiguration"})
        force = force or (kinds.get("ResetConfiguration") or {}).get("force")
    require_root(ctx)
    if not force:
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower() if not sys.stdin.closed else ""
        if answer not in ("y", "yes"):
            raise StandInError("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue")
    was_control_plane = os.path.exists(ctx.path(MANIFESTS + "/kube-apiserver.yaml"))
    ctx.output.print("[reset] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...")
    if os.path.exists(ctx.path(MANIFESTS + "/etcd.yaml")):
        remove_own_etcd_member(ctx)
    if ctx.settings.get("systemctl") and shutil.which("systemctl"):
        subprocess.run(["systemctl", "stop", "kubelet"], capture_output=True, check=False)
        ctx.output.print("[reset] Stopping the kubelet service")
    removed = []
    for directory in (MANIFESTS, KUBELET_DIR, PKI) + ((ETCD_DIR,) if was_control_plane else ()):
        full = ctx.path(directory)
        if os.path.isdir(full):
            for entry in os.listdir(full):
                path = os.path.join(full, entry)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            removed.append(directory)
    for conf in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf", "scheduler.conf"):
        path = ctx.path("/etc/kubernetes/" + conf)
        if os.path.exists(path):
            os.remove(path)
            removed.append("/etc/kubernetes/" + conf)
    ctx.output.print("[reset] Deleting contents of directories: %s" % removed)
    ctx.output.print("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\n"
                     "The reset process does not reset or clean up iptables rules or IPVS tables.\n\n"
                     "The reset process does not clean your kubeconfig files and you must remove them manually.")
    return 0


def remove_own_etcd_member(ctx):
    """kubeadm reset's remove-etcd-member phase: this node's member (by its peer URL) leaves stacked etcd; a failure
    only warns, as in kubeadm."""
    peer_url = lib.etcd_peer_url(lib.node_ip(ctx.settings))
    try:
        client = lib.etcd_client(ctx.settings)
        if client is None:
            raise StandInError("no admin.conf or kubelet.conf to reach etcd with")
        members = client.request("GET", "/stand-in/etcd/members")["members"]
        for member in members:
            if peer_url in member["peerURLs"]:
                client.request("DELETE", "/stand-in/etcd/members/%x" % member["ID"])
                ctx.output.print("[reset] Removed etcd member %x (%s)" % (member["ID"], peer_url))
    except (StandInError, lib.ApiError) as error:
        ctx.output.warn("[reset] Failed to remove etcd member: %s, please manually remove this etcd member using etcdctl" % error)


# -- tokens and keys -------------------------------------------------------------------------------------------
def cmd_token(ctx, argv):
    if not argv:
        raise StandInError("stand-in: `kubeadm token` needs a subcommand (create, list, delete, generate)")
    sub, rest = argv[0], argv[1:]
    flags_ = flags(rest, TOKEN_FLAGS, "token " + sub)
    if sub == "generate":
        ctx.output.print(lib.generate_token())
        return 0
    require_root(ctx)
    kubeconfig = flags_.get("kubeconfig") or ctx.path(ADMIN_CONF)
    client = lib.client_from_kubeconfig(kubeconfig)
    if sub == "create":
        token = flags_.positional[0] if flags_.positional else lib.generate_token()
        if not lib.TOKEN_RE.match(token):
            raise StandInError('the bootstrap token "%s" was not of the form "^([a-z0-9]{6})\\.([a-z0-9]{16})$"' % token)
        # the flags become InitConfiguration.bootstrapTokens[0], which kubeadm validates (ValidateBootstrapTokens)
        errors = lib.bootstrap_token_errors([{"token": token, "ttl": flags_.get("ttl"), "usages": flags_.get("usages"), "groups": flags_.get("groups")}])
        if errors:
            raise StandInError("\n".join(errors))
        ttl = lib.stand_in_schema.parse_duration(flags_.get("ttl", "24h0m0s"))
        create_token(client, token, ttl, flags_.get("description", ""), tuple(flags_.get("usages") or ("signing", "authentication")),
                     tuple(flags_.get("groups") or (lib.DEFAULT_TOKEN_GROUP,)))
        if flags_.get("print-join-command"):
            server, ca_pem, _token = lib.read_kubeconfig(kubeconfig)
            command = join_command(server.split("//", 1)[1], token, lib.ca_cert_hash(ca_pem), flags_.get("certificate-key"))
            ctx.output.print(command.replace(" \\\n\t", " ") + " ")
        else:
            ctx.output.print(token)
        return 0
    if sub == "list":
        secrets = client.request("GET", "/api/v1/namespaces/kube-system/secrets")["items"]
        ctx.output.print("TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS")
        for secret in secrets:
            if secret.get("type") != "bootstrap.kubernetes.io/token":
                continue
            data = {key: lib.unb64(value) for key, value in (secret.get("data") or {}).items()}
            usages = ",".join(sorted(key[len("usage-bootstrap-"):] for key, value in data.items() if key.startswith("usage-bootstrap-") and value == "true"))
            remaining = lib.parse_rfc3339(data["expiration"]) - time.time() if data.get("expiration") else None
            ctx.output.print("%s.%s   %-10s  %-21s  %-23s  %-12s  %s" % (data.get("token-id"), data.get("token-secret"),
                             "%dh" % (remaining // 3600) if remaining else "<forever>", data.get("expiration", "<never>"), usages,
                             data.get("description", "<none>"), data.get("auth-extra-groups", "")))
        return 0
    if sub == "delete":
        if not flags_.positional:
            raise StandInError("missing argument; 'token delete' is missing token of form \"[a-z0-9]{6}\" or \"[a-z0-9]{6}\\.[a-z0-9]{16}\"")
        for token in flags_.positional:
            token_id = token.split(".")[0]
            try:
                client.request("DELETE", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-%s" % token_id)
            except lib.ApiError as error:
                raise StandInError('failed to delete bootstrap token "%s": %s' % (token_id, error))
            ctx.output.print('bootstrap token "%s" deleted' % token_id)
        return 0
    raise StandInError('unknown command "%s" for "kubeadm token"' % sub)


def cmd_certs(ctx, argv):
    if argv[:1] == ["certificate-key"]:
        ctx.output.print(lib.generate_certificate_key())
        return 0
    if argv[:1] == ["check-expiration"]:
        ctx.output.print("CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n"
                         "admin.conf                 (stand-in)               364d            ca                      no")
        return 0
    raise StandInError("stand-in: `kubeadm certs %s` is not implemented by the kubeadm stand-in" % " ".join(argv[:1]))


# -- config -----------------------------------------------------------------------------------------------------
def images(ctx, version, repository="registry.k8s.io"):
    return ["%s/%s:%s" % (repository, name, version) for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")] + \
        ["%s/coredns/coredns:v1.11.3" % repository, "%s/pause:3.10" % repository, "%s/etcd:3.5.15-0" % repository]


def cmd_config(ctx, argv):
    if not argv:
        raise StandInError("stand-in: `kubeadm config` needs a subcommand")
    sub = argv[0]
    if sub == "validate":
        flags_ = flags(argv[1:], CONFIG_FLAGS, "config validate")
        if not flags_.get("config"):
            raise StandInError('required flag(s) "config" not set')
        ctx.load(flags_.get("config"), None)
        ctx.output.print("ok")
        return 0
    if sub == "images" and argv[1:2] in (["list"], ["pull"]):
        flags_ = flags(argv[2:], CONFIG_FLAGS, "config images")
        version, repository = flags_.get("kubernetes-version") or ctx.version, flags_.get("image-repository") or "registry.k8s.io"
        if flags_.get("config"):
            cluster = ctx.load(flags_.get("config"), {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}).get(
                "ClusterConfiguration") or {}
            version, repository = cluster.get("kubernetesVersion") or version, cluster.get("imageRepository") or repository
        for image in images(ctx, version, repository):
            ctx.output.print(("[config/images] Pulled %s" if argv[1] == "pull" else "%s") % image)
        return 0
    if sub == "print" and argv[1:2] in (["init-defaults"], ["join-defaults"], ["reset-defaults"], ["upgrade-defaults"]):
        kind = {"init-defaults": "InitConfiguration", "join-defaults": "JoinConfiguration", "reset-defaults": "ResetConfiguration",
                "upgrade-defaults": "UpgradeConfiguration"}[argv[1]]
        documents = [{"apiVersion": ctx.api_version, "kind": kind}]
        if kind == "InitConfiguration":
            documents[0].update(bootstrapTokens=[{"token": "abcdef.0123456789abcdef", "ttl": "24h0m0s", "usages": ["signing", "authentication"],
                                                  "groups": [lib.DEFAULT_TOKEN_GROUP]}],
                                localAPIEndpoint={"advertiseAddress": "1.2.3.4", "bindPort": 6443}, nodeRegistration={"criSocket": DEFAULT_CRI, "name": "node"})
            documents.append(cluster_defaults(ctx, {}, ""))
            documents[1].pop("controlPlaneEndpoint")
        ctx.output.print(stand_in_yaml.dump_all(documents).rstrip())
        return 0
    raise StandInError("stand-in: `kubeadm config %s` is not implemented by the kubeadm stand-in" % " ".join(argv[:2]))


# -- upgrade ------------------------------------------------------------------------------------------------------
def cmd_upgrade(ctx, argv):
    if not argv or argv[0] not in ("plan", "apply", "node"):
        raise StandInError("stand-in: `kubeadm upgrade %s` is not implemented by the kubeadm stand-in" % " ".join(argv[:1]))
    sub = argv[0]
    flags_ = flags(argv[1:], UPGRADE_FLAGS, "upgrade " + sub)
    if flags_.get("config"):
        ctx.load(flags_.get("config"), {"UpgradeConfiguration", "ClusterConfiguration", "InitConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"})
    require_root(ctx)
    if sub == "node":
        # As kubeadm: the node follows the cluster's version (kubeadm-config, which `upgrade apply` moved), so on a node
        # upgraded before the apply its control plane stays where the cluster is; kubeadm older than that refuses.
        kubeconfig = ctx.path(ADMIN_CONF) if os.path.exists(ctx.path(ADMIN_CONF)) else ctx.path("/etc/kubernetes/kubelet.conf")
        client = lib.client_from_kubeconfig(kubeconfig)
        stored = stand_in_yaml.load(client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"]["ClusterConfiguration"])
        cluster_version = stored.get("kubernetesVersion")
        if lib.parse_version(cluster_version) > lib.parse_version(ctx.version):
            raise StandInError('[upgrade/version] FATAL: the cluster version "%s" is higher than the kubeadm version "%s". Upgrade kubeadm first '
                               'using the tool you used to install kubeadm' % (cluster_version, ctx.version))
        kubelet_cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")
        lib.write_file(ctx.path(KUBELET_DIR + "/config.yaml"), kubelet_cm["data"]["kubelet"], 0o644)
        if os.path.exists(ctx.path(MANIFESTS + "/kube-apiserver.yaml")):
            ctx.output.print('[upgrade] Upgrading your Static Pod-hosted control plane instance to version "%s"...' % cluster_version)
            for name in STATIC_PODS:
                manifest = static_pod(ctx, name, stored, cluster_version, lib.node_ip(ctx.settings))
                lib.write_file(ctx.path("%s/%s.yaml" % (MANIFESTS, name)), stand_in_yaml.dump(manifest), 0o600)
        else:
            ctx.output.print("[upgrade] Skipping phase. Not a control plane node.")
        ctx.output.print("[upgrade] The configuration for this node was successfully upgraded!\n[upgrade] Now you should go ahead and upgrade the kubelet "
                         "package using your package manager.")
        return 0
    client = lib.client_from_kubeconfig(flags_.get("kubeconfig") or ctx.path(ADMIN_CONF))
    config_map = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    stored = stand_in_yaml.load(config_map["data"]["ClusterConfiguration"])
    current = stored.get("kubernetesVersion")
    if sub == "plan":
        ctx.output.print("[upgrade/versions] Cluster version: %s\n[upgrade/versions] kubeadm version: %s\n\nUpgrade to the latest stable version:\n\n"
                         "COMPONENT   NODE   CURRENT   TARGET\nkube-apiserver       %s   %s\n\n"
                         "You can now apply the upgrade by executing the following command:\n\n"
                         "\tkubeadm upgrade apply %s" % (current, ctx.version, current, ctx.version, ctx.version))
        return 0
    if not flags_.positional:
        raise StandInError("missing one or more required arguments. Required arguments: [version]")
    target = flags_.positional[0]
    target_minor, current_minor = lib.parse_version(target)[1], lib.parse_version(current)[1]
    if lib.parse_version(target) > lib.parse_version(ctx.version):
        raise StandInError('[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to '
                           '"%s" is higher than the kubeadm version "%s". Upgrade kubeadm first using the tool you used to install kubeadm'
                           % (target, ctx.version))
    if target_minor > current_minor + 1:
        raise StandInError('[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to '
                           '"%s" is too high; kubeadm can upgrade only 1 minor version at a time' % target)
    if target_minor < current_minor:
        raise StandInError('[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Specified version to downgrade to '
                           '"%s" is at least one minor release version lower than the current version "%s"' % (target, current))
    if lib.parse_version(ctx.version)[1] > target_minor:
        raise StandInError('[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Kubeadm version %s can only be '
                           'used to upgrade to Kubernetes version %d.%d' % (ctx.version, lib.parse_version(ctx.version)[0], lib.parse_version(ctx.version)[1]))
    if not os.path.exists(ctx.path(MANIFESTS + "/kube-apiserver.yaml")):
        raise StandInError("[upgrade/init config] FATAL: this is not a control-plane node (no %s/kube-apiserver.yaml); run `kubeadm upgrade apply` on "
                           "the first control-plane node" % MANIFESTS)
    if not flags_.get("yes") and not flags_.get("force"):
        raise StandInError("won't proceed; the user didn't answer (Y|y) in order to continue")
    stored["kubernetesVersion"] = target
    config_map["data"]["ClusterConfiguration"] = stand_in_yaml.dump(stored)
    client.request("PUT", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", config_map)
    for name in STATIC_PODS:
        lib.write_file(ctx.path("%s/%s.yaml" % (MANIFESTS, name)), stand_in_yaml.dump(static_pod(ctx, name, stored, target, lib.node_ip(ctx.settings))), 0o600)
    kubelet_cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    lib.write_file(ctx.path(KUBELET_DIR + "/config.yaml"), kubelet_cm["data"]["kubelet"], 0o644)
    ctx.output.print('[upgrade/successful] SUCCESS! Your cluster was upgraded to "%s". Enjoy!' % target)
    return 0


# -- version and dispatch ----------------------------------------------------------------------------------------
def cmd_version(ctx, argv):
    flags_ = flags(argv, dict(COMMON_FLAGS, output="str"), "version")
    output = flags_.get("output", "")
    info = lib.version_info(ctx.version)
    if output == "short":
        ctx.output.print(ctx.version)
    elif output == "json":
        ctx.output.print(json.dumps({"clientVersion": info}, indent=2))
    elif output == "yaml":
        ctx.output.print(stand_in_yaml.dump({"clientVersion": info}).rstrip())
    elif output == "":
        ctx.output.print("kubeadm version: &version.Info{Major:\"%s\", Minor:\"%s\", GitVersion:\"%s\", GitCommit:\"%s\", GitTreeState:\"clean\", "
                         "BuildDate:\"%s\", GoVersion:\"%s\", Compiler:\"gc\", Platform:\"linux/amd64\"}"
                         % (info["major"], info["minor"], info["gitVersion"], info["gitCommit"], info["buildDate"], info["goVersion"]))
    else:
        raise StandInError('error: invalid output format: %s; supported formats are: "", "short", "yaml", "json"' % output)
    return 0


COMMANDS = {"version": cmd_version, "init": cmd_init, "join": cmd_join, "reset": cmd_reset, "token": cmd_token, "certs": cmd_certs,
            "config": cmd_config, "upgrade": cmd_upgrade}


def handle(argv, version, output):
    ctx = Context(version, output)
    if not argv or argv[0] in ("-h", "--help", "help"):
        output.print("kubeadm stand-in (kubecluster.aws tests): %s" % ", ".join(sorted(COMMANDS)))
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        raise StandInError('unknown command "%s" for "kubeadm"\nRun \'kubeadm --help\' for usage.' % argv[0])
    return command(ctx, argv[1:])


def main(baked_version=None):
    return lib.run_main("kubeadm", baked_version, handle)
