"""tests/helpers/moto_timing: AWS's intermediate states and refusals in moto, on a clock the tests move."""

import functools

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers import moto_timing
from helpers.aws import REGION
from helpers.moto_server import MotoServer

from moto.ec2.models import instances as ec2_instances
from moto.ec2.models.nat_gateways import NatGateway
from moto.ec2.models.route_tables import RouteBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.elbv2.models import FakeLoadBalancer

IMAGE = "ami-12c6146b"  # one of moto's stock images


class Clock:
    """A clock that moves only when told: no test sleeps."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def timed(moto_aws, clock):
    """moto in process with the timing mode at factor 1 on ``clock``, undone after the test."""
    with moto_timing.applied(1.0, clock=clock):
        yield clock


@pytest.fixture
def elbv2(moto_aws):
    return boto3.client("elbv2", region_name=REGION)


@pytest.fixture
def network(ec2):
    """A VPC with an internet gateway, two subnets and a security group."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.%d.0/24" % index, AvailabilityZone=REGION + zone)["Subnet"]["SubnetId"]
               for index, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "igw": igw, "subnets": subnets, "group": group}


def create_nat_gateway(ec2, subnet):
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]
    return nat, allocation


def nat_state(ec2, nat_id):
    return ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]["State"]


def launch(ec2, network, **kwargs):
    kwargs.setdefault("SubnetId", network["subnets"][0])
    kwargs.setdefault("SecurityGroupIds", [network["group"]])
    kwargs = dict((key, value) for key, value in kwargs.items() if value is not None)
    return ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, **kwargs)["Instances"][0]


def instance_state(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]


def create_load_balancer(elbv2, network):
    return elbv2.create_load_balancer(Name="api", Subnets=network["subnets"], Type="network", Scheme="internet-facing")["LoadBalancers"][0]


def advancing_on(client, operation, clock, seconds):
    """Move ``clock`` by ``seconds`` after each ``operation`` call of ``client`` (a waiter's polls): the clock readings
    the calls saw."""
    calls = []

    def advance(**_):
        calls.append(clock())
        clock.advance(seconds)

    client.meta.events.register("after-call.*.%s" % operation, advance)
    return calls


def refused(call, code):
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] == code
    return error.value.response["Error"]["Message"]


# --- transitions ---

def test_nat_gateway_is_pending_then_available_and_deleting_then_deleted(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])

    assert nat["State"] == "pending"
    timed.advance(89)
    assert nat_state(ec2, nat["NatGatewayId"]) == "pending"
    assert ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["available"]}])["NatGateways"] == []
    timed.advance(1)
    assert nat_state(ec2, nat["NatGatewayId"]) == "available"

    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    assert nat_state(ec2, nat["NatGatewayId"]) == "deleting"
    timed.advance(59)
    assert nat_state(ec2, nat["NatGatewayId"]) == "deleting"
    timed.advance(1)
    assert nat_state(ec2, nat["NatGatewayId"]) == "deleted"


def test_nat_gateway_deleted_while_pending_is_deleting_then_deleted(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])

    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])

    assert nat_state(ec2, nat["NatGatewayId"]) == "deleting"
    timed.advance(60)
    assert nat_state(ec2, nat["NatGatewayId"]) == "deleted"


def test_instance_is_pending_then_running_and_shutting_down_then_terminated(timed, ec2, network):
    instance = launch(ec2, network)
    instance_id = instance["InstanceId"]

    assert instance["State"] == {"Code": 0, "Name": "pending"}  # moto's RunInstances answer says so already
    assert instance_state(ec2, instance_id) == {"Code": 0, "Name": "pending"}  # DescribeInstances now too
    pending = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending"]}])["Reservations"]
    assert [item["InstanceId"] for reservation in pending for item in reservation["Instances"]] == [instance_id]
    timed.advance(39)
    assert instance_state(ec2, instance_id)["Name"] == "pending"
    timed.advance(1)
    assert instance_state(ec2, instance_id) == {"Code": 16, "Name": "running"}

    terminating = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert terminating["PreviousState"]["Name"] == "running"
    assert terminating["CurrentState"] == {"Code": 32, "Name": "shutting-down"}
    timed.advance(44)
    assert instance_state(ec2, instance_id)["Name"] == "shutting-down"
    timed.advance(1)
    assert instance_state(ec2, instance_id) == {"Code": 48, "Name": "terminated"}


