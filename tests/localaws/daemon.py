"""The local AWS daemon: moto in process plus a controller that keeps Docker hosts in step with moto's EC2.

Started by ``localaws.py up`` (one process per state directory, in its own session); see README.md.
Every ~1 s it reads moto's backends in process (plan.snapshot), computes what should run
(plan.desired) and converges Docker to it: a network per VPC, a systemd host per instance, a TCP
proxy per network load balancer, and an API emulator per VPC. It writes DIR/status.json for the
CLI and the Python API after each pass.
"""

import argparse
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
for _path in (TESTS, os.path.join(TESTS, "stand_ins"), HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from helpers import test_hosts  # noqa: E402  pylint: disable=wrong-import-position
from helpers.test_hosts import RUN_OPTIONS, docker, write_into  # noqa: E402  pylint: disable=wrong-import-position
import stand_in_lib  # noqa: E402  pylint: disable=wrong-import-position
# tests/localaws, the script's directory
import plan  # noqa: E402  pylint: disable=wrong-import-position

ACCOUNT = "123456789012"
KUBERNETES_VERSION = "v1.31.4"
LOG = logging.getLogger("localaws")
STAND_IN_DIR = "/etc/kubecluster-stand-in"
PREPARED_MARK = "/etc/kubecluster-localaws-prepared"
CONTROLLER = "localaws-controller"
API_PORT = 6443


def label_value(state_dir):
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:12]


def label(state_dir):
    return "kubecluster.aws.localaws=%s" % label_value(state_dir)


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def write_json(path, data):
    stand_in_lib.write_file(path + ".tmp", json.dumps(data, indent=2, sort_keys=True), 0o644)
    os.replace(path + ".tmp", path)


def containers(label_text):
    """{name: {"running": bool, "kind": ...}} of the containers with this label."""
    out = docker("ps", "-a", "--filter", "label=" + label_text, "--format", '{{.Names}}\t{{.State}}\t{{.Label "kubecluster.aws.localaws.kind"}}',
                 check=False).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            found[parts[0]] = {"running": parts[1] == "running", "kind": parts[2]}
    return found


def networks(label_text):
    return set(docker("network", "ls", "--filter", "label=" + label_text, "--format", "{{.Name}}", check=False).stdout.split())


def controller_mounts(state_dir):
    """The repo, the state dir, and the venv and its interpreter where they live outside the repo: same paths inside."""
    paths = [REPO, os.path.abspath(state_dir)]
    venv = os.path.realpath(os.path.join(REPO, ".venv"))
    if os.path.isdir(venv) and not venv.startswith(REPO + os.sep):
        paths.append(venv)
    base = os.path.realpath(sys.base_prefix)
    if base not in ("/usr", "/usr/local") and not any(base.startswith(path + os.sep) for path in paths):
        paths.append(base)
    mounts = []
    for path in paths:
        mounts += ["-v", "%s:%s%s" % (path, path, "" if path in (REPO, os.path.abspath(state_dir)) else ":ro")]
    home = os.path.join(os.path.abspath(state_dir), "controller-home")
    os.makedirs(home, exist_ok=True)
    return mounts + ["-v", "%s:/root" % home]


