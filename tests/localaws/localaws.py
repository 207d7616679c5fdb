#!/usr/bin/env python
"""The local AWS whose machines are real hosts (see README.md next to this file).

    localaws.py up [--state DIR] [--regions ap-northeast-2] [--boot-delay S]
    localaws.py status [--state DIR]
    localaws.py run [--state DIR] -- CMD...
    localaws.py down [--state DIR]

and for tests ``LocalAws(state_dir, repo)``. kubeadm, kubelet, kubectl and crictl on its hosts are
stand-ins (tests/stand_ins) and the API server is an emulator: nothing here is a real Kubernetes.
"""

import argparse
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
for _path in (TESTS, os.path.join(TESTS, "stand_ins"), HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import boto3  # noqa: E402  pylint: disable=wrong-import-position
import daemon as localaws_daemon  # noqa: E402  pylint: disable=wrong-import-position
from helpers import test_hosts  # noqa: E402  pylint: disable=wrong-import-position
from helpers.moto_server import FAKE_CREDENTIALS, REAL_ACCOUNT_VARIABLES, MotoRecorder  # noqa: E402  pylint: disable=wrong-import-position
import stand_in_lib  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_STATE = os.path.join(REPO, ".cache", "localaws")
STAND_IN_NOTICE = ("Here kubeadm, kubelet, kubectl and crictl are stand-ins (tests/stand_ins) and the API server is the emulator "
                   "(tests/stand_ins/kube_api_emulator.py): the hosts, networks, SSH and load balancing are real, Kubernetes is not.")
CALLS = test_hosts.STAND_IN_CALLS
# One local AWS per machine (fixed network, container and address names): up() waits for this lock, the daemon
# inherits it, so it is held until down() stops the daemon (or the daemon dies).
MACHINE_LOCK = os.environ.get("KUBECLUSTER_LOCALAWS_LOCK", "/run/lock/kubecluster-localaws.lock")
MACHINE_LOCK_WAIT = 3600


class LocalAwsError(RuntimeError):
    pass


class LocalAws(MotoRecorder):
    """The local AWS of one state directory, for the CLI and for tests."""

    def __init__(self, state_dir=DEFAULT_STATE, repo=REPO, regions=("ap-northeast-2",), boot_delay=0.0):
        self.state_dir = os.path.abspath(state_dir)
        self.repo = repo
        self.regions = list(regions)
        self.boot_delay = boot_delay
        self.label = localaws_daemon.label(self.state_dir)
        self.lock_handle = None

    # -- paths -----------------------------------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.state_dir, name)

    def _read_json(self, name):
        try:
            with open(self.path(name), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def pid(self):
        """The daemon's pid when it runs, else None."""
        try:
            with open(self.path("localaws.pid"), encoding="utf-8") as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
        except OSError:
            return None
        return pid if "daemon.py" in cmdline and self.state_dir in cmdline else None

    # -- up / down ---------------------------------------------------------------------------------------
    def take_machine_lock(self, wait=MACHINE_LOCK_WAIT, out=sys.stderr):
        """Wait (up to ``wait`` s) until no other local AWS runs on this machine, then hold MACHINE_LOCK.

        The lock file names the state dir of its holder, so a waiting caller can say whose it is.
        """
        if self.lock_handle is not None:
            return
        os.makedirs(os.path.dirname(MACHINE_LOCK), exist_ok=True)
        handle = open(MACHINE_LOCK, "a+", encoding="utf-8")  # pylint: disable=consider-using-with  # held until down()
        deadline = time.time() + wait
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if time.time() > deadline:
                    handle.close()
                    raise LocalAwsError("another local AWS (%s) held %s for over %ds; `localaws.py down --state DIR` stops it"
                                        % (holder, MACHINE_LOCK, wait)) from None
                if not waiting:
                    out.write("waiting for the local AWS of %s to go down (one per machine; lock %s)\n" % (holder, MACHINE_LOCK))
                    out.flush()
                    waiting = True
                time.sleep(2)
        handle.seek(0)
        handle.truncate()
        handle.write("%s (pid %d)\n" % (self.state_dir, os.getpid()))
        handle.flush()
        self.lock_handle = handle

    def release_machine_lock(self):
        if self.lock_handle is not None:
            self.lock_handle.close()  # the daemon's inherited copy went with it (down() stops it first)
            self.lock_handle = None

    def up(self, timeout=180):
        os.makedirs(self.state_dir, exist_ok=True)
        test_hosts.ensure_docker()
        test_hosts.build_image()
        if self.pid() is None:
            self.take_machine_lock()
            for name in ("ready.json", "status.json"):
                if os.path.exists(self.path(name)):
                    os.remove(self.path(name))
            with open(self.path("localaws.log"), "ab") as log:
                process = subprocess.Popen(  # pylint: disable=consider-using-with  # the daemon outlives this call
                    [sys.executable, os.path.join(HERE, "daemon.py"), "--state", self.state_dir, "--regions", ",".join(self.regions),
                     "--boot-delay", str(self.boot_delay)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    pass_fds=(self.lock_handle.fileno(),))  # the daemon holds the machine lock as long as it lives
            stand_in_lib.write_file(self.path("localaws.pid"), "%d\n" % process.pid, 0o644)
            deadline = time.time() + timeout
            while self._read_json("ready.json") is None:
                if process.poll() is not None or time.time() > deadline:
                    raise LocalAwsError("the local AWS daemon did not start:\n" + self.log_tail())
                time.sleep(0.2)
            while self._read_json("status.json") is None and time.time() < deadline:
                time.sleep(0.2)
        ready = self._read_json("ready.json")
        lines = ["export %s=%s" % (key, shlex.quote(value)) for key, value in sorted(self.env(base={}).items())]
        stand_in_lib.write_file(self.path("env"), "# the local AWS (tests/localaws): source this file\n" + "\n".join(lines) + "\n", 0o644)
        return ready

    def down(self):
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _index in range(100):
                if self.pid() is None:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        ids = test_hosts.docker("ps", "-aq", "--filter", "label=" + self.label, check=False).stdout.split()
        if ids:
            test_hosts.docker("rm", "-f", *ids, check=False)
        for network in test_hosts.docker("network", "ls", "-q", "--filter", "label=" + self.label, check=False).stdout.split():
            test_hosts.docker("network", "rm", network, check=False)
        for name in ("localaws.pid", "ready.json", "status.json"):
            if os.path.exists(self.path(name)):
                os.remove(self.path(name))
        self.release_machine_lock()

    def log_tail(self, size=4000):
        try:
            with open(self.path("localaws.log"), encoding="utf-8", errors="replace") as log:
                return log.read()[-size:]
        except OSError:
            return ""

    # -- clients -------------------------------------------------------------------------------------------
    @property
    def url(self):
        ready = self._read_json("ready.json")
        if not ready:
            raise LocalAwsError("the local AWS of %s is not up (localaws.py up)" % self.state_dir)
        return ready["url"]

    def env(self, base=None):
        env = dict(os.environ if base is None else base)
        for name in REAL_ACCOUNT_VARIABLES:
            env.pop(name, None)
        env.update(FAKE_CREDENTIALS)
        env.update({"AWS_ENDPOINT_URL": self.url, "AWS_DEFAULT_REGION": self.regions[0], "AWS_EC2_METADATA_DISABLED": "true"})
        return env

    def client(self, service, region=None):
        return boto3.client(service, region_name=region or self.regions[0], endpoint_url=self.url,
                            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"])

    def run(self, argv, env=None, timeout=3600, check=False, capture=True):
        """argv in the controller container (cwd = the repo), with the local AWS's variables and env; a CompletedProcess."""
        variables = self.env(base={})
        venv_bin = os.path.join(self.repo, ".venv", "bin")
        variables.update({"HOME": "/root", "PATH": venv_bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "PYTHONUNBUFFERED": "1", "ANSIBLE_NOCOLOR": "1"})
        variables.update(env or {})
        command = ["docker", "exec", "-i", "-w", self.repo]
        for key, value in sorted(variables.items()):
            command += ["-e", "%s=%s" % (key, value)]
        command += [localaws_daemon.CONTROLLER] + list(argv)
        return subprocess.run(command, capture_output=capture, text=True, timeout=timeout, check=check, stdin=subprocess.DEVNULL)

    # -- what runs ------------------------------------------------------------------------------------------
    def status(self):
        return self._read_json("status.json") or {}

    def hosts(self):
        """instance id -> {container, private_ip, public_ip, hostname, state, up}."""
        return self.status().get("hosts", {})

    def proxies(self):
        return self.status().get("proxies", {})

    def wait(self, predicate, timeout=120, interval=0.5, what="the local AWS"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise LocalAwsError("timed out after %ss waiting for %s; status: %s\n%s" % (timeout, what, json.dumps(self.status())[-3000:], self.log_tail(2000)))

    def container(self, instance_id_or_container):
        host = self.hosts().get(instance_id_or_container)
        return host["container"] if host else instance_id_or_container

    def exec(self, instance_id_or_container, shell_cmd, check=True, user=None, timeout=300):
        args = ["exec"] + (["--user", user] if user else []) + [self.container(instance_id_or_container), "bash", "-c", shell_cmd]
        return test_hosts.docker(*args, check=check, timeout=timeout)

    def read_file(self, instance_id_or_container, path):
        result = test_hosts.docker("exec", self.container(instance_id_or_container), "cat", path, check=False)
        return result.stdout if result.returncode == 0 else None

    def stand_in_calls(self, instance_id, binary=None, subcommand=None):
        """The calls the stand-ins recorded on a host, oldest first (as NodesEnv.stand_in_calls)."""
        return test_hosts.stand_in_calls(self.read_file(instance_id, CALLS), binary, subcommand)

    def emulator(self, vpc_id):
        """{url, admin_token, ca_cert} of the API emulator of a VPC, or None."""
        return self.status().get("emulators", {}).get(vpc_id)

    def emulator_get(self, vpc_id, path):
        """GET path on a VPC's emulator with its admin token (e.g. /stand-in/objects); the decoded JSON."""
        import ssl  # pylint: disable=import-outside-toplevel
        entry = self.emulator(vpc_id)
        context = ssl.create_default_context(cafile=entry["ca_cert"])
        request = urllib.request.Request(entry["url"] + path, headers={"Authorization": "Bearer " + entry["admin_token"]})
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read())

    def binaries_dir(self, version):
        """Stand-in kubeadm, kubelet, kubectl, crictl for cluster.kubernetes_packages {source: binaries, binaries_dir: ...}."""
        target = self.path(os.path.join("binaries", version))
        if not os.path.exists(os.path.join(target, "stand_in_version")):
            stand_in_lib.build_binaries(target, version)
        return target

    @property
    def recording_path(self):
        """Where the daemon's moto records requests (MOTO_RECORDER_FILEPATH); read by MotoRecorder."""
        return self.path("recording.jsonl")


def summary(aws):
    status = aws.status()
    lines = ["local AWS (moto) at %s, state in %s" % (status.get("url") or aws.url, aws.state_dir),
             "  environment: source %s   (or: localaws.py run -- CMD)" % aws.path("env")]
    for instance_id, host in sorted(status.get("hosts", {}).items()):
        public = (" / " + host["public_ip"]) if host["public_ip"] else ""
        where = "%s%s, %s" % (host["private_ip"], public, host["hostname"])
        lines.append("  instance %s (%s) -> host %s at %s" % (instance_id, host["state"], host["container"], where))
    for name, proxy in sorted(status.get("proxies", {}).items()):
        targets = ", ".join("%d -> %s" % (listener["port"], " ".join("%s:%d" % tuple(target) for target in listener["targets"]) or "none")
                            for listener in proxy["listeners"])
        lines.append("  load balancer %s (%s) -> proxy %s at %s: %s" % (name, proxy["dns_name"], proxy["container"], proxy["ip"], targets))
    for vpc_id, emulator in sorted(status.get("emulators", {}).items()):
        lines.append("  API emulator (stand-in for kube-apiserver) of %s at %s" % (vpc_id, emulator["url"]))
    for key, error in sorted(status.get("errors", {}).items()):
        lines.append("  problem: %s: %s" % (key, error.strip()[:300]))
    lines.append(STAND_IN_NOTICE)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "run"):
        command = commands.add_parser(name)
        command.add_argument("--state", default=DEFAULT_STATE)
        if name == "up":
            command.add_argument("--regions", default="ap-northeast-2")
            command.add_argument("--boot-delay", type=float, default=0.0)
        if name == "run":
            command.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    regions = args.regions.split(",") if args.command == "up" else None
    if regions is None:
        ready = LocalAws(args.state)._read_json("ready.json")  # pylint: disable=protected-access
        regions = (ready or {}).get("regions") or ["ap-northeast-2"]
    aws = LocalAws(args.state, regions=regions, boot_delay=getattr(args, "boot_delay", 0.0))
    try:
        if args.command == "up":
            aws.up()
            print(summary(aws))
        elif args.command == "down":
            aws.down()
            print("local AWS of %s stopped; its containers and networks are removed (the host image stays)" % aws.state_dir)
        elif args.command == "status":
            if aws.pid() is None:
                print("the local AWS of %s is not running" % aws.state_dir)
                return 1
            print(summary(aws))
        else:
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                parser.error("run needs a command: localaws.py run -- CMD...")
            return aws.run(command, capture=False).returncode
    except (LocalAwsError, RuntimeError) as error:
        print("localaws: %s" % error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
