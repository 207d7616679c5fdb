"""status.py: the phase decision (table-driven, no AWS), grouping by owner, waiting, and the region reads against moto."""

import boto3
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import status

from helpers.aws import REGION


def machine(role="control-plane", state="running", reason=None, instance_id="i-1", name="c-control-plane-a"):
    return {"instance_id": instance_id, "name": name, "role": role, "state": state,
            "state_reason": {"code": reason, "message": "%s: details" % reason} if reason else None}


def nat(state="available", failure_message=None, nat_id="nat-1"):
    return {"id": nat_id, "state": state, "failure_message": failure_message}


def facts(**changes):
    """A provisioned cluster's facts with ``changes`` applied."""
    base = {
        "name": "c",
        "managed_vpc": True,
        "vpc_state": "available",
        "subnets": ["private", "public"],
        "security_groups": ["apiserver-lb", "bastion", "controlplane", "lb", "node"],
        "internet_gateway_attached": True,
        "other_resources": 3,
        "nat_gateways": [nat()],
        "load_balancer": {"name": "c-apiserver", "dns_name": "c-apiserver.elb.example", "state": "active"},
        "machines": [machine(), machine(role="node", instance_id="i-2", name="c-md-0-a")],
    }
    base.update(changes)
    return base


NOTHING = facts(managed_vpc=False, vpc_state=None, subnets=[], security_groups=[], internet_gateway_attached=None,
                other_resources=0, nat_gateways=[], load_balancer=None, machines=[])

PHASES = [
    # (case, facts, phase, words the failure message holds)
    ("nothing owned", NOTHING, "NotFound", None),
    ("only terminated machines are left", dict(NOTHING, machines=[machine(state="terminated", reason="Server.SpotInstanceTermination")]),
     "NotFound", None),
    ("only Elastic IPs", dict(NOTHING, other_resources=1), "Provisioning", None),
    ("VPC still pending", facts(vpc_state="pending"), "Provisioning", None),
    ("VPC without subnets", facts(subnets=[], security_groups=[], internet_gateway_attached=None, nat_gateways=[],
                                  load_balancer=None, machines=[]), "Provisioning", None),
    ("node security group missing", facts(security_groups=["controlplane"]), "Provisioning", None),
    ("managed VPC without internet gateway", facts(internet_gateway_attached=None), "Provisioning", None),
    ("internet gateway not attached", facts(internet_gateway_attached=False), "Provisioning", None),
    ("NAT gateway pending", facts(nat_gateways=[nat(), nat("pending", nat_id="nat-2")]), "Provisioning", None),
    ("no API load balancer yet", facts(load_balancer=None, machines=[]), "Provisioning", None),
    ("API load balancer without DNS name", facts(load_balancer={"name": "c-apiserver", "dns_name": None, "state": "provisioning"}),
     "Provisioning", None),
    ("everything ready", facts(), "Provisioned", None),
    ("no NAT gateways (nat mode none)", facts(nat_gateways=[]), "Provisioned", None),
    # An NLB has its DNS name at once but forwards nothing while provisioning: not provisioned yet.
    ("NLB still provisioning but has its DNS name",
     facts(load_balancer={"name": "c-apiserver", "dns_name": "x.elb.example", "state": "provisioning"}), "Provisioning", None),
    ("NLB active but impaired still serves",
     facts(load_balancer={"name": "c-apiserver", "dns_name": "x.elb.example", "state": "active_impaired"}), "Provisioned", None),
    ("machines still pending", facts(machines=[machine(state="pending")]), "Provisioned", None),
    ("no machines yet", facts(machines=[]), "Provisioned", None),
    ("bring-your-own VPC needs no gateways of its own", facts(managed_vpc=False, internet_gateway_attached=None, nat_gateways=[]),
     "Provisioned", None),
    ("scale-down: one shutting down next to running ones", facts(machines=[machine(), machine(state="shutting-down", instance_id="i-2")]),
     "Provisioned", None),
    ("scaled-down machine terminated through the API",
     facts(machines=[machine(), machine(state="terminated", reason=status.EXPECTED_TERMINATION, instance_id="i-2")]), "Provisioned", None),
    ("NAT gateway deleting", facts(nat_gateways=[nat("deleting")], machines=[]), "Deleting", None),
    ("every machine shutting down", facts(machines=[machine(state="shutting-down"), machine(state="shutting-down", instance_id="i-2")]),
     "Deleting", None),
    ("deleting wins over failed", facts(nat_gateways=[nat("deleting"), nat("failed", nat_id="nat-2")]), "Deleting", None),
    ("NAT gateway failed", facts(nat_gateways=[nat("failed", "Subnet has no route to an internet gateway")]), "Failed",
     ["NAT gateway nat-1 failed: Subnet has no route to an internet gateway"]),
    ("NAT gateway failed without a reason", facts(nat_gateways=[nat("failed")]), "Failed", ["nat-1 failed: AWS gave no reason"]),
    ("API load balancer failed", facts(load_balancer={"name": "c-apiserver", "dns_name": "x", "state": "failed"}), "Failed",
     ["API load balancer c-apiserver failed"]),
    ("control plane running without API load balancer", facts(load_balancer=None), "Failed",
     ["control-plane machines i-1 are running but the API load balancer c-apiserver does not exist"]),
    ("machine terminated by AWS", facts(machines=[machine(), machine(state="terminated", reason="Server.SpotInstanceTermination",
                                                                     instance_id="i-9", name="c-md-0-b")]),
     "Failed", ["instance i-9 (c-md-0-b) was terminated: Server.SpotInstanceTermination: details"]),
    ("two failures are both named", facts(load_balancer=None, nat_gateways=[nat("failed", "boom")]), "Failed",
     ["NAT gateway nat-1 failed: boom; control-plane machines i-1"]),
]


