# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The kubelet stand-in: answers --version, and as a service checks its flags and config like the
kubelet does at start (so a wrong kubelet.service / 10-kubeadm.conf fails as it would for real), then
serves /healthz on healthzBindAddress:healthzPort until stopped. It runs no pods."""

import os
import signal
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
    while not stop.wait(1):
        pass
    server.shutdown()
    return 0


def main(baked_version=None):
    return lib.run_main("kubelet", baked_version, handle)
