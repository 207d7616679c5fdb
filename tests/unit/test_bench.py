"""The pure parts of bench/api_calls.py that both of its modes share (what a phase did, the checks, the table),
and the PLAY RECAP reader of tests/helpers/test_hosts.py that it, the node tests and the localaws test use."""

import concurrent.futures
import os
import threading
import time

import pytest

from helpers.modules import load_file
from helpers.test_hosts import parse_recap

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench", "api_calls.py")


@pytest.fixture(scope="module")
def bench():
    return load_file("bench_api_calls", BENCH)


def call(service, action, is_write):
    return {"service": service, "action": action, "is_write": is_write}


def test_count_calls_keeps_the_lease_apart_from_the_resource_writes(bench):
    calls = [call("ssm", "PutParameter", True), call("ec2", "DescribeVpcs", False), call("ec2", "CreateVpc", True),
             call("ssm", "GetParameter", False), call("ec2", "DescribeVpcs", False), call("ssm", "DeleteParameter", True)]

    counted = bench.count_calls(calls)

    assert (counted["reads"], counted["writes"], counted["lease_reads"], counted["lease_writes"]) == (2, 1, 1, 2)
    assert counted["calls"] == {"ec2:CreateVpc": 1, "ec2:DescribeVpcs": 2, "ssm:DeleteParameter": 1, "ssm:GetParameter": 1,
                                "ssm:PutParameter": 1}


def test_count_calls_counts_other_ssm_writes_as_writes(bench):
    assert bench.count_calls([call("ssm", "AddTagsToResource", True)])["writes"] == 1


@pytest.mark.parametrize("argv, change", [
    (["init", "--config", "/run/kubecluster/init.yaml", "--upload-certs"], "init"),
    (["init", "phase", "upload-certs", "--upload-certs", "--config", "f"], "upload-certs"),
    (["init", "phase", "preflight"], None),
    (["join", "--config", "f"], "join"),
    (["reset", "-f"], "reset"),
    (["token", "create", "--ttl", "15m"], "token create"),
    (["token", "delete", "abcdef"], "token delete"),
    (["token", "list"], None),
    (["config", "validate", "--config", "f"], None),
    (["version", "-o", "short"], None),
    ([], None),
])
def test_kubeadm_change(bench, argv, change):
    assert bench.kubeadm_change(argv) == change


def test_kubeadm_changes_counts_the_phase_s_changing_kubeadm_calls(bench):
    calls = [
        {"binary": "kubeadm", "argv": ["init", "--config", "f"], "time": 99.0},  # before the phase
        {"binary": "kubeadm", "argv": ["join", "--config", "f"], "time": 100.0},
        {"binary": "kubeadm", "argv": ["join", "--config", "f"], "time": 150.0},
        {"binary": "kubeadm", "argv": ["token", "create"], "time": 120.0},
        {"binary": "kubeadm", "argv": ["version"], "time": 120.0},
        {"binary": "kubectl", "argv": ["apply", "-f", "x"], "time": 120.0},
        {"binary": "kubeadm", "argv": ["reset", "-f"], "time": 200.5},  # after it
    ]

    assert bench.kubeadm_changes(calls, 100.0, 200.0) == {"join": 2, "token create": 1}
    assert bench.kubeadm_changes(calls, 300.0, 400.0) == {}


def test_changed_tasks_sums_the_hosts(bench):
    assert bench.changed_tasks({"localhost": {"changed": 3}, "cp-0": {"changed": 5}, "w-0": {"changed": 0}}) == 8
    assert bench.changed_tasks({}) == 0


def row(workers, phase, reads=40, writes=0, kubeadm=None, **extra):
    found = {"workers": workers, "phase": phase, "reads": reads, "writes": writes, "lease_reads": 1, "lease_writes": 2, "seconds": 1.25,
             "changed": 0}
    if kubeadm is not None:
        found["kubeadm"] = kubeadm
    found.update(extra)
    return found


def test_problems_none_for_a_quiet_rerun(bench):
    rows = [row(2, "create", writes=50, kubeadm={"init": 1}), row(2, "rerun (no-op)", kubeadm={}), row(2, "delete", writes=40),
            row(5, "rerun (no-op)", kubeadm={})]
    assert bench.problems(rows) == []


