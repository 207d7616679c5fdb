"""Fixtures for running the stand-ins directly (no Docker): an API emulator on loopback and fake
hosts, each a temp directory the stand-ins treat as their filesystem root."""

import json
import os
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
STAND_INS = os.path.join(REPO, "tests", "stand_ins")
BIN = os.path.join(STAND_INS, "bin")
if STAND_INS not in sys.path:
    sys.path.insert(0, STAND_INS)

import kube_api_emulator  # noqa: E402
import stand_in_lib  # noqa: E402


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeHost:
    """A directory that a stand-in treats as / (through KUBECLUSTER_STAND_IN_DIR/config.json)."""

    count = 0

    def __init__(self, root, pki, api, version, name):
        self.root = str(root)
        self.name = name
        self.settings_dir = os.path.join(self.root, "etc", "kubecluster-stand-in")
        # each host its own loopback address, so each has its own etcd peer URL
        FakeHost.count += 1
        self.node_ip = "127.0.%d.%d" % (FakeHost.count // 250 % 250, FakeHost.count % 250 + 1)
        self.settings = {"kubernetes_version": version, "ca_cert": os.path.join(pki, "ca.crt"), "ca_key": os.path.join(pki, "ca.key"),
                         "admin_token": api.admin_token, "root": self.root, "node_ip": self.node_ip, "kubelet_health_timeout": 0,
                         "systemctl": False, "require_root": False}
        self.save()
        # what the roles would have set up: a container runtime socket and ip_forward on
        stand_in_lib.write_file(self.path("/var/run/containerd/containerd.sock"), "", 0o600)
        stand_in_lib.write_file(self.path("/proc/sys/net/ipv4/ip_forward"), "1\n", 0o644)

    def save(self):
        stand_in_lib.write_file(os.path.join(self.settings_dir, "config.json"), json.dumps(self.settings), 0o644)

    def set_version(self, version):
        self.settings["kubernetes_version"] = version
        self.save()

    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def exists(self, path):
        return os.path.exists(self.path(path))

    def read(self, path):
        with open(self.path(path), encoding="utf-8") as handle:
            return handle.read()

    def write(self, name, text):
        """A config file in the fake host's /tmp; returns its real path."""
        path = self.path("/tmp/" + name)
        stand_in_lib.write_file(path, text, 0o644)
        return path

    def run(self, binary, *args, stdin=None, timeout=60):
        env = dict(os.environ, KUBECLUSTER_STAND_IN_DIR=self.settings_dir, PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
        env.pop("KUBECONFIG", None)
        return subprocess.run([sys.executable, os.path.join(BIN, binary)] + list(args), capture_output=True, text=True, env=env,
                              input=stdin if stdin is not None else "", timeout=timeout, check=False)

    def calls(self, binary=None):
        path = self.path("/var/log/kubecluster-stand-in/calls.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as handle:
            calls = [json.loads(line) for line in handle if line.strip()]
        return [call for call in calls if binary in (None, call["binary"])]


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("pki"))
    ca_cert, ca_key = stand_in_lib.make_ca(directory)
    stand_in_lib.make_server_cert(directory, ca_cert, ca_key, ["127.0.0.1"])
    return directory


@pytest.fixture
def api(pki):
    with open(os.path.join(pki, "ca.crt"), encoding="utf-8") as handle:
        ca_pem = handle.read()
    emulator = kube_api_emulator.KubeApiEmulator("127.0.0.1", free_port(), os.path.join(pki, "apiserver.crt"), os.path.join(pki, "apiserver.key"),
                                                 admin_token="admin-token-for-tests", ca_pem=ca_pem)
    with emulator:
        yield emulator


@pytest.fixture
def make_host(tmp_path, pki, api):
    """make_host(name, version="v1.31.4") -> FakeHost sharing this test's emulator."""
    def make(name="host", version="v1.31.4"):
        return FakeHost(tmp_path / name, pki, api, version, name)
    return make


@pytest.fixture
def endpoint(api):
    """The emulator's host:port, i.e. what a test passes as controlPlaneEndpoint."""
    return api.url.split("//", 1)[1]
