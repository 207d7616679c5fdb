"""kubecluster.aws.apiserver_lb against moto, in process.

The network is made here directly with boto3, tagged the way cluster_network tags it,
so these tests depend only on lookup.py's contract, not on cluster_network.
"""

import copy

import boto3
import botocore.client
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from helpers.aws import AMI, CLUSTER, KUBERNETES_VERSION, REGION, ZONES
from helpers.module_runner import run_module

LB_NAME = naming.load_balancer_name(CLUSTER)
TG_NAME = naming.target_group_name(CLUSTER)
UNKNOWN = "(known after apply)"
SPEC = {
    "name": CLUSTER,
    "region": REGION,
    "kubernetes_version": KUBERNETES_VERSION,
    "network": {"availability_zones": ZONES},
}


def spec(**api_load_balancer):
    out = copy.deepcopy(SPEC)
    out["network"]["api_load_balancer"] = api_load_balancer
    return out


def tag_spec(resource_type, tags):
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def written(aws_calls):
    """The write operations among the recorded calls, sorted."""
    return sorted(operation for _service, operation in aws_calls.writes())


def count(aws_calls, operation):
    return len([call for call in aws_calls if call[1] == operation])


@pytest.fixture
def aws(ec2):
    return {"ec2": ec2, "elb": boto3.client("elb", region_name=REGION), "elbv2": boto3.client("elbv2", region_name=REGION)}


def make_network(ec2, cluster=CLUSTER):
    """A VPC, a public and a private subnet per zone and the apiserver-lb group, tagged as cluster_network tags them."""
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=tag_spec(
        "vpc", naming.resource_tags(cluster, naming.vpc_name(cluster), naming.ROLE_COMMON)))["Vpc"]["VpcId"]
    subnets = {naming.ROLE_PUBLIC: [], naming.ROLE_PRIVATE: []}
    for index, zone in enumerate(ZONES):
        for offset, role in ((0, naming.ROLE_PUBLIC), (10, naming.ROLE_PRIVATE)):
            tags = naming.resource_tags(cluster, naming.subnet_name(cluster, role, zone), role, cloud_provider=True)
            subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.%d.0/24" % (index + offset), AvailabilityZone=zone,
                                       TagSpecifications=tag_spec("subnet", tags))["Subnet"]
            subnets[role].append(subnet["SubnetId"])
    group_id = ec2.create_security_group(
        GroupName=naming.security_group_name(cluster, naming.SG_APISERVER_LB), VpcId=vpc_id,
        Description=naming.security_group_description(cluster, naming.SG_APISERVER_LB),
        TagSpecifications=tag_spec("security-group", naming.resource_tags(
            cluster, naming.security_group_name(cluster, naming.SG_APISERVER_LB), naming.SG_APISERVER_LB)))["GroupId"]
    return {"vpc_id": vpc_id, "public": subnets[naming.ROLE_PUBLIC], "private": subnets[naming.ROLE_PRIVATE], "sg": group_id}


def launch(ec2, subnet_id, role=naming.ROLE_CONTROL_PLANE, cluster=CLUSTER, owned=True):
    if owned:
        tags = naming.resource_tags(cluster, "%s-%s" % (cluster, role), role, cloud_provider=True)
    else:
        tags = {"Name": "look-alike", naming.ROLE_TAG: role}
    reservation = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.large", SubnetId=subnet_id,
                                    TagSpecifications=tag_spec("instance", tags))
    return reservation["Instances"][0]["InstanceId"]


def run(args=None, check_mode=False, diff=False, **options):
    payload = {"cluster": args if args is not None else spec()}
    payload.update(options)
    return run_module("apiserver_lb", payload, check_mode=check_mode, diff=diff)


def only_nlb(elbv2):
    balancers = elbv2.describe_load_balancers(Names=[LB_NAME])["LoadBalancers"]
    assert len(balancers) == 1
    return balancers[0]


def only_target_group(elbv2):
    groups = elbv2.describe_target_groups(Names=[TG_NAME])["TargetGroups"]
    assert len(groups) == 1
    return groups[0]


