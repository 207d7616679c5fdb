"""loadbalancer.py: the pure decisions, and the reads that must be batched, against moto."""

import boto3
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from ansible_collections.kubecluster.aws.plugins.module_utils import loadbalancer
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve

from helpers.aws import CLUSTER, KUBERNETES_VERSION, REGION


def subnet(subnet_id, role, zone):
    return {"id": subnet_id, "role": role, "availability_zone": zone}


SUBNETS = [
    subnet("subnet-pub-a", naming.ROLE_PUBLIC, "ap-northeast-2a"),
    subnet("subnet-pub-b", naming.ROLE_PUBLIC, "ap-northeast-2b"),
    subnet("subnet-pub-a2", naming.ROLE_PUBLIC, "ap-northeast-2a"),
    subnet("subnet-priv-b", naming.ROLE_PRIVATE, "ap-northeast-2b"),
    subnet("subnet-priv-a", naming.ROLE_PRIVATE, "ap-northeast-2a"),
]


# --- pure decisions ----------------------------------------------------------------------

def test_internet_facing_balancer_takes_one_public_subnet_per_zone():
    assert loadbalancer.balancer_subnet_ids(SUBNETS, "internet-facing") == ["subnet-pub-a", "subnet-pub-b"]


def test_internal_balancer_takes_private_subnets():
    assert loadbalancer.balancer_subnet_ids(SUBNETS, "internal") == ["subnet-priv-a", "subnet-priv-b"]


def test_internal_balancer_falls_back_to_public_subnets_without_private_ones():
    public_only = [s for s in SUBNETS if s["role"] == naming.ROLE_PUBLIC]
    assert loadbalancer.balancer_subnet_ids(public_only, "internal") == ["subnet-pub-a", "subnet-pub-b"]


def test_https_health_check_probes_readyz_and_tcp_has_no_path():
    https = loadbalancer.nlb_health_check("HTTPS")
    tcp = loadbalancer.nlb_health_check("TCP")
    assert https["HealthCheckPath"] == "/readyz" and "HealthCheckPath" not in tcp
    for check in (https, tcp):
        assert (check["HealthCheckPort"], check["HealthCheckIntervalSeconds"], check["HealthCheckTimeoutSeconds"],
                check["HealthyThresholdCount"], check["UnhealthyThresholdCount"]) == ("6443", 5, 4, 2, 6)
    assert loadbalancer.classic_health_check("HTTPS")["Target"] == "HTTPS:6443/readyz"
    assert loadbalancer.classic_health_check("TCP")["Target"] == "TCP:6443"


def test_target_changes_register_running_and_deregister_the_rest():
    changes = loadbalancer.target_changes(running=["i-1", "i-2"], pending=["i-3"], registered=["i-2", "i-9"], wait_for_targets=True)
    assert changes.register == ["i-1", "i-3"]
    assert changes.deregister == ["i-9"]
    assert changes.wait == ["i-3"]
    assert changes.after == ["i-1", "i-2", "i-3"]


def test_target_changes_leave_pending_machines_for_later_without_waiting():
    changes = loadbalancer.target_changes(running=["i-1"], pending=["i-3"], registered=["i-3"], wait_for_targets=False)
    assert changes.register == ["i-1"]
    assert changes.deregister == []  # registered while starting: not ours to remove
    assert changes.wait == []
    assert changes.after == ["i-1", "i-3"]


def test_target_changes_are_empty_when_everything_matches():
    assert loadbalancer.target_changes(["i-1"], [], ["i-1"], True) == loadbalancer.TargetChanges([], [], [], ["i-1"])


@pytest.mark.parametrize("actions, expected", [
    ([{"Type": "forward", "TargetGroupArn": "tg-1"}], ["tg-1"]),
    ([{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "tg-1", "Weight": 1}]}}], ["tg-1"]),
    ([{"Type": "forward", "TargetGroupArn": "tg-1"}, {"Type": "forward", "TargetGroupArn": "tg-2"}], ["tg-1", "tg-2"]),
    ([{"Type": "fixed-response"}], [None]),
])
def test_forwarded_groups_reads_both_forms_of_forward(actions, expected):
    assert loadbalancer._forwarded_groups({"DefaultActions": actions}) == expected  # pylint: disable=protected-access


def _found(classic=None, nlb=None):
    return {"classic": classic, "nlb": nlb, "target_group": None, "tags": {}}


