"""network.py: CAPA's CIDR split and NAT layout (pure), then plans against moto in process.

The module tests (tests/unit/plugins/modules/test_cluster_network.py) cover the user-visible
behaviour; these cover what is easier to reach from the service: interrupted runs, layout
changes, a subnet held by another route table, and the NotFound retries after a create.
"""

import pytest
from botocore.exceptions import ClientError

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.kubecluster.aws.plugins.module_utils import drift
from ansible_collections.kubecluster.aws.plugins.module_utils import gateways
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import network
from ansible_collections.kubecluster.aws.plugins.module_utils import spec as specs
from ansible_collections.kubecluster.aws.plugins.module_utils import subnets as subnet_service
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import ec2 as aws_ec2
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import UNKNOWN
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve, with_zones

from helpers.aws import CLUSTER, KUBERNETES_VERSION, OWNER, REGION, ZONES, context


def make_spec(zones=None, additional_tags=None, **network_fields):
    zones = zones or ZONES
    raw = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION, "network": dict(network_fields),
           "additional_tags": additional_tags or {}}
    return with_zones(resolve(raw), zones)


def result_of(plan):
    return plan.returns["network"]()


def owned(items):
    return [item for item in items if naming.is_owned(naming.tags_to_dict(item.get("Tags")), CLUSTER)]


def inventory(ec2):
    """Counts of what the cluster owns, to prove a rerun made nothing twice."""
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] in ("pending", "available")]
    return {
        "vpcs": len(owned(ec2.describe_vpcs()["Vpcs"])),
        "subnets": len(owned(ec2.describe_subnets()["Subnets"])),
        "igws": len(owned(ec2.describe_internet_gateways()["InternetGateways"])),
        "eips": len(owned(ec2.describe_addresses()["Addresses"])),
        "nats": len(owned(nats)),
        "route_tables": len(owned(ec2.describe_route_tables()["RouteTables"])),
        "security_groups": len(owned(ec2.describe_security_groups()["SecurityGroups"])),
    }


FULL = {"vpcs": 1, "subnets": 6, "igws": 1, "eips": 3, "nats": 3, "route_tables": 6, "security_groups": 5}


