"""Deleting a cluster: what cluster_delete_info finds before the first delete, and the delete
modules refusing what is not the cluster's alone, against moto in process."""

import boto3
import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import naming

from helpers.aws import AMI, CCM, CLUSTER, KUBERNETES_VERSION, OWNER, REGION
from helpers.module_runner import run_module

SPEC = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION, "network": {"nat_gateways": "single"}}
IDENTITY = {"name": CLUSTER, "region": REGION}


@pytest.fixture
def net(ec2):
    """The cluster's network, made by cluster_network; the test adds what it needs around it."""
    result, failed = run_module("cluster_network", {"cluster": SPEC})
    assert not failed, result.get("msg")
    return result["network"]


def subnet(net, role):
    return next(s["id"] for s in net["subnets"] if s["role"] == role)


def tag_list(tags):
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def launch(ec2, subnet_id, tags, groups=None):
    kwargs = {"SecurityGroupIds": groups} if groups else {}
    return ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet_id, TagSpecifications=[
        {"ResourceType": "instance", "Tags": tag_list(tags)}], **kwargs)["Instances"][0]["InstanceId"]


def machine(ec2, net, set_name, name, **extra_tags):
    tags = {OWNER: "owned", CCM: "owned", "Name": name, naming.MACHINE_SET_TAG: set_name}
    tags.update(extra_tags)
    return launch(ec2, subnet(net, "private"), tags)


def delete_info(cluster=None, diff=False):
    result, failed = run_module("cluster_delete_info", {"cluster": cluster or IDENTITY}, diff=diff)
    assert not failed, result.get("msg")
    return result


def owned_ids(ec2):
    owned = [{"Name": "tag:" + OWNER, "Values": ["owned"]}]
    return {
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs(Filters=owned)["Vpcs"]],
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=owned)["Subnets"]],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups(Filters=owned)["SecurityGroups"]],
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=owned)["Reservations"] for i in r["Instances"]
                      if i["State"]["Name"] != "terminated"],
    }


def test_a_cluster_with_nothing_in_the_region_is_said_so_and_nothing_is_written(ec2, aws_calls):
    result = delete_info({"name": "ghost", "region": REGION})
    assert result["found"] is False and result["plan"] == [] and result["blockers"] == [] and result["machine_sets"] == []
    assert result["warnings"] == ["cluster ghost has nothing in region ap-northeast-2: nothing to delete"]
    assert aws_calls.writes() == []


def test_the_whole_delete_is_planned_in_order_without_writing(ec2, net, aws_calls):
    worker = machine(ec2, net, "md-0", CLUSTER + "-md-0-aaaaa")
    machine(ec2, net, "control-plane", CLUSTER + "-control-plane-bbbbb")
    del aws_calls[:]
    result = delete_info(diff=True)
    assert aws_calls.writes() == []
    assert result["found"] is True and result["blockers"] == []
    assert result["machine_sets"] == ["md-0", "control-plane"]
    kinds = []
    for action in result["plan"]:
        if not kinds or kinds[-1] != action["resource"]:
            kinds.append(action["resource"])
    assert kinds[:3] == ["ec2 instances", "nat-gateway", "security-group"]
    assert kinds[-2:] == ["subnet", "vpc"]
    assert worker in result["plan"][0]["detail"]
    assert "- vpc capi-example-vpc" in result["diff"]["prepared"]


def test_another_owners_instance_in_a_private_subnet_stops_the_delete_before_anything_goes(ec2, net, aws_calls):
    machine(ec2, net, "md-0", CLUSTER + "-md-0-aaaaa")
    stranger = launch(ec2, subnet(net, "private"), {"Name": "reports"})
    before = owned_ids(ec2)
    del aws_calls[:]
    (blocker,) = delete_info()["blockers"]
    assert blocker.startswith("instance %s (reports) in %s, not tagged as the cluster's;" % (stranger, subnet(net, "private")))
    assert "terminate it or move it out of the cluster's network" in blocker

    # The network module alone refuses the same way, also in check mode, before any write.
    for check in (True, False):
        result, failed = run_module("cluster_network", {"cluster": IDENTITY, "state": "absent"}, check_mode=check)
        assert failed and stranger in result["msg"] and "nothing was deleted" in result["msg"]
    assert aws_calls.writes() == []
    assert owned_ids(ec2) == before


def test_another_owners_security_group_naming_the_clusters_stops_the_delete(ec2, net):
    node_group = net["security_groups"]["node"]
    foreign = ec2.create_security_group(GroupName="monitoring", Description="scrapes kubelets", VpcId=net["vpc_id"])["GroupId"]
    ec2.authorize_security_group_egress(GroupId=foreign, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 10250, "ToPort": 10250, "UserIdGroupPairs": [{"GroupId": node_group}]}])
    (blocker,) = delete_info()["blockers"]
    assert blocker.startswith("security group %s (monitoring), not the cluster's, has rules naming the cluster's group(s) %s"
                              % (foreign, node_group))


