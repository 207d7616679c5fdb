#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: iam_stack
short_description: The IAM roles, instance profiles and policies of Cluster API's AWS provider, as a CloudFormation stack
version_added: 1.0.0
description:
  - Creates, updates or deletes the CloudFormation stack that
    C(clusterawsadm bootstrap iam create-cloudformation-stack) makes, or only renders its
    template like C(clusterawsadm bootstrap iam print-cloudformation-template).
  - The template is CAPA's, EKS disabled - the roles and instance profiles
    C(control-plane.cluster-api-provider-aws.sigs.k8s.io),
    C(nodes.cluster-api-provider-aws.sigs.k8s.io) and
    C(controllers.cluster-api-provider-aws.sigs.k8s.io), each trusting C(ec2.amazonaws.com), and
    the managed policies of the same names; the control-plane policy is attached to the
    control-plane role, the nodes policy to the control-plane and nodes roles, the controllers
    policy to the controllers and control-plane roles.
  - It also has the EBS CSI driver controller's policy C(csi.cluster-api-provider-aws.sigs.k8s.io)
    (clusterawsadm's AWSIAMConfiguration C(spec.controlPlane.enableCSIPolicy), logical id
    C(AWSEBSCSIPolicyController)), attached to the control-plane role, where the addons role
    runs that controller; the nodes role gets no volume permissions.
  - The resources keep CAPA's logical ids, so a stack that clusterawsadm made (with EKS
    enabled or not) is updated in place; the EKS-only resources are removed from it.
  - IAM is global, but the stack lives in one region; run the module once per account.
  - The deployed template is compared with this one as data (JSON or YAML alike); when they
    and the tags match, only read calls are made and nothing changes.
  - This module does not take the cluster spec.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  state:
    description:
      - V(present) creates the stack, or updates it when its template or tags differ. A stack
        left in C(ROLLBACK_COMPLETE) (or another state that only allows deletion) is deleted
        and created again; a stack in C(UPDATE_ROLLBACK_FAILED) fails the module with the fix.
      - V(absent) deletes the stack and with it every role, instance profile and policy it made.
      - V(rendered) only returns the template; it makes no AWS call and needs no credentials
        or region.
      - With V(present) and V(absent), an operation already in progress on the stack is waited
        for first.
    type: str
    choices: [present, absent, rendered]
    default: present
  stack_name:
    description:
      - The CloudFormation stack's name; clusterawsadm's default is the default.
    type: str
    default: cluster-api-provider-aws-sigs-k8s-io
  tags:
    description:
      - Tags of the stack; CloudFormation puts them on the roles, instance profiles and
        policies it creates as well.
      - When set, the stack's tags are made exactly these; when unset, they are left as they are.
    type: dict
  wait_timeout:
    description:
      - Seconds to wait for each create, update or delete, and for an operation in progress.
    type: int
    default: 900
attributes:
  check_mode:
    support: full
    description: Returns the plan without making any write call.
  diff_mode:
    support: full
    description: Shows the plan; an update names the resources that differ.
notes:
  - The stack is created with C(CAPABILITY_NAMED_IAM), as it names its IAM resources.
  - C(docs/iam.md) lists the permissions the playbook runner needs.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Create or update the IAM stack
  kubecluster.aws.iam_stack:
    region: ap-northeast-2

- name: Print the CloudFormation template, without credentials
  kubecluster.aws.iam_stack:
    state: rendered
  register: iam

- name: Save it
  ansible.builtin.copy:
    content: "{{ iam.template_body }}"
    dest: bootstrap-iam.json

- name: Show what would change
  kubecluster.aws.iam_stack:
    region: ap-northeast-2
    tags:
      team: platform
  check_mode: true
  diff: true

- name: Delete the stack and its IAM resources
  kubecluster.aws.iam_stack:
    region: ap-northeast-2
    state: absent
"""

RETURN = r"""
stack_name:
  description: The stack's name.
  returned: always
  type: str
  sample: cluster-api-provider-aws-sigs-k8s-io
stack_id:
  description: The stack's id; of the deleted stack after O(state=absent); null when there is no stack.
  returned: always
  type: str
  sample: arn:aws:cloudformation:ap-northeast-2:123456789012:stack/cluster-api-provider-aws-sigs-k8s-io/0a1b2c3d-4e5f-6789-abcd-ef0123456789
