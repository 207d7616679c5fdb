"""The machine-set service: its decisions (spread, scale-down order, spec hash, subnets, IMDS)
and CAPA's AMI lookup against moto's images."""

import datetime
import string

import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from ansible_collections.kubecluster.aws.plugins.module_utils import instances
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import spec as spec_module

from helpers.aws import AMI as BASE_AMI
from helpers.aws import CLUSTER, KUBERNETES_VERSION, REGION, ZONES


def resolved_spec(**top):
    raw = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION,
           "network": {"availability_zones": ZONES},
           "machine_deployments": [{"name": "md-0", "replicas": 2}, {"name": "md-1", "replicas": 1}]}
    raw.update(top)
    resolved = spec_module.resolve(raw)
    return spec_module.with_zones(resolved, resolved["network"]["availability_zones"])


def view(name, zone, launched, outdated=False):
    return {"name": name, "instance_id": "i-" + name, "availability_zone": zone, "outdated": outdated,
            "launch_time": "2025-01-01T00:%02d:00+00:00" % launched}


# --- spread and scale-down order ---------------------------------------------------------

def test_spread_fills_the_emptiest_zone_in_zone_order():
    assert instances.spread(ZONES, {}, 2) == ZONES[:2]
    assert instances.spread(ZONES, {ZONES[0]: 1}, 3) == [ZONES[1], ZONES[2], ZONES[0]]
    assert instances.spread(ZONES, {ZONES[0]: 2, ZONES[1]: 2}, 2) == [ZONES[2], ZONES[2]]


def test_spread_ignores_machines_outside_the_sets_zones():
    assert instances.spread(ZONES[:2], {"ap-northeast-2d": 5}, 1) == [ZONES[0]]


def test_control_plane_scale_down_takes_the_oldest_from_the_fullest_zone():
    machines = [view("a1", ZONES[0], 1), view("a2", ZONES[0], 5), view("b1", ZONES[1], 0), view("c1", ZONES[2], 7)]

    chosen = instances.scale_down_choice(machines, 1, ZONES)

    # KubeadmControlPlane's selectMachineForScaleDown: the fullest zone, then its oldest machine.
    assert [m["name"] for m in chosen] == ["a1"]


def test_scale_down_takes_outdated_first_even_when_newer():
    machines = [view("a1", ZONES[0], 1), view("a2", ZONES[0], 5), view("b1", ZONES[1], 9, outdated=True)]

    chosen = instances.scale_down_choice(machines, 2, ZONES)

    assert [m["name"] for m in chosen] == ["b1", "a1"]


def test_scale_down_tie_between_zones_takes_the_later_zone():
    machines = [view("a1", ZONES[0], 9), view("b1", ZONES[1], 1), view("c1", ZONES[2], 2)]

    assert [m["name"] for m in instances.scale_down_choice(machines, 2, ZONES)] == ["c1", "b1"]


def test_scale_down_never_picks_more_machines_than_there_are():
    assert len(instances.scale_down_choice([view("a1", ZONES[0], 1)], 3, ZONES)) == 1


DEPLOYMENT = [view("m1", ZONES[0], 3), view("m2", ZONES[1], 1), view("m3", ZONES[2], 2), view("m4", ZONES[0], 2)]


def test_deployment_deletion_order_newest_and_oldest_by_launch_time_ties_by_name():
    newest = instances.deployment_deletion_order(DEPLOYMENT, "newest", CLUSTER)
    oldest = instances.deployment_deletion_order(DEPLOYMENT, "oldest", CLUSTER)

    assert [m["name"] for m in newest] == ["m1", "m3", "m4", "m2"]
    assert [m["name"] for m in oldest] == ["m2", "m3", "m4", "m1"]


def test_deployment_deletion_order_puts_outdated_machines_first_whatever_the_order():
    machines = DEPLOYMENT + [view("old", ZONES[1], 0, outdated=True)]

    for order in ("random", "newest", "oldest"):
        assert instances.deployment_deletion_order(machines, order, CLUSTER)[0]["name"] == "old"


def test_random_deletion_order_is_stable_and_depends_on_cluster_and_instance_id():
    first = [m["name"] for m in instances.deployment_deletion_order(DEPLOYMENT, "random", CLUSTER)]

    assert first == [m["name"] for m in instances.deployment_deletion_order(list(reversed(DEPLOYMENT)), "random", CLUSTER)]
    assert sorted(first) == ["m1", "m2", "m3", "m4"]
    expected = sorted(DEPLOYMENT, key=lambda m: instances.random_rank(CLUSTER, m["instance_id"]))
    assert first == [m["name"] for m in expected]


