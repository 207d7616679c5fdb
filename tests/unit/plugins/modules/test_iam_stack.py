"""iam_stack against moto: render offline, create, converge, update an older stack, recreate, delete."""

import copy
import json
from unittest import mock

import boto3
import botocore
import pytest
import yaml
from moto.cloudformation.models import cloudformation_backends
from moto.core import DEFAULT_ACCOUNT_ID

from helpers import moto_fixes
from helpers.aws import REGION
from helpers.module_runner import run_module

from ansible_collections.kubecluster.aws.plugins.module_utils import iam
from ansible_collections.kubecluster.aws.plugins.module_utils import naming

STACK = naming.IAM_STACK_NAME
ROLE_NAMES = [naming.CONTROL_PLANE_PROFILE, naming.CONTROLLERS_PROFILE, naming.NODES_PROFILE]
CSI_POLICY = "csi" + naming.IAM_SUFFIX
# A stack with nothing of ours in it.
OTHER_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})


@pytest.fixture
def aws(moto_aws, monkeypatch):
    """moto in process, with the one gap this module hits filled.

    moto's CloudFormation cannot delete an AWS::IAM::ManagedPolicy (it has no delete for
    it), so a stack whose roles have policies attached never deletes; give it one.
    """
    moto_fixes.apply(monkeypatch)
    return {"cfn": boto3.client("cloudformation", region_name=REGION), "iam": boto3.client("iam", region_name=REGION)}


def run(args=None, **kwargs):
    return run_module("iam_stack", dict({"region": REGION}, **(args or {})), **kwargs)


def moto_stack(name=STACK):
    return cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].get_stack(name)


def iam_names(client):
    roles = set(r["RoleName"] for r in client.list_roles()["Roles"])
    profiles = set(p["InstanceProfileName"] for p in client.list_instance_profiles()["InstanceProfiles"])
    policies = set(p["PolicyName"] for p in client.list_policies(Scope="Local")["Policies"])
    return roles, profiles, policies


def attached(client, role):
    return sorted(p["PolicyName"] for p in client.list_attached_role_policies(RoleName=role)["AttachedPolicies"])


def deploy(cfn, body, name=STACK, tags=None):
    """Make a stack directly, as clusterawsadm or an older run would have."""
    cfn.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"], Tags=tags or [])
    return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"]


def older_template():
    """An older clusterawsadm stack: fewer controller actions and an EKS role we no longer make."""
    tmpl = iam.template()
    actions = tmpl["Resources"][iam.POLICY_CONTROLLERS]["Properties"]["PolicyDocument"]["Statement"][0]["Action"]
    actions.remove("ec2:DescribeIpamPools")
    tmpl["Resources"]["AWSIAMRoleEKSControlPlane"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": "eks-controlplane" + naming.IAM_SUFFIX,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["eks.amazonaws.com"]}}]},
        },
    }
    return tmpl


# --- rendered -------------------------------------------------------------------------------