@pytest.mark.parametrize("case, given, phase, message", PHASES, ids=[case[0] for case in PHASES])
def test_cluster_phase(case, given, phase, message):
    got_phase, failure = status.cluster_phase(given)

    assert got_phase == phase, case
    if message is None:
        assert failure is None
    else:
        assert all(words in failure for words in message), failure


def test_waiting_for_names_the_infrastructure_then_machines_not_running():
    given = facts(nat_gateways=[nat("pending")], load_balancer=None,
                  machines=[machine(state="pending"), machine(state="terminated", reason=status.EXPECTED_TERMINATION, instance_id="i-2")])

    assert status.waiting_for(given) == ["NAT gateway nat-1 (pending)", "API load balancer c-apiserver",
                                         "machine c-control-plane-a (i-1, pending)"]
    assert status.waiting_for(facts()) == []


def test_waiting_for_names_every_long_operation_still_running_with_its_id_and_state():
    # What create_cluster.yml's one wait covers: NAT gateways, the NLB and the machines, started together.
    given = facts(nat_gateways=[nat(), nat("pending", nat_id="nat-2")],
                  load_balancer={"name": "c-apiserver", "dns_name": "x.elb.example", "state": "provisioning"},
                  machines=[machine(), machine(role="node", state="pending", instance_id="i-2", name="c-md-0-a")])

    assert status.waiting_for(given) == ["NAT gateway nat-2 (pending)", "API load balancer c-apiserver (provisioning)",
                                         "machine c-md-0-a (i-2, pending)"]
    assert status.cluster_phase(given) == ("Provisioning", None)


@pytest.mark.parametrize("given, settling", [
    (facts(), True),
    (facts(nat_gateways=[nat("pending")], machines=[machine(state="pending")],
           load_balancer={"name": "c-apiserver", "dns_name": "x.elb.example", "state": "provisioning"}), True),
    (facts(vpc_state="pending"), False),
    (facts(subnets=[]), False),
    (facts(internet_gateway_attached=False), False),
    (facts(load_balancer=None), False),
    (facts(load_balancer={"name": "c-apiserver", "dns_name": None, "state": "provisioning"}), False),
    (facts(nat_gateways=[nat("failed", "Gateway.NotAttached")]), False),
])
def test_a_cluster_settles_when_it_waits_only_for_what_aws_moves_on(given, settling):
    # What the one wait then reads again each poll: NAT gateways, machines, the load balancer (SETTLING_READS).
    assert status.settling(given) is settling


def test_waiting_for_a_pending_cluster_lists_what_the_network_lacks():
    assert status.waiting_for(dict(NOTHING, managed_vpc=True)) == [
        "VPC", "subnets", "security groups controlplane, node", "internet gateway", "API load balancer c-apiserver"]


# --- grouping ----------------------------------------------------------------------------

def test_owner_filters_select_one_cluster_or_any():
    assert status.owner_filters("capi-example") == [{"Name": "tag:sigs.k8s.io/cluster-api-provider-aws/cluster/capi-example", "Values": ["owned"]}]
    assert status.owner_filters() == [{"Name": "tag-key", "Values": ["sigs.k8s.io/cluster-api-provider-aws/cluster/*"]}]


