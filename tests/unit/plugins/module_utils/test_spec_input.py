"""How the spec arrives from AWX and where its region comes from (issue 10, part 4): ``cluster`` as a YAML or JSON
text (a survey's textarea), the region the AWS SDKs' way, ``ssh_key_name: ""`` and an omitted worker count."""

import json

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, cluster_input, resolve, with_region

SPEC = {"name": "capi-example", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4",
        "machine_deployments": [{"name": "md-0", "replicas": 2}]}


def errors_of(call, *args, **kwargs):
    with pytest.raises(SpecError) as caught:
        call(*args, **kwargs)
    return caught.value.errors


@pytest.mark.parametrize("text", [
    yaml.safe_dump(SPEC),
    json.dumps(SPEC),
    json.dumps(SPEC, indent=2),
    yaml.safe_dump({"cluster": SPEC}),  # a whole spec file pasted, its top key included
    "  " + json.dumps(SPEC) + "\n",
], ids=["yaml", "json", "json-indented", "whole-file", "json-padded"])
def test_a_yaml_or_json_text_is_the_spec_it_holds(text):
    assert cluster_input(text) == SPEC
    assert resolve(cluster_input(text)) == resolve(SPEC)


def test_a_mapping_and_nothing_pass_through_unchanged():
    assert cluster_input(SPEC) is SPEC
    assert cluster_input(None) is None


@pytest.mark.parametrize("text, expected", [
    ("name: [capi-example", "cluster: the text is neither YAML nor JSON ("),
    ('{"name": "capi-example",', "cluster: the text is neither YAML nor JSON ("),
    ("capi-example", "cluster: the text is a str ('capi-example'), not a mapping; give the spec's fields"),
    ("- name: capi-example", "cluster: the text is a list"),
    ("", "cluster: the text is empty, not a mapping"),
    ("# only a comment", "cluster: the text is empty, not a mapping"),
])
def test_a_text_that_is_no_spec_fails_naming_the_field(text, expected):
    errors = errors_of(cluster_input, text)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_the_spec_region_wins_and_an_option_that_contradicts_it_fails_naming_both():
    assert with_region(SPEC, None, {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-2"})["region"] == "ap-northeast-2"
    assert with_region(SPEC, "ap-northeast-2") == SPEC

    errors = errors_of(with_region, SPEC, "us-east-1")

    assert errors == ["region: us-east-1 is not the spec's cluster.region ap-northeast-2 (region is the module's option, from "
                      "the task or module_defaults); a cluster lives in one region: remove the option or give both the same region"]


@pytest.mark.parametrize("option, environ, profile, expected", [
    ("eu-west-1", {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-2"}, "us-west-1", "eu-west-1"),
    (None, {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-2"}, "us-west-1", "us-east-1"),
    (None, {"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-east-2"}, "us-west-1", "us-east-2"),
    (None, {}, "us-west-1", "us-west-1"),
], ids=["option", "AWS_REGION", "AWS_DEFAULT_REGION", "profile"])
def test_without_a_spec_region_the_option_then_the_sdk_chain(option, environ, profile, expected):
    raw = {key: value for key, value in SPEC.items() if key != "region"}

    assert with_region(raw, option, environ, lambda: profile)["region"] == expected
    assert with_region(dict(raw, region=""), option, environ, lambda: profile)["region"] == expected  # an empty survey answer
    assert resolve(with_region(raw, option, environ, lambda: profile))["region"] == expected


def test_no_region_anywhere_fails_naming_the_field_and_every_way_to_give_it():
    raw = {key: value for key, value in SPEC.items() if key != "region"}

    errors = errors_of(resolve, with_region(raw, None, {}, lambda: None))

    assert errors == ["cluster.region: required; set it, or export AWS_REGION or AWS_DEFAULT_REGION, or use a profile "
                      "(AWS_PROFILE) that has a region"]


def test_resolve_reads_aws_default_region_after_aws_region():
    raw = {key: value for key, value in SPEC.items() if key != "region"}

    assert resolve(raw, {"AWS_DEFAULT_REGION": "us-east-2"})["region"] == "us-east-2"
    assert resolve(raw, {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-2"})["region"] == "us-east-1"


def test_an_empty_ssh_key_name_is_no_key_pair_as_in_capa():
    assert resolve(dict(SPEC, ssh_key_name=""))["ssh_key_name"] is None
    # Empty says "no key": the quick-start variable does not fill it in, as it does an omitted one.
    assert resolve(dict(SPEC, ssh_key_name=""), {"AWS_SSH_KEY_NAME": "jonnung"})["ssh_key_name"] is None
    assert resolve(SPEC, {"AWS_SSH_KEY_NAME": "jonnung"})["ssh_key_name"] == "jonnung"
    resolved = resolve(dict(SPEC, ssh_key_name=""))
    assert resolve(resolved) == resolved


def test_an_omitted_worker_count_is_cluster_apis_one_never_zero():
    omitted = dict(SPEC, machine_deployments=[{"name": "md-0"}, {"name": "md-1", "replicas": 0}])

    assert [d["replicas"] for d in resolve(omitted)["machine_deployments"]] == [1, 0]
    assert [d["replicas"] for d in resolve(omitted, {"WORKER_MACHINE_COUNT": "3"})["machine_deployments"]] == [3, 0]
    assert [d["replicas"] for d in resolve({k: v for k, v in SPEC.items() if k != "machine_deployments"})["machine_deployments"]] == [1]