def test_problems_name_a_rerun_that_writes_calls_kubeadm_or_reads_more_with_more_workers(bench):
    rows = [row(2, "rerun (no-op)", writes=1), row(5, "rerun (no-op)", reads=41, kubeadm={"join": 1})]

    found = bench.problems(rows)

    assert len(found) == 3
    assert "with 2 workers made 1 write calls" in found[0]
    assert "with 5 workers made kubeadm calls that change something: {'join': 1}" in found[1]
    assert "grow" in found[2]


def test_problems_over_the_floor_only_when_asked(bench):
    rows = [row(2, "rerun (no-op)", reads=17, invocations=4), row(20, "rerun (no-op)", reads=16, invocations=3)]

    assert bench.problems(rows) == []
    found = bench.problems(rows, floors=True)

    assert found == ["the no-op rerun with 2 workers made 17 reads (besides the lease's), over the floor of 16",
                     "the no-op rerun with 2 workers ran 4 modules, over the floor of 3"]


def test_module_invocations_count_modules_and_loop_items_not_controller_actions(bench):
    def task(**host):
        return {"task": {"name": "t"}, "hosts": {"localhost": host}}

    report = {"plays": [{"tasks": [
        task(action="kubecluster.aws.cluster_spec"),
        task(action="kubecluster.aws.cluster_lease", skipped=True),
        task(action="ansible.builtin.set_fact"),
        task(action="ansible.builtin.include_tasks"),
        task(action="debug"),
        task(action="kubecluster.aws.machine_set", results=[{"item": 1}, {"item": 2, "skipped": True}, {"item": 3}]),
    ]}, {"tasks": [task(action="kubecluster.aws.cluster_lease")]}]}

    assert bench.module_invocations(report) == 4
    assert bench.module_invocations({}) == 0


def test_table_moto_only_has_no_kubeadm_column(bench):
    lines = bench.table([row(2, "create", reads=42, writes=57, invocations=3)]).splitlines()

    assert lines[0] == "| workers | phase | reads | writes | lease reads/writes | modules run | seconds | changed tasks |"
    assert lines[2] == "| 2 | create | 42 | 57 | 1/2 | 3 | 1.2 | 0 |"


def test_table_local_hosts_shows_the_kubeadm_calls(bench):
    rows = [row(2, "create", kubeadm={"init": 1, "join": 2}), row(2, "rerun (no-op)", kubeadm={}), row(2, "delete", kubeadm=None)]
    rows[2]["kubeadm"] = None  # delete_cluster.yml: the hosts are gone

    lines = bench.table(rows).splitlines()

    assert lines[0].endswith("| changed tasks | kubeadm calls that change |")
    assert lines[1].count("|") == lines[0].count("|")
    assert [line.rsplit("|", 2)[1].strip() for line in lines[2:]] == ["init 1, join 2", "none", "-"]


RECAP = """\
TASK [Release the lease] ********************************************************
ok: [localhost]

PLAY RECAP *********************************************************************
capi-example-control-plane-abcde : ok=80   changed=31   unreachable=0    failed=0    skipped=20   rescued=0    ignored=0
capi-example-md-0-xyz12    : ok=50   changed=22   unreachable=0    failed=0    skipped=10   rescued=1    ignored=2
localhost                  : ok=40   changed=3    unreachable=0    failed=0

"""


def test_parse_recap_reads_every_host_line():
    recap = parse_recap("ok: [localhost]\n" + RECAP)

    assert recap["capi-example-control-plane-abcde"] == {"ok": 80, "changed": 31, "unreachable": 0, "failed": 0, "skipped": 20, "rescued": 0,
                                                         "ignored": 0}
    assert recap["capi-example-md-0-xyz12"]["ignored"] == 2
    assert recap["localhost"] == {"ok": 40, "changed": 3, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}


def test_parse_recap_without_a_recap_is_empty():
    assert parse_recap("ERROR! the playbook could not be found\n") == {}


# -- --compare-stock: the interleaving and the medians' table --------------------------------------------------------
def sample(workers, side, phase, reads, writes, seconds, changed=0):
    return {"workers": workers, "side": side, "phase": phase, "reads": reads, "writes": writes, "lease_writes": 0, "seconds": seconds,
            "changed": changed}


