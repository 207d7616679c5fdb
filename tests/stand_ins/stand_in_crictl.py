# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The crictl stand-in: kubeadm's preflight needs crictl on PATH; this one answers version / info /
ps / pods / images, and checks that the CRI socket it is pointed at exists. The only container it
knows is stacked etcd's, running while /etc/kubernetes/manifests/etcd.yaml exists and the kubelet
runs; `exec <id> etcdctl ... member list|remove` and `endpoint health [--cluster]` answer from the member list the API emulator keeps;
`snapshot save <path>` writes a snapshot file where the container's /var/lib/etcd (a host path mount, as kubeadm's etcd
manifest has it) shows it on the host."""

import hashlib
import json
import os
import re
import subprocess
import time

import stand_in_lib as lib
from stand_in_lib import StandInError

FLAGS = {"runtime-endpoint": "str", "image-endpoint": "str", "timeout": "str", "output": "str", "quiet": "bool", "all": "bool", "debug": "bool",
         "config": "str", "help": "bool", "name": "str", "state": "str"}
HEADERS = {"ps": "CONTAINER   IMAGE   CREATED   STATE   NAME   ATTEMPT   POD ID   POD", "pods": "POD ID   CREATED   STATE   NAME   NAMESPACE   ATTEMPT",
           "images": "IMAGE   TAG   IMAGE ID   SIZE"}
ALIASES = {"r": "runtime-endpoint", "i": "image-endpoint", "o": "output", "q": "quiet", "a": "all", "D": "debug", "h": "help", "t": "timeout"}
EXEC_FLAGS = {"-i", "--interactive", "-t", "--tty", "-s", "--sync"}
ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
# what etcdctl needs to reach kubeadm's stacked etcd: its own client certificate and the etcd CA
# what kubeadm's etcd static pod mounts from the host; a file written elsewhere stays inside the container
ETCD_HOST_MOUNTS = ("/var/lib/etcd/", "/etc/kubernetes/pki/etcd/")
ETCDCTL_TLS = {"endpoints": "https://127.0.0.1:2379", "cacert": "/etc/kubernetes/pki/etcd/ca.crt",
               "cert": "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "key": "/etc/kubernetes/pki/etcd/healthcheck-client.key"}


def kubelet_runs(settings):
    if settings.get("systemctl"):
        return subprocess.run(["systemctl", "is-active", "--quiet", "kubelet"], check=False).returncode == 0
    return settings.get("kubelet_running", True)


def etcd_container(settings):
    """The id of the running etcd container, or None: the kubelet runs etcd's static pod while its manifest exists."""
    if not os.path.exists(lib.host_path(ETCD_MANIFEST, settings)) or not kubelet_runs(settings):
        return None
    return hashlib.sha256(("etcd:" + lib.node_ip(settings)).encode()).hexdigest()


def etcdctl(settings, argv, output):
    """etcdctl in the etcd container: member list [-w json|simple|table], member remove <hex id>, endpoint health [--cluster] [-w json],
    snapshot save <path>."""
    options, words, index = {}, [], 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--") or arg == "-w":
            name, has_value, value = arg.lstrip("-").partition("=")
            if not has_value and name == "cluster":  # etcdctl's boolean flag
                value = "true"
            elif not has_value:
                index += 1
                value = argv[index] if index < len(argv) else ""
            options["write-out" if name == "w" else name] = value
        else:
            words.append(arg)
        index += 1
    for name, wanted in ETCDCTL_TLS.items():
        given = options.get(name)
        if given != wanted or (name != "endpoints" and not os.path.exists(lib.host_path(given, settings))):
            raise StandInError('{"level":"warn","msg":"retrying of unary invoker failed","target":"etcd-endpoints://%s","error":"rpc error: code = '
                               'DeadlineExceeded desc = latest balancer error: last connection error: connection error: desc = \\"transport: '
                               'authentication handshake failed\\""}\nError: context deadline exceeded (stand-in: etcdctl needs --%s %s)'
                               % (options.get("endpoints", "127.0.0.1:2379"), name, wanted))
    client = lib.etcd_client(settings)
    header = {"cluster_id": 14841639068965178418, "member_id": 10276657743932975437, "raft_term": 2}
    if words[:2] == ["member", "list"]:
        members = client.request("GET", "/stand-in/etcd/members")["members"]
        if options.get("write-out") == "json":
            output.print(json.dumps({"header": header, "members": [dict((key, value) for key, value in member.items() if value) for member in members]}))
        else:
            for member in members:
                state = "started" if member["name"] else "unstarted"
                output.print("%x, %s, %s, %s, %s, false" % (member["ID"], state, member["name"],
                                                            ",".join(member["peerURLs"]), ",".join(member["clientURLs"])))
        return 0
    if words[:2] == ["member", "remove"] and len(words) == 3:
        if not re.match(r"^[0-9a-f]{1,16}$", words[2]):
            raise StandInError('Error: bad member ID arg (strconv.ParseUint: parsing "%s": invalid syntax), expecting ID in Hex' % words[2])
        try:
            client.request("DELETE", "/stand-in/etcd/members/%s" % words[2])
        except lib.ApiError:
            raise StandInError("Error: etcdserver: member not found")
        output.print("Member %16s removed from cluster %x" % (words[2], header["cluster_id"]))
        return 0
    if words[:2] == ["endpoint", "health"]:
        # with --cluster every member's client URLs (as etcdctl reads them from the member list), else --endpoints;
        # a member counts as healthy once it started (has a name) and has client URLs
        members = client.request("GET", "/stand-in/etcd/members")["members"]
        if "cluster" in options:
            health = [(url, bool(member["name"])) for member in members for url in member["clientURLs"]]
        else:
            health = [(options["endpoints"], True)]
        if options.get("write-out") == "json":
            output.print(json.dumps([dict({"endpoint": url, "health": healthy, "took": "1.2ms"}, **({} if healthy else {"error": "context deadline exceeded"}))
                                     for url, healthy in health]))
        else:
            for url, healthy in health:
                output.print("%s is healthy: successfully committed proposal: took = 1.2ms" % url if healthy
                             else "%s is unhealthy: failed to commit proposal: context deadline exceeded" % url)
        if not all(healthy for _url, healthy in health):
            raise StandInError("Error: unhealthy cluster")
        return 0
    if words[:2] == ["snapshot", "save"] and len(words) == 3:
        return snapshot_save(settings, client, words[2], output)
    raise StandInError("stand-in: `etcdctl %s` is not implemented by the crictl stand-in's etcdctl" % " ".join(words[:2]))