def test_a_pending_instance_terminated_shuts_down_first(timed, ec2, network):
    instance_id = launch(ec2, network)["InstanceId"]

    terminating = ec2.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]

    assert (terminating["PreviousState"]["Name"], terminating["CurrentState"]["Name"]) == ("pending", "shutting-down")
    timed.advance(45)
    assert instance_state(ec2, instance_id)["Name"] == "terminated"


def test_load_balancer_is_provisioning_then_active(timed, elbv2, network):
    balancer = create_load_balancer(elbv2, network)

    assert balancer["State"]["Code"] == "provisioning"
    timed.advance(149)
    assert elbv2.describe_load_balancers()["LoadBalancers"][0]["State"]["Code"] == "provisioning"
    assert elbv2.describe_load_balancers(LoadBalancerArns=[balancer["LoadBalancerArn"]])["LoadBalancers"][0]["State"]["Code"] == "provisioning"
    timed.advance(1)
    assert elbv2.describe_load_balancers(Names=["api"])["LoadBalancers"][0]["State"]["Code"] == "active"


def test_register_targets_refuses_an_instance_still_pending_as_aws_does(timed, ec2, elbv2, network):
    instance_id = launch(ec2, network)["InstanceId"]
    group = elbv2.create_target_group(Name="api", Protocol="TCP", Port=6443, VpcId=network["vpc"], TargetType="instance")["TargetGroups"][0]

    register = functools.partial(elbv2.register_targets, TargetGroupArn=group["TargetGroupArn"], Targets=[{"Id": instance_id}])
    with pytest.raises(ClientError):
        register()
    timed.advance(40)
    register()


def test_durations_and_factor_scale_every_transition(moto_aws, ec2, network, clock):
    with moto_timing.applied(0.5, durations={"instance_running": 10}, clock=clock):
        instance_id = launch(ec2, network)["InstanceId"]
        nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])
        clock.advance(5)
        assert instance_state(ec2, instance_id)["Name"] == "running"
        clock.advance(39)
        assert nat_state(ec2, nat["NatGatewayId"]) == "pending"
        clock.advance(1)
        assert nat_state(ec2, nat["NatGatewayId"]) == "available"


def test_unknown_durations_are_refused():
    with pytest.raises(ValueError, match="nat_gateway_ready"):
        moto_timing.apply(1.0, durations={"nat_gateway_ready": 1})
    assert moto_timing._active is None  # pylint: disable=protected-access


def test_every_default_duration_names_its_source():
    source = open(moto_timing.__file__, encoding="utf-8").read()
    table = source.split("DEFAULT_DURATIONS = {", 1)[1].split("\n}", 1)[0]
    for name in moto_timing.DEFAULT_DURATIONS:
        comment = table.split('"%s"' % name, 1)[0].rsplit(",\n", 1)[-1]
        assert "Estimate" in comment or "docs.aws" in comment, name


# --- boto3 waiters, as the product uses them ---

def test_nat_gateway_available_waiter_waits_for_the_transition(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])
    polls = advancing_on(ec2, "DescribeNatGateways", timed, 30)

    ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig={"Delay": 0, "MaxAttempts": 10})

    assert len(polls) == 4  # pending at 0, 30, 60 s; available at 90 s


def test_nat_gateway_deleted_waiter_waits_for_the_transition(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])
    timed.advance(90)
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    polls = advancing_on(ec2, "DescribeNatGateways", timed, 30)

    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig={"Delay": 0, "MaxAttempts": 10})

    assert len(polls) == 3


def test_instance_running_and_terminated_waiters_wait_for_the_transitions(timed, ec2, network):
    instance_id = launch(ec2, network)["InstanceId"]
    polls = advancing_on(ec2, "DescribeInstances", timed, 10)

    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0, "MaxAttempts": 10})
    assert len(polls) == 5  # pending at 0-30 s, running at 40 s

    ec2.terminate_instances(InstanceIds=[instance_id])
    del polls[:]
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0, "MaxAttempts": 10})
    assert len(polls) == 6  # shutting-down at 0-40 s (after the launch wait's last tick), terminated at 50 s


def test_load_balancer_available_waiter_waits_for_the_transition(timed, elbv2, network):
    balancer = create_load_balancer(elbv2, network)
    polls = advancing_on(elbv2, "DescribeLoadBalancers", timed, 50)

    elbv2.get_waiter("load_balancer_available").wait(LoadBalancerArns=[balancer["LoadBalancerArn"]], WaiterConfig={"Delay": 0, "MaxAttempts": 10})

    assert len(polls) == 4  # provisioning at 0, 50, 100 s; active at 150 s