def test_interleaved_alternates_the_side_that_goes_first(bench):
    assert bench.interleaved(3, ("a", "b")) == [["a", "b"], ["b", "a"], ["a", "b"]]
    assert bench.interleaved(1) == [[bench.COLLECTION, bench.STOCK_MODULES]]


def test_medians_per_workers_side_and_phase(bench):
    samples = [sample(2, "a", "create", 40, 50, 10.0), sample(2, "b", "create", 300, 60, 100.0),
               sample(2, "a", "create", 40, 50, 30.0), sample(2, "b", "create", 300, 60, 90.0),
               sample(2, "a", "create", 42, 50, 11.0), sample(2, "b", "create", 302, 60, 95.0)]

    rows = bench.medians(samples)

    assert [(row["side"], row["reads"], row["writes"], row["seconds"], row["runs"]) for row in rows] == [
        ("a", 40, 50, 11.0, 3), ("b", 300, 60, 95.0, 3)]


def test_compare_table_puts_both_sides_of_a_phase_on_one_line(bench):
    rows = bench.medians([sample(2, bench.COLLECTION, "create", 44, 57, 16.24), sample(2, bench.STOCK_MODULES, "create", 285, 64, 102.1),
                          sample(2, bench.COLLECTION, "rerun (no-op)", 43, 0, 15.7), sample(2, bench.COLLECTION, "rerun (no-op)", 44, 0, 15.9),
                          sample(20, bench.STOCK_MODULES, "delete", 86, 43, 38.7)])

    lines = bench.compare_table(rows).splitlines()

    assert lines[0] == ("| workers | phase | kubecluster.aws calls (reads/writes) | kubecluster.aws seconds | stock modules calls (reads/writes) "
                        "| stock modules seconds |")
    assert lines[1].count("|") == lines[0].count("|")
    assert lines[2:] == ["| 2 | create | 101 (44/57) | 16.2 | 349 (285/64) | 102.1 |",
                         "| 2 | rerun (no-op) | 43.5 (43.5/0) | 15.8 | - | - |",
                         "| 20 | delete | - | - | 129 (86/43) | 38.7 |"]


def test_stock_problems_name_a_stock_rerun_that_changes(bench):
    rows = bench.medians([sample(2, bench.STOCK_MODULES, "rerun (no-op)", 200, 0, 30.0), sample(20, bench.STOCK_MODULES, "rerun (no-op)", 200, 3, 30.0, 1),
                          sample(20, bench.COLLECTION, "rerun (no-op)", 40, 2, 10.0)])

    assert bench.stock_problems(rows) == ["the stock modules' no-op rerun with 20 workers made 3 write calls and 1 changed tasks"]


# -- --estimate-real: the waits in series and the estimate ------------------------------------------------------------
def test_series_waits_of_a_create_are_one_wait_per_kind_nat_then_machines_then_nlb(bench):
    calls = {"ec2:CreateVpc": 1, "ec2:CreateNatGateway": 3, "ec2:RunInstances": 4, "elbv2:CreateLoadBalancer": 1, "ec2:DescribeNatGateways": 9}

    seconds, waits = bench.series_waits(calls)

    assert waits == [("ec2:CreateNatGateway", 90.0), ("ec2:RunInstances", 40.0), ("elbv2:CreateLoadBalancer", 150.0)]
    assert seconds == 280.0


def test_series_waits_of_a_delete_count_the_machines_and_nat_gateways_not_the_nlb(bench):
    calls = {"ec2:TerminateInstances": 1, "elbv2:DeleteLoadBalancer": 1, "ec2:DeleteNatGateway": 3, "ec2:ReleaseAddress": 3}

    seconds, waits = bench.series_waits(calls)

    assert waits == [("ec2:TerminateInstances", 45.0), ("ec2:DeleteNatGateway", 60.0)]
    assert seconds == 105.0


def test_series_waits_nothing_for_a_rerun_or_a_classic_elb_and_follow_given_durations(bench):
    assert bench.series_waits({"ec2:DescribeInstances": 1, "elbv2:DescribeLoadBalancers": 1}) == (0, [])
    assert bench.series_waits({"elb:CreateLoadBalancer": 1, "ec2:CreateNatGatewayX": 1}) == (0, [])
    assert bench.series_waits({"ec2:RunInstances": 2, "ec2:CreateNatGateway": 0}, {"instance_running": 30.0}) == (30.0, [("ec2:RunInstances", 30.0)])


