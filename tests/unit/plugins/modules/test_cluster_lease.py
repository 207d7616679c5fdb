"""kubecluster.aws.cluster_lease against moto's SSM in process."""

import json

from helpers.aws import CLUSTER, KUBERNETES_VERSION, REGION
from helpers.aws import LEASE as NAME
from helpers.module_runner import run_module

SPEC = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION}


def lease(check_mode=False, diff=False, **options):
    return run_module("cluster_lease", dict({"cluster": SPEC}, **options), check_mode=check_mode, diff=diff)


def take(**options):
    result, failed = lease(**options)
    assert not failed, result.get("msg")
    return result


def stored(ssm):
    return json.loads(ssm.get_parameter(Name=NAME)["Parameter"]["Value"])


def test_take_renew_release(ssm):
    taken = take(holder="AWX job 17")

    assert taken["changed"] is True and taken["outcome"] == "acquired" and taken["lease"] == NAME
    assert taken["holder"] == "AWX job 17" and taken["since"] and taken["expires"] > taken["since"]
    assert stored(ssm)["token"] == taken["token"]

    renewed = take(holder="AWX job 17", token=taken["token"])
    assert renewed["outcome"] == "renewed" and renewed["token"] == taken["token"] and renewed["since"] == taken["since"]

    released = take(state="absent", token=taken["token"])
    assert released["changed"] is True and released["outcome"] == "released" and released["token"] is None
    assert ssm.describe_parameters()["Parameters"] == []

    again = take(state="absent", token=taken["token"])
    assert again["changed"] is False and again["outcome"] == "gone"


def test_a_second_run_fails_naming_the_holder(ssm):
    first = take(holder="root@ctl01 create_cluster.yml pid 4242")

    result, failed = lease(holder="AWX job 18")

    assert failed and result["outcome"] == "held"
    assert result["msg"].startswith("cluster capi-example in ap-northeast-2 is being changed by root@ctl01 create_cluster.yml "
                                    "pid 4242 since %s (lease until %s)" % (first["since"], first["expires"]))
    assert "-e kubecluster_break_lease=true" in result["msg"]
    assert stored(ssm)["token"] == first["token"]


def test_force_breaks_it_with_a_warning(ssm):
    first = take(holder="AWX job 17")

    broken = take(holder="alice", force=True)

    assert broken["outcome"] == "taken_over" and broken["token"] != first["token"]
    assert broken["previous_holder"] == "AWX job 17 since %s" % first["since"]
    assert any("AWX job 17" in w for w in broken["warnings"])


def test_releasing_a_lease_taken_over_warns_and_leaves_it(ssm):
    first = take(holder="AWX job 17")
    take(holder="alice", force=True)

    released = take(state="absent", token=first["token"])

    assert released["changed"] is False and released["outcome"] == "not_ours"
    assert any("held by alice" in w for w in released["warnings"])
    assert stored(ssm)["holder"] == "alice"


def test_check_mode_writes_nothing(ssm, aws_calls):
    preview = take(check_mode=True, diff=True, holder="AWX job 17")

    assert preview["outcome"] == "would_acquire" and preview["changed"] is True and preview["token"] is None
    assert preview["diff"]["after"] == {"holder": "AWX job 17"}
    assert ssm.describe_parameters()["Parameters"] == []

    first = take(holder="AWX job 17")
    del aws_calls[:]
    held = take(check_mode=True, holder="AWX job 18")
    assert held["outcome"] == "held" and held["changed"] is False and held["holder"] == "AWX job 17"
    assert any("being changed by AWX job 17" in w for w in held["warnings"])
    assert take(check_mode=True, token=first["token"], holder="AWX job 17")["outcome"] == "would_renew"
    assert take(check_mode=True, state="absent", token=first["token"])["outcome"] == "would_release"
    assert aws_calls.writes() == []
    assert stored(ssm)["token"] == first["token"]


def test_a_spec_that_no_longer_validates_can_still_be_locked(ssm):
    spec = dict(SPEC, control_plane={"replicas": 2}, unknown_key=True)

    result, failed = run_module("cluster_lease", {"cluster": spec, "holder": "delete"})

    assert not failed, result.get("msg")
    assert result["outcome"] == "acquired"


def test_bad_options_fail_before_any_aws_call(ssm, aws_calls, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # no region but the spec's
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    result, failed = lease(ttl=5)
    assert failed and "ttl: must be from 60" in result["msg"]
    result, failed = lease(state="absent")
    assert failed and "token:" in result["msg"]
    result, failed = run_module("cluster_lease", {"cluster": {"name": "capi-example"}})
    assert failed and "cluster.region: required" in result["msg"]
    assert list(aws_calls) == []


def test_validate_spec_refuses_a_bad_spec_before_any_aws_call(ssm, aws_calls):
    bad = dict(SPEC, control_plane={"replicas": 2})
    aws_calls.clear()

    result, failed = run_module("cluster_lease", {"cluster": bad, "validate_spec": True})

    assert failed and "cluster.control_plane.replicas: 2 is even" in result["msg"]
    assert aws_calls == []
    # without it, only the name and the region count (a delete can release the lease of such a spec)
    assert take(cluster=bad)["outcome"] == "acquired"
