"""The apt package sources of kubernetes_packages (pkgs.k8s.io, mirror) on a bare Debian 12 host.

Real apt, no stand-in in the package manager: the test process serves a signed flat apt
repository laid out like https://pkgs.k8s.io/core:/stable:/v1.31/deb/ (Release.key, InRelease,
Release, Release.gpg, Packages, Packages.gz, amd64/*.deb) on the private network's host address.
Its packages are built here with dpkg-deb and carry the stand-in binaries under the names, versions
and dependencies pkgs.k8s.io gives them (kubeadm 1.31.4-1.1 needs cri-tools, kubelet needs
kubernetes-cni and Debian's iptables, conntrack, ...); a newer patch release is in the repository
too, so only the pin keeps the cluster's version. The signing key is a throwaway one made here.

The role runs with `source: mirror`; pkgs.k8s.io shares every task but the URL, which
tests/unit/test_kubernetes_packages_source.py checks. The host has no python3-debian, as stock
Debian and Ubuntu cloud images, so nothing may need it.
"""

import functools
import gzip
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

pytestmark = pytest.mark.nodes

REPOSITORY_HOST = "198.18.2.1"
VERSION = "v1.31.4"
NEWER = "v1.31.5"
REVISION = "1.1"
KUBERNETES_PACKAGES = ("kubeadm", "kubelet", "kubectl")
# What the deb packages of pkgs.k8s.io depend on (kubernetes/release packages/deb), for the minor tested.
CRI_TOOLS, KUBERNETES_CNI = "1.31.1", "1.5.1"
DEPENDS = {
    "kubeadm": "cri-tools (>= 1.30.0)",
    "kubelet": "iptables (>= 1.4.21), iproute2, socat, util-linux, mount, ethtool, ebtables, conntrack, kubernetes-cni (>= 1.4.0)",
}
KUBELET_UNIT = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
KUBEADM_DROP_IN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
SOURCES_FILE = "/etc/apt/sources.list.d/kubernetes.sources"
KEYRING = "/etc/apt/keyrings/kubernetes-v1.31-apt-keyring.asc"
ALL_PACKAGES = KUBERNETES_PACKAGES + ("cri-tools", "kubernetes-cni")
FAST_SSH = {"ANSIBLE_PIPELINING": "True"}


def run(*command, **kwargs):
    return subprocess.run(list(command), check=True, capture_output=True, text=True, timeout=120, **kwargs)


