"""iam: CAPA's template, reading deployed templates as data, and the plans for every stack state."""

import json
from unittest import mock

import botocore.exceptions
import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import iam
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.aws import cloudformation as aws_cfn
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context

from helpers.aws import REGION

NAME = naming.IAM_STACK_NAME
STACK_ID = "arn:aws:cloudformation:ap-northeast-2:123456789012:stack/%s/1111" % NAME

# How clusterawsadm writes a template: YAML, keys sorted, dates unquoted.
CLUSTERAWSADM_ROLE_YAML = """AWSTemplateFormatVersion: 2010-09-09
Resources:
  AWSIAMRoleNodes:
    Properties:
      AssumeRolePolicyDocument:
        Statement:
        - Action:
          - sts:AssumeRole
          Effect: Allow
          Principal:
            Service:
            - ec2.amazonaws.com
        Version: 2012-10-17
      RoleName: nodes.cluster-api-provider-aws.sigs.k8s.io
    Type: AWS::IAM::Role
"""


def have(status="CREATE_COMPLETE", template=None, tags=None):
    return {"id": STACK_ID, "name": NAME, "status": status, "tags": tags or {},
            "template": iam.template() if template is None else template, "stack": {"StackId": STACK_ID}}


def ctx(cfn, wait_timeout=900):
    """A Context whose CloudFormation client is ``cfn`` (a mock, so not helpers.aws.context, which takes boto3 clients)."""
    return Context(lambda service: cfn, REGION, wait_timeout=wait_timeout)


def actions(plan):
    return [(a.verb, a.detail) for a in plan.actions]


def statements(policy_id):
    return iam.template()["Resources"][policy_id]["Properties"]["PolicyDocument"]["Statement"]


# --- the template ---------------------------------------------------------------------------


def test_template_has_capas_ten_resources_and_logical_ids():
    resources = iam.template()["Resources"]
    assert sorted(resources) == sorted([
        "AWSEBSCSIPolicyController",
        "AWSIAMInstanceProfileControlPlane", "AWSIAMInstanceProfileControllers", "AWSIAMInstanceProfileNodes",
        "AWSIAMManagedPolicyCloudProviderControlPlane", "AWSIAMManagedPolicyCloudProviderNodes",
        "AWSIAMManagedPolicyControllers", "AWSIAMRoleControlPlane", "AWSIAMRoleControllers", "AWSIAMRoleNodes"])
    assert "ManagedPolicyArns" not in resources[iam.ROLE_NODES]["Properties"]  # EKS's worker policies are not ours


def test_control_plane_policy_is_cloud_provider_aws_on_everything():
    (only,) = statements(iam.POLICY_CONTROL_PLANE)
    assert only["Resource"] == ["*"] and only["Effect"] == "Allow"
    assert only["Action"][:4] == ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
                                  "autoscaling:DescribeTags", "ec2:AssignIpv6Addresses"]
    assert only["Action"][-2:] == ["iam:CreateServiceLinkedRole", "kms:DescribeKey"]
    assert len(only["Action"]) == 57


def test_nodes_policy_covers_ecr_secrets_and_session_manager():
    ecr, secrets, ssm = statements(iam.POLICY_NODES)
    assert ecr["Resource"] == ["*"] and "ecr:GetAuthorizationToken" in ecr["Action"] and "ec2:DescribeInstanceTypes" in ecr["Action"]
    assert secrets == {"Action": ["secretsmanager:DeleteSecret", "secretsmanager:GetSecretValue"], "Effect": "Allow",
                       "Resource": ["arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/*"]}
    assert ssm["Action"][0] == "ssm:UpdateInstanceInformation" and ssm["Action"][-1] == "s3:GetEncryptionConfiguration"


