"""securitygroups.py: CAPA's groups and ingress rules per spec (pure), then plans against moto."""

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import securitygroups as sg
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import UNKNOWN, Plan
from ansible_collections.kubecluster.aws.plugins.module_utils.securitygroups import Rule
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve

from helpers.aws import CLUSTER, KUBERNETES_VERSION, REGION, context

VPC_CIDR = "10.0.0.0/16"
CP, NODE, BASTION, APILB, LB = "controlplane", "node", "bastion", "apiserver-lb", "lb"


def make_spec(**network_fields):
    return resolve({"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION, "network": network_fields})


def group(role):
    return ("group", role)


def cidr(block):
    return ("cidr", block)


@pytest.fixture
def vpc_id(ec2):
    return ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]


def plan_in(ec2, spec, vpc):
    return sg.plan_present(context(ec2), spec, Plan(), lambda: vpc, VPC_CIDR)


def groups_by_role(ec2, vpc):
    out = {}
    for described in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]:
        tags = naming.tags_to_dict(described.get("Tags"))
        if naming.ROLE_TAG in tags:
            out[tags[naming.ROLE_TAG]] = described
    return out


def rule_set(described, ids):
    """A described group's rules as (protocol, from, to, source, description) with sources by role."""
    roles = dict((group_id, role) for role, group_id in ids.items())
    out = set()
    for perm in described["IpPermissions"]:
        ports = (perm.get("FromPort"), perm.get("ToPort")) if perm["IpProtocol"] in ("tcp", "udp") else (None, None)
        for entry in perm["IpRanges"]:
            out.add((perm["IpProtocol"],) + ports + (cidr(entry["CidrIp"]), entry.get("Description")))
        for entry in perm["UserIdGroupPairs"]:
            out.add((perm["IpProtocol"],) + ports + (group(roles[entry["GroupId"]]), entry.get("Description")))
    return out


def expected(rules):
    return set((r.protocol,) + ((r.from_port, r.to_port) if r.protocol in ("tcp", "udp") else (None, None)) + (r.source, r.description)
               for r in rules)


# --- the rules, as CAPA's defaults -------------------------------------------------------------

def test_default_rules_are_capas():
    rules = sg.wanted_rules(make_spec(), VPC_CIDR)
    assert sg.wanted_roles(make_spec()) == [APILB, LB, CP, NODE, BASTION]
    assert set(rules[CP]) == {
        Rule("tcp", 6443, 6443, group(APILB), "Kubernetes API"), Rule("tcp", 6443, 6443, group(CP), "Kubernetes API"),
        Rule("tcp", 6443, 6443, group(NODE), "Kubernetes API"), Rule("tcp", 2379, 2379, group(CP), "etcd"),
        Rule("tcp", 2380, 2380, group(CP), "etcd peer"), Rule("tcp", 22, 22, group(BASTION), "SSH"),
        Rule("tcp", 179, 179, group(CP), "bgp (calico)"), Rule("tcp", 179, 179, group(NODE), "bgp (calico)"),
        Rule("4", -1, -1, group(CP), "IP-in-IP (calico)"), Rule("4", -1, -1, group(NODE), "IP-in-IP (calico)")}
    assert set(rules[NODE]) == {
        Rule("tcp", 30000, 32767, cidr("0.0.0.0/0"), "Node Port Services"),
        Rule("tcp", 10250, 10250, group(CP), "Kubelet API"), Rule("tcp", 10250, 10250, group(NODE), "Kubelet API"),
        Rule("tcp", 22, 22, group(BASTION), "SSH"),
        Rule("tcp", 179, 179, group(CP), "bgp (calico)"), Rule("tcp", 179, 179, group(NODE), "bgp (calico)"),
        Rule("4", -1, -1, group(CP), "IP-in-IP (calico)"), Rule("4", -1, -1, group(NODE), "IP-in-IP (calico)")}
    assert rules[APILB] == [Rule("tcp", 6443, 6443, cidr("0.0.0.0/0"), "Kubernetes API")]
    assert rules[LB] == [Rule("tcp", 6443, 6443, cidr(VPC_CIDR), "Allow NLB traffic to the control plane instances.")]
    assert rules[BASTION] == [Rule("tcp", 22, 22, cidr("0.0.0.0/0"), "SSH")]


def test_cilium_rules_replace_calicos_on_both_groups():
    rules = sg.wanted_rules(make_spec(cni="cilium"), VPC_CIDR)
    for role in (CP, NODE):
        cni = [r for r in rules[role] if "cilium" in r.description or "calico" in r.description]
        assert set(cni) == {Rule("udp", 8472, 8472, group(CP), "VXLAN (cilium)"), Rule("udp", 8472, 8472, group(NODE), "VXLAN (cilium)"),
                            Rule("tcp", 4240, 4240, group(CP), "health (cilium)"), Rule("tcp", 4240, 4240, group(NODE), "health (cilium)")}