# -- the repository ------------------------------------------------------------------------------------
def build_deb(work, directory, name, version, architecture, files, depends=None):
    """A .deb of `files` ({path: (source file or text, mode)}) named and versioned as pkgs.k8s.io does."""
    root = os.path.join(work, "%s_%s" % (name, version))
    os.makedirs(os.path.join(root, "DEBIAN"))
    for path, (content, mode) in files.items():
        target = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isfile(content):
            shutil.copyfile(content, target)
        else:
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(content)
        os.chmod(target, mode)
    control = ["Package: " + name, "Version: " + version, "Architecture: " + architecture,
               "Maintainer: kubecluster.aws tests <kubecluster-test@example.invalid>", "Section: admin", "Priority: optional"]
    if depends:
        control.append("Depends: " + depends)
    control.append("Description: %s (kubecluster.aws stand-in package)\n Wraps the kubecluster.aws test stand-in, not the real binary." % name)
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(control) + "\n")
    deb = os.path.join(directory, architecture, "%s_%s_%s.deb" % (name, version, architecture))
    os.makedirs(os.path.dirname(deb), exist_ok=True)
    run("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb)
    return deb


def packages_stanza(directory, deb):
    with open(deb, "rb") as handle:
        data = handle.read()
    control = run("dpkg-deb", "--field", deb).stdout.rstrip("\n")
    return "%s\nFilename: %s\nSize: %d\nMD5sum: %s\nSHA256: %s\n" % (
        control, os.path.relpath(deb, directory), len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())


def write_release(directory, gpg):
    lines = ["Origin: kubecluster-test", "Label: kubecluster-test stand-in packages",
             "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()), "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        with open(os.path.join(directory, name), "rb") as handle:
            data = handle.read()
        lines.append(" %s %d %s" % (hashlib.sha256(data).hexdigest(), len(data), name))
    release = os.path.join(directory, "Release")
    with open(release, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    gpg("--clearsign", "--output", os.path.join(directory, "InRelease"), release)
    gpg("--armor", "--detach-sign", "--output", os.path.join(directory, "Release.gpg"), release)


class Repository:
    """A flat signed apt repository like pkgs.k8s.io's for one minor, served over HTTP from this process."""

    def __init__(self, env, root):
        self.root = root
        self.path = "/core:/stable:/v1.31/deb/"
        self.directory = os.path.join(root, self.path.strip("/"))
        self.requests = []
        self.server = None
        os.makedirs(self.directory)
        self._build(env)

    def _build(self, env):
        architecture = run("dpkg", "--print-architecture").stdout.strip()
        # short: gpg-agent's socket lives in the home directory
        self.gnupg = tempfile.mkdtemp(prefix="kc-gpg-")
        gpg = functools.partial(run, "gpg", "--batch", "--homedir", self.gnupg, "--pinentry-mode", "loopback", "--passphrase", "")
        gpg("--quick-generate-key", "kubecluster.aws test repository <kubecluster-test@example.invalid>", "ed25519", "sign", "1d")
        self.key = gpg("--armor", "--export").stdout
        with open(os.path.join(self.directory, "Release.key"), "w", encoding="utf-8") as handle:
            handle.write(self.key)
        work = tempfile.mkdtemp(prefix="kubecluster-debs-", dir=self.root)
        debs = []
        for version in (VERSION, NEWER):
            binaries = env.stand_in_binaries(version)
            deb_version = "%s-%s" % (version.lstrip("v"), REVISION)
            debs.append(build_deb(work, self.directory, "kubeadm", deb_version, architecture, {
                "/usr/bin/kubeadm": (os.path.join(binaries, "kubeadm"), 0o755),
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROP_IN, 0o644)}, DEPENDS["kubeadm"]))
            debs.append(build_deb(work, self.directory, "kubelet", deb_version, architecture, {
                "/usr/bin/kubelet": (os.path.join(binaries, "kubelet"), 0o755),
                "/usr/lib/systemd/system/kubelet.service": (KUBELET_UNIT, 0o644)}, DEPENDS["kubelet"]))
            debs.append(build_deb(work, self.directory, "kubectl", deb_version, architecture, {
                "/usr/bin/kubectl": (os.path.join(binaries, "kubectl"), 0o755)}))
        debs.append(build_deb(work, self.directory, "cri-tools", "%s-%s" % (CRI_TOOLS, REVISION), architecture, {
            "/usr/bin/crictl": (os.path.join(env.stand_in_binaries(VERSION), "crictl"), 0o755)}))
        debs.append(build_deb(work, self.directory, "kubernetes-cni", "%s-%s" % (KUBERNETES_CNI, REVISION), architecture, {
            "/opt/cni/bin/README.kubecluster-test": ("No CNI plugins: a stand-in package for the node tests.\n", 0o644)}))
        packages = "\n".join(packages_stanza(self.directory, deb) for deb in debs)
        with open(os.path.join(self.directory, "Packages"), "w", encoding="utf-8") as handle:
            handle.write(packages)
        with gzip.open(os.path.join(self.directory, "Packages.gz"), "wt", encoding="utf-8") as handle:
            handle.write(packages)
        write_release(self.directory, gpg)
        shutil.rmtree(work)

    def start(self):
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format, *args):  # noqa: A002 - the base class names it so
                requests.append(self.path)

        self.server = http.server.ThreadingHTTPServer((REPOSITORY_HOST, 0), functools.partial(Handler, directory=self.root))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        return "http://%s:%d%s" % (REPOSITORY_HOST, self.server.server_address[1], self.path)

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        subprocess.run(["gpgconf", "--homedir", self.gnupg, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.gnupg, ignore_errors=True)


# -- running the roles -----------------------------------------------------------------------------------
def run_roles(env, host, repository_url, version=VERSION, roles=("node_prerequisites", "kubernetes_packages"), check=False, name="packages"):
    """node_prerequisites and kubernetes_packages on one host, as playbooks/nodes.yml includes them."""
    cluster = {"kubernetes_version": version,
               "kubernetes_packages": {"source": "mirror", "repository_url": repository_url, "binaries_dir": None}}
    tasks = [{"name": "Run " + role, "ansible.builtin.include_role": {"name": "kubecluster.aws." + role}} for role in roles]
    playbook = os.path.join(env.run_dir, "%s.yml" % name)
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"name": "Install the Kubernetes packages from an apt repository", "hosts": host.name, "become": True,
                         "gather_facts": True, "gather_subset": ["min"],
                         # the containers share this machine's kernel: modprobe cannot work in them
                         "vars": {"kubecluster_cluster": cluster, "node_prerequisites_load_kernel_modules": False},
                         "tasks": tasks}], handle)
    return env.run_playbook(playbook, check=check, env=FAST_SSH)


def installed(env, host):
    """{package: (version, dpkg status)} for the packages the repository holds."""
    output = env.exec(host, "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' %s 2>/dev/null || true" % " ".join(ALL_PACKAGES)).stdout
    return {line.split()[0]: (line.split()[1], " ".join(line.split()[2:])) for line in output.splitlines() if line.strip()}


def deb822(text):
    fields = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


@pytest.fixture(scope="module")
def repository(nodes_env):
    root = tempfile.mkdtemp(prefix="kubecluster-apt-", dir=nodes_env.run_dir)
    repo = Repository(nodes_env, root).start()
    yield repo
    repo.stop()


@pytest.fixture(scope="module")
def apt_host(nodes_env):
    """A worker, left as it was found: the packages, the source and the key go at the end."""
    host = nodes_env.workers[0]
    yield host
    nodes_env.exec(host, "apt-mark unhold %s >/dev/null 2>&1; dpkg --purge %s >/dev/null 2>&1; rm -f %s %s /etc/apt/keyrings/kubernetes-v1.32-apt-keyring.asc; "
                         "apt-get update -qq >/dev/null 2>&1; true" % (" ".join(KUBERNETES_PACKAGES), " ".join(ALL_PACKAGES), SOURCES_FILE, KEYRING))


