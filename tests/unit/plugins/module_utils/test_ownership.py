"""Ownership rules: which tag keys a spec may not set, which clusters a resource's tags claim,
and the name+region a delete needs from a spec that may not validate."""

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import naming
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, resolve, resolve_identity

MINIMAL = {"name": "prod", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4"}


def errors_of(raw):
    with pytest.raises(SpecError) as caught:
        resolve(raw)
    return caught.value.errors


@pytest.mark.parametrize("key", [
    "sigs.k8s.io/cluster-api-provider-aws/cluster/staging",   # CAPA's ownership: staging's delete would take prod's machines
    "sigs.k8s.io/cluster-api-provider-aws/role",
    "kubernetes.io/cluster/staging",                          # the cloud provider's: another cluster's CCM and delete
    "kubernetes.io/role/elb",
    "kubernetes.io/role/internal-elb",
    "kubecluster.aws/machine-set",
    "kubecluster.aws/spec-hash",
    "KubernetesCluster",
    "Name",
])
def test_additional_tags_may_not_set_ownership_role_or_collection_keys(key):
    errors = errors_of(dict(MINIMAL, additional_tags={key: "owned", "team": "platform"}))
    assert len(errors) == 1
    assert errors[0].startswith("cluster.additional_tags: %r is set by kubecluster.aws itself" % key)
    assert "remove it" in errors[0]


def test_every_reserved_key_is_named_in_one_line():
    errors = errors_of(dict(MINIMAL, additional_tags={"kubernetes.io/cluster/a": "owned", "Name": "x", "team": "ok"}))
    assert errors == [
        "cluster.additional_tags: 'Name', 'kubernetes.io/cluster/a' are set by kubecluster.aws itself: ownership, role and "
        "name tags decide which cluster a resource belongs to and what deletes it; remove them (the collection tags every "
        "resource with the cluster's own)"]


def test_ordinary_tags_that_only_look_alike_are_accepted():
    tags = {"kubernetes.io/owner": "team-a", "sigs.k8s.io/other": "x", "cost-center": "42", "name": "lower-case is not Name"}
    assert resolve(dict(MINIMAL, additional_tags=tags))["additional_tags"] == tags


def test_claiming_clusters_reads_both_ownership_tags_and_only_owned_values():
    tags = {naming.owner_tag("prod"): "owned", naming.cloud_provider_tag("staging"): "owned",
            naming.cloud_provider_tag("shared-one"): "shared", naming.owner_tag("other"): "something-else"}
    assert naming.claiming_clusters(tags) == {"prod", "staging"}
    assert naming.is_claimed(tags, "prod") and naming.is_claimed(tags, "staging")
    assert not naming.is_claimed(tags, "shared-one")
    assert naming.other_claimants(tags, "prod") == ["staging"]


def test_double_claims_name_only_resources_of_this_cluster_claimed_by_another():
    mine = {naming.owner_tag("prod"): "owned"}
    both = {naming.owner_tag("prod"): "owned", naming.owner_tag("staging"): "owned"}
    theirs = {naming.owner_tag("staging"): "owned"}
    lines = naming.double_claims([("instance", "i-1", mine), ("instance", "i-2", both), ("instance", "i-3", theirs)], "prod")
    assert lines == ["instance i-2 is tagged as owned by cluster prod and by staging; remove the tag of the cluster it does "
                     "not belong to (ec2 delete-tags / elbv2 remove-tags), then rerun"]


def test_service_cidr_wider_than_kubeadm_allows_is_refused():
    errors = errors_of(dict(MINIMAL, network={"service_cidr": "10.96.0.0/11"}))
    assert errors == ["cluster.network.service_cidr: '10.96.0.0/11' must have a prefix length from /12 to /24 "
                      "(kubeadm refuses a service subnet of more than 20 host bits)"]
    assert resolve(dict(MINIMAL, network={"service_cidr": "10.96.0.0/12"}))["network"]["service_cidr"] == "10.96.0.0/12"


def test_identity_of_a_spec_that_no_longer_validates():
    raw = dict(MINIMAL, control_plane={"replicas": 2}, from_a_newer_version={"x": 1}, kubernetes_version="1.20")
    assert errors_of(raw)
    assert resolve_identity(raw) == {"name": "prod", "region": "ap-northeast-2"}


def test_identity_takes_the_region_from_the_environment_and_still_checks_name_and_region():
    assert resolve_identity({"name": "prod"}, {"AWS_REGION": "eu-west-1"}) == {"name": "prod", "region": "eu-west-1"}
    with pytest.raises(SpecError) as caught:
        resolve_identity({"name": "Prod_1"})
    assert caught.value.errors == [
        "cluster.name: 'Prod_1' is not a valid cluster name; use at most 63 lower-case letters, digits and '-', starting and "
        "ending with a letter or digit (it becomes part of AWS resource names and tags)",
        "cluster.region: required; set it, or export AWS_REGION or AWS_DEFAULT_REGION, or use a profile (AWS_PROFILE) that has a region"]
    with pytest.raises(SpecError, match="cluster: must be a mapping"):
        resolve_identity("prod")
