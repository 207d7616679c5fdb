# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: cluster_input
short_description: The cluster spec as a mapping, also when it was given as YAML or JSON text
version_added: 1.0.0
description:
  - An AWX or Automation Controller survey gives the spec as the text of a textarea, C(-e cluster=...) as a string; the
    modules take either, and playbooks read the spec's fields through this filter, which parses the text the way
    the modules do.
  - A mapping is returned as it is; a YAML or JSON text is parsed; the text of a whole spec file (C(cluster:) at its
    top) gives the spec under that key.
  - Fails naming C(cluster) for a text that does not parse, or that is no mapping. Null gives null; for a spec that may
    be undefined, put C(default(none)) before the filter.
options:
  _input:
    description: The C(cluster) variable.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Read the spec's kubeconfig path whether the spec came as a mapping or as a survey's text
  ansible.builtin.debug:
    msg: "{{ (cluster | kubecluster.aws.cluster_input).kubeconfig_path | default('~/.kube/config', true) }}"
"""

RETURN = r"""
_value:
  description: The spec as a mapping, or null when none was given.
  type: dict
"""

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import cluster_input as parse


def cluster_input(value: Any) -> Any:
    """``value`` as spec.cluster_input parses it for the modules."""
    if value is None:
        return None
    try:
        return parse(value)
    except SpecError as error:
        raise AnsibleFilterError(error.message) from None


class FilterModule:
    """The cluster spec as a mapping."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"cluster_input": cluster_input}