def test_group_by_owner_counts_only_owned_tags():
    def tagged(**tags):
        return {"Tags": [{"Key": naming.OWNER_TAG_PREFIX + key if key != "Name" else key, "Value": value} for key, value in tags.items()]}

    a, b, shared, both, empty = tagged(a="owned"), tagged(b="owned"), tagged(a="shared"), tagged(a="owned", b="owned"), tagged(**{"": "owned"})

    groups = status.group_by_owner([a, b, shared, both, empty, {"Tags": []}, {}])

    assert dict(groups) == {"a": [a, both], "b": [b, both]}


# --- waiting -------------------------------------------------------------------------------

class Clock(object):
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def statuses(*phases_and_waiting):
    return [status.ClusterStatus({"name": "c%d" % i, "phase": phase}, waiting) for i, (phase, waiting) in enumerate(phases_and_waiting)]


def test_wait_until_ready_reads_until_every_cluster_is_ready():
    answers = iter([statuses(("Provisioning", ["VPC"]), ("Provisioned", [])),
                    statuses(("Provisioned", ["machine m (i-1, pending)"]), ("Provisioned", [])),
                    statuses(("Provisioned", []), ("Provisioned", []))])
    clock = Clock()

    last = status.wait_until_ready(lambda: next(answers), timeout=60, delay=5, clock=clock.time, sleep=clock.sleep)

    assert all(status.is_ready(s) for s in last)
    assert clock.sleeps == [5, 5]


def test_wait_until_ready_gives_up_at_the_deadline():
    clock = Clock()
    reads = []

    def read():
        reads.append(clock.now)
        return statuses(("Provisioning", ["API load balancer c-apiserver"]))

    last = status.wait_until_ready(read, timeout=12, delay=5, clock=clock.time, sleep=clock.sleep)

    assert reads == [0, 5, 10, 12], "the last sleep is cut to the deadline, and read once more there"
    assert last[0].waiting_for == ["API load balancer c-apiserver"]


def test_wait_until_ready_stops_on_a_failed_cluster():
    clock = Clock()

    last = status.wait_until_ready(lambda: statuses(("Provisioning", ["VPC"]), ("Failed", [])), timeout=60, delay=5,
                                   clock=clock.time, sleep=clock.sleep)

    assert clock.sleeps == [] and last[1].view["phase"] == "Failed"


def test_not_found_and_deleting_are_not_ready():
    assert not status.is_ready(statuses(("NotFound", []))[0])
    assert not status.is_ready(statuses(("Deleting", []))[0])
    assert status.is_ready(statuses(("Provisioned", []))[0])


# --- reading the region (moto) -------------------------------------------------------------------

@pytest.fixture
def clients(ec2):
    """ec2, elbv2 and elb clients as the module makes them."""
    return {
        "ec2": ec2,
        "elbv2": boto3.client("elbv2", region_name=REGION),
        "elb": RetryingBotoClientWrapper(boto3.client("elb", region_name=REGION), AWSRetry.jittered_backoff()),
    }


def tags_for(cluster, name, role):
    return [{"Key": key, "Value": value} for key, value in naming.resource_tags(cluster, name, role).items()]


def owned_vpc(ec2, cluster, cidr):
    tags = tags_for(cluster, naming.vpc_name(cluster), naming.ROLE_COMMON)
    vpc_id = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}])["Vpc"]["VpcId"]
    return vpc_id, ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr.replace("/16", "/24"))["Subnet"]["SubnetId"]


def nlb(elbv2, subnet_id, name, tags):
    return elbv2.create_load_balancer(Name=name, Subnets=[subnet_id], Type="network", Tags=tags)["LoadBalancers"][0]


def test_survey_of_many_clusters_reads_each_type_once(clients, aws_calls):
    ec2 = clients["ec2"]
    for index, cluster in enumerate(("a", "b", "c")):
        _vpc, subnet = owned_vpc(ec2, cluster, "10.%d.0.0/16" % index)
        nlb(clients["elbv2"], subnet, naming.load_balancer_name(cluster), tags_for(cluster, "lb", naming.ROLE_APISERVER))
    del aws_calls[:]

    found = status.survey(ec2, clients["elbv2"], clients["elb"], REGION)

    assert [s.view["name"] for s in found] == ["a", "b", "c"]
    assert all(s.view["load_balancer"]["type"] == "nlb" for s in found)
    assert not aws_calls.writes()
    # every cluster has its NLB: the classic ELB API is not asked
    assert sorted(operation for _service, operation in aws_calls) == sorted([
        "DescribeVpcs", "DescribeSecurityGroups", "DescribeInternetGateways", "DescribeNatGateways", "DescribeAddresses",
        "DescribeInstances", "DescribeSubnets", "DescribeRouteTables", "DescribeLoadBalancers", "DescribeTags"])