@pytest.fixture(scope="module")
def first_run(nodes_env, repository, apt_host):
    """The roles' first run on the bare host, after checking that it has no python3-debian."""
    status = nodes_env.exec(apt_host, "dpkg-query -W -f '${Status}' python3-debian 2>/dev/null || true").stdout
    assert "installed" not in status.split(), "the test host must be a bare image without python3-debian"
    assert nodes_env.exec(apt_host, "python3 -c 'import debian'", check=False).returncode != 0
    assert installed(nodes_env, apt_host) == {}
    return run_roles(nodes_env, apt_host, repository.url)


def test_the_mirror_source_installs_the_pinned_packages_on_a_host_without_python3_debian(nodes_env, repository, apt_host, first_run):
    first_run.assert_ok()
    packages = installed(nodes_env, apt_host)
    deb_version = "%s-%s" % (VERSION.lstrip("v"), REVISION)
    assert packages == {
        "kubeadm": (deb_version, "hold ok installed"),
        "kubelet": (deb_version, "hold ok installed"),
        "kubectl": (deb_version, "hold ok installed"),
        "cri-tools": ("%s-%s" % (CRI_TOOLS, REVISION), "install ok installed"),
        "kubernetes-cni": ("%s-%s" % (KUBERNETES_CNI, REVISION), "install ok installed"),
    }
    # the pin, not the repository's newest patch release, chose the version
    assert "%s-%s" % (NEWER.lstrip("v"), REVISION) in nodes_env.exec(apt_host, "apt-cache madison kubeadm").stdout
    assert nodes_env.exec(apt_host, "/usr/bin/kubeadm version -o short").stdout.strip() == VERSION
    assert nodes_env.exec(apt_host, "systemctl is-enabled kubelet").stdout.strip() == "enabled"
    # the key from Release.key, the index signed with it and the packages all came from the repository
    served = [path for path in repository.requests if path.startswith(repository.path)]
    for name in ("Release.key", "InRelease", "amd64/kubeadm_%s_amd64.deb" % deb_version):
        assert repository.path + name in served
    assert not [path for path in served if "//" in path]
    # python3-debian was neither needed nor installed
    assert nodes_env.exec(apt_host, "python3 -c 'import debian'", check=False).returncode != 0


def test_the_source_is_one_deb822_file_signed_by_the_repository_key(nodes_env, repository, apt_host, first_run):
    first_run.assert_ok()
    assert deb822(nodes_env.read_file(apt_host, SOURCES_FILE)) == {
        "Types": "deb", "URIs": repository.url, "Suites": "/", "Signed-By": KEYRING}
    assert nodes_env.read_file(apt_host, KEYRING) == repository.key
    for path in (SOURCES_FILE, KEYRING):
        assert nodes_env.exec(apt_host, "stat -c '%a %U %G' " + path).stdout.split() == ["644", "root", "root"], path
    # one source for the repository, and apt reads it without a complaint
    assert nodes_env.exec(apt_host, "grep -rlF '%s' /etc/apt/sources.list /etc/apt/sources.list.d || true" % repository.url).stdout.split() == [SOURCES_FILE]
    update = nodes_env.exec(apt_host, "apt-get update 2>&1")
    assert not [line for line in update.stdout.splitlines() if line.startswith(("W:", "E:", "Err:"))], update.stdout


def test_a_rerun_changes_nothing(nodes_env, repository, apt_host, first_run):
    first_run.assert_ok()
    result = run_roles(nodes_env, apt_host, repository.url, name="packages-rerun")
    result.assert_ok()
    assert result.changed(apt_host.name) == 0, result.stdout[-6000:]


def test_check_mode_for_the_next_minor_changes_nothing_on_the_host(nodes_env, repository, apt_host, first_run):
    first_run.assert_ok()
    before = nodes_env.read_file(apt_host, SOURCES_FILE)
    next_minor = repository.url.replace("/v1.31/", "/v1.32/")
    # check mode asks for the key (HEAD) without downloading it
    next_directory = repository.directory.replace("/v1.31/", "/v1.32/")
    os.makedirs(next_directory, exist_ok=True)
    shutil.copyfile(os.path.join(repository.directory, "Release.key"), os.path.join(next_directory, "Release.key"))
    result = run_roles(nodes_env, apt_host, next_minor, version="v1.32.0", roles=("kubernetes_packages",), check=True, name="packages-check")
    result.assert_ok()
    assert result.changed(apt_host.name) > 0
    assert nodes_env.read_file(apt_host, SOURCES_FILE) == before
    assert not nodes_env.file_exists(apt_host, "/etc/apt/keyrings/kubernetes-v1.32-apt-keyring.asc")
    assert installed(nodes_env, apt_host)["kubeadm"] == ("%s-%s" % (VERSION.lstrip("v"), REVISION), "hold ok installed")