def default_route(ec2, name):
    table = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": [name]}])["RouteTables"][0]
    return next((r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)


# --- CAPA's CIDR split --------------------------------------------------------------------

@pytest.mark.parametrize("zones, public, private", [
    (3, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"], ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]),
    (2, ["10.0.0.0/19", "10.0.32.0/19"], ["10.0.64.0/18", "10.0.128.0/18"]),
    (1, ["10.0.0.0/17"], ["10.0.128.0/17"]),
    (4, ["10.0.0.0/21", "10.0.8.0/21", "10.0.16.0/21", "10.0.24.0/21"],
     ["10.0.32.0/19", "10.0.64.0/19", "10.0.96.0/19", "10.0.128.0/19"]),
])
def test_subnet_cidrs_match_capa(zones, public, private):
    assert subnet_service.subnet_cidrs("10.0.0.0/16", zones) == (public, private)


def test_subnet_cidrs_of_another_vpc_cidr_stay_inside_it():
    public, private = subnet_service.subnet_cidrs("172.31.128.0/20", 3)
    assert public == ["172.31.128.0/24", "172.31.129.0/24", "172.31.130.0/24"]
    assert private == ["172.31.132.0/22", "172.31.136.0/22", "172.31.140.0/22"]


@pytest.mark.parametrize("cidr, count, expected", [
    ("10.0.0.0/16", 1, ["10.0.0.0/16"]),
    ("10.0.0.0/16", 2, ["10.0.0.0/17", "10.0.128.0/17"]),
    ("10.0.0.0/16", 3, ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"]),
    ("10.0.0.0/24", 5, ["10.0.0.0/27", "10.0.0.32/27", "10.0.0.64/27", "10.0.0.96/27", "10.0.0.128/27"]),
])
def test_split_cidr_rounds_the_block_count_up_to_a_power_of_two(cidr, count, expected):
    assert subnet_service.split_cidr(cidr, count) == expected


def test_wanted_subnets_carry_capa_names_and_tags():
    subnets = subnet_service.wanted_subnets(make_spec(additional_tags={"team": "infra"}))
    assert [(s["role"], s["zone"], s["cidr"]) for s in subnets] == [
        ("public", "ap-northeast-2a", "10.0.0.0/20"), ("public", "ap-northeast-2b", "10.0.16.0/20"),
        ("public", "ap-northeast-2c", "10.0.32.0/20"), ("private", "ap-northeast-2a", "10.0.64.0/18"),
        ("private", "ap-northeast-2b", "10.0.128.0/18"), ("private", "ap-northeast-2c", "10.0.192.0/18")]
    public, private = subnets[0], subnets[3]
    assert public["tags"] == {"Name": "capi-example-subnet-public-ap-northeast-2a", OWNER: "owned", "team": "infra",
                              naming.ROLE_TAG: "public", "kubernetes.io/cluster/capi-example": "owned",
                              "kubernetes.io/role/elb": "1", naming.MANAGED_TAGS_TAG: "team"}
    assert private["tags"]["kubernetes.io/role/internal-elb"] == "1"
    assert "kubernetes.io/role/elb" not in private["tags"]


# --- NAT layout ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, nat_zones, routes", [
    ("per_az", ZONES, ZONES),
    ("single", ZONES[:1], [ZONES[0]] * 3),
    ("none", [], [None] * 3),
])
def test_nat_layout(mode, nat_zones, routes):
    spec = make_spec(nat_gateways=mode)
    assert specs.nat_zones(spec) == nat_zones
    assert [gateways.nat_zone_for(spec, zone) for zone in ZONES] == routes


@pytest.mark.parametrize("mode", ["per_az", "single", "none"])
def test_the_nat_count_cluster_spec_checks_is_the_layout_network_builds(mode):
    spec = make_spec(nat_gateways=mode)
    assert specs.nat_gateway_count(spec, len(ZONES)) == len(specs.nat_zones(spec))


def test_a_bring_your_own_vpc_gets_no_nat_gateway():
    spec = make_spec(vpc_id="vpc-0123456789abcdef0", subnet_ids=["subnet-0123456789abcdef0"])
    assert specs.nat_zones(spec) == [] and specs.nat_gateway_count(spec, 3) == 0


def test_nat_client_token_is_stable_short_and_specific():
    token = gateways.nat_client_token("capi-example", "ap-northeast-2a", "subnet-1")
    assert token == gateways.nat_client_token("capi-example", "ap-northeast-2a", "subnet-1")
    assert len(token) <= 64
    assert token != gateways.nat_client_token("capi-example", "ap-northeast-2b", "subnet-1")
    assert token != gateways.nat_client_token("capi-example", "ap-northeast-2a", "subnet-2")
    assert token != gateways.nat_client_token("other", "ap-northeast-2a", "subnet-1")


# --- plans against moto --------------------------------------------------------------------

def test_plan_on_an_empty_account_reads_little_and_knows_ids_only_after_apply(ec2, aws_calls):
    plan = network.plan_present(context(ec2), make_spec())
    assert aws_calls.writes() == []
    # Without a VPC nothing VPC-scoped can exist: only the VPC and the reusable Elastic IPs are read.
    assert aws_calls == [("ec2", "DescribeVpcs"), ("ec2", "DescribeAddresses")]
    result = result_of(plan)
    assert result["vpc_id"] == UNKNOWN and result["security_groups"]["node"] == UNKNOWN
    assert [s["cidr"] for s in result["subnets"] if s["role"] == "private"] == ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]
    plan.apply()
    result = result_of(plan)
    assert result["vpc_id"].startswith("vpc-")
    assert all(n["id"].startswith("nat-") and n["public_ip"] for n in result["nat_gateways"])
    assert inventory(ec2) == FULL


def test_nat_gateways_are_all_created_then_waited_for_once(ec2):
    plan = network.plan_present(context(ec2), make_spec())
    verbs = [(a.verb, a.kind) for a in plan.actions]
    nat_creates = [i for i, v in enumerate(verbs) if v == ("create", "nat-gateway")]
    waits = [i for i, v in enumerate(verbs) if v[0] == "wait"]
    assert len(nat_creates) == 3 and len(waits) == 1
    assert waits[0] > max(nat_creates)
    assert waits[0] < min(i for i, v in enumerate(verbs) if v == ("create", "route-table"))