def test_classic_balancers_are_asked_for_the_clusters_without_an_nlb(clients, aws_calls):
    _vpc, subnet = owned_vpc(clients["ec2"], "a", "10.0.0.0/16")
    nlb(clients["elbv2"], subnet, "a-apiserver", tags_for("a", "a-apiserver", naming.ROLE_APISERVER))
    _vpc, subnet = owned_vpc(clients["ec2"], "b", "10.1.0.0/16")
    listener = [{"Protocol": "TCP", "LoadBalancerPort": 6443, "InstancePort": 6443}]
    clients["elb"].create_load_balancer(LoadBalancerName="b-apiserver", Listeners=listener, Subnets=[subnet],
                                        Tags=tags_for("b", "b-apiserver", naming.ROLE_APISERVER))
    asked = []
    clients["elb"].meta.events.register("provide-client-params", lambda params, model, **kwargs: asked.append((model.name, params.get("LoadBalancerNames"))))

    found = status.read_api_load_balancers(clients["elbv2"], clients["elb"], ["a", "b"])

    assert [(name, [lb["type"] for lb in views]) for name, views in sorted(found.items())] == [("a", ["nlb"]), ("b", ["classic"])]
    assert asked == [("DescribeLoadBalancers", ["b-apiserver"]), ("DescribeTags", ["b-apiserver"])]


def test_api_load_balancer_of_one_cluster_is_asked_for_by_name(clients):
    _vpc, subnet = owned_vpc(clients["ec2"], "a", "10.0.0.0/16")
    nlb(clients["elbv2"], subnet, "a-apiserver", tags_for("a", "a-apiserver", naming.ROLE_APISERVER))
    nlb(clients["elbv2"], subnet, "other", [{"Key": "Name", "Value": "other"}])
    asked = []
    clients["elbv2"].meta.events.register("provide-client-params", lambda params, model, **kwargs: asked.append((model.name, params.get("Names"))))

    found = status.read_api_load_balancers(clients["elbv2"], clients["elb"], ["a"])

    assert asked == [("DescribeLoadBalancers", ["a-apiserver"]), ("DescribeTags", None)]
    assert [lb["name"] for lb in found["a"]] == ["a-apiserver"]


def test_missing_api_load_balancer_reads_as_none(clients):
    assert status.read_api_load_balancers(clients["elbv2"], clients["elb"], ["a"]) == {}
    assert status.read_api_load_balancers(clients["elbv2"], clients["elb"], []) == {}


def test_balancer_name_shared_by_two_clusters_goes_to_its_owner(clients):
    # CAPA turns "." into "-" in balancer names, so a.b and a-b would share one.
    _vpc, subnet = owned_vpc(clients["ec2"], "a-b", "10.0.0.0/16")
    assert naming.load_balancer_name("a.b") == naming.load_balancer_name("a-b")
    nlb(clients["elbv2"], subnet, "a-b-apiserver", tags_for("a-b", "a-b-apiserver", naming.ROLE_APISERVER))

    found = status.read_api_load_balancers(clients["elbv2"], clients["elb"], ["a.b", "a-b"])

    assert list(found) == ["a-b"]


def test_classic_balancer_without_owner_tag_is_not_the_clusters(clients):
    _vpc, subnet = owned_vpc(clients["ec2"], "a", "10.0.0.0/16")
    listener = [{"Protocol": "TCP", "LoadBalancerPort": 6443, "InstancePort": 6443}]
    clients["elb"].create_load_balancer(LoadBalancerName="a-apiserver", Listeners=listener, Subnets=[subnet],
                                        Tags=[{"Key": naming.owner_tag("a"), "Value": naming.SHARED}])

    assert status.read_api_load_balancers(clients["elbv2"], clients["elb"], ["a"]) == {}


def test_survey_of_a_named_cluster_ignores_what_others_own(clients):
    ec2 = clients["ec2"]
    vpc_a, _subnet = owned_vpc(ec2, "a", "10.0.0.0/16")
    owned_vpc(ec2, "b", "10.1.0.0/16")

    found = status.survey(ec2, clients["elbv2"], clients["elb"], REGION, "a")

    assert len(found) == 1
    view = found[0].view
    assert (view["name"], view["vpc_id"], view["counts"]["vpcs"]) == ("a", vpc_a, 1)
    assert view["subnets"] == [], "the untagged subnet in a's VPC is not a's"
    assert found[0].waiting_for[:2] == ["subnets", "security groups controlplane, node"]
    assert view["infrastructure_waiting_for"] == ["subnets", "security groups controlplane, node", "internet gateway",
                                                  "API load balancer a-apiserver"], "what keeps it from Provisioned, for its condition"
