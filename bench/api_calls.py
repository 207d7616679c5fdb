#!/usr/bin/env python
"""AWS API calls and wall seconds for create, no-op rerun and delete of the example cluster.

Two modes share the measuring (recorder, clock, PLAY RECAP, checks) and the table:

- default: the collection's playbooks against a local moto server, only the AWS part of
  create_cluster (--tags infra), with 2 and with 20 workers;
- --local-hosts: the whole flow on the local AWS of tests/localaws (moto whose instances are
  Debian hosts in Docker; needs root and Docker): create_cluster.yml with its node plays, the
  no-op rerun and delete_cluster.yml, with 2 workers (--workers 2 5 for two sizes). It also counts,
  per phase, the kubeadm calls that change something (init, upload-certs, join, reset, token
  create/delete) the stand-ins recorded on the hosts. kubeadm, kubelet and the API server are
  stand-ins there (tests/stand_ins): node-phase seconds are Ansible, SSH, apt and systemd time.

- --compare-stock: the moto-only phases of this collection next to those of bench/stock (the same topology
  composed of the stock amazon.aws / community.aws modules), both measured in one run, interleaved (the one
  that goes first alternates), --repeat times each (default 3); one table of the medians.

- --estimate-real [FACTOR]: the moto-only phases (and, with --compare-stock, the stock composition's) against a moto
  server in the state-transition mode of tests/helpers/moto_timing (NAT gateways pending/deleting, machines
  pending/shutting-down, the NLB provisioning, for AWS's estimated durations times FACTOR, default 1.0). Per phase:
  the wall seconds measured at FACTOR; at 1.0 these are the estimate of a real AWS run (no scaled estimate is made
  for a smaller factor: see estimate_real()); and "waits in series", the transition durations (factor 1.0) the phase
  would wait for if its long operations were each waited for one after the other (series_waits()).

- --full: all of the above for moto only, in one run: worker counts 2 20 100 (--workers), both sides, --repeat 3; each
  repeat of each worker count is two jobs, the moto-only phases of both sides and the same in the state-transition mode
  (factor 1.0, or --estimate-real FACTOR), both sides interleaved within a job (who goes first alternating by repeat).
  --jobs N runs N jobs at once, each with its own moto server and temp workdir, at most one moto-only job at a time.
  One table of medians: per (workers, phase) and side, the moto-only calls and seconds, the estimated real-AWS seconds
  and the waits in series. --json keeps every sample; --from-json FILE... prints the table of the merged samples of
  several runs without running anything.

The target: a no-op rerun makes only reads (the run lease's SSM GetParameter/PutParameter/DeleteParameter
are bookkeeping, counted apart as "lease reads/writes"), one describe per resource type (at most 16 for the
example, moto only, and in at most 3 module invocations), no kubeadm call that changes something, and its
reads do not grow with the number of workers.

    make bench            # or: .venv/bin/python bench/api_calls.py [--workers 2 20] [--json FILE]
    make bench-hosts      # or: .venv/bin/python bench/api_calls.py --local-hosts [--workers 2 5]
    make bench BENCH_ARGS=--compare-stock    # or: .venv/bin/python bench/api_calls.py --compare-stock [--workers 2 20] [--repeat 3]
    .venv/bin/python bench/api_calls.py --estimate-real [FACTOR] [--compare-stock] [--workers 2] [--repeat 1]
    make bench-full       # or: .venv/bin/python bench/api_calls.py --full [--estimate-real FACTOR] [--workers 2 20 100] [--repeat 3]
                          #         [--jobs 4] [--json FILE]
    .venv/bin/python bench/api_calls.py --from-json FILE [FILE ...]
"""

import argparse
import collections
import concurrent.futures
import functools
import json
import os
import statistics
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "localaws"), os.path.join(REPO, "bench", "stock")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from conftest import link_collection  # noqa: E402  pylint: disable=wrong-import-position
from helpers.e2e import Account, PlaybookRun, example_spec, playbook_command, playbook_runner  # noqa: E402  pylint: disable=wrong-import-position
from helpers.moto_server import MotoServer  # noqa: E402  pylint: disable=wrong-import-position
from helpers.test_hosts import parse_recap  # noqa: E402  pylint: disable=wrong-import-position
from stock_vars import stock_vars  # noqa: E402  pylint: disable=wrong-import-position

# Moto-only: just the AWS part of create_cluster (tag infra): moto's machines are not hosts to bootstrap.
PHASES = (
    ("create", "create_cluster", {}, ["infra"]),
    ("rerun (no-op)", "create_cluster", {}, ["infra"]),
    ("delete", "delete_cluster", {"confirm_delete": True}, None),
)
# Local hosts: the whole create_cluster.yml (AWS part and node plays).
LOCAL_PHASES = (
    ("create", "create_cluster", {}, None),
    ("rerun (no-op)", "create_cluster", {}, None),
    ("delete", "delete_cluster", {"confirm_delete": True}, None),
)
# The stock-module composition (bench/stock): the same three phases, the rerun being create.yml again.
STOCK = os.path.join(REPO, "bench", "stock")
STOCK_PHASES = (
    ("create", os.path.join(STOCK, "create.yml"), {}, None),
    ("rerun (no-op)", os.path.join(STOCK, "create.yml"), {}, None),
    ("delete", os.path.join(STOCK, "delete.yml"), {}, None),
)
COLLECTION, STOCK_MODULES = "kubecluster.aws", "stock modules"
MEDIAN_FIELDS = ("reads", "writes", "lease_writes", "seconds", "changed", "invocations")
# a playbook's timeout (the stock create of 100 workers at factor 1.0 takes more than the e2e helpers' 15 minutes)
PLAYBOOK_TIMEOUT = 3600
# --estimate-real: the long operations a phase can start, in the order today's path before issue 9 waited for them one
# after the other (create: the NAT gateways, one wait for all, created before the machines; then the machines' boot;
# then the NLB's provisioning. delete: the machines terminated, the NLB, the NAT gateways deleted, then the Elastic
# IPs released), with the moto_timing transition each waits for. The NLB's delete has no transition in moto_timing
# (AWS documents none; DeleteLoadBalancer returns when it is gone): it adds nothing.
SERIES = (
    ("ec2:CreateNatGateway", "nat_gateway_available"),
    ("ec2:RunInstances", "instance_running"),
    ("elbv2:CreateLoadBalancer", "load_balancer_active"),
    ("ec2:TerminateInstances", "instance_terminated"),
    ("elbv2:DeleteLoadBalancer", None),
    ("ec2:DeleteNatGateway", "nat_gateway_deleted"),
)
# The run lease (an SSM parameter taken at a run's start and given back at its end, so that two runs never change
# one cluster at once) is bookkeeping, not a change to the cluster: counted apart from the resource writes.
LEASE_WRITES = {("ssm", "PutParameter"), ("ssm", "DeleteParameter")}
LEASE_READS = {("ssm", "GetParameter")}
# The floor of a no-op rerun of the example (issue 9): one read per resource type (VPC, 2 VPC attributes, subnets, route
# tables, internet gateway, NAT gateways, security groups, instances; load balancer, target group, listeners, 2 attribute
# reads, target health, tags), the lease's aside, in at most 3 module invocations, as the issue allows (one now: cluster_infra
# takes and gives back the lease itself in a --tags infra run).
RERUN_READS_FLOOR = 16
RERUN_INVOCATIONS_FLOOR = 3
# Actions the controller runs itself: no module process, no AWS call.
CONTROLLER_ACTIONS = {"set_fact", "debug", "set_stats", "fail", "assert", "meta", "add_host", "group_by", "include_tasks", "import_tasks",
                      "include_role", "import_role", "include_vars", "pause", "async_status"}