def test_surplus_choice_uses_the_sets_rule():
    spec = resolved_spec(machine_deployments=[{"name": "md-0", "replicas": 2, "deletion_order": "oldest"}])

    assert [m["name"] for m in instances.surplus_choice("md-0", spec_module.machine_set_spec(spec, "md-0"), CLUSTER,
                                                        DEPLOYMENT, 2)] == ["m2", "m3"]
    control_plane = spec_module.machine_set_spec(spec, "control-plane")
    assert [m["name"] for m in instances.surplus_choice("control-plane", control_plane, CLUSTER, DEPLOYMENT, 1)] == ["m4"]
    assert instances.surplus_choice("md-0", spec_module.machine_set_spec(spec, "md-0"), CLUSTER, DEPLOYMENT, 0) == []


# --- spec hash, names, tokens -----------------------------------------------------------

def test_spec_hash_is_stable_and_short():
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")

    first = instances.spec_hash("md-0", set_spec)

    assert first == instances.spec_hash("md-0", dict(set_spec))
    assert len(first) == instances.HASH_LENGTH and all(c in string.hexdigits for c in first)


@pytest.mark.parametrize("change", [
    {"instance_type": "t3.xlarge"},
    {"kubernetes_version": "v1.32.0"},
    {"root_volume": {"size": 100, "type": "gp3", "encrypted": True, "kms_key_id": None}},
    {"iam_instance_profile": "custom"},
    {"instance_metadata": {"http_tokens": "optional", "http_put_response_hop_limit": 2}},
    {"ssh_key_name": "other"},
    {"ami_id": "ami-0123456789abcdef0"},
    {"image_lookup": {"owner": "123456789012", "name_format": "capa-ami-{base_os}-?{k8s_version}-*", "base_os": "ubuntu-24.04"}},
    {"image_lookup": {"owner": "819546954734", "name_format": "capa-ami-{base_os}-?{k8s_version}-*", "base_os": "ubuntu-22.04"}},
])
def test_spec_hash_changes_with_what_defines_a_machine(change):
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")

    assert instances.spec_hash("md-0", dict(set_spec, **change)) != instances.spec_hash("md-0", set_spec)


def test_spec_hash_holds_the_lookups_inputs_not_its_answer():
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")

    assert instances.image_source("md-0", set_spec) == {"owner": "819546954734", "name": "capa-ami-ubuntu-24.04-?1.31.4-*"}
    given = dict(set_spec, ami_id=BASE_AMI)
    assert instances.image_source("md-0", given) == {"ami_id": BASE_AMI}
    # With an ami_id the lookup settings no longer matter.
    other_lookup = dict(given, image_lookup={"owner": "123456789012", "name_format": "x-*", "base_os": ""})
    assert instances.spec_hash("md-0", other_lookup) == instances.spec_hash("md-0", given)


def test_spec_hash_ignores_tags_replicas_and_rollout_settings():
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")
    other = dict(set_spec, additional_tags={"team": "x"}, replicas=9, availability_zones=ZONES[:1], deletion_order="oldest",
                 max_surge=3, max_unavailable=1)

    assert instances.spec_hash("md-0", other) == instances.spec_hash("md-0", set_spec)


def test_bastion_is_not_outdated_by_a_kubernetes_upgrade():
    bastion = spec_module.machine_set_spec(resolved_spec(), "bastion")
    upgraded = spec_module.machine_set_spec(resolved_spec(kubernetes_version="v1.32.1"), "bastion")

    assert instances.spec_hash("bastion", bastion) == instances.spec_hash("bastion", upgraded)


def hashed(tag, image_id=BASE_AMI):
    tags = [] if tag is None else [{"Key": naming.SPEC_HASH_TAG, "Value": tag}]
    return {"InstanceId": "i-1", "ImageId": image_id, "Tags": tags}


def test_a_machine_with_todays_hash_is_up_to_date():
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")
    current = instances.spec_hash("md-0", set_spec)

    assert instances.is_up_to_date(hashed(current), "md-0", set_spec, current)
    assert not instances.is_up_to_date(hashed("0123456789ab"), "md-0", set_spec, current)
    assert not instances.is_up_to_date(hashed(None), "md-0", set_spec, current)


