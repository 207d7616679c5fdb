"""kubecluster.aws.cluster_input: the spec as a mapping in playbooks, from a mapping or a survey's YAML or JSON text."""

import json

import pytest
from ansible._internal._datatag._tags import Origin
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter.cluster_input import FilterModule

cluster_input = FilterModule().filters()["cluster_input"]

SPEC = {"name": "capi-example", "region": "ap-northeast-2", "kubeconfig_path": "/tmp/capi.kubeconfig"}


@pytest.mark.parametrize("value", [
    SPEC,
    json.dumps(SPEC),
    "name: capi-example\nregion: ap-northeast-2\nkubeconfig_path: /tmp/capi.kubeconfig\n",
    "cluster:\n  name: capi-example\n  region: ap-northeast-2\n  kubeconfig_path: /tmp/capi.kubeconfig\n",
    # What a template hands a filter in Ansible 2.19: a tagged str, which libyaml does not take as it is.
    Origin(description="survey").tag(json.dumps(SPEC)),
], ids=["mapping", "json", "yaml", "whole-file", "tagged-str"])
def test_the_spec_as_a_mapping(value):
    assert cluster_input(value) == SPEC


def test_none_is_none():
    assert cluster_input(None) is None


@pytest.mark.parametrize("text, expected", [
    ("name: [capi-example", "cluster: the text is neither YAML nor JSON"),
    ("capi-example", "cluster: the text is a str ('capi-example'), not a mapping"),
])
def test_a_text_that_is_no_spec_fails_naming_cluster(text, expected):
    with pytest.raises(AnsibleFilterError) as caught:
        cluster_input(text)
    assert expected in str(caught.value)
