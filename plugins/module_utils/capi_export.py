# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A running cluster as the Cluster API manifests the AWS provider (CAPA) can adopt.

``spec_to_manifests(spec, cluster, version)`` writes the objects ``clusterctl generate cluster`` writes for CAPA's
default flavor (Cluster, AWSCluster, KubeadmControlPlane, the AWSMachineTemplates, each MachineDeployment with its
KubeadmConfigTemplate), describing the cluster as it exists: the VPC, subnets and security groups by id, the
control-plane endpoint, the Kubernetes versions, counts, AMIs and instance types the machines run. It follows the
mapping the import (capi_manifest) reads, in reverse, so that importing an export gives the spec back; what Cluster
API has no field for goes in the Cluster's annotation ``kubecluster.aws/settings``.

No ClusterResourceSet and no add-on ConfigMap is written: CAPA adopting a running cluster must not apply the add-ons
(cloud-controller-manager, EBS CSI driver) a second time over the ones the collection installed.
"""

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from ansible.module_utils.common.yaml import HAS_YAML, yaml_dump_all

from .capi_machines import BOOTSTRAP_API, CORE_API, INFRASTRUCTURE_API, machine_objects
from .errors import KubeclusterError
from .naming import OWNED, SET_CONTROL_PLANE, owner_tag
from .spec import DEFAULT_IMAGE_LOOKUP, Spec, resolve, version_key

# What clusterctl generate cluster writes for CAPA today: core kinds at v1beta1 (CAPA's templates), CAPA's at v1beta2;
# the Machines, AWSMachines and KubeadmConfigs (capi_machines) are written at the same versions.
CONTROL_PLANE_API = "controlplane.cluster.x-k8s.io/v1beta1"

ANNOTATION_EXPORTED_FROM = "kubecluster.aws/exported-from"
ANNOTATION_SETTINGS = "kubecluster.aws/settings"

API_PORT = 6443
# CAPA's template: kubelets with the external cloud provider, nodes named by their EC2 private DNS name (cloud-init's
# Jinja, expanded on the machine) - what the collection's kubeadm roles do too.
NODE_NAME = "{{ ds.meta_data.local_hostname }}"


def _node_registration() -> Dict[str, Any]:
    return {"kubeletExtraArgs": {"cloud-provider": "external"}, "name": NODE_NAME}


# CAPA's cniIngressRules for the CNIs the collection opens its security groups for (securitygroups.py's CNI rules).
# CAPA's own default for calico writes IP-in-IP as protocol "4" from -1 to 65535 (api/v1beta2/defaults.go).
_CNI_INGRESS_RULES: Dict[str, List[Dict[str, Any]]] = {
    "calico": [
        {"description": "bgp (calico)", "protocol": "tcp", "fromPort": 179, "toPort": 179},
        {"description": "IP-in-IP (calico)", "protocol": "4", "fromPort": -1, "toPort": 65535},
    ],
    "cilium": [
        {"description": "VXLAN (cilium)", "protocol": "udp", "fromPort": 8472, "toPort": 8472},
        {"description": "health (cilium)", "protocol": "tcp", "fromPort": 4240, "toPort": 4240},
    ],
}

# CAPA's securityGroupOverrides keys (its SecurityGroupRole values), in the order CAPA creates the groups.
_SECURITY_GROUP_ROLES = ("bastion", "controlplane", "apiserver-lb", "node", "lb")
_DELETE_POLICIES = {"random": "Random", "newest": "Newest", "oldest": "Oldest"}
# Spec fields Cluster API has no field for: they go in the settings annotation when they differ from the defaults.
_SETTINGS_FIELDS: Tuple[Tuple[str, ...], ...] = (
    ("network", "nat_gateways"),
    ("kubernetes_packages", "source"),
    ("kubernetes_packages", "repository_url"),
    ("kubernetes_packages", "binaries_dir"),
    ("addons", "cni_version"),
    # The add-on versions live in CAPA's ClusterResourceSet ConfigMaps, which an export does not write (see above).
    ("addons", "aws_cloud_controller_manager_version"),
    ("addons", "ebs_csi_driver_version"),
    ("addons", "manifests_dir"),
    ("kubeconfig_path",),
    ("kubeconfig_secret",),
    ("ssh_known_hosts_file",),
    ("upgrade_strategy",),
    ("node_startup_timeout",),
)
# Machines whose image and version no longer say what a set runs (cluster_info's replicas, used for the counts, leaves
# out only the terminated ones).
_GONE = ("terminated", "shutting-down")


def _ref(api_version: str, kind: str, name: str) -> Dict[str, str]:
    return {"apiVersion": api_version, "kind": kind, "name": name}


def _object(api_version: str, kind: str, name: str, spec: Dict[str, Any],
            annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    metadata: Dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def _live(cluster: Mapping[str, Any], set_name: str) -> List[Mapping[str, Any]]:
    return [m for m in cluster.get("machines") or [] if m.get("set") == set_name and m.get("state") not in _GONE]


def _newest(machines: Iterable[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The machine launched last (ISO 8601 times in UTC sort as text), the instance id breaking a tie."""
    ordered = sorted(machines, key=lambda m: (str(m.get("launch_time") or ""), str(m.get("instance_id") or "")))
    return ordered[-1] if ordered else None


