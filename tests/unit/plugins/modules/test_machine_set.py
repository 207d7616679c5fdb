"""kubecluster.aws.machine_set against moto in process.

The cluster's network (VPC, subnets, security groups) and IAM instance profiles are made
here directly with boto3, as cluster_network and iam_stack would make them; the module
finds them only through their tags.
"""

import copy
import datetime
from unittest import mock

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from helpers import moto_fixes
from helpers.aws import AMI, CLUSTER, KUBERNETES_VERSION, REGION, ZONES, context
from helpers.aws import KEY_NAME as KEY
from helpers.module_runner import run_module

from ansible_collections.kubecluster.aws.plugins.module_utils import instances
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import UNKNOWN

BASE_SPEC = {
    "name": CLUSTER,
    "region": REGION,
    "kubernetes_version": KUBERNETES_VERSION,
    "ssh_key_name": KEY,
    "additional_tags": {"team": "platform"},
    "network": {"availability_zones": ZONES, "bastion": {"enabled": True, "ami_id": AMI}},
    "control_plane": {"replicas": 1, "ami_id": AMI},
    "machine_deployments": [
        {"name": "md-0", "replicas": 2, "ami_id": AMI},
        {"name": "md-1", "replicas": 1, "ami_id": AMI},
    ],
}


def cluster_spec(**changes):
    """BASE_SPEC with dotted-path changes, e.g. ``{"machine_deployments.0.replicas": 3}``."""
    spec = copy.deepcopy(BASE_SPEC)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return spec


def md0(replicas=2, instance_type="t3.large"):
    return cluster_spec(**{"machine_deployments.0.replicas": replicas, "machine_deployments.0.instance_type": instance_type})


class Calls(object):
    """The AWS operations a test made (conftest's aws_calls), by name."""

    def __init__(self, aws_calls):
        self.aws_calls = aws_calls

    def clear(self):
        self.aws_calls.clear()

    def names(self):
        return self.aws_calls.operations()

    def writes(self):
        return self.aws_calls.written()


@pytest.fixture
def calls(aws_calls):
    return Calls(aws_calls)


@pytest.fixture
def run_requests():
    """The parameters of every RunInstances the service sends (through amazon.aws' retrying wrapper)."""
    sent = []
    real = instances.aws_ec2.run_instances

    def recording(client, **params):
        sent.append(copy.deepcopy(params))
        return real(client, **params)

    with mock.patch.object(instances.aws_ec2, "run_instances", recording):
        yield sent


def owned_tags(name, role):
    tags = naming.resource_tags(CLUSTER, name, role)
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def make_network(ec2, private=True):
    """What cluster_network makes: an owned VPC, public (and private) subnets per zone, CAPA's groups."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": owned_tags(naming.vpc_name(CLUSTER), naming.ROLE_COMMON)}])["Vpc"]["VpcId"]
    subnets = {}
    roles = (naming.ROLE_PUBLIC, naming.ROLE_PRIVATE) if private else (naming.ROLE_PUBLIC,)
    for index, zone in enumerate(ZONES):
        for offset, role in enumerate(roles):
            name = naming.subnet_name(CLUSTER, role, zone)
            subnets[(role, zone)] = ec2.create_subnet(
                VpcId=vpc, CidrBlock="10.0.%d.0/24" % (index * 10 + offset), AvailabilityZone=zone,
                TagSpecifications=[{"ResourceType": "subnet", "Tags": owned_tags(name, role)}])["Subnet"]["SubnetId"]
    groups = {}
    for role in (naming.SG_APISERVER_LB, naming.SG_LB, naming.SG_CONTROL_PLANE, naming.SG_NODE, naming.SG_BASTION):
        name = naming.security_group_name(CLUSTER, role)
        groups[role] = ec2.create_security_group(
            GroupName=name, Description=naming.security_group_description(CLUSTER, role), VpcId=vpc,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": owned_tags(name, role)}])["GroupId"]
    return {"vpc": vpc, "subnets": subnets, "groups": groups}


@pytest.fixture
def ec2(ec2, monkeypatch):
    """conftest's ec2, in an account with the instance profiles and the key pair the spec names."""
    moto_fixes.apply(monkeypatch)  # RunInstances honours ClientToken, as EC2 does
    iam = boto3.client("iam", region_name=REGION)
    for profile in (naming.CONTROL_PLANE_PROFILE, naming.NODES_PROFILE):
        iam.create_instance_profile(InstanceProfileName=profile)
    ec2.create_key_pair(KeyName=KEY)
    return ec2


@pytest.fixture
def network(ec2):
    return make_network(ec2)


def machine_set(spec, set_name, check_mode=False, diff=False, **options):
    return run_module("machine_set", dict(options, cluster=spec, set=set_name), check_mode=check_mode, diff=diff)


def apply(spec, set_name, **options):
    result, failed = machine_set(spec, set_name, **options)
    assert not failed, result.get("msg")
    return result


def instances_of(ec2, set_name=None, states=("pending", "running")):
    filters = [{"Name": "instance-state-name", "Values": list(states)}]
    if set_name:
        filters.append({"Name": "tag:" + naming.MACHINE_SET_TAG, "Values": [set_name]})
    found = []
    for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
        found.extend(reservation["Instances"])
    return found


def tags(instance):
    return naming.tags_to_dict(instance.get("Tags"))