EXAMPLE = os.path.join(REPO, "examples", "capi-example.yml")
LOCAL_STATE = os.path.join(REPO, ".cache", "bench", "localaws")
# The containers share this machine's kernel: no modprobe in them (the modules file is still written), as in make demo.
LOCAL_LIMITS = {"node_prerequisites_load_kernel_modules": False}
Outcome = collections.namedtuple("Outcome", "rc changed failure invocations", defaults=(None,))


# -- what a phase did (pure) ----------------------------------------------------------------------------------------
def count_calls(calls):
    """Reads and resource writes (the lease's apart), lease reads and writes and per-action counts of recorded calls
    [{service, action, is_write}]."""
    lease = [call for call in calls if call["is_write"] and (call["service"], call["action"]) in LEASE_WRITES]
    lease_reads = [call for call in calls if not call["is_write"] and (call["service"], call["action"]) in LEASE_READS]
    return {
        "reads": sum(1 for call in calls if not call["is_write"]) - len(lease_reads),
        "writes": sum(1 for call in calls if call["is_write"]) - len(lease),
        "lease_reads": len(lease_reads),
        "lease_writes": len(lease),
        "calls": dict(sorted(collections.Counter("%s:%s" % (call["service"], call["action"]) for call in calls).items())),
    }


def module_invocations(report):
    """How many module processes a run (the JSON callback's report) started: every task result, or loop item, that ran
    a module rather than a controller-side action (set_fact, debug, include_tasks...), skipped ones aside."""
    count = 0
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                if result.get("action", "").rsplit(".", 1)[-1] in CONTROLLER_ACTIONS:
                    continue
                items = result.get("results") if isinstance(result.get("results"), list) else [result]
                count += sum(1 for item in items if not item.get("skipped"))
    return count


def changed_tasks(recap):
    """The changed tasks of a PLAY RECAP ({host: {changed, ...}}), summed over the hosts."""
    return sum(counts["changed"] for counts in recap.values())


def kubeadm_change(argv):
    """What a kubeadm call (its arguments) changes, by name, or None for one that only reads."""
    if argv[:3] == ["init", "phase", "upload-certs"]:
        return "upload-certs"
    if argv[:1] == ["init"] and argv[1:2] != ["phase"]:
        return "init"
    if argv[:1] in (["join"], ["reset"]):
        return argv[0]
    if argv[:2] in (["token", "create"], ["token", "delete"]):
        return " ".join(argv[:2])
    return None


def kubeadm_changes(calls, started, ended):
    """{change: count} of the recorded kubeadm calls (any host) that started within [started, ended] and change something."""
    found = collections.Counter(kubeadm_change(call["argv"]) for call in calls
                                if call["binary"] == "kubeadm" and started <= call["time"] <= ended)
    found.pop(None, None)
    return dict(sorted(found.items()))


def problems(rows, floors=False):
    """Why the run fails: a no-op rerun that writes (lease bookkeeping aside) or calls kubeadm to change something,
    or whose reads grow with the number of workers; with ``floors`` (the AWS part alone, moto only) also one over
    RERUN_READS_FLOOR reads or RERUN_INVOCATIONS_FLOOR module invocations."""
    reruns = [row for row in rows if row["phase"].startswith("rerun")]
    found = ["the no-op rerun with %d workers made %d write calls (besides the lease's)" % (row["workers"], row["writes"])
             for row in reruns if row["writes"]]
    found += ["the no-op rerun with %d workers made kubeadm calls that change something: %s" % (row["workers"], row["kubeadm"])
              for row in reruns if row.get("kubeadm")]
    if floors:
        found += over_the_floor(reruns)
    if len(reruns) > 1 and reruns[-1]["reads"] > reruns[0]["reads"]:
        found.append("no-op rerun reads grow with the number of workers (%d with %d, %d with %d)" % (
            reruns[0]["reads"], reruns[0]["workers"], reruns[-1]["reads"], reruns[-1]["workers"]))
    return found


def over_the_floor(reruns):
    """What of the no-op reruns (the AWS part alone) is over issue 9's floor: reads (the lease's aside), module invocations."""
    found = ["the no-op rerun with %d workers made %d reads (besides the lease's), over the floor of %d"
             % (row["workers"], row["reads"], RERUN_READS_FLOOR) for row in reruns if row["reads"] > RERUN_READS_FLOOR]
    found += ["the no-op rerun with %d workers ran %d modules, over the floor of %d"
              % (row["workers"], row["invocations"], RERUN_INVOCATIONS_FLOOR)
              for row in reruns if row.get("invocations", 0) > RERUN_INVOCATIONS_FLOOR]
    return found


