"""The cluster lease (issue 12: two runs on one cluster at once) against moto's SSM in process.

A settable clock expires leases without sleeping; host, pid and pid liveness are injected."""

import datetime
import json

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import lease as lease_module
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import ssm as aws_ssm

from helpers.aws import CLUSTER, REGION
from helpers.aws import LEASE as NAME

START = datetime.datetime(2025, 1, 31, 8, 0, 0, tzinfo=datetime.timezone.utc)


class Clock(object):
    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


def runner(ssm, clock, host="ctl01", pid=4242, alive=True, namespace="pid:[1]"):
    return lease_module.Lease(ssm, CLUSTER, REGION, clock=clock, sleep=lambda seconds: None, host=host, pid=pid,
                              namespace=namespace, alive=lambda pid: alive)


def stored(ssm, name=NAME):
    return json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])


def parameter_names(ssm):
    return sorted(p["Name"] for p in ssm.describe_parameters()["Parameters"])


def test_acquire_creates_the_parameter_with_who_and_until_when(ssm, clock):
    got = runner(ssm, clock).acquire(None, "root@ctl01 create_cluster.yml pid 4242", ttl=1800)

    assert got["action"] == "acquired" and got["previous"] is None
    value = stored(ssm)
    assert value["token"] == got["token"] and len(value["token"]) == 36
    assert value["holder"] == "root@ctl01 create_cluster.yml pid 4242"
    assert (value["since"], value["expires"]) == ("2025-01-31T08:00:00Z", "2025-01-31T08:30:00Z")
    assert (value["host"], value["pid"]) == ("ctl01", 4242)
    tags = naming.tags_to_dict(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)["TagList"])
    assert tags[naming.owner_tag(CLUSTER)] == "owned" and tags["Name"] == "capi-example-lease"