def test_a_machine_with_the_legacy_hash_of_its_own_looked_up_ami_is_up_to_date():
    set_spec = spec_module.machine_set_spec(resolved_spec(), "md-0")
    current = instances.spec_hash("md-0", set_spec)
    launched_from = "ami-0aaaaaaaaaaaaaaaa"
    legacy = instances.legacy_spec_hash("md-0", set_spec, launched_from)

    # A newer image published since does not make it outdated; a spec change still does.
    assert instances.is_up_to_date(hashed(legacy, launched_from), "md-0", set_spec, current)
    upgraded = spec_module.machine_set_spec(resolved_spec(kubernetes_version="v1.32.0"), "md-0")
    assert not instances.is_up_to_date(hashed(legacy, launched_from), "md-0", upgraded, instances.spec_hash("md-0", upgraded))


def test_a_legacy_hash_with_a_given_ami_is_checked_against_the_specs_ami():
    set_spec = dict(spec_module.machine_set_spec(resolved_spec(), "md-0"), ami_id=BASE_AMI)
    current = instances.spec_hash("md-0", set_spec)
    legacy = instances.legacy_spec_hash("md-0", set_spec, BASE_AMI)
    changed = dict(set_spec, ami_id="ami-0123456789abcdef0")

    assert instances.is_up_to_date(hashed(legacy), "md-0", set_spec, current)
    # The machine's own image no longer counts once the spec names another one.
    assert not instances.is_up_to_date(hashed(legacy), "md-0", changed, instances.spec_hash("md-0", changed))


def test_client_token_is_stable_per_batch_and_attempt_and_fits_ec2():
    def token(cluster="capi-example", set_name="md-0", zone=ZONES[0], slots=(0, 3), attempt=0):
        return instances.client_token(cluster, set_name, zone, list(slots), attempt)

    assert token() == token()
    others = {token(slots=(0,)), token(slots=(3, 0)), token(slots=(0, 3, 6)), token(zone=ZONES[1]), token(attempt=1),
              token(set_name="md-1"), token(cluster="other")}
    assert len(others | {token()}) == 8
    assert len(token()) == 64  # EC2 takes up to 64 ASCII characters


def test_launches_are_batched_per_zone_in_the_order_zones_first_appear():
    planned = list(zip(range(5), instances.spread(ZONES, {}, 5)))

    assert instances.launch_batches(planned) == [(ZONES[0], [0, 3]), (ZONES[1], [1, 4]), (ZONES[2], [2])]
    assert instances.launch_batches([(4, ZONES[1]), (0, ZONES[0]), (7, ZONES[1])]) == [(ZONES[1], [4, 7]), (ZONES[0], [0])]
    assert instances.launch_batches([]) == []


def test_a_batch_is_split_where_its_tag_would_exceed_ec2s_256_characters():
    batches = instances.launch_batches([(slot, ZONES[0]) for slot in range(1000)])

    assert [slot for _zone, slots in batches for slot in slots] == list(range(1000))
    assert all(zone == ZONES[0] for zone, _slots in batches) and len(batches) > 1
    for _zone, slots in batches:
        assert len(instances.launch_batch_tag(slots, instances.MAX_LAUNCH_ATTEMPTS)) <= 256
    # Full batches: the next slot would not have fitted.
    assert len(instances.launch_batch_tag(batches[0][1] + [batches[1][1][0]], instances.MAX_LAUNCH_ATTEMPTS)) > 256


def batch_member(instance_id, batch, index, **extra):
    tags = [{"Key": naming.LAUNCH_BATCH_TAG, "Value": batch}] + [{"Key": k, "Value": v} for k, v in extra.items()]
    return {"InstanceId": instance_id, "AmiLaunchIndex": index, "Tags": tags}


def test_an_untagged_machine_of_a_launch_batch_gets_its_slot_from_the_batch_tag_and_launch_index():
    assert instances.launch_batch_tag([0, 3, 6], 1) == "0,3,6/1"
    assert instances.launch_batch_of(batch_member("i-1", "0,3,6/1", 2)) == (6, 1)
    assert instances.slot_of(batch_member("i-1", "0,3,6/1", 1)) == 3
    # The slot tag, once set, is what counts.
    assert instances.slot_of(batch_member("i-1", "0,3,6/1", 1, **{naming.SLOT_TAG: "3"})) == 3
    for bad in (batch_member("i-1", "0,3,6/1", 3), batch_member("i-1", "0,3,6", 0), batch_member("i-1", "0,x/0", 1),
                batch_member("i-1", "0,3/z", 0), {"InstanceId": "i-1", "Tags": [{"Key": naming.LAUNCH_BATCH_TAG, "Value": "0,3/0"}]}):
        assert instances.launch_batch_of(bad) is None and instances.slot_of(bad) is None
    # Such machines hold their slots; machines with neither tag still get the lowest free ones.
    machines = [batch_member("i-1", "0,3/0", 1), tagged("i-2", "capi-example-md-0-bbbbb"), tagged("i-3", "capi-example-md-0-aaaaa", 1)]
    assert instances.assign_slots(machines) == {"i-1": 3, "i-3": 1, "i-2": 0}