def kubeadm_cell(row):
    if row.get("kubeadm") is None:
        return "-"
    return ", ".join("%s %d" % item for item in row["kubeadm"].items()) or "none"


def table(rows):
    """The rows as a Markdown table; the kubeadm column only where a row has kubeadm counts (--local-hosts)."""
    with_kubeadm = any("kubeadm" in row for row in rows)
    head = ("| workers | phase | reads | writes | lease reads/writes | modules run | seconds | changed tasks |"
            + (" kubeadm calls that change |" if with_kubeadm else ""))
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|---:|" + ("---|" if with_kubeadm else "")]
    for row in rows:
        line = "| %(workers)d | %(phase)s | %(reads)d | %(writes)d | %(lease_reads)d/%(lease_writes)d | %(invocations)s | %(seconds).1f | %(changed)d |" % dict(
            row, invocations=row.get("invocations", "-"))
        lines.append(line + (" %s |" % kubeadm_cell(row) if with_kubeadm else ""))
    return "\n".join(lines)


# -- --compare-stock: interleaved runs and their medians (pure) -------------------------------------------------------
def interleaved(repeat, sides=(COLLECTION, STOCK_MODULES)):
    """The order of the runs: `repeat` rounds of every side, the side that goes first alternating round by round."""
    return [list(sides) if round_ % 2 == 0 else list(reversed(sides)) for round_ in range(repeat)]


def medians(samples):
    """One row per (workers, side, phase), in first-seen order, with the median of each measured field over the
    samples (rows of measure_phases with `workers` and `side`) that all have it, and `runs`, their number."""
    groups = collections.OrderedDict()
    for sample in samples:
        groups.setdefault((sample["workers"], sample["side"], sample["phase"]), []).append(sample)
    rows = []
    for (workers, side, phase), group in groups.items():
        row = {"workers": workers, "side": side, "phase": phase, "runs": len(group), "calls": group[-1].get("calls", {})}
        for field in MEDIAN_FIELDS:
            if all(field in sample for sample in group):  # invocations: not in the samples of older --json files
                row[field] = statistics.median(sample[field] for sample in group)
        rows.append(row)
    return rows


def _number(value, digits=0):
    """A median as the table shows it: whole counts without decimals, a half (median of an even count) with one."""
    if digits or value != int(value):
        return "%.*f" % (max(digits, 1), value)
    return "%d" % value


def compare_table(rows):
    """The medians of medians() as one Markdown table: a line per (workers, phase), this collection's calls
    (reads/writes) and seconds next to the stock modules'."""
    by_key = {(row["workers"], row["side"], row["phase"]): row for row in rows}
    lines = ["| workers | phase | %s calls (reads/writes) | %s seconds | %s calls (reads/writes) | %s seconds |"
             % (COLLECTION, COLLECTION, STOCK_MODULES, STOCK_MODULES), "|---:|---|---:|---:|---:|---:|"]
    for workers, phase in workers_and_phases(rows):
        cells = []
        for side in (COLLECTION, STOCK_MODULES):
            row = by_key.get((workers, side, phase))
            if row is None:
                cells += ["-", "-"]
            else:
                cells += ["%s (%s/%s)" % (_number(row["reads"] + row["writes"]), _number(row["reads"]), _number(row["writes"])),
                          _number(row["seconds"], 1)]
        lines.append("| %d | %s | %s |" % (workers, phase, " | ".join(cells)))
    return "\n".join(lines)


def stock_problems(rows):
    """Why the stock composition is not a fair baseline: a no-op rerun of it that writes or reports a change."""
    return ["the stock modules' no-op rerun with %d workers made %s write calls and %s changed tasks"
            % (row["workers"], _number(row["writes"]), _number(row["changed"]))
            for row in rows if row["side"] == STOCK_MODULES and row["phase"].startswith("rerun") and (row["writes"] or row["changed"])]


# -- --estimate-real: the estimate and the waits in series (pure) ------------------------------------------------------
def series_waits(calls, durations=None):
    """The seconds a phase would wait, at AWS's estimated durations (moto_timing's DEFAULT_DURATIONS, factor 1.0), if
    each long operation it started were waited for one after the other (today's path before issue 9): one wait per
    kind of operation in SERIES that `calls` ({"service:action": count}, count_calls()'s) holds, whatever the count
    (all NAT gateways together, all machines together). Returns (seconds, [(action, seconds), ...])."""
    durations = dict(default_durations(), **(durations or {}))
    waits = [(action, durations[transition]) for action, transition in SERIES if transition and calls.get(action)]
    return sum(seconds for _action, seconds in waits), waits


def default_durations():
    """moto_timing's DEFAULT_DURATIONS, imported when needed (moto_timing imports moto's models; the other modes need none)."""
    from helpers.moto_timing import DEFAULT_DURATIONS  # pylint: disable=import-outside-toplevel

    return DEFAULT_DURATIONS


def estimate_real(seconds, factor):
    """The estimated seconds of the same phase on a real AWS account from `seconds` measured with moto_timing at
    `factor`: the measurement itself at factor 1.0 (every transition then lasts its estimated AWS duration), None for
    any other factor. No scaled figure is made: a phase's wall time is not its waits divided by the factor, as the
    waits overlap work that does not scale (module starts, calls), the waiters poll at fixed intervals (the collection
    every 5 s, ec2_instance every 15 s) and the recorder's timeline (SigV4 dates) has a resolution of one second."""
    return seconds if float(factor) == 1.0 else None


def workers_and_phases(rows):
    """The (workers, phase) pairs of ``rows`` in the order they first appear: a table's lines."""
    seen = []
    for row in rows:
        if (row["workers"], row["phase"]) not in seen:
            seen.append((row["workers"], row["phase"]))
    return seen


def estimate_rows(rows, factor):
    """medians() rows with `estimate` (estimate_real() of their seconds) and `series` (series_waits())."""
    return [dict(row, estimate=estimate_real(row["seconds"], factor), series=series_waits(row.get("calls", {}))[0]) for row in rows]