def test_series_waits_use_moto_timing_s_durations(bench):
    from helpers.moto_timing import DEFAULT_DURATIONS  # pylint: disable=import-outside-toplevel

    assert {transition for _action, transition in bench.SERIES if transition} <= set(DEFAULT_DURATIONS)
    assert bench.series_waits({"ec2:CreateNatGateway": 1})[0] == DEFAULT_DURATIONS["nat_gateway_available"]


@pytest.mark.parametrize("seconds, factor, estimate", [(212.4, 1.0, 212.4), (212.4, 1, 212.4), (16.5, 0.05, None), (16.5, 0.5, None)])
def test_estimate_real_is_the_measurement_at_factor_1_and_not_made_otherwise(bench, seconds, factor, estimate):
    assert bench.estimate_real(seconds, factor) == estimate


def timed_sample(workers, side, phase, reads, writes, seconds, calls):
    return dict(sample(workers, side, phase, reads, writes, seconds), calls=calls)


def test_estimate_table_puts_measured_estimate_and_series_of_both_sides_on_one_line(bench):
    create = {"ec2:CreateNatGateway": 3, "ec2:RunInstances": 4, "elbv2:CreateLoadBalancer": 1}
    rows = bench.estimate_rows(bench.medians([
        timed_sample(2, bench.COLLECTION, "create", 44, 57, 190.04, create),
        timed_sample(2, bench.STOCK_MODULES, "create", 290, 64, 640.0, create),
        timed_sample(2, bench.COLLECTION, "rerun (no-op)", 16, 0, 5.3, {"ec2:DescribeInstances": 1}),
        timed_sample(2, bench.COLLECTION, "delete", 51, 42, 130.0, {"ec2:TerminateInstances": 1, "ec2:DeleteNatGateway": 3}),
    ]), 1.0)

    lines = bench.estimate_table(rows, 1.0).splitlines()

    assert lines[0] == ("| workers | phase | kubecluster.aws calls (reads/writes) | kubecluster.aws seconds at factor 1.0 "
                        "| kubecluster.aws estimated real-AWS seconds | kubecluster.aws waits in series (s) "
                        "| stock modules calls (reads/writes) | stock modules seconds at factor 1.0 "
                        "| stock modules estimated real-AWS seconds | stock modules waits in series (s) |")
    assert lines[1].count("|") == lines[0].count("|")
    assert lines[2:] == ["| 2 | create | 101 (44/57) | 190.0 | 190.0 | 280.0 | 354 (290/64) | 640.0 | 640.0 | 280.0 |",
                         "| 2 | rerun (no-op) | 16 (16/0) | 5.3 | 5.3 | 0.0 | - | - | - | - |",
                         "| 2 | delete | 93 (51/42) | 130.0 | 130.0 | 105.0 | - | - | - | - |"]


def test_estimate_table_without_the_stock_side_and_below_factor_1_shows_no_estimate(bench):
    rows = bench.estimate_rows(bench.medians([timed_sample(2, bench.COLLECTION, "create", 44, 57, 16.5, {"ec2:RunInstances": 3})]), 0.05)

    lines = bench.estimate_table(rows, 0.05).splitlines()

    assert "stock modules" not in lines[0] and "seconds at factor 0.05" in lines[0]
    assert lines[2] == "| 2 | create | 101 (44/57) | 16.5 | - | 40.0 |"


def test_stock_vars_lays_out_capa_s_subnets_and_spreads_the_machines_over_the_zones():
    stock_vars = load_file("stock_vars", os.path.join(os.path.dirname(BENCH), "stock", "stock_vars.py")).stock_vars
    spec = {"cluster": {"name": "c", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4", "network": {"vpc_cidr": "10.0.0.0/16"},
                        "machine_deployments": [{"name": "md-0", "replicas": 2}]}}

    found = stock_vars(spec, workers=5)["stock"]

    assert found["public_cidrs"] == ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]
    assert found["private_cidrs"] == ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]
    assert found["image"]["name"] == "capa-ami-ubuntu-24.04-?1.31.4-*"
    assert [(m["name"], m["zone_index"], m["count"]) for m in found["machines"]] == [
        ("control-plane", 0, 1), ("md-0", 0, 2), ("md-0", 1, 2), ("md-0", 2, 1)]


