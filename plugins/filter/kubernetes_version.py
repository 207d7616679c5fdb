# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of both filters is in kubernetes_version.yml and kubernetes_pinned.yml beside
# this file, where ansible-doc looks for a filter that shares a file with another.

import re
from typing import Any, Callable, Dict, Mapping

from ansible.errors import AnsibleFilterError

# vMAJOR.MINOR.PATCH, the leading v optional, as kubeadm accepts it (pre-releases included).
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]*)?$")

# kubeadm.k8s.io/v1beta4 is released, and kubeadm's default, from Kubernetes 1.31.
KUBEADM_V1BETA4_MINOR = 31


def kubernetes_version(version: Any) -> Dict[str, Any]:
    """The parts of ``version`` the roles need, parsed in one place so that they agree."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if not match:
        raise AnsibleFilterError(
            "%r is not a Kubernetes version; write it as vMAJOR.MINOR.PATCH, e.g. v1.31.4" % (version,))
    major, minor, patch = int(match.group(1)), int(match.group(2)), int(match.group(3))
    semver = version[1:] if version.startswith("v") else version
    beta = "v1beta4" if (major, minor) >= (1, KUBEADM_V1BETA4_MINOR) else "v1beta3"
    return {
        "version": "v" + semver,
        "semver": semver,
        "major": major,
        "minor": minor,
        "patch": patch,
        "minor_version": "%d.%d" % (major, minor),
        "pkgs_repository": "v%d.%d" % (major, minor),
        "kubeadm_api_version": "kubeadm.k8s.io/" + beta,
    }


def kubernetes_pinned(pins: Mapping[Any, Any], version: Any) -> Any:
    """The pin of the newest minor at or below ``version``'s: a release stays pinned until a newer minor brings its own."""
    if not isinstance(pins, Mapping):
        raise AnsibleFilterError("kubernetes_pinned expects a mapping of Kubernetes minors to releases, not %r" % (pins,))
    minor = kubernetes_version(version)["minor"]
    try:
        keys = sorted(int(key) for key in pins)
    except (TypeError, ValueError):
        raise AnsibleFilterError("kubernetes_pinned: the pins must be keyed by Kubernetes minors (28, 31...), not %r"
                                 % (sorted(pins, key=str),)) from None
    if not keys:
        raise AnsibleFilterError("kubernetes_pinned: no pins given for %s" % (version,))
    at_or_below = [key for key in keys if key <= minor]
    if not at_or_below:
        raise AnsibleFilterError("kubernetes_pinned: nothing is pinned for %s; the first pin is for 1.%d"
                                 % (version, keys[0]))
    chosen = at_or_below[-1]
    return pins[chosen] if chosen in pins else pins[str(chosen)]


class FilterModule:
    """The Kubernetes-version helpers of the node roles."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "kubernetes_version": kubernetes_version,
            "kubernetes_pinned": kubernetes_pinned,
        }
