"""drift.py's pure decisions: which tags a resource gets and loses, and the refusal of what cannot change in place."""

from unittest import mock

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import drift
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan

RECORD = naming.MANAGED_TAGS_TAG


@pytest.mark.parametrize("have, spec, add, remove", [
    # In line: nothing.
    ({"team": "a", RECORD: "team"}, {"team": "a"}, {}, []),
    ({}, {}, {}, []),
    # Changed value and a new key: set, record updated.
    ({"team": "a", RECORD: "team"}, {"team": "b", "cost": "1"}, {"team": "b", "cost": "1", RECORD: "cost,team"}, []),
    # A key the spec dropped goes, only when the record lists it.
    ({"team": "a", "cost": "1", RECORD: "cost,team"}, {"team": "a"}, {RECORD: "team"}, ["cost"]),
    ({"team": "a", "cost": "1", RECORD: "team"}, {"team": "a"}, {}, []),
    # A resource made before the record: it gets one, nothing it had is removed.
    ({"team": "a", "cost": "1"}, {"team": "a"}, {RECORD: "team"}, []),
    # No additional tag left: the keys and the record go; never a reserved key, even if listed.
    ({"team": "a", "Name": "x", RECORD: "Name,team"}, {}, {}, [RECORD, "team"]),
    # A listed key already gone by hand: nothing to remove.
    ({RECORD: "cost,team", "team": "a"}, {"team": "a"}, {RECORD: "team"}, []),
])
def test_tag_changes_add_and_update_and_remove_only_what_the_collection_set(have, spec, add, remove):
    assert drift.tag_changes(have, spec) == (add, remove)


def test_created_resources_carry_the_record_only_with_additional_tags():
    assert naming.resource_tags("c", "n", None, {"b": "1", "a": "2"})[RECORD] == "a,b"
    assert RECORD not in naming.resource_tags("c", "n", None, {})


def test_one_create_per_set_of_tags_and_one_delete_per_set_of_keys_with_the_followers(monkeypatch):
    calls = []
    monkeypatch.setattr(aws_ec2, "create_tags", lambda _ec2, ids, tags: calls.append(("create", ids, tags)))
    monkeypatch.setattr(aws_ec2, "delete_tags", lambda _ec2, ids, keys: calls.append(("delete", ids, keys)))
    tags = drift.TagDrift({"additional_tags": {"team": "b"}})
    tags.check("subnet", "s1", "subnet-1", {"team": "a", "old": "x", RECORD: "old,team"})
    tags.check("subnet", "s2", "subnet-2", {"team": "a", "old": "x", RECORD: "old,team"})
    tags.check("ec2 instance", "m1", "i-1", {"team": "a", RECORD: "team"}, follow=["vol-1", "eni-1", None])
    assert not tags.check("vpc", "v", "vpc-1", {"team": "b", RECORD: "team"})
    plan = Plan()

    tags.plan(mock.Mock(ec2=None), plan)
    plan.apply()

    assert [(a["resource"], a["name"], a["detail"]) for a in plan.as_list()] == [
        ("subnet tags", "s1, s2", "set %s=team, team=b" % RECORD),
        ("ec2 instance tags", "m1", "set team=b (with 2 volume(s), interface(s) or address(es) tagged with them)"),
        ("subnet tags", "s1, s2", "remove old")]
    assert calls == [("create", ["subnet-1", "subnet-2"], {RECORD: "team", "team": "b"}),
                     ("create", ["i-1", "vol-1", "eni-1"], {"team": "b"}),
                     ("delete", ["subnet-1", "subnet-2"], ["old"])]
