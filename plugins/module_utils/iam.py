# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IAM that ``clusterawsadm bootstrap iam create-cloudformation-stack`` makes, and its stack.

``template()`` is CAPA's bootstrap template with EKS disabled and the EBS CSI policy enabled
(``cmd/clusterawsadm/cloudformation/bootstrap``, AWSIAMConfiguration
``spec.controlPlane.enableCSIPolicy: true``): the control-plane, nodes and controllers roles with
their instance profiles, the three managed policies and the EBS CSI controller's policy (on the
control-plane role, where the addons role runs the driver's controller), with every action and
resource ARN CAPA writes. The logical ids are CAPA's, so a stack that clusterawsadm made is
updated in place, never replaced.

The stack follows want -> have -> plan: ``plan_present(ctx, ...)`` / ``plan_absent(ctx, ...)``
read it once through aws/cloudformation (waiting out an operation in progress), turn the
difference into actions, and leave the stack's results in ``plan.returns``; the deployed
template is compared with the wanted one as data, never as text.
"""

import datetime
import json
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, cast

from ansible.module_utils.common.yaml import HAS_YAML
from ansible.module_utils.common.yaml import yaml_load

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from . import naming
from .aws import cloudformation as aws_cfn
from .context import Context
from .errors import KubeclusterError
from .plan import Plan

Resource = Dict[str, Any]
Template = Dict[str, Any]
Tags = Dict[str, str]

STACK_KIND = "cloudformation stack"
TEMPLATE_FORMAT_VERSION = "2010-09-09"
POLICY_VERSION = "2012-10-17"

# CAPA's logical ids (cmd/clusterawsadm/cloudformation/bootstrap/template.go).
ROLE_CONTROL_PLANE = "AWSIAMRoleControlPlane"
ROLE_CONTROLLERS = "AWSIAMRoleControllers"
ROLE_NODES = "AWSIAMRoleNodes"
PROFILE_CONTROL_PLANE = "AWSIAMInstanceProfileControlPlane"
PROFILE_CONTROLLERS = "AWSIAMInstanceProfileControllers"
PROFILE_NODES = "AWSIAMInstanceProfileNodes"
POLICY_CONTROL_PLANE = "AWSIAMManagedPolicyCloudProviderControlPlane"
POLICY_NODES = "AWSIAMManagedPolicyCloudProviderNodes"
POLICY_CONTROLLERS = "AWSIAMManagedPolicyControllers"
POLICY_CSI = "AWSEBSCSIPolicyController"
CSI_POLICY_NAME = "csi" + naming.IAM_SUFFIX

# Cloud provider AWS on the control plane (cloud_provider_integration_control_plane.go).
CONTROL_PLANE_ACTIONS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeTags",
    "ec2:AssignIpv6Addresses",
    "ec2:DescribeInstances",
    "ec2:DescribeImages",
    "ec2:DescribeRegions",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVolumes",
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyVolume",
    "ec2:AttachVolume",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteVolume",
    "ec2:DetachVolume",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:DescribeVpcs",
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:AttachLoadBalancerToSubnets",
    "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateLoadBalancerPolicy",
    "elasticloadbalancing:CreateLoadBalancerListeners",
    "elasticloadbalancing:ConfigureHealthCheck",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteLoadBalancerListeners",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DetachLoadBalancerFromSubnets",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerPolicies",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
    "iam:CreateServiceLinkedRole",
    "kms:DescribeKey",
]

# Cloud provider AWS on every node (cloud_provider_integration_node.go).
NODES_ACTIONS = [
    "ec2:AssignIpv6Addresses",
    "ec2:DescribeInstances",
    "ec2:DescribeRegions",
    "ec2:CreateTags",
    "ec2:DescribeTags",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeInstanceTypes",
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetRepositoryPolicy",
    "ecr:DescribeRepositories",
    "ecr:ListImages",
    "ecr:BatchGetImage",
]

# CAPA's default secure-secrets backend: bootstrap data in Secrets Manager (cluster_api_node.go).
SECRETS_RESOURCE = "arn:*:secretsmanager:*:*:secret:aws.cluster.x-k8s.io/*"
NODES_SECRET_ACTIONS = ["secretsmanager:DeleteSecret", "secretsmanager:GetSecretValue"]

# The EBS CSI driver's controller (csi.go csiControllerPolicy, from the driver's example IAM
# policy): what clusterawsadm adds with AWSIAMConfiguration spec.controlPlane.enableCSIPolicy.
CSI_CONTROLLER_ACTIONS = [
    "ec2:AttachVolume",
    "ec2:CreateSnapshot",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:DeleteSnapshot",
    "ec2:DeleteTags",
    "ec2:DeleteVolume",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInstances",
    "ec2:DescribeSnapshots",
    "ec2:DescribeTags",
    "ec2:DescribeVolumes",
    "ec2:DescribeVolumesModifications",
    "ec2:DetachVolume",
    "ec2:ModifyVolume",
]

# SSM Session Manager on the nodes (cluster_api_node.go sessionManagerPolicy).
SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "s3:GetEncryptionConfiguration",
]

# The CAPA controllers (cluster_api_controller.go ControllersPolicy). CAPA lists
# ec2:DescribeInstanceTypes twice; it is kept so the policy document matches a
# clusterawsadm stack exactly and no update is planned for it.
CONTROLLERS_ACTIONS = [
    "ec2:DescribeIpamPools",
    "ec2:AllocateIpamPoolCidr",
    "ec2:AttachNetworkInterface",
    "ec2:DetachNetworkInterface",
    "ec2:AllocateAddress",
    "ec2:AssignIpv6Addresses",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "ec2:AssociateRouteTable",
    "ec2:AssociateVpcCidrBlock",
    "ec2:AttachInternetGateway",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CreateCarrierGateway",
    "ec2:CreateInternetGateway",
    "ec2:CreateEgressOnlyInternetGateway",
    "ec2:CreateNatGateway",
    "ec2:CreateNetworkInterface",
    "ec2:CreateRoute",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
    "ec2:CreateVpcEndpoint",
    "ec2:DisassociateVpcCidrBlock",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifyVpcEndpoint",
    "ec2:DeleteCarrierGateway",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteEgressOnlyInternetGateway",
    "ec2:DeleteNatGateway",
    "ec2:DeleteRouteTable",
    "ec2:ReplaceRoute",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSubnet",
    "ec2:DeleteTags",
    "ec2:DeleteVpc",
    "ec2:DeleteVpcEndpoints",
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeCarrierGateways",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeEgressOnlyInternetGateways",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeImages",
    "ec2:DescribeNatGateways",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeNetworkInterfaceAttribute",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeVpcEndpoints",
    "ec2:DescribeVolumes",
    "ec2:DescribeTags",
    "ec2:DetachInternetGateway",
    "ec2:DisassociateRouteTable",
    "ec2:DisassociateAddress",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:ModifySubnetAttribute",
    "ec2:ReleaseAddress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "tag:GetResources",
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:ConfigureHealthCheck",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
    "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
    "elasticloadbalancing:RemoveTags",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeleteListener",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeInstanceRefreshes",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteLaunchTemplateVersions",
    "ec2:DescribeKeyPairs",
    "ec2:ModifyInstanceMetadataOptions",
]

AUTOSCALING_GROUP_RESOURCE = "arn:*:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*"
CONTROLLERS_AUTOSCALING_ACTIONS = [
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:CreateOrUpdateTags",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:DeleteAutoScalingGroup",
    "autoscaling:DeleteTags",
]

# The service-linked roles the controllers may create: (service, role path under aws-service-role/).
SERVICE_LINKED_ROLES = [
    ("autoscaling.amazonaws.com", "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"),
    ("elasticloadbalancing.amazonaws.com", "elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"),
    ("spot.amazonaws.com", "spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
]

# Controllers may hand only the collection's own roles to instances.
PASS_ROLE_RESOURCE = "arn:*:iam::*:role/*" + naming.IAM_SUFFIX
CONTROLLERS_SECRET_ACTIONS = ["secretsmanager:CreateSecret", "secretsmanager:DeleteSecret", "secretsmanager:TagResource"]

CONTROL_PLANE_DESCRIPTION = "For the Kubernetes Cloud Provider AWS Control Plane"
CSI_DESCRIPTION = "For the AWS EBS CSI Driver for Kubernetes"
NODES_DESCRIPTION = "For the Kubernetes Cloud Provider AWS nodes"
CONTROLLERS_DESCRIPTION = "For the Kubernetes Cluster API Provider AWS Controllers"


def _ref(logical_id: str) -> Dict[str, str]:
    return {"Ref": logical_id}


def _statement(actions: Iterable[str], resources: Iterable[str], condition: Optional[Resource] = None) -> Resource:
    statement: Resource = {"Action": list(actions), "Effect": "Allow", "Resource": list(resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def _service_linked_role_statement(service: str, role_path: str) -> Resource:
    return _statement(["iam:CreateServiceLinkedRole"], ["arn:*:iam::*:role/aws-service-role/" + role_path],
                      condition={"StringLike": {"iam:AWSServiceName": service}})


def _policy_document(statements: List[Resource]) -> Resource:
    return {"Statement": statements, "Version": POLICY_VERSION}


def _role(role_name: str) -> Resource:
    trust = _policy_document([{
        "Action": ["sts:AssumeRole"],
        "Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com"]},
    }])
    return {"Properties": {"AssumeRolePolicyDocument": trust, "RoleName": role_name}, "Type": "AWS::IAM::Role"}


def _instance_profile(profile_name: str, role_id: str) -> Resource:
    return {"Properties": {"InstanceProfileName": profile_name, "Roles": [_ref(role_id)]}, "Type": "AWS::IAM::InstanceProfile"}


def _managed_policy(policy_name: str, description: str, statements: List[Resource], role_ids: List[str]) -> Resource:
    return {
        "Properties": {
            "Description": description,
            "ManagedPolicyName": policy_name,
            "PolicyDocument": _policy_document(statements),
            "Roles": [_ref(role_id) for role_id in role_ids],
        },
        "Type": "AWS::IAM::ManagedPolicy",
    }


def control_plane_statements() -> List[Resource]:
    return [_statement(CONTROL_PLANE_ACTIONS, ["*"])]


def nodes_statements() -> List[Resource]:
    return [
        _statement(NODES_ACTIONS, ["*"]),
        _statement(NODES_SECRET_ACTIONS, [SECRETS_RESOURCE]),
        _statement(SESSION_MANAGER_ACTIONS, ["*"]),
    ]


def csi_statements() -> List[Resource]:
    return [_statement(CSI_CONTROLLER_ACTIONS, ["*"])]


def controllers_statements() -> List[Resource]:
    statements = [
        _statement(CONTROLLERS_ACTIONS, ["*"]),
        _statement(CONTROLLERS_AUTOSCALING_ACTIONS, [AUTOSCALING_GROUP_RESOURCE]),
    ]
    statements.extend(_service_linked_role_statement(service, path) for service, path in SERVICE_LINKED_ROLES)
    statements.append(_statement(["iam:PassRole"], [PASS_ROLE_RESOURCE]))
    statements.append(_statement(CONTROLLERS_SECRET_ACTIONS, [SECRETS_RESOURCE]))
    return statements


def template() -> Template:
    """CAPA's bootstrap CloudFormation template (EKS disabled) as a JSON-compatible dict."""
    resources = {
        PROFILE_CONTROL_PLANE: _instance_profile(naming.CONTROL_PLANE_PROFILE, ROLE_CONTROL_PLANE),
        PROFILE_CONTROLLERS: _instance_profile(naming.CONTROLLERS_PROFILE, ROLE_CONTROLLERS),
        PROFILE_NODES: _instance_profile(naming.NODES_PROFILE, ROLE_NODES),
        POLICY_CONTROL_PLANE: _managed_policy(naming.CONTROL_PLANE_PROFILE, CONTROL_PLANE_DESCRIPTION,
                                              control_plane_statements(), [ROLE_CONTROL_PLANE]),
        POLICY_NODES: _managed_policy(naming.NODES_PROFILE, NODES_DESCRIPTION, nodes_statements(),
                                      [ROLE_CONTROL_PLANE, ROLE_NODES]),
        # Attached to the control plane too, so a cluster that becomes its own management cluster works.
        POLICY_CONTROLLERS: _managed_policy(naming.CONTROLLERS_PROFILE, CONTROLLERS_DESCRIPTION, controllers_statements(),
                                            [ROLE_CONTROLLERS, ROLE_CONTROL_PLANE]),
        # clusterawsadm's enableCSIPolicy: the addons role runs the EBS CSI controller on the control
        # plane, so the policy goes on that role (clusterawsadm's own attachment is inverted, CAPA#3527:
        # with the option on it attaches the policy to no role).
        POLICY_CSI: _managed_policy(CSI_POLICY_NAME, CSI_DESCRIPTION, csi_statements(), [ROLE_CONTROL_PLANE]),
        ROLE_CONTROL_PLANE: _role(naming.CONTROL_PLANE_PROFILE),
        ROLE_CONTROLLERS: _role(naming.CONTROLLERS_PROFILE),
        ROLE_NODES: _role(naming.NODES_PROFILE),
    }
    return {"AWSTemplateFormatVersion": TEMPLATE_FORMAT_VERSION, "Resources": resources}