def estimate_table(rows, factor, sides=(COLLECTION, STOCK_MODULES)):
    """estimate_rows() as one Markdown table: a line per (workers, phase); per side present, its calls (reads/writes),
    the seconds measured at `factor`, the estimated real-AWS seconds ("-" when not made) and the waits in series."""
    present = [side for side in sides if any(row["side"] == side for row in rows)]
    by_key = {(row["workers"], row["side"], row["phase"]): row for row in rows}
    head, rule = ["workers", "phase"], ["---:", "---"]
    for side in present:
        head += ["%s calls (reads/writes)" % side, "%s seconds at factor %s" % (side, _factor(factor)),
                 "%s estimated real-AWS seconds" % side, "%s waits in series (s)" % side]
        rule += ["---:"] * 4
    lines = ["| %s |" % " | ".join(head), "|%s|" % "|".join(rule)]
    for workers, phase in workers_and_phases(rows):
        cells = [str(workers), phase]
        for side in present:
            row = by_key.get((workers, side, phase))
            if row is None:
                cells += ["-"] * 4
                continue
            cells += ["%s (%s/%s)" % (_number(row["reads"] + row["writes"]), _number(row["reads"]), _number(row["writes"])),
                      _number(row["seconds"], 1), "-" if row["estimate"] is None else _number(row["estimate"], 1),
                      _number(row["series"], 1)]
        lines.append("| %s |" % " | ".join(cells))
    return "\n".join(lines)


def _factor(factor):
    return ("%g" % factor) if float(factor) != 1.0 else "1.0"


# -- --full: the jobs, their order, and the one table of both modes and both sides (pure) --------------------------------
MOTO_ONLY, TIMING = "moto only", "state transitions"
MODES = (TIMING, MOTO_ONLY)
FULL_WORKERS = (2, 20, 100)
# A job: one mode, one repeat index, one worker count; both sides run in it, interleaved.
Job = collections.namedtuple("Job", "mode repeat workers")
# At most this many moto-only jobs at once: they are CPU-bound (module starts, moto answering at once) and their seconds
# are what the table compares; the state-transition jobs mostly sleep in waits and fill the other slots of --jobs.
MOTO_ONLY_AT_ONCE = 1


def job_minutes(job, factor=1.0):
    """A rough duration of a job (both sides) on the 2-core development machine, for the order of the jobs and the
    printed estimate only. Moto only: about 3.5 min with 2 workers, 16 with 100 (the stock composition most of it);
    state transitions: the same plus the waits, about 18 min at factor 1.0 (the stock composition waits for each NAT
    gateway and machine task in turn: ~17 min a create/rerun/delete cycle with 2 workers, the collection ~5); at a small
    factor still about 2.5 min more than moto only, as the stock modules' waiters poll at fixed intervals (ec2_instance
    every 15 s)."""
    minutes = 3.2 + 0.13 * job.workers
    if job.mode == TIMING:
        minutes += max(18.0 * factor, 2.5)
    return minutes


def full_jobs(worker_counts, repeat, factor=1.0, modes=MODES):
    """Every job of a --full run, the longest first (the state-transition ones with the most workers), then by
    repeat index: the order in which next_job() starts them."""
    jobs = [Job(mode, index, workers) for index in range(repeat) for mode in modes for workers in worker_counts]
    return sorted(jobs, key=lambda job: (-job_minutes(job, factor), job.repeat))


def job_order(job):
    """The sides of a job in the order they run: interleaved()'s round for the job's repeat index (who goes first
    alternates from one repeat to the next)."""
    return interleaved(job.repeat + 1)[job.repeat]


def next_job(pending, running):
    """The job to start next while `running` run, None when none may: a moto-only job while fewer than
    MOTO_ONLY_AT_ONCE moto-only jobs run (they go one after the other, so theirs is the longest chain: start it at
    once), else the first (longest) pending state-transition job."""
    busy = sum(1 for job in running if job.mode == MOTO_ONLY)
    allowed = [job for job in pending if job.mode != MOTO_ONLY or busy < MOTO_ONLY_AT_ONCE]
    moto_only = [job for job in allowed if job.mode == MOTO_ONLY]
    return (moto_only or allowed or [None])[0]


def plan_minutes(jobs, parallel, factor=1.0):
    """The rough wall minutes of running `jobs` (in order) in `parallel` slots the way run_jobs() does, from
    job_minutes(): when each starts, the end of the run."""
    pending, running, now = list(jobs), [], 0.0  # running: [(end, job)]
    while pending or running:
        while len(running) < parallel:
            job = next_job(pending, [job for _end, job in running])
            if job is None:
                break
            pending.remove(job)
            running.append((now + job_minutes(job, factor), job))
        running.sort()
        now, _job = running.pop(0)
    return now


def describe_job(job):
    return "job %s, repeat %d, %d workers" % (job.mode, job.repeat + 1, job.workers)


def full_rows(samples, factor):
    """One row per (workers, side, phase), by workers then side then phase: the medians of the moto-only samples
    (calls, seconds, invocations, `runs`) and of the state-transition ones (`timed_seconds`, `timed_runs`, `estimate`
    at factor 1.0 else None), and `series`, the waits in series of the phase's calls."""
    by_mode = {mode: {(row["workers"], row["side"], row["phase"]): row for row in medians([s for s in samples if s.get("mode") == mode])}
               for mode in MODES}
    phase_order = [phase for phase, _playbook, _vars, _tags in PHASES]
    keys = sorted(set(by_mode[MOTO_ONLY]) | set(by_mode[TIMING]),
                  key=lambda key: (key[0], (COLLECTION, STOCK_MODULES).index(key[1]), phase_order.index(key[2])))
    rows = []
    for key in keys:
        moto, timed = by_mode[MOTO_ONLY].get(key), by_mode[TIMING].get(key)
        row = {"workers": key[0], "side": key[1], "phase": key[2], "runs": 0, "timed_runs": 0, "timed_seconds": None, "estimate": None}
        if moto:
            row.update(moto)
        if timed:
            row.update(timed_runs=timed["runs"], timed_seconds=timed["seconds"], estimate=estimate_real(timed["seconds"], factor))
        row["series"] = series_waits((timed or moto).get("calls", {}))[0]
        rows.append(row)
    return rows