def tags_of(elbv2, arn):
    return naming.tags_to_dict(elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"])


def attributes(answer):
    return dict((a["Key"], a["Value"]) for a in answer["Attributes"])


def registered(elbv2, group_arn):
    return sorted(d["Target"]["Id"] for d in elbv2.describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"])


# --- NLB ---------------------------------------------------------------------------------

def test_nlb_create_builds_capas_balancer(aws, aws_calls):
    net = make_network(aws["ec2"])
    cp = launch(aws["ec2"], net["private"][0])

    result, failed = run()

    assert not failed, result
    assert result["changed"] is True
    balancer = only_nlb(aws["elbv2"])
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internet-facing")
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(net["public"])
    assert balancer["SecurityGroups"] == [net["sg"]]
    assert tags_of(aws["elbv2"], balancer["LoadBalancerArn"]) == naming.resource_tags(CLUSTER, LB_NAME, naming.ROLE_APISERVER)
    assert attributes(aws["elbv2"].describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"]))["load_balancing.cross_zone.enabled"] == "false"

    group = only_target_group(aws["elbv2"])
    assert (group["Protocol"], group["Port"], group["TargetType"], group["VpcId"]) == ("TCP", 6443, "instance", net["vpc_id"])
    assert (group["HealthCheckProtocol"], group["HealthCheckPort"], group["HealthCheckPath"]) == ("HTTPS", "6443", "/readyz")
    assert (group["HealthCheckIntervalSeconds"], group["HealthCheckTimeoutSeconds"]) == (5, 4)
    assert (group["HealthyThresholdCount"], group["UnhealthyThresholdCount"]) == (2, 6)
    assert tags_of(aws["elbv2"], group["TargetGroupArn"])[naming.owner_tag(CLUSTER)] == "owned"
    group_attributes = attributes(aws["elbv2"].describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"]))
    assert group_attributes["preserve_client_ip.enabled"] == "false"
    assert group_attributes["target_health_state.unhealthy.connection_termination.enabled"] == "false"
    assert group_attributes["target_health_state.unhealthy.draining_interval_seconds"] == "300"

    listeners = aws["elbv2"].describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [(l["Protocol"], l["Port"], l["DefaultActions"][0]["TargetGroupArn"]) for l in listeners] == \
        [("TCP", 6443, group["TargetGroupArn"])]
    assert registered(aws["elbv2"], group["TargetGroupArn"]) == [cp]

    assert result["load_balancer"] == {
        "name": LB_NAME, "type": "nlb", "scheme": "internet-facing", "arn": balancer["LoadBalancerArn"],
        "dns_name": balancer["DNSName"], "control_plane_endpoint": balancer["DNSName"] + ":6443",
        "target_group_arn": group["TargetGroupArn"], "security_group_ids": [net["sg"]], "subnet_ids": net["public"],
        "targets": [cp],
    }
    assert [(a["action"], a["resource"]) for a in result["plan"]] == [
        ("create", "target group"), ("update", "target group attributes"), ("create", "load balancer"),
        ("update", "load balancer attributes"), ("create", "listener"), ("create", "targets")]


def test_rerun_changes_nothing_and_makes_no_write_call(aws, aws_calls):
    net = make_network(aws["ec2"])
    launch(aws["ec2"], net["private"][0])
    first = run()[0]
    aws_calls.clear()

    second, failed = run()

    assert not failed, second
    assert second["changed"] is False
    assert second["plan"] == []
    assert aws_calls.writes() == []
    assert count(aws_calls, "DescribeInstances") == 1
    # an NLB cluster's rerun does not ask the classic ELB API
    assert [operation for service, operation in aws_calls if service == "elb"] == []
    assert second["load_balancer"] == first["load_balancer"]


def test_check_mode_returns_the_plan_and_creates_nothing(aws, aws_calls):
    make_network(aws["ec2"])
    aws_calls.clear()

    result, failed = run(check_mode=True)

    assert not failed, result
    assert result["changed"] is True
    assert ("create", "load balancer", LB_NAME) in [(a["action"], a["resource"], a["name"]) for a in result["plan"]]
    assert result["load_balancer"]["dns_name"] == UNKNOWN
    assert result["load_balancer"]["control_plane_endpoint"] == UNKNOWN
    assert result["load_balancer"]["arn"] == UNKNOWN
    assert aws_calls.writes() == []
    assert aws["elbv2"].describe_load_balancers()["LoadBalancers"] == []
    assert aws["elbv2"].describe_target_groups()["TargetGroups"] == []


def test_check_mode_plans_into_a_network_not_made_yet(aws, aws_calls):
    result, failed = run(check_mode=True)

    assert not failed, result
    assert result["load_balancer"]["subnet_ids"] == [UNKNOWN]
    assert result["load_balancer"]["security_group_ids"] == [UNKNOWN]
    assert aws_calls.writes() == []


def test_real_run_without_network_fails_before_any_write(aws, aws_calls):
    result, failed = run()

    assert failed
    assert "cluster.network" in result["msg"] and "kubecluster.aws.cluster_network" in result["msg"]
    assert aws_calls.writes() == []


def test_diff_shows_the_plan(aws):
    make_network(aws["ec2"])

    result, failed = run(check_mode=True, diff=True)

    assert not failed, result
    prepared = result["diff"]["prepared"]
    assert "cluster %s" % CLUSTER in prepared
    assert "+ load balancer %s (nlb internet-facing" % LB_NAME in prepared
    assert "+ target group %s (TCP 6443, health check HTTPS:6443/readyz every 5s, timeout 4s" % TG_NAME in prepared
    assert "preserve_client_ip.enabled=false" in prepared

    run()
    again = run(diff=True)[0]
    assert again["diff"]["prepared"].endswith("No changes: the AWS resources match the spec.\n")


def test_internal_scheme_uses_private_subnets(aws):
    net = make_network(aws["ec2"])

    result, failed = run(spec(scheme="internal", health_check_protocol="TCP", cross_zone=True))

    assert not failed, result
    balancer = only_nlb(aws["elbv2"])
    assert balancer["Scheme"] == "internal"
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(net["private"])
    assert result["load_balancer"]["subnet_ids"] == net["private"]
    group = only_target_group(aws["elbv2"])
    assert group["HealthCheckProtocol"] == "TCP"
    assert attributes(aws["elbv2"].describe_load_balancer_attributes(
        LoadBalancerArn=balancer["LoadBalancerArn"]))["load_balancing.cross_zone.enabled"] == "true"


def test_drift_in_health_check_attributes_and_listener_is_fixed(aws, aws_calls):
    make_network(aws["ec2"])
    run()
    elbv2 = aws["elbv2"]
    balancer, group = only_nlb(elbv2), only_target_group(elbv2)
    elbv2.modify_target_group(TargetGroupArn=group["TargetGroupArn"], HealthCheckIntervalSeconds=30, UnhealthyThresholdCount=3)
    elbv2.modify_target_group_attributes(TargetGroupArn=group["TargetGroupArn"],
                                         Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}])
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=balancer["LoadBalancerArn"],
                                          Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    listener = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"][0]
    other = elbv2.create_target_group(Name="stray", Protocol="TCP", Port=80, VpcId=group["VpcId"])["TargetGroups"][0]
    elbv2.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[{"Type": "forward", "TargetGroupArn": other["TargetGroupArn"]}])
    aws_calls.clear()

    result, failed = run()

    assert not failed, result
    assert sorted((a["action"], a["resource"]) for a in result["plan"]) == [
        ("update", "listener"), ("update", "load balancer attributes"), ("update", "target group attributes"),
        ("update", "target group health check")]
    assert written(aws_calls) == ["ModifyListener", "ModifyLoadBalancerAttributes", "ModifyTargetGroup", "ModifyTargetGroupAttributes"]
    group = only_target_group(elbv2)
    assert (group["HealthCheckIntervalSeconds"], group["UnhealthyThresholdCount"]) == (5, 6)
    listener = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"][0]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    again = run()[0]
    assert again["changed"] is False


def test_a_missing_listener_and_a_lost_subnet_converge_on_rerun(aws, aws_calls):
    net = make_network(aws["ec2"])
    run()
    elbv2 = aws["elbv2"]
    arn = only_nlb(elbv2)["LoadBalancerArn"]
    elbv2.delete_listener(ListenerArn=elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"][0]["ListenerArn"])
    elbv2.set_subnets(LoadBalancerArn=arn, Subnets=net["public"][:2])
    aws_calls.clear()

    result, failed = run()

    assert not failed, result
    assert [(a["action"], a["resource"]) for a in result["plan"]] == [("update", "load balancer subnets"), ("create", "listener")]
    assert written(aws_calls) == ["CreateListener", "SetSubnets"]
    assert sorted(z["SubnetId"] for z in only_nlb(elbv2)["AvailabilityZones"]) == sorted(net["public"])
    assert [l["Port"] for l in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]] == [6443]
    assert run()[0]["changed"] is False


def test_running_control_plane_is_registered_and_the_rest_deregistered(aws, aws_calls):
    net = make_network(aws["ec2"])
    ec2, elbv2 = aws["ec2"], aws["elbv2"]
    first = launch(ec2, net["private"][0])
    second = launch(ec2, net["private"][1])
    third = launch(ec2, net["private"][2])
    worker = launch(ec2, net["private"][0], role=naming.ROLE_NODE)
    look_alike = launch(ec2, net["private"][0], owned=False)

    result, failed = run()

    assert not failed, result
    group_arn = result["load_balancer"]["target_group_arn"]
    assert registered(elbv2, group_arn) == sorted([first, second, third])
    assert result["load_balancer"]["targets"] == sorted([first, second, third])
    assert worker not in result["load_balancer"]["targets"] and look_alike not in result["load_balancer"]["targets"]

    # Someone registers a machine that is not the cluster's; one control-plane machine is
    # stopped and another terminated (which AWS, and moto, deregister on their own).
    elbv2.register_targets(TargetGroupArn=group_arn, Targets=[{"Id": look_alike, "Port": 6443}])
    ec2.stop_instances(InstanceIds=[second])
    ec2.terminate_instances(InstanceIds=[third])
    aws_calls.clear()

    result, failed = run()

    assert not failed, result
    assert [(a["action"], a["resource"], a["name"]) for a in result["plan"]] == [
        ("delete", "targets", ", ".join(sorted([look_alike, second])))]
    assert count(aws_calls, "DeregisterTargets") == 1 and len(aws_calls.writes()) == 1
    assert registered(elbv2, group_arn) == [first]
    assert result["load_balancer"]["targets"] == [first]


def _set_state(instance_id, name, code):
    instance = ec2_backends[DEFAULT_ACCOUNT_ID][REGION].get_instance(instance_id)
    instance._state.name = name  # pylint: disable=protected-access
    instance._state.code = code  # pylint: disable=protected-access


def test_pending_control_plane_is_waited_for_once_then_registered(aws, monkeypatch):
    net = make_network(aws["ec2"])
    pending = launch(aws["ec2"], net["private"][0])
    _set_state(pending, "pending", 0)
    original = botocore.client.BaseClient._make_api_call
    waited = []

    def boot_when_waited_for(client, operation_name, api_params):
        # moto starts instances running; the waiter's first look sees this one come up.
        if operation_name == "DescribeInstances" and api_params.get("InstanceIds") == [pending]:
            waited.append(pending)
            _set_state(pending, "running", 16)
        return original(client, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", boot_when_waited_for)

    result, failed = run()

    assert not failed, result
    assert waited == [pending]
    assert [(a["action"], a["resource"]) for a in result["plan"]][-2:] == [("wait", "instances"), ("create", "targets")]
    assert registered(aws["elbv2"], result["load_balancer"]["target_group_arn"]) == [pending]


def test_pending_control_plane_is_left_for_later_without_wait_for_targets(aws):
    net = make_network(aws["ec2"])
    pending = launch(aws["ec2"], net["private"][0])
    _set_state(pending, "pending", 0)

    result, failed = run(wait_for_targets=False)

    assert not failed, result
    assert "wait" not in [a["action"] for a in result["plan"]]
    assert result["load_balancer"]["targets"] == []
    assert registered(aws["elbv2"], result["load_balancer"]["target_group_arn"]) == []


# --- exclude_machines: a control-plane machine about to be removed ---------------------------

def launch_named(ec2, subnet_id, name, role=naming.ROLE_CONTROL_PLANE):
    tags = naming.resource_tags(CLUSTER, name, role, cloud_provider=True)
    return ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet_id,
                             TagSpecifications=tag_spec("instance", tags))["Instances"][0]["InstanceId"]


def test_exclude_machines_deregisters_them_by_name_or_id_and_keeps_them_out(aws, aws_calls):
    net = make_network(aws["ec2"])
    first = launch_named(aws["ec2"], net["private"][0], "capi-example-control-plane-aaaaa")
    second = launch_named(aws["ec2"], net["private"][1], "capi-example-control-plane-bbbbb")
    third = launch_named(aws["ec2"], net["private"][2], "capi-example-control-plane-ccccc")
    created, failed = run()
    assert not failed, created
    group_arn = created["load_balancer"]["target_group_arn"]
    assert registered(aws["elbv2"], group_arn) == sorted([first, second, third])
    aws_calls.clear()

    result, failed = run(exclude_machines=["capi-example-control-plane-bbbbb", third])

    assert not failed, result
    assert [(a["action"], a["resource"], a["name"]) for a in result["plan"]] == [
        ("delete", "targets", ", ".join(sorted([second, third])))]
    assert written(aws_calls) == ["DeregisterTargets"]
    assert result["load_balancer"]["targets"] == [first]
    # Not registered again while excluded (moto drops deregistered targets at once; AWS lists them draining).
    aws_calls.clear()
    again, failed = run(exclude_machines=[second, third])
    assert not failed and again["changed"] is False and written(aws_calls) == []
    # Once the exclusion is lifted (a machine kept after all), it is registered again.
    back, failed = run()
    assert not failed and registered(aws["elbv2"], group_arn) == sorted([first, second, third])


def test_exclude_machines_accepts_a_machine_already_terminated(aws):
    net = make_network(aws["ec2"])
    first = launch_named(aws["ec2"], net["private"][0], "capi-example-control-plane-aaaaa")
    gone = launch_named(aws["ec2"], net["private"][1], "capi-example-control-plane-bbbbb")
    run()
    aws["ec2"].terminate_instances(InstanceIds=[gone])

    result, failed = run(exclude_machines=["capi-example-control-plane-bbbbb"])

    assert not failed, result.get("msg")
    assert result["load_balancer"]["targets"] == [first]


def test_exclude_machines_naming_no_control_plane_machine_fails_before_any_write(aws, aws_calls):
    net = make_network(aws["ec2"])
    launch_named(aws["ec2"], net["private"][0], "capi-example-control-plane-aaaaa")
    worker = launch_named(aws["ec2"], net["private"][1], "capi-example-md-0-wwwww", role=naming.ROLE_NODE)
    aws_calls.clear()

    result, failed = run(exclude_machines=["capi-example-md-0-wwwww", "capi-example-control-plane-nopes"])

    assert failed
    assert result["msg"] == ("exclude_machines: capi-example-md-0-wwwww, capi-example-control-plane-nopes are not a control-plane "
                             "machine of cluster capi-example; name control-plane machines by instance id or Name tag "
                             "(it has: capi-example-control-plane-aaaaa)")
    assert worker not in result["msg"]
    assert aws_calls.writes() == []


def test_unowned_balancer_with_the_api_name_is_left_alone(aws, aws_calls):
    net = make_network(aws["ec2"])
    aws["elbv2"].create_load_balancer(Name=LB_NAME, Subnets=net["public"], Type="network")
    aws_calls.clear()

    result, failed = run()

    assert failed
    assert "not tagged %s=owned" % naming.owner_tag(CLUSTER) in result["msg"]
    assert aws_calls.writes() == []
    assert tags_of(aws["elbv2"], only_nlb(aws["elbv2"])["LoadBalancerArn"]) == {}


@pytest.mark.parametrize("change, field", [({"type": "classic"}, "type"), ({"scheme": "internal"}, "scheme")])
def test_type_or_scheme_change_is_refused_before_any_write(aws, aws_calls, change, field):
    make_network(aws["ec2"])
    run()
    aws_calls.clear()

    result, failed = run(spec(**change))

    assert failed
    assert result["msg"].startswith("cluster.network.api_load_balancer.%s:" % field)
    assert "CAPA#2608" in result["msg"] and "state: absent" in result["msg"]
    assert aws_calls.writes() == []
    assert only_nlb(aws["elbv2"])["Scheme"] == "internet-facing"


# --- classic ELB -------------------------------------------------------------------------

def test_classic_elb_create_rerun_and_deregistration(aws, aws_calls):
    net = make_network(aws["ec2"])
    cp = launch(aws["ec2"], net["private"][0])
    elb = aws["elb"]

    result, failed = run(spec(type="classic", cross_zone=True))

    assert not failed, result
    balancer = elb.describe_load_balancers(LoadBalancerNames=[LB_NAME])["LoadBalancerDescriptions"][0]
    assert balancer["Scheme"] == "internet-facing"
    assert [d["Listener"] for d in balancer["ListenerDescriptions"]] == [
        {"Protocol": "TCP", "LoadBalancerPort": 6443, "InstanceProtocol": "TCP", "InstancePort": 6443}]
    assert balancer["HealthCheck"] == {"Target": "HTTPS:6443/readyz", "Interval": 5, "Timeout": 4, "HealthyThreshold": 2,
                                       "UnhealthyThreshold": 6}
    assert sorted(balancer["Subnets"]) == sorted(net["public"])
    assert balancer["SecurityGroups"] == [net["sg"]]
    assert [i["InstanceId"] for i in balancer["Instances"]] == [cp]
    settings = elb.describe_load_balancer_attributes(LoadBalancerName=LB_NAME)["LoadBalancerAttributes"]
    assert settings["ConnectionSettings"]["IdleTimeout"] == 600
    assert settings["CrossZoneLoadBalancing"]["Enabled"] is True
    tags = naming.tags_to_dict(elb.describe_tags(LoadBalancerNames=[LB_NAME])["TagDescriptions"][0]["Tags"])
    assert tags == naming.resource_tags(CLUSTER, LB_NAME, naming.ROLE_APISERVER)
    assert result["load_balancer"]["arn"] is None and result["load_balancer"]["target_group_arn"] is None
    assert result["load_balancer"]["control_plane_endpoint"] == balancer["DNSName"] + ":6443"
    assert aws["elbv2"].describe_target_groups()["TargetGroups"] == []

    aws_calls.clear()
    again = run(spec(type="classic", cross_zone=True))[0]
    assert again["changed"] is False and aws_calls.writes() == []

    # A classic ELB keeps a terminated instance registered until it is told otherwise.
    aws["ec2"].terminate_instances(InstanceIds=[cp])
    aws_calls.clear()
    after = run(spec(type="classic", cross_zone=True))[0]
    assert [(a["action"], a["name"]) for a in after["plan"]] == [("delete", cp)]
    assert written(aws_calls) == ["DeregisterInstancesFromLoadBalancer"]
    assert elb.describe_load_balancers(LoadBalancerNames=[LB_NAME])["LoadBalancerDescriptions"][0]["Instances"] == []


def test_classic_tcp_health_check_and_internal_scheme(aws):
    net = make_network(aws["ec2"])

    result, failed = run(spec(type="classic", scheme="internal", health_check_protocol="TCP"))

    assert not failed, result
    balancer = aws["elb"].describe_load_balancers(LoadBalancerNames=[LB_NAME])["LoadBalancerDescriptions"][0]
    assert balancer["Scheme"] == "internal"
    assert sorted(balancer["Subnets"]) == sorted(net["private"])
    assert balancer["HealthCheck"]["Target"] == "TCP:6443"


# --- absent ------------------------------------------------------------------------------

def _service_balancers(aws, net, owner_tags):
    """A classic ELB, an NLB and a target group, as the cloud-controller-manager makes them for a Service."""
    prefix = "own" if owner_tags else "foreign"
    tags = [{"Key": k, "Value": v} for k, v in owner_tags.items()] or [{"Key": "team", "Value": "other"}]
    aws["elb"].create_load_balancer(LoadBalancerName="%s-svc-classic" % prefix, Subnets=net["public"], Tags=tags,
                                    Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstanceProtocol": "TCP", "InstancePort": 30080}])
    balancer = aws["elbv2"].create_load_balancer(Name="%s-svc-nlb" % prefix, Subnets=net["public"], Type="network", Tags=tags)
    group = aws["elbv2"].create_target_group(Name="%s-svc-tg" % prefix, Protocol="TCP", Port=30080, VpcId=net["vpc_id"], Tags=tags)
    aws["elbv2"].create_listener(LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"], Protocol="TCP", Port=80,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroups"][0]["TargetGroupArn"]}])