def template_body(tmpl: Template) -> str:
    """The template as JSON text, keys sorted as clusterawsadm sorts them, stable from run to run."""
    return json.dumps(tmpl, indent=2, sort_keys=True)


def _dates_as_text(value: Any) -> Any:
    # Unquoted YAML dates (clusterawsadm writes `Version: 2012-10-17`) load as dates; CloudFormation reads them as text.
    if isinstance(value, dict):
        return {key: _dates_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(item) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def parse_template_body(body: Any) -> Optional[Template]:
    """A deployed template as data, whether GetTemplate gave a decoded JSON dict, JSON text or YAML text.

    Returns None when it cannot be read as a template (then the stack is updated with ours).
    """
    if isinstance(body, dict):
        data = json.loads(json.dumps(body))
    else:
        data = _load_text(body)
    return data if isinstance(data, dict) else None


def _load_text(body: Any) -> Any:
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        pass
    if not HAS_YAML:
        return None
    try:
        return _dates_as_text(yaml_load(body))
    except Exception:  # pylint: disable=broad-except
        return None  # a YAML error of any kind means the same: not a template we can compare


# ---------------------------------------------------------------------------------------------
# Options


_STACK_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")
MAX_STACK_TAGS = 50


def option_errors(stack_name: Optional[str], tags: Optional[Dict[str, Any]], wait_timeout: int) -> List[str]:
    """Problems with the module's options, each naming the option and the fix; empty when all is well."""
    errors: List[str] = []
    if not _STACK_NAME.match(stack_name or ""):
        errors.append("stack_name: %r is not a CloudFormation stack name; use up to 128 letters, digits and hyphens, "
                      "starting with a letter" % (stack_name,))
    if wait_timeout < 1:
        errors.append("wait_timeout: %d is not a number of seconds; use a positive number such as 900" % wait_timeout)
    tags = tags or {}
    if len(tags) > MAX_STACK_TAGS:
        errors.append("tags: %d tags given; a stack takes at most %d" % (len(tags), MAX_STACK_TAGS))
    for key, value in sorted(tags.items()):
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            errors.append("tags: key %r is not allowed; use 1-128 characters not starting with 'aws:'" % key)
        if len(str(value)) > 256:
            errors.append("tags: the value of %r is longer than 256 characters; shorten it" % key)
    return errors


def _string_tags(tags: Dict[str, Any]) -> Tags:
    return {key: str(value) for key, value in tags.items()}


# ---------------------------------------------------------------------------------------------
# Have


class StackStateError(KubeclusterError):
    """The stack is in a state only a person can resolve; the message says how."""


# Stable states UpdateStack accepts.
UPDATABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "UPDATE_FAILED",
             "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE")

