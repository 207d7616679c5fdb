# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: spec_to_capi
short_description: A running cluster as the Cluster API manifests the AWS provider (CAPA) can adopt
version_added: 1.0.0
description:
  - Writes the multi-document YAML C(clusterctl generate cluster) writes for CAPA's default flavor - Cluster,
    AWSCluster, KubeadmControlPlane, the control plane's AWSMachineTemplate, then for each machine deployment its
    MachineDeployment, AWSMachineTemplate and KubeadmConfigTemplate - describing the cluster as it exists, so that
    CAPA adopts it instead of building another.
  - The AWSCluster names the VPC, every subnet and the security groups by id and carries the control-plane endpoint;
    a VPC the collection made keeps CAPA's ownership tag (CAPA goes on managing the network, whose tags are already
    CAPA's), a brought VPC has none (CAPA leaves it alone).
  - The KubeadmControlPlane and MachineDeployments have the versions and replica counts the machines have (the lowest
    version of each set's machines, the machines not terminated), the AWSMachineTemplates the AMI and instance type the
    set's running machines run (the newest launch when they differ).
  - What Cluster API has no field for (NAT layout, named availability zones, package source, add-on versions,
    kubeconfig settings, upgrade strategy, ...) goes, when it differs from the default, in the Cluster's annotation
    C(kubecluster.aws/settings) as JSON, so that reading the export back with M(kubecluster.aws.capi_to_spec) gives the
    spec back. The annotation C(kubecluster.aws/exported-from) says which version of the collection wrote it.
  - No ClusterResourceSet or add-on ConfigMap is written - the cluster runs its add-ons already.
  - Fails for a cluster that does not exist (O(cluster) phase V(NotFound)).
  - The playbook C(kubecluster.aws.export_capi) reads the cluster and writes the file.
options:
  _input:
    description:
      - The cluster spec, resolved - RV(kubecluster.aws.cluster_spec#module:cluster) - or as written (it is resolved
        again, with its defaults).
    type: dict
    required: true
  cluster:
    description:
      - What M(kubecluster.aws.cluster_info) read of the cluster, its RV(kubecluster.aws.cluster_info#module:cluster).
    type: dict
    required: true
  version:
    description: The collection's version, for the annotation C(kubecluster.aws/exported-from).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Validate the spec and fill in its defaults
  kubecluster.aws.cluster_spec:
    cluster: "{{ cluster }}"
    check_account: false
  register: kubecluster_spec

- name: Read what the cluster owns and runs
  kubecluster.aws.cluster_info:
    name: "{{ kubecluster_spec.cluster.name }}"
    region: "{{ kubecluster_spec.cluster.region }}"
    cluster: "{{ kubecluster_spec.cluster }}"
  register: kubecluster_info

- name: Write the Cluster API manifests
  ansible.builtin.copy:
    content: "{{ kubecluster_spec.cluster | kubecluster.aws.spec_to_capi(kubecluster_info.cluster, '1.0.0') }}"
    dest: capi-example-export.yaml
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The manifests, one YAML document per object, C(---) between two, keys in clusterctl's order.
  type: str
"""

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.module_utils.capi_export import dump_manifests, spec_to_manifests
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import cluster_input, resolve


def spec_to_capi(spec: Any, cluster: Any, version: Any) -> str:
    """The manifests of the running cluster, as capi_export writes them."""
    if not isinstance(cluster, dict):
        raise AnsibleFilterError("spec_to_capi: cluster must be what kubecluster.aws.cluster_info returned as cluster, "
                                 "not %r" % (type(cluster).__name__,))
    if not version:
        raise AnsibleFilterError("spec_to_capi: version (the collection's version) is required")
    try:
        # An already resolved spec resolves to itself; one as written gets its defaults.
        resolved = resolve(cluster_input(spec))
        return dump_manifests(spec_to_manifests(resolved, cluster, str(version)))
    except KubeclusterError as error:
        raise AnsibleFilterError(error.message) from None


class FilterModule:
    """A running cluster as Cluster API manifests."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"spec_to_capi": spec_to_capi}
