"""Debian 12 systemd hosts in Docker: the image recipe, the run options and small docker helpers.

Shared by the node test harness (tests/nodes/conftest.py) and the local AWS (tests/localaws), so
both run the same image (built once, cached by the recipe's hash in its tag) the same way.
Failures raise RuntimeError; the callers turn them into a test failure or an exit message.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_INS = os.path.join(REPO, "tests", "stand_ins")
if STAND_INS not in sys.path:
    sys.path.insert(0, STAND_INS)

# tests/stand_ins is put on the path above
import stand_in_lib  # noqa: E402  pylint: disable=wrong-import-position

DEBIAN_MIRROR = os.environ.get("KUBECLUSTER_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# no --privileged (needs CAP_SYS_RESOURCE, which this kind of machine does not grant): what systemd needs
RUN_OPTIONS = ["--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined", "--tmpfs", "/run", "--tmpfs", "/run/lock",
               "-v", "/sys/fs/cgroup:/sys/fs/cgroup", "-e", "container=docker"]
PACKAGES = ("openssh-server", "python3", "systemd", "systemd-sysv", "iproute2", "ca-certificates", "sudo", "dbus", "kmod", "procps", "curl", "gnupg")
# Units baked into the image. ssh host keys are made at first boot so every host has its own; /proc/sys is made writable as on
# an EC2 instance (namespaced sysctls such as net.* stay inside the container).
IMAGE_FILES = {
    "/etc/systemd/system/kubecluster-test-ssh-keygen.service": (
        "[Unit]\nDescription=SSH host keys for this test host\nBefore=ssh.service\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n"),
    "/etc/systemd/system/kubecluster-test-proc-sys.service": (
        "[Unit]\nDescription=Writable /proc/sys, as on a VM\nDefaultDependencies=no\nBefore=systemd-sysctl.service sysinit.target\n\n"
        "[Service]\nType=oneshot\nExecStart=/bin/mount -o remount,rw /proc/sys\nRemainAfterExit=yes\n\n[Install]\nWantedBy=sysinit.target\n"),
    "/etc/sudoers.d/ansible": "ansible ALL=(ALL) NOPASSWD:ALL\n",
    "/etc/ssh/sshd_config.d/kubecluster-test.conf": "PasswordAuthentication no\nLogLevel VERBOSE\nAllowTcpForwarding yes\n",
}
IMAGE_COMMANDS = [
    ["useradd", "--create-home", "--shell", "/bin/bash", "ansible"],
    ["systemctl", "enable", "kubecluster-test-ssh-keygen.service", "kubecluster-test-proc-sys.service", "ssh.service"],
    ["sh", "-c", "rm -f /etc/ssh/ssh_host_* && : > /etc/machine-id && chmod 0440 /etc/sudoers.d/ansible && apt-get clean"],
]
IMAGE_RECIPE = json.dumps({"packages": PACKAGES, "files": IMAGE_FILES, "commands": IMAGE_COMMANDS, "mirror": DEBIAN_MIRROR, "suite": "bookworm"},
                          sort_keys=True)
RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                      r"(?:\s+skipped=(\d+))?(?:\s+rescued=(\d+))?(?:\s+ignored=(\d+))?")
STAND_IN_CALLS = "/var/log/kubecluster-stand-in/calls.jsonl"  # where every stand-in records its calls on a host
IMAGE = "kubecluster-test/debian12:" + hashlib.sha256(IMAGE_RECIPE.encode()).hexdigest()[:12]


def docker(*args, check=True, timeout=600, input=None):  # noqa: A002 - subprocess names it so  pylint: disable=redefined-builtin
    return subprocess.run(["docker"] + list(args), check=check, capture_output=True, text=True, timeout=timeout, input=input)


# The node tests and the local AWS may run at once (make test runs them side by side); both prepare
# Docker and the host image, which two processes must not do together (apt's lock, two debootstraps).
PREPARE_LOCK = os.environ.get("KUBECLUSTER_TEST_PREPARE_LOCK", "/run/lock/kubecluster-test-prepare.lock")


@contextlib.contextmanager
def preparing():
    """Hold the machine-wide lock for preparing Docker and the image; the second comes after and finds them ready."""
    with open(PREPARE_LOCK, "a+", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_docker():
    """hack/nodes-env.sh when docker or debootstrap is missing or dockerd is not answering."""
    with preparing():
        _ensure_docker()


def _ensure_docker():
    ready = shutil.which("docker") and shutil.which("debootstrap") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    if ready:
        return
    result = subprocess.run(["bash", os.path.join(REPO, "hack", "nodes-env.sh")], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError("hack/nodes-env.sh could not prepare Docker (run as root on Debian 12):\n%s%s" % (result.stdout, result.stderr))


def build_image(timings=None):
    """The test host image, built with debootstrap unless an image with this recipe's tag exists."""
    timings = {} if timings is None else timings
    with preparing():
        return _build_image(timings)


