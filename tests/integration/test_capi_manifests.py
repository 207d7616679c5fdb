"""Issue 11 end to end against a moto server: the quick start's own Cluster API manifest given to create_cluster.yml
(-e capi_manifest=...), the same cluster rerun from the spec file written by hand (changed=0), exported with
export_capi.yml and the export read back into the same spec and rerun (changed=0); a manifest the collection cannot
take fails before any AWS call, listing every field, or warns with capi_manifest_unsupported=warn."""

import copy
import json
import os
import re
import subprocess

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.module_utils.capi_manifest import manifest_to_spec
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve
from helpers.aws import CLUSTER as NAME, KEY_NAME, REGION
from helpers.e2e import ACCOUNT_ID, REPO, PlaybookRun, example_spec, playbook_command

pytestmark = pytest.mark.e2e

GOLDEN = os.path.join(REPO, "tests", "unit", "plugins", "capi")
# what `clusterctl generate cluster capi-example --kubernetes-version v1.31.4 --control-plane-machine-count=1
# --worker-machine-count=2` writes for CAPA's default flavor (the import's golden file)
QUICK_START = os.path.join(GOLDEN, "capa-2cf09d78-default.manifest")


def quick_start_manifest(tmp_path, image_id):
    """The quick start's manifest with this account's values in the fields Cluster API has (region, key pair, the
    image owner the local account publishes CAPA-named images under, the bastion's image), and the add-on versions it
    names (its ConfigMaps' images)."""
    with open(QUICK_START, encoding="utf-8") as handle:
        documents = [document for document in yaml.safe_load_all(handle) if document]
    by_kind = dict(((document["kind"], document["metadata"]["name"]), document) for document in documents)
    aws_cluster = by_kind[("AWSCluster", NAME)]["spec"]
    aws_cluster.update(region=REGION, sshKeyName=KEY_NAME, imageLookupOrg=ACCOUNT_ID, bastion={"enabled": True, "ami": image_id})
    for template in ("-control-plane", "-md-0"):
        by_kind[("AWSMachineTemplate", NAME + template)]["spec"]["template"]["spec"]["sshKeyName"] = KEY_NAME
    path = tmp_path / "capi-example.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    images = {}
    for config_map in ("cloud-controller-manager-addon", "aws-ebs-csi-driver-addon"):
        for text in by_kind[("ConfigMap", config_map)]["data"].values():
            images.update(re.findall(r"image: \S*/(cloud-controller-manager|aws-ebs-csi-driver):(v[0-9.]+)", text))
    addons = {"aws_cloud_controller_manager_version": images["cloud-controller-manager"],
              "ebs_csi_driver_version": images["aws-ebs-csi-driver"]}
    return str(path), addons