def _as_it_runs(cluster: Mapping[str, Any], set_name: str, set_spec: Mapping[str, Any]) -> Tuple[str, Optional[str]]:
    """The instance type and AMI a set's machines run: the running ones' (the newest launch when they differ, as the
    set converges to what it launched last), else the live ones', else the spec's (a set without machines)."""
    live = _live(cluster, set_name)
    machine = _newest([m for m in live if m.get("state") == "running"]) or _newest(live)
    if machine is None:
        return set_spec["instance_type"], set_spec["ami_id"]
    return (machine.get("instance_type") or set_spec["instance_type"],
            machine.get("image_id") or set_spec["ami_id"])


def _replicas(cluster: Mapping[str, Any], set_name: str) -> int:
    counts = (cluster.get("machine_sets") or {}).get(set_name)
    if counts is not None:
        return int(counts.get("replicas") or 0)
    return len(_live(cluster, set_name))


def _lowest_version(cluster: Mapping[str, Any], set_name: str) -> Optional[str]:
    versions = [str(m["kubernetes_version"]) for m in _live(cluster, set_name) if m.get("kubernetes_version")]
    return min(versions, key=version_key) if versions else None


def _duration(seconds: int) -> str:
    return "%ds" % seconds


def _lookup_format(name_format: str) -> str:
    """The spec's image name format in CAPA's Go-template form."""
    return name_format.replace("{base_os}", "{{.BaseOS}}").replace("{k8s_version}", "{{.K8sVersion}}")


def _root_volume(volume: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"size": volume["size"], "type": volume["type"], "encrypted": volume["encrypted"]}
    if volume.get("kms_key_id"):
        out["encryptionKey"] = volume["kms_key_id"]
    return out


def _settings(spec: Spec, defaults: Spec) -> Dict[str, Any]:
    """The partial spec of the fields Cluster API cannot carry, only those that differ from the defaults."""
    out: Dict[str, Any] = {}
    for path in _SETTINGS_FIELDS:
        value: Any = spec
        default: Any = defaults
        for key in path:
            value = value[key]
            default = default[key]
        if value != default:
            into = out
            for key in path[:-1]:
                into = into.setdefault(key, {})
            into[path[-1]] = value
    zones = spec["network"]["availability_zones"]
    if isinstance(zones, list):
        # A count is CAPA's availabilityZoneUsageLimit; named zones have no home in Cluster API.
        out.setdefault("network", {})["availability_zones"] = zones
    deployments = []
    for deployment in spec["machine_deployments"]:
        wanted = deployment["availability_zones"]
        # One zone is the MachineDeployment's failureDomain; several (or a count) have no Cluster API field.
        if wanted is not None and not (isinstance(wanted, list) and len(wanted) == 1):
            deployments.append({"name": deployment["name"], "availability_zones": wanted})
    if deployments:
        out["machine_deployments"] = deployments
    return out