def _build_image(timings):
    if docker("image", "inspect", IMAGE, check=False).returncode == 0:
        timings["image"] = ("cached", 0.0)
        return IMAGE
    started = time.time()
    root = tempfile.mkdtemp(prefix="kubecluster-test-rootfs-")
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), "bookworm", root, DEBIAN_MIRROR],
                       check=True, capture_output=True, text=True, timeout=1200)
        for path, content in IMAGE_FILES.items():
            stand_in_lib.write_file(os.path.join(root, path.lstrip("/")), content, 0o644)
        for command in IMAGE_COMMANDS:
            subprocess.run(["chroot", root] + command, check=True, capture_output=True, text=True, timeout=300)
        with subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(["docker", "import", "--change", "ENV container=docker", "--change", 'CMD ["/sbin/init"]', "-", IMAGE],
                           stdin=tar.stdout, check=True, capture_output=True, timeout=600)
    except subprocess.CalledProcessError as error:
        raise RuntimeError("building %s failed: %s\n%s%s" % (IMAGE, " ".join(error.cmd), error.stdout or "", error.stderr or "")) from error
    finally:
        shutil.rmtree(root, ignore_errors=True)
    timings["image"] = ("built", round(time.time() - started, 1))
    return IMAGE


def wait_for_boot(container, timeout=120):
    """Until systemd in the container is up and sshd's host keys exist; returns systemd's state."""
    deadline = time.time() + timeout
    state = "unknown"
    while time.time() < deadline:
        state = docker("exec", container, "systemctl", "is-system-running", check=False).stdout.strip()
        keys = docker("exec", container, "test", "-s", "/etc/ssh/ssh_host_ed25519_key.pub", check=False).returncode == 0
        if state in ("running", "degraded") and keys:
            return state
        time.sleep(0.5)
    raise RuntimeError("%s did not boot within %ds (systemd: %s)" % (container, timeout, state))


def write_into(container, path, content, mode="0644", owner="root:root"):
    directory = os.path.dirname(path)
    docker("exec", "-i", container, "sh", "-c", 'mkdir -p "%s" && cat > "%s" && chmod %s "%s" && chown %s "%s"' % (directory, path, mode, path, owner, path),
           input=content)


def stand_in_calls(text, binary=None, subcommand=None):
    """The calls in a host's STAND_IN_CALLS text (None: no file), oldest first, filtered by binary and first argument."""
    calls = [json.loads(line) for line in (text or "").splitlines() if line.strip()]
    if binary:
        calls = [call for call in calls if call["binary"] == binary]
    if subcommand:
        calls = [call for call in calls if call["argv"][:1] == [subcommand]]
    return calls


def call_document(call, kind):
    """The document of ``kind`` in the --config files a recorded stand-in call read (AssertionError when none)."""
    for config in call["configs"]:
        for doc in config["documents"]:
            if doc.get("kind") == kind:
                return doc
    raise AssertionError("no %s in the configs of %s" % (kind, call["argv"]))


def call_interval(call):
    """(start, end) of a recorded stand-in call, in seconds since the epoch (the hosts share the machine's clock)."""
    return call["time"], call["time"] + call["duration"]


def parse_recap(stdout):
    """{host: {ok, changed, unreachable, failed, skipped, rescued, ignored}} from ansible-playbook's (last) PLAY RECAP block."""
    recap = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap, recap = True, {}
            continue
        if in_recap:
            match = RECAP_RE.match(line.strip())
            if match:
                numbers = [int(value or 0) for value in match.groups()[1:]]
                recap[match.group(1)] = dict(zip(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"), numbers))
            elif line.strip():
                in_recap = False
    return recap