def test_create_from_the_quick_start_manifest_rerun_from_the_hand_spec_export_and_back(
        account, run_playbook, moto_server, tmp_path):
    image_id = account.prepare()
    manifest, addons = quick_start_manifest(tmp_path, image_id)
    hand_spec = example_spec(image_id, addons=addons)
    with open(manifest, encoding="utf-8") as handle:
        imported, warnings = manifest_to_spec(handle.read())
    assert warnings == [] and resolve(imported, environ={}) == resolve(hand_spec["cluster"], environ={})

    created = run_playbook("create_cluster", tags=["infra"], extra_vars={"capi_manifest": manifest})
    assert created.rc == 0 and created.changed, created.explain()
    again = run_playbook("create_cluster", hand_spec, tags=["infra"])
    assert again.rc == 0 and again.changed == 0, again.explain()

    # spec -> export -> import: the same spec; and the export, given as the spec, changes nothing either
    exported = tmp_path / "capi-example-capi.yaml"
    moto_server.start_recording()
    export = run_playbook("export_capi", hand_spec, extra_vars={"export_path": str(exported)})
    moto_server.stop_recording()
    assert export.rc == 0, export.explain()
    assert moto_server.recorded_writes() == []
    # The same spec, but for the image: the export pins the AMI the machines run, which the hand spec found by lookup
    pinned = copy.deepcopy(hand_spec["cluster"])
    pinned["control_plane"]["ami_id"] = pinned["machine_deployments"][0]["ami_id"] = image_id
    back, warnings = manifest_to_spec(exported.read_text())
    assert warnings == [] and resolve(back, environ={}) == resolve(pinned, environ={})
    from_export = run_playbook("create_cluster", tags=["infra"], extra_vars={"capi_manifest": str(exported)})
    assert from_export.rc == 0 and from_export.changed == 0, from_export.explain()

    deleted = run_playbook("delete_cluster", extra_vars={"capi_manifest": manifest, "confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
    assert all(found == [] for found in account.owned(NAME).values()), account.owned(NAME)


def unsupported_manifest(tmp_path, image_id):
    """The quick start's manifest with two fields the collection does not take: spot instances and an apiServer
    certificate SAN."""
    manifest, unused = quick_start_manifest(tmp_path, image_id)
    with open(manifest, encoding="utf-8") as handle:
        documents = list(yaml.safe_load_all(handle))
    for document in documents:
        if document["kind"] == "AWSMachineTemplate" and document["metadata"]["name"].endswith("-md-0"):
            document["spec"]["template"]["spec"]["spotMarketOptions"] = {"maxPrice": "0.05"}
        if document["kind"] == "KubeadmControlPlane":
            document["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"] = {"certSANs": ["api.example.com"]}
    path = tmp_path / "unsupported.manifest"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def test_unsupported_fields_fail_before_any_aws_call_or_warn(account, run_playbook, moto_server, tmp_path):
    image_id = account.prepare()
    manifest = unsupported_manifest(tmp_path, image_id)
    moto_server.start_recording()
    refused = run_playbook("create_cluster", tags=["infra"], extra_vars={"capi_manifest": manifest})
    moto_server.stop_recording()
    assert refused.rc != 0
    explained = refused.explain() + refused.stdout
    assert "spec.template.spec.spotMarketOptions" in explained, explained
    assert "spec.kubeadmConfigSpec.clusterConfiguration.apiServer" in explained, explained
    assert moto_server.recorded_calls() == []

    # as an AWX survey gives it: the manifest's text, not a path, in an extra-vars file whose answers AWX tags
    # !unsafe (the manifest's '{{ ds.meta_data.local_hostname }}' is cloud-init's, not Ansible's)
    with open(manifest, encoding="utf-8") as handle:
        text = handle.read()
    survey = tmp_path / "extravars"
    survey.write_text("capi_manifest: !unsafe %s\ncapi_manifest_unsupported: warn\n" % json.dumps(text))
    args, env = playbook_command(moto_server, tmp_path, "create_cluster", tags=["infra"], check=True)
    warned = PlaybookRun(subprocess.run(args + ["-e", "@%s" % survey], cwd=str(tmp_path), env=env, capture_output=True,
                                        text=True, timeout=900, check=False))
    assert warned.rc == 0, warned.explain()
    # the task's warnings, which the default callback prints as [WARNING] lines
    warnings = " ".join(warned.result("Turn the Cluster API manifest into the cluster spec").get("warnings", []))
    assert "spotMarketOptions" in warnings and "clusterConfiguration.apiServer" in warnings, warnings


def test_placeholders_and_a_field_given_twice_are_named(account, run_playbook, moto_server, tmp_path):
    account.prepare()
    raw = tmp_path / "template.yaml"
    raw.write_text(open(os.path.join(GOLDEN, "placeholders.manifest"), encoding="utf-8").read())
    moto_server.start_recording()
    refused = run_playbook("create_cluster", tags=["infra"], extra_vars={"capi_manifest": str(raw)})
    moto_server.stop_recording()
    assert refused.rc != 0
    explained = refused.explain() + refused.stdout
    for name in ("CLUSTER_NAME", "AWS_REGION", "AWS_SSH_KEY_NAME", "KUBERNETES_VERSION"):
        assert name in explained, (name, explained)
    assert moto_server.recorded_calls() == []

    manifest, unused = quick_start_manifest(tmp_path, "ami-0123456789abcdef0")
    twice = run_playbook("create_cluster", {"cluster": {"name": "capi-other", "region": "eu-west-1"}}, tags=["infra"],
                         extra_vars={"capi_manifest": manifest})
    assert twice.rc != 0
    assert "cluster.region" in twice.explain() and "cluster.name" in twice.explain(), twice.explain()