# -- --full: the jobs and their order, the merge of both modes, the table, --from-json -------------------------------
def test_full_jobs_are_every_mode_repeat_and_worker_count_the_longest_first(bench):
    jobs = bench.full_jobs([2, 20, 100], 3)

    assert len(jobs) == len(set(jobs)) == 2 * 3 * 3
    assert jobs[:3] == [bench.Job(bench.TIMING, index, 100) for index in range(3)]
    assert [job.workers for job in jobs if job.mode == bench.MOTO_ONLY] == [100] * 3 + [20] * 3 + [2] * 3
    minutes = [bench.job_minutes(job) for job in jobs]
    assert minutes == sorted(minutes, reverse=True)
    assert bench.job_minutes(bench.Job(bench.TIMING, 0, 2), 0.05) < bench.job_minutes(bench.Job(bench.TIMING, 0, 2), 1.0)


def test_job_order_alternates_the_side_that_goes_first_by_repeat_as_interleaved(bench):
    orders = [bench.job_order(bench.Job(bench.MOTO_ONLY, index, 2)) for index in range(4)]

    assert orders == bench.interleaved(4)
    assert orders[0] == [bench.COLLECTION, bench.STOCK_MODULES] and orders[1] == [bench.STOCK_MODULES, bench.COLLECTION]


def test_next_job_starts_the_moto_only_chain_then_the_longest_state_transition_jobs(bench):
    timed = [bench.Job(bench.TIMING, 0, 100), bench.Job(bench.TIMING, 0, 2)]
    moto = [bench.Job(bench.MOTO_ONLY, 0, 100), bench.Job(bench.MOTO_ONLY, 1, 100)]
    pending = timed + moto

    assert bench.next_job(pending, []) == moto[0]
    assert bench.next_job(pending, [moto[0]]) == timed[0]  # one moto-only job at a time
    assert bench.next_job(moto[1:], [moto[0]]) is None
    assert bench.next_job(moto[1:], [timed[0]]) == moto[1]
    assert bench.next_job([], []) is None


def test_plan_minutes_runs_the_jobs_in_parallel_slots(bench):
    jobs = bench.full_jobs([2], 1)
    moto, timed = (bench.job_minutes(bench.Job(mode, 0, 2)) for mode in (bench.MOTO_ONLY, bench.TIMING))

    assert bench.plan_minutes(jobs, 1) == pytest.approx(moto + timed)
    assert bench.plan_minutes(jobs, 2) == pytest.approx(max(moto, timed))
    everything = bench.full_jobs([2, 20, 100], 3)
    longest = max(bench.job_minutes(job) for job in everything)
    serial = sum(bench.job_minutes(job) for job in everything)
    assert bench.plan_minutes(everything, 1) == pytest.approx(serial)
    assert longest <= bench.plan_minutes(everything, 4) < serial / 3
    # the moto-only jobs go one at a time: more slots than jobs cannot beat their sum
    moto_only = sum(bench.job_minutes(job) for job in everything if job.mode == bench.MOTO_ONLY)
    assert bench.plan_minutes(everything, 18) == pytest.approx(max(moto_only, longest))


def full_sample(mode, workers, side, phase, reads, writes, seconds, calls=None, invocations=3, repeat=0):
    return dict(sample(workers, side, phase, reads, writes, seconds), mode=mode, repeat=repeat, calls=calls or {}, invocations=invocations,
                lease_reads=1)


CREATE_CALLS = {"ec2:CreateNatGateway": 3, "ec2:RunInstances": 4, "elbv2:CreateLoadBalancer": 1}