def test_machine_suffix_is_five_base36_characters_stable_per_slot_and_attempt():
    suffix = naming.machine_suffix("capi-example", "md-0", 0, 0)

    assert suffix == naming.machine_suffix("capi-example", "md-0", 0, 0)
    assert len(suffix) == 5 and all(c in string.digits + string.ascii_lowercase for c in suffix)
    assert suffix != naming.machine_suffix("capi-example", "md-0", 0, 1)
    assert suffix != naming.machine_suffix("capi-example", "md-0", 1, 0)


def tagged(instance_id, name, slot=None):
    tags = [{"Key": "Name", "Value": name}]
    if slot is not None:
        tags.append({"Key": naming.SLOT_TAG, "Value": str(slot)})
    return {"InstanceId": instance_id, "Tags": tags}


def test_slots_come_from_the_tag_and_untagged_machines_get_the_lowest_free_in_name_order():
    machines = [tagged("i-1", "capi-example-md-0-zzzzz", 1), tagged("i-2", "capi-example-md-0-bbbbb"),
                tagged("i-3", "capi-example-md-0-aaaaa"), tagged("i-4", "capi-example-md-0-ccccc", 4)]

    assert instances.assign_slots(machines) == {"i-1": 1, "i-4": 4, "i-3": 0, "i-2": 2}
    assert instances.missing_slots([1, 4, 0, 2], 5) == [3]
    assert instances.missing_slots([], 2) == [0, 1]


def test_a_slot_held_twice_or_a_bad_slot_tag_is_treated_as_untagged():
    machines = [tagged("i-1", "capi-example-md-0-aaaaa", 0), tagged("i-2", "capi-example-md-0-bbbbb", 0),
                tagged("i-3", "capi-example-md-0-ccccc", "x")]

    assert instances.assign_slots(machines) == {"i-1": 0, "i-2": 1, "i-3": 2}


# --- subnets, IMDS, fields ----------------------------------------------------------------

SUBNETS = [
    {"id": "subnet-pri-a", "role": "private", "availability_zone": ZONES[0]},
    {"id": "subnet-pri-b", "role": "private", "availability_zone": ZONES[1]},
    {"id": "subnet-pub-a", "role": "public", "availability_zone": ZONES[0]},
]


def test_subnet_for_private_public_and_public_only_clusters():
    assert instances.subnet_for(SUBNETS, ZONES[1], False) == (SUBNETS[1], False)
    assert instances.subnet_for(SUBNETS, ZONES[0], True) == (SUBNETS[2], True)
    assert instances.subnet_for(SUBNETS[2:], ZONES[0], False) == (SUBNETS[2], True)
    assert instances.subnet_for(SUBNETS, ZONES[2], False) == (None, False)
    # No network yet (check mode): nothing to fall back to, the set's own choice stands.
    assert instances.subnet_for([], ZONES[0], False) == (None, False)


def test_metadata_drift_names_what_differs():
    wanted = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"}
    instance = {"MetadataOptions": {"HttpTokens": "optional", "HttpPutResponseHopLimit": 2}}

    assert instances.metadata_drift(instance, wanted) == {"HttpTokens": ("optional", "required")}
    assert instances.metadata_drift({"MetadataOptions": dict(wanted)}, wanted) == {}
    assert instances.metadata_drift({"MetadataOptions": dict(wanted, HttpEndpoint="disabled")}, wanted) == {
        "HttpEndpoint": ("disabled", "enabled")}


def test_spec_fields_named_in_messages():
    spec = resolved_spec()

    assert instances.ami_field(spec, "md-1") == "cluster.machine_deployments[1].ami_id"
    assert instances.ami_field(spec, "bastion") == "cluster.network.bastion.ami_id"
    assert instances.zones_field(spec, "control-plane") == "cluster.network.availability_zones"
    assert instances.zones_field(spec, "md-0") == "cluster.machine_deployments[0].availability_zones"


