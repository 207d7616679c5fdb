"""kubecluster.aws.capi_to_spec: a Cluster API manifest as the spec in playbooks; unsupported fields fail or warn."""

import os

import pytest
import yaml
from ansible._internal._datatag._tags import Origin
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter import capi_to_spec as plugin

capi_to_spec = plugin.FilterModule().filters()["capi_to_spec"]
GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capi")


def text(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture
def warnings(monkeypatch):
    shown = []
    monkeypatch.setattr(plugin.display, "warning", shown.append)
    return shown


def test_the_manifest_gives_the_raw_spec(warnings):
    expected = yaml.safe_load(text("capa-2cf09d78-default.spec.yml"))["cluster"]
    assert capi_to_spec(text("capa-2cf09d78-default.manifest")) == expected
    # What a template hands a filter in Ansible 2.19: a tagged str.
    assert capi_to_spec(Origin(description="lookup").tag(text("capa-2cf09d78-default.manifest"))) == expected
    assert warnings == []


def test_settings_are_merged():
    raw = capi_to_spec(text("capa-2cf09d78-default.manifest"), settings={"kubeconfig_path": "/tmp/capi.kubeconfig"})
    assert raw["kubeconfig_path"] == "/tmp/capi.kubeconfig"


def test_unsupported_fields_fail_with_the_whole_list():
    with pytest.raises(AnsibleFilterError) as caught:
        capi_to_spec(text("unsupported.manifest"))
    message = str(caught.value)
    assert "AWSMachineTemplate capi-example-md-0: spec.template.spec.spotMarketOptions: not supported" in message
    assert "MachineHealthCheck capi-example-mhc: not supported" in message


def test_warn_shows_each_unsupported_field_as_a_warning(warnings):
    raw = capi_to_spec(text("unsupported.manifest"), unsupported="warn")
    assert raw["name"] == "capi-example"
    assert len(warnings) == 14
    assert all(warning.startswith("capi_to_spec: ") for warning in warnings)
    assert [w for w in warnings if "spotMarketOptions" in w]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, "the manifest still holds the placeholders ${CLUSTER_NAME}"),
    ({"unsupported": "warn"}, "the manifest still holds the placeholders ${CLUSTER_NAME}"),
])
def test_placeholders_fail_even_in_warn_mode(kwargs, expected):
    with pytest.raises(AnsibleFilterError) as caught:
        capi_to_spec(text("placeholders.manifest"), **kwargs)
    assert expected in str(caught.value)


def test_settings_that_are_no_spec_fail():
    with pytest.raises(AnsibleFilterError) as caught:
        capi_to_spec(text("capa-2cf09d78-default.manifest"), settings="name: [x")
    assert "cluster: the text is neither YAML nor JSON" in str(caught.value)