def test_spec_cidrs_internal_scheme_classic_lb_and_no_bastion():
    spec = make_spec(node_port_cidrs=["10.1.0.0/16", "192.0.2.0/24"], bastion={"enabled": False},
                     api_load_balancer={"type": "classic", "scheme": "internal", "allowed_cidrs": ["203.0.113.0/24"]})
    rules = sg.wanted_rules(spec, VPC_CIDR)
    assert sg.wanted_roles(spec) == [APILB, LB, CP, NODE]
    assert BASTION not in rules
    assert rules[APILB] == [Rule("tcp", 6443, 6443, cidr(VPC_CIDR), "Kubernetes API")]
    assert rules[LB] == []
    assert [r.source for r in rules[NODE] if r.description == "Node Port Services"] == [cidr("10.1.0.0/16"), cidr("192.0.2.0/24")]
    assert not [r for role in (CP, NODE) for r in rules[role] if r.source == group(BASTION)]


def test_internet_facing_api_takes_the_allowed_cidrs():
    rules = sg.wanted_rules(make_spec(api_load_balancer={"allowed_cidrs": ["198.51.100.0/24", "203.0.113.7/32"]}), VPC_CIDR)
    assert [r.source for r in rules[APILB]] == [cidr("198.51.100.0/24"), cidr("203.0.113.7/32")]


def test_existing_rules_are_keyed_per_source_with_numeric_protocols_normalised():
    described = {"IpPermissions": [
        {"IpProtocol": "6", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "x"}],
         "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "123456789012"}]},
        {"IpProtocol": "4", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": "sg-2"}]},
    ]}
    rules = sg.existing_rules(described)
    assert set(rules) == {("tcp", 22, 22, "cidr", "10.0.0.0/8"), ("tcp", 22, 22, "group", "sg-1"), ("4", None, None, "group", "sg-2")}
    expected_permission = {"IpProtocol": "6", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "123456789012"}]}
    assert rules[("tcp", 22, 22, "group", "sg-1")] == expected_permission


# --- plans against moto --------------------------------------------------------------------

def test_groups_are_all_created_before_any_rule_and_tagged_as_capa(ec2, vpc_id, aws_calls):
    spec = make_spec()
    plan = plan_in(ec2, spec, vpc_id)
    verbs = [a.verb for a in plan.actions]
    assert verbs == ["create"] * 5 + ["update"] * 5
    assert sg.group_ids(plan, spec) == dict((role, UNKNOWN) for role in sg.wanted_roles(spec))
    plan.apply()
    assert [c[1] for c in aws_calls.writes()] == ["CreateSecurityGroup"] * 5 + ["AuthorizeSecurityGroupIngress"] * 5
    groups = groups_by_role(ec2, vpc_id)
    assert sg.group_ids(plan, spec) == dict((role, g["GroupId"]) for role, g in groups.items())
    for role, described in groups.items():
        assert described["GroupName"] == "capi-example-" + role
        assert described["Description"] == "Kubernetes cluster capi-example: " + role
        tags = naming.tags_to_dict(described["Tags"])
        assert tags[naming.owner_tag("capi-example")] == "owned" and tags[naming.ROLE_TAG] == role
        assert tags["Name"] == "capi-example-" + role
        assert (tags.get("kubernetes.io/cluster/capi-example") == "owned") is (role == LB)
        # Egress stays AWS's default.
        assert described["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
    ids = dict((role, g["GroupId"]) for role, g in groups.items())
    rules = sg.wanted_rules(spec, VPC_CIDR)
    for role, described in groups.items():
        assert rule_set(described, ids) == expected(rules[role]), role


def test_rerun_plans_nothing_and_reads_groups_once(ec2, vpc_id, aws_calls):
    plan_in(ec2, make_spec(), vpc_id).apply()
    del aws_calls[:]
    assert plan_in(ec2, make_spec(), vpc_id).actions == []
    assert aws_calls == [("ec2", "DescribeSecurityGroups")]


def test_unknown_vpc_reads_nothing_and_creates_everything(ec2, aws_calls):
    plan = sg.plan_present(context(ec2), make_spec(), Plan(), lambda: UNKNOWN, VPC_CIDR)
    assert aws_calls == []
    assert len([a for a in plan.actions if a.verb == "create"]) == 5


def test_drift_missing_rules_come_back_in_one_call_and_extras_go_except_on_lb(ec2, vpc_id, aws_calls):
    spec = make_spec()
    plan_in(ec2, spec, vpc_id).apply()
    groups = groups_by_role(ec2, vpc_id)
    node, lb, cp = groups[NODE]["GroupId"], groups[LB]["GroupId"], groups[CP]["GroupId"]
    ec2.revoke_security_group_ingress(GroupId=cp, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 2379, "ToPort": 2379, "UserIdGroupPairs": [{"GroupId": cp, "Description": "etcd"}]},
        {"IpProtocol": "tcp", "FromPort": 2380, "ToPort": 2380, "UserIdGroupPairs": [{"GroupId": cp, "Description": "etcd peer"}]}])
    extra = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}
    ec2.authorize_security_group_ingress(GroupId=node, IpPermissions=[extra])
    ec2.authorize_security_group_ingress(GroupId=lb, IpPermissions=[extra])
    del aws_calls[:]
    plan = plan_in(ec2, spec, vpc_id)
    assert [a.render() for a in plan.actions] == [
        "~ security-group capi-example-controlplane (authorize tcp 2379 from capi-example-controlplane, tcp 2380 from capi-example-controlplane)",
        "~ security-group capi-example-node (revoke tcp 8080 from 198.51.100.0/24)",
    ]
    plan.apply()
    assert [c[1] for c in aws_calls.writes()] == ["AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"]
    groups = groups_by_role(ec2, vpc_id)
    ids = dict((role, g["GroupId"]) for role, g in groups.items())
    assert rule_set(groups[CP], ids) == expected(sg.wanted_rules(spec, VPC_CIDR)[CP])
    assert ("tcp", 8080, 8080, cidr("198.51.100.0/24"), None) not in rule_set(groups[NODE], ids)
    assert ("tcp", 8080, 8080, cidr("198.51.100.0/24"), None) in rule_set(groups[LB], ids)
    assert plan_in(ec2, spec, vpc_id).actions == []


