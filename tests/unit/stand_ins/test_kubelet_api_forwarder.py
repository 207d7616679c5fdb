"""The kubelet stand-in's kube-apiserver port on a local AWS host (tests/localaws): with `api_backend`
in the host settings it forwards TCP to the API emulator while the static pod's manifest exists."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import stand_in_kubelet
import stand_in_lib

BIN = os.path.join(os.path.dirname(os.path.abspath(stand_in_lib.__file__)), "bin")
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def version_through(port, ca_pem, timeout=1):
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False  # the emulator's certificate names 127.0.0.1 and the test reaches it there anyway
    with urllib.request.urlopen("https://127.0.0.1:%d/version" % port, timeout=timeout, context=context) as response:
        return response.status


def test_no_backend_no_forwarder(make_host):
    host = make_host()
    assert stand_in_kubelet.api_forwarder(host.settings) is None


def test_forwards_only_while_the_manifest_exists(make_host, api):
    host = make_host()
    listen = free_port()
    backend = api.url.split("//", 1)[1]
    forwarder = stand_in_kubelet.api_forwarder(dict(host.settings, api_backend=backend, api_listen="127.0.0.1:%d" % listen))
    try:
        assert forwarder.step() is False  # no manifest: nothing listens
        stand_in_lib.write_file(host.path(MANIFEST), "kind: Pod\n", 0o600)
        assert forwarder.step() is True
        assert version_through(listen, api.store.ca_pem) == 200
        os.remove(host.path(MANIFEST))
        assert forwarder.step() is False
        try:
            version_through(listen, api.store.ca_pem)
            reached = True
        except OSError:
            reached = False
        assert not reached
    finally:
        forwarder.stop()


def test_the_kubelet_service_runs_the_forwarder(make_host, api):
    host = make_host()
    listen, health = free_port(), free_port()
    host.settings.update(api_backend=api.url.split("//", 1)[1], api_listen="127.0.0.1:%d" % listen)
    host.save()
    stand_in_lib.write_file(host.path(MANIFEST), "kind: Pod\n", 0o600)
    config = host.write("kubelet.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: %d\n"
                                        "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n" % health)
    env = dict(os.environ, KUBECLUSTER_STAND_IN_DIR=host.settings_dir)
    status = None
    with subprocess.Popen([sys.executable, os.path.join(BIN, "kubelet"), "--config", config], env=env) as process:
        try:
            for _index in range(50):
                try:
                    status = version_through(listen, api.store.ca_pem)
                    break
                except OSError:
                    time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    assert status == 200
