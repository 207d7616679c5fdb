"""snapshot: a run's reads answered from its earlier, broader reads; writes make it read again what they change."""

import boto3

from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import snapshot
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context

from helpers.aws import AMI, REGION

CLUSTER = "snap"


def owned(**tags):
    return [{"Key": key, "Value": value} for key, value in dict({naming.owner_tag(CLUSTER): "owned"}, **tags).items()]


def vpc_with_subnets(ec2):
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": owned(Name="snap-vpc")}])["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.%d.0/24" % index, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": owned(**{naming.ROLE_TAG: role})}])["Subnet"]["SubnetId"] for index, role in enumerate(["public", "private"])]
    ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.9.0/24")  # not the cluster's
    return vpc_id, subnets


def ctx():
    return Context(lambda service: boto3.client(service, region_name=REGION), REGION, snapshot=True)


def test_narrower_reads_are_answered_from_the_broad_one(ec2, aws_calls):
    vpc_id, (public, private) = vpc_with_subnets(ec2)
    context = ctx()
    aws_calls.clear()

    every = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    in_vpc = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER) + [{"Name": "vpc-id", "Values": [vpc_id]}])
    publics = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER, **{naming.ROLE_TAG: "public"}))
    by_id = aws_ec2.describe_subnets(context.ec2, SubnetIds=[private], Filters=naming.owned_filters(CLUSTER))

    assert sorted(s["SubnetId"] for s in every) == sorted([public, private]) == sorted(s["SubnetId"] for s in in_vpc)
    assert [s["SubnetId"] for s in publics] == [public]
    assert [s["SubnetId"] for s in by_id] == [private]
    assert aws_calls.operations() == ["DescribeSubnets"]


def test_a_broader_read_or_an_unknown_filter_reaches_aws(ec2, aws_calls):
    vpc_id, _subnets = vpc_with_subnets(ec2)
    context = ctx()
    aws_calls.clear()

    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER, **{naming.ROLE_TAG: "public"}))
    every = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER) + [{"Name": "cidr-block", "Values": ["10.0.0.0/24"]}])
    in_vpc = aws_ec2.describe_subnets(context.ec2, Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])

    assert len(every) == 2 and len(in_vpc) == 3
    assert aws_calls.operations() == ["DescribeSubnets"] * 4


def test_a_write_makes_what_it_changes_read_again_and_no_more(ec2, aws_calls):
    vpc_id, _subnets = vpc_with_subnets(ec2)
    context = ctx()
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_calls.clear()

    aws_ec2.create_subnet(context.ec2, VpcId=vpc_id, CidrBlock="10.0.5.0/24", TagSpecifications=[
        {"ResourceType": "subnet", "Tags": owned(**{naming.ROLE_TAG: "private"})}])
    after = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))

    assert len(after) == 3
    assert aws_calls.operations() == ["CreateSubnet", "DescribeSubnets"]


def test_a_tag_write_forgets_only_the_reads_of_the_ids_it_tags(ec2, aws_calls):
    vpc_id, subnets = vpc_with_subnets(ec2)
    options_id = ec2.create_dhcp_options(DhcpConfigurations=[{"Key": "domain-name", "Values": ["example.com"]}])["DhcpOptions"]["DhcpOptionsId"]
    context = ctx()
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_calls.clear()

    context.ec2.create_tags(Resources=[subnets[0]], Tags=[{"Key": "Name", "Value": "renamed"}])
    named = aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))
    context.ec2.create_tags(Resources=[vpc_id, options_id], Tags=[{"Key": "Name", "Value": "x"}])
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))

    assert "renamed" in [naming.tags_to_dict(s.get("Tags")).get("Name") for s in named]
    # A DHCP options set's id is of no type read here: that write forgets every answer.
    assert aws_calls.operations() == ["CreateTags", "DescribeSubnets", "CreateTags", "DescribeSubnets"]


def test_forgetting_some_operations_reads_only_those_again(ec2, aws_calls):
    vpc_with_subnets(ec2)
    context = ctx()
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_calls.clear()

    context.forget_reads(["describe_vpcs"])
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))
    aws_ec2.describe_vpcs(context.ec2, Filters=naming.owned_filters(CLUSTER))
    context.forget_reads()
    aws_ec2.describe_subnets(context.ec2, Filters=naming.owned_filters(CLUSTER))

    assert aws_calls.operations() == ["DescribeVpcs", "DescribeSubnets"]


def test_instances_are_narrowed_within_their_reservations(ec2, aws_calls):
    ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2, TagSpecifications=[
        {"ResourceType": "instance", "Tags": owned(**{naming.MACHINE_SET_TAG: "md-0"})}])
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": owned(**{naming.MACHINE_SET_TAG: "control-plane"})}])
    context = ctx()
    aws_calls.clear()

    aws_ec2.describe_instances(context.ec2, Filters=naming.owned_filters(CLUSTER))
    workers = aws_ec2.describe_instances(context.ec2, Filters=naming.owned_filters(CLUSTER, **{naming.MACHINE_SET_TAG: "md-0"})
                                         + [{"Name": "instance-state-name", "Values": ["pending", "running"]}])

    assert [len(r["Instances"]) for r in workers] == [2]
    assert aws_calls.operations() == ["DescribeInstances"]


def test_waiters_always_read_aws(ec2, aws_calls):
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    context = ctx()
    aws_ec2.describe_instances(context.ec2, InstanceIds=[instance_id])
    aws_calls.clear()

    aws_ec2.wait_for_instances(context.ec2, "instance_running", [instance_id], 30, 1)

    assert aws_calls.operations() == ["DescribeInstances"]


def test_no_snapshot_without_asking(ec2):
    plain = Context(lambda service: boto3.client(service, region_name=REGION), REGION)
    assert not isinstance(plain.ec2, snapshot.SnapshotClient) and isinstance(ctx().ec2, snapshot.SnapshotClient)


def test_a_filter_of_fewer_values_narrows_one_of_more(ec2, aws_calls):
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": owned()}])
    stopped = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": owned()}])
    ec2.stop_instances(InstanceIds=[stopped["Instances"][0]["InstanceId"]])
    context = ctx()
    aws_calls.clear()

    every = aws_ec2.describe_instances(context.ec2, Filters=naming.owned_filters(CLUSTER) + [
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    running = aws_ec2.describe_instances(context.ec2, Filters=naming.owned_filters(CLUSTER) + [
        {"Name": "instance-state-name", "Values": ["running"]}])
    aws_ec2.describe_instances(context.ec2, Filters=naming.owned_filters(CLUSTER) + [
        {"Name": "instance-state-name", "Values": ["running", "terminated"]}])

    assert sum(len(r["Instances"]) for r in every) == 2 and sum(len(r["Instances"]) for r in running) == 1
    assert aws_calls.operations() == ["DescribeInstances", "DescribeInstances"]