def full_table(rows, factor):
    """full_rows() as one Markdown table: a line per (workers, phase); per side, the moto-only calls (reads/writes) and
    seconds, the seconds in the state-transition mode at `factor` (a column only when it is not 1.0), the estimated
    real-AWS seconds (at 1.0; "-" otherwise) and the waits in series. "-" where a side or mode has no sample."""
    by_key = {(row["workers"], row["side"], row["phase"]): row for row in rows}
    head, rule = ["workers", "phase"], ["---:", "---"]
    for side in (COLLECTION, STOCK_MODULES):
        head += ["%s calls (reads/writes)" % side, "%s moto seconds" % side]
        if float(factor) != 1.0:
            head.append("%s seconds at factor %s" % (side, _factor(factor)))
        head += ["%s estimated real-AWS seconds" % side, "%s waits in series (s)" % side]
    rule += ["---:"] * (len(head) - 2)
    lines = ["| %s |" % " | ".join(head), "|%s|" % "|".join(rule)]
    for workers, phase in workers_and_phases(rows):
        cells = [str(workers), phase]
        for side in (COLLECTION, STOCK_MODULES):
            row = by_key.get((workers, side, phase))
            if row is None:
                cells += ["-"] * (5 if float(factor) != 1.0 else 4)
                continue
            if row["runs"]:
                cells += ["%s (%s/%s)" % (_number(row["reads"] + row["writes"]), _number(row["reads"]), _number(row["writes"])),
                          _number(row["seconds"], 1)]
            else:
                cells += ["-", "-"]
            if float(factor) != 1.0:
                cells.append("-" if row["timed_seconds"] is None else _number(row["timed_seconds"], 1))
            cells += ["-" if row["estimate"] is None else _number(row["estimate"], 1), _number(row["series"], 1)]
        lines.append("| %s |" % " | ".join(cells))
    return "\n".join(lines)


def _span(counts):
    """How many runs: "1 run", "3 runs", "2 to 3 runs"."""
    counts = sorted(set(counts)) or [0]
    if len(counts) == 1:
        return "%d run%s" % (counts[0], "" if counts[0] == 1 else "s")
    return "%d to %d runs" % (counts[0], counts[-1])


def full_notes(rows, factor, jobs):
    """The lines under full_table(): how many runs the medians are of, how many jobs ran at once, what each column is."""
    return [
        "Medians of %s of each side on moto server finishing everything at once (\"moto\": calls and seconds) and of %s "
        "in the state-transition mode of tests/helpers/moto_timing at factor %s (AWS's estimated durations %s times %s), "
        "interleaved (the side that goes first alternates by repeat); calls = reads + writes (the lease's SSM calls apart); "
        "kubecluster.aws: create_cluster.yml --tags infra and delete_cluster.yml; stock modules: bench/stock/create.yml and delete.yml."
        % (_span(row["runs"] for row in rows), _span(row["timed_runs"] for row in rows), _factor(factor),
           ", ".join("%s %g s" % item for item in sorted(default_durations().items())), _factor(factor)),
        "Jobs (a mode, a repeat and a worker count, both sides in it, each on a moto server of its own): %s ran at once, at most %d "
        "of them moto-only: the seconds were measured with that many jobs sharing this machine (%s cores)."
        % (jobs, MOTO_ONLY_AT_ONCE, os.cpu_count()),
        ("estimated real-AWS seconds: the seconds measured at factor 1.0, where every transition lasts its estimated AWS duration; "
         if float(factor) == 1.0 else
         "estimated real-AWS seconds: made at factor 1.0 only (a phase's waits overlap work that does not scale and the waiters poll "
         "at fixed intervals); the seconds at factor %s are shown instead; " % _factor(factor))
        + "not a real AWS run.",
        "waits in series: the transition durations (factor 1.0) the phase would wait for one after the other, as before issue 9 "
        "(create: NAT gateways, then machines, then the NLB; delete: machines terminated, then NAT gateways deleted).",
    ]


def merge_runs(documents):
    """The samples and the factor of several --json documents ({"samples", "factor"?, "mode"?, "jobs"?}): --full's
    (every sample with its mode), --estimate-real's (state transitions at its factor) and --compare-stock's (moto
    only). Returns (samples, factor, [jobs of each --full run]); the documents with state-transition samples must share
    one factor."""
    samples, factors, jobs = [], set(), []
    for document in documents:
        if not isinstance(document, dict) or "samples" not in document:
            raise ValueError("not a --json document of --full, --compare-stock or --estimate-real (no samples)")
        default_mode = TIMING if document.get("factor") is not None else MOTO_ONLY
        for sample in document["samples"]:
            sample = dict(sample, mode=sample.get("mode", default_mode))
            if sample["mode"] == TIMING:
                factors.add(float(document["factor"]))
            samples.append(sample)
        if document.get("jobs"):
            jobs.append(document["jobs"])
    if len(factors) > 1:
        raise ValueError("the runs' state transitions were at different factors: %s" % ", ".join(sorted("%g" % f for f in factors)))
    return samples, (factors.pop() if factors else 1.0), jobs


# -- measuring, shared by both modes ------------------------------------------------------------------------------------
def measure_phases(recorder, phases, run, observe=None):
    """Run each phase (name, playbook, extra_vars, tags) with run(playbook, extra_vars, tags) -> Outcome while the
    recorder records; a row per phase. observe(phase, playbook, started, ended) adds what else the mode measures."""
    rows = []
    for phase, playbook, extra_vars, tags in phases:
        recorder.start_recording()
        started, clock = time.time(), time.monotonic()
        outcome = run(playbook, extra_vars, tags)
        seconds, ended = time.monotonic() - clock, time.time()
        recorder.stop_recording()
        if outcome.rc != 0:
            raise SystemExit("%s (%s) failed:\n%s" % (playbook, phase, outcome.failure))
        row = count_calls(recorder.recorded_calls())
        row.update(phase=phase, seconds=round(seconds, 1), changed=outcome.changed)
        if outcome.invocations is not None:
            row["invocations"] = outcome.invocations
        if observe:
            row.update(observe(phase, playbook, started, ended))
        rows.append(row)
    return rows


