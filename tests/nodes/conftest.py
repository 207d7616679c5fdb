"""The node test harness: Debian 12 hosts in Docker behind a bastion, the Kubernetes API emulator,
an inventory for ansible-playbook, and helpers to look at what the stand-ins and the API saw.

One session-scoped fixture, ``nodes_env`` (a NodesEnv), brings everything up once per pytest
session and tears it down at the end (and removes what a crashed earlier run left):

- the Docker engine and debootstrap (hack/nodes-env.sh: installs them when missing, starts dockerd);
- the image kubecluster-test/debian12:<recipe hash> (debootstrap minbase + openssh-server, python3,
  systemd, sudo, ...; built once, reused while the recipe is unchanged);
- networks "public" 198.18.1.0/24 and "private" 198.18.2.0/24 (the host is .1 on both);
- hosts: bastion (198.18.1.10 public, 198.18.2.10 private), control-plane-0..2 (198.18.2.11-13),
  md-0-0..1 (198.18.2.21-22), each with systemd, sshd, an `ansible` user with passwordless sudo and
  this run's SSH key; the hosts' SSH host keys go into this run's known_hosts, so host key checking
  stays on;
- the API emulator on https://198.18.2.1:6443 (its CA is the cluster CA the kubeadm stand-in hands
  out), and on every host /etc/kubecluster-stand-in/{config.json,ca.crt,ca.key} for the stand-ins;
- an inventory with the contract's groups and host vars, reaching every machine but the bastion
  through it (ProxyJump);
- a local AWS (a moto server on loopback) that ansible-playbook runs reach through the standard
  AWS_* variables: the node plays take the cluster's lease there, as on a real account.

``clean_nodes`` (function scope) gives the same NodesEnv after wiping what kubeadm, the kubelet and the
stand-ins left on the hosts and resetting the API emulator, for a test that needs a fresh cluster
(packages the roles installed stay).
"""

import fcntl
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_INS = os.path.join(REPO, "tests", "stand_ins")
if STAND_INS not in sys.path:
    sys.path.insert(0, STAND_INS)

import kube_api_emulator  # noqa: E402  (tests/stand_ins is put on the path above)
from helpers.moto_server import MotoServer  # noqa: E402
import stand_in_lib  # noqa: E402
from helpers.aws import REGION, ZONES  # noqa: E402  (tests/ is on the path: tests/conftest.py)
from helpers import test_hosts  # noqa: E402
from helpers.test_hosts import RUN_OPTIONS, docker, parse_recap, wait_for_boot, write_into  # noqa: E402

LABEL = "kubecluster.aws.test=nodes"
PREFIX = "kubecluster-test"
PUBLIC_NETWORK = (PREFIX + "-public", "198.18.1.0/24", "198.18.1.1")
PRIVATE_NETWORK = (PREFIX + "-private", "198.18.2.0/24", "198.18.2.1")
API_HOST, API_PORT = "198.18.2.1", 6443
API_ENDPOINT = "%s:%d" % (API_HOST, API_PORT)
DEFAULT_KUBERNETES_VERSION = os.environ.get("KUBECLUSTER_TEST_KUBERNETES_VERSION", "v1.31.4")
MACHINE_DEPLOYMENT = "md-0"
# One node test session at a time per machine: the networks, addresses and port 6443 are fixed, and a
# session removes what it finds labelled as the harness's (a crashed run's leftovers) before it starts.
SESSION_LOCK = os.environ.get("KUBECLUSTER_TEST_NODES_LOCK", "/run/lock/kubecluster-test-nodes.lock")
SESSION_LOCK_WAIT = 3600


# -- the machine: docker, image, networks (the image and docker helpers are tests/helpers/test_hosts.py's) ---------
def ensure_docker():
    try:
        test_hosts.ensure_docker()
    except RuntimeError as error:
        pytest.fail(str(error))


def build_image(timings):
    try:
        return test_hosts.build_image(timings)
    except RuntimeError as error:
        pytest.fail(str(error))


def remove_leftovers():
    """Containers and networks this harness labelled, from this run or a crashed one."""
    ids = docker("ps", "-aq", "--filter", "label=" + LABEL, check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)
    for network in docker("network", "ls", "-q", "--filter", "label=" + LABEL, check=False).stdout.split():
        docker("network", "rm", network, check=False)