def test_type_change_is_refused_with_the_field_and_the_fix():
    found = _found(classic={"LoadBalancerName": "x-apiserver", "Scheme": "internet-facing"})
    with pytest.raises(loadbalancer.LoadBalancerError) as error:
        loadbalancer.refuse_immutable_changes(found, {"type": "nlb", "scheme": "internet-facing"}, "x-apiserver")
    message = str(error.value)
    assert message.startswith("cluster.network.api_load_balancer.type:")
    assert "classic ELB" in message and "keep type: classic" in message and "state: absent" in message and "CAPA#2608" in message


def test_scheme_change_is_refused_with_the_field_and_the_fix():
    found = _found(nlb={"LoadBalancerName": "x-apiserver", "Type": "network", "Scheme": "internal"})
    with pytest.raises(loadbalancer.LoadBalancerError) as error:
        loadbalancer.refuse_immutable_changes(found, {"type": "nlb", "scheme": "internet-facing"}, "x-apiserver")
    assert str(error.value).startswith("cluster.network.api_load_balancer.scheme:")
    assert "keep scheme: internal" in str(error.value)


def test_matching_type_and_scheme_pass():
    found = _found(nlb={"LoadBalancerName": "x-apiserver", "Type": "network", "Scheme": "internal"})
    loadbalancer.refuse_immutable_changes(found, {"type": "nlb", "scheme": "internal"}, "x-apiserver")
    loadbalancer.refuse_immutable_changes(_found(), {"type": "classic", "scheme": "internal"}, "x-apiserver")


# --- batched tag reads, against moto -------------------------------------------------------

@pytest.fixture
def clients(moto_aws):
    retrying = AWSRetry.jittered_backoff()
    # As Context.from_module makes them (not helpers.aws.context's plain clients): clients that take aws_retry=True.
    return Context(lambda service: RetryingBotoClientWrapper(boto3.client(service, region_name=REGION), retrying), REGION)


def count_calls(client, event):
    """Record the parameters of every call of one operation on a (wrapped) boto3 client."""
    seen = []
    getattr(client, "client", client).meta.events.register("provide-client-params." + event, lambda params, **_: seen.append(params))
    return seen


def _vpc_and_subnets(ec2):
    vpc_id = ec2.create_vpc(CidrBlock="10.1.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [
        {"Key": k, "Value": v} for k, v in naming.resource_tags(CLUSTER, naming.vpc_name(CLUSTER), naming.ROLE_COMMON).items()]}])["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.1.%d.0/24" % i, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate(["ap-northeast-2a", "ap-northeast-2b"])]
    return vpc_id, subnets


def test_absent_reads_service_balancer_tags_at_most_twenty_at_a_time(clients):
    vpc_id, subnets = _vpc_and_subnets(clients.ec2)
    ccm_tags = [{"Key": naming.cloud_provider_tag(CLUSTER), "Value": "owned"}]
    for index in range(23):
        clients.elb.create_load_balancer(LoadBalancerName="svc-%02d" % index, Subnets=subnets, Tags=ccm_tags, Listeners=[
            {"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}])
    for index in range(21):
        clients.elbv2.create_target_group(Name="svc-tg-%02d" % index, Protocol="TCP", Port=30080, VpcId=vpc_id, Tags=ccm_tags)
    classic_tags = count_calls(clients.elb, "elastic-load-balancing.DescribeTags")
    v2_tags = count_calls(clients.elbv2, "elastic-load-balancing-v2.DescribeTags")

    plan = loadbalancer.plan_absent(clients, resolve({"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION}))

    assert [len(call["LoadBalancerNames"]) for call in classic_tags] == [20, 3]
    assert [len(call["ResourceArns"]) for call in v2_tags] == [20, 1]
    deletes = [(a.kind, a.name) for a in plan.actions if a.verb == "delete"]
    assert len([d for d in deletes if d[0] == "load balancer"]) == 23
    assert len([d for d in deletes if d[0] == "target group"]) == 21


def test_absent_leaves_balancers_in_other_vpcs_alone_even_when_tagged_for_the_cluster_name(clients):
    _vpc_and_subnets(clients.ec2)
    other_vpc = clients.ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    other = [clients.ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.2.%d.0/24" % i, AvailabilityZone=zone)["Subnet"]["SubnetId"]
             for i, zone in enumerate(["ap-northeast-2a", "ap-northeast-2b"])]
    clients.elb.create_load_balancer(LoadBalancerName="elsewhere", Subnets=other, Tags=[
        {"Key": naming.cloud_provider_tag(CLUSTER), "Value": "owned"}], Listeners=[
        {"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}])

    plan = loadbalancer.plan_absent(clients, resolve({"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION}))

    assert plan.actions == []
