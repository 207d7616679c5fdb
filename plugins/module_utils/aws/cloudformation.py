# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The CloudFormation calls of the collection: the IAM stack's reads, writes and waits.

Every call raises CloudFormationError (an AnsibleAWSError naming the operation) and retries
throttling: direct calls pass ``aws_retry=True`` to the AWSRetry client ``Context.from_module``
makes. The waits use boto3's stack waiters and a StackStable waiter of our own (boto3 has no
waiter for "whatever runs now has ended"), timed by waiters.waiter_config.
"""

import uuid
from typing import Any, Dict, List, Optional

try:
    import botocore
    from botocore.waiter import WaiterModel
    from botocore.waiter import create_waiter_with_client
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_message
from ansible_collections.amazon.aws.plugins.module_utils.botocore import paginated_query_with_retries
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

from .handlers import error_handler
from .waiters import waiter_config

Client = Any
Resource = Dict[str, Any]

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
WAIT_DELAY = 10  # seconds between polls, as boto3's stack waiters
FAILURE_REASONS = 5  # the newest failure reasons an error message names


class CloudFormationError(AnsibleAWSError):  # type: ignore[misc]  # amazon.aws is read as untyped
    pass


# A stack that is not there is a ValidationError "Stack with id X does not exist".
CloudFormationErrorHandler = error_handler("CloudFormationErrorHandler", CloudFormationError,
                                           lambda: is_boto3_error_message("does not exist"))


# --- reads ------------------------------------------------------------------------------------

@CloudFormationErrorHandler.list_error_handler("describe the stack", None)
def describe_stack(cfn: Client, stack_ref: str) -> Optional[Resource]:
    """The stack by name or id as DescribeStacks gives it, or None when there is none."""
    stacks: List[Resource] = cfn.describe_stacks(StackName=stack_ref, aws_retry=True)["Stacks"]
    return stacks[0] if stacks else None


@CloudFormationErrorHandler.common_error_handler("get the stack's template")
def get_template_body(cfn: Client, stack_id: str) -> Any:
    """The deployed template as GetTemplate gives it: JSON or YAML text, or already decoded JSON."""
    return cfn.get_template(StackName=stack_id, TemplateStage="Original", aws_retry=True)["TemplateBody"]


@CloudFormationErrorHandler.list_error_handler("list the stack's resources", [])
def list_stack_resources(cfn: Client, stack_id: str) -> List[Resource]:
    answer = paginated_query_with_retries(cfn, "list_stack_resources", retry_decorator=AWSRetry.jittered_backoff(),
                                          StackName=stack_id)
    summaries: List[Resource] = answer["StackResourceSummaries"]
    return summaries


def failure_reasons(cfn: Client, stack_ref: str, limit: int = FAILURE_REASONS) -> List[str]:
    """The newest failure reasons from the stack's events, for an error message; none when they cannot be read."""
    try:
        events: List[Resource] = cfn.describe_stack_events(StackName=stack_ref, aws_retry=True)["StackEvents"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return []
    failed = [e for e in events if e.get("ResourceStatus", "").endswith("FAILED") and e.get("ResourceStatusReason")]
    return ["%s %s: %s" % (e["LogicalResourceId"], e["ResourceStatus"], e["ResourceStatusReason"]) for e in failed[:limit]]


# --- writes -----------------------------------------------------------------------------------

def _token() -> str:
    # Lets CloudFormation recognise a retried request as the same one.
    return "kubecluster-aws-" + uuid.uuid4().hex


@CloudFormationErrorHandler.common_error_handler("create the stack")
def create_stack(cfn: Client, stack_name: str, body: str, tags: Optional[Dict[str, str]]) -> str:
    """Create the stack (IAM named resources allowed); its id."""
    params: Dict[str, Any] = dict(StackName=stack_name, TemplateBody=body, Capabilities=CAPABILITIES, ClientRequestToken=_token())
    if tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    stack_id: str = cfn.create_stack(aws_retry=True, **params)["StackId"]
    return stack_id


@CloudFormationErrorHandler.common_error_handler("update the stack")
def update_stack(cfn: Client, stack_id: str, body: str, tags: Optional[Dict[str, str]]) -> None:
    """Update the stack's template, and its tags unless ``tags`` is None (then they stay)."""
    params: Dict[str, Any] = dict(StackName=stack_id, TemplateBody=body, Capabilities=CAPABILITIES, ClientRequestToken=_token())
    if tags is not None:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    try:
        cfn.update_stack(aws_retry=True, **params)
    except is_boto3_error_message("No updates are to be performed"):
        pass  # someone else made the same change between our read and this call


@CloudFormationErrorHandler.deletion_error_handler("delete the stack")
def delete_stack(cfn: Client, stack_ref: str) -> bool:
    cfn.delete_stack(StackName=stack_ref, ClientRequestToken=_token(), aws_retry=True)
    return True


# --- waits ------------------------------------------------------------------------------------

# DescribeStacks until no operation is running; a stack deleted meanwhile answers ValidationError.
_STABLE_WAITER = {
    "version": 2,
    "waiters": {
        "StackStable": {
            "operation": "DescribeStacks",
            "delay": WAIT_DELAY,
            "maxAttempts": 90,
            "acceptors": [
                {"state": "success", "matcher": "path", "expected": True,
                 "argument": "length(Stacks[?ends_with(StackStatus, '_IN_PROGRESS') && StackStatus != 'REVIEW_IN_PROGRESS']) == `0`"},
                {"state": "success", "matcher": "error", "expected": "ValidationError"},
            ],
        }
    },
}


def stack_waiter_config(timeout: float) -> Dict[str, int]:
    """The WaiterConfig of every stack wait: waiters.waiter_config at the stack waiters' delay."""
    return waiter_config(timeout, WAIT_DELAY)


def _raw_client(cfn: Client) -> Client:
    # Waiters take the botocore client; the retrying wrapper keeps it as .client.
    return getattr(cfn, "client", cfn)


def _wait(cfn: Client, waiter: Any, stack_ref: str, timeout: int, goal: str) -> None:
    try:
        waiter.wait(StackName=stack_ref, WaiterConfig=stack_waiter_config(timeout))
    except botocore.exceptions.WaiterError as error:
        stack = describe_stack(cfn, stack_ref)
        status = stack["StackStatus"] if stack else "gone"
        reasons = failure_reasons(cfn, stack_ref)
        message = "Stack %s did not reach %s within %ds: it is %s" % (stack_ref, goal, timeout, status)
        if reasons:
            message += "; " + "; ".join(reasons)
        raise CloudFormationError(message=message, exception=error) from error


def wait_until_stable(cfn: Client, stack_ref: str, timeout: int) -> None:
    """Wait out a create, update, rollback or delete someone else started."""
    waiter = create_waiter_with_client("StackStable", WaiterModel(_STABLE_WAITER), _raw_client(cfn))
    _wait(cfn, waiter, stack_ref, timeout, "a stable state")


def wait_for(cfn: Client, stack_ref: str, timeout: int, goal: str) -> None:
    """Wait with boto3's own stack waiter for goal: CREATE_COMPLETE, UPDATE_COMPLETE or DELETE_COMPLETE."""
    waiter = cfn.get_waiter("stack_%s" % goal.lower())
    _wait(cfn, waiter, stack_ref, timeout, goal)