# States a stack cannot leave but by deletion, and why.
RECREATE = {
    "ROLLBACK_COMPLETE": "a failed create left it; such a stack can only be deleted",
    "ROLLBACK_FAILED": "a failed create could not roll back; such a stack can only be deleted",
    "CREATE_FAILED": "its create failed with rollback disabled; such a stack can only be deleted",
    "DELETE_FAILED": "an earlier delete failed",
    "REVIEW_IN_PROGRESS": "it holds only an unexecuted change set",
}

# States that need ContinueUpdateRollback, which skips resources only a person can choose.
BLOCKED = ("UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED")


def in_progress(status: str) -> bool:
    # REVIEW_IN_PROGRESS never ends on its own: a change set waits for someone to execute it.
    return status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS"


def read_stack(ctx: Context, stack_name: str, with_template: bool = True) -> Optional[Resource]:
    """Have: the stack as a dict (id, name, status, tags, template, stack) or None.

    An operation in progress is waited for first (at most ``ctx.wait_timeout``), since neither
    an update nor a delete may start before it ends. ``template`` is the deployed template as
    data, read only when the stack can be updated.
    """
    cfn = ctx.cloudformation
    stack = aws_cfn.describe_stack(cfn, stack_name)
    if stack and in_progress(stack["StackStatus"]):
        aws_cfn.wait_until_stable(cfn, stack_name, ctx.wait_timeout)
        stack = aws_cfn.describe_stack(cfn, stack_name)
    if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
        return None
    have: Resource = {
        "id": stack["StackId"],
        "name": stack["StackName"],
        "status": stack["StackStatus"],
        "tags": boto3_tag_list_to_ansible_dict(stack.get("Tags", [])),
        "template": None,
        "stack": stack,
    }
    if with_template and stack["StackStatus"] in UPDATABLE:
        have["template"] = parse_template_body(aws_cfn.get_template_body(cfn, stack["StackId"]))
    return have


