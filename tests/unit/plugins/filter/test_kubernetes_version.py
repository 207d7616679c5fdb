"""The Kubernetes-version helpers give every node role what it derived itself before.

The expected values are what the roles' own expressions gave before the helper replaced them
(kept below as ``_before_*``), for every minor the roles handle, with and without the leading v.
"""

import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter.kubernetes_version import FilterModule
from ansible_collections.kubecluster.aws.plugins.filter.kubernetes_version import kubernetes_pinned
from ansible_collections.kubecluster.aws.plugins.filter.kubernetes_version import kubernetes_version

MINORS = range(28, 37)
VERSIONS = ["v1.%d.%d" % (minor, patch) for minor in MINORS for patch in (0, 4, 12)]
VERSIONS += [version[1:] for version in VERSIONS]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def _role_default(role, name):
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)[name]


PAUSE_VERSIONS = _role_default("node_prerequisites", "node_prerequisites_pause_versions")
ADDON_VERSIONS = _role_default("addons", "addons_versions")


def _strip_v(version):
    return re.sub("^v", "", version)


def _before_minor(version):
    """addons, control_plane, node_prerequisites: (version | regex_replace('^v', '')).split('.')[1] | int"""
    return int(_strip_v(version).split(".")[1])


def _before_packages(version):
    """kubernetes_packages: kubernetes_packages_semver and kubernetes_packages_minor."""
    semver = _strip_v(version)
    return semver, "v" + ".".join(semver.split(".")[:2])


def _before_kubeadm_api(version):
    """control_plane: v1beta4 when the minor is 31 or later."""
    return "kubeadm.k8s.io/" + ("v1beta4" if _before_minor(version) >= 31 else "v1beta3")


def _before_pinned(pins, version):
    """dict2items | selectattr('key', 'le', minor) | sort(attribute='key') | last | value"""
    return sorted((key, value) for key, value in pins.items() if key <= _before_minor(version))[-1][1]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_parts_are_what_each_role_derived_before(version):
    parts = kubernetes_version(version)

    assert parts["minor"] == _before_minor(version)
    assert (parts["semver"], parts["pkgs_repository"]) == _before_packages(version)
    assert parts["kubeadm_api_version"] == _before_kubeadm_api(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_pins_are_what_each_role_picked_before(version):
    assert kubernetes_pinned(PAUSE_VERSIONS, version) == _before_pinned(PAUSE_VERSIONS, version)
    for component, pins in ADDON_VERSIONS.items():
        assert kubernetes_pinned(pins, version) == _before_pinned(pins, version), component


@pytest.mark.parametrize("version, parts", [
    ("v1.31.4", {"version": "v1.31.4", "semver": "1.31.4", "major": 1, "minor": 31, "patch": 4, "minor_version": "1.31",
                 "pkgs_repository": "v1.31", "kubeadm_api_version": "kubeadm.k8s.io/v1beta4"}),
    ("1.31.4", {"version": "v1.31.4", "semver": "1.31.4", "major": 1, "minor": 31, "patch": 4, "minor_version": "1.31",
                "pkgs_repository": "v1.31", "kubeadm_api_version": "kubeadm.k8s.io/v1beta4"}),
    ("v1.30.14", {"version": "v1.30.14", "semver": "1.30.14", "major": 1, "minor": 30, "patch": 14,
                  "minor_version": "1.30", "pkgs_repository": "v1.30", "kubeadm_api_version": "kubeadm.k8s.io/v1beta3"}),
    ("v1.36.0-rc.1", {"version": "v1.36.0-rc.1", "semver": "1.36.0-rc.1", "major": 1, "minor": 36, "patch": 0,
                      "minor_version": "1.36", "pkgs_repository": "v1.36",
                      "kubeadm_api_version": "kubeadm.k8s.io/v1beta4"}),
])
def test_parts(version, parts):
    assert kubernetes_version(version) == parts


@pytest.mark.parametrize("minor, api", [(28, "v1beta3"), (29, "v1beta3"), (30, "v1beta3"), (31, "v1beta4"),
                                        (32, "v1beta4"), (33, "v1beta4"), (34, "v1beta4"), (35, "v1beta4"),
                                        (36, "v1beta4")])
def test_kubeadm_reads_v1beta4_from_1_31(minor, api):
    assert kubernetes_version("v1.%d.2" % minor)["kubeadm_api_version"] == "kubeadm.k8s.io/" + api
    assert kubernetes_version("1.%d.2" % minor)["kubeadm_api_version"] == "kubeadm.k8s.io/" + api


@pytest.mark.parametrize("minor, pause", [(28, "3.9"), (29, "3.9"), (30, "3.9"), (31, "3.10"), (32, "3.10"),
                                          (33, "3.10"), (34, "3.10.1"), (35, "3.10.1"), (36, "3.10.2")])
def test_pinned_takes_the_newest_pin_at_or_below_the_minor(minor, pause):
    pins = {28: "3.9", 31: "3.10", 34: "3.10.1", 36: "3.10.2"}
    assert kubernetes_pinned(pins, "v1.%d.0" % minor) == pause
    assert kubernetes_pinned(pins, "1.%d.0" % minor) == pause


def test_pinned_accepts_minors_written_as_strings():
    # JSON extra vars (-e '{"...": {"28": "3.9"}}') key every mapping by strings.
    assert kubernetes_pinned({"28": "3.9", "31": "3.10"}, "v1.32.1") == "3.10"


def test_pinned_returns_the_pin_as_it_is():
    assert kubernetes_pinned({28: {"image": "a"}, 30: {"image": "b"}}, "v1.29.0") == {"image": "a"}


@pytest.mark.parametrize("version", ["", "v1.31", "1.31", "latest", "v1.31.4.5", "vv1.31.4", "V1.31.4", None, 1.31,
                                     ["v1.31.4"]])
def test_not_a_version_fails_naming_it(version):
    with pytest.raises(AnsibleFilterError, match="is not a Kubernetes version"):
        kubernetes_version(version)
    with pytest.raises(AnsibleFilterError, match="is not a Kubernetes version"):
        kubernetes_pinned(PAUSE_VERSIONS, version)


def test_pinned_fails_below_the_first_pin():
    with pytest.raises(AnsibleFilterError, match=r"nothing is pinned for v1\.27\.3; the first pin is for 1\.28"):
        kubernetes_pinned(PAUSE_VERSIONS, "v1.27.3")


@pytest.mark.parametrize("pins", [{"v1.28": "3.9"}, ["3.9"], "3.9", {}])
def test_pinned_refuses_pins_not_keyed_by_minor(pins):
    with pytest.raises(AnsibleFilterError, match="kubernetes_pinned"):
        kubernetes_pinned(pins, "v1.31.4")


def test_the_filters_ansible_finds():
    assert FilterModule().filters() == {"kubernetes_version": kubernetes_version, "kubernetes_pinned": kubernetes_pinned}
