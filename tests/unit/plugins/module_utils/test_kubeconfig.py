"""cluster.kubeconfig_secret (the spec field) and the kubeconfig kept in SSM or Secrets Manager (kubeconfig.py),
against moto in process."""

import boto3
import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import kubeconfig
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, resolve

from helpers.aws import CLUSTER, REGION

OWNER = "sigs.k8s.io/cluster-api-provider-aws/cluster/%s" % CLUSTER
RAW = {"name": CLUSTER, "region": REGION, "kubernetes_version": "v1.31.4"}


def test_kubeconfig_secret_defaults_to_none_and_takes_ssm_or_secretsmanager():
    assert resolve(RAW)["kubeconfig_secret"] == "none"
    for backend in ("ssm", "secretsmanager", "none"):
        assert resolve(dict(RAW, kubeconfig_secret=backend))["kubeconfig_secret"] == backend


@pytest.mark.parametrize("value", ["vault", "SSM", True])
def test_kubeconfig_secret_names_the_field_and_the_choices(value):
    with pytest.raises(SpecError) as raised:
        resolve(dict(RAW, kubeconfig_secret=value))
    assert raised.value.errors == ["cluster.kubeconfig_secret: must be one of none, secretsmanager, ssm, not %r" % (value,)]


@pytest.fixture
def ctx(moto_aws):
    return Context(lambda service: boto3.client(service, region_name=REGION), REGION)


def spec(backend):
    return dict(name=CLUSTER, region=REGION, kubeconfig_secret=backend)


def test_none_plans_nothing_and_calls_nothing(ctx, aws_calls):
    aws_calls.clear()
    assert kubeconfig.plan_present(ctx, spec("none"), "x").actions == []
    assert list(aws_calls) == []


@pytest.mark.parametrize("backend", ["ssm", "secretsmanager"])
def test_store_is_created_once_updated_when_changed_and_deleted(ctx, backend, aws_calls):
    plan = kubeconfig.plan_present(ctx, spec(backend), "one")
    assert [(a.verb, a.kind) for a in plan.actions] == [("create", kubeconfig.KIND[backend])]
    plan.apply()
    assert kubeconfig.value(ctx, backend, CLUSTER) == "one"
    assert kubeconfig.describe(ctx, backend, CLUSTER)["Tags"][OWNER] == "owned"
    aws_calls.clear()
    assert kubeconfig.plan_present(ctx, spec(backend), "one").actions == []
    assert aws_calls.writes() == []
    kubeconfig.plan_present(ctx, spec(backend), "two").apply()
    assert kubeconfig.value(ctx, backend, CLUSTER) == "two"
    assert kubeconfig.fetch(ctx, CLUSTER) == (backend, kubeconfig.stored_name(backend, CLUSTER), "two")
    plan, warnings = kubeconfig.plan_absent(ctx, CLUSTER)
    assert warnings == [] and [a.verb for a in plan.actions] == ["delete"]
    plan.apply()
    assert kubeconfig.describe(ctx, backend, CLUSTER) is None
    with pytest.raises(kubeconfig.KubeconfigError, match="has no kubeconfig stored"):
        kubeconfig.fetch(ctx, CLUSTER)


def test_a_secret_of_that_name_not_the_clusters_is_refused_and_left_alone(ctx):
    secrets = ctx.client("secretsmanager")
    secrets.create_secret(Name=kubeconfig.secret_name(CLUSTER), SecretString="theirs")
    with pytest.raises(kubeconfig.KubeconfigError, match="is not tagged as cluster %s's" % CLUSTER):
        kubeconfig.plan_present(ctx, spec("secretsmanager"), "ours")
    plan, warnings = kubeconfig.plan_absent(ctx, CLUSTER)
    assert plan.actions == [] and "left alone" in warnings[0]
    assert secrets.get_secret_value(SecretId=kubeconfig.secret_name(CLUSTER))["SecretString"] == "theirs"


def test_a_secret_scheduled_for_deletion_is_restored_and_updated(ctx):
    kubeconfig.plan_present(ctx, spec("secretsmanager"), "one").apply()
    ctx.client("secretsmanager").delete_secret(SecretId=kubeconfig.secret_name(CLUSTER), RecoveryWindowInDays=7)
    with pytest.raises(kubeconfig.KubeconfigError, match="has no kubeconfig stored"):
        kubeconfig.fetch(ctx, CLUSTER)
    plan = kubeconfig.plan_present(ctx, spec("secretsmanager"), "one")
    assert [(a.verb, a.detail.split(",")[0]) for a in plan.actions] == [("update", "restored from its scheduled deletion")]
    plan.apply()
    assert kubeconfig.fetch(ctx, CLUSTER)[2] == "one"
    assert kubeconfig.plan_present(ctx, spec("secretsmanager"), "one").actions == []


@pytest.mark.parametrize("backend", ["ssm", "secretsmanager"])
def test_a_kms_key_asked_for_is_used_and_a_rerun_with_it_changes_nothing(ctx, backend):
    key_id = ctx.client("kms").create_key()["KeyMetadata"]["KeyId"]
    plan = kubeconfig.plan_present(ctx, spec(backend), "one", key_id)
    assert plan.actions[0].detail == "encrypted with KMS key %s" % key_id
    plan.apply()
    assert key_id in kubeconfig.describe(ctx, backend, CLUSTER).get("KeyId", kubeconfig.describe(ctx, backend, CLUSTER).get("KmsKeyId"))
    assert kubeconfig.plan_present(ctx, spec(backend), "one", key_id).actions == []
    other = ctx.client("kms").create_key()["KeyMetadata"]["KeyId"]
    assert [a.verb for a in kubeconfig.plan_present(ctx, spec(backend), "one", other).actions] == ["update"]


@pytest.mark.parametrize("wanted, have, same", [
    ("1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
    ("arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ab", True),
    ("alias/kubeconfig", "arn:aws:kms:ap-northeast-2:123456789012:alias/kubeconfig", True),
    ("alias/kubeconfig", "alias/aws/ssm", False),
    ("alias/kubeconfig", None, False),
    (None, "alias/aws/ssm", True),
])
def test_a_kms_key_is_the_same_as_its_id_arn_or_alias(wanted, have, same):
    assert kubeconfig._same_key(wanted, {"KeyId": have}) is same
