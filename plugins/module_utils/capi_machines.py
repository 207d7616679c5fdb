# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The running machines as the objects Cluster API adopts: a Machine, an AWSMachine and a KubeadmConfig each.

Without them a KubeadmControlPlane applied to a management cluster finds no control-plane Machine and runs
`kubeadm init` on a new one: a second etcd behind the same endpoint. With them it adopts the Machines (they carry
the cluster-name and control-plane labels, a KubeadmConfig bootstrap reference and no owner: KCP's "adoptable"
rule), CAPA finds each instance by its instanceID instead of launching one, and the bootstrap data secret name
marks the machines as bootstrapped already, so nothing waits for cloud-init data that was never made. The KCP
then rolls the adopted machines, since they were not made from its templates; worker Machines stay standalone
until deleted (a MachineSet adopts only Machines carrying its template hash).
"""

from typing import Any, Dict, List, Mapping

CORE_API = "cluster.x-k8s.io/v1beta1"
BOOTSTRAP_API = "bootstrap.cluster.x-k8s.io/v1beta1"
INFRASTRUCTURE_API = "infrastructure.cluster.x-k8s.io/v1beta2"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
CONTROL_PLANE_LABEL = "cluster.x-k8s.io/control-plane"
CONTROL_PLANE_NAME_LABEL = "cluster.x-k8s.io/control-plane-name"
DEPLOYMENT_NAME_LABEL = "cluster.x-k8s.io/deployment-name"
ADOPTED_KINDS = ("Machine", "AWSMachine", "KubeadmConfig")
# States in which an instance is, or becomes, a node: the export describes these (not the bastion).
_LIVE_STATES = ("pending", "running")


def provider_id(machine: Mapping[str, Any]) -> str:
    """The Node's spec.providerID, as the cloud controller manager and CAPA write it."""
    return "aws:///%s/%s" % (machine["availability_zone"], machine["instance_id"])


def _labels(cluster_name: str, machine: Mapping[str, Any]) -> Dict[str, str]:
    labels = {CLUSTER_NAME_LABEL: cluster_name}
    if machine["set"] == "control-plane":
        labels[CONTROL_PLANE_LABEL] = ""
        labels[CONTROL_PLANE_NAME_LABEL] = "%s-control-plane" % cluster_name
    else:
        labels[DEPLOYMENT_NAME_LABEL] = "%s-%s" % (cluster_name, machine["set"])
    return labels


def _profile(spec: Mapping[str, Any], set_name: str) -> Any:
    """The set's instance profile in the spec (the instance's own is not in cluster_info's reading)."""
    sets = [spec["control_plane"]] if set_name == "control-plane" else \
        [md for md in spec["machine_deployments"] if md["name"] == set_name]
    return sets[0]["iam_instance_profile"] if sets else None


def machine_objects(spec: Mapping[str, Any], cluster: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """For each live control-plane and worker machine of cluster_info's ``cluster``, in name order: its Machine,
    AWSMachine and KubeadmConfig, all named by the instance's Name tag."""
    name = cluster["name"]
    found = [machine for machine in cluster.get("machines") or []
             if machine.get("role") in ("control-plane", "node") and machine.get("state") in _LIVE_STATES]
    objects: List[Dict[str, Any]] = []
    for machine in sorted(found, key=lambda item: item["name"]):
        machine_name, labels = machine["name"], _labels(name, machine)
        version = machine.get("kubernetes_version") or spec["kubernetes_version"]
        objects.append({
            "apiVersion": CORE_API,
            "kind": "Machine",
            "metadata": {"name": machine_name, "labels": labels},
            "spec": {
                "clusterName": name,
                "version": version,
                "providerID": provider_id(machine),
                "failureDomain": machine["availability_zone"],
                "bootstrap": {
                    "configRef": {"apiVersion": BOOTSTRAP_API, "kind": "KubeadmConfig", "name": machine_name},
                    # Already bootstrapped: no controller waits for, or makes, cloud-init data for it.
                    "dataSecretName": "%s-bootstrap" % machine_name,
                },
                "infrastructureRef": {"apiVersion": INFRASTRUCTURE_API, "kind": "AWSMachine", "name": machine_name},
            },
        })
        aws_machine: Dict[str, Any] = {
            "instanceID": machine["instance_id"],
            "providerID": provider_id(machine),
            "instanceType": machine["instance_type"],
            "ami": {"id": machine["image_id"]},
        }
        profile = _profile(spec, machine["set"])
        if profile:
            aws_machine["iamInstanceProfile"] = profile
        if spec.get("ssh_key_name"):
            aws_machine["sshKeyName"] = spec["ssh_key_name"]
        objects.append({
            "apiVersion": INFRASTRUCTURE_API,
            "kind": "AWSMachine",
            "metadata": {"name": machine_name, "labels": dict(labels)},
            "spec": aws_machine,
        })
        objects.append({
            "apiVersion": BOOTSTRAP_API,
            "kind": "KubeadmConfig",
            "metadata": {"name": machine_name, "labels": dict(labels)},
            "spec": {},
        })
    return objects