def create_networks():
    for name, subnet, gateway in (PUBLIC_NETWORK, PRIVATE_NETWORK):
        docker("network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gateway, "--label", LABEL, name)


# -- hosts ---------------------------------------------------------------------------------------------
class Host:
    """One test machine and the inventory facts the product would get from EC2."""

    def __init__(self, name, private_ip, public_ip=None, groups=(), machine_set=None, zone=ZONES[0]):
        self.name = name
        self.private_ip = private_ip
        self.public_ip = public_ip
        self.groups = list(groups)
        self.machine_set = machine_set
        self.zone = zone
        self.container = "%s-%s" % (PREFIX, name)
        self.node_name = "ip-%s.%s.compute.internal" % (private_ip.replace(".", "-"), REGION)
        self.instance_id = "i-0" + hashlib.sha256(name.encode()).hexdigest()[:16]

    @property
    def address(self):
        """What Ansible connects to: the public address for the bastion, the private one otherwise."""
        return self.public_ip or self.private_ip

    def __repr__(self):
        return "Host(%s, %s)" % (self.name, self.address)


def plan_hosts(control_planes, workers):
    hosts = [Host("bastion", "198.18.2.10", "198.18.1.10", ["bastion"])]
    for index in range(control_planes):
        hosts.append(Host("control-plane-%d" % index, "198.18.2.%d" % (11 + index), None, ["kube_control_plane"], "control-plane", ZONES[index % 3]))
    group = "kubecluster_md_" + MACHINE_DEPLOYMENT.replace("-", "_")
    for index in range(workers):
        hosts.append(Host("%s-%d" % (MACHINE_DEPLOYMENT, index), "198.18.2.%d" % (21 + index), None, [group], MACHINE_DEPLOYMENT, ZONES[index % 3]))
    return hosts


def start_host(host, image):
    docker("run", "-d", "--name", host.container, "--hostname", host.node_name, "--label", LABEL, "--network", PRIVATE_NETWORK[0],
           "--ip", host.private_ip, *RUN_OPTIONS, image, "/sbin/init")
    if host.public_ip:
        docker("network", "connect", "--ip", host.public_ip, PUBLIC_NETWORK[0], host.container)


class PlaybookResult:
    """What ansible-playbook did: exit code, output and the PLAY RECAP per host."""

    def __init__(self, command, completed, duration):
        self.command = command
        self.rc = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.duration = duration
        self.recap = parse_recap(completed.stdout)

    @property
    def failed_hosts(self):
        return sorted(host for host, counts in self.recap.items() if counts["failed"] or counts["unreachable"])

    @property
    def changed_hosts(self):
        return sorted(host for host, counts in self.recap.items() if counts["changed"])

    def changed(self, host):
        return self.recap[host]["changed"]

    def assert_ok(self):
        assert self.rc == 0 and not self.failed_hosts, "ansible-playbook failed (rc=%d, failed: %s)\n%s\n%s" % (
            self.rc, self.failed_hosts, self.stdout[-20000:], self.stderr[-5000:])
        return self

    def __repr__(self):
        return "PlaybookResult(rc=%d, recap=%s)" % (self.rc, self.recap)


class NodesEnv:
    """Everything a node test needs; see the module docstring."""

    def __init__(self, run_dir, hosts, api, ca_cert, ca_key, timings, aws=None):
        self.run_dir = run_dir
        self.hosts = {host.name: host for host in hosts}
        self.api = api
        self.aws = aws
        self.api_endpoint = API_ENDPOINT
        self.api_url = "https://" + API_ENDPOINT
        self.ca_cert = ca_cert
        self.ca_key = ca_key
        self.kubernetes_version = DEFAULT_KUBERNETES_VERSION
        self.timings = timings
        self.private_key = os.path.join(run_dir, "id_ed25519")
        self.known_hosts = os.path.join(run_dir, "known_hosts")
        self.ssh_config = os.path.join(run_dir, "ssh_config")
        self.inventory_path = os.path.join(run_dir, "inventory.yml")
        self.kubeconfig_path = os.path.join(run_dir, "admin.kubeconfig")
        self._binaries = {}
        self._lock = threading.Lock()

    # -- who is who ------------------------------------------------------------------------------
    @property
    def bastion(self):
        return self.hosts["bastion"]

    @property
    def control_planes(self):
        return sorted((host for host in self.hosts.values() if "kube_control_plane" in host.groups), key=lambda host: host.name)

    @property
    def workers(self):
        return sorted((host for host in self.hosts.values() if any(group.startswith("kubecluster_md_") for group in host.groups)), key=lambda host: host.name)

    @property
    def cluster_hosts(self):
        return self.control_planes + self.workers

    def host(self, name):
        return self.hosts[name] if isinstance(name, str) else name

    @property
    def admin_token(self):
        return self.api.admin_token

    # -- inventory and ssh ---------------------------------------------------------------------------
    def inventory(self):
        """The inventory as a dict (the same content as inventory_path)."""
        def host_vars(host):
            common = "-F %s" % self.ssh_config
            if host.name != "bastion":
                common += " -o ProxyJump=ansible@%s" % self.bastion.public_ip
            return {"ansible_host": host.address, "ansible_ssh_common_args": common, "kubecluster_node_name": host.node_name,
                    "kubecluster_instance_id": host.instance_id, "kubecluster_machine_set": host.machine_set or "bastion",
                    "kubecluster_availability_zone": host.zone}

        def group(name):
            return {"hosts": {host.name: host_vars(host) for host in sorted(self.hosts.values(), key=lambda item: item.name) if name in host.groups}}

        md_groups = sorted({group for host in self.workers for group in host.groups if group.startswith("kubecluster_md_")})
        return {"all": {
            "vars": {"ansible_user": "ansible", "ansible_ssh_private_key_file": self.private_key, "ansible_python_interpreter": "/usr/bin/python3",
                     "kubecluster_control_plane_endpoint": self.api_endpoint},
            "children": {
                "bastion": group("bastion"),
                "kube_control_plane": group("kube_control_plane"),
                "kube_node": {"children": {name: group(name) for name in md_groups}},
                "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
            }}}

    def write_inventory(self, path=None):
        path = path or self.inventory_path
        stand_in_lib.write_file(path, json.dumps(self.inventory(), indent=2), 0o600)  # JSON is YAML; ansible reads it as such
        return path

    # -- running ansible ------------------------------------------------------------------------------
    def ansible_env(self, extra=None):
        env = self.aws.env() if self.aws else dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(self.run_dir, "cp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0", "PYTHONUNBUFFERED": "1",
            # kubernetes.core caches API discovery in $TMPDIR by server URL: keep it per run
            "TMPDIR": os.path.join(self.run_dir, "tmp"),
        })
        env.update(extra or {})
        return env

    def run_playbook(self, playbook, extra_vars=None, limit=None, tags=None, skip_tags=None, check=False, diff=False, inventory=None,
                     extra_args=(), timeout=1800, env=None):
        """ansible-playbook from the venv with this run's inventory; returns a PlaybookResult (it never raises on failure)."""
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory or self.inventory_path]
        if extra_vars:
            path = os.path.join(self.run_dir, "extra-vars-%s.json" % secrets.token_hex(4))
            stand_in_lib.write_file(path, json.dumps(extra_vars), 0o600)
            command += ["-e", "@" + path]
        for option, value in (("--limit", limit), ("--tags", tags), ("--skip-tags", skip_tags)):
            if value:
                command += [option, value if isinstance(value, str) else ",".join(value)]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        command += list(extra_args) + [playbook]
        started = time.time()
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.ansible_env(env), cwd=REPO, check=False)
        return PlaybookResult(command, completed, round(time.time() - started, 1))

    def stand_in_binaries(self, version=None):
        """A binaries_dir (kubeadm, kubelet, kubectl, crictl stand-ins answering `version`) for cluster.kubernetes_packages."""
        version = version or self.kubernetes_version
        with self._lock:
            if version not in self._binaries:
                self._binaries[version] = stand_in_lib.build_binaries(os.path.join(self.run_dir, "binaries", version), version)
            return self._binaries[version]

    # -- looking at hosts --------------------------------------------------------------------------------
    def exec(self, host, command, check=True, user=None, timeout=300):
        """Run a shell command in a host (docker exec, not SSH); returns the CompletedProcess."""
        args = ["exec"] + (["--user", user] if user else []) + [self.host(host).container, "bash", "-c", command]
        return docker(*args, check=check, timeout=timeout)

    def read_file(self, host, path):
        """A file's text on a host, or None when it does not exist."""
        result = docker("exec", self.host(host).container, "cat", path, check=False)
        return result.stdout if result.returncode == 0 else None

    def file_exists(self, host, path):
        return docker("exec", self.host(host).container, "test", "-e", path, check=False).returncode == 0

    def stand_in_calls(self, host, binary=None, subcommand=None):
        """The calls the stand-ins recorded on a host, oldest first: dicts with argv, exit_code, configs, stdout, stderr, time."""
        return test_hosts.stand_in_calls(self.read_file(host, test_hosts.STAND_IN_CALLS), binary, subcommand)

    def clear_stand_in_calls(self, hosts=None):
        for host in hosts or self.cluster_hosts:
            self.exec(host, "rm -f /var/log/kubecluster-stand-in/calls.jsonl")

    # -- looking at the API ------------------------------------------------------------------------------
    def api_objects(self, kind=None, namespace=None, name=None):
        return self.api.objects(kind, namespace, name)

    def api_object(self, kind, name, namespace=None):
        return self.api.object(kind, name, namespace)

    def api_requests(self, writes_only=False, since=0.0):
        return self.api.requests(writes_only, since)

    # -- starting over -------------------------------------------------------------------------------------
    def reset_api(self):
        """A fresh API emulator state (same address, CA and admin token)."""
        self.api.reset(self.kubernetes_version)
        self.api.store.ca_pem = stand_in_lib.read_text(self.ca_cert)

    def wipe_hosts(self, hosts=None):
        """Remove what kubeadm, the kubelet and the stand-ins left (packages and the roles' other files stay)."""
        script = ("systemctl stop kubelet 2>/dev/null; rm -rf /etc/kubernetes /var/lib/kubelet /var/lib/etcd /var/log/kubecluster-stand-in; true")
        threads = [threading.Thread(target=self.exec, args=(host, script)) for host in hosts or self.cluster_hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


# -- setting up ------------------------------------------------------------------------------------------
def make_ssh_files(env):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kubecluster-test", "-f", env.private_key], check=True)
    stand_in_lib.write_file(env.ssh_config, (
        "Host *\n  User ansible\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n"
        "  ConnectTimeout 15\n  ServerAliveInterval 15\n") % (env.private_key, env.known_hosts), 0o600)


def prepare_host(env, host, public_key, settings):
    wait_for_boot(host.container)
    write_into(host.container, "/home/ansible/.ssh/authorized_keys", public_key, "0600", "ansible:ansible")
    docker("exec", host.container, "chmod", "0700", "/home/ansible/.ssh")
    docker("exec", host.container, "chown", "ansible:ansible", "/home/ansible/.ssh")
    write_into(host.container, "/etc/kubecluster-stand-in/config.json", json.dumps(dict(settings, node_ip=host.private_ip), indent=2))
    write_into(host.container, "/etc/kubecluster-stand-in/ca.crt", stand_in_lib.read_text(env.ca_cert))
    write_into(host.container, "/etc/kubecluster-stand-in/ca.key", stand_in_lib.read_text(env.ca_key), "0600")
    key = docker("exec", host.container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
    return ["%s %s %s" % (address, key[0], key[1]) for address in (host.private_ip, host.public_ip) if address]


def cloud_lookup(hosts):
    """What EC2 says about each machine's Node, for the API emulator's cloud controller manager:
    node name -> {provider_id, zone, region}; None for a name no instance has."""
    instances = {host.node_name: {"provider_id": "aws:///%s/%s" % (host.zone, host.instance_id), "zone": host.zone, "region": REGION}
                 for host in hosts if "bastion" not in host.groups}
    return instances.get


def bring_up(run_dir, control_planes, workers):
    timings = {}
    started = time.time()
    ensure_docker()
    timings["docker"] = round(time.time() - started, 1)
    image = build_image(timings)
    remove_leftovers()
    create_networks()
    pki = os.path.join(run_dir, "pki")
    ca_cert, ca_key = stand_in_lib.make_ca(pki)
    server_cert, server_key = stand_in_lib.make_server_cert(pki, ca_cert, ca_key, [API_HOST, "127.0.0.1"])
    hosts = plan_hosts(control_planes, workers)
    api = kube_api_emulator.KubeApiEmulator(API_HOST, API_PORT, server_cert, server_key, admin_token=secrets.token_hex(24),
                                            version=DEFAULT_KUBERNETES_VERSION, ca_pem=stand_in_lib.read_text(ca_cert),
                                            cloud_provider=cloud_lookup(hosts)).start()
    aws = MotoServer().start()
    env = NodesEnv(run_dir, hosts, api, ca_cert, ca_key, timings, aws)
    for directory in ("cp", "tmp"):
        os.makedirs(os.path.join(run_dir, directory), exist_ok=True)
    make_ssh_files(env)
    public_key = stand_in_lib.read_text(env.private_key + ".pub")
    settings = {"kubernetes_version": DEFAULT_KUBERNETES_VERSION, "ca_cert": "/etc/kubecluster-stand-in/ca.crt",
                "ca_key": "/etc/kubecluster-stand-in/ca.key", "admin_token": api.admin_token, "root": "/", "kubelet_health_timeout": 60,
                "systemctl": True, "require_root": True}
    started = time.time()
    errors, known = [], []

    def start_and_prepare(host):
        try:
            start_host(host, image)
            known.extend(prepare_host(env, host, public_key, settings))
        except Exception as error:  # collected and reported once all threads are done
            errors.append("%s: %s %s" % (host.name, error, getattr(error, "stderr", "") or ""))

    threads = [threading.Thread(target=start_and_prepare, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings["hosts"] = round(time.time() - started, 1)
    stand_in_lib.write_file(env.known_hosts, "\n".join(sorted(known)) + "\n", 0o600)
    env.write_inventory()
    stand_in_lib.write_kubeconfig(env.kubeconfig_path, env.api_url, stand_in_lib.read_text(ca_cert).encode(), "kubernetes-admin", api.admin_token)
    if errors:
        raise RuntimeError("test hosts did not come up:\n" + "\n".join(errors))
    return env


def take_session_lock():
    """Wait (up to an hour) until no other node test session runs on this machine; hold the lock until exit."""
    os.makedirs(os.path.dirname(SESSION_LOCK), exist_ok=True)
    # held (open) for the whole session, closed by nodes_env's teardown
    handle = open(SESSION_LOCK, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
    deadline = time.time() + SESSION_LOCK_WAIT
    waiting = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.time() > deadline:
                pytest.fail("another node test session held %s for over %ds" % (SESSION_LOCK, SESSION_LOCK_WAIT))
            if not waiting:
                sys.stderr.write("\nwaiting for another node test session on this machine (%s)\n" % SESSION_LOCK)
                waiting = True
            time.sleep(5)


@pytest.fixture(scope="session")
def nodes_env(tmp_path_factory):
    """The whole node test environment (NodesEnv), up once per session; torn down at its end."""
    if os.geteuid() != 0:
        pytest.fail("the node tests need root (Docker, debootstrap); run them as root, e.g. through `make test-nodes` in CI")
    lock = take_session_lock()
    run_dir = str(tmp_path_factory.mktemp("nodes"))
    control_planes = int(os.environ.get("KUBECLUSTER_TEST_CONTROL_PLANES", "3"))
    workers = int(os.environ.get("KUBECLUSTER_TEST_WORKERS", "2"))
    env = None
    try:
        env = bring_up(run_dir, control_planes, workers)
        sys.stderr.write("\nnode harness up: %s\n" % json.dumps(env.timings))
        yield env
    finally:
        if env is not None:
            env.api.stop()
            env.aws.stop()
        remove_leftovers()
        lock.close()


@pytest.fixture
def clean_nodes(nodes_env):
    """nodes_env with the hosts wiped of kubeadm / kubelet state and a fresh API emulator."""
    nodes_env.wipe_hosts()
    nodes_env.reset_api()
    return nodes_env
