# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubelet stand-in: answers --version, and as a service checks its flags and config like the
kubelet does at start (so a wrong kubelet.service / 10-kubeadm.conf fails as it would for real), then
serves /healthz on healthzBindAddress:healthzPort until stopped. It runs no pods.

On a local AWS host (tests/localaws) the host settings carry `api_backend` ("<address>:<port>" of the
API emulator of that VPC): while /etc/kubernetes/manifests/kube-apiserver.yaml exists, the kubelet
stand-in then listens on `api_listen` (default 0.0.0.0:6443) and forwards TCP to the emulator, the
way the real kubelet runs the kube-apiserver static pod there; it stops when the manifest is gone.
Without `api_backend` (the node tests) it does nothing of the kind."""

import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stand_in_lib as lib
import stand_in_schema
import stand_in_yaml
from stand_in_lib import StandInError

FLAGS = {name: "str" for name in (
    "config", "kubeconfig", "bootstrap-kubeconfig", "container-runtime-endpoint", "image-service-endpoint", "pod-infra-container-image", "node-ip",
    "cloud-provider", "provider-id", "node-labels", "hostname-override", "register-with-taints", "v", "cgroup-driver", "runtime-request-timeout",
    "root-dir", "cert-dir", "max-pods", "image-credential-provider-config", "image-credential-provider-bin-dir", "node-status-update-frequency",
    "resolv-conf", "feature-gates", "cluster-dns", "cluster-domain", "eviction-hard", "kube-reserved", "system-reserved", "log-file",
    "runtime-cgroups", "kubelet-cgroups", "volume-plugin-dir", "tls-cipher-suites", "tls-min-version", "address", "port", "healthz-port")}
FLAGS.update({"version": "str", "fail-swap-on": "bool", "rotate-certificates": "bool", "register-node": "bool", "help": "bool",
              "logtostderr": "bool", "alsologtostderr": "bool"})


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200 if self.path.startswith("/healthz") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ApiForwarder:
    """The kube-apiserver static pod's port, forwarded to the API emulator while its manifest exists."""

    def __init__(self, backend, listen, manifest):
        host, _sep, port = backend.rpartition(":")
        self.backend = (host, int(port))
        host, _sep, port = listen.rpartition(":")
        self.listen = (host or "0.0.0.0", int(port))
        self.manifest = manifest
        self.server = None

    @property
    def serving(self):
        return self.server is not None

    def step(self):
        """Start or stop listening as the manifest appeared or went; returns whether it serves."""
        wanted = os.path.exists(self.manifest)
        if wanted and self.server is None:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind(self.listen)
            except OSError:
                server.close()  # the port is busy (a previous kubelet still closing): try at the next step
                return False
            server.listen(64)
            self.server = server
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        elif not wanted and self.server is not None:
            self.stop()
        return self.serving

    def stop(self):
        server, self.server = self.server, None
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            server.close()

    def _accept(self, server):
        while self.server is server:
            try:
                client, _address = server.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        try:
            upstream = socket.create_connection(self.backend, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def run(self, stop, interval=1.0):
        while not stop.is_set():
            self.step()
            stop.wait(interval)
        self.stop()


def pump(source, target):
    """Copy bytes one way until either side closes, then close both."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def api_forwarder(config):
    """The forwarder the host settings ask for (`api_backend`), or None."""
    if not config.get("api_backend"):
        return None
    return ApiForwarder(config["api_backend"], config.get("api_listen", "0.0.0.0:6443"),
                        lib.host_path("/etc/kubernetes/manifests/kube-apiserver.yaml", config))


def parse_flags(argv):
    # --version takes an optional value (=raw / =vX.Y.Z) but is usually bare
    fixed = ["--version=true" if arg == "--version" else arg for arg in argv]
    return lib.Flags({"flags": FLAGS, "aliases": {"h": "help"}}, fixed, "kubelet")


def load_config(path, minor):
    try:
        text = lib.read_text(path)
    except OSError as error:
        raise StandInError('E0101 00:00:00.000000       1 run.go:72] "command failed" err="failed to load kubelet config file, path: %s, error: failed to load '
                           'Kubelet config file %s, error failed to read kubelet config file \\"%s\\", error: open %s: %s"'
                           % (path, path, path, path, error.strerror.lower()))
    try:
        config = stand_in_yaml.load(text)
    except stand_in_yaml.YamlError as error:
        raise StandInError('"command failed" err="failed to load kubelet config file, path: %s, error: %s"' % (path, error))
    if not isinstance(config, dict) or config.get("kind") != "KubeletConfiguration" or config.get("apiVersion") != "kubelet.config.k8s.io/v1beta1":
        raise StandInError('"command failed" err="failed to load kubelet config file, path: %s, error: the file is not a kubelet.config.k8s.io/v1beta1 '
                           'KubeletConfiguration"' % path)
    errors = stand_in_schema.decode(config, minor)
    if errors:
        raise StandInError('"command failed" err="failed to load kubelet config file, path: %s, error: %s"' % (path, "; ".join(errors)))
    return config


def report_version(kubeconfig, version, stop, interval=2.0, attempts=60):
    """As the kubelet's node status updates do: once its Node exists, status.nodeInfo.kubeletVersion is this kubelet's
    version (so a kubelet upgraded in place shows in the API after its restart). With the node credentials of
    kubelet.conf, whose user is system:node:<name>; retried while the API or the Node is not there yet."""
    for _attempt in range(attempts):
        try:
            config = stand_in_yaml.load(lib.read_text(kubeconfig))
            user = ((config.get("contexts") or [{}])[0].get("context") or {}).get("user") or ""
            if user.startswith("system:node:"):
                name = user[len("system:node:"):]
                client = lib.client_from_kubeconfig(kubeconfig)
                node = client.request("GET", "/api/v1/nodes/" + name)
                if (node.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion") != version:
                    client.request("PATCH", "/api/v1/nodes/%s/status" % name, {"status": {"nodeInfo": {"kubeletVersion": version}}},
                                   content_type="application/merge-patch+json")
                return
        except (OSError, ValueError, StandInError, lib.ApiError, stand_in_yaml.YamlError):
            pass
        if stop.wait(interval):
            return


def handle(argv, version, output):
    flags = parse_flags(argv)
    if flags.positional:
        raise StandInError("unknown command %r for \"kubelet\"" % flags.positional[0])
    if flags.get("version"):
        output.print("Kubernetes %s" % version)
        return 0
    if flags.get("help"):
        output.print("kubelet stand-in (kubecluster.aws tests)")
        return 0
    config = load_config(flags.get("config"), lib.parse_version(version)[1]) if flags.get("config") else {}
    kubeconfig, bootstrap = flags.get("kubeconfig"), flags.get("bootstrap-kubeconfig")
    if kubeconfig and not os.path.exists(kubeconfig):
        if not bootstrap or not os.path.exists(bootstrap):
            raise StandInError('"command failed" err="failed to run Kubelet: unable to load bootstrap kubeconfig: stat %s: no such file or directory"'
                               % (bootstrap or kubeconfig))
    endpoint = flags.get("container-runtime-endpoint") or config.get("containerRuntimeEndpoint")
    if not endpoint:
        raise StandInError('"command failed" err="failed to validate kubelet configuration, error: invalid configuration: the containerRuntimeEndpoint '
                           'was not specified or empty"')
    host = config.get("healthzBindAddress", "127.0.0.1")
    port = int(config.get("healthzPort", 10248))
    server = ThreadingHTTPServer((host, port), Health)
    server.daemon_threads = True
    output.print("I0101 00:00:00.000000       1 server.go:484] \"Kubelet version\" kubeletVersion=\"%s\"" % version)
    lib.record_call("kubelet", argv, None, time.time(), [{"path": flags.get("config"), "documents": [config]}] if config else [],
                    extra={"event": "started", "healthz": "%s:%d" % (host, port)})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    signal.signal(signal.SIGINT, lambda *_args: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if kubeconfig:
        threading.Thread(target=report_version, args=(kubeconfig, version, stop), daemon=True).start()
    forwarder = api_forwarder(lib.settings())
    if forwarder is not None:
        threading.Thread(target=forwarder.run, args=(stop,), daemon=True).start()
    while not stop.wait(1):
        pass
    if forwarder is not None:
        forwarder.stop()
    server.shutdown()
    return 0


def main(baked_version=None):
    return lib.run_main("kubelet", baked_version, handle)