def snapshot_save(settings, client, path, output):
    """`snapshot save <path>`: a file (mode 0600, as etcd writes it) holding the member list and a marker; only a path
    under one of the container's host mounts lands on the host, elsewhere it would stay in the container."""
    if not path.startswith("/") or not any(path.startswith(mount) for mount in ETCD_HOST_MOUNTS):
        raise StandInError("stand-in: %s is inside the etcd container, which mounts only %s from the host; the snapshot would not be "
                           "reachable from the host" % (path, " and ".join(ETCD_HOST_MOUNTS)))
    members = client.request("GET", "/stand-in/etcd/members")["members"]
    content = json.dumps({"stand_in": "etcd snapshot written by the crictl stand-in's etcdctl (not a bbolt database)",
                          "time": time.time(), "members": members}, sort_keys=True) + "\n"
    lib.write_file(lib.host_path(path + ".part", settings), content, 0o600)
    os.replace(lib.host_path(path + ".part", settings), lib.host_path(path, settings))
    output.print('{"level":"info","msg":"created temporary db file","path":"%s.part"}\n'
                 '{"level":"info","msg":"fetched snapshot","endpoint":"%s","size":"%d B"}\n'
                 '{"level":"info","msg":"saved","path":"%s"}\nSnapshot saved at %s' % (path, ETCDCTL_TLS["endpoints"], len(content), path, path))
    return 0


def crictl_exec(settings, argv, output):
    """crictl exec [-i] [-t] [-s] <container id> <command...>; only etcdctl in the etcd container."""
    while argv and argv[0] in EXEC_FLAGS:
        argv = argv[1:]
    if len(argv) < 2:
        raise StandInError('time="now" level=fatal msg="execing command in container: container ID and command cannot be empty"')
    container, command = argv[0], argv[1:]
    running = etcd_container(settings)
    if not running or not running.startswith(container) or len(container) < 4:
        raise StandInError('time="now" level=fatal msg="execing command in container: rpc error: code = NotFound desc = an error occurred when try to '
                           'find container \\"%s\\": not found"' % container)
    if command[0] != "etcdctl":
        raise StandInError('stand-in: only etcdctl runs in the etcd container of the crictl stand-in, not %s' % command[0])
    return etcdctl(settings, command[1:], output)


def handle(argv, version, output):
    exec_args = None
    if "exec" in argv:
        argv, exec_args = argv[:argv.index("exec") + 1], argv[argv.index("exec") + 1:]
    flags = lib.Flags({"flags": FLAGS, "aliases": ALIASES}, argv, "crictl")
    command = flags.positional[0] if flags.positional else "help"
    endpoint = flags.get("runtime-endpoint") or os.environ.get("CONTAINER_RUNTIME_ENDPOINT") or "unix:///run/containerd/containerd.sock"
    if command == "--version" or command == "help":
        output.print("crictl version %s (kubecluster.aws stand-in)" % version)
        return 0
    if command == "version":
        output.print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.7.24\nRuntimeApiVersion:  v1")
        return 0
    socket_path = endpoint.replace("unix://", "", 1)
    if not os.path.exists(lib.host_path(socket_path)):
        raise StandInError('time="now" level=fatal msg="validate service connection: validate CRI v1 runtime API for endpoint \\"%s\\": rpc error: '
                           'code = Unavailable desc = connection error: desc = \\"transport: Error while dialing: dial unix %s: connect: no such file or '
                           'directory\\""' % (endpoint, socket_path))
    if command == "info":
        conditions = [{"type": "RuntimeReady", "status": True}, {"type": "NetworkReady", "status": False, "reason": "NetworkPluginNotReady"}]
        output.print(json.dumps({"status": {"conditions": conditions}}, indent=2))
    elif command == "exec":
        return crictl_exec(lib.settings(), exec_args, output)
    elif command in ("ps", "pods", "images"):
        if not flags.get("quiet"):
            output.print(HEADERS[command])
        etcd = etcd_container(lib.settings()) if command == "ps" else None
        if etcd and re.search(flags.get("name") or "", "etcd") and (flags.get("state") or "running").lower() == "running":
            output.print(etcd if flags.get("quiet") else "%s   registry.k8s.io/etcd:3.5.15-0   1 minute ago   Running   etcd   0   %s   etcd"
                         % (etcd[:13], etcd[-13:]))
    else:
        raise StandInError("stand-in: `crictl %s` is not implemented by the crictl stand-in" % command)
    return 0


def main(baked_version=None):
    return lib.run_main("crictl", baked_version, handle)
