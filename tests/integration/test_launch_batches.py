"""Machine sets launched in batches, one RunInstances per zone (issue 9), through create_cluster.yml and
delete_cluster.yml against a moto server."""

import pytest

from helpers.aws import CLUSTER as NAME, ROLE
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e

SLOT = "kubecluster.aws/slot"
BATCH = "kubecluster.aws/launch-batch"


def test_five_workers_over_three_zones_are_three_launches_named_right_after(account, run_playbook, moto_server):
    spec = example_spec(account.prepare(), machine_deployments=[{"name": "md-0", "replicas": 5, "instance_type": "t3.large"}])

    moto_server.start_recording()
    created = run_playbook("create_cluster", spec, tags=["infra"])
    moto_server.stop_recording()
    assert created.rc == 0, created.explain()

    writes = [w["action"] for w in moto_server.recorded_writes()]
    # Bastion and control plane: one machine each; md-0: zones a and b two machines each, zone c one.
    assert writes.count("RunInstances") == 5, writes
    # The four machines launched two at a time get their Name and slot right after; nothing else is tagged
    # after creation (every other resource carries its tags from its create call).
    assert writes.count("CreateTags") == 4, writes
    workers = [m for m in account.owned(NAME)["instances"] if tags(m)[ROLE] == "node"]
    assert sorted(tags(m)[SLOT] for m in workers) == ["0", "1", "2", "3", "4"]
    assert len(set(tags(m)["Name"] for m in workers)) == 5 and all(tags(m)["Name"].startswith(NAME + "-md-0-") for m in workers)
    zones = sorted({m["Placement"]["AvailabilityZone"] for m in workers})
    per_zone = {zone: sorted(int(tags(m)[SLOT]) for m in workers if m["Placement"]["AvailabilityZone"] == zone) for zone in zones}
    assert list(per_zone.values()) == [[0, 3], [1, 4], [2]]
    assert sorted(tags(m).get(BATCH) for m in workers if tags(m).get(BATCH)) == ["0,3/0", "0,3/0", "1,4/0", "1,4/0"]

    moto_server.start_recording()
    again = run_playbook("create_cluster", spec, tags=["infra"])
    moto_server.stop_recording()
    assert again.rc == 0 and again.changed == 0, again.explain()
    assert [w for w in moto_server.recorded_writes() if w["service"] != "ssm"] == []

    done = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert done.rc == 0, done.explain()
    assert account.owned(NAME)["instances"] == []