def _names(aws):
    classic = sorted(b["LoadBalancerName"] for b in aws["elb"].describe_load_balancers()["LoadBalancerDescriptions"])
    nlbs = sorted(b["LoadBalancerName"] for b in aws["elbv2"].describe_load_balancers()["LoadBalancers"])
    groups = sorted(g["TargetGroupName"] for g in aws["elbv2"].describe_target_groups()["TargetGroups"])
    return classic, nlbs, groups


def test_absent_deletes_api_and_service_balancers_but_nothing_unowned(aws, aws_calls):
    net = make_network(aws["ec2"])
    run()
    _service_balancers(aws, net, {naming.cloud_provider_tag(CLUSTER): "owned"})
    _service_balancers(aws, net, {})
    aws_calls.clear()

    result, failed = run(state="absent")

    assert not failed, result
    assert result["changed"] is True
    assert _names(aws) == (["foreign-svc-classic"], ["foreign-svc-nlb"], ["foreign-svc-tg"])
    assert [(a["action"], a["resource"], a["name"]) for a in result["plan"]] == [
        ("delete", "load balancer", "own-svc-classic"),
        ("delete", "load balancer", LB_NAME),
        ("delete", "load balancer", "own-svc-nlb"),
        ("wait", "load balancers", "own-svc-classic, %s, own-svc-nlb" % LB_NAME),
        ("delete", "target group", TG_NAME),
        ("delete", "target group", "own-svc-tg"),
    ]
    assert count(aws_calls, "DeleteLoadBalancer") == 3 and count(aws_calls, "DeleteTargetGroup") == 2
    assert "load_balancer" not in result

    aws_calls.clear()
    again, failed = run(state="absent")
    assert not failed and again["changed"] is False and again["plan"] == []
    assert aws_calls.writes() == []