# ---------------------------------------------------------------------------------------------
# Plans


def _user_tags(tags: Optional[Tags]) -> Tags:
    return {key: value for key, value in (tags or {}).items() if not key.startswith("aws:")}


def tag_changes(have_tags: Optional[Tags], want_tags: Optional[Tags]) -> str:
    """A short text of how the stack's tags differ, or "" when they match or are not managed (None)."""
    if want_tags is None:
        return ""
    have_tags = _user_tags(have_tags)
    added = sorted(set(want_tags) - set(have_tags))
    removed = sorted(set(have_tags) - set(want_tags))
    changed = sorted(key for key in set(want_tags) & set(have_tags) if want_tags[key] != have_tags[key])
    parts = ["+" + key for key in added] + ["-" + key for key in removed] + ["~" + key for key in changed]
    return "tags %s" % " ".join(parts) if parts else ""


def template_changes(deployed: Optional[Template], wanted: Template) -> List[str]:
    """Short texts naming the resources (by logical id) and settings that differ; empty when equal."""
    if deployed is None:
        return ["the deployed template could not be read"]
    if deployed == wanted:
        return []
    old = deployed.get("Resources") or {}
    new = wanted["Resources"]
    changes = []
    for label, ids in (("added", sorted(set(new) - set(old))),
                       ("changed", sorted(key for key in set(new) & set(old) if new[key] != old[key])),
                       ("removed", sorted(set(old) - set(new)))):
        if ids:
            changes.append("%s %s" % (label, ", ".join(ids)))
    settings = sorted(key for key in set(deployed) | set(wanted) if key != "Resources" and deployed.get(key) != wanted.get(key))
    if settings:
        changes.append("template %s" % ", ".join(settings))
    return changes