# -- moto only --------------------------------------------------------------------------------------------------------
def bench(worker_counts):
    link_collection()
    rows = []
    with MotoServer() as server, tempfile.TemporaryDirectory() as workdir:
        playbook = playbook_runner(server, pathlib.Path(workdir))
        for workers in worker_counts:
            server.reset()
            image_id = Account(server).prepare()
            spec = example_spec(image_id, machine_deployments=[{"name": "md-0", "replicas": workers, "instance_type": "t3.large"}])

            def run(name, extra_vars, tags, _spec=spec):
                done = playbook(name, _spec, extra_vars=extra_vars, tags=tags)
                return Outcome(done.rc, changed_tasks(done.report.get("stats", {})), done.explain() if done.rc else "",
                               module_invocations(done.report))

            for row in measure_phases(server, PHASES, run):
                row["workers"] = workers
                rows.append(row)
    return rows


def run_side_phase(playbook, given, name, extra_vars, tags):
    """One phase's playbook of one side: `given` holds the side's spec or extra vars, `extra_vars` the phase's."""
    options = dict(given)
    options["extra_vars"] = dict(options.get("extra_vars", {}), **extra_vars)
    done = playbook(name, tags=tags, **options)
    return Outcome(done.rc, changed_tasks(done.report.get("stats", {})), done.explain() if done.rc else "", module_invocations(done.report))


def long_playbook_runner(server, workdir, timeout=PLAYBOOK_TIMEOUT):
    """playbook_runner()'s run(playbook, spec=None, **options) with a longer timeout: the stock composition's create of
    100 workers in the state-transition mode at factor 1.0 waits for each NAT gateway and machine task in turn."""

    def run(playbook, spec=None, **options):
        args, env = playbook_command(server, workdir, playbook, spec, **options)
        return PlaybookRun(subprocess.run(args, cwd=str(workdir), env=env, capture_output=True, text=True, timeout=timeout, check=False))

    return run


def measure_sides(server, playbook, workers, order):
    """Samples (rows with workers and side) of the moto-only phases of each side in `order`, each side on a fresh
    account (moto reset)."""
    samples = []
    for side in order:
        server.reset()
        image_id = Account(server).prepare()
        spec = example_spec(image_id, machine_deployments=[{"name": "md-0", "replicas": workers, "instance_type": "t3.large"}])
        if side == COLLECTION:
            phases, given = PHASES, {"spec": spec}
        else:
            phases, given = STOCK_PHASES, {"extra_vars": stock_vars(spec)}
        for row in measure_phases(server, phases, functools.partial(run_side_phase, playbook, given)):
            row.update(workers=workers, side=side)
            samples.append(row)
    return samples


def bench_compare(worker_counts, repeat, timing=None, sides=(COLLECTION, STOCK_MODULES)):
    """Samples (rows with workers and side) of this collection's moto-only phases and of the stock composition's,
    interleaved: for each worker count, `repeat` rounds, each side on a fresh account (moto reset) per round.
    `timing`: moto_timing's factor for the server (--estimate-real), None for moto finishing everything at once;
    `sides`: which of the two to run."""
    link_collection()
    samples = []
    with MotoServer(timing=timing) as server, tempfile.TemporaryDirectory() as workdir:
        playbook = long_playbook_runner(server, pathlib.Path(workdir))
        for workers in worker_counts:
            for order in interleaved(repeat, sides):
                samples += measure_sides(server, playbook, workers, order)
    return samples


def run_job(job, factor):
    """One --full job: both sides' phases, interleaved (the side that goes first alternating with the repeat index),
    on a moto server of its own (its own free port, recorder and temp workdir), in the state-transition mode at
    `factor` for a timing job, finishing everything at once for a moto-only one. Its samples carry mode and repeat."""
    with MotoServer(timing=factor if job.mode == TIMING else 0.0) as server, tempfile.TemporaryDirectory(prefix="bench-job-") as workdir:
        samples = measure_sides(server, long_playbook_runner(server, pathlib.Path(workdir)), job.workers, job_order(job))
    for sample in samples:
        sample.update(mode=job.mode, repeat=job.repeat)
    return samples


def _exit_on_sigterm():
    """In a job's process: SIGTERM exits through the context managers, so that its moto server stops too."""
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))


def _process_pool(parallel):
    return concurrent.futures.ProcessPoolExecutor(max_workers=parallel, initializer=_exit_on_sigterm)


