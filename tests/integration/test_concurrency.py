"""Two runs on one cluster at once (issue 12), with real ansible-playbook processes against a moto server.

Before the lease, two creates started together made 2 VPCs, 6 NAT gateways, 6 EIPs and 6 workers
where 4 were wanted; now the second fails naming the first, or, started after the first ended,
changes nothing."""

import datetime
import json
import os
import signal
import socket
import time

import pytest
from botocore.exceptions import ClientError

from helpers.aws import CLUSTER as NAME, LEASE, ROLE
from helpers.e2e import example_spec, start_playbook, tags

pytestmark = pytest.mark.e2e


def lease_value(account):
    try:
        return json.loads(account.ssm.get_parameter(Name=LEASE)["Parameter"]["Value"])
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def assert_exactly_the_spec(account):
    owned = account.owned(NAME)
    assert len(owned["vpcs"]) == 1
    assert len(owned["nat_gateways"]) == 3 and len(owned["addresses"]) == 3  # per_az over 3 zones
    assert len(account.ec2.describe_addresses()["Addresses"]) == 3
    roles = sorted(tags(m)[ROLE] for m in owned["instances"])
    assert roles == ["bastion", "control-plane", "node", "node"]
    assert len(owned["load_balancers"]) == 1


def infra(moto_server, workdir, spec, **options):
    return start_playbook(moto_server, workdir, "create_cluster", spec=spec, tags=["infra"], **options)


@pytest.mark.parametrize("offset", [0, 0.3, 1, 3])
def test_two_creates_started_together_make_one_cluster(account, moto_server, tmp_path, offset):
    spec = example_spec(account.prepare())
    first = infra(moto_server, tmp_path, spec)
    time.sleep(offset)
    second = infra(moto_server, tmp_path, spec)
    runs = [first.wait(), second.wait()]

    succeeded = [run for run in runs if run.rc == 0]
    failed = [run for run in runs if run.rc != 0]
    assert succeeded, "\n".join(run.explain() for run in runs)
    for loser in failed:
        message = loser.explain()
        assert "cluster capi-example in ap-northeast-2 is being changed by" in message, message
        assert "create_cluster.yml" in message and socket.gethostname() in message
        assert "-e kubecluster_break_lease=true" in message
        # It failed at the lease, before any write of its own.
        refused = loser.result("Reconcile the network")
        assert refused["lease"]["outcome"] == "held" and "plan" not in refused, refused
    if len(succeeded) == 2:  # the second started after the first had finished: a no-op
        assert min(run.changed for run in succeeded) == 0
    assert_exactly_the_spec(account)
    assert lease_value(account) is None, "the winner did not release its lease"


def test_a_lease_of_another_controller_blocks_until_it_expires(account, moto_server, tmp_path):
    spec = example_spec(account.prepare())
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    left = {"token": "0f8c6c3e-2b7a-4f53-9a57-5f0e2f2f9d71", "holder": "AWX job 17", "host": "awx-job-17",
            "pid": 4242, "since": (now - datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires": (now + datetime.timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    account.ssm.put_parameter(Name=LEASE, Type="String", Value=json.dumps(left))

    blocked = infra(moto_server, tmp_path, spec).wait()

    assert blocked.rc != 0
    assert ("cluster capi-example in ap-northeast-2 is being changed by AWX job 17 since %s (lease until %s)"
            % (left["since"], left["expires"])) in blocked.explain()
    assert account.owned(NAME)["vpcs"] == []

    expired = dict(left, expires=(now - datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    account.ssm.put_parameter(Name=LEASE, Type="String", Value=json.dumps(expired), Overwrite=True)

    done = infra(moto_server, tmp_path, spec).wait()

    assert done.rc == 0, done.explain()
    taken = done.result("Reconcile the network")["lease"]
    assert taken["outcome"] == "taken_over" and taken["previous_holder"].startswith("AWX job 17 since")
    assert taken["released"] is True and taken["token"] is None  # --tags infra: given back by the same module
    assert_exactly_the_spec(account)
    assert lease_value(account) is None


def kill_tree(pid):
    """SIGKILL ansible-playbook and every process under it: its workers start their own sessions (os.setsid), so
    a kill of its process group alone would leave the module that holds the lease running to its end."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_run_on_this_controller_does_not_block_the_next(account, moto_server, tmp_path):
    spec = example_spec(account.prepare())
    killed = infra(moto_server, tmp_path, spec)
    deadline = time.monotonic() + 120
    while lease_value(account) is None and killed.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    held = lease_value(account)
    assert held is not None, killed.wait().explain()
    kill_tree(killed.pid)
    killed.wait()
    assert lease_value(account)["token"] == held["token"], "a killed run cannot release its lease"

    done = infra(moto_server, tmp_path, spec).wait()

    assert done.rc == 0, done.explain()
    assert done.result("Reconcile the network")["lease"]["outcome"] == "taken_over"
    assert_exactly_the_spec(account)
    assert lease_value(account) is None