class Daemon:
    def __init__(self, state_dir, regions, boot_delay=0.0, interval=1.0):
        self.state_dir = os.path.abspath(state_dir)
        self.regions = regions
        self.boot_delay = boot_delay
        self.interval = interval
        self.label = label(self.state_dir)
        self.image = test_hosts.IMAGE
        self.stop_event = threading.Event()
        self.moto = None
        self.url = None
        self.emulators = {}      # vpc id -> {"api": KubeApiEmulator, "ca_cert", "ca_key", "url", "admin_token"}
        self.first_seen = {}     # instance id -> time
        self.busy = set()        # containers being created / prepared
        self.errors = {}         # container -> last error
        self.lock = threading.Lock()
        self.last_shot = {"instances": []}
        self.proxy_targets = {}  # lb name -> listeners written

    # -- moto -------------------------------------------------------------------------------------------
    def start_moto(self):
        os.environ["MOTO_RECORDER_FILEPATH"] = os.path.join(self.state_dir, "recording.jsonl")
        os.environ.pop("MOTO_ENABLE_RECORDING", None)
        from moto.server import ThreadedMotoServer  # pylint: disable=import-outside-toplevel
        from helpers import moto_fixes  # pylint: disable=import-outside-toplevel
        import moto_ips  # pylint: disable=import-outside-toplevel
        moto_fixes.apply()
        moto_ips.apply(moto_ips.PublicIpAllocator(in_use=lambda: moto_ips.addresses_in_use(self.ec2_backends())))
        port = free_port(plan.INTERNET_GATEWAY)
        self.moto = ThreadedMotoServer(ip_address=plan.INTERNET_GATEWAY, port=port, verbose=False)
        self.moto.start()
        self.url = "http://%s:%d" % (plan.INTERNET_GATEWAY, port)

    def ec2_backends(self):
        from moto.backends import get_backend  # pylint: disable=import-outside-toplevel
        return [get_backend("ec2")[ACCOUNT][region] for region in self.regions]

    def backends(self):
        from moto.backends import get_backend  # pylint: disable=import-outside-toplevel
        return {region: (get_backend("ec2")[ACCOUNT][region], get_backend("elbv2")[ACCOUNT][region]) for region in self.regions}

    def read_snapshot(self):
        for _attempt in range(5):  # moto's request threads may change a dict while it is read
            try:
                return plan.snapshot(self.backends())
            except RuntimeError:
                time.sleep(0.05)
        return plan.snapshot(self.backends())

    # -- docker networks and the controller container ------------------------------------------------
    def ensure_internet(self):
        if plan.INTERNET_NETWORK not in networks(self.label):
            docker("network", "create", "--driver", "bridge", "--subnet", plan.INTERNET_SUBNET, "--gateway", plan.INTERNET_GATEWAY,
                   "--ip-range", plan.DOCKER_RANGE, "--label", self.label, plan.INTERNET_NETWORK)

    def ensure_controller(self):
        existing = containers(self.label).get(CONTROLLER)
        if existing and existing["running"]:
            return
        if existing:
            docker("rm", "-f", CONTROLLER, check=False)
        docker("run", "-d", "--name", CONTROLLER, "--hostname", "localaws-controller", "--label", self.label,
               "--label", "kubecluster.aws.localaws.kind=controller", "--network", plan.INTERNET_NETWORK, "-e", "HOME=/root",
               *controller_mounts(self.state_dir), "-w", REPO, "--entrypoint", "sleep", self.image, "infinity")

    # -- emulators ---------------------------------------------------------------------------------------
    def ensure_emulator(self, vpc_id, vpc):
        if vpc_id in self.emulators:
            return self.emulators[vpc_id]
        import kube_api_emulator  # pylint: disable=import-outside-toplevel
        region = next((instance["region"] for instance in self.last_shot["instances"] if instance["vpc_id"] == vpc_id), self.regions[0])
        pki = os.path.join(self.state_dir, "vpcs", vpc_id)
        ca_cert, ca_key = stand_in_lib.make_ca(pki)
        names = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost",
                 "*.%s.elb.amazonaws.com" % region, "*.elb.%s.amazonaws.com" % region)
        cert, key = stand_in_lib.make_server_cert(pki, ca_cert, ca_key, [vpc["gateway"], "127.0.0.1"], names)
        admin_token = secrets.token_hex(24)
        # the AWS cloud controller manager's view of the cloud: a Node's instance (providerID) from moto's EC2
        api = kube_api_emulator.KubeApiEmulator(vpc["gateway"], API_PORT, cert, key, admin_token=admin_token, version=KUBERNETES_VERSION,
                                                ca_pem=stand_in_lib.read_text(ca_cert),
                                                cloud_provider=lambda node_name, _vpc=vpc_id: self.provider_id(_vpc, node_name)).start()
        entry = {"api": api, "ca_cert": ca_cert, "ca_key": ca_key, "url": "https://%s:%d" % (vpc["gateway"], API_PORT), "admin_token": admin_token,
                 "backend": "%s:%d" % (vpc["gateway"], API_PORT)}
        self.emulators[vpc_id] = entry
        LOG.info("API emulator (a stand-in for kube-apiserver) for %s on %s", vpc_id, entry["url"])
        return entry

    def provider_id(self, vpc_id, node_name):
        return plan.provider_id(self.last_shot, vpc_id, node_name)

    # -- hosts ---------------------------------------------------------------------------------------------
    def create_host(self, instance_id, host):
        name = host["container"]
        try:
            docker("rm", "-f", name, check=False)
            docker("run", "-d", "--name", name, "--hostname", host["hostname"], "--label", self.label, "--label", "kubecluster.aws.localaws.kind=host",
                   "--label", "kubecluster.aws.localaws.instance=" + instance_id, "--network", host["network"], "--ip", host["private_ip"],
                   "--network-alias", host["hostname"], *RUN_OPTIONS, self.image, "/sbin/init")
            if host["public_ip"]:
                docker("network", "connect", "--ip", host["public_ip"], plan.INTERNET_NETWORK, name)
            self.prepare_host(host)
            LOG.info("host %s for %s at %s%s", name, instance_id, host["private_ip"], (" / " + host["public_ip"]) if host["public_ip"] else "")
            self.errors.pop(name, None)
        except Exception as error:  # pylint: disable=broad-except  # logged, retried at a later pass
            self.errors[name] = "%s %s" % (error, getattr(error, "stderr", "") or "")
            LOG.error("host %s for %s: %s", name, instance_id, self.errors[name])
        finally:
            with self.lock:
                self.busy.discard(name)

    def prepare_host(self, host):
        """What cloud-init does at first boot (the default user, the key pair) and the stand-ins' host settings."""
        name = host["container"]
        test_hosts.wait_for_boot(name)
        emulator = self.emulators[host["vpc_id"]]
        docker("exec", name, "sh", "-c", "id ubuntu >/dev/null 2>&1 || useradd --create-home --shell /bin/bash ubuntu")
        write_into(name, "/etc/sudoers.d/90-cloud-init-users", "ubuntu ALL=(ALL) NOPASSWD:ALL\n", "0440")
        if host["public_key"]:
            write_into(name, "/home/ubuntu/.ssh/authorized_keys", host["public_key"].strip() + "\n", "0600", "ubuntu:ubuntu")
            docker("exec", name, "sh", "-c", "chmod 0700 /home/ubuntu/.ssh && chown ubuntu:ubuntu /home/ubuntu/.ssh")
        settings = {"kubernetes_version": KUBERNETES_VERSION, "ca_cert": STAND_IN_DIR + "/ca.crt", "ca_key": STAND_IN_DIR + "/ca.key",
                    "admin_token": emulator["admin_token"], "root": "/", "kubelet_health_timeout": 60, "systemctl": True, "require_root": True,
                    "node_ip": host["private_ip"], "api_backend": emulator["backend"]}
        write_into(name, STAND_IN_DIR + "/config.json", json.dumps(settings, indent=2))
        write_into(name, STAND_IN_DIR + "/ca.crt", stand_in_lib.read_text(emulator["ca_cert"]))
        write_into(name, STAND_IN_DIR + "/ca.key", stand_in_lib.read_text(emulator["ca_key"]), "0600")
        write_into(name, PREPARED_MARK, "prepared by the local AWS (tests/localaws)\n")

    def converge_hosts(self, wanted, actual):
        now = time.time()
        for instance_id, host in wanted["hosts"].items():
            name = host["container"]
            self.first_seen.setdefault(instance_id, now)
            with self.lock:
                if name in self.busy:
                    continue
            present = actual.get(name)
            if host["running"]:
                if present is None:
                    if now - self.first_seen[instance_id] < self.boot_delay:
                        continue
                    self.ensure_emulator(host["vpc_id"], wanted["vpcs"][host["vpc_id"]])
                    with self.lock:
                        self.busy.add(name)
                    threading.Thread(target=self.create_host, args=(instance_id, host), daemon=True).start()
                elif not present["running"]:
                    LOG.info("starting %s (instance %s started)", name, instance_id)
                    docker("start", name, check=False)
            elif present is not None and present["running"]:
                LOG.info("stopping %s (instance %s is %s)", name, instance_id, host["state"])
                docker("stop", "-t", "5", name, check=False)
        wanted_names = {host["container"] for host in wanted["hosts"].values()}
        for name, present in actual.items():
            if present["kind"] == "host" and name not in wanted_names:
                with self.lock:
                    if name in self.busy:
                        continue
                LOG.info("removing %s (its instance is terminated or gone)", name)
                docker("rm", "-f", name, check=False)

    # -- load balancers ---------------------------------------------------------------------------------------
    def converge_proxies(self, wanted, actual):
        for lb_name, proxy in wanted["proxies"].items():
            name = proxy["container"]
            targets_file = os.path.join(self.state_dir, "lb", lb_name + ".json")
            if self.proxy_targets.get(lb_name) != proxy["listeners"]:
                write_json(targets_file, {"listeners": proxy["listeners"]})
                self.proxy_targets[lb_name] = proxy["listeners"]
                LOG.info("load balancer %s targets: %s", lb_name, json.dumps(proxy["listeners"]))
            if name not in actual:
                docker("run", "-d", "--name", name, "--hostname", name, "--label", self.label, "--label", "kubecluster.aws.localaws.kind=lb",
                       "--network", proxy["network"], "--ip", proxy["ip"], "--network-alias", proxy["dns_name"],
                       "-v", "%s:/opt/localaws/lb_proxy.py:ro" % os.path.join(HERE, "lb_proxy.py"),
                       "-v", "%s:/opt/localaws/targets" % os.path.dirname(targets_file),
                       "--entrypoint", "python3", self.image, "-u", "/opt/localaws/lb_proxy.py", "/opt/localaws/targets/%s.json" % lb_name)
                if proxy["internet"]:
                    docker("network", "connect", "--alias", proxy["dns_name"], plan.INTERNET_NETWORK, name)
                LOG.info("load balancer proxy %s for %s (%s) at %s", name, lb_name, proxy["dns_name"], proxy["ip"])
            elif not actual[name]["running"]:
                docker("start", name, check=False)
        wanted_names = {proxy["container"] for proxy in wanted["proxies"].values()}
        for name, present in actual.items():
            if present["kind"] == "lb" and name not in wanted_names:
                LOG.info("removing %s (its load balancer is gone)", name)
                docker("rm", "-f", name, check=False)
                self.proxy_targets.pop(name[len("localaws-lb-"):], None)

    # -- networks -------------------------------------------------------------------------------------------
    def converge_networks(self, wanted, existing):
        for vpc_id, vpc in wanted["vpcs"].items():
            if vpc["network"] not in existing:
                docker("network", "create", "--driver", "bridge", "--subnet", vpc["cidr"], "--gateway", vpc["gateway"], "--label", self.label,
                       vpc["network"])
                LOG.info("network %s for %s (%s)", vpc["network"], vpc_id, vpc["cidr"])
            self.ensure_emulator(vpc_id, vpc)

    def remove_unused(self, wanted, existing):
        wanted_networks = {vpc["network"] for vpc in wanted["vpcs"].values()} | {plan.INTERNET_NETWORK}
        for network in existing - wanted_networks:
            if docker("network", "rm", network, check=False).returncode == 0:
                LOG.info("removed network %s", network)
        for vpc_id in [vpc_id for vpc_id in self.emulators if vpc_id not in wanted["vpcs"]]:
            self.emulators.pop(vpc_id)["api"].stop()
            LOG.info("stopped the API emulator of %s", vpc_id)

    # -- the loop ------------------------------------------------------------------------------------------
    def step(self):
        shot = self.read_snapshot()
        self.last_shot = shot
        wanted = plan.desired(shot)
        for key, reason in wanted["refused"].items():
            if self.errors.get(key) != reason:
                self.errors[key] = reason
                LOG.error("not served: %s: %s", key, reason)
        self.converge_networks(wanted, networks(self.label))
        actual = containers(self.label)
        self.converge_hosts(wanted, actual)
        self.converge_proxies(wanted, actual)
        self.remove_unused(wanted, networks(self.label))
        self.write_status(wanted)

    def write_status(self, wanted):
        actual = containers(self.label)
        hosts = {instance_id: {"container": host["container"], "private_ip": host["private_ip"], "public_ip": host["public_ip"],
                               "hostname": host["hostname"], "state": host["state"], "vpc_id": host["vpc_id"],
                               "up": bool(actual.get(host["container"], {}).get("running")) and host["container"] not in self.busy}
                 for instance_id, host in wanted["hosts"].items()}
        proxies = {name: {"container": proxy["container"], "ip": proxy["ip"], "dns_name": proxy["dns_name"], "internet": proxy["internet"],
                          "listeners": proxy["listeners"], "up": bool(actual.get(proxy["container"], {}).get("running"))}
                   for name, proxy in wanted["proxies"].items()}
        emulators = {vpc_id: {"url": entry["url"], "admin_token": entry["admin_token"], "ca_cert": entry["ca_cert"]}
                     for vpc_id, entry in self.emulators.items()}
        write_json(os.path.join(self.state_dir, "status.json"), {
            "pid": os.getpid(), "url": self.url, "regions": self.regions, "time": time.time(), "hosts": hosts, "proxies": proxies,
            "emulators": emulators, "errors": dict(self.errors), "vpcs": wanted["vpcs"],
            "stand_ins": "kubeadm, kubelet, kubectl and crictl on the hosts are stand-ins (tests/stand_ins); "
                         "the API server is the emulator (tests/stand_ins/kube_api_emulator.py)"})

    def run(self):
        self.ensure_internet()
        self.start_moto()
        self.ensure_controller()
        write_json(os.path.join(self.state_dir, "ready.json"), {"pid": os.getpid(), "url": self.url, "regions": self.regions})
        LOG.info("local AWS ready: moto on %s, controller container %s", self.url, CONTROLLER)
        while not self.stop_event.is_set():
            try:
                self.step()
            except Exception:  # pylint: disable=broad-except  # keep serving; the log tells
                LOG.exception("controller pass failed")
            self.stop_event.wait(self.interval)
        for entry in self.emulators.values():
            entry["api"].stop()
        if self.moto is not None:
            self.moto.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="the local AWS daemon (started by localaws.py up)")
    parser.add_argument("--state", required=True)
    parser.add_argument("--regions", default="ap-northeast-2")
    parser.add_argument("--boot-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    daemon = Daemon(args.state, args.regions.split(","), args.boot_delay)
    signal.signal(signal.SIGTERM, lambda *_args: daemon.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_args: daemon.stop_event.set())
    daemon.run()


if __name__ == "__main__":
    main()