def _machine_template(name: str, spec: Spec, instance_type: str, ami_id: Optional[str], profile: str,
                      root_volume: Mapping[str, Any]) -> Dict[str, Any]:
    metadata = spec["instance_metadata"]
    machine: Dict[str, Any] = {
        "instanceType": instance_type,
        "iamInstanceProfile": profile,
        "sshKeyName": spec["ssh_key_name"] or "",
        "rootVolume": _root_volume(root_volume),
        "instanceMetadataOptions": {
            "httpEndpoint": "enabled",
            "httpTokens": metadata["http_tokens"],
            "httpPutResponseHopLimit": metadata["http_put_response_hop_limit"],
            "instanceMetadataTags": "disabled",
        },
    }
    if ami_id:
        machine["ami"] = {"id": ami_id}
    return _object(INFRASTRUCTURE_API, "AWSMachineTemplate", name, {"template": {"spec": machine}})


def _subnets(spec: Spec, cluster: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Every subnet of the cluster by id: the ones it owns, or for a brought VPC the spec's subnet_ids, in order."""
    known = {s["id"]: s for s in cluster.get("subnets") or []}
    if spec["network"]["vpc_id"]:
        ids = list(spec["network"]["subnet_ids"])
    else:
        ids = [s["id"] for s in cluster.get("subnets") or []]
    out: List[Dict[str, Any]] = []
    for subnet_id in ids:
        entry: Dict[str, Any] = {"id": subnet_id}
        view = known.get(subnet_id)
        if view:
            if view.get("cidr"):
                entry["cidrBlock"] = view["cidr"]
            if view.get("availability_zone"):
                entry["availabilityZone"] = view["availability_zone"]
            if view.get("role"):
                entry["isPublic"] = view["role"] == "public"
        out.append(entry)
    return out


def _aws_cluster(spec: Spec, cluster: Mapping[str, Any], endpoint: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    name = spec["name"]
    network = spec["network"]
    api_lb = network["api_load_balancer"]
    bastion = network["bastion"]
    out: Dict[str, Any] = {"region": spec["region"], "sshKeyName": spec["ssh_key_name"] or ""}
    if spec["additional_tags"]:
        out["additionalTags"] = dict(spec["additional_tags"])
    lookup = spec["image_lookup"]
    if lookup["name_format"] != DEFAULT_IMAGE_LOOKUP["name_format"]:
        out["imageLookupFormat"] = _lookup_format(lookup["name_format"])
    if lookup["owner"] != DEFAULT_IMAGE_LOOKUP["owner"]:
        out["imageLookupOrg"] = lookup["owner"]
    if lookup["base_os"] != DEFAULT_IMAGE_LOOKUP["base_os"]:
        out["imageLookupBaseOS"] = lookup["base_os"]
    out["controlPlaneLoadBalancer"] = {
        "loadBalancerType": api_lb["type"],
        "scheme": api_lb["scheme"],
        "healthCheckProtocol": api_lb["health_check_protocol"],
        "crossZoneLoadBalancing": api_lb["cross_zone"],
        "ingressRules": [{"description": "Kubernetes API", "protocol": "tcp", "fromPort": API_PORT, "toPort": API_PORT,
                          "cidrBlocks": list(api_lb["allowed_cidrs"])}],
    }
    # Always written: no bastion key would mean the collection's default (enabled) on import, CAPA's (disabled) in CAPA.
    out["bastion"] = {"enabled": bastion["enabled"], "allowedCIDRBlocks": list(bastion["allowed_cidrs"]),
                      "instanceType": bastion["instance_type"]}
    if bastion["ami_id"]:
        out["bastion"]["ami"] = bastion["ami_id"]
    vpc: Dict[str, Any] = {}
    vpc_id = cluster.get("vpc_id") or network["vpc_id"]
    if vpc_id:
        vpc["id"] = vpc_id
    if cluster.get("managed_vpc"):
        # CAPA's own marker of a VPC it manages: it keeps managing the network the collection made (same tags).
        vpc["cidrBlock"] = network["vpc_cidr"]
        vpc["tags"] = {owner_tag(name): OWNED}
    zones = network["availability_zones"]
    if isinstance(zones, int) and not isinstance(zones, bool):
        vpc["availabilityZoneUsageLimit"] = zones
        vpc["availabilityZoneSelection"] = "Ordered"
    net: Dict[str, Any] = {"vpc": vpc, "subnets": _subnets(spec, cluster)}
    groups = cluster.get("security_groups") or {}
    overrides = {role: groups[role] for role in _SECURITY_GROUP_ROLES if groups.get(role)}
    if overrides:
        net["securityGroupOverrides"] = overrides
    net["cni"] = {"cniIngressRules": [dict(rule) for rule in _CNI_INGRESS_RULES[network["cni"]]]}
    net["nodePortIngressRuleCidrBlocks"] = list(network["node_port_cidrs"])
    out["network"] = net
    if endpoint:
        out["controlPlaneEndpoint"] = dict(endpoint)
    return _object(INFRASTRUCTURE_API, "AWSCluster", name, out)


def _kubeadm_control_plane(spec: Spec, replicas: int, version: str) -> Dict[str, Any]:
    name = spec["name"]
    config = {
        "clusterConfiguration": {"controllerManager": {"extraArgs": {"cloud-provider": "external"}}},
        "initConfiguration": {"nodeRegistration": _node_registration()},
        "joinConfiguration": {"nodeRegistration": _node_registration()},
    }
    return _object(CONTROL_PLANE_API, "KubeadmControlPlane", "%s-control-plane" % name, {
        "kubeadmConfigSpec": config,
        "machineTemplate": {
            "infrastructureRef": _ref(INFRASTRUCTURE_API, "AWSMachineTemplate", "%s-control-plane" % name),
            "nodeDrainTimeout": _duration(spec["node_drain_timeout"]),
        },
        "replicas": replicas,
        "version": version,
    })


def _machine_deployment(spec: Spec, deployment: Mapping[str, Any], replicas: int, version: str) -> Dict[str, Any]:
    name = spec["name"]
    full = "%s-%s" % (name, deployment["name"])
    template: Dict[str, Any] = {
        "bootstrap": {"configRef": _ref(BOOTSTRAP_API, "KubeadmConfigTemplate", full)},
        "clusterName": name,
        "infrastructureRef": _ref(INFRASTRUCTURE_API, "AWSMachineTemplate", full),
        "nodeDrainTimeout": _duration(spec["node_drain_timeout"]),
        "version": version,
    }
    zones = deployment["availability_zones"]
    if isinstance(zones, list) and len(zones) == 1:
        template["failureDomain"] = zones[0]
    return _object(CORE_API, "MachineDeployment", full, {
        "clusterName": name,
        "replicas": replicas,
        "selector": {"matchLabels": None},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": deployment["max_surge"], "maxUnavailable": deployment["max_unavailable"],
            "deletePolicy": _DELETE_POLICIES[deployment["deletion_order"]]}},
        "template": {"spec": template},
    })


