# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The crictl stand-in: kubeadm's preflight needs crictl on PATH; this one answers version / info /
ps / pods / images with an empty runtime, and checks that the CRI socket it is pointed at exists."""

import json
import os

import stand_in_lib as lib
from stand_in_lib import StandInError

FLAGS = {"runtime-endpoint": "str", "image-endpoint": "str", "timeout": "str", "output": "str", "quiet": "bool", "all": "bool", "debug": "bool",
         "config": "str", "help": "bool", "name": "str", "state": "str"}
HEADERS = {"ps": "CONTAINER   IMAGE   CREATED   STATE   NAME   ATTEMPT   POD ID   POD", "pods": "POD ID   CREATED   STATE   NAME   NAMESPACE   ATTEMPT",
           "images": "IMAGE   TAG   IMAGE ID   SIZE"}
ALIASES = {"r": "runtime-endpoint", "i": "image-endpoint", "o": "output", "q": "quiet", "a": "all", "D": "debug", "h": "help", "t": "timeout"}


def handle(argv, version, output):
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
    elif command in ("ps", "pods", "images"):
        if not flags.get("quiet"):
            output.print(HEADERS[command])
    else:
        raise StandInError("stand-in: `crictl %s` is not implemented by the crictl stand-in" % command)
    return 0


def main(baked_version=None):
    return lib.run_main("crictl", baked_version, handle)
