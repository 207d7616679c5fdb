#!/usr/bin/env python
"""AWS API calls and wall seconds for create, no-op rerun and delete of the example cluster.

Runs the collection's real playbooks with ansible-playbook against a local moto server,
once with 2 workers and once with 20, and prints a table of read and write calls per
phase. The target: a no-op rerun makes only reads, about one describe per resource type,
and its count does not grow with the number of workers.

    make bench            # or: .venv/bin/python bench/api_calls.py [--workers 2 20] [--json FILE]
"""

import argparse
import collections
import json
import os
import sys
import tempfile
import time
import pathlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from conftest import link_collection  # noqa: E402  pylint: disable=wrong-import-position
from helpers.e2e import Account, example_spec, playbook_runner  # noqa: E402  pylint: disable=wrong-import-position
from helpers.moto_server import MotoServer  # noqa: E402  pylint: disable=wrong-import-position

# Only the AWS part of create_cluster (tag infra): moto's machines are not hosts to bootstrap.
PHASES = (
    ("create", "create_cluster", {}, ["infra"]),
    ("rerun (no-op)", "create_cluster", {}, ["infra"]),
    ("delete", "delete_cluster", {"confirm_delete": True}, None),
)


def measure(server, run, spec, playbook, extra_vars, tags):
    server.start_recording()
    started = time.monotonic()
    done = run(playbook, spec, extra_vars=extra_vars, tags=tags)
    seconds = time.monotonic() - started
    server.stop_recording()
    if done.rc != 0:
        raise SystemExit("%s failed:\n%s" % (playbook, done.explain()))
    calls = server.recorded_calls()
    per_action = collections.Counter("%s:%s" % (c["service"], c["action"]) for c in calls)
    return {
        "reads": sum(1 for c in calls if not c["is_write"]),
        "writes": sum(1 for c in calls if c["is_write"]),
        "seconds": round(seconds, 1),
        "changed": done.changed,
        "calls": dict(sorted(per_action.items())),
    }


def bench(worker_counts):
    link_collection()
    rows = []
    with MotoServer() as server, tempfile.TemporaryDirectory() as workdir:
        run = playbook_runner(server, pathlib.Path(workdir))
        for workers in worker_counts:
            server.reset()
            image_id = Account(server).prepare()
            spec = example_spec(image_id, machine_deployments=[{"name": "md-0", "replicas": workers, "instance_type": "t3.large"}])
            for phase, playbook, extra_vars, tags in PHASES:
                row = measure(server, run, spec, playbook, extra_vars, tags)
                row.update(workers=workers, phase=phase)
                rows.append(row)
    return rows


def table(rows):
    lines = ["| workers | phase | reads | writes | seconds | changed tasks |", "|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| %(workers)d | %(phase)s | %(reads)d | %(writes)d | %(seconds).1f | %(changed)d |" % row)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--json", help="also write every row, with per-action call counts, to this file")
    args = parser.parse_args()
    rows = bench(args.workers)
    print(table(rows))
    reruns = [row for row in rows if row["phase"].startswith("rerun")]
    print("\nno-op rerun reads by action (%d workers):" % reruns[-1]["workers"])
    for action, count in reruns[-1]["calls"].items():
        print("  %4d  %s" % (count, action))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    if any(row["writes"] for row in reruns):
        raise SystemExit("a no-op rerun made write calls")
    if len(reruns) > 1 and reruns[-1]["reads"] > reruns[0]["reads"]:
        raise SystemExit("no-op rerun reads grow with the number of workers")


if __name__ == "__main__":
    main()
