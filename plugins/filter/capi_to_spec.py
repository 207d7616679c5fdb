# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: capi_to_spec
short_description: The cluster spec a Cluster API manifest describes
version_added: 1.0.0
description:
  - Reads the multi-document YAML that C(clusterctl generate cluster) writes for the AWS provider's default flavor
    (Cluster, AWSCluster, KubeadmControlPlane, AWSMachineTemplate, MachineDeployment, KubeadmConfigTemplate, and
    the add-on ClusterResourceSets and ConfigMaps) and returns the cluster spec it describes, the mapping with
    C(cluster:) at the top of a spec file holds, with only the fields the manifest sets; the modules and
    C(kubecluster.aws.cluster_spec) fill in the defaults.
  - Cluster API versions v1beta1 and v1beta2 of the core kinds are read, and v1beta2 (and v1beta1) of CAPA's.
  - Every field it does not read is listed in one error, each naming the object (kind and name) and the field path;
    with O(unsupported=warn) they are shown as warnings and the rest of the manifest is used.
  - Fails, whatever O(unsupported) says, for C(${VAR}) placeholders left unexpanded (all named at once), a text that is
    not YAML, a manifest without exactly one Cluster, a reference to an object not in the manifest, an unknown
    apiVersion of a known kind, and values that disagree (a MachineDeployment's version other than the control
    plane's, machine templates naming another SSH key pair than the AWSCluster's, a field both the manifest and
    O(settings) set).
  - The Cluster's annotation C(kubecluster.aws/settings) (a JSON object) carries the spec fields no Cluster API field
    can (nat_gateways, kubernetes_packages, ...); they are merged in.
options:
  _input:
    description: The text of the manifest, or the list of its objects already parsed.
    type: raw
    required: true
  settings:
    description:
      - Spec fields Cluster API cannot say (kubernetes_packages, addons.manifests_dir, kubeconfig_path, ...), merged
        into the result; a mapping, or the YAML text of one (a spec file's C(cluster:) key is taken off).
      - A field the manifest sets too is an error naming it.
    type: raw
  unsupported:
    description: What a field the collection does not read does, fail the filter or show a warning.
    type: str
    choices: [fail, warn]
    default: fail
"""

EXAMPLES = r"""
- name: Read the quick start's manifest as the cluster spec
  ansible.builtin.set_fact:
    cluster: "{{ lookup('ansible.builtin.file', 'capi-example.yaml') | kubecluster.aws.capi_to_spec }}"

- name: With what Cluster API cannot say given beside it, and the unsupported fields only warned about
  ansible.builtin.set_fact:
    cluster: >-
      {{ lookup('ansible.builtin.file', 'capi-example.yaml')
         | kubecluster.aws.capi_to_spec(settings={'kubernetes_packages': {'source': 'pkgs.k8s.io'}},
                                        unsupported='warn') }}
"""

RETURN = r"""
_value:
  description:
    - The raw cluster spec (the value of C(cluster:) in a spec file), holding only the fields the manifest sets.
  type: dict
  sample:
    name: capi-example
    region: us-east-1
    kubernetes_version: v1.31.4
    ssh_key_name: default
    network:
      pod_cidr: 192.168.0.0/16
      api_load_balancer: {type: nlb, health_check_protocol: HTTPS}
    control_plane: {replicas: 1, instance_type: t3.large}
    machine_deployments: [{name: md-0, replicas: 2, instance_type: t3.large}]
"""

from typing import Any, Callable, Dict, Optional

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.kubecluster.aws.plugins.module_utils.capi_manifest import CapiManifestError, manifest_to_spec
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import SpecError

display = Display()


def capi_to_spec(manifest: Any, settings: Optional[Any] = None, unsupported: str = "fail") -> Dict[str, Any]:
    """The raw spec ``manifest`` describes; unsupported fields as warnings with ``unsupported='warn'``."""
    if isinstance(manifest, str):
        manifest = str(manifest)  # a tagged str of Ansible 2.19 is no str to libyaml
    try:
        raw, warnings = manifest_to_spec(manifest, settings=settings, unsupported=unsupported)
    except (CapiManifestError, SpecError) as error:
        raise AnsibleFilterError(error.message) from None
    for warning in warnings:
        display.warning("capi_to_spec: %s" % warning)
    return raw


class FilterModule:
    """The cluster spec from a Cluster API manifest."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"capi_to_spec": capi_to_spec}