stack_status:
  description: The stack's status, such as C(CREATE_COMPLETE), C(UPDATE_COMPLETE) or C(DELETE_COMPLETE); null when there is no stack.
  returned: always
  type: str
  sample: CREATE_COMPLETE
template:
  description: The CloudFormation template the module deploys.
  returned: always
  type: dict
  sample:
    AWSTemplateFormatVersion: "2010-09-09"
    Resources:
      AWSIAMRoleNodes:
        Type: AWS::IAM::Role
        Properties:
          RoleName: nodes.cluster-api-provider-aws.sigs.k8s.io
          AssumeRolePolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Action: [sts:AssumeRole]
                Effect: Allow
                Principal:
                  Service: [ec2.amazonaws.com]
template_body:
  description: The same template as JSON text, as sent to CloudFormation.
  returned: always
  type: str
  sample: '{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {}}'
outputs:
  description: The stack's outputs by key; the template defines none, so this is empty unless the stack was changed by hand.
  returned: always
  type: dict
  sample: {}
resources:
  description: The stack's resources; empty when there is no stack.
  returned: always
  type: list
  elements: dict
  contains:
    logical_id:
      description: The logical id in the template.
      type: str
      sample: AWSIAMRoleNodes
    physical_id:
      description: The IAM name or ARN.
      type: str
      sample: nodes.cluster-api-provider-aws.sigs.k8s.io
    type:
      description: The CloudFormation resource type.
      type: str
      sample: AWS::IAM::Role
    status:
      description: The resource's status.
      type: str
      sample: CREATE_COMPLETE
plan:
  description: The actions, in order; in check mode the ones that would run.
  returned: always
  type: list
  elements: dict
  contains:
    action:
      description: create, update, delete or wait.
      type: str
      sample: update
    resource:
      description: The kind of resource.
      type: str
      sample: cloudformation stack
    name:
      description: The stack's name.
      type: str
      sample: cluster-api-provider-aws-sigs-k8s-io
    detail:
      description: What the action is about; for an update, the logical ids of the resources that differ.
      type: str
      sample: changed AWSIAMManagedPolicyControllers; removed AWSIAMManagedPolicyControllersEKS, AWSIAMRoleEKSControlPlane
diff:
  description: The rendered plan, under C(--diff).
  returned: when diff mode is on
  type: dict
  contains:
    prepared:
      description: One line per action.
      type: str
      sample: |
        CloudFormation stack cluster-api-provider-aws-sigs-k8s-io in ap-northeast-2
        ~ cloudformation stack cluster-api-provider-aws-sigs-k8s-io (changed AWSIAMRoleNodes)
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.kubecluster.aws.plugins.module_utils import iam
from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present", "absent", "rendered"]),
        stack_name=dict(type="str", default=naming.IAM_STACK_NAME),
        tags=dict(type="dict"),
        wait_timeout=dict(type="int", default=900),
    )
    module = AnsibleAWSModule(argument_spec=runner.connection_argument_spec(argument_spec), default_args=False, supports_check_mode=True)
    params = module.params
    errors = iam.option_errors(params["stack_name"], params["tags"], params["wait_timeout"])
    if errors:
        module.fail_json(msg="; ".join(errors), errors=errors)

    tmpl = iam.template()
    result = dict(stack_name=params["stack_name"], template=tmpl, template_body=iam.template_body(tmpl))

    def build() -> Plan:
        if params["state"] == "rendered":
            plan = Plan("CloudFormation template of %s (rendered, no AWS call)" % params["stack_name"])
            plan.returns.update(stack_id=None, stack_status=None, outputs={}, resources=[])
        else:
            region = runner.required_region(module)
            ctx = Context.from_module(module, region, wait_timeout=params["wait_timeout"])
            if params["state"] == "present":
                plan = iam.plan_present(ctx, params["stack_name"], params["tags"], tmpl)
            else:
                plan = iam.plan_absent(ctx, params["stack_name"])
            plan.header = "CloudFormation stack %s in %s" % (params["stack_name"], region)
        plan.returns.update(result)
        return plan

    runner.reconcile(module, build)


if __name__ == "__main__":
    main()
