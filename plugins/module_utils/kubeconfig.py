# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The admin kubeconfig kept in AWS, encrypted, so that it outlives the job that made the cluster
(an AWX job's files are gone when it ends), as Cluster API keeps ``<cluster>-kubeconfig`` in a Secret.

``cluster.kubeconfig_secret`` picks where: ``ssm``, the SecureString parameter
``/kubecluster.aws/clusters/<cluster>/kubeconfig`` (next to the cluster lease, Intelligent-Tiering
because an admin kubeconfig with its client certificate is often over the Standard tier's 4 KB), or
``secretsmanager``, the secret ``kubecluster.aws/clusters/<cluster>/kubeconfig``. Either is encrypted
with the service's AWS managed key unless a KMS key is given, and tagged as owned by the cluster: a
parameter or secret of that name that is not tagged so is never overwritten or deleted.

A store writes only when the value (or the KMS key asked for) differs, so a rerun changes nothing;
the value is never returned nor rendered. A delete (``plan_absent``, in the teardown survey) removes
the owned copies in both services by name, and a Secrets Manager secret at once
(ForceDeleteWithoutRecovery): the kubeconfig is of no use once its cluster is gone, and a secret kept
for a recovery window would block a cluster of the same name from storing its own for up to 30 days.
"""

import functools
import os
from typing import Any, Dict, List, Optional, Tuple

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from . import naming
from .context import Context
from .errors import KubeclusterError
from .plan import Plan

Client = Any

SSM = "ssm"
SECRETS_MANAGER = "secretsmanager"
NONE = "none"
BACKENDS = (SSM, SECRETS_MANAGER)
KIND = {SSM: "ssm-parameter", SECRETS_MANAGER: "secret"}
# SecureString parameters up to 8 KB; AWS picks the Standard tier (free) while the value fits in 4 KB.
SSM_TIER = "Intelligent-Tiering"
ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


class KubeconfigError(KubeclusterError):
    """The kubeconfig cannot be stored, read or removed as asked; the message names why and the fix."""


def controller_path(path: str) -> str:
    """A kubeconfig path of the spec (``~`` allowed, as cluster.kubeconfig_path's default has it) on the controller."""
    return os.path.expanduser(path)


def parameter_name(cluster: str) -> str:
    return "/kubecluster.aws/clusters/%s/kubeconfig" % cluster


def secret_name(cluster: str) -> str:
    return "kubecluster.aws/clusters/%s/kubeconfig" % cluster


def stored_name(backend: str, cluster: str) -> str:
    return parameter_name(cluster) if backend == SSM else secret_name(cluster)


def tags(cluster: str) -> Dict[str, str]:
    return naming.resource_tags(cluster, "%s-kubeconfig" % cluster, None)


def description(cluster: str) -> str:
    return "kubecluster.aws: the admin kubeconfig of cluster %s" % cluster


# --- the AWS calls ----------------------------------------------------------------------------

@AWSRetry.jittered_backoff()
def _describe_parameter(ssm: Client, name: str) -> Optional[Dict[str, Any]]:
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
    if not found:
        return None
    record: Dict[str, Any] = found[0]
    record["Tags"] = naming.tags_to_dict(ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"])
    return record


@AWSRetry.jittered_backoff()
def _parameter_value(ssm: Client, name: str) -> Optional[str]:
    try:
        value: str = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except is_boto3_error_code("ParameterNotFound"):
        return None
    return value


@AWSRetry.jittered_backoff()
def _describe_secret(secrets: Client, name: str) -> Optional[Dict[str, Any]]:
    try:
        record: Dict[str, Any] = secrets.describe_secret(SecretId=name)
    except is_boto3_error_code("ResourceNotFoundException"):
        return None
    record["Tags"] = naming.tags_to_dict(record.get("Tags"))
    return record


@AWSRetry.jittered_backoff()
def _secret_value(secrets: Client, name: str) -> Optional[str]:
    try:
        value: Optional[str] = secrets.get_secret_value(SecretId=name).get("SecretString")
    except is_boto3_error_code(["ResourceNotFoundException", "InvalidRequestException"]):
        return None
    return value


def _client(ctx: Context, backend: str) -> Client:
    return ctx.client(SSM if backend == SSM else SECRETS_MANAGER)


def describe(ctx: Context, backend: str, cluster: str) -> Optional[Dict[str, Any]]:
    """The stored copy's record (with ``Tags`` as a dict) in ``backend``, or None when there is none."""
    name = stored_name(backend, cluster)
    record: Optional[Dict[str, Any]]
    if backend == SSM:
        record = _describe_parameter(_client(ctx, backend), name)
    else:
        record = _describe_secret(_client(ctx, backend), name)
    return record


def value(ctx: Context, backend: str, cluster: str) -> Optional[str]:
    name = stored_name(backend, cluster)
    content: Optional[str]
    if backend == SSM:
        content = _parameter_value(_client(ctx, backend), name)
    else:
        content = _secret_value(_client(ctx, backend), name)
    return content


def _kms_key(record: Dict[str, Any]) -> Optional[str]:
    return record.get("KeyId") or record.get("KmsKeyId")


def _same_key(wanted: Optional[str], record: Dict[str, Any]) -> bool:
    """Whether the copy is encrypted as asked; without a key asked for, any key will do."""
    if not wanted:
        return True
    have = _kms_key(record) or ""
    if not have:
        return False

    def names(one: str, other: str) -> bool:
        # An ARN ends with ":key/<id>" or ":alias/<name>": the same key as its id or alias name.
        return one == other or one.endswith("/" + other) or one.endswith(":" + other)

    return names(have, wanted) or names(wanted, have)


def _not_owned(kind: str, name: str, cluster: str) -> str:
    return ("%s %s exists and is not tagged as cluster %s's (tag %s=owned); delete or rename it, or set "
            "cluster.kubeconfig_secret: none" % (kind, name, cluster, naming.owner_tag(cluster)))


# --- plans ------------------------------------------------------------------------------------

def _put(ctx: Context, backend: str, cluster: str, content: str, kms_key_id: Optional[str], record: Optional[Dict[str, Any]]) -> None:
    client = _client(ctx, backend)
    name = stored_name(backend, cluster)
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags(cluster).items())]
    kms = {"KeyId": kms_key_id} if kms_key_id else {}
    if backend == SSM:
        if record is None:
            client.put_parameter(Name=name, Value=content, Type="SecureString", Tier=SSM_TIER, Description=description(cluster),
                                 Tags=tag_list, **kms)
        else:
            # AWS refuses Tags together with Overwrite; the tags of the creation stay.
            client.put_parameter(Name=name, Value=content, Type="SecureString", Tier=SSM_TIER, Overwrite=True, **kms)
        return
    if record is None:
        client.create_secret(Name=name, SecretString=content, Description=description(cluster), Tags=tag_list,
                             **({"KmsKeyId": kms_key_id} if kms_key_id else {}))
        return
    if record.get("DeletedDate"):
        client.restore_secret(SecretId=name)
    if kms_key_id and not _same_key(kms_key_id, record):
        client.update_secret(SecretId=name, KmsKeyId=kms_key_id)
    client.put_secret_value(SecretId=name, SecretString=content)


def _delete(ctx: Context, backend: str, cluster: str) -> None:
    client = _client(ctx, backend)
    name = stored_name(backend, cluster)
    try:
        if backend == SSM:
            client.delete_parameter(Name=name)
        else:
            client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except is_boto3_error_code(["ParameterNotFound", "ResourceNotFoundException"]):
        pass  # gone already: what a delete wants


def plan_present(ctx: Context, spec: Dict[str, Any], content: str, kms_key_id: Optional[str] = None) -> Plan:
    """Store ``content`` where ``spec["kubeconfig_secret"]`` says, updating it only when it differs, and remove the
    cluster's copy in the other service (the spec moved it); nothing with ``none``."""
    cluster = spec["name"]
    wanted = spec.get("kubeconfig_secret") or NONE
    plan = Plan("kubeconfig of cluster %s in %s" % (cluster, spec["region"]))
    if wanted == NONE:
        return plan
    for backend in BACKENDS:
        record = describe(ctx, backend, cluster)
        name = stored_name(backend, cluster)
        if record is not None and not naming.is_owned(record["Tags"], cluster):
            if backend == wanted:
                raise KubeconfigError(_not_owned(KIND[backend], name, cluster))
            continue  # not ours: left alone
        if backend != wanted:
            if record is not None:
                plan.delete(KIND[backend], name, functools.partial(_delete, ctx, backend, cluster),
                            "cluster.kubeconfig_secret is %s now" % wanted)
            continue
        encryption = "encrypted with KMS key %s" % kms_key_id if kms_key_id else "encrypted with the AWS managed key"
        if record is None:
            plan.create(KIND[backend], name, functools.partial(_put, ctx, backend, cluster, content, kms_key_id, None), encryption)
            continue
        scheduled = bool(record.get("DeletedDate"))
        if scheduled or not _same_key(kms_key_id, record) or value(ctx, backend, cluster) != content:
            why = "restored from its scheduled deletion, " if scheduled else ""
            plan.update(KIND[backend], name, functools.partial(_put, ctx, backend, cluster, content, kms_key_id, record),
                        "%snew value, %s" % (why, encryption))
    return plan


def plan_absent(ctx: Context, cluster: str) -> Tuple[Plan, List[str]]:
    """The deletes of the cluster's stored kubeconfig copies, and warnings for what could not be checked
    (no permission for a service the cluster may never have used) or is not the cluster's."""
    plan = Plan("kubeconfig of cluster %s" % cluster)
    warnings: List[str] = []
    for backend in BACKENDS:
        name = stored_name(backend, cluster)
        try:
            record = describe(ctx, backend, cluster)
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ACCESS_DENIED:
                raise
            warnings.append("could not look for %s %s (%s); delete it yourself if the cluster stored its kubeconfig there"
                            % (KIND[backend], name, error.response["Error"]["Code"]))
            continue
        if record is None:
            continue
        if not naming.is_owned(record["Tags"], cluster):
            warnings.append("%s %s is not tagged as cluster %s's; left alone" % (KIND[backend], name, cluster))
            continue
        plan.delete(KIND[backend], name, functools.partial(_delete, ctx, backend, cluster), record.get("ARN") or name)
    return plan, warnings


def fetch(ctx: Context, cluster: str) -> Tuple[str, str, str]:
    """(backend, name, content) of the cluster's stored kubeconfig, looking in SSM, then Secrets Manager."""
    for backend in BACKENDS:
        record = describe(ctx, backend, cluster)
        if record is None or record.get("DeletedDate"):
            continue
        name = stored_name(backend, cluster)
        if not naming.is_owned(record["Tags"], cluster):
            raise KubeconfigError("%s %s is not tagged as cluster %s's; not using it" % (KIND[backend], name, cluster))
        content = value(ctx, backend, cluster)
        if content is not None:
            return backend, name, content
    raise KubeconfigError("cluster %s has no kubeconfig stored in %s (looked for SSM parameter %s and secret %s); create the "
                          "cluster with cluster.kubeconfig_secret: ssm or secretsmanager, or check the name and region"
                          % (cluster, ctx.region, parameter_name(cluster), secret_name(cluster)))