def test_a_waiter_gives_up_while_the_transition_lasts(timed, ec2, network):
    instance_id = launch(ec2, network)["InstanceId"]

    with pytest.raises(Exception, match="Max attempts exceeded"):
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0, "MaxAttempts": 3})


# --- refusals ---

def test_release_address_is_refused_until_its_nat_gateway_is_deleted(timed, ec2, network):
    nat, allocation = create_nat_gateway(ec2, network["subnets"][0])
    public_ip = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]["PublicIp"]
    timed.advance(90)

    refused(lambda: ec2.release_address(AllocationId=allocation), "InvalidIPAddress.InUse")  # available
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    message = refused(lambda: ec2.release_address(AllocationId=allocation), "InvalidIPAddress.InUse")  # deleting
    assert nat["NatGatewayId"] in message
    refused(lambda: ec2.release_address(PublicIp=public_ip), "InvalidIPAddress.InUse")
    timed.advance(60)
    ec2.release_address(AllocationId=allocation)

    assert ec2.describe_addresses()["Addresses"] == []


def test_release_address_of_no_nat_gateway_is_not_refused(timed, ec2):
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]

    ec2.release_address(AllocationId=allocation)


def test_delete_security_group_is_refused_until_its_instances_are_terminated(timed, ec2, network):
    instance_id = launch(ec2, network)["InstanceId"]
    group = network["group"]

    message = refused(lambda: ec2.delete_security_group(GroupId=group), "DependencyViolation")  # pending
    assert message == "resource %s has a dependent object" % group
    timed.advance(40)
    refused(lambda: ec2.delete_security_group(GroupId=group), "DependencyViolation")  # running
    ec2.terminate_instances(InstanceIds=[instance_id])
    refused(lambda: ec2.delete_security_group(GroupId=group), "DependencyViolation")  # shutting-down
    timed.advance(45)
    ec2.delete_security_group(GroupId=group)


def test_delete_security_group_of_no_instance_is_not_refused(timed, ec2, network):
    launch(ec2, network, SecurityGroupIds=[])
    other = ec2.create_security_group(GroupName="other", Description="other", VpcId=network["vpc"])["GroupId"]

    ec2.delete_security_group(GroupId=other)


def test_delete_subnet_is_refused_while_an_instance_shuts_down_in_it(timed, ec2, network):
    subnet = network["subnets"][0]
    instance_id = launch(ec2, network, SubnetId=subnet)["InstanceId"]

    refused(lambda: ec2.delete_subnet(SubnetId=subnet), "DependencyViolation")
    ec2.terminate_instances(InstanceIds=[instance_id])
    message = refused(lambda: ec2.delete_subnet(SubnetId=subnet), "DependencyViolation")
    assert subnet in message
    timed.advance(45)
    ec2.delete_subnet(SubnetId=subnet)


def test_delete_subnet_is_refused_while_its_nat_gateway_is_deleting(timed, ec2, network):
    subnet = network["subnets"][1]
    nat, _allocation = create_nat_gateway(ec2, subnet)
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])

    refused(lambda: ec2.delete_subnet(SubnetId=subnet), "DependencyViolation")
    timed.advance(60)
    ec2.delete_subnet(SubnetId=subnet)


def test_detach_internet_gateway_is_refused_while_a_public_instance_shuts_down(timed, ec2, network):
    instance_id = launch(ec2, network, SubnetId=None,
                         NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": network["subnets"][0], "AssociatePublicIpAddress": True,
                                             "Groups": [network["group"]]}])["InstanceId"]
    detach = functools.partial(ec2.detach_internet_gateway, InternetGatewayId=network["igw"], VpcId=network["vpc"])
    ec2.terminate_instances(InstanceIds=[instance_id])

    message = refused(detach, "DependencyViolation")
    assert message.startswith("Network %s has some mapped public address(es)" % network["vpc"])
    timed.advance(45)
    detach()


def test_detach_internet_gateway_is_refused_until_the_nat_gateway_is_deleted(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][1])
    detach = functools.partial(ec2.detach_internet_gateway, InternetGatewayId=network["igw"], VpcId=network["vpc"])
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])

    refused(detach, "DependencyViolation")
    timed.advance(60)
    detach()


def test_detach_internet_gateway_with_only_private_instances_is_not_refused(timed, ec2, network):
    launch(ec2, network)

    ec2.detach_internet_gateway(InternetGatewayId=network["igw"], VpcId=network["vpc"])


