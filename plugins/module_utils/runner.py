# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What every kubecluster.aws module does around its service: take the spec, fail early on
bad input, make clients in the spec's region, and apply or only report the plan."""

import os
from typing import Any, Callable, Dict, List, NoReturn, Optional, Protocol, Set, Tuple, Type

try:
    import botocore
    import botocore.parsers
    import botocore.session
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_region
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from .aws import ec2 as aws_ec2
from .errors import KubeclusterError
from .plan import Plan, PlanApplyError
from .spec import ENV_DEFAULT_REGION, ENV_REGION, Spec, SpecError, cluster_input, resolve, resolve_identity, select_zones, with_region, with_zones

# A mapping, or its YAML or JSON text (an AWX survey's textarea): see take_cluster.
CLUSTER_OPTION: Dict[str, Any] = dict(type="raw", required=True)

# What an AWS call raises: amazon.aws's wrapped errors, botocore's, and an answer botocore cannot parse (an HTML page
# where AWS XML or JSON was expected: botocore's ResponseParserError is no BotoCoreError), which amazon.aws lets through.
try:
    AWS_ERRORS: Tuple[Type[Exception], ...] = (AnsibleAWSError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError,
                                               botocore.parsers.ResponseParserError)
except NameError:  # no botocore: AnsibleAWSModule fails first
    AWS_ERRORS = (AnsibleAWSError,)

# amazon.aws's connection options that carry credentials. It declares access_key no_log=False
# (an access key id names a key rather than proving it), so -vvv printed it in module_args and
# the log file kept it; an access key id still tells whose account it is and, with a leaked
# secret, is half the credential. All three are no_log here, aliases included.
CREDENTIAL_OPTIONS = ("access_key", "secret_key", "session_token")


class Module(Protocol):
    """What the runner uses of an AnsibleAWSModule (which amazon.aws does not type): the failing and
    exiting calls never return, so mypy knows a value is set after a ``try`` that fails the module."""

    params: Dict[str, Any]
    check_mode: bool
    _diff: bool

    def client(self, service: str, retry_decorator: Any = None, **extra_params: Any) -> Any:
        ...

    def fail_json(self, msg: str, **kwargs: Any) -> NoReturn:
        ...

    def fail_json_aws(self, exception: BaseException, msg: Optional[str] = None, **kwargs: Any) -> NoReturn:
        ...

    def fail_json_aws_error(self, exception: BaseException) -> NoReturn:
        ...

    def exit_json(self, **kwargs: Any) -> NoReturn:
        ...


def connection_argument_spec(argument_spec: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """amazon.aws's connection options (``region`` included) with every credential no_log, then
    ``argument_spec``'s options: the one place a kubecluster.aws module gets its connection options.

    Build the module with ``default_args=False`` so that AnsibleAWSModule does not merge its own
    connection options, with access_key logged, back in.

    ``region`` is only what the task or ``module_defaults`` gives: its fallback to AWS_REGION and
    AWS_DEFAULT_REGION is dropped, so that an exported region never contradicts a spec's (see
    connection_region and take_cluster for where the variables are read instead).
    """
    full: Dict[str, Any] = aws_argument_spec()
    for name in CREDENTIAL_OPTIONS:
        full[name] = dict(full[name], no_log=True)
    full["region"] = {key: value for key, value in full["region"].items() if key != "fallback"}
    full.update(argument_spec or {})
    return full


def cluster_module(argument_spec: Dict[str, Any], **kwargs: Any) -> AnsibleAWSModule:
    """An AnsibleAWSModule for a module taking the cluster spec, with the connection options of
    connection_argument_spec(), ``region`` included (so that ``module_defaults`` for
    ``group/kubecluster.aws.cluster`` can give it to every module), and ``cluster`` taken (take_cluster).
    """
    full = connection_argument_spec()
    full.update(argument_spec)
    full["cluster"] = CLUSTER_OPTION
    module = AnsibleAWSModule(argument_spec=full, default_args=False, supports_check_mode=True, **kwargs)
    take_cluster(module)
    return module


def profile_region(module: Module) -> Optional[str]:
    """The region boto3 finds when the module has no region option: AWS_DEFAULT_REGION, else the profile's (the
    module's ``profile`` option, else AWS_PROFILE) in ~/.aws/config (amazon.aws's get_aws_region). No AWS call."""
    region: Optional[str] = get_aws_region(module)
    return region


def connection_region(module: Module) -> Optional[str]:
    """The region of a module without a spec (or whose spec names none): the ``region`` option, then
    AWS_REGION, then AWS_DEFAULT_REGION, then the profile's region, as the AWS SDKs look."""
    return module.params.get("region") or os.environ.get(ENV_REGION) or os.environ.get(ENV_DEFAULT_REGION) or profile_region(module)


def required_region(module: Module) -> str:
    """connection_region, failing the module before any AWS call when there is none."""
    region = connection_region(module)
    if not region:
        module.fail_json(msg="this module requires a region: set its region option (or module_defaults for "
                             "group/kubecluster.aws.cluster), AWS_REGION, AWS_DEFAULT_REGION or a profile's region")
    return str(region)


def take_cluster(module: Module) -> None:
    """The module's ``cluster`` option as a mapping, with its region, in place of what was given, before any AWS call.

    A YAML or JSON text is parsed (spec.cluster_input); the region comes from the spec, else from the
    ``region`` option, AWS_REGION, AWS_DEFAULT_REGION or the profile (spec.with_region). Fails the module
    naming ``cluster`` for a text that is no spec, or ``region`` when it contradicts the spec's.
    """
    if module.params.get("cluster") is None:
        return
    try:
        raw = cluster_input(module.params["cluster"])
        module.params["cluster"] = with_region(raw, module.params.get("region"), os.environ, lambda: profile_region(module))
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)


