#!/usr/bin/env python
"""A network load balancer for the local AWS: forwards TCP per listener port to healthy targets.

Runs in a proxy container (python3 standard library only) as ``lb_proxy.py TARGETS_FILE``. The
local AWS daemon writes TARGETS_FILE from moto's target groups and rewrites it when registrations
change: ``{"listeners": [{"port": 6443, "targets": [["198.18.64.4", 6443], ...]}]}``. Like an NLB
TCP health check: every target is probed every 2 s; it gets traffic after 1 successful probe and
none after 2 failed ones in a row. Connections round-robin over healthy targets; with none healthy a
connection is closed at once.
"""

import json
import os
import socket
import sys
import threading
import time

CHECK_INTERVAL = 2.0
UNHEALTHY_AFTER = 2
HEALTHY_AFTER = 1


class TargetPool:
    """The targets of one listener and their health (pure: probes are reported by the caller)."""

    def __init__(self, targets=()):
        self.targets = []
        self.failures = {}
        self.successes = {}
        self.health = {}
        self._turn = 0
        self._lock = threading.Lock()
        self.update(targets)

    def update(self, targets):
        """New registrations; a target kept keeps its health, a new one starts unhealthy (as "initial")."""
        targets = [tuple(target) for target in targets]
        with self._lock:
            self.targets = targets
            for table in (self.failures, self.successes, self.health):
                for target in list(table):
                    if target not in targets:
                        del table[target]
            for target in targets:
                self.health.setdefault(target, False)
                self.failures.setdefault(target, 0)
                self.successes.setdefault(target, 0)

    def report(self, target, ok):
        target = tuple(target)
        with self._lock:
            if target not in self.health:
                return
            if ok:
                self.failures[target] = 0
                self.successes[target] += 1
                if self.successes[target] >= HEALTHY_AFTER:
                    self.health[target] = True
            else:
                self.successes[target] = 0
                self.failures[target] += 1
                if self.failures[target] >= UNHEALTHY_AFTER:
                    self.health[target] = False

    def healthy(self):
        with self._lock:
            return [target for target in self.targets if self.health.get(target)]

    def pick(self):
        """The next healthy target, round robin; None when none is healthy."""
        healthy = self.healthy()
        if not healthy:
            return None
        with self._lock:
            target = healthy[self._turn % len(healthy)]
            self._turn += 1
        return target


def probe(target, timeout=1.0):
    try:
        with socket.create_connection(tuple(target), timeout=timeout):
            return True
    except OSError:
        return False


def pump(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class Listener:
    def __init__(self, port, host="0.0.0.0"):
        self.port = port
        self.pool = TargetPool()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, port))
        self.server.listen(128)
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._check, daemon=True).start()

    def close(self):
        self.open = False
        self.server.close()

    def _accept(self):
        while self.open:
            try:
                client, _address = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client):
        target = self.pool.pick()
        try:
            if target is None:
                raise OSError("no healthy target")
            upstream = socket.create_connection(target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def _check(self):
        while self.open:
            for target in list(self.pool.targets):
                self.pool.report(target, probe(target))
            time.sleep(CHECK_INTERVAL)


def read_targets(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return {int(listener["port"]): [tuple(target) for target in listener["targets"]] for listener in data.get("listeners", [])}


def main(argv):
    path = argv[1]
    listeners, seen = {}, None
    while True:
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != seen:
            wanted = read_targets(path)
            if wanted is not None:
                seen = stamp
                for port in [port for port in listeners if port not in wanted]:
                    listeners.pop(port).close()
                for port, targets in wanted.items():
                    if port not in listeners:
                        listeners[port] = Listener(port)
                    listeners[port].pool.update(targets)
                sys.stdout.write("lb_proxy: %s\n" % json.dumps(wanted))
                sys.stdout.flush()
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv)