def test_absent_deletes_a_classic_api_balancer_first(aws):
    net = make_network(aws["ec2"])
    run(spec(type="classic"))
    _service_balancers(aws, net, {naming.cloud_provider_tag(CLUSTER): "owned"})

    result, failed = run(spec(type="classic"), state="absent", diff=True)

    assert not failed, result
    assert [a["name"] for a in result["plan"] if a["action"] == "delete"][:2] == [LB_NAME, "own-svc-classic"]
    assert "- load balancer %s (classic)" % LB_NAME in result["diff"]["prepared"]
    assert _names(aws) == ([], [], [])


def test_absent_in_check_mode_deletes_nothing(aws, aws_calls):
    make_network(aws["ec2"])
    run()
    aws_calls.clear()

    result, failed = run(state="absent", check_mode=True)

    assert not failed and result["changed"] is True
    assert aws_calls.writes() == []
    assert _names(aws) == ([], [LB_NAME], [TG_NAME])


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, options, field", [
    (spec(type="alb"), {}, "cluster.network.api_load_balancer.type"),
    (spec(scheme="public"), {}, "cluster.network.api_load_balancer.scheme"),
    (spec(health_check_protocol="HTTP"), {}, "cluster.network.api_load_balancer.health_check_protocol"),
    (spec(), {"wait_timeout": 0}, "wait_timeout"),
    (spec(), {"state": "gone"}, "state"),
])
def test_bad_input_fails_before_any_aws_call(aws, aws_calls, args, options, field):
    result, failed = run(args, **options)

    assert failed
    assert field in result["msg"]
    assert aws_calls == []