def test_security_groups_per_set_as_capa_attaches_them():
    assert set(instances.security_group_roles("control-plane")) == {"node", "lb", "controlplane"}
    assert set(instances.security_group_roles("md-0")) == {"node", "lb"}
    assert instances.security_group_roles("bastion") == ("bastion",)


# --- the launch request ----------------------------------------------------------------

def test_run_request_carries_kms_key_profile_key_and_user_data():
    spec = resolved_spec(ssh_key_name="ops", control_plane={"root_volume": {"size": 120, "type": "io2", "kms_key_id": "alias/ebs"}})
    machine_set = instances.MachineSet(None, spec, "control-plane")
    machine_set.current_hash = "0123456789ab"
    image = instances.Image("ami-0123456789abcdef0", "/dev/xvda")

    request = machine_set.run_request(ZONES[0], [0], 0, image, SUBNETS[0], False, ["sg-1"], "#!/bin/sh")

    assert request["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
        "VolumeSize": 120, "VolumeType": "io2", "Encrypted": True, "KmsKeyId": "alias/ebs", "DeleteOnTermination": True}}]
    assert request["IamInstanceProfile"] == {"Name": naming.CONTROL_PLANE_PROFILE}
    assert request["KeyName"] == "ops" and request["UserData"] == "#!/bin/sh"
    assert request["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"}
    assert request["NetworkInterfaces"] == [{"DeviceIndex": 0, "SubnetId": "subnet-pri-a", "Groups": ["sg-1"],
                                             "AssociatePublicIpAddress": False, "DeleteOnTermination": True}]
    instance_tags = naming.tags_to_dict(request["TagSpecifications"][0]["Tags"])
    assert instance_tags[naming.SPEC_HASH_TAG] == "0123456789ab"
    assert instance_tags[naming.ROLE_TAG] == naming.ROLE_CONTROL_PLANE
    assert instance_tags[naming.SLOT_TAG] == "0"
    assert instance_tags["Name"] == "capi-example-control-plane-" + naming.machine_suffix("capi-example", "control-plane", 0, 0)
    assert request["ClientToken"] == instances.client_token("capi-example", "control-plane", ZONES[0], [0], 0)
    assert (request["MinCount"], request["MaxCount"]) == (1, 1) and naming.LAUNCH_BATCH_TAG not in instance_tags


def test_a_batch_request_launches_all_or_none_with_the_shared_tags_and_the_batch_tag():
    machine_set = instances.MachineSet(None, resolved_spec(), "md-0")
    machine_set.current_hash = "0123456789ab"

    request = machine_set.run_request(ZONES[0], [0, 3], 1, instances.Image(BASE_AMI, "/dev/sda1"), SUBNETS[0], False, ["sg-1"], None)

    assert (request["MinCount"], request["MaxCount"]) == (2, 2)
    assert request["ClientToken"] == instances.client_token("capi-example", "md-0", ZONES[0], [0, 3], 1)
    assert [spec["ResourceType"] for spec in request["TagSpecifications"]] == ["instance", "volume", "network-interface"]
    for spec in request["TagSpecifications"]:
        sent = naming.tags_to_dict(spec["Tags"])
        assert "Name" not in sent and naming.SLOT_TAG not in sent  # each machine's own, set right after the launch
        assert sent[naming.LAUNCH_BATCH_TAG] == "0,3/1"
        assert sent[naming.MACHINE_SET_TAG] == "md-0" and sent[naming.SPEC_HASH_TAG] == "0123456789ab"
        assert sent[naming.owner_tag(CLUSTER)] == "owned" and sent[naming.ROLE_TAG] == naming.ROLE_NODE