def test_without_wait_no_wait_action_is_planned(ec2):
    plan = network.plan_present(context(ec2, wait=False), make_spec())
    assert not [a for a in plan.actions if a.verb == "wait"]


@pytest.mark.parametrize("stop_after", ["vpc", "subnet", "internet-gateway", "elastic-ip", "nat-gateway", "route-table", "security-group"])
def test_an_interrupted_run_converges_without_duplicates(ec2, stop_after):
    spec = make_spec()
    plan = network.plan_present(context(ec2), spec)
    first = next(i for i, a in enumerate(plan.actions) if a.kind == stop_after)
    for action in plan.actions[:first + 1]:
        action.run()
    network.plan_present(context(ec2), spec).apply()
    assert inventory(ec2) == FULL
    assert network.plan_present(context(ec2), spec).actions == []


def test_free_owned_eips_are_reused_before_allocating(ec2, aws_calls):
    tags = naming.resource_tags("capi-example", naming.eip_name("capi-example"), naming.ROLE_COMMON)
    spare = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [
        {"Key": k, "Value": v} for k, v in tags.items()]}])
    plan = network.plan_present(context(ec2), make_spec())
    assert len([a for a in plan.actions if a.kind == "elastic-ip"]) == 2
    plan.apply()
    assert spare["AllocationId"] in [n["allocation_id"] for n in result_of(plan)["nat_gateways"]]
    assert inventory(ec2)["eips"] == 3


def test_per_az_to_single_repoints_routes_then_deletes_surplus_nats_and_releases_their_eips(ec2):
    network.plan_present(context(ec2), make_spec()).apply()
    plan = network.plan_present(context(ec2), make_spec(nat_gateways="single"))
    rendered = plan.render()
    assert rendered.index("point 0.0.0.0/0 at capi-example-nat in ap-northeast-2a") < rendered.index("- nat-gateway")
    plan.apply()
    result = result_of(plan)
    (nat,) = result["nat_gateways"]
    for zone in ZONES:
        assert default_route(ec2, "capi-example-rt-private-" + zone)["NatGatewayId"] == nat["id"]
    assert inventory(ec2)["nats"] == 1 and inventory(ec2)["eips"] == 1
    assert network.plan_present(context(ec2), make_spec(nat_gateways="single")).actions == []