def test_delete_vpc_is_refused_while_its_subnets_cannot_go(timed, ec2, network):
    instance_id = launch(ec2, network)["InstanceId"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.delete_subnet(SubnetId=network["subnets"][1])

    refused(lambda: ec2.delete_subnet(SubnetId=network["subnets"][0]), "DependencyViolation")
    refused(lambda: ec2.delete_vpc(VpcId=network["vpc"]), "DependencyViolation")  # moto's own refusal: a subnet is left
    timed.advance(45)
    ec2.delete_subnet(SubnetId=network["subnets"][0])
    ec2.delete_security_group(GroupId=network["group"])
    ec2.detach_internet_gateway(InternetGatewayId=network["igw"], VpcId=network["vpc"])
    ec2.delete_vpc(VpcId=network["vpc"])


def test_create_route_to_a_nat_gateway_just_created_is_not_found_for_a_second(timed, ec2, network):
    nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])
    table = ec2.create_route_table(VpcId=network["vpc"])["RouteTable"]["RouteTableId"]
    route = functools.partial(ec2.create_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat["NatGatewayId"])

    refused(route, "InvalidNatGatewayID.NotFound")
    timed.advance(1)
    route()  # pending: AWS accepts a route to a NAT gateway that is not available yet

    assert nat_state(ec2, nat["NatGatewayId"]) == "pending"


# --- off: factor 0, and after remove() ---

MOTO_ATTRIBUTES = [(NatGateway, "state"), (FakeLoadBalancer, "state"), (ec2_instances, "InstanceState"),
                   (ec2_instances.Instance, "terminate"), (SecurityGroupBackend, "delete_security_group"), (RouteBackend, "create_route")]


def _attributes():
    return [(owner, name, owner.__dict__.get(name, None)) for owner, name in MOTO_ATTRIBUTES]


@pytest.mark.parametrize("factor", [0, 0.0, None])
def test_factor_zero_changes_nothing(moto_aws, ec2, elbv2, network, clock, factor):
    before = _attributes()
    with moto_timing.applied(factor, clock=clock):
        assert _attributes() == before
        nat, allocation = create_nat_gateway(ec2, network["subnets"][0])
        instance = launch(ec2, network)
        balancer = create_load_balancer(elbv2, network)
        assert (nat["State"], instance_state(ec2, instance["InstanceId"])["Name"]) == ("available", "running")
        assert elbv2.describe_load_balancers(LoadBalancerArns=[balancer["LoadBalancerArn"]])["LoadBalancers"][0]["State"]["Code"] == "active"
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
        assert instance_state(ec2, instance["InstanceId"])["Name"] == "terminated"
        ec2.release_address(AllocationId=allocation)  # moto's own leniency stays


def test_remove_restores_moto_and_what_was_made_shows_moto_states(moto_aws, ec2, network, clock):
    before = _attributes()
    moto_timing.apply(1.0, clock=clock)
    try:
        assert _attributes() != before
        nat, _allocation = create_nat_gateway(ec2, network["subnets"][0])
        instance_id = launch(ec2, network)["InstanceId"]
        assert nat_state(ec2, nat["NatGatewayId"]) == "pending"
    finally:
        moto_timing.remove()

    assert _attributes() == before
    assert nat_state(ec2, nat["NatGatewayId"]) == "available"
    assert instance_state(ec2, instance_id)["Name"] == "running"
    assert create_nat_gateway(ec2, network["subnets"][1])[0]["State"] == "available"
    ec2.delete_security_group(GroupId=network["group"])  # moto's own leniency is back


def test_factor_from_env():
    assert moto_timing.factor_from_env({}) == 0.0
    assert moto_timing.factor_from_env({"KUBECLUSTER_MOTO_TIMING": ""}) == 0.0
    assert moto_timing.factor_from_env({"KUBECLUSTER_MOTO_TIMING": "0.05"}) == 0.05
    with pytest.raises(ValueError, match="KUBECLUSTER_MOTO_TIMING"):
        moto_timing.factor_from_env({"KUBECLUSTER_MOTO_TIMING": "fast"})


# --- the moto server: MotoServer(timing=...) applies it in its process ---

def test_moto_server_with_timing_shows_a_new_nat_gateway_pending_then_available():
    with MotoServer(timing=0.01) as server:  # NAT gateway available after 0.9 s
        ec2 = server.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        nat, _allocation = create_nat_gateway(ec2, subnet)

        assert nat_state(ec2, nat["NatGatewayId"]) == "pending"
        ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig={"Delay": 1, "MaxAttempts": 10})