def test_bastion_request_has_no_profile_key_or_user_data():
    machine_set = instances.MachineSet(None, resolved_spec(), "bastion")
    machine_set.current_hash = "0123456789ab"

    request = machine_set.run_request(ZONES[0], [0], 0, instances.Image(BASE_AMI, "/dev/sda1"), SUBNETS[2], True, ["sg-b"], None)

    assert "IamInstanceProfile" not in request and "KeyName" not in request and "UserData" not in request
    assert request["InstanceType"] == "t3.micro"
    assert request["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True


# --- CAPA's AMI lookup against moto ----------------------------------------------------------

def capa_image(ec2, name, created, architecture="x86_64"):
    """An image with a CAPA-style name owned by moto's account; moto dates images 'now', so set it."""
    source = ec2.run_instances(ImageId=BASE_AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image_id = ec2.create_image(InstanceId=source, Name=name)["ImageId"]
    ami = ec2_backends[DEFAULT_ACCOUNT_ID][REGION].amis[image_id]
    ami.creation_date = created
    ami.architecture = architecture
    return image_id


def lookup_spec(**top):
    return resolved_spec(image_lookup={"owner": DEFAULT_ACCOUNT_ID}, **top)


def resolve(ec2, spec, set_name):
    return instances.resolve_image(ec2, spec, set_name, spec_module.machine_set_spec(spec, set_name))


def test_lookup_picks_the_newest_matching_image(ec2):
    day = datetime.datetime(2025, 1, 1)
    capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-1735689600", day)
    newest = capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-1736294400", day + datetime.timedelta(days=7))
    capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-1735000000", day - datetime.timedelta(days=7))
    capa_image(ec2, "capa-ami-ubuntu-24.04-v1.32.0-1799999999", day + datetime.timedelta(days=30))
    capa_image(ec2, "capa-ami-ubuntu-22.04-v1.31.4-1799999999", day + datetime.timedelta(days=30))

    image = resolve(ec2, lookup_spec(), "md-0")

    assert image.id == newest and image.root_device_name == "/dev/sda1"
    assert image.name == "capa-ami-ubuntu-24.04-v1.31.4-1736294400"


def test_lookup_uses_the_instance_types_architecture(ec2):
    day = datetime.datetime(2025, 1, 1)
    arm = capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-arm", day, architecture="arm64")
    x86 = capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-x86", day + datetime.timedelta(days=1))

    assert resolve(ec2, lookup_spec(machine_deployments=[{"name": "md-0", "instance_type": "m6g.large"}]), "md-0").id == arm
    assert resolve(ec2, lookup_spec(machine_deployments=[{"name": "md-0", "instance_type": "m5.large"}]), "md-0").id == x86


class DeniedInstanceTypes(object):
    """The EC2 client of a principal without ec2:DescribeInstanceTypes."""

    def __init__(self, client):
        self.client = client

    def get_paginator(self, operation):
        if operation == "describe_instance_types":
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not authorized"}}, "DescribeInstanceTypes")
        return self.client.get_paginator(operation)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_lookup_falls_back_to_x86_64_when_instance_types_are_denied(ec2):
    day = datetime.datetime(2025, 1, 1)
    capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-arm", day + datetime.timedelta(days=1), architecture="arm64")
    x86 = capa_image(ec2, "capa-ami-ubuntu-24.04-v1.31.4-x86", day)
    spec = lookup_spec(machine_deployments=[{"name": "md-0", "instance_type": "m6g.large"}])

    assert instances.instance_architecture(DeniedInstanceTypes(ec2), "m6g.large") == "x86_64"
    assert resolve(DeniedInstanceTypes(ec2), spec, "md-0").id == x86


def test_lookup_without_match_fails_like_capa_naming_the_field(ec2):
    capa_image(ec2, "capa-ami-ubuntu-24.04-v1.30.2-1735689600", datetime.datetime(2025, 1, 1))

    with pytest.raises(instances.MachineSetError) as caught:
        resolve(ec2, lookup_spec(), "control-plane")

    message = str(caught.value)
    assert "found no AMIs with the name 'capa-ami-ubuntu-24.04-?1.31.4-*'" in message
    assert "cluster.control_plane.ami_id" in message and "cluster.image_lookup" in message
    assert DEFAULT_ACCOUNT_ID in message and "x86_64" in message


def test_bastion_lookup_uses_canonicals_ubuntu_and_names_its_field(ec2):
    with pytest.raises(instances.MachineSetError) as caught:
        resolve(ec2, lookup_spec(), "bastion")

    message = str(caught.value)
    assert spec_module.DEFAULT_BASTION_IMAGE_LOOKUP["owner"] in message
    assert "ubuntu-noble-24.04-amd64-server-*" in message and "cluster.network.bastion.ami_id" in message


def test_given_ami_id_is_described_for_its_root_device(ec2):
    spec = resolved_spec(control_plane={"ami_id": BASE_AMI})

    image = resolve(ec2, spec, "control-plane")

    assert (image.id, image.root_device_name) == (BASE_AMI, "/dev/sda1")