def _summary(tmpl: Template) -> str:
    counts: Dict[str, int] = {}
    for resource in tmpl["Resources"].values():
        kind = resource["Type"].split("::")[-1]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join("%d %s" % (counts[kind], kind) for kind in sorted(counts))


def _add_create(plan: Plan, ctx: Context, stack_name: str, tmpl: Template, tags: Optional[Tags]) -> None:
    cfn = ctx.cloudformation
    body = template_body(tmpl)

    def create() -> None:
        plan.refs["stack_id"] = aws_cfn.create_stack(cfn, stack_name, body, tags)

    plan.create(STACK_KIND, stack_name, create, detail=_summary(tmpl))
    # create() above ran first and stored the new stack's id.
    plan.wait(STACK_KIND, stack_name, lambda: aws_cfn.wait_for(cfn, cast(str, plan.refs["stack_id"]), ctx.wait_timeout, "CREATE_COMPLETE"),
              detail="CREATE_COMPLETE")


def _add_delete(plan: Plan, ctx: Context, have: Resource, why: str) -> None:
    cfn = ctx.cloudformation
    plan.delete(STACK_KIND, have["name"], lambda: aws_cfn.delete_stack(cfn, have["id"]), detail="%s: %s" % (have["status"], why))
    plan.wait(STACK_KIND, have["name"], lambda: aws_cfn.wait_for(cfn, have["id"], ctx.wait_timeout, "DELETE_COMPLETE"),
              detail="DELETE_COMPLETE")