def state_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def launched_earlier(instance_ids, hours):
    """moto stamps launches to the second; move some back so 'newest' is not a tie."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    for instance_id in instance_ids:
        moved = backend.get_instance(instance_id)
        moved.launch_time = moved.launch_time - datetime.timedelta(hours=hours)


def eni_groups(instance):
    return set(g["GroupId"] for g in instance["NetworkInterfaces"][0]["Groups"])


# --- create ----------------------------------------------------------------------------

def test_launches_workers_spread_over_zones_in_private_subnets(ec2, network, calls, run_requests):
    result = apply(md0(), "md-0", user_data="#cloud-config\n")

    assert result["changed"] is True
    made = instances_of(ec2, "md-0")
    assert len(made) == 2 and len(result["launched"]) == 2 and result["terminated"] == []
    zones = sorted(i["Placement"]["AvailabilityZone"] for i in made)
    assert zones == ZONES[:2]
    for instance in made:
        zone = instance["Placement"]["AvailabilityZone"]
        assert instance["SubnetId"] == network["subnets"][(naming.ROLE_PRIVATE, zone)]
        assert instance.get("PublicIpAddress") is None
        assert eni_groups(instance) == {network["groups"][naming.SG_NODE], network["groups"][naming.SG_LB]}
        assert instance["IamInstanceProfile"]["Arn"].endswith("/" + naming.NODES_PROFILE)
        assert instance["KeyName"] == KEY
        assert instance["InstanceType"] == "t3.large" and instance["ImageId"] == AMI
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
        assert instance["MetadataOptions"]["HttpEndpoint"] == "enabled"
        got = tags(instance)
        assert got["Name"].startswith("capi-example-md-0-") and len(got["Name"]) == len("capi-example-md-0-") + 5
        assert got[naming.owner_tag(CLUSTER)] == "owned"
        assert got[naming.cloud_provider_tag(CLUSTER)] == "owned"
        assert got[naming.ROLE_TAG] == naming.ROLE_NODE
        assert got[naming.MACHINE_SET_TAG] == "md-0"
        assert len(got[naming.SPEC_HASH_TAG]) == instances.HASH_LENGTH
        assert got["kubecluster.aws/kubernetes-version"] == KUBERNETES_VERSION
        assert got["team"] == "platform"
        root = instance["BlockDeviceMappings"][0]
        assert root["DeviceName"] == "/dev/sda1" and root["Ebs"]["DeleteOnTermination"] is True
        volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
        assert (volume["Encrypted"], volume["VolumeType"], volume["Size"]) == (True, "gp3", 80)
        assert naming.tags_to_dict(volume["Tags"])[naming.MACHINE_SET_TAG] == "md-0"

    runs = run_requests
    assert len(runs) == 2
    for params in runs:
        sent_tags = naming.tags_to_dict(params["TagSpecifications"][0]["Tags"])
        slot = int(sent_tags[naming.SLOT_TAG])
        assert sent_tags["Name"] == naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", slot, 0))
        zone = ZONES[slot]  # one machine per zone: batches of one, with all their tags at launch
        assert params["ClientToken"] == instances.client_token(CLUSTER, "md-0", zone, [slot], 0)
        assert (params["MinCount"], params["MaxCount"]) == (1, 1)
        assert naming.LAUNCH_BATCH_TAG not in sent_tags
        assert set(spec["ResourceType"] for spec in params["TagSpecifications"]) == {"instance", "volume", "network-interface"}
        assert params["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is False
        assert params["UserData"] == "#cloud-config\n"
    assert len(set(p["ClientToken"] for p in runs)) == 2
    assert sorted(naming.tags_to_dict(p["TagSpecifications"][0]["Tags"])[naming.SLOT_TAG] for p in runs) == ["0", "1"]
    assert calls.names().count("DescribeImages") == 1
    # One per zone, each a batch of one that carries its Name and slot at launch (no CreateTags); waited for once.
    assert calls.writes() == ["RunInstances", "RunInstances"]

    machines = result["machines"]
    assert [m["name"] for m in machines] == sorted(result["launched"])
    for machine in machines:
        assert machine["instance_id"].startswith("i-") and machine["state"] == "running"
        assert machine["set"] == "md-0" and machine["role"] == "node" and machine["outdated"] is False
        assert machine["private_ip"].startswith("10.0.") and machine["private_dns_name"]
        assert machine["image_id"] == AMI and machine["instance_type"] == "t3.large" and machine["launch_time"]
        assert machine["kubernetes_version"] == KUBERNETES_VERSION
    assert result["outdated"] == []


def test_control_plane_gets_control_plane_groups_and_profile(ec2, network):
    result = apply(cluster_spec(), "control-plane")

    (instance,) = instances_of(ec2, "control-plane")
    assert eni_groups(instance) == set(network["groups"][r] for r in (naming.SG_NODE, naming.SG_LB, naming.SG_CONTROL_PLANE))
    assert instance["IamInstanceProfile"]["Arn"].endswith("/" + naming.CONTROL_PLANE_PROFILE)
    assert tags(instance)[naming.ROLE_TAG] == naming.ROLE_CONTROL_PLANE
    assert instance["Placement"]["AvailabilityZone"] == ZONES[0]
    assert result["machines"][0]["role"] == "control-plane"


def test_bastion_goes_to_first_public_subnet_with_public_ip(ec2, network, run_requests):
    result = apply(cluster_spec(), "bastion")

    (instance,) = instances_of(ec2, "bastion")
    assert instance["SubnetId"] == network["subnets"][(naming.ROLE_PUBLIC, ZONES[0])]
    assert instance.get("PublicIpAddress")
    assert eni_groups(instance) == {network["groups"][naming.SG_BASTION]}
    assert "IamInstanceProfile" not in instance
    assert instance["InstanceType"] == "t3.micro"
    assert tags(instance)[naming.ROLE_TAG] == naming.ROLE_BASTION
    assert run_requests[0]["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    # The bastion runs no Kubernetes: no version tag, so a version change never concerns it.
    assert "kubecluster.aws/kubernetes-version" not in tags(instance)
    (machine,) = result["machines"]
    assert machine["public_ip"] == instance["PublicIpAddress"] and machine["role"] == "bastion"
    assert machine["kubernetes_version"] is None


def test_disabled_bastion_is_terminated(ec2, network):
    apply(cluster_spec(), "bastion")
    result = apply(cluster_spec(**{"network.bastion.enabled": False}), "bastion")

    assert len(result["terminated"]) == 1 and result["machines"] == []
    assert instances_of(ec2, "bastion") == []


def test_public_only_cluster_puts_machines_in_public_subnets_with_public_ip(ec2):
    network = make_network(ec2, private=False)
    result = apply(md0(1), "md-0")

    (instance,) = instances_of(ec2, "md-0")
    assert instance["SubnetId"] == network["subnets"][(naming.ROLE_PUBLIC, ZONES[0])]
    assert instance.get("PublicIpAddress") and result["machines"][0]["public_ip"]


# --- rerun, check mode, diff ------------------------------------------------------------

def test_rerun_changes_nothing_and_writes_nothing(ec2, network, calls):
    first = apply(md0(), "md-0", user_data="first")
    calls.clear()

    again = apply(md0(), "md-0", user_data="other user data is not part of the machine's definition")

    assert again["changed"] is False and again["plan"] == []
    assert calls.writes() == []
    assert calls.names().count("DescribeInstances") == 1
    # The spec hash comes from the spec alone: the AMI is only looked up to launch.
    assert "DescribeImages" not in calls.names() and "DescribeSubnets" not in calls.names()
    assert [m["instance_id"] for m in again["machines"]] == [m["instance_id"] for m in first["machines"]]
    assert again["launched"] == [] and again["terminated"] == [] and again["outdated"] == [] and again["surplus"] == []


def test_check_mode_plans_machines_and_creates_nothing(ec2, network, calls):
    result, failed = machine_set(md0(), "md-0", check_mode=True)

    assert not failed and result["changed"] is True
    assert instances_of(ec2) == []
    assert calls.writes() == []
    assert [a["action"] for a in result["plan"]] == ["create", "wait"]
    assert len(result["launched"]) == 2
    for machine in result["machines"]:
        assert machine["instance_id"] == UNKNOWN and machine["private_ip"] == UNKNOWN
        assert machine["public_ip"] is None and machine["image_id"] == AMI
        assert machine["kubernetes_version"] == KUBERNETES_VERSION
    assert sorted(m["availability_zone"] for m in result["machines"]) == ZONES[:2]
    assert set(m["subnet_id"] for m in result["machines"]) == set(
        network["subnets"][(naming.ROLE_PRIVATE, z)] for z in ZONES[:2])


def test_check_mode_plans_into_a_network_not_created_yet(ec2, calls):
    # A create playbook's check mode: cluster_network only planned the subnets and groups.
    result, failed = machine_set(cluster_spec(), "control-plane", check_mode=True)

    assert not failed, result.get("msg")
    (machine,) = result["machines"]
    assert machine["subnet_id"] == UNKNOWN and machine["availability_zone"] == ZONES[0]
    assert machine["public_ip"] is None
    assert calls.writes() == []


def test_diff_shows_the_rendered_plan(ec2, network):
    result, failed = machine_set(md0(), "md-0", check_mode=True, diff=True)

    assert not failed
    text = result["diff"]["prepared"]
    assert text.startswith("machine set md-0 of cluster capi-example")
    assert "+ ec2 instances capi-example-md-0-" in text and "2 x t3.large" in text
    assert ". ec2 instances running" in text


def test_diff_of_a_rerun_says_no_changes(ec2, network):
    apply(md0(), "md-0")
    result, failed = machine_set(md0(), "md-0", diff=True)

    assert not failed and "No changes" in result["diff"]["prepared"]


def test_no_wait_plans_no_wait(ec2, network):
    result = apply(md0(1), "md-0", wait=False)

    assert [a["action"] for a in result["plan"]] == ["create"]
    assert result["machines"][0]["instance_id"].startswith("i-")


# --- deterministic launches (issue 12: two runs at once made 6 workers where 4 were wanted) ---

def resolved(spec):
    from ansible_collections.kubecluster.aws.plugins.module_utils import spec as spec_module
    done = spec_module.resolve(spec)
    return spec_module.with_zones(done, done["network"]["availability_zones"])


def slot_tags(ec2, set_name):
    return sorted(tags(i)[naming.SLOT_TAG] for i in instances_of(ec2, set_name))


@pytest.mark.parametrize("replicas", [2, 5])
def test_a_racing_second_run_on_the_same_state_launches_nothing_new(ec2, network, calls, replicas):
    # Both runs read before either launched: they plan the same slots, names and tokens (5: batches of 2, 2 and 1).
    ctx = context(ec2, wait=False)
    first = instances.plan_present(ctx, resolved(md0(replicas)), "md-0")
    second = instances.plan_present(ctx, resolved(md0(replicas)), "md-0")
    assert first.returns["launched"]() == second.returns["launched"]()

    first.apply()
    second.apply()

    made = instances_of(ec2, "md-0")
    assert len(made) == replicas
    assert sorted(second.refs[name] for name in second.returns["launched"]()) == sorted(i["InstanceId"] for i in made)
    assert [first.refs[name] for name in first.returns["launched"]()] == [second.refs[name] for name in second.returns["launched"]()]
    assert slot_tags(ec2, "md-0") == [str(slot) for slot in range(replicas)]
    # Both named the machines of a batch alike.
    assert sorted(tags(i)["Name"] for i in made) == sorted(first.returns["launched"]())


def slot_name(slot, attempt=0):
    return naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", slot, attempt))


def test_five_workers_over_three_zones_launch_with_one_run_instances_per_zone(ec2, network, calls, run_requests):
    result = apply(md0(5), "md-0")

    # Slots 0..4 spread a, b, c, a, b: zone a gets slots 0 and 3, b 1 and 4, c 2. A batch of several machines
    # is named right after its launch (one CreateTags per machine); the batch of one carries its Name already.
    assert calls.writes() == ["RunInstances", "CreateTags", "CreateTags", "RunInstances", "CreateTags", "CreateTags", "RunInstances"]
    assert [(r["MinCount"], r["MaxCount"]) for r in run_requests] == [(2, 2), (2, 2), (1, 1)]
    assert [r["NetworkInterfaces"][0]["SubnetId"] for r in run_requests] == [network["subnets"][(naming.ROLE_PRIVATE, z)] for z in ZONES]
    assert [r["ClientToken"] for r in run_requests] == [instances.client_token(CLUSTER, "md-0", zone, slots, 0) for zone, slots in
                                                        ((ZONES[0], [0, 3]), (ZONES[1], [1, 4]), (ZONES[2], [2]))]
    batch_tags = [naming.tags_to_dict(r["TagSpecifications"][0]["Tags"]) for r in run_requests]
    assert [t.get(naming.LAUNCH_BATCH_TAG) for t in batch_tags] == ["0,3/0", "1,4/0", None]
    assert "Name" not in batch_tags[0] and naming.SLOT_TAG not in batch_tags[0]
    assert (batch_tags[2]["Name"], batch_tags[2][naming.SLOT_TAG]) == (slot_name(2), "2")

    made = instances_of(ec2, "md-0")
    by_slot = {int(tags(i)[naming.SLOT_TAG]): i for i in made}
    assert sorted(by_slot) == [0, 1, 2, 3, 4]
    for slot, instance in by_slot.items():
        assert tags(instance)["Name"] == slot_name(slot)
        assert instance["Placement"]["AvailabilityZone"] == ZONES[slot % 3]
    assert [by_slot[slot]["AmiLaunchIndex"] for slot in (0, 3, 1, 4)] == [0, 1, 0, 1]
    named = [(p["Resources"], naming.tags_to_dict(p["Tags"])) for p in calls.aws_calls.params_of("CreateTags")]
    assert named == [([by_slot[slot]["InstanceId"]], {"Name": slot_name(slot), naming.SLOT_TAG: str(slot)}) for slot in (0, 3, 1, 4)]
    # Only the instance is named: its volume keeps the batch's tags.
    volume_id = by_slot[3]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume_tags = naming.tags_to_dict(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Tags"])
    assert volume_tags[naming.LAUNCH_BATCH_TAG] == "0,3/0" and "Name" not in volume_tags

    assert result["launched"] == [slot_name(slot) for slot in range(5)]
    assert {m["name"]: m["instance_id"] for m in result["machines"]} == {slot_name(s): i["InstanceId"] for s, i in by_slot.items()}
    assert all(m["state"] == "running" for m in result["machines"])

    calls.clear()
    again = apply(md0(5), "md-0")
    assert again["changed"] is False and calls.writes() == []


def test_a_retried_batch_with_the_same_token_gets_the_same_instances(ec2, network, run_requests):
    apply(md0(5), "md-0")
    sent = run_requests[0]
    assert sent["MinCount"] == 2

    again = ec2.run_instances(**sent)["Instances"]

    zone_a = [i["InstanceId"] for i in instances_of(ec2, "md-0") if i["Placement"]["AvailabilityZone"] == ZONES[0]]
    assert sorted(i["InstanceId"] for i in again) == sorted(zone_a) and len(zone_a) == 2
    assert len(instances_of(ec2, "md-0")) == 5


def test_a_batch_token_spent_on_machines_since_gone_moves_the_batch_to_the_next_attempt(ec2, network, monkeypatch, run_requests):
    first = apply(md0(4), "md-0")  # zone a: slots 0 and 3 in one batch
    gone = [m["instance_id"] for m in first["machines"] if m["availability_zone"] == ZONES[0]]
    assert len(gone) == 2
    ec2.terminate_instances(InstanceIds=gone)
    launched_earlier(gone, 2)
    hide_terminated(monkeypatch)

    # EC2 answers the spent token with its first answer (state pending), as moto_fixes does.
    result = apply(md0(4), "md-0")

    assert result["launched"] == [slot_name(0, 1), slot_name(3, 1)]
    assert [r["ClientToken"] for r in run_requests[3:]] == [instances.client_token(CLUSTER, "md-0", ZONES[0], [0, 3], k) for k in (0, 1)]
    assert naming.tags_to_dict(run_requests[-1]["TagSpecifications"][0]["Tags"])[naming.LAUNCH_BATCH_TAG] == "0,3/1"
    new = [m for m in result["machines"] if m["name"] in result["launched"]]
    assert len(new) == 2 and not set(m["instance_id"] for m in new) & set(gone)
    assert sorted(tags(i)["Name"] for i in instances_of(ec2, "md-0")) == sorted(
        [slot_name(0, 1), slot_name(3, 1)] + [m["name"] for m in first["machines"] if m["instance_id"] not in gone])
    assert slot_tags(ec2, "md-0") == ["0", "1", "2", "3"]


def test_a_batch_token_spent_with_other_settings_moves_the_batch_to_the_next_attempt(ec2, network, monkeypatch, run_requests):
    first = apply(md0(4), "md-0")
    gone = [m["instance_id"] for m in first["machines"] if m["availability_zone"] == ZONES[0]]
    ec2.terminate_instances(InstanceIds=gone)
    hide_terminated(monkeypatch)

    result = apply(md0(4, instance_type="t3.xlarge"), "md-0")  # EC2: IdempotentParameterMismatch for attempt 0

    assert result["launched"] == [slot_name(0, 1), slot_name(3, 1)]
    assert [r["ClientToken"] for r in run_requests[3:]] == [instances.client_token(CLUSTER, "md-0", ZONES[0], [0, 3], k) for k in (0, 1)]
    assert sorted(m["instance_type"] for m in result["machines"] if m["name"] in result["launched"]) == ["t3.xlarge"] * 2
    assert len(instances_of(ec2, "md-0")) == 4


def test_a_run_stopped_before_naming_its_batch_is_completed_by_the_next_without_a_new_launch(ec2, network, calls):
    spec = cluster_spec(**{"machine_deployments.0.availability_zones": [ZONES[0]], "machine_deployments.0.replicas": 2})
    with mock.patch.object(instances.MachineSet, "name_batch", lambda *args: None):  # the run dies right after RunInstances
        instances.plan_present(context(ec2, wait=False), resolved(spec), "md-0").apply()
    launched = instances_of(ec2, "md-0")
    assert len(launched) == 2 and not any("Name" in tags(i) or naming.SLOT_TAG in tags(i) for i in launched)
    by_index = {i["AmiLaunchIndex"]: i["InstanceId"] for i in launched}
    calls.clear()

    planned, failed = machine_set(spec, "md-0", check_mode=True)
    assert not failed and calls.writes() == []
    assert [(a["action"], a["resource"]) for a in planned["plan"]] == [("update", "ec2 instance name")] * 2
    assert sorted(m["name"] for m in planned["machines"]) == [slot_name(0), slot_name(1)] and planned["launched"] == []

    result = apply(spec, "md-0")

    assert result["changed"] is True and result["launched"] == []
    assert calls.writes() == ["CreateTags", "CreateTags"]
    named = sorted((p["Resources"], naming.tags_to_dict(p["Tags"])) for p in calls.aws_calls.params_of("CreateTags"))
    assert named == sorted(([by_index[slot]], {"Name": slot_name(slot), naming.SLOT_TAG: str(slot)}) for slot in (0, 1))
    assert {tags(i)["Name"]: i["InstanceId"] for i in instances_of(ec2, "md-0")} == {slot_name(s): by_index[s] for s in (0, 1)}
    assert {m["name"]: m["instance_id"] for m in result["machines"]} == {slot_name(s): by_index[s] for s in (0, 1)}
    calls.clear()

    assert apply(spec, "md-0")["changed"] is False and calls.writes() == []


def test_a_retried_launch_with_the_same_token_gets_the_same_instance(ec2, network, run_requests):
    apply(md0(1), "md-0")
    (sent,) = run_requests

    again = ec2.run_instances(**sent)["Instances"][0]

    assert [i["InstanceId"] for i in instances_of(ec2, "md-0")] == [again["InstanceId"]]


def test_a_replaced_slot_gets_a_new_instance_not_the_terminated_one(ec2, network, run_requests):
    first = apply(md0(2), "md-0")
    victim = [m for m in first["machines"] if m["name"].endswith(naming.machine_suffix(CLUSTER, "md-0", 0, 0))][0]

    result = apply(md0(2), "md-0", remove_machines=[victim["name"]])

    (replacement,) = [m for m in result["machines"] if m["name"] == result["launched"][0]]
    assert replacement["instance_id"] != victim["instance_id"] and replacement["state"] in ("pending", "running")
    assert replacement["name"] == naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", 0, 1))
    assert run_requests[-1]["ClientToken"] == instances.client_token(CLUSTER, "md-0", ZONES[0], [0], 1)
    assert slot_tags(ec2, "md-0") == ["0", "1"]


def hide_terminated(monkeypatch):
    """A read that no longer lists terminated machines, as EC2 forgets them after about an hour
    while it still remembers their launch tokens."""
    real = instances.read_set_instances

    def live_only(ec2, cluster_name, set_name):
        live, dummy = real(ec2, cluster_name, set_name)
        return live, []

    monkeypatch.setattr(instances, "read_set_instances", live_only)


def test_a_token_spent_on_a_machine_since_gone_moves_to_the_next_attempt(ec2, network, monkeypatch, run_requests):
    first = apply(md0(1), "md-0")
    ec2.terminate_instances(InstanceIds=[first["machines"][0]["instance_id"]])
    launched_earlier([first["machines"][0]["instance_id"]], 2)
    hide_terminated(monkeypatch)

    # EC2 answers the spent token with its first answer (state pending), as moto_fixes does.
    result = apply(md0(1), "md-0")

    (machine,) = result["machines"]
    assert machine["instance_id"] != first["machines"][0]["instance_id"] and machine["state"] in ("pending", "running")
    assert machine["name"] == naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", 0, 1))
    assert [r["ClientToken"] for r in run_requests[1:]] == [instances.client_token(CLUSTER, "md-0", ZONES[0], [0], k) for k in (0, 1)]


def test_a_token_spent_with_other_settings_moves_to_the_next_attempt(ec2, network, monkeypatch, run_requests):
    first = apply(md0(1), "md-0")
    ec2.terminate_instances(InstanceIds=[first["machines"][0]["instance_id"]])
    hide_terminated(monkeypatch)

    result = apply(md0(1, instance_type="t3.xlarge"), "md-0")  # EC2: IdempotentParameterMismatch for attempt 0

    (machine,) = result["machines"]
    assert machine["instance_type"] == "t3.xlarge"
    assert machine["name"] == naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", 0, 1))
    assert len(instances_of(ec2, "md-0")) == 1


def test_machines_without_a_slot_tag_keep_their_slots_and_new_ones_fill_the_rest(ec2, network, calls):
    first = apply(md0(2), "md-0")
    ids = [m["instance_id"] for m in first["machines"]]
    ec2.delete_tags(Resources=ids, Tags=[{"Key": naming.SLOT_TAG}])  # as launched before slots existed
    calls.clear()

    assert apply(md0(2), "md-0")["changed"] is False and calls.writes() == []
    result = apply(md0(3), "md-0")

    (new,) = result["launched"]
    assert new == naming.machine_name(CLUSTER, "md-0", naming.machine_suffix(CLUSTER, "md-0", 2, 0))
    assert "DeleteTags" not in calls.names() and "CreateTags" not in calls.names()


# --- scaling --------------------------------------------------------------------------

def test_scale_up_fills_the_emptiest_zones(ec2, network):
    apply(md0(2), "md-0")
    result = apply(md0(4), "md-0")

    assert len(result["launched"]) == 2
    zones = sorted(m["availability_zone"] for m in result["machines"])
    assert zones == sorted(ZONES + ZONES[:1])


def md0_order(replicas, order, instance_type="t3.large"):
    spec = md0(replicas, instance_type)
    spec["machine_deployments"][0]["deletion_order"] = order
    return spec


def test_scale_down_reports_surplus_and_terminates_nothing_by_default(ec2, network, calls):
    first = apply(md0(3), "md-0")
    calls.clear()

    result = apply(md0(1), "md-0")

    assert result["changed"] is False and calls.writes() == [] and result["terminated"] == []
    assert len(result["surplus"]) == 2 and all(m["set"] == "md-0" for m in result["surplus"])
    # Still running until drained and removed: the machines list them.
    assert sorted(m["instance_id"] for m in result["machines"]) == sorted(m["instance_id"] for m in first["machines"])
    assert len(instances_of(ec2, "md-0")) == 3


def test_scale_down_with_terminate_surplus_terminates_the_surplus_in_deletion_order(ec2, network, calls):
    apply(md0(3), "md-0")
    planned = apply(md0(1), "md-0")["surplus"]
    calls.clear()

    result = apply(md0(1), "md-0", terminate_surplus=True)

    assert result["terminated"] == [m["instance_id"] for m in planned]
    assert [m["instance_id"] for m in result["surplus"]] == result["terminated"]
    assert calls.writes() == ["TerminateInstances"]
    assert len(result["machines"]) == 1 and len(instances_of(ec2, "md-0")) == 1


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_scale_down_follows_the_deletion_order(ec2, network, order):
    first = apply(md0(3), "md-0")
    by_age = sorted(first["machines"], key=lambda m: m["name"])
    for hours, machine in zip((3, 2, 1), by_age):  # by_age[0] oldest, by_age[2] newest
        launched_earlier([machine["instance_id"]], hours)

    result = apply(md0_order(2, order), "md-0", terminate_surplus=True)

    gone = by_age[2] if order == "newest" else by_age[0]
    assert result["terminated"] == [gone["instance_id"]]
    assert state_of(ec2, gone["instance_id"]) == "terminated"


def test_random_deletion_order_is_stable_between_check_mode_and_apply(ec2, network):
    apply(md0(3), "md-0")
    checked, failed = machine_set(md0(1), "md-0", check_mode=True, terminate_surplus=True)
    assert not failed

    result = apply(md0(1), "md-0", terminate_surplus=True)

    assert result["terminated"] == checked["terminated"] and len(result["terminated"]) == 2
    assert [m["instance_id"] for m in checked["surplus"]] == checked["terminated"]


def test_control_plane_scale_down_takes_the_oldest_in_the_fullest_zone(ec2, network):
    spec = cluster_spec(**{"control_plane.replicas": 3})
    first = apply(spec, "control-plane")
    launched_earlier([m["instance_id"] for m in first["machines"]], 2)
    grown = apply(spec, "control-plane", replicas=4)  # the 4th goes to the first zone, which then holds two
    (newest,) = [m for m in grown["machines"] if m["name"] in grown["launched"]]
    (older,) = [m for m in first["machines"] if m["availability_zone"] == newest["availability_zone"]]

    result = apply(spec, "control-plane")

    assert [m["instance_id"] for m in result["surplus"]] == [older["instance_id"]]
    assert result["terminated"] == []


def test_replicas_overrides_the_spec_to_surge_then_the_surplus_is_reported(ec2, network):
    apply(md0(2), "md-0")

    surged = apply(md0(2), "md-0", replicas=3)

    assert len(surged["launched"]) == 1 and len(surged["machines"]) == 3 and surged["surplus"] == []
    back = apply(md0(2), "md-0")
    assert len(back["surplus"]) == 1 and back["launched"] == []


def test_negative_replicas_fails_before_any_aws_call(ec2, calls):
    result, failed = machine_set(md0(2), "md-0", replicas=-1)

    assert failed and result["msg"].startswith("replicas: -1 is not a machine count")
    assert calls.names() == []


def test_a_second_bastion_is_refused_before_any_aws_call(ec2, calls):
    result, failed = machine_set(cluster_spec(), "bastion", replicas=2)

    assert failed and result["msg"].startswith("replicas: the bastion is one machine or none")
    assert calls.names() == []


def test_spec_change_reports_outdated_without_writing(ec2, network, calls):
    apply(md0(2), "md-0")
    calls.clear()

    result = apply(md0(2, instance_type="t3.xlarge"), "md-0")

    assert result["changed"] is False and calls.writes() == []
    assert len(result["outdated"]) == 2
    assert all(m["outdated"] for m in result["machines"])
    assert all(i["InstanceType"] == "t3.large" for i in instances_of(ec2, "md-0"))


def test_scale_down_terminates_outdated_machines_first(ec2, network):
    apply(md0(2), "md-0")
    grown = apply(md0_order(3, "oldest", instance_type="t3.xlarge"), "md-0")
    (new_name,) = grown["launched"]
    (new_id,) = [m["instance_id"] for m in grown["machines"] if m["name"] == new_name]
    launched_earlier([new_id], 5)  # now the oldest: deletion_order oldest alone would pick it
    assert sorted(grown["outdated"]) == sorted(m["name"] for m in grown["machines"] if m["name"] != new_name)

    result = apply(md0_order(2, "oldest", instance_type="t3.xlarge"), "md-0", terminate_surplus=True)

    assert len(result["terminated"]) == 1 and result["surplus"][0]["outdated"] is True
    names = [m["name"] for m in result["machines"]]
    assert new_name in names and len(names) == 2
    assert len(result["outdated"]) == 1


def test_remove_machines_replaces_one_in_its_zone(ec2, network, calls):
    first = apply(md0(2), "md-0")
    victim = first["machines"][0]
    calls.clear()

    result = apply(md0(2), "md-0", remove_machines=[victim["name"]])

    assert result["terminated"] == [victim["instance_id"]]
    assert len(result["launched"]) == 1
    assert state_of(ec2, victim["instance_id"]) == "terminated"
    names = [m["name"] for m in result["machines"]]
    assert victim["name"] not in names and len(names) == 2
    replacement = [m for m in result["machines"] if m["name"] == result["launched"][0]][0]
    assert replacement["availability_zone"] == victim["availability_zone"]
    assert calls.writes() == ["TerminateInstances", "RunInstances"]

    calls.clear()
    again = apply(md0(2), "md-0", remove_machines=[victim["name"]])
    assert again["changed"] is False and calls.writes() == []


def test_remove_machines_by_instance_id(ec2, network):
    first = apply(md0(2), "md-0")
    victim = first["machines"][1]["instance_id"]

    result = apply(md0(2), "md-0", remove_machines=[victim])

    assert result["terminated"] == [victim] and len(result["launched"]) == 1


def test_remove_machines_unknown_name_fails_before_any_write(ec2, network, calls):
    apply(md0(1), "md-0")
    (other,) = apply(cluster_spec(), "md-1")["machines"]
    calls.clear()

    result, failed = machine_set(md0(1), "md-0", remove_machines=["capi-example-md-0-nopes", other["name"]])

    assert failed
    assert "capi-example-md-0-nopes" in result["msg"] and other["name"] in result["msg"]
    assert "not a machine of set md-0" in result["msg"]
    assert calls.writes() == []
    assert len(instances_of(ec2)) == 2


# --- mark_updated (after an in-place upgrade) and the spec hash without the looked-up AMI ----------

def test_mark_updated_retags_the_named_machines_in_one_call_and_is_idempotent(ec2, network, calls):
    first = apply(md0(3), "md-0")
    upgraded = md0(3)
    upgraded["kubernetes_version"] = "v1.32.0"
    assert len(apply(upgraded, "md-0")["outdated"]) == 3
    named = [first["machines"][0]["name"], first["machines"][1]["instance_id"]]
    calls.clear()

    result = apply(upgraded, "md-0", mark_updated=named)

    assert result["changed"] is True and calls.writes() == ["CreateTags"]
    (tagging,) = calls.aws_calls.params_of("CreateTags")
    assert sorted(tagging["Resources"]) == sorted(m["instance_id"] for m in first["machines"][:2])
    assert naming.tags_to_dict(tagging["Tags"])[naming.KUBERNETES_VERSION_TAG] == "v1.32.0"
    assert [a["action"] for a in result["plan"]] == ["update"] and "mark_updated" in result["plan"][0]["detail"]
    assert result["outdated"] == [first["machines"][2]["name"]]
    marked = {m["name"]: m for m in result["machines"]}
    assert marked[first["machines"][0]["name"]]["kubernetes_version"] == "v1.32.0"
    for instance in instances_of(ec2, "md-0"):
        if instance["InstanceId"] != first["machines"][2]["instance_id"]:
            assert tags(instance)[naming.KUBERNETES_VERSION_TAG] == "v1.32.0"

    calls.clear()
    again = apply(upgraded, "md-0", mark_updated=named)
    assert again["changed"] is False and calls.writes() == [] and again["outdated"] == [first["machines"][2]["name"]]


def test_mark_updated_check_mode_plans_the_tags_and_writes_nothing(ec2, network, calls):
    first = apply(md0(1), "md-0")
    upgraded = md0(1)
    upgraded["kubernetes_version"] = "v1.31.5"
    calls.clear()

    result, failed = machine_set(upgraded, "md-0", check_mode=True, diff=True, mark_updated=[first["machines"][0]["name"]])

    assert not failed and result["changed"] is True and calls.writes() == []
    assert result["outdated"] == [] and result["machines"][0]["kubernetes_version"] == "v1.31.5"
    assert "~ ec2 instance tags %s" % first["machines"][0]["name"] in result["diff"]["prepared"]
    assert tags(instances_of(ec2, "md-0")[0])[naming.KUBERNETES_VERSION_TAG] == KUBERNETES_VERSION


def test_mark_updated_unknown_name_fails_before_any_write(ec2, network, calls):
    apply(md0(1), "md-0")
    (other,) = apply(cluster_spec(), "md-1")["machines"]
    calls.clear()

    result, failed = machine_set(md0(1), "md-0", mark_updated=[other["name"]], terminate_surplus=True)

    assert failed and result["msg"].startswith("mark_updated: %s is not a machine of set md-0" % other["name"])
    assert calls.writes() == []


def test_machines_tagged_with_the_legacy_hash_of_their_ami_stay_up_to_date(ec2, network, calls):
    first = apply(md0(2), "md-0")
    set_spec = instances.machine_set_spec(resolved(md0(2)), "md-0")
    for machine in first["machines"]:
        legacy = instances.legacy_spec_hash("md-0", set_spec, machine["image_id"])
        ec2.create_tags(Resources=[machine["instance_id"]], Tags=[{"Key": naming.SPEC_HASH_TAG, "Value": legacy}])
    calls.clear()

    result = apply(md0(2), "md-0")

    assert result["outdated"] == [] and result["changed"] is False and calls.writes() == []
    assert len(apply(md0(2, instance_type="t3.xlarge"), "md-0")["outdated"]) == 2


def test_a_newly_published_image_does_not_make_looked_up_machines_outdated(ec2, network):
    def publish(name):
        source = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image_id = ec2.create_image(InstanceId=source, Name=name)["ImageId"]
        ec2.terminate_instances(InstanceIds=[source])
        return image_id

    lookup = md0(1)
    del lookup["machine_deployments"][0]["ami_id"]
    lookup["image_lookup"] = {"owner": DEFAULT_ACCOUNT_ID}
    old_image = publish("capa-ami-ubuntu-24.04-v1.31.4-1000")
    first = apply(lookup, "md-0")
    assert first["machines"][0]["image_id"] == old_image
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    backend.amis[old_image].creation_date = datetime.datetime(2025, 1, 1)
    new_image = publish("capa-ami-ubuntu-24.04-v1.31.4-2000")
    backend.amis[new_image].creation_date = datetime.datetime(2025, 2, 1)

    result = apply(lookup, "md-0")
    assert result["outdated"] == [] and result["changed"] is False

    grown = apply(dict(lookup, machine_deployments=[dict(lookup["machine_deployments"][0], replicas=2)]), "md-0")
    (new,) = [m for m in grown["machines"] if m["name"] in grown["launched"]]
    assert new["image_id"] == new_image and grown["outdated"] == []


def test_imds_drift_is_fixed_in_place(ec2, network, calls):
    first = apply(md0(1), "md-0")
    instance_id = first["machines"][0]["instance_id"]
    ec2.modify_instance_metadata_options(InstanceId=instance_id, HttpTokens="optional", HttpPutResponseHopLimit=1)
    calls.clear()

    result = apply(md0(1), "md-0")

    assert result["changed"] is True
    assert [(a["action"], a["resource"]) for a in result["plan"]] == [("update", "ec2 instance metadata options")]
    assert "HttpTokens optional -> required" in result["plan"][0]["detail"]
    assert calls.writes() == ["ModifyInstanceMetadataOptions"]
    options = instances_of(ec2, "md-0")[0]["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 2)
    assert result["launched"] == [] and result["terminated"] == []

    assert apply(md0(1), "md-0")["changed"] is False


# --- absent and ownership ---------------------------------------------------------------

def test_absent_terminates_only_this_sets_owned_machines(ec2, network, calls):
    apply(md0(2), "md-0")
    apply(cluster_spec(), "md-1")
    look_alike_tags = {"Name": "capi-example-md-0-alike", naming.MACHINE_SET_TAG: "md-0",
                       naming.ROLE_TAG: naming.ROLE_NODE, naming.cloud_provider_tag(CLUSTER): "owned"}
    look_alike = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1,
                                   SubnetId=network["subnets"][(naming.ROLE_PRIVATE, ZONES[0])],
                                   TagSpecifications=[{"ResourceType": "instance",
                                                       "Tags": [{"Key": k, "Value": v} for k, v in look_alike_tags.items()]}])
    look_alike_id = look_alike["Instances"][0]["InstanceId"]
    md0_ids = sorted(i["InstanceId"] for i in instances_of(ec2, "md-0") if i["InstanceId"] != look_alike_id)
    calls.clear()

    result = apply(md0(2), "md-0", state="absent")

    assert sorted(result["terminated"]) == md0_ids and result["machines"] == []
    assert calls.writes() == ["TerminateInstances"]
    assert state_of(ec2, look_alike_id) == "running"
    assert len(instances_of(ec2, "md-1")) == 1

    calls.clear()
    again = apply(md0(2), "md-0", state="absent")
    assert again["changed"] is False and calls.writes() == []


def test_present_ignores_unowned_look_alikes(ec2, network):
    look_alike_tags = {"Name": "capi-example-md-0-alike", naming.MACHINE_SET_TAG: "md-0",
                       naming.owner_tag("other-cluster"): "owned"}
    ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in look_alike_tags.items()]}])

    result = apply(md0(0), "md-0")

    assert result["changed"] is False and result["machines"] == []
    assert len(instances_of(ec2, "md-0")) == 1


def test_absent_terminates_a_set_dropped_from_the_spec(ec2, network):
    apply(cluster_spec(), "md-1")
    dropped = cluster_spec(machine_deployments=[BASE_SPEC["machine_deployments"][0]])

    result = apply(dropped, "md-1", state="absent")

    assert len(result["terminated"]) == 1
    assert instances_of(ec2, "md-1") == []


def test_absent_check_mode_terminates_nothing(ec2, network):
    apply(md0(1), "md-0")
    result, failed = machine_set(md0(1), "md-0", check_mode=True, state="absent")

    assert not failed and result["changed"] is True and len(result["terminated"]) == 1
    assert len(instances_of(ec2, "md-0")) == 1


# --- errors ---------------------------------------------------------------------------

def test_unknown_set_fails_before_any_aws_call(ec2, calls):
    result, failed = machine_set(cluster_spec(), "md-9")

    assert failed
    assert "'md-9' is not a machine set of cluster capi-example" in result["msg"]
    assert "control-plane, bastion, md-0, md-1" in result["msg"]
    assert calls.names() == []


def test_invalid_spec_fails_before_any_aws_call(ec2, calls):
    result, failed = machine_set(cluster_spec(**{"control_plane.replicas": 2}), "control-plane")

    assert failed and "cluster.control_plane.replicas" in result["msg"]
    assert calls.names() == []


def test_oversized_user_data_fails_before_any_aws_call(ec2, calls):
    result, failed = machine_set(md0(), "md-0", user_data="x" * 16385)

    assert failed and "user_data" in result["msg"] and "16384" in result["msg"]
    assert calls.names() == []


def test_missing_network_fails_naming_cluster_network(ec2, calls):
    result, failed = machine_set(md0(), "md-0")

    assert failed and "no subnets" in result["msg"] and "cluster_network" in result["msg"]
    assert calls.writes() == []


def test_missing_security_group_fails_naming_it(ec2, network, calls):
    ec2.delete_security_group(GroupId=network["groups"][naming.SG_LB])
    calls.clear()

    result, failed = machine_set(md0(), "md-0")

    assert failed and "no lb security group" in result["msg"]
    assert calls.writes() == []


def test_unknown_ami_id_fails_naming_the_field(ec2, network, calls):
    spec = cluster_spec(**{"machine_deployments.1.ami_id": "ami-0123456789abcdef0"})
    result, failed = machine_set(spec, "md-1")

    assert failed
    assert "cluster.machine_deployments[1].ami_id: ami-0123456789abcdef0 does not exist" in result["msg"]
    assert calls.writes() == []


def test_zone_without_a_subnet_fails_naming_the_sets_zones_field(ec2, network, calls):
    # A zone that is not among the cluster's is refused by the spec itself (issue 10), before any AWS call.
    spec = cluster_spec(**{"machine_deployments.0.availability_zones": ["ap-northeast-2d"]})

    result, failed = machine_set(spec, "md-0")

    assert failed
    assert ("cluster.machine_deployments[0].availability_zones: the cluster has no subnet in ap-northeast-2d "
            "(cluster.network.availability_zones: ap-northeast-2a, ap-northeast-2b, ap-northeast-2c)") in result["msg"]
    assert calls.names() == []
