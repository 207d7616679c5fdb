"""Every module of the action group takes ``cluster`` as a mapping or as its YAML or JSON text (an AWX survey's
textarea), and ``region`` (module_defaults for group/kubecluster.aws.cluster hands it to all of them); a region that
contradicts the spec's fails naming both (issue 10, part 4)."""

import json
import os

import pytest
import yaml

from helpers.aws import CLUSTER, KUBERNETES_VERSION, REGION
from helpers.module_runner import run_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
with open(os.path.join(REPO, "meta", "runtime.yml"), encoding="utf-8") as runtime:
    GROUP = yaml.safe_load(runtime)["action_groups"]["cluster"]
CLUSTER_MODULES = [name for name in GROUP if name != "iam_stack"]
OTHER = "us-east-1"

SPEC = {"name": CLUSTER, "region": REGION, "kubernetes_version": KUBERNETES_VERSION, "network": {"nat_gateways": "none"}}
# What each module needs besides cluster, and check mode everywhere: nothing here is about writing.
OPTIONS = {"machine_set": {"set": "md-0"}, "cluster_spec": {"check_account": False}}
INPUT_ERRORS = ("Unsupported parameters", "cluster:", "region:", "cluster.region")


def run(module, **args):
    return run_module(module, dict(OPTIONS.get(module, {}), **args), check_mode=True)


def test_the_group_is_every_module():
    modules = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules")) if name.endswith(".py"))
    assert sorted(GROUP) == modules


@pytest.mark.parametrize("name", CLUSTER_MODULES)
@pytest.mark.parametrize("text", [yaml.safe_dump(SPEC), json.dumps(SPEC)], ids=["yaml", "json"])
def test_every_module_takes_the_spec_as_text_and_the_region_option(moto_aws, name, text):
    as_mapping, _mapping_failed = run(name, cluster=SPEC, region=REGION)
    result, _failed = run(name, cluster=text, region=REGION)

    assert not any(error in str(result.get("msg", "")) for error in INPUT_ERRORS), result.get("msg")
    for key in ("failed", "msg", "changed", "plan", "cluster"):
        assert result.get(key) == as_mapping.get(key), key


@pytest.mark.parametrize("name", CLUSTER_MODULES)
def test_a_region_option_that_contradicts_the_spec_fails_naming_both(moto_aws, aws_calls, name):
    result, failed = run(name, cluster=SPEC, region=OTHER)

    assert failed
    assert "region: %s is not the spec's cluster.region %s" % (OTHER, REGION) in result["msg"]
    assert list(aws_calls) == []


@pytest.mark.parametrize("name", CLUSTER_MODULES)
def test_a_text_that_is_no_spec_fails_naming_cluster(moto_aws, aws_calls, name):
    result, failed = run(name, cluster="name: [oops")

    assert failed
    assert result["msg"].startswith("Invalid cluster spec:\n- cluster: the text is neither YAML nor JSON")
    assert list(aws_calls) == []


def test_a_spec_without_region_takes_the_option_then_aws_default_region_then_the_profile(moto_aws, monkeypatch, tmp_path):
    no_region = {key: value for key, value in SPEC.items() if key != "region"}

    assert run("cluster_spec", cluster=no_region, region=OTHER)[0]["cluster"]["region"] == OTHER
    assert run("cluster_spec", cluster=no_region)[0]["cluster"]["region"] == REGION  # the fixtures' AWS_DEFAULT_REGION

    config = tmp_path / "config"
    config.write_text("[profile kubecluster]\nregion = eu-west-1\n")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "kubecluster")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)  # a profile and credentials in the environment cannot be given together
    assert run("cluster_spec", cluster=no_region)[0]["cluster"]["region"] == "eu-west-1"
    assert run("cluster_spec", cluster=no_region, profile="kubecluster")[0]["cluster"]["region"] == "eu-west-1"


def test_an_exported_region_never_contradicts_the_spec(moto_aws, monkeypatch):
    monkeypatch.setenv("AWS_REGION", OTHER)

    for name in CLUSTER_MODULES:
        result, _failed = run(name, cluster=SPEC)
        assert "region:" not in str(result.get("msg", "")), (name, result.get("msg"))
    assert run("cluster_info", cluster=SPEC)[0]["region"] == REGION
    assert run("cluster_info", name=CLUSTER)[0]["region"] == OTHER


def test_iam_stack_takes_its_region_the_same_way(moto_aws, monkeypatch):
    assert run("iam_stack", region=OTHER)[0]["plan"][0]["name"]
    monkeypatch.setenv("AWS_REGION", OTHER)
    result, failed = run("iam_stack")
    assert not failed, result.get("msg")
    assert "in %s" % OTHER in run_module("iam_stack", {}, check_mode=True, diff=True)[0]["diff"]["prepared"]