def run_jobs(jobs, factor, parallel, done=None, work=run_job, pool_of=_process_pool):
    """Run the jobs (full_jobs()' order) with work(job, factor) -> samples (run_job) in a pool_of(parallel) (processes),
    starting each as next_job() allows; done(job, samples, error, seconds) is told of each as it ends. Returns
    (samples, [(job, error), ...]); a failed job does not stop the others."""
    samples, failures = [], []
    pending, running = list(jobs), {}
    with pool_of(parallel) as pool:
        while pending or running:
            while len(running) < parallel:
                job = next_job(pending, [job for job, _started in running.values()])
                if job is None:
                    break
                pending.remove(job)
                print("started %s" % describe_job(job), file=sys.stderr, flush=True)
                running[pool.submit(work, job, factor)] = (job, time.monotonic())
            finished, _running = concurrent.futures.wait(list(running), return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                job, started = running.pop(future)
                try:
                    found, error = future.result(), None
                except BaseException as exc:  # pylint: disable=broad-exception-caught  # SystemExit of a failed playbook too
                    found, error = [], str(exc) or repr(exc)
                    failures.append((job, error))
                samples += found
                if done:
                    done(job, found, error, time.monotonic() - started)
    return samples, failures


# -- the whole flow on the local AWS's hosts ----------------------------------------------------------------------------
def local_spec(aws, workers):
    """The example as make demo prepares it for the local AWS (hack/demo_prepare.py --local-hosts), with `workers` workers."""
    import yaml  # pylint: disable=import-outside-toplevel

    demo_spec = aws.path("demo-spec.yml")
    subprocess.run([sys.executable, os.path.join(REPO, "hack", "demo_prepare.py"), "--spec", EXAMPLE, "--out", demo_spec,
                    "--key-dir", aws.state_dir, "--local-hosts", aws.state_dir], env=aws.env(), check=True, capture_output=True, text=True, timeout=300)
    with open(demo_spec, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    spec["cluster"]["machine_deployments"][0]["replicas"] = workers
    out = aws.path("bench-spec-%d.yml" % workers)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("# hack/demo_prepare.py --local-hosts's spec of %s with %d workers (bench/api_calls.py)\n" % (EXAMPLE, workers))
        yaml.safe_dump(spec, handle, default_flow_style=False, sort_keys=False)
    return out


def local_runner(aws, spec_file, logs):
    """run(playbook, extra_vars, tags) -> Outcome: ansible-playbook in the local AWS's controller container, as make demo
    runs it (the key pair's private key that demo_prepare.py imported; LOCAL_LIMITS), its output in logs/."""
    key = aws.path("jonnung.pem")

    def run(playbook, extra_vars, tags):
        argv = ["ansible-playbook", os.path.join(REPO, "playbooks", playbook + ".yml"), "-e", "@" + spec_file, "-e", "ssh_private_key_file=" + key]
        for name, value in dict(LOCAL_LIMITS, **extra_vars).items():
            argv += ["-e", json.dumps({name: value})]
        if tags:
            argv += ["--tags", ",".join(tags)]
        done = aws.run(argv, env={"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg")}, timeout=3600)
        log = os.path.join(logs, "%s-%s.log" % (os.path.basename(spec_file)[:-4], time.strftime("%H%M%S")))
        with open(log, "w", encoding="utf-8") as handle:
            handle.write("$ %s\nrc=%s\n%s\n%s" % (" ".join(argv), done.returncode, done.stdout, done.stderr))
        failure = "%s\n%s\n(whole output: %s)" % (done.stdout[-6000:], done.stderr[-2000:], log)
        return Outcome(done.returncode, changed_tasks(parse_recap(done.stdout)), failure)

    return run


def stand_in_observer(aws):
    """observe() for measure_phases: the kubeadm calls that change something, across the hosts, during the phase.
    delete_cluster.yml runs no node play and its hosts go with their instances: "-" there."""

    def observe(unused_phase, playbook, started, ended):
        if playbook == "delete_cluster":
            return {"kubeadm": None}
        calls = [call for instance_id, host in sorted(aws.hosts().items()) if host.get("up") for call in aws.stand_in_calls(instance_id, "kubeadm")]
        return {"kubeadm": kubeadm_changes(calls, started, ended)}

    return observe


def bench_local_hosts(worker_counts, state_dir=LOCAL_STATE):
    from localaws import LocalAws  # pylint: disable=import-outside-toplevel  # tests/localaws, a dev tool (on the path above)

    if os.geteuid() != 0:
        raise SystemExit("--local-hosts: the local AWS's hosts are Docker containers, which need root")
    link_collection()
    aws = LocalAws(state_dir, REPO)
    logs = os.path.join(aws.state_dir, "logs")
    rows = []
    try:
        aws.up()  # waits while another local AWS (a test, the demo) runs on this machine
        os.makedirs(logs, exist_ok=True)
        for workers in worker_counts:
            spec_file = local_spec(aws, workers)
            if workers == worker_counts[0]:  # once per account, as make demo does; not measured
                iam = local_runner(aws, spec_file, logs)("bootstrap_iam", {}, None)
                if iam.rc != 0:
                    raise SystemExit("bootstrap_iam.yml failed:\n" + iam.failure)
            for row in measure_phases(aws, LOCAL_PHASES, local_runner(aws, spec_file, logs), stand_in_observer(aws)):
                row["workers"] = workers
                rows.append(row)
            # the local AWS removes the deleted instances' hosts and the load balancer's proxy (not the product's time)
            aws.wait(lambda: not aws.hosts() and not aws.proxies(), 300, what="every host and proxy gone")
    finally:
        aws.down()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-hosts", action="store_true",
                        help="the whole flow (node plays included) on the local AWS of tests/localaws; needs root and Docker")
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts (default: 2 20; with --local-hosts: 2)")
    parser.add_argument("--compare-stock", action="store_true",
                        help="moto only: this collection next to the stock-module composition of bench/stock, interleaved, medians")
    parser.add_argument("--repeat", type=int, help="with --compare-stock: runs of each side per worker count (default 3; 1 with --estimate-real)")
    parser.add_argument("--estimate-real", type=float, nargs="?", const=1.0, metavar="FACTOR",
                        help="moto only, in moto_timing's state-transition mode at FACTOR (default 1.0): the seconds of each phase, the "
                             "estimated real-AWS seconds (at 1.0) and the waits in series; with --compare-stock the stock composition too")
    parser.add_argument("--full", action="store_true",
                        help="the whole table: both sides (this collection and bench/stock), moto only and in the state-transition mode "
                             "(at --estimate-real's FACTOR, default 1.0), interleaved, medians of --repeat (default 3), workers 2 20 100 "
                             "by default, in --jobs parallel jobs")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with --full: run N jobs (a mode, a repeat and a worker count each, on a moto server of its own) at once "
                             "(default 1)")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="run nothing: merge the samples of these --json files (of --full, --compare-stock, --estimate-real runs) "
                             "and print --full's table of their medians")
    parser.add_argument("--json", help="also write every row, with per-action call counts, to this file (--full: every sample, "
                                       "rewritten as each job ends)")
    args = parser.parse_args()
    if args.from_json:
        return from_json_main(args.from_json)
    if args.jobs < 1:
        parser.error("--jobs: at least 1")
    if args.full:
        if args.local_hosts:
            parser.error("--full measures on moto only; it does not combine with --local-hosts")
        if args.estimate_real is not None and args.estimate_real <= 0:
            parser.error("--estimate-real: the factor of AWS's durations must be more than 0")
        return full_main(args)
    if args.estimate_real is not None:
        if args.local_hosts:
            parser.error("--estimate-real measures on moto only; it does not combine with --local-hosts")
        if args.estimate_real <= 0:
            parser.error("--estimate-real: the factor of AWS's durations must be more than 0")
        return estimate_main(args)
    if args.repeat is None:
        args.repeat = 3
    if args.compare_stock:
        if args.local_hosts:
            parser.error("--compare-stock measures on moto only; it does not combine with --local-hosts")
        return compare_main(args)
    if args.local_hosts:
        rows = bench_local_hosts(args.workers or [2])
    else:
        rows = bench(args.workers or [2, 20])
    print(table(rows))
    if args.local_hosts:
        print("\nkubeadm, kubelet and the API server are stand-ins (tests/stand_ins): node-phase seconds are Ansible, SSH, apt and systemd time, "
              "not Kubernetes time.")
    print("lease reads/writes: the run lease's SSM GetParameter and PutParameter/DeleteParameter, bookkeeping, not counted as reads or writes.")
    if not args.local_hosts:
        print("modules run: the module processes the run started (tasks and loop items that are no controller-side action).")
    reruns = [row for row in rows if row["phase"].startswith("rerun")]
    print("\nno-op rerun calls by action (%d workers):" % reruns[-1]["workers"])
    for action, count in reruns[-1]["calls"].items():
        print("  %4d  %s" % (count, action))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)
    found = problems(rows, floors=not args.local_hosts)
    if found:
        raise SystemExit("\n".join(found))