def full_samples(bench):
    """Two repeats of each side's create and rerun, 2 workers, both modes (the timing mode's reads are the waits' polls)."""
    found = []
    for repeat, (ours, stock) in enumerate([(10.0, 100.0), (14.0, 90.0), (12.0, 95.0)]):
        for mode, scale in ((bench.MOTO_ONLY, 1), (bench.TIMING, 10)):
            found += [full_sample(mode, 2, bench.COLLECTION, "create", 33 * scale, 57, ours * scale, CREATE_CALLS, repeat=repeat),
                      full_sample(mode, 2, bench.COLLECTION, "rerun (no-op)", 16, 0, 5.0, repeat=repeat),
                      full_sample(mode, 2, bench.STOCK_MODULES, "create", 285 * scale, 64, stock * scale, CREATE_CALLS, invocations=40, repeat=repeat)]
    return found


def test_full_rows_take_the_calls_from_moto_only_and_the_estimate_from_the_state_transitions(bench):
    rows = bench.full_rows(list(reversed(full_samples(bench))), 1.0)

    assert [(row["workers"], row["side"], row["phase"]) for row in rows] == [
        (2, bench.COLLECTION, "create"), (2, bench.COLLECTION, "rerun (no-op)"), (2, bench.STOCK_MODULES, "create")]
    create = rows[0]
    assert (create["reads"], create["writes"], create["seconds"], create["runs"]) == (33, 57, 12.0, 3)
    assert (create["timed_seconds"], create["estimate"], create["timed_runs"], create["series"]) == (120.0, 120.0, 3, 280.0)
    assert rows[2]["estimate"] == 950.0 and rows[2]["invocations"] == 40
    assert bench.full_rows(full_samples(bench), 0.05)[0]["estimate"] is None


def test_full_table_one_line_per_workers_and_phase_both_sides_and_modes(bench):
    lines = bench.full_table(bench.full_rows(full_samples(bench), 1.0), 1.0).splitlines()

    assert lines[0] == ("| workers | phase | kubecluster.aws calls (reads/writes) | kubecluster.aws moto seconds "
                        "| kubecluster.aws estimated real-AWS seconds | kubecluster.aws waits in series (s) "
                        "| stock modules calls (reads/writes) | stock modules moto seconds "
                        "| stock modules estimated real-AWS seconds | stock modules waits in series (s) |")
    assert lines[1].count("|") == lines[0].count("|")
    assert lines[2:] == ["| 2 | create | 90 (33/57) | 12.0 | 120.0 | 280.0 | 349 (285/64) | 95.0 | 950.0 | 280.0 |",
                         "| 2 | rerun (no-op) | 16 (16/0) | 5.0 | 5.0 | 0.0 | - | - | - | - |"]


def test_full_table_below_factor_1_shows_the_seconds_at_the_factor_and_no_estimate(bench):
    samples = [s for s in full_samples(bench) if s["phase"] == "create" and not (s["mode"] == bench.MOTO_ONLY and s["side"] == bench.STOCK_MODULES)]

    lines = bench.full_table(bench.full_rows(samples, 0.05), 0.05).splitlines()

    assert "| kubecluster.aws moto seconds | kubecluster.aws seconds at factor 0.05 | kubecluster.aws estimated real-AWS seconds |" in lines[0]
    assert lines[1].count("|") == lines[0].count("|") == lines[2].count("|")
    assert lines[2] == "| 2 | create | 90 (33/57) | 12.0 | 120.0 | - | 280.0 | - | - | 950.0 | - | 280.0 |"


def test_full_notes_say_how_many_runs_and_jobs_at_once(bench):
    samples = full_samples(bench)
    del samples[12]  # the collection's moto-only create of the third repeat

    rows = bench.full_rows(samples, 1.0)

    notes = "\n".join(bench.full_notes(rows, 1.0, 4))

    assert "Medians of 2 to 3 runs of each side on moto server" in notes and "and of 3 runs in the state-transition mode" in notes
    assert "4 ran at once, at most 1 of them moto-only" in notes and "not a real AWS run" in notes


def test_merge_runs_takes_full_estimate_real_and_compare_stock_documents(bench):
    full = {"mode": "full", "factor": 0.05, "jobs": 2, "samples": full_samples(bench)[:6]}
    estimate = {"factor": 0.05, "samples": [sample(2, bench.COLLECTION, "create", 300, 57, 20.0)], "medians": []}
    compare = {"samples": [sample(2, bench.COLLECTION, "create", 33, 57, 9.0)], "medians": []}

    samples, factor, jobs = bench.merge_runs([full, estimate, compare])

    assert factor == 0.05 and jobs == [2]
    assert [s["mode"] for s in samples] == [bench.MOTO_ONLY] * 3 + [bench.TIMING] * 3 + [bench.TIMING, bench.MOTO_ONLY]
    with pytest.raises(ValueError, match="different factors: 0.05, 1"):
        bench.merge_runs([full, {"factor": 1.0, "samples": [dict(sample(2, "a", "create", 1, 1, 1.0), mode=bench.TIMING)]}])
    with pytest.raises(ValueError, match="no samples"):
        bench.merge_runs([[{"workers": 2}]])  # the default mode's --json: rows, not samples


