"""delete_cluster.yml's dry runs, end to end against a moto server: without confirm_delete it lists what a
delete would remove, by name and id, and succeeds; under --check --diff it shows the same plan and writes nothing."""

import pytest

from helpers.aws import CLUSTER as NAME
from helpers.e2e import example_spec

pytestmark = pytest.mark.e2e

LIST_TASK = "Show what deleting the cluster removes"


def counts(account):
    return dict((kind, len(items)) for kind, items in account.owned(NAME).items())


def test_unconfirmed_and_check_mode_deletes_list_the_plan_and_delete_nothing(account, run_playbook, moto_server):
    image_id = account.prepare()
    spec = example_spec(image_id, network={"nat_gateways": "single"})
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    before = counts(account)
    owned = account.owned(NAME)
    vpc_id = owned["vpcs"][0]["VpcId"]
    instance_ids = [i["InstanceId"] for i in owned["instances"]]

    for label, options in (("unconfirmed", {}),
                           ("check mode", dict(check=True, diff=True, extra_vars={"confirm_delete": True})),
                           ("unconfirmed check mode", dict(check=True, diff=True))):
        moto_server.start_recording()
        preview = run_playbook("delete_cluster", spec, **options)
        moto_server.stop_recording()
        assert preview.rc == 0, "%s: %s" % (label, preview.explain())
        writes = moto_server.recorded_writes()
        assert writes == [], "%s wrote %s" % (label, writes)
        assert counts(account) == before, label
        assert preview.changed == 0, (label, preview.stats)
        listed = preview.result(LIST_TASK)["msg"]
        assert isinstance(listed, list), listed
        text = "\n".join(listed)
        assert "delete vpc %s-vpc (%s)" % (NAME, vpc_id) in listed, listed
        assert "nothing was deleted" in text, text
        assert "%s-vpc (%s)" % (NAME, vpc_id) in text, text
        for instance_id in instance_ids:
            assert instance_id in text, (label, text)
        if options.get("diff"):
            shown = preview.result("Find what deleting the cluster removes")["diff"]
            assert "- vpc %s-vpc (%s)" % (NAME, vpc_id) in shown["prepared"], shown
        assert "confirm_delete=true" in text, text
        assert ("Check mode:" in text) is bool(options.get("check")), text

    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
    assert [k for k, n in counts(account).items() if n] == []