def _kubeadm_config_template(name: str) -> Dict[str, Any]:
    return _object(BOOTSTRAP_API, "KubeadmConfigTemplate", name,
                   {"template": {"spec": {"joinConfiguration": {"nodeRegistration": _node_registration()}}}})


def spec_to_manifests(spec: Spec, cluster: Mapping[str, Any], collection_version: str) -> List[Dict[str, Any]]:
    """The Cluster API objects, in clusterctl's order, that describe the cluster as it exists.

    ``spec`` is the cluster's resolved spec (spec.resolve, or kubecluster.aws.cluster_spec's ``cluster``);
    ``cluster`` what kubecluster.aws.cluster_info returned for it (its ``cluster``); ``collection_version`` goes in the
    annotation ``kubecluster.aws/exported-from``. Versions, replicas, AMIs and instance types are those the machines
    run; the rest comes from the spec. Raises KubeclusterError for a cluster that does not exist.
    """
    name = spec["name"]
    if not cluster or cluster.get("phase") == "NotFound":
        raise KubeclusterError("cluster %s does not exist in %s (it owns nothing there), so there is nothing to "
                               "export; check the spec's name and region, or create it first (ansible-playbook "
                               "kubecluster.aws.create_cluster)" % (name, spec["region"]))
    if cluster.get("name") not in (None, name):
        raise KubeclusterError("the cluster read is %s, not the spec's %s; read the cluster with the spec's name"
                               % (cluster.get("name"), name))
    defaults = resolve({"name": name, "region": spec["region"], "kubernetes_version": spec["kubernetes_version"]})
    control_plane_version = cluster.get("kubernetes_version") or spec["kubernetes_version"]
    endpoint = cluster.get("control_plane_endpoint")
    if endpoint:
        endpoint = {"host": endpoint["host"], "port": int(endpoint.get("port") or API_PORT)}

    annotations = {ANNOTATION_EXPORTED_FROM: "kubecluster.aws %s" % collection_version}
    settings = _settings(spec, defaults)
    if settings:
        annotations[ANNOTATION_SETTINGS] = json.dumps(settings, sort_keys=True)
    cluster_spec: Dict[str, Any] = {
        "clusterNetwork": {"pods": {"cidrBlocks": [spec["network"]["pod_cidr"]]},
                           "services": {"cidrBlocks": [spec["network"]["service_cidr"]]}},
    }
    if endpoint:
        cluster_spec["controlPlaneEndpoint"] = dict(endpoint)
    # Paused until the cluster's certificate authorities are in the management cluster: unpaused without them,
    # the KubeadmControlPlane would make new ones (README, "Out: hand the cluster to Cluster API").
    cluster_spec["paused"] = True
    cluster_spec["controlPlaneRef"] = _ref(CONTROL_PLANE_API, "KubeadmControlPlane", "%s-control-plane" % name)
    cluster_spec["infrastructureRef"] = _ref(INFRASTRUCTURE_API, "AWSCluster", name)

    control_plane = spec["control_plane"]
    cp_type, cp_ami = _as_it_runs(cluster, SET_CONTROL_PLANE, control_plane)
    docs = [
        _object(CORE_API, "Cluster", name, cluster_spec, annotations),
        _aws_cluster(spec, cluster, endpoint),
        _kubeadm_control_plane(spec, _replicas(cluster, SET_CONTROL_PLANE), control_plane_version),
        _machine_template("%s-control-plane" % name, spec, cp_type, cp_ami, control_plane["iam_instance_profile"],
                          control_plane["root_volume"]),
    ]
    for deployment in spec["machine_deployments"]:
        set_name = deployment["name"]
        full = "%s-%s" % (name, set_name)
        instance_type, ami_id = _as_it_runs(cluster, set_name, deployment)
        version = _lowest_version(cluster, set_name) or control_plane_version
        docs.append(_machine_deployment(spec, deployment, _replicas(cluster, set_name), version))
        docs.append(_machine_template(full, spec, instance_type, ami_id, deployment["iam_instance_profile"],
                                      deployment["root_volume"]))
        docs.append(_kubeadm_config_template(full))
    return docs + machine_objects(spec, cluster)


def dump_manifests(docs: Iterable[Mapping[str, Any]]) -> str:
    """The objects as one multi-document YAML text, ``---`` between two, in block style with the keys in clusterctl's
    order: CAPA's templates are made by kustomize, which sorts every mapping's keys (apiVersion, kind, metadata, spec
    is that order too) and writes a list's items at the indentation of its key, as PyYAML does.

    Through JSON first: plain values only (no Ansible-tagged strings), and a value the objects share (the endpoint in
    Cluster and AWSCluster) written out twice, never as a YAML anchor and alias.
    """
    if not HAS_YAML:  # pragma: no cover  (PyYAML comes with ansible-core)
        raise KubeclusterError("writing Cluster API manifests needs PyYAML on the controller; pip install pyyaml")
    plain = json.loads(json.dumps([dict(doc) for doc in docs]))
    return str(yaml_dump_all(plain, default_flow_style=False, sort_keys=True, width=1000))
