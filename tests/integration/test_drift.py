"""Drift, end to end with ansible-playbook against a moto server: additional_tags changed after create reach
every owned resource (volumes and network interfaces too) and a rerun changes nothing; what cannot change in
place is refused with nothing written; a disabled bastion's security group goes."""

import pytest

from helpers.aws import CLUSTER as NAME
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e

MANAGED_TAGS = "kubecluster.aws/managed-tags"


def everything(account):
    owned = account.owned(NAME)
    resources = [r for kind, items in owned.items() if kind != "load_balancers" for r in items]
    volume_ids = [m["Ebs"]["VolumeId"] for i in owned["instances"] for m in i.get("BlockDeviceMappings", [])]
    interface_ids = [n["NetworkInterfaceId"] for i in owned["instances"] for n in i.get("NetworkInterfaces", [])]
    resources += account.ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]
    resources += account.ec2.describe_network_interfaces(NetworkInterfaceIds=interface_ids)["NetworkInterfaces"]
    return resources


def test_changed_tags_reach_everything_and_what_cannot_change_is_refused(account, run_playbook, moto_server):
    image_id = account.prepare()
    spec = example_spec(image_id, additional_tags={"team": "infra", "cost-center": "a"})
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    vpc_id = account.owned(NAME)["vpcs"][0]["VpcId"]
    account.ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "owner", "Value": "by-hand"}])

    spec["cluster"]["additional_tags"] = {"team": "platform"}
    changed = run_playbook("create_cluster", spec, tags=["infra"])
    assert changed.rc == 0, changed.explain()
    resources = everything(account)
    assert len(resources) > 30
    for resource in resources:
        have = tags(resource)
        assert (have.get("team"), have.get(MANAGED_TAGS), "cost-center" in have) == ("platform", "team", False), resource
    assert tags(next(r for r in resources if r.get("VpcId") == vpc_id and "CidrBlockAssociationSet" in r))["owner"] == "by-hand"
    again = run_playbook("create_cluster", spec, tags=["infra"])
    assert again.rc == 0 and not again.changed, again.explain()

    # What cannot change in place: refused naming the field, nothing written.
    for changes, field in (({"network": {"vpc_cidr": "10.1.0.0/16"}}, "cluster.network.vpc_cidr"),
                           ({"network": {"nat_gateways": "none"}}, "cluster.network.nat_gateways"),
                           ({"network": {"availability_zones": 2}}, "cluster.network.availability_zones"),
                           ({"network": {"api_load_balancer": {"scheme": "internal"}}}, "cluster.network.api_load_balancer.scheme")):
        bad = example_spec(image_id, additional_tags={"team": "changed"}, **changes)
        moto_server.start_recording()
        refused = run_playbook("create_cluster", bad, tags=["infra"])
        moto_server.stop_recording()
        assert refused.rc != 0
        assert field + ":" in refused.explain() and "delete" in refused.explain(), refused.explain()
        # The run lease (an SSM parameter) is taken and given back; nothing else is written.
        assert [w for w in moto_server.recorded_writes() if w["service"] != "ssm"] == [], field

    # The bastion disabled: its machine and its security group go.
    spec["cluster"]["network"]["bastion"]["enabled"] = False
    disabled = run_playbook("create_cluster", spec, tags=["infra"])
    assert disabled.rc == 0, disabled.explain()
    groups = [tags(g)["Name"] for g in account.owned(NAME)["security_groups"]]
    assert NAME + "-bastion" not in groups and NAME + "-node" in groups
    again = run_playbook("create_cluster", spec, tags=["infra"])
    assert again.rc == 0 and not again.changed, again.explain()