def test_from_json_merges_runs_and_prints_the_table_of_the_medians(bench, tmp_path, monkeypatch, capsys):
    samples = full_samples(bench)
    paths = []
    for index, part in enumerate((samples[:6], samples[6:])):  # two runs started by hand, say
        paths.append(str(tmp_path / ("run%d.json" % index)))
        bench.write_json(paths[-1], {"mode": "full", "factor": 1.0, "jobs": 2 + index, "samples": part, "failures": []})
    monkeypatch.setattr("sys.argv", ["api_calls.py", "--from-json"] + paths)

    bench.main()

    out = capsys.readouterr().out
    assert out.startswith(bench.full_table(bench.full_rows(samples, 1.0), 1.0) + "\n\n")
    assert "Medians of 3 runs" in out and "2 or 3 ran at once" in out
    assert not list(tmp_path.glob("*.tmp"))


def test_from_json_fails_on_the_moto_only_checks(bench, tmp_path, monkeypatch, capsys):
    samples = full_samples(bench) + [full_sample(bench.MOTO_ONLY, 2, bench.STOCK_MODULES, "rerun (no-op)", 246, 2, 40.0)]
    samples[1]["reads"] = samples[1 + 6]["reads"] = 17  # two of the collection's three moto-only reruns over the floor
    path = str(tmp_path / "run.json")
    bench.write_json(path, {"mode": "full", "factor": 1.0, "samples": samples})
    monkeypatch.setattr("sys.argv", ["api_calls.py", "--from-json", path])

    with pytest.raises(SystemExit) as failed:
        bench.main()

    assert str(failed.value).splitlines() == ["the no-op rerun with 2 workers made 17 reads (besides the lease's), over the floor of 16",
                                              "the stock modules' no-op rerun with 2 workers made 2 write calls and 0 changed tasks"]
    assert "| 2 | rerun (no-op) | 17 (17/0) |" in capsys.readouterr().out


def test_report_full_fails_with_the_failed_jobs(bench, capsys):
    with pytest.raises(SystemExit, match="job state transitions, repeat 1, 100 workers failed: boom"):
        bench.report_full(bench.full_rows(full_samples(bench), 1.0), 1.0, 2, ["job state transitions, repeat 1, 100 workers failed: boom"])
    capsys.readouterr()


def test_run_jobs_runs_them_all_at_most_n_at_once_and_keeps_going_past_a_failure(bench):
    lock, state = threading.Lock(), {"now": 0, "most": 0, "moto_only": 0, "most_moto_only": 0}

    def work(job, factor):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["moto_only"] += job.mode == bench.MOTO_ONLY
            state["most_moto_only"] = max(state["most_moto_only"], state["moto_only"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
            state["moto_only"] -= job.mode == bench.MOTO_ONLY
        if job == bench.Job(bench.TIMING, 1, 20):
            raise SystemExit("create_cluster (create) failed")
        return [{"job": job, "factor": factor}]

    jobs = bench.full_jobs([2, 20], 2)
    told = []

    samples, failures = bench.run_jobs(jobs, 0.5, 3, lambda job, found, error, seconds: told.append((job, error)), work=work,
                                       pool_of=lambda n: concurrent.futures.ThreadPoolExecutor(max_workers=n))

    assert sorted(s["job"] for s in samples) == sorted(job for job in jobs if job != bench.Job(bench.TIMING, 1, 20))
    assert {s["factor"] for s in samples} == {0.5}
    assert failures == [(bench.Job(bench.TIMING, 1, 20), "create_cluster (create) failed")]
    assert sorted(job for job, _error in told) == sorted(jobs)
    assert state["most"] == 3 and state["most_moto_only"] == 1