def load_spec(module: Module) -> Spec:
    """Resolve the module's ``cluster`` option, failing the module (before any AWS call) if invalid."""
    try:
        return resolve(module.params["cluster"], os.environ)
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)


def load_identity(module: Module) -> Spec:
    """Only the name and region of the module's ``cluster`` option (for deleting, locking, reading),
    failing the module before any AWS call when either is missing or invalid."""
    try:
        return resolve_identity(module.params["cluster"], os.environ)
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)


def load_for_state(module: Module) -> Spec:
    """The full spec for ``state: present``; only its name and region for ``state: absent``.

    A delete finds what to remove by ownership tags, so a spec that no longer validates
    (written for another version of the collection, or edited since) can still be deleted.
    """
    if module.params.get("state") == "absent":
        return load_identity(module)
    return load_spec(module)


def client(module: Module, spec: Spec, service: str) -> Any:
    """A boto3 client for the spec's region.

    amazon.aws wrappers (ec2.describe_subnets, ...) retry on their own; direct calls opt in
    to the same throttling retries with ``aws_retry=True``.
    """
    return module.client(service, region=spec["region"], retry_decorator=AWSRetry.jittered_backoff())


def region_zones(ec2: Any) -> List[str]:
    """Names of the region's available zones (Local and Wavelength zones excluded)."""
    zones = aws_ec2.describe_availability_zones(
        ec2, Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
    )
    return [zone["ZoneName"] for zone in zones]


def resolve_zones(module: Module, spec: Spec, ec2: Any) -> Spec:
    """The spec with its availability zones as names, reading the region only when given a count."""
    wanted = spec["network"]["availability_zones"]
    try:
        if isinstance(wanted, list) and all(isinstance(d["availability_zones"], list) for d in spec["machine_deployments"]):
            return with_zones(spec, wanted)
        return with_zones(spec, select_zones(spec, region_zones(ec2)))
    except SpecError as error:
        module.fail_json(msg=error.message, errors=error.errors)
    except AnsibleAWSError as error:
        fail_aws(module, error)


def known_regions() -> Set[str]:
    """The EC2 regions of every partition botocore knows (its endpoint data, no AWS call)."""
    session = botocore.session.get_session()
    return {region for partition in session.get_available_partitions() for region in session.get_available_regions("ec2", partition)}