def test_ebs_csi_controller_policy_is_clusterawsadms_on_the_control_plane_role_only():
    """The EBS CSI controller runs on the control plane (addons role), whose cloud-provider policy lacks
    the snapshot, tag and zone calls the driver makes; the nodes role gets no volume rights."""
    policy = iam.template()["Resources"][iam.POLICY_CSI]
    assert policy["Properties"]["ManagedPolicyName"] == "csi.cluster-api-provider-aws.sigs.k8s.io"
    assert policy["Properties"]["Description"] == "For the AWS EBS CSI Driver for Kubernetes"
    assert policy["Properties"]["Roles"] == [{"Ref": iam.ROLE_CONTROL_PLANE}]
    (only,) = statements(iam.POLICY_CSI)
    assert only == {"Action": [
        "ec2:AttachVolume", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:CreateVolume", "ec2:DeleteSnapshot", "ec2:DeleteTags",
        "ec2:DeleteVolume", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeTags",
        "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications", "ec2:DetachVolume", "ec2:ModifyVolume"], "Effect": "Allow", "Resource": ["*"]}
    missing_on_control_plane = set(only["Action"]) - set(statements(iam.POLICY_CONTROL_PLANE)[0]["Action"])
    assert missing_on_control_plane == {"ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:DeleteTags", "ec2:DescribeAvailabilityZones",
                                        "ec2:DescribeSnapshots", "ec2:DescribeTags", "ec2:DescribeVolumesModifications"}
    on_nodes = [policy_id for policy_id, resource in iam.template()["Resources"].items()
                if resource["Type"] == "AWS::IAM::ManagedPolicy" and {"Ref": iam.ROLE_NODES} in resource["Properties"]["Roles"]]
    assert on_nodes == [iam.POLICY_NODES]
    assert not any("ec2:CreateVolume" in statement["Action"] for statement in statements(iam.POLICY_NODES))