def test_a_resource_tagged_as_two_clusters_is_touched_by_no_delete(ec2, net):
    private = subnet(net, "private")
    ec2.create_tags(Resources=[private], Tags=[{"Key": naming.owner_tag("staging"), "Value": "owned"}])
    worker = machine(ec2, net, "md-0", CLUSTER + "-md-0-aaaaa", **{naming.cloud_provider_tag("staging"): "owned"})
    before = owned_ids(ec2)

    blockers = delete_info()["blockers"]
    assert any(line.startswith("instance %s (%s-md-0-aaaaa) is tagged as owned by cluster capi-example and by staging"
                               % (worker, CLUSTER)) for line in blockers), blockers
    assert any(line.startswith("subnet %s is tagged as owned by cluster capi-example and by staging" % private)
               for line in blockers), blockers

    result, failed = run_module("machine_set", {"cluster": IDENTITY, "set": "md-0", "state": "absent"})
    assert failed and "nothing was terminated" in result["msg"] and worker in result["msg"]
    ec2.terminate_instances(InstanceIds=[worker])
    result, failed = run_module("cluster_network", {"cluster": IDENTITY, "state": "absent"})
    assert failed and "subnet %s is tagged as owned by cluster capi-example and by staging" % private in result["msg"]
    before["instances"].remove(worker)
    assert owned_ids(ec2) == before

    # staging never existed; its delete must not take what capi-example owns either.
    staging = delete_info({"name": "staging", "region": REGION})
    assert staging["blockers"] and not [a for a in staging["plan"] if a["action"] == "delete" and a["resource"] == "vpc"]


def test_a_load_balancer_tagged_as_two_clusters_is_not_deleted(ec2, net):
    elbv2 = boto3.client("elbv2", region_name=REGION)
    public = [s["id"] for s in net["subnets"] if s["role"] == "public"]
    elbv2.create_load_balancer(Name="a1b2c3-service", Subnets=public, Type="network", Tags=[
        {"Key": CCM, "Value": "owned"}, {"Key": naming.cloud_provider_tag("other"), "Value": "owned"}])
    result, failed = run_module("apiserver_lb", {"cluster": IDENTITY, "state": "absent"})
    assert failed and "load balancer a1b2c3-service is tagged as owned by cluster capi-example and by other" in result["msg"]
    assert [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]] == ["a1b2c3-service"]


def test_an_instance_of_the_cluster_in_no_machine_set_is_named(ec2, net):
    stray = launch(ec2, subnet(net, "private"), {OWNER: "owned", "Name": "made-by-hand"})
    (blocker,) = delete_info()["blockers"]
    assert blocker == ("instance %s (made-by-hand) is tagged as the cluster's but belongs to no machine set; terminate it, "
                       "then rerun" % stray)


def test_a_spec_that_no_longer_validates_is_deleted_and_a_detached_interface_of_the_cluster_goes_too(ec2, net, aws_calls):
    invalid = dict(SPEC, control_plane={"replicas": 2}, option_from_a_newer_version=True)
    result, failed = run_module("cluster_network", {"cluster": invalid})
    assert failed and "cluster.control_plane.replicas" in result["msg"]
    leftover = ec2.create_network_interface(SubnetId=subnet(net, "private"), TagSpecifications=[
        {"ResourceType": "network-interface", "Tags": tag_list({OWNER: "owned"})}])["NetworkInterface"]["NetworkInterfaceId"]

    result, failed = run_module("cluster_network", {"cluster": invalid, "state": "absent"})
    assert not failed, result.get("msg")
    assert {"action": "delete", "resource": "network-interface", "name": leftover, "detail": "left detached"} in result["plan"]
    assert owned_ids(ec2) == {"vpcs": [], "subnets": [], "groups": [], "instances": []}
    assert ec2.describe_addresses()["Addresses"] == []


def test_bring_your_own_vpc_needs_only_name_and_region_and_keeps_the_vpc(ec2, aws_calls):
    vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock="198.18.%d.0/24" % i, AvailabilityZone=REGION + zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    spec = dict(SPEC, network={"vpc_id": vpc, "subnet_ids": subnets})
    result, failed = run_module("cluster_network", {"cluster": spec})
    assert not failed, result.get("msg")
    # Someone else's instance in the VPC is none of the cluster's business: its network stays.
    launch(ec2, subnets[0], {"Name": "theirs"})

    result = delete_info()
    assert result["blockers"] == [] and set(a["resource"] for a in result["plan"]) == {"security-group"}
    result, failed = run_module("cluster_network", {"cluster": IDENTITY, "state": "absent"})
    assert not failed, result.get("msg")
    assert set(a["resource"] for a in result["plan"]) == {"security-group"}
    assert owned_ids(ec2)["groups"] == []
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]] == [vpc]
    assert len(ec2.describe_subnets(SubnetIds=subnets)["Subnets"]) == 2


def test_an_instance_of_another_owner_using_the_clusters_group_in_its_own_vpc_stops_the_delete(ec2):
    vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock="198.18.%d.0/24" % i, AvailabilityZone=REGION + zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    net, failed = run_module("cluster_network", {"cluster": dict(SPEC, network={"vpc_id": vpc, "subnet_ids": subnets})})
    assert not failed, net.get("msg")
    theirs = launch(ec2, subnets[0], {"Name": "theirs"}, groups=[net["network"]["security_groups"]["node"]])
    (blocker,) = delete_info()["blockers"]
    assert blocker.startswith("instance %s (theirs)" % theirs)