def plan_stack_present(ctx: Context, have: Optional[Resource], stack_name: str, tmpl: Template,
                       tags: Optional[Dict[str, Any]]) -> Plan:
    """The actions that make the stack ``have`` (None: there is none) exist with tmpl (and tags, when given)."""
    plan = Plan()
    wanted_tags = None if tags is None else _string_tags(tags)
    if have is None:
        _add_create(plan, ctx, stack_name, tmpl, wanted_tags)
        return plan
    plan.refs["stack_id"] = have["id"]
    if have["status"] in BLOCKED:
        raise StackStateError(
            "Stack %s is %s: run `aws cloudformation continue-update-rollback --stack-name %s` (skipping the resources "
            "it names), or delete it with state=absent, then run again" % (stack_name, have["status"], stack_name))
    if have["status"] in RECREATE:
        _add_delete(plan, ctx, have, RECREATE[have["status"]])
        _add_create(plan, ctx, stack_name, tmpl, wanted_tags)
        return plan
    changes = template_changes(have["template"], tmpl)
    tag_change = tag_changes(have["tags"], wanted_tags)
    if tag_change:
        changes.append(tag_change)
    if changes:
        cfn = ctx.cloudformation
        body = template_body(tmpl)
        plan.update(STACK_KIND, stack_name, lambda: aws_cfn.update_stack(cfn, have["id"], body, wanted_tags), detail="; ".join(changes))
        plan.wait(STACK_KIND, stack_name, lambda: aws_cfn.wait_for(cfn, have["id"], ctx.wait_timeout, "UPDATE_COMPLETE"),
                  detail="UPDATE_COMPLETE")
    return plan


def plan_stack_absent(ctx: Context, have: Optional[Resource]) -> Plan:
    """The actions that delete the stack ``have`` and with it every role, profile and policy it made."""
    plan = Plan()
    if have is not None:
        plan.refs["stack_id"] = have["id"]
        _add_delete(plan, ctx, have, "deletes its IAM roles, instance profiles and managed policies")
    return plan


def plan_present(ctx: Context, stack_name: str = naming.IAM_STACK_NAME, tags: Optional[Dict[str, Any]] = None,
                 tmpl: Optional[Template] = None) -> Plan:
    """Plan the stack of CAPA's template (``tmpl``, template() when not given), with ``tags`` when given.

    ``plan.returns`` holds stack_id, stack_status, outputs and resources, read after the apply.
    Raises StackStateError for a stack only a person can unblock.
    """
    tmpl = template() if tmpl is None else tmpl
    have = read_stack(ctx, stack_name)
    plan = plan_stack_present(ctx, have, stack_name, tmpl, tags)
    known = have["stack"] if have and not plan.actions else None
    plan.returns.update(stack_results(ctx, stack_name, known))
    return plan


def plan_absent(ctx: Context, stack_name: str = naming.IAM_STACK_NAME) -> Plan:
    """Plan deleting the stack; ``plan.returns`` holds its results (all empty once it is gone)."""
    have = read_stack(ctx, stack_name, with_template=False)
    plan = plan_stack_absent(ctx, have)
    known = have["stack"] if have and not plan.actions else None
    plan.returns.update(stack_results(ctx, have["id"] if have else stack_name, known))
    return plan


# ---------------------------------------------------------------------------------------------
# Results


def _resource_view(summary: Resource) -> Resource:
    return {
        "logical_id": summary["LogicalResourceId"],
        "physical_id": summary.get("PhysicalResourceId"),
        "type": summary["ResourceType"],
        "status": summary["ResourceStatus"],
    }


def stack_view(ctx: Context, stack_ref: str, known: Optional[Resource] = None) -> Resource:
    """stack_id, stack_status, outputs and resources of the stack now; ``known`` saves the describe."""
    cfn = ctx.cloudformation
    stack = known or aws_cfn.describe_stack(cfn, stack_ref)
    if stack is None:
        return {"stack_id": None, "stack_status": None, "outputs": {}, "resources": []}
    view: Resource = {"stack_id": stack["StackId"], "stack_status": stack["StackStatus"], "outputs": {}, "resources": []}
    if stack["StackStatus"] != "DELETE_COMPLETE":
        view["outputs"] = {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs") or []}
        view["resources"] = sorted((_resource_view(s) for s in aws_cfn.list_stack_resources(cfn, stack["StackId"])),
                                   key=lambda r: r["logical_id"])
    return view


STACK_RESULTS = ("stack_id", "stack_status", "outputs", "resources")


def stack_results(ctx: Context, stack_ref: str, known: Optional[Resource] = None) -> Dict[str, Callable[[], Any]]:
    """The module's stack results as callables for plan.returns: read once, after the plan was applied."""
    cache: Dict[str, Resource] = {}

    def field(key: str) -> Callable[[], Any]:
        def value() -> Any:
            if "view" not in cache:
                cache["view"] = stack_view(ctx, stack_ref, known)
            return cache["view"][key]
        return value

    return {key: field(key) for key in STACK_RESULTS}
