"""The node-side spec fields: package source, add-on versions and the kubeconfig path."""

import copy

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError, resolve

MINIMAL = {"name": "capi-example", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4"}


def errors_of(raw):
    with pytest.raises(SpecError) as caught:
        resolve(raw, {})
    return caught.value.errors


def with_(**fields):
    raw = copy.deepcopy(MINIMAL)
    raw.update(fields)
    return raw


def test_defaults_install_from_pkgs_k8s_io_with_pinned_addons_and_a_per_cluster_kubeconfig():
    spec = resolve(MINIMAL)
    assert spec["kubernetes_packages"] == {"source": "pkgs.k8s.io", "repository_url": None, "binaries_dir": None}
    assert spec["addons"] == {"cni_version": None, "aws_cloud_controller_manager_version": None,
                              "ebs_csi_driver_version": None, "manifests_dir": None}
    assert spec["kubeconfig_path"] == "~/.kube/capi-example.kubeconfig"


def test_node_fields_survive_a_second_resolve():
    raw = with_(kubernetes_packages={"source": "binaries", "binaries_dir": "/srv/k8s/bin"},
                addons={"cni_version": "v3.29.1", "manifests_dir": "/srv/manifests"},
                kubeconfig_path="/tmp/admin.conf")
    once = resolve(raw)
    assert once["kubernetes_packages"]["binaries_dir"] == "/srv/k8s/bin"
    assert once["addons"]["cni_version"] == "v3.29.1"
    assert once["addons"]["aws_cloud_controller_manager_version"] is None
    assert once["kubeconfig_path"] == "/tmp/admin.conf"
    assert resolve(copy.deepcopy(once)) == once


def test_mirror_source_takes_a_repository_url():
    spec = resolve(with_(kubernetes_packages={"source": "mirror",
                                              "repository_url": "https://mirror.example.com/core:/stable:/v1.31/deb/"}))
    assert spec["kubernetes_packages"]["repository_url"] == "https://mirror.example.com/core:/stable:/v1.31/deb/"


@pytest.mark.parametrize("raw, expected", [
    (with_(kubernetes_packages={"source": "apt"}),
     "cluster.kubernetes_packages.source: must be one of pkgs.k8s.io, mirror, binaries, not 'apt'"),
    (with_(kubernetes_packages={"source": "mirror"}),
     "cluster.kubernetes_packages.repository_url: source mirror needs the URL of your apt repository"),
    (with_(kubernetes_packages={"source": "mirror", "repository_url": "ftp://mirror/deb"}),
     "cluster.kubernetes_packages.repository_url: 'ftp://mirror/deb' is not an http(s) URL"),
    (with_(kubernetes_packages={"repository_url": "https://mirror.example.com/deb/"}),
     "cluster.kubernetes_packages.repository_url: only used with source: mirror"),
    (with_(kubernetes_packages={"source": "binaries"}),
     "cluster.kubernetes_packages.binaries_dir: source binaries needs the directory on the controller"),
    (with_(kubernetes_packages={"binaries_dir": "/srv/bin"}),
     "cluster.kubernetes_packages.binaries_dir: only used with source: binaries"),
    (with_(kubernetes_packages={"source": "binaries", "binaries_dir": ""}),
     "cluster.kubernetes_packages.binaries_dir: must be a non-empty string"),
    (with_(kubernetes_packages={"sorce": "mirror"}),
     "cluster.kubernetes_packages.sorce: unknown key; did you mean source?"),
    (with_(addons={"cni_version": "3.29.1"}), "cluster.addons.cni_version: '3.29.1' is not a release tag such as v3.29.1"),
    (with_(addons={"aws_cloud_controller_manager_version": 1.31}),
     "cluster.addons.aws_cloud_controller_manager_version: 1.31 is not a release tag"),
    (with_(addons={"ebs_csi_driver_version": "latest"}), "cluster.addons.ebs_csi_driver_version: 'latest' is not a release tag"),
    (with_(addons={"manifests_dir": ["/srv"]}), "cluster.addons.manifests_dir: must be a non-empty string"),
    (with_(addons={"cni": "cilium"}), "cluster.addons.cni: unknown key; known keys: aws_cloud_controller_manager_version, cni_version"),
    (with_(kubeconfig_path=""), "cluster.kubeconfig_path: must be a non-empty string"),
])
def test_each_node_field_problem_names_the_field_and_the_fix(raw, expected):
    errors = errors_of(raw)
    assert any(expected in line for line in errors), errors


def test_an_invalid_name_gets_no_kubeconfig_default_but_its_own_error():
    errors = errors_of(with_(name="Not_Valid"))
    assert any(line.startswith("cluster.name:") for line in errors)
    assert not any("kubeconfig_path" in line for line in errors)