def test_rendered_needs_no_credentials_region_or_call(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("iam_stack", {"state": "rendered"})
    api.assert_not_called()
    assert not failed, result
    assert result["changed"] is False and result["plan"] == []
    assert result["stack_name"] == STACK and result["stack_id"] is None and result["resources"] == []
    tmpl = result["template"]
    assert json.loads(result["template_body"]) == tmpl
    assert tmpl["AWSTemplateFormatVersion"] == "2010-09-09"
    resources = tmpl["Resources"]
    for role_id, profile_id, name in ((iam.ROLE_CONTROL_PLANE, iam.PROFILE_CONTROL_PLANE, naming.CONTROL_PLANE_PROFILE),
                                      (iam.ROLE_NODES, iam.PROFILE_NODES, naming.NODES_PROFILE),
                                      (iam.ROLE_CONTROLLERS, iam.PROFILE_CONTROLLERS, naming.CONTROLLERS_PROFILE)):
        role = resources[role_id]
        assert role["Type"] == "AWS::IAM::Role" and role["Properties"]["RoleName"] == name
        assert role["Properties"]["AssumeRolePolicyDocument"] == {
            "Version": "2012-10-17",
            "Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["ec2.amazonaws.com"]}}],
        }
        assert resources[profile_id] == {"Type": "AWS::IAM::InstanceProfile",
                                         "Properties": {"InstanceProfileName": name, "Roles": [{"Ref": role_id}]}}
    policies = dict((rid, r["Properties"]) for rid, r in resources.items() if r["Type"] == "AWS::IAM::ManagedPolicy")
    assert sorted(p["ManagedPolicyName"] for p in policies.values()) == sorted(ROLE_NAMES + [CSI_POLICY])
    assert policies[iam.POLICY_CONTROL_PLANE]["Roles"] == [{"Ref": iam.ROLE_CONTROL_PLANE}]
    assert policies[iam.POLICY_CSI]["Roles"] == [{"Ref": iam.ROLE_CONTROL_PLANE}]
    assert policies[iam.POLICY_NODES]["Roles"] == [{"Ref": iam.ROLE_CONTROL_PLANE}, {"Ref": iam.ROLE_NODES}]
    assert policies[iam.POLICY_CONTROLLERS]["Roles"] == [{"Ref": iam.ROLE_CONTROLLERS}, {"Ref": iam.ROLE_CONTROL_PLANE}]
    cp = policies[iam.POLICY_CONTROL_PLANE]["PolicyDocument"]["Statement"]
    assert cp[0]["Resource"] == ["*"] and {"ec2:CreateRoute", "elasticloadbalancing:SetSecurityGroups", "kms:DescribeKey"} <= set(cp[0]["Action"])
    nodes = policies[iam.POLICY_NODES]["PolicyDocument"]["Statement"]
    assert {"Action": ["secretsmanager:DeleteSecret", "secretsmanager:GetSecretValue"], "Effect": "Allow",
            "Resource": ["arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/*"]} in nodes
    assert "ecr:BatchGetImage" in nodes[0]["Action"] and "ssmmessages:OpenDataChannel" in nodes[2]["Action"]
    controllers = policies[iam.POLICY_CONTROLLERS]["PolicyDocument"]["Statement"]
    assert {"Action": ["iam:PassRole"], "Effect": "Allow",
            "Resource": ["arn:*:iam::*:role/*.cluster-api-provider-aws.sigs.k8s.io"]} in controllers
    assert {"ec2:RunInstances", "ec2:CreateNatGateway", "tag:GetResources"} <= set(controllers[0]["Action"])
    assert not [rid for rid in resources if "EKS" in rid]
    assert "eks:" not in result["template_body"]


def test_rendered_diff_shows_no_change(monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    result, failed = run_module("iam_stack", {"state": "rendered"}, diff=True)
    assert not failed
    assert result["diff"]["prepared"].startswith("CloudFormation template of %s (rendered, no AWS call)" % STACK)


# --- present --------------------------------------------------------------------------------


def test_present_creates_the_stack_and_its_iam(aws, aws_calls):
    result, failed = run(diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert [(a["action"], a["detail"]) for a in result["plan"]] == [
        ("create", "3 InstanceProfile, 4 ManagedPolicy, 3 Role"), ("wait", "CREATE_COMPLETE")]
    assert result["stack_status"] == "CREATE_COMPLETE"
    assert result["stack_id"].startswith("arn:aws:cloudformation:%s:" % REGION)
    assert result["outputs"] == {}
    assert len(result["resources"]) == 10
    assert {"logical_id": iam.ROLE_NODES, "physical_id": naming.NODES_PROFILE, "type": "AWS::IAM::Role",
            "status": "CREATE_COMPLETE"} in result["resources"]
    assert "+ cloudformation stack %s" % STACK in result["diff"]["prepared"]

    roles, profiles, policies = iam_names(aws["iam"])
    assert set(ROLE_NAMES) <= roles and set(ROLE_NAMES) <= profiles and set(ROLE_NAMES) <= policies
    assert attached(aws["iam"], naming.CONTROL_PLANE_PROFILE) == sorted(ROLE_NAMES + [CSI_POLICY])
    assert attached(aws["iam"], naming.NODES_PROFILE) == [naming.NODES_PROFILE]
    assert attached(aws["iam"], naming.CONTROLLERS_PROFILE) == [naming.CONTROLLERS_PROFILE]
    profile = aws["iam"].get_instance_profile(InstanceProfileName=naming.NODES_PROFILE)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [naming.NODES_PROFILE]
    create = aws_calls.params_of("CreateStack")
    assert len(create) == 1 and create[0]["Capabilities"] == ["CAPABILITY_NAMED_IAM"] and create[0]["StackName"] == STACK
    assert json.loads(create[0]["TemplateBody"]) == result["template"] and "Tags" not in create[0]
    assert aws["cfn"].get_template(StackName=STACK)["TemplateBody"] == result["template"]


def test_rerun_changes_nothing_and_only_reads(aws, aws_calls):
    run()
    aws_calls.clear()
    result, failed = run(diff=True)
    assert not failed, result
    assert result["changed"] is False and result["plan"] == []
    assert aws_calls.written() == []
    assert "DescribeStacks" in aws_calls.operations() and "GetTemplate" in aws_calls.operations()
    assert result["stack_status"] == "CREATE_COMPLETE" and len(result["resources"]) == 10
    assert "No changes" in result["diff"]["prepared"]


def test_check_mode_on_an_empty_account_plans_and_creates_nothing(aws, aws_calls):
    result, failed = run(check_mode=True, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert [a["action"] for a in result["plan"]] == ["create", "wait"]
    assert result["stack_id"] is None and result["stack_status"] is None and result["resources"] == []
    assert aws_calls.written() == []
    assert aws["cfn"].list_stacks()["StackSummaries"] == []
    assert not set(ROLE_NAMES) & iam_names(aws["iam"])[0]


def test_an_older_stack_is_updated_in_place(aws, aws_calls):
    old = older_template()
    stack_id = deploy(aws["cfn"], json.dumps(old))
    assert "eks-controlplane" + naming.IAM_SUFFIX in iam_names(aws["iam"])[0]

    preview, failed = run(check_mode=True, diff=True)
    assert not failed, preview
    assert preview["plan"][0]["action"] == "update"
    assert preview["plan"][0]["detail"] == "changed AWSIAMManagedPolicyControllers; removed AWSIAMRoleEKSControlPlane"
    assert "~ cloudformation stack %s (changed AWSIAMManagedPolicyControllers" % STACK in preview["diff"]["prepared"]
    assert aws["cfn"].get_template(StackName=STACK)["TemplateBody"] == old

    aws_calls.clear()
    result, failed = run()
    assert not failed, result
    assert result["changed"] is True and [a["action"] for a in result["plan"]] == ["update", "wait"]
    assert aws_calls.written() == ["UpdateStack"]
    assert result["stack_id"] == stack_id and result["stack_status"] == "UPDATE_COMPLETE"
    assert aws["cfn"].get_template(StackName=STACK)["TemplateBody"] == result["template"]
    assert "eks-controlplane" + naming.IAM_SUFFIX not in iam_names(aws["iam"])[0]

    again, failed = run()
    assert not failed and again["changed"] is False


def test_a_stack_made_without_the_ebs_csi_policy_gets_it_on_the_control_plane_role(aws, aws_calls):
    """clusterawsadm's default (enableCSIPolicy off) left the EBS CSI controller without its EC2 volume rights."""
    without_csi = iam.template()
    del without_csi["Resources"][iam.POLICY_CSI]
    stack_id = deploy(aws["cfn"], json.dumps(without_csi))
    assert CSI_POLICY not in attached(aws["iam"], naming.CONTROL_PLANE_PROFILE)

    result, failed = run()

    assert not failed, result
    assert [(a["action"], a["detail"]) for a in result["plan"]] == [("update", "added AWSEBSCSIPolicyController"), ("wait", "UPDATE_COMPLETE")]
    assert result["stack_id"] == stack_id
    assert CSI_POLICY in attached(aws["iam"], naming.CONTROL_PLANE_PROFILE)
    assert CSI_POLICY not in attached(aws["iam"], naming.NODES_PROFILE)
    arn = next(p["Arn"] for p in aws["iam"].list_policies(Scope="Local")["Policies"] if p["PolicyName"] == CSI_POLICY)
    version = aws["iam"].get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = aws["iam"].get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert {"ec2:CreateSnapshot", "ec2:DescribeAvailabilityZones", "ec2:DeleteTags"} <= set(document["Statement"][0]["Action"])


def test_a_clusterawsadm_yaml_stack_with_the_same_template_is_left_alone(aws, aws_calls):
    deploy(aws["cfn"], yaml.safe_dump(iam.template()))
    aws_calls.clear()
    result, failed = run()
    assert not failed, result
    assert result["changed"] is False and aws_calls.written() == []


def test_tags_are_set_and_converged(aws, aws_calls):
    result, failed = run({"tags": {"team": "platform", "cost": 42}})
    assert not failed, result
    stack = aws["cfn"].describe_stacks(StackName=STACK)["Stacks"][0]
    assert naming.tags_to_dict(stack["Tags"]) == {"team": "platform", "cost": "42"}

    same, failed = run({"tags": {"team": "platform", "cost": 42}})
    assert not failed and same["changed"] is False
    untouched, failed = run()
    assert not failed and untouched["changed"] is False

    aws_calls.clear()
    changed, failed = run({"tags": {"team": "infra"}})
    assert not failed, changed
    assert changed["plan"][0]["action"] == "update" and changed["plan"][0]["detail"] == "tags -cost ~team"
    assert aws_calls.written() == ["UpdateStack"]
    stack = aws["cfn"].describe_stacks(StackName=STACK)["Stacks"][0]
    assert naming.tags_to_dict(stack["Tags"]) == {"team": "infra"}


def test_a_rolled_back_stack_is_deleted_and_created_again(aws):
    old_id = deploy(aws["cfn"], OTHER_TEMPLATE)
    moto_stack().status = "ROLLBACK_COMPLETE"  # what a failed create leaves; moto never fails a create

    preview, failed = run(check_mode=True, diff=True)
    assert not failed, preview
    assert [a["action"] for a in preview["plan"]] == ["delete", "wait", "create", "wait"]
    assert preview["plan"][0]["detail"].startswith("ROLLBACK_COMPLETE: a failed create left it")
    assert "- cloudformation stack %s (ROLLBACK_COMPLETE" % STACK in preview["diff"]["prepared"]

    result, failed = run()
    assert not failed, result
    assert result["changed"] is True
    assert result["stack_id"] != old_id and result["stack_status"] == "CREATE_COMPLETE"
    assert aws["cfn"].describe_stacks(StackName=old_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert set(ROLE_NAMES) <= iam_names(aws["iam"])[0]


def test_an_operation_in_progress_is_waited_for_first(aws, aws_calls, monkeypatch):
    run()
    moto_stack().status = "UPDATE_IN_PROGRESS"
    original = botocore.client.BaseClient._make_api_call  # the recording wrapper

    def finish_after_first_look(client, operation_name, api_params):
        answer = original(client, operation_name, api_params)
        if operation_name == "DescribeStacks":
            moto_stack().status = "UPDATE_COMPLETE"
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", finish_after_first_look)
    aws_calls.clear()
    result, failed = run()
    assert not failed, result
    assert result["changed"] is False and result["stack_status"] == "UPDATE_COMPLETE"
    assert aws_calls.operations().count("DescribeStacks") >= 3  # the look, the wait, the look after it
    assert aws_calls.written() == []


def test_an_operation_that_does_not_end_in_time_fails(aws):
    run()
    moto_stack().status = "UPDATE_IN_PROGRESS"
    result, failed = run({"wait_timeout": 1})
    assert failed
    assert "did not reach a stable state within 1s: it is UPDATE_IN_PROGRESS" in result["msg"]


def test_a_failed_update_rollback_fails_with_the_fix_and_no_write(aws, aws_calls):
    run()
    moto_stack().status = "UPDATE_ROLLBACK_FAILED"
    aws_calls.clear()
    result, failed = run()
    assert failed
    assert "continue-update-rollback" in result["msg"] and "UPDATE_ROLLBACK_FAILED" in result["msg"]
    assert aws_calls.written() == []


def test_a_create_that_aws_refuses_fails_naming_the_action(aws):
    aws["iam"].create_role(RoleName=naming.NODES_PROFILE, AssumeRolePolicyDocument="{}")  # made by hand, not by a stack
    result, failed = run()
    assert failed
    assert result["msg"].startswith("create cloudformation stack %s failed" % STACK)
    assert result["plan"][0]["action"] == "create" and result["applied"] == []


# --- absent ---------------------------------------------------------------------------------


def test_absent_deletes_the_stack_and_its_iam_and_leaves_the_rest(aws, aws_calls):
    aws["iam"].create_role(RoleName="other" + naming.IAM_SUFFIX, AssumeRolePolicyDocument="{}")
    deploy(aws["cfn"], OTHER_TEMPLATE, name="other-stack")
    created = run()[0]

    preview, failed = run({"state": "absent"}, check_mode=True, diff=True)
    assert not failed and preview["changed"] is True
    assert [a["action"] for a in preview["plan"]] == ["delete", "wait"]
    assert "- cloudformation stack %s (CREATE_COMPLETE: deletes its IAM roles" % STACK in preview["diff"]["prepared"]
    assert aws["cfn"].describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    aws_calls.clear()
    result, failed = run({"state": "absent"})
    assert not failed, result
    assert result["changed"] is True and aws_calls.written() == ["DeleteStack"]
    assert result["stack_id"] == created["stack_id"] and result["stack_status"] == "DELETE_COMPLETE"
    assert result["resources"] == []
    roles, profiles, policies = iam_names(aws["iam"])
    assert not set(ROLE_NAMES) & (roles | profiles | policies)
    assert "other" + naming.IAM_SUFFIX in roles
    assert aws["cfn"].describe_stacks(StackName="other-stack")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_absent_without_a_stack_changes_nothing(aws, aws_calls):
    result, failed = run({"state": "absent"}, diff=True)
    assert not failed, result
    assert result["changed"] is False and result["plan"] == [] and result["stack_id"] is None
    assert aws_calls.written() == []
    assert "No changes" in result["diff"]["prepared"]


def test_absent_rerun_changes_nothing(aws, aws_calls):
    run()
    run({"state": "absent"})
    aws_calls.clear()
    result, failed = run({"state": "absent"})
    assert not failed and result["changed"] is False and aws_calls.written() == []


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    ({"stack_name": "1-bad_name"}, "stack_name: '1-bad_name' is not a CloudFormation stack name"),
    ({"tags": {"aws:owner": "me"}}, "tags: key 'aws:owner' is not allowed"),
    ({"wait_timeout": 0}, "wait_timeout: 0 is not a number of seconds"),
])
def test_bad_options_fail_before_any_aws_call(aws_env, args, expected):
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run(args)
    api.assert_not_called()
    assert failed and expected in result["msg"]


def test_present_without_a_region_names_it(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with mock.patch("botocore.client.BaseClient._make_api_call") as api:
        result, failed = run_module("iam_stack", {})
    api.assert_not_called()
    assert failed and "requires a region" in result["msg"]


def test_template_is_a_fresh_copy_each_time():
    first = iam.template()
    first_copy = copy.deepcopy(first)
    first["Resources"].clear()
    assert iam.template() == first_copy