def no_answer(error: Exception) -> bool:
    """Whether an AWS call got no AWS answer: no endpoint to connect to, an answer that is no AWS response (an HTML page,
    garbage) or a server error without an AWS error code, which is what a region that does not exist gives."""
    cause = error.exception if isinstance(error, AnsibleAWSError) and error.exception is not None else error
    if isinstance(cause, (botocore.exceptions.EndpointConnectionError, botocore.parsers.ResponseParserError)):
        return True
    if isinstance(cause, botocore.exceptions.ClientError):
        code = str(cause.response.get("Error", {}).get("Code", ""))
        return not code or code.isdigit()
    return False


def module_region(module: Module) -> Optional[str]:
    """The region the module's calls go to: its spec's (take_cluster has parsed a text and filled in its region),
    else the one a module without a spec uses (connection_region)."""
    if isinstance(module.params.get("cluster"), dict):
        try:
            return str(resolve_identity(module.params["cluster"], os.environ)["region"])
        except SpecError:
            return None
    return connection_region(module)


def unknown_region(module: Module, error: Exception) -> Optional[str]:
    """The one-line failure for an AWS call that got no answer in a region botocore does not know, or None."""
    region = module_region(module)
    if not region or not no_answer(error) or region in known_regions():
        return None
    return "no such region %s; regions are like us-east-1 (set cluster.region, or AWS_REGION, to a region of your account)" % region


def fail_aws(module: Module, error: Exception, **returned: Any) -> NoReturn:
    """Fail with an AWS error's message and response, as amazon.aws modules do (amazon.aws's fail_json_aws_error,
    with ``returned``: more return values); a region that does not exist, said so (unknown_region)."""
    no_region = unknown_region(module, error)
    if no_region:
        module.fail_json(msg=no_region, aws_error=str(error), **returned)
    if isinstance(error, AnsibleAWSError):
        if error.exception:
            module.fail_json_aws(error.exception, msg=error.message, **returned)
        module.fail_json(msg=error.message, **returned)
    module.fail_json_aws(error, **returned)


def fail(module: Module, error: KubeclusterError, **returned: Any) -> NoReturn:
    """Fail the module with a service's error: its message, and its problems one by one when it has several;
    ``returned``: more return values."""
    extra = dict(returned, errors=error.problems) if error.problems else returned
    module.fail_json(msg=str(error), **extra)


def reconcile(module: Module, build: Callable[[], Plan]) -> NoReturn:
    """Run a service's planning (``build()`` returns its Plan), then apply it and exit.

    The one place where a module fails on a service's KubeclusterError (before any write:
    planning only reads) or on an AWS error.
    """
    try:
        plan = build()
    except KubeclusterError as error:
        fail(module, error)
    except AWS_ERRORS as error:
        fail_aws(module, error)
    finish(module, plan, plan.header, **plan.returns)


def apply(module: Module, plan: Plan, done: Optional[List[Dict[str, str]]] = None) -> None:
    """Apply the plan, or fail the module naming the step that failed, the plan (after the actions
    ``done`` already, of earlier plans of the same run) and what was applied."""
    try:
        plan.apply()
    except PlanApplyError as error:
        detail = {"plan": (done or []) + plan.as_list(), "applied": error.applied}
        failed = "%s %s %s failed" % (error.action.verb, error.action.kind, error.action.name)
        if isinstance(error.error, AnsibleAWSError) and error.error.exception is not None:
            # fail_json_aws appends the AWS error itself; the message says which step and why.
            module.fail_json_aws(error.error.exception, msg="%s: %s" % (failed, error.error.message), **detail)
        module.fail_json(msg=str(error), **detail)


def finish(module: Module, plan: Plan, header: str, **result: Any) -> NoReturn:
    """Apply the plan (unless in check mode) and exit with what it did.

    ``result`` may hold callables; they are called after the apply, so they can read
    the ids the plan produced. The module returns ``changed``, ``plan`` (the actions)
    and, under ``--diff``, the rendered plan.
    """
    if not module.check_mode:
        apply(module, plan)
    try:
        # Computed after the apply (they read the ids it made), so AWS can still fail here.
        out = {key: value() if callable(value) else value for key, value in result.items()}
    except KubeclusterError as error:
        fail(module, error)
    except AWS_ERRORS as error:
        fail_aws(module, error)
    out.update(changed=plan.changed, plan=plan.as_list())
    if module._diff:
        out["diff"] = plan.diff(header)
    module.exit_json(**out)