def compare_main(args):
    samples = bench_compare(args.workers or [2, 20], max(1, args.repeat))
    rows = medians(samples)
    print(compare_table(rows))
    print("\nMedians of %d interleaved runs of each side on moto server; calls = reads + writes (the lease's SSM writes apart); "
          "kubecluster.aws: create_cluster.yml --tags infra and delete_cluster.yml; stock modules: bench/stock/create.yml and "
          "delete.yml." % max(1, args.repeat))
    stock_reruns = [row for row in rows if row["side"] == STOCK_MODULES and row["phase"].startswith("rerun")]
    if stock_reruns:
        print("\nstock modules' no-op rerun calls by action (%d workers, last run):" % stock_reruns[-1]["workers"])
        last = [sample for sample in samples if sample["side"] == STOCK_MODULES and sample["phase"].startswith("rerun")][-1]
        for action, count in last["calls"].items():
            print("  %4d  %s" % (count, action))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"samples": samples, "medians": rows}, handle, indent=2)
    found = problems([row for row in rows if row["side"] == COLLECTION]) + stock_problems(rows)
    if found:
        raise SystemExit("\n".join(found))


def estimate_main(args):
    factor = args.estimate_real
    repeat = max(1, args.repeat or 1)
    sides = (COLLECTION, STOCK_MODULES) if args.compare_stock else (COLLECTION,)
    samples = bench_compare(args.workers or [2], repeat, timing=factor, sides=sides)
    rows = estimate_rows(medians(samples), factor)
    print(estimate_table(rows, factor, sides))
    print("\nmoto server with AWS's state transitions (tests/helpers/moto_timing) at factor %s of the estimate durations %s; "
          "%s%s: not a real AWS run." % (
              _factor(factor), ", ".join("%s %g s" % item for item in sorted(default_durations().items())),
              "medians of %d runs of each side" % repeat if repeat > 1 else "one run of each side", ", interleaved" if len(sides) > 1 else ""))
    if float(factor) == 1.0:
        print("estimated real-AWS seconds: the seconds measured at factor 1.0, where every transition lasts its estimated AWS duration.")
    else:
        print("estimated real-AWS seconds: made at factor 1.0 only (a phase's waits overlap work that does not scale and the waiters "
              "poll at fixed intervals, so the seconds at factor %s do not scale back to AWS's)." % _factor(factor))
    print("waits in series: the transition durations (factor 1.0) the phase would wait for one after the other, as before issue 9: "
          "create: NAT gateways available (one wait for all), then machines running, then the NLB active; delete: machines "
          "terminated, the NLB (no transition modelled), then NAT gateways deleted before their Elastic IPs are released.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"factor": factor, "samples": samples, "medians": rows}, handle, indent=2)
    found = problems([row for row in rows if row["side"] == COLLECTION]) + stock_problems(rows)
    if found:
        raise SystemExit("\n".join(found))


def write_json(path, document):
    """Write the document to path through a temp file, so that a run stopped while writing keeps the last whole one."""
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    os.replace(path + ".tmp", path)


def full_main(args):
    factor = 1.0 if args.estimate_real is None else args.estimate_real
    worker_counts = args.workers or list(FULL_WORKERS)
    repeat = max(1, 3 if args.repeat is None else args.repeat)
    jobs = full_jobs(worker_counts, repeat, factor)
    print("%d jobs (%s workers, %d repeats, moto only and state transitions at factor %s), %d at once: about %.0f minutes "
          "(a rough estimate for this 2-core machine)" % (
              len(jobs), " ".join(map(str, worker_counts)), repeat, _factor(factor), args.jobs, plan_minutes(jobs, args.jobs, factor)),
          file=sys.stderr, flush=True)
    link_collection()
    document = {"mode": "full", "factor": factor, "jobs": args.jobs, "workers": worker_counts, "repeat": repeat, "samples": [], "failures": []}

    def done(job, samples, error, seconds):
        print("%s %s in %.0f s%s" % ("FAILED" if error else "finished", describe_job(job), seconds, (": " + error) if error else ""),
              file=sys.stderr, flush=True)
        document["samples"] += samples
        if error:
            document["failures"].append({"job": job._asdict(), "error": error})
        if args.json:
            write_json(args.json, document)

    samples, failures = run_jobs(jobs, factor, args.jobs, done)
    rows = full_rows(samples, factor)
    if args.json:
        write_json(args.json, dict(document, medians=rows))
    report_full(rows, factor, args.jobs, ["%s failed: %s" % (describe_job(job), error.strip().splitlines()[0] if error.strip() else "")
                                          for job, error in failures])


def from_json_main(paths):
    documents = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            documents.append(json.load(handle))
    try:
        samples, factor, jobs = merge_runs(documents)
    except ValueError as exc:
        raise SystemExit("--from-json: %s" % exc) from exc
    report_full(full_rows(samples, factor), factor, " or ".join(str(count) for count in sorted(set(jobs))) or "1")


def report_full(rows, factor, jobs, failed=()):
    """Print --full's table and notes; fail with the checks of the moto-only rows (problems() with the floors, for this
    collection; stock_problems()) and the jobs that failed."""
    print(full_table(rows, factor))
    print()
    print("\n".join(full_notes(rows, factor, jobs)))
    measured = [row for row in rows if row["runs"]]
    found = list(failed) + problems([row for row in measured if row["side"] == COLLECTION], floors=True) + stock_problems(measured)
    if found:
        raise SystemExit("\n".join(found))


if __name__ == "__main__":
    main()