def _nat_gateways_pending():
    """Put every NAT gateway moto holds back to pending, as AWS shows one for a minute or two after CreateNatGateway."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    for nat in ec2_backends[DEFAULT_ACCOUNT_ID][REGION].nat_gateways.values():
        nat.state = "pending"


def test_without_wait_routes_point_at_the_pending_nat_gateways_and_a_rerun_makes_none_again(ec2):
    # create_cluster.yml's fast path: the NAT gateways provision while the machines boot; one wait comes later.
    plan = network.plan_present(context(ec2, wait=False), make_spec())
    plan.apply()
    _nat_gateways_pending()
    nats = {n["availability_zone"]: n["id"] for n in result_of(plan)["nat_gateways"]}
    for zone in ZONES:
        assert default_route(ec2, "capi-example-rt-private-" + zone)["NatGatewayId"] == nats[zone]

    assert network.plan_present(context(ec2, wait=False), make_spec()).actions == []
    waiting = network.plan_present(context(ec2), make_spec())
    assert [(a.verb, a.kind, a.detail) for a in waiting.actions] == [("wait", "nat-gateway", "until 3 available")]
    assert inventory(ec2)["nats"] == 3 and inventory(ec2)["eips"] == 3


def test_without_wait_surplus_nat_gateways_are_still_deleted_waited_for_and_their_eips_released(ec2, aws_calls):
    network.plan_present(context(ec2), make_spec()).apply()
    plan = network.plan_present(context(ec2, wait=False), make_spec(nat_gateways="single"))
    verbs = [(a.verb, a.kind) for a in plan.actions]
    assert verbs.index(("delete", "nat-gateway")) < verbs.index(("wait", "nat-gateway")) < verbs.index(("delete", "elastic-ip"))
    plan.apply()
    assert inventory(ec2)["nats"] == 1 and inventory(ec2)["eips"] == 1
    assert network.plan_present(context(ec2, wait=False), make_spec(nat_gateways="single")).actions == []


@pytest.mark.parametrize("before", ["per_az", "single"])
def test_nat_gateways_to_none_is_refused_before_any_write(ec2, aws_calls, before):
    network.plan_present(context(ec2), make_spec(nat_gateways=before)).apply()
    del aws_calls[:]
    with pytest.raises(drift.DriftError) as refused:
        network.plan_present(context(ec2), make_spec(nat_gateways="none"))
    message = str(refused.value)
    assert message.startswith("cluster.network.nat_gateways: cluster capi-example has %d NAT gateway(s) (%s), but the spec says none"
                              % (3 if before == "per_az" else 1, before))
    assert "keep nat_gateways: %s" % before in message and drift.RECREATE in message
    assert aws_calls.writes() == []
    assert inventory(ec2)["nats"] == (3 if before == "per_az" else 1)


def test_none_to_single_adds_the_nat_gateway_in_place(ec2):
    network.plan_present(context(ec2), make_spec(nat_gateways="none")).apply()
    network.plan_present(context(ec2), make_spec(nat_gateways="single")).apply()
    assert inventory(ec2)["nats"] == 1
    for zone in ZONES:
        assert default_route(ec2, "capi-example-rt-private-" + zone)["NatGatewayId"].startswith("nat-")


def test_another_vpc_cidr_is_refused_before_any_write(ec2, aws_calls):
    network.plan_present(context(ec2), make_spec()).apply()
    del aws_calls[:]
    with pytest.raises(drift.DriftError) as refused:
        network.plan_present(context(ec2), make_spec(vpc_cidr="10.1.0.0/16"))
    assert str(refused.value).startswith("cluster.network.vpc_cidr: cluster capi-example's VPC vpc-")
    assert "is 10.0.0.0/16, not 10.1.0.0/16" in str(refused.value) and "keep vpc_cidr: 10.0.0.0/16" in str(refused.value)
    assert aws_calls.writes() == []


def test_a_zone_removed_is_refused_and_so_is_a_zone_added_the_vpc_has_no_room_for(ec2, aws_calls):
    network.plan_present(context(ec2), make_spec(zones=ZONES[:2], availability_zones=2)).apply()
    del aws_calls[:]
    with pytest.raises(drift.DriftError) as refused:
        network.plan_present(context(ec2), make_spec(zones=ZONES[:1], availability_zones=1))
    assert str(refused.value).startswith("cluster.network.availability_zones: cluster capi-example has subnets in %s, %s, but the "
                                         "spec gives %s" % (ZONES[0], ZONES[1], ZONES[0]))
    assert "list %s again" % ZONES[1] in str(refused.value)
    assert aws_calls.writes() == []
    # CAPA cuts the VPC for the zone count: a third zone's subnets overlap the two zones' ones.
    with pytest.raises(drift.DriftError) as refused:
        network.plan_present(context(ec2), make_spec())
    assert str(refused.value).startswith("cluster.network.availability_zones: adding %s needs subnets the VPC has no room for: "
                                         "capi-example-subnet-public-%s (10.0.32.0/20) overlaps capi-example-subnet-public-%s"
                                         % (ZONES[2], ZONES[2], ZONES[1]))
    assert aws_calls.writes() == []
    assert inventory(ec2)["subnets"] == 4


def test_dns_hostnames_turned_off_is_turned_on_again_and_only_it(ec2, aws_calls):
    spec = make_spec()
    plan = network.plan_present(context(ec2), spec)
    plan.apply()
    vpc_id = result_of(plan)["vpc_id"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    del aws_calls[:]
    network.plan_present(context(ec2), spec).apply()
    assert aws_calls.writes() == [("ec2", "ModifyVpcAttribute")]
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is True


def test_a_subnet_taken_by_another_route_table_is_taken_back(ec2):
    spec = make_spec()
    plan = network.plan_present(context(ec2), spec)
    plan.apply()
    result = result_of(plan)
    subnet = next(s for s in result["subnets"] if s["name"] == "capi-example-subnet-private-ap-northeast-2b")
    stray = ec2.create_route_table(VpcId=result["vpc_id"])["RouteTable"]["RouteTableId"]
    association = next(a for t in ec2.describe_route_tables()["RouteTables"] for a in t.get("Associations", [])
                       if a.get("SubnetId") == subnet["id"])
    ec2.replace_route_table_association(AssociationId=association["RouteTableAssociationId"], RouteTableId=stray)
    repair = network.plan_present(context(ec2), spec)
    assert [a.detail for a in repair.actions] == ["associate with capi-example-subnet-private-ap-northeast-2b"]
    repair.apply()
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet["id"]]}])["RouteTables"][0]
    assert naming.tags_to_dict(table["Tags"])["Name"] == "capi-example-rt-private-ap-northeast-2b"


def test_absent_without_wait_stops_after_the_nat_gateway_deletes_and_a_rerun_finishes(ec2):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    first = network.plan_absent(context(ec2, wait=False), spec)
    assert [(a.verb, a.kind) for a in first.actions[:3]] == [("delete", "nat-gateway")] * 3
    assert not [a for a in first.actions if a.kind in ("elastic-ip", "subnet", "vpc") or a.verb == "wait"]
    first.apply()
    second = network.plan_absent(context(ec2, wait=False), spec)
    assert [a.kind for a in second.actions] == ["elastic-ip"] * 3 + ["internet-gateway"] + ["subnet"] * 6 + ["vpc"]
    second.apply()
    assert inventory(ec2) == dict((key, 0) for key in FULL)


def test_byo_vpc_that_does_not_exist_fails_naming_the_field(ec2):
    spec = make_spec(vpc_id="vpc-0123456789abcdef0", subnet_ids=["subnet-0123456789abcdef0"])
    with pytest.raises(network.NetworkError) as caught:
        network.plan_present(context(ec2), spec)
    assert str(caught.value).startswith("cluster.network.vpc_id: vpc-0123456789abcdef0 does not exist in ap-northeast-2")


def test_byo_subnets_of_another_vpc_are_refused(ec2):
    mine = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    other = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    stranger = ec2.create_subnet(VpcId=other, CidrBlock="10.30.0.0/24", AvailabilityZone=ZONES[0])["Subnet"]["SubnetId"]
    spec = make_spec(vpc_id=mine, subnet_ids=[stranger])
    with pytest.raises(network.NetworkError) as caught:
        network.plan_present(context(ec2), spec)
    assert "cluster.network.subnet_ids: %s not in %s" % (stranger, mine) in str(caught.value)


# --- aws_ec2.eventually: the retry the network services rely on right after a create ---------

def _not_found(code):
    return AnsibleEC2Error(message="Failed", exception=ClientError({"Error": {"Code": code, "Message": "not yet"}}, "CreateRoute"))


def test_eventually_retries_only_ids_ec2_does_not_know_yet(monkeypatch):
    sleeps = []
    monkeypatch.setattr(aws_ec2.time, "sleep", sleeps.append)
    answers = [_not_found("InvalidRouteTableID.NotFound"), _not_found("InvalidGatewayID.NotFound"), "done"]

    def call(*args, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return (answer, args, kwargs)

    assert aws_ec2.eventually(call, "client", RouteTableId="rtb-1") == ("done", ("client",), {"RouteTableId": "rtb-1"})
    assert sleeps == [1, 2]


def test_eventually_gives_up_and_does_not_retry_real_errors(monkeypatch):
    monkeypatch.setattr(aws_ec2.time, "sleep", lambda seconds: None)
    calls = []

    def missing(*args):
        calls.append(args)
        raise _not_found("InvalidVpcID.NotFound")

    with pytest.raises(AnsibleEC2Error):
        aws_ec2.eventually(missing)
    assert len(calls) == len(aws_ec2.EVENTUAL_DELAYS) + 1

    def denied():
        calls.append("denied")
        raise _not_found("UnauthorizedOperation")

    del calls[:]
    with pytest.raises(AnsibleEC2Error):
        aws_ec2.eventually(denied)
    assert calls == ["denied"]


def _owned_machine_shutting_down(ec2, spec):
    """A machine of the cluster in a private subnet, which EC2 reports as shutting down (as after TerminateInstances
    on AWS, for a minute or two; moto terminates at once, so its state is set in moto's backend)."""
    from moto.ec2.models import ec2_backends  # pylint: disable=import-outside-toplevel

    subnet = next(s for s in ec2.describe_subnets()["Subnets"] if "private" in naming.tags_to_dict(s.get("Tags")).get("Name", ""))
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": naming.owner_tag(CLUSTER), "Value": "owned"}, {"Key": "Name", "Value": CLUSTER + "-md-0-abcde"}]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet["SubnetId"],
                                    TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"]
    for backend in ec2_backends.values():
        for region_backend in backend.values():
            for reservation in region_backend.reservations.values():
                for instance in reservation.instances:
                    if instance.id == instance_id:
                        instance._state.name = "shutting-down"  # pylint: disable=protected-access
                        instance._state.code = 32  # pylint: disable=protected-access
    return instance_id


def test_absent_waits_for_machines_still_shutting_down_before_the_first_delete(ec2, monkeypatch):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    instance_id = _owned_machine_shutting_down(ec2, spec)
    waited = []

    def wait_for_instances(_ec2, waiter_name, ids, timeout):
        # The groups and subnets go after the wait: AWS refuses to delete what an interface still uses. The NAT
        # gateways need no machine gone: they are deleted (minutes on AWS) while the machines terminate.
        assert [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
        assert {n["State"] for n in ec2.describe_nat_gateways()["NatGateways"]} <= {"deleting", "deleted"}
        waited.append((waiter_name, list(ids), timeout))
        ec2.terminate_instances(InstanceIds=ids)

    monkeypatch.setattr(aws_ec2, "wait_for_instances", wait_for_instances)
    plan = network.plan_absent(context(ec2, wait_timeout=900), spec)
    assert [(a.verb, a.kind) for a in plan.actions[:4]] == [("delete", "nat-gateway")] * 3 + [("wait", "ec2 instances terminated")]
    plan.apply()
    assert waited == [("instance_terminated", [instance_id], 900)]
    assert inventory(ec2) == dict((key, 0) for key in FULL)


def _balancer_interface(ec2, description="ELB net/capi-example-apiserver/50dc6c495c0c9188", requester_managed=True):
    """An interface as an NLB leaves it in a public subnet: AWS's (requester-managed), deleted minutes after the NLB."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    subnet = next(s for s in ec2.describe_subnets()["Subnets"] if "public" in naming.tags_to_dict(s.get("Tags")).get("Name", ""))
    interface_id = ec2.create_network_interface(SubnetId=subnet["SubnetId"], Description=description)["NetworkInterface"]["NetworkInterfaceId"]
    ec2_backends[DEFAULT_ACCOUNT_ID][REGION].get_network_interface(interface_id).requester_managed = requester_managed
    return interface_id


def test_absent_waits_for_the_interfaces_of_deleted_load_balancers_before_the_groups_and_subnets(ec2, monkeypatch):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    interface_id = _balancer_interface(ec2)
    waited = []

    def wait_for_network_interfaces_deleted(_ec2, ids, timeout):
        assert [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
        waited.append((list(ids), timeout))
        ec2.delete_network_interface(NetworkInterfaceId=interface_id)  # what AWS does on its own

    monkeypatch.setattr(aws_ec2, "wait_for_network_interfaces_deleted", wait_for_network_interfaces_deleted)
    plan = network.plan_absent(context(ec2, wait_timeout=900), spec)
    assert (plan.actions[3].verb, plan.actions[3].kind, plan.actions[3].name) == ("wait", "network-interface", interface_id)
    assert plan.actions[4].kind == "security-group"
    plan.apply()
    assert waited == [([interface_id], 900)]
    assert inventory(ec2) == dict((key, 0) for key in FULL)


def test_absent_without_wait_refuses_while_a_deleted_load_balancer_still_has_interfaces(ec2):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    interface_id = _balancer_interface(ec2)
    with pytest.raises(network.NetworkError, match="network interface %s of the deleted load balancer capi-example-apiserver" % interface_id):
        network.plan_absent(context(ec2, wait=False), spec)


def test_absent_refuses_an_interface_someone_made_to_look_like_a_balancer_s(ec2):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    interface_id = _balancer_interface(ec2, requester_managed=False)
    with pytest.raises(network.NetworkError, match="network interface %s .*not the cluster's" % interface_id):
        network.plan_absent(context(ec2), spec)


def test_waiting_for_interfaces_deleted_ends_when_they_are_gone_and_fails_at_the_timeout(ec2):
    from botocore.exceptions import WaiterError

    network.plan_present(context(ec2), make_spec()).apply()
    staying, going = _balancer_interface(ec2), _balancer_interface(ec2)
    ec2.delete_network_interface(NetworkInterfaceId=going)
    with pytest.raises(WaiterError):
        aws_ec2.wait_for_network_interfaces_deleted(ec2, [going, staying], 1)
    ec2.delete_network_interface(NetworkInterfaceId=staying)
    aws_ec2.wait_for_network_interfaces_deleted(ec2, [going, staying], 1)


def test_absent_without_wait_refuses_while_a_machine_is_shutting_down(ec2):
    spec = make_spec()
    network.plan_present(context(ec2), spec).apply()
    instance_id = _owned_machine_shutting_down(ec2, spec)
    with pytest.raises(network.NetworkError, match="still in use by instance %s" % instance_id):
        network.plan_absent(context(ec2, wait=False), spec)


# --- tag drift -------------------------------------------------------------------------------

def _all_owned_tags(ec2):
    """{resource id: tags} of everything the network made: VPC, subnets, route tables, gateway, NAT gateways, EIPs, groups."""
    found = {}
    for items, key in ((ec2.describe_vpcs()["Vpcs"], "VpcId"), (ec2.describe_subnets()["Subnets"], "SubnetId"),
                       (ec2.describe_route_tables()["RouteTables"], "RouteTableId"),
                       (ec2.describe_internet_gateways()["InternetGateways"], "InternetGatewayId"),
                       (ec2.describe_nat_gateways()["NatGateways"], "NatGatewayId"),
                       (ec2.describe_addresses()["Addresses"], "AllocationId"),
                       (ec2.describe_security_groups()["SecurityGroups"], "GroupId")):
        for item in owned(items):
            found[item[key]] = naming.tags_to_dict(item.get("Tags"))
    return found


def test_changed_additional_tags_reach_every_network_resource_in_one_write_each_way(ec2, aws_calls):
    network.plan_present(context(ec2), make_spec(additional_tags={"team": "infra", "cost": "a"})).apply()
    vpc_id = owned(ec2.describe_vpcs()["Vpcs"])[0]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "keep", "Value": "me"}])  # someone else's tag: never touched
    del aws_calls[:]

    spec = make_spec(additional_tags={"team": "platform", "owner": "x"})
    plan = network.plan_present(context(ec2), spec)
    tag_actions = [a for a in plan.as_list() if a["resource"].endswith("tags")]
    assert [a["detail"] for a in tag_actions] == [
        "set kubecluster.aws/managed-tags=owner,team, owner=x, team=platform (with 3 volume(s), interface(s) or address(es) tagged with them)",
        "remove cost (with 3 volume(s), interface(s) or address(es) tagged with them)"]
    plan.apply()

    assert aws_calls.writes() == [("ec2", "CreateTags"), ("ec2", "DeleteTags")]
    resources = _all_owned_tags(ec2)
    assert len(resources) == sum(FULL.values())
    for tags in resources.values():
        assert (tags["team"], tags["owner"], tags[naming.MANAGED_TAGS_TAG]) == ("platform", "x", "owner,team")
        assert "cost" not in tags
    assert resources[vpc_id]["keep"] == "me"
    del aws_calls[:]
    assert network.plan_present(context(ec2), spec).as_list() == []

    # No additional tags left: the keys and their record go, nothing else.
    network.plan_present(context(ec2), make_spec()).apply()
    for tags in _all_owned_tags(ec2).values():
        assert not {"team", "owner", naming.MANAGED_TAGS_TAG} & set(tags)
    assert _all_owned_tags(ec2)[vpc_id]["keep"] == "me"


def test_a_key_the_collection_did_not_set_is_never_removed(ec2):
    network.plan_present(context(ec2), make_spec(additional_tags={"team": "infra"})).apply()
    vpc_id = owned(ec2.describe_vpcs()["Vpcs"])[0]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "cost", "Value": "hand"}])
    network.plan_present(context(ec2), make_spec(additional_tags={"team": "infra", "cost": "spec"})).apply()
    network.plan_present(context(ec2), make_spec(additional_tags={"team": "infra"})).apply()
    # "cost" was the spec's once, so it is the collection's to remove: gone everywhere.
    assert not any("cost" in tags for tags in _all_owned_tags(ec2).values())
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "cost", "Value": "hand"}])
    assert network.plan_present(context(ec2), make_spec(additional_tags={"team": "infra"})).as_list() == []