def test_a_second_run_is_refused_naming_the_holder_and_since_when(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(60)

    with pytest.raises(lease_module.LeaseHeld) as caught:
        runner(ssm, clock, host="laptop").acquire(None, "alice@laptop create_cluster.yml", ttl=1800)

    assert str(caught.value) == (
        "cluster capi-example in ap-northeast-2 is being changed by AWX job 17 since 2025-01-31T08:00:00Z (lease until "
        "2025-01-31T08:30:00Z); wait for that run to finish, or if it is no longer running rerun after "
        "2025-01-31T08:30:00Z or with -e kubecluster_break_lease=true")
    assert stored(ssm)["token"] == first["token"]


def test_the_holder_renews_keeping_since(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(600)

    renewed = runner(ssm, clock).acquire(first["token"], "AWX job 17", ttl=1800)

    assert renewed["action"] == "renewed" and renewed["token"] == first["token"]
    assert (stored(ssm)["since"], stored(ssm)["expires"]) == ("2025-01-31T08:00:00Z", "2025-01-31T08:40:00Z")


def test_an_expired_lease_of_a_killed_run_is_taken_over(ssm, clock):
    first = runner(ssm, clock, host="ctl01").acquire(None, "AWX job 17", ttl=1800)
    clock.advance(1799)
    with pytest.raises(lease_module.LeaseHeld, match="being changed by AWX job 17 since 2025-01-31T08:00:00Z"):
        runner(ssm, clock, host="ctl02").acquire(None, "AWX job 18", ttl=1800)
    clock.advance(1)

    second = runner(ssm, clock, host="ctl02").acquire(None, "AWX job 18", ttl=1800)

    assert second["action"] == "taken_over" and second["token"] != first["token"]
    assert second["previous"]["holder"] == "AWX job 17"
    assert stored(ssm)["token"] == second["token"] and stored(ssm)["since"] == "2025-01-31T08:30:00Z"
    assert parameter_names(ssm) == [NAME], "the takeover marker is left behind"


def test_force_breaks_a_live_lease(ssm, clock):
    runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)

    broken = runner(ssm, clock, host="ctl02").acquire(None, "alice", ttl=1800, force=True)

    assert broken["action"] == "taken_over" and broken["previous"]["holder"] == "AWX job 17"
    assert stored(ssm)["holder"] == "alice"


def test_a_lease_of_a_dead_process_on_this_host_is_dead_at_once(ssm, clock):
    runner(ssm, clock, pid=111).acquire(None, "root@ctl01 create_cluster.yml pid 111", ttl=1800)

    with pytest.raises(lease_module.LeaseHeld):
        runner(ssm, clock, pid=222, alive=True).acquire(None, "next", ttl=1800)
    with pytest.raises(lease_module.LeaseHeld):  # another host: its pids mean nothing here
        runner(ssm, clock, host="ctl02", pid=222, alive=False).acquire(None, "next", ttl=1800)
    with pytest.raises(lease_module.LeaseHeld):  # another container on this host: another pid namespace
        runner(ssm, clock, pid=222, alive=False, namespace="pid:[2]").acquire(None, "next", ttl=1800)

    taken = runner(ssm, clock, pid=222, alive=False).acquire(None, "next", ttl=1800)

    assert taken["action"] == "taken_over" and stored(ssm)["holder"] == "next"


def test_an_expired_own_lease_is_renewed_through_the_marker(ssm, clock, aws_calls):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(1790)  # within RENEW_MARGIN
    del aws_calls[:]

    renewed = runner(ssm, clock).acquire(first["token"], "AWX job 17", ttl=1800)

    assert renewed["action"] == "renewed" and stored(ssm)["token"] == first["token"]
    assert stored(ssm)["since"] == "2025-01-31T08:00:00Z"
    puts = [c for c in aws_calls if c[1] == "PutParameter"]
    assert len(puts) == 3  # the lease (refused), the marker, the lease again
    assert parameter_names(ssm) == [NAME]


def test_a_takeover_in_progress_blocks_a_second_taker(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(3600)
    ssm.put_parameter(Name=lease_module.marker_name(CLUSTER, first["token"]), Type="String",
                      Value=json.dumps({"token": "t-b", "holder": "AWX job 19", "since": "2025-01-31T09:00:00Z"}))

    with pytest.raises(lease_module.LeaseHeld) as caught:
        runner(ssm, clock, host="ctl03").acquire(None, "AWX job 20", ttl=1800)

    assert "is being taken over by AWX job 19" in str(caught.value) and "AWX job 17" in str(caught.value)
    assert stored(ssm)["token"] == first["token"]


def test_a_stale_marker_of_a_taker_that_died_is_cleared(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(3600)
    ssm.put_parameter(Name=lease_module.marker_name(CLUSTER, first["token"]), Type="String",
                      Value=json.dumps({"token": "t-b", "holder": "AWX job 19", "since": "2025-01-31T08:50:00Z"}))

    taken = runner(ssm, clock, host="ctl03").acquire(None, "AWX job 20", ttl=1800)

    assert taken["action"] == "taken_over" and stored(ssm)["holder"] == "AWX job 20"
    assert parameter_names(ssm) == [NAME]


def test_a_run_that_slips_in_during_a_takeover_wins_cleanly(ssm, clock, monkeypatch):
    runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(3600)
    real_delete = aws_ssm.delete_parameter

    def delete_then_a_third_run_acquires(client, name):
        done = real_delete(client, name)
        if name == NAME:
            monkeypatch.setattr(aws_ssm, "delete_parameter", real_delete)
            runner(ssm, clock, host="ctl09").acquire(None, "AWX job 30", ttl=1800)
        return done

    monkeypatch.setattr(aws_ssm, "delete_parameter", delete_then_a_third_run_acquires)

    with pytest.raises(lease_module.LeaseHeld, match="being changed by AWX job 30"):
        runner(ssm, clock, host="ctl03").acquire(None, "AWX job 20", ttl=1800)
    assert stored(ssm)["holder"] == "AWX job 30"
    assert parameter_names(ssm) == [NAME]


def test_release_deletes_only_our_lease_and_a_gone_lease_is_fine(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)

    assert runner(ssm, clock).release("someone-else")["action"] == "not_ours"
    assert stored(ssm)["token"] == first["token"]
    assert runner(ssm, clock).release(first["token"])["action"] == "released"
    assert parameter_names(ssm) == []
    assert runner(ssm, clock).release(first["token"])["action"] == "gone"


def test_release_near_expiry_goes_through_the_marker(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(1800)

    assert runner(ssm, clock).release(first["token"])["action"] == "released"
    assert parameter_names(ssm) == []


def test_release_of_a_lease_taken_over_leaves_it(ssm, clock):
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    clock.advance(3600)
    runner(ssm, clock, host="ctl02").acquire(None, "AWX job 18", ttl=1800)

    released = runner(ssm, clock).release(first["token"])

    assert released["action"] == "not_ours" and released["holder"] == "AWX job 18"
    assert stored(ssm)["holder"] == "AWX job 18"


def test_preview_reads_only(ssm, clock, aws_calls):
    assert runner(ssm, clock).preview(None)["action"] == "would_acquire"
    first = runner(ssm, clock).acquire(None, "AWX job 17", ttl=1800)
    del aws_calls[:]

    assert runner(ssm, clock).preview(first["token"])["action"] == "would_renew"
    assert runner(ssm, clock).preview(None)["action"] == "held"
    assert runner(ssm, clock).preview(None, force=True)["action"] == "would_take_over"
    clock.advance(3600)
    assert runner(ssm, clock).preview(None)["action"] == "would_take_over"
    assert aws_calls.writes() == []


def test_a_value_that_is_not_a_lease_counts_as_expired(ssm, clock):
    ssm.put_parameter(Name=NAME, Type="String", Value="not json")

    assert runner(ssm, clock).acquire(None, "AWX job 18", ttl=1800)["action"] == "taken_over"


def test_controller_pid_is_an_ancestor_or_the_parent():
    pid = lease_module.controller_pid()

    assert isinstance(pid, int) and pid > 0 and lease_module.pid_alive(pid)
    assert lease_module.pid_alive(2 ** 22 + 12345) is False
