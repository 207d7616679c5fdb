"""bench/stock: the comparison baseline of bench/api_calls.py --compare-stock (the example cluster's AWS part composed
of the stock amazon.aws / community.aws modules) builds the topology, reruns without a change and deletes it all."""

import os

import pytest

from helpers.aws import CLUSTER as NAME
from helpers.e2e import REPO, example_spec, tags
from helpers.modules import load_file

pytestmark = pytest.mark.e2e

STOCK = os.path.join(REPO, "bench", "stock")


def test_stock_composition_creates_reruns_without_change_and_deletes(account, run_playbook, moto_server):
    stock_vars = load_file("stock_vars", os.path.join(STOCK, "stock_vars.py")).stock_vars
    spec = example_spec(account.prepare())
    given = stock_vars(spec)  # 2 workers, as the example

    created = run_playbook(os.path.join(STOCK, "create.yml"), extra_vars=given)
    assert created.rc == 0, created.explain()
    owned = account.owned(NAME)
    assert {kind: len(items) for kind, items in owned.items()} == {
        "vpcs": 1, "subnets": 6, "internet_gateways": 1, "nat_gateways": 3, "addresses": 3, "route_tables": 6, "security_groups": 5,
        "instances": 4, "load_balancers": 1}
    machines = [i for i in owned["instances"] if tags(i)["sigs.k8s.io/cluster-api-provider-aws/role"] != "bastion"]
    assert all(i["MetadataOptions"]["HttpTokens"] == "required" and "PublicIpAddress" not in i for i in machines)
    volumes = account.ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [i["InstanceId"] for i in owned["instances"]]}])
    assert [v["Encrypted"] for v in volumes["Volumes"]] == [True] * 4
    balancer = owned["load_balancers"][0]
    listeners = account.elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [(listener["Protocol"], listener["Port"]) for listener in listeners] == [("TCP", 6443)]

    moto_server.start_recording()
    rerun = run_playbook(os.path.join(STOCK, "create.yml"), extra_vars=given)
    moto_server.stop_recording()
    assert rerun.rc == 0, rerun.explain()
    assert rerun.changed == 0
    assert moto_server.recorded_writes() == []

    deleted = run_playbook(os.path.join(STOCK, "delete.yml"), extra_vars=given)
    assert deleted.rc == 0, deleted.explain()
    assert {kind: items for kind, items in account.owned(NAME).items() if items} == {}
    assert account.ec2.describe_addresses()["Addresses"] == []
