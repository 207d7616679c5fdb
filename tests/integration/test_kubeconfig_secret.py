"""The admin kubeconfig kept in AWS (cluster.kubeconfig_secret), end to end against a moto server: create_cluster.yml
stores the file the node plays wrote (here a stand-in, with --tags kubeconfig), a rerun writes nothing,
get_kubeconfig.yml writes it back to a 0600 file, and delete_cluster.yml removes it."""

import os
import stat

import pytest

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import example_spec

pytestmark = pytest.mark.e2e

PARAMETER = "/kubecluster.aws/clusters/%s/kubeconfig" % NAME
SECRET = "kubecluster.aws/clusters/%s/kubeconfig" % NAME
OWNER = "sigs.k8s.io/cluster-api-provider-aws/cluster/%s" % NAME
STORE_TASK = "Store the admin kubeconfig"
# Over SSM's Standard tier (4 KB), as a real admin kubeconfig with its client certificate often is.
FAKE = "apiVersion: v1\nkind: Config\nclusters: []\n# %s\n" % ("x" * 5000)


def parameter(ssm):
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [PARAMETER]}])["Parameters"]
    return found[0] if found else None


def secret_names(secrets):
    return [s["Name"] for s in secrets.list_secrets()["SecretList"]]


def test_kubeconfig_stored_rerun_fetched_moved_and_deleted(account, run_playbook, moto_server, tmp_path):
    ssm = moto_server.client("ssm")
    secrets = moto_server.client("secretsmanager")
    image_id = account.prepare()
    kubeconfig_path = tmp_path / "kube" / ("%s.kubeconfig" % NAME)
    spec = example_spec(image_id, network={"nat_gateways": "single"}, kubeconfig_secret="ssm", kubeconfig_path=str(kubeconfig_path))
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()

    # Check mode before the node plays wrote a kubeconfig: nothing to store yet, no failure.
    preview = run_playbook("create_cluster", spec, tags=["kubeconfig"], check=True)
    assert preview.rc == 0, preview.explain()
    assert parameter(ssm) is None

    kubeconfig_path.parent.mkdir(mode=0o700)
    kubeconfig_path.write_text(FAKE)
    kubeconfig_path.chmod(0o600)
    preview = run_playbook("create_cluster", spec, tags=["kubeconfig"], check=True, diff=True)
    assert preview.rc == 0 and preview.changed == 1, preview.explain()
    assert parameter(ssm) is None, "check mode stored the kubeconfig"

    stored = run_playbook("create_cluster", spec, tags=["kubeconfig"])
    assert stored.rc == 0 and stored.changed == 1, stored.explain()
    assert FAKE not in stored.stdout, "the kubeconfig was shown"
    record = parameter(ssm)
    assert record["Type"] == "SecureString"
    tag_list = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=PARAMETER)["TagList"]
    assert {"Key": OWNER, "Value": "owned"} in tag_list
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == FAKE

    moto_server.start_recording()
    again = run_playbook("create_cluster", spec, tags=["kubeconfig"])
    moto_server.stop_recording()
    assert again.rc == 0 and again.changed == 0, again.explain()
    assert moto_server.recorded_writes() == []

    # A later job, with only the name and region, like clusterctl get kubeconfig.
    dest = tmp_path / "elsewhere" / "admin.conf"
    would = run_playbook("get_kubeconfig", spec, extra_vars={"kubeconfig_dest": str(dest)}, check=True, diff=True)
    assert would.rc == 0 and would.changed == 1, would.explain()
    assert not dest.parent.exists(), "check mode wrote the kubeconfig"
    fetched = run_playbook("get_kubeconfig", extra_vars={"cluster_name": NAME, "cluster_region": REGION, "kubeconfig_dest": str(dest)})
    assert fetched.rc == 0 and fetched.changed == 1, fetched.explain()
    assert FAKE not in fetched.stdout, "the kubeconfig was shown"
    assert dest.read_text() == FAKE
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest.parent).st_mode) == 0o700
    refetched = run_playbook("get_kubeconfig", spec, extra_vars={"kubeconfig_dest": str(dest)})
    assert refetched.rc == 0 and refetched.changed == 0, refetched.explain()

    # Moved to Secrets Manager: stored there, the parameter removed.
    spec["cluster"]["kubeconfig_secret"] = "secretsmanager"
    moved = run_playbook("create_cluster", spec, tags=["kubeconfig"])
    assert moved.rc == 0 and moved.changed == 1, moved.explain()
    assert parameter(ssm) is None
    assert secret_names(secrets) == [SECRET]
    assert {"Key": OWNER, "Value": "owned"} in secrets.describe_secret(SecretId=SECRET)["Tags"]
    assert secrets.get_secret_value(SecretId=SECRET)["SecretString"] == FAKE
    kubeconfig_path.write_text(FAKE + "# renewed\n")
    updated = run_playbook("create_cluster", spec, tags=["kubeconfig"])
    assert updated.rc == 0 and updated.changed == 1, updated.explain()
    assert secrets.get_secret_value(SecretId=SECRET)["SecretString"] == FAKE + "# renewed\n"
    dest.unlink()
    from_secret = run_playbook("get_kubeconfig", spec, extra_vars={"kubeconfig_dest": str(dest)})
    assert from_secret.rc == 0, from_secret.explain()
    assert dest.read_text() == FAKE + "# renewed\n"

    # The delete lists it and removes it, at once.
    dry_run = run_playbook("delete_cluster", spec)
    assert dry_run.rc == 0, dry_run.explain()
    assert "delete secret %s" % SECRET in "\n".join(dry_run.result("Show what deleting the cluster removes")["msg"])
    assert secret_names(secrets) == [SECRET]
    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
    assert secrets.list_secrets(IncludePlannedDeletion=True)["SecretList"] == []
    gone = run_playbook("get_kubeconfig", spec, extra_vars={"kubeconfig_dest": str(dest)})
    assert gone.rc != 0 and "has no kubeconfig stored" in gone.explain()


def test_a_parameter_of_that_name_not_the_clusters_is_left_alone(account, run_playbook, moto_server, tmp_path):
    ssm = moto_server.client("ssm")
    image_id = account.prepare()
    kubeconfig_path = tmp_path / ("%s.kubeconfig" % NAME)
    kubeconfig_path.write_text(FAKE)
    spec = example_spec(image_id, kubeconfig_secret="ssm", kubeconfig_path=str(kubeconfig_path))
    ssm.put_parameter(Name=PARAMETER, Value="someone else's", Type="SecureString")
    refused = run_playbook("create_cluster", spec, tags=["kubeconfig"])
    assert refused.rc != 0
    assert "ssm-parameter %s exists and is not tagged as cluster %s's" % (PARAMETER, NAME) in refused.explain()
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == "someone else's"
    fetched = run_playbook("get_kubeconfig", spec)
    assert fetched.rc != 0 and "not tagged as cluster %s's" % NAME in fetched.explain()


def test_get_kubeconfig_without_a_cluster_says_how_to_name_one(run_playbook):
    unnamed = run_playbook("get_kubeconfig")
    assert unnamed.rc != 0 and "-e cluster_name=NAME -e cluster_region=REGION" in unnamed.explain()