def test_a_changed_spec_swaps_rules(ec2, vpc_id):
    plan_in(ec2, make_spec(), vpc_id).apply()
    spec = make_spec(node_port_cidrs=["10.1.0.0/16"], api_load_balancer={"allowed_cidrs": ["203.0.113.0/24"]})
    plan = plan_in(ec2, spec, vpc_id)
    assert [a.detail for a in plan.actions] == [
        "revoke tcp 6443 from 0.0.0.0/0", "authorize tcp 6443 from 203.0.113.0/24",
        "revoke tcp 30000-32767 from 0.0.0.0/0", "authorize tcp 30000-32767 from 10.1.0.0/16"]
    plan.apply()
    assert plan_in(ec2, spec, vpc_id).actions == []


def test_bastion_disabled_later_loses_its_ssh_rules_but_the_group_stays(ec2, vpc_id):
    plan_in(ec2, make_spec(), vpc_id).apply()
    spec = make_spec(bastion={"enabled": False})
    plan = plan_in(ec2, spec, vpc_id)
    assert [a.render() for a in plan.actions] == [
        "~ security-group capi-example-controlplane (revoke tcp 22 from capi-example-bastion)",
        "~ security-group capi-example-node (revoke tcp 22 from capi-example-bastion)"]
    plan.apply()
    assert BASTION in groups_by_role(ec2, vpc_id)


def test_a_duplicate_cidr_in_the_spec_is_authorized_once(ec2, vpc_id):
    spec = make_spec(bastion={"allowed_cidrs": ["192.0.2.0/24", "192.0.2.0/24"]})
    plan_in(ec2, spec, vpc_id).apply()
    assert plan_in(ec2, spec, vpc_id).actions == []


def test_unowned_lookalike_group_is_neither_used_nor_changed(ec2, vpc_id):
    other_vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    lookalike = ec2.create_security_group(GroupName="capi-example-node", Description="someone else's", VpcId=other_vpc,
                                          TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                              {"Key": naming.ROLE_TAG, "Value": NODE}]}])["GroupId"]
    spec = make_spec()
    plan = plan_in(ec2, spec, vpc_id)
    plan.apply()
    assert sg.group_ids(plan, spec)[NODE] != lookalike
    described = ec2.describe_security_groups(GroupIds=[lookalike])["SecurityGroups"][0]
    assert described["IpPermissions"] == [] and described["Description"] == "someone else's"


def test_absent_revokes_every_rule_first_then_deletes_owned_and_ccm_groups_only(ec2, vpc_id, aws_calls):
    spec = make_spec()
    plan_in(ec2, spec, vpc_id).apply()
    ccm = ec2.create_security_group(GroupName="k8s-elb-a1b2c3", Description="ccm", VpcId=vpc_id, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "kubernetes.io/cluster/capi-example", "Value": "owned"}]}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=ccm, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    stranger = ec2.create_security_group(GroupName="app", Description="not the cluster's", VpcId=vpc_id)["GroupId"]
    plan = sg.plan_absent(context(ec2), spec, Plan(), vpc_id)
    verbs = [a.verb for a in plan.actions]
    assert verbs == ["update"] * 6 + ["delete"] * 6
    assert "k8s-elb-a1b2c3" in [a.name for a in plan.actions if a.verb == "delete"]
    del aws_calls[:]
    plan.apply()
    assert [c[1] for c in aws_calls.writes()] == ["RevokeSecurityGroupIngress"] * 6 + ["DeleteSecurityGroup"] * 6
    left = [g["GroupId"] for g in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
            if g["GroupName"] != "default"]
    assert left == [stranger]
    assert sg.plan_absent(context(ec2), spec, Plan(), vpc_id).actions == []
