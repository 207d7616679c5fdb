"""create_cluster.yml and delete_cluster.yml against a moto server with AWS's state transitions (tests/helpers/moto_timing):
the long operations of a create overlap and are waited for once, a rerun waits for nothing, a delete waits for what
AWS would still refuse to delete around (machines shutting down, NAT gateways deleting)."""

import datetime
import time

import pytest

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import Account, example_spec, playbook_runner
from helpers.moto_server import MotoServer
from helpers.moto_timing import DEFAULT_DURATIONS

pytestmark = pytest.mark.e2e

# 0.05 would do on an idle machine, but a loaded one (shared CI runners) takes more than its 4.5 s of NAT gateway
# provisioning between CreateNatGateway and the first RunInstances (two module starts): 0.1 keeps the proof of the
# overlap out of the noise, for about 10 s more.
FACTOR = 0.1
# What one create waits for when done one after the other (today's path before issue 9): the NAT gateways, then the
# machines' boot, then the API load balancer's provisioning.
SERIAL_WAITS = FACTOR * (DEFAULT_DURATIONS["nat_gateway_available"] + DEFAULT_DURATIONS["instance_running"]
                         + DEFAULT_DURATIONS["load_balancer_active"])
FAST = {"kubecluster_wait_delay": 1}


@pytest.fixture(scope="module")
def timed_server():
    with MotoServer(region=REGION, timing=FACTOR) as server:
        yield server


def timed(run, *args, **kwargs):
    start = time.monotonic()
    done = run(*args, **kwargs)
    return done, time.monotonic() - start


def moment(value):
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_starts_the_long_operations_together_waits_once_and_delete_waits_for_them(timed_server, account, run_playbook, tmp_path):
    # The same create on moto as it is: what the playbook costs without any AWS wait, on this machine now.
    baseline_spec = example_spec(account.prepare())
    baseline, untimed_wall = timed(run_playbook, "create_cluster", baseline_spec, tags=["infra"], extra_vars=FAST)
    assert baseline.rc == 0, baseline.explain()

    timed_server.reset()
    aws = Account(timed_server)
    spec = example_spec(aws.prepare())
    (tmp_path / "timed").mkdir()
    run = playbook_runner(timed_server, tmp_path / "timed")

    timed_server.start_recording()
    created, wall = timed(run, "create_cluster", spec, tags=["infra"], extra_vars=FAST)
    timed_server.stop_recording()
    assert created.rc == 0, created.explain()

    # The one wait ended with everything ready: NAT gateways available, every machine running, the NLB active.
    status = created.result("Reconcile the network, the machines and the API load balancer")["status"]
    assert status["phase"] == "Provisioned"
    assert status["load_balancer"]["state"] == "active"
    owned = aws.owned(NAME)
    assert [n["State"] for n in owned["nat_gateways"]] == ["available"] * 3
    assert sorted(i["State"]["Name"] for i in owned["instances"]) == ["running"] * 4
    (balancer,) = owned["load_balancers"]
    assert balancer["State"]["Code"] == "active"
    plan = created.result("Reconcile the network, the machines and the API load balancer")["plan"]
    assert [p for p in plan if p["action"] == "wait" and p["resource"].startswith("nat")] == [], "the network step waited for the NAT gateways"

    # The machines were launched while the NAT gateways were still pending: no NAT wait in between (call order), and
    # the first launch came before the first NAT gateway could be available (moto's own timestamps).
    calls = [c["action"] for c in timed_server.recorded_calls()]
    last_nat_create = max(i for i, action in enumerate(calls) if action == "CreateNatGateway")
    first_launch = calls.index("RunInstances")
    assert last_nat_create < first_launch
    assert "DescribeNatGateways" not in calls[last_nat_create:first_launch], "a NAT wait ran before the machines launched"
    nat_available_at = min(moment(n["CreateTime"]) for n in owned["nat_gateways"]) + datetime.timedelta(
        seconds=FACTOR * DEFAULT_DURATIONS["nat_gateway_available"])
    first_launched_at = min(moment(i["LaunchTime"]) for i in owned["instances"])
    assert first_launched_at < nat_available_at, "the first machine launched after the NAT gateways were available"
    # The NLB is created before the one wait, so its provisioning overlaps the NAT gateways' and the machines' boot.
    assert calls.index("CreateLoadBalancer") < max(i for i, action in enumerate(calls) if action == "DescribeNatGateways")

    # Together, the waits cost less than the same waits one after the other.
    assert wall - untimed_wall < SERIAL_WAITS, (wall, untimed_wall, SERIAL_WAITS)

    # A rerun finds everything ready: no change, no write but the lease, no long wait.
    timed_server.start_recording()
    again, rerun_wall = timed(run, "create_cluster", spec, tags=["infra"], extra_vars=FAST)
    timed_server.stop_recording()
    assert again.rc == 0 and again.changed == 0, again.explain()
    assert [w["action"] for w in timed_server.recorded_writes()] == ["PutParameter", "DeleteParameter"]
    assert rerun_wall < untimed_wall + FACTOR * DEFAULT_DURATIONS["instance_running"], (rerun_wall, untimed_wall)

    # The delete waits for the machines to be terminated and the NAT gateways deleted before what AWS refuses to delete
    # around them (moto_timing refuses those deletes as AWS does), and leaves nothing behind.
    timed_server.start_recording()
    deleted = run("delete_cluster", spec, extra_vars={"confirm_delete": True})
    timed_server.stop_recording()
    assert deleted.rc == 0, deleted.explain()
    left = dict((kind, items) for kind, items in aws.owned(NAME).items() if items)
    assert left == {}
    assert aws.ec2.describe_addresses()["Addresses"] == []
    actions = [c["action"] for c in timed_server.recorded_calls()]
    assert actions.index("TerminateInstances") < actions.index("DeleteLoadBalancer") < actions.index("DeleteSecurityGroup")
    assert max(i for i, a in enumerate(actions) if a == "DeleteNatGateway") < actions.index("ReleaseAddress")