def test_controllers_policy_statements_and_resource_arns():
    found = statements(iam.POLICY_CONTROLLERS)
    assert len(found) == 7
    assert found[0]["Action"][0] == "ec2:DescribeIpamPools" and found[0]["Action"][-1] == "ec2:ModifyInstanceMetadataOptions"
    assert found[0]["Action"].count("ec2:DescribeInstanceTypes") == 2  # as CAPA writes it
    assert found[1] == {"Action": ["autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
                                   "autoscaling:CreateOrUpdateTags", "autoscaling:StartInstanceRefresh",
                                   "autoscaling:DeleteAutoScalingGroup", "autoscaling:DeleteTags"],
                        "Effect": "Allow", "Resource": ["arn:*:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*"]}
    assert found[2] == {"Action": ["iam:CreateServiceLinkedRole"], "Effect": "Allow",
                        "Condition": {"StringLike": {"iam:AWSServiceName": "autoscaling.amazonaws.com"}},
                        "Resource": ["arn:*:iam::*:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]}
    assert found[4]["Resource"] == ["arn:*:iam::*:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"]
    assert found[5] == {"Action": ["iam:PassRole"], "Effect": "Allow", "Resource": ["arn:*:iam::*:role/*.cluster-api-provider-aws.sigs.k8s.io"]}
    assert found[6]["Action"] == ["secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:TagResource"]


def test_template_body_is_stable_json_of_the_template():
    body = iam.template_body(iam.template())
    assert body == iam.template_body(iam.template())
    assert json.loads(body) == iam.template()
    assert body.index('"AWSTemplateFormatVersion"') < body.index('"Resources"')


# --- reading a deployed template ------------------------------------------------------------


def test_clusterawsadm_yaml_reads_as_the_same_data():
    parsed = iam.parse_template_body(CLUSTERAWSADM_ROLE_YAML)
    assert parsed["AWSTemplateFormatVersion"] == "2010-09-09"
    assert parsed["Resources"][iam.ROLE_NODES] == iam.template()["Resources"][iam.ROLE_NODES]


@pytest.mark.parametrize("body", [iam.template(), iam.template_body(iam.template())])
def test_json_as_decoded_dict_or_text_reads_as_the_template(body):
    assert iam.parse_template_body(body) == iam.template()


@pytest.mark.parametrize("body", ["Resources: [unclosed", "- just\n- a list\n", "", "[1, 2]", None])
def test_unreadable_bodies_read_as_none(body):
    assert iam.parse_template_body(body) is None


# --- differences ----------------------------------------------------------------------------


def test_template_changes_name_resources_by_logical_id():
    deployed = iam.template()
    deployed["Resources"]["AWSIAMRoleEKSControlPlane"] = {"Type": "AWS::IAM::Role", "Properties": {}}
    deployed["Resources"][iam.POLICY_NODES]["Properties"]["Description"] = "old"
    del deployed["Resources"][iam.PROFILE_CONTROLLERS]
    deployed["Description"] = "made by hand"
    assert iam.template_changes(deployed, iam.template()) == [
        "added AWSIAMInstanceProfileControllers", "changed AWSIAMManagedPolicyCloudProviderNodes",
        "removed AWSIAMRoleEKSControlPlane", "template Description"]
    assert iam.template_changes(iam.template(), iam.template()) == []
    assert iam.template_changes(None, iam.template()) == ["the deployed template could not be read"]


def test_tag_changes_ignore_aws_tags_and_unmanaged_tags():
    assert iam.tag_changes({"a": "1", "aws:cloudformation:stack-id": "x"}, {"a": "1"}) == ""
    assert iam.tag_changes({"a": "1"}, None) == ""
    assert iam.tag_changes({"a": "1", "b": "2"}, {"a": "9", "c": "3"}) == "tags +c -b ~a"


# --- options --------------------------------------------------------------------------------


def test_option_errors_name_the_option_and_the_fix():
    assert iam.option_errors(NAME, {"team": "x"}, 900) == []
    errors = iam.option_errors("bad_name", dict(("k%d" % i, i) for i in range(51)), -5)
    assert errors[0].startswith("stack_name: 'bad_name' is not a CloudFormation stack name; use up to 128 letters")
    assert errors[1].startswith("wait_timeout: -5 is not a number of seconds")
    assert errors[2] == "tags: 51 tags given; a stack takes at most 50"
    assert iam.option_errors("a" * 129, None, 1)[0].startswith("stack_name:")
    assert "shorten it" in iam.option_errors(NAME, {"k": "v" * 257}, 1)[0]


# --- plans ----------------------------------------------------------------------------------


def test_missing_stack_plans_a_create_and_a_wait_that_call_cloudformation():
    cfn = mock.MagicMock()
    cfn.create_stack.return_value = {"StackId": STACK_ID}
    plan = iam.plan_stack_present(ctx(cfn, 120), None, NAME, iam.template(), {"team": 7})
    assert actions(plan) == [("create", "3 InstanceProfile, 4 ManagedPolicy, 3 Role"), ("wait", "CREATE_COMPLETE")]
    cfn.assert_not_called()
    plan.apply()
    kwargs = cfn.create_stack.call_args.kwargs
    assert kwargs["StackName"] == NAME and kwargs["Capabilities"] == ["CAPABILITY_NAMED_IAM"] and kwargs["aws_retry"] is True
    assert kwargs["Tags"] == [{"Key": "team", "Value": "7"}]
    assert json.loads(kwargs["TemplateBody"]) == iam.template()
    cfn.get_waiter.assert_called_once_with("stack_create_complete")
    cfn.get_waiter.return_value.wait.assert_called_once_with(StackName=STACK_ID, WaiterConfig={"Delay": 10, "MaxAttempts": 12})


def test_identical_stack_plans_nothing():
    assert iam.plan_stack_present(ctx(None, 900), have(tags={"a": "b"}), NAME, iam.template(), None).actions == []
    assert iam.plan_stack_present(ctx(None, 900), have(tags={"a": "b"}), NAME, iam.template(), {"a": "b"}).actions == []


def test_changed_stack_plans_an_update_naming_what_differs():
    deployed = iam.template()
    deployed["Resources"][iam.POLICY_CONTROLLERS]["Properties"]["PolicyDocument"]["Statement"].pop()
    cfn = mock.MagicMock()
    plan = iam.plan_stack_present(ctx(cfn, 900), have(template=deployed), NAME, iam.template(), {"team": "x"})
    assert actions(plan) == [("update", "changed AWSIAMManagedPolicyControllers; tags +team"), ("wait", "UPDATE_COMPLETE")]
    plan.apply()
    kwargs = cfn.update_stack.call_args.kwargs
    assert kwargs["StackName"] == STACK_ID and kwargs["Tags"] == [{"Key": "team", "Value": "x"}]
    cfn.get_waiter.assert_called_once_with("stack_update_complete")


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED", "REVIEW_IN_PROGRESS"])
def test_stacks_that_only_allow_deletion_are_deleted_and_created_again(status):
    cfn = mock.MagicMock()
    cfn.create_stack.return_value = {"StackId": STACK_ID + "-new"}
    plan = iam.plan_stack_present(ctx(cfn, 900), have(status=status, template=False), NAME, iam.template(), None)
    assert [a.verb for a in plan.actions] == ["delete", "wait", "create", "wait"]
    assert plan.actions[0].detail.startswith(status + ": ")
    plan.apply()
    cfn.delete_stack.assert_called_once_with(StackName=STACK_ID, ClientRequestToken=mock.ANY, aws_retry=True)
    assert [c.args[0] for c in cfn.get_waiter.call_args_list] == ["stack_delete_complete", "stack_create_complete"]


@pytest.mark.parametrize("status", ["UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED"])
def test_a_failed_update_rollback_raises_with_the_fix(status):
    with pytest.raises(iam.StackStateError, match="continue-update-rollback"):
        iam.plan_stack_present(ctx(None, 900), have(status=status), NAME, iam.template(), None)


def test_absent_plans_a_delete_by_id_or_nothing():
    assert iam.plan_stack_absent(ctx(None, 900), None).actions == []
    cfn = mock.MagicMock()
    plan = iam.plan_stack_absent(ctx(cfn, 900), have())
    assert [a.verb for a in plan.actions] == ["delete", "wait"]
    plan.apply()
    assert cfn.delete_stack.call_args.kwargs["StackName"] == STACK_ID


def test_in_progress_excludes_review():
    assert iam.in_progress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    assert iam.in_progress("DELETE_IN_PROGRESS")
    assert not iam.in_progress("REVIEW_IN_PROGRESS")
    assert not iam.in_progress("UPDATE_COMPLETE")


def test_waiter_attempts_cover_the_timeout():
    assert aws_cfn.stack_waiter_config(900) == {"Delay": 10, "MaxAttempts": 90}
    assert aws_cfn.stack_waiter_config(1) == {"Delay": 10, "MaxAttempts": 1}


def test_a_failed_wait_reports_the_status_and_the_failure_reasons():
    cfn = mock.MagicMock()
    cfn.get_waiter.return_value.wait.side_effect = botocore.exceptions.WaiterError(
        name="StackCreateComplete", reason="terminal failure", last_response={})
    cfn.describe_stacks.return_value = {"Stacks": [{"StackId": STACK_ID, "StackName": NAME, "StackStatus": "ROLLBACK_COMPLETE"}]}
    cfn.describe_stack_events.return_value = {"StackEvents": [
        {"LogicalResourceId": NAME, "ResourceStatus": "ROLLBACK_COMPLETE"},
        {"LogicalResourceId": iam.ROLE_NODES, "ResourceStatus": "CREATE_FAILED",
         "ResourceStatusReason": "nodes.cluster-api-provider-aws.sigs.k8s.io already exists"}]}
    with pytest.raises(aws_cfn.CloudFormationError) as raised:
        aws_cfn.wait_for(cfn, STACK_ID, 60, "CREATE_COMPLETE")
    assert raised.value.message == (
        "Stack %s did not reach CREATE_COMPLETE within 60s: it is ROLLBACK_COMPLETE; "
        "AWSIAMRoleNodes CREATE_FAILED: nodes.cluster-api-provider-aws.sigs.k8s.io already exists" % STACK_ID)
