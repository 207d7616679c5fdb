"""capi_export.py: a running cluster as the Cluster API manifests CAPA adopts, compared with golden files
(tests/unit/plugins/capi/export/), and the filter spec_to_capi around it.

The golden files are what the export must write; after a deliberate change of the output, rewrite them with
KUBECLUSTER_UPDATE_GOLDEN=1 and review the diff as the change itself.
"""

import copy
import json
import os

import pytest
import yaml
from ansible._internal._datatag._tags import Origin
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter.spec_to_capi import FilterModule
from ansible_collections.kubecluster.aws.plugins.module_utils import capi_export
from ansible_collections.kubecluster.aws.plugins.module_utils.capi_manifest import manifest_to_spec
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capi", "export")
VERSION = "1.0.0"
REGION = "ap-northeast-2"
ZONES = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
AMI = "ami-0a1b2c3d4e5f67890"
ENDPOINT = {"host": "capi-example-apiserver-0123456789abcdef.elb.ap-northeast-2.amazonaws.com", "port": 6443}
GROUPS = {"apiserver-lb": "sg-0000000000000000a", "lb": "sg-0000000000000000b", "controlplane": "sg-0000000000000000c",
          "node": "sg-0000000000000000d", "bastion": "sg-0000000000000000e"}

spec_to_capi = FilterModule().filters()["spec_to_capi"]


def example(**changes):
    """examples/capi-example.yml's cluster (1 control plane, 2 workers), with ``changes`` over its top keys."""
    raw = {
        "name": "capi-example", "region": REGION, "kubernetes_version": "v1.31.4", "ssh_key_name": "jonnung",
        "network": {"vpc_cidr": "10.0.0.0/16", "availability_zones": 3, "nat_gateways": "per_az",
                    "api_load_balancer": {"type": "nlb", "scheme": "internet-facing", "allowed_cidrs": ["0.0.0.0/0"]},
                    "bastion": {"enabled": True, "allowed_cidrs": ["0.0.0.0/0"]}},
        "control_plane": {"replicas": 1, "instance_type": "t3.large"},
        "machine_deployments": [{"name": "md-0", "replicas": 2, "instance_type": "t3.large"}],
    }
    raw.update(copy.deepcopy(changes))
    return resolve(raw)


def machine(set_name, index, version="v1.31.4", image_id=AMI, instance_type="t3.large", state="running",
            launch_time="2025-01-31T09:30:00+00:00", zone=None):
    role = "control-plane" if set_name == "control-plane" else "node"
    return {"instance_id": "i-%s%02d" % ("0c" if role == "control-plane" else "0d", index),
            "name": "capi-example-%s-%d" % (set_name, index), "set": set_name, "role": role,
            "kubernetes_version": version, "state": state, "availability_zone": zone or ZONES[index % 3],
            "image_id": image_id, "instance_type": instance_type, "launch_time": launch_time}


def managed_subnets():
    public = ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]
    private = ["10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]
    subnets = [{"id": "subnet-0%016d" % (i + 1), "role": "private", "availability_zone": z, "cidr": c}
               for i, (z, c) in enumerate(zip(ZONES, private))]
    subnets += [{"id": "subnet-0%016d" % (i + 4), "role": "public", "availability_zone": z, "cidr": c}
                for i, (z, c) in enumerate(zip(ZONES, public))]
    return subnets


def cluster_view(machines, managed_vpc=True, subnets=None, vpc_id="vpc-0a1b2c3d4e5f67890", groups=None,
                 endpoint="known", phase="Provisioned"):
    """What cluster_info returns as ``cluster`` for these machines; ``endpoint`` None: no DNS name yet."""
    endpoint = dict(ENDPOINT) if endpoint == "known" else endpoint
    sets = {}
    for m in machines:
        if m["state"] != "terminated":
            counts = sets.setdefault(m["set"], {"replicas": 0, "running": 0})
            counts["replicas"] += 1
            counts["running"] += m["state"] == "running"
    versions = [m["kubernetes_version"] for m in machines if m["set"] == "control-plane" and m["state"] != "terminated"]
    return {
        "name": "capi-example", "region": REGION, "phase": phase, "failure_message": None,
        "control_plane_endpoint": endpoint, "vpc_id": vpc_id, "managed_vpc": managed_vpc,
        "subnets": managed_subnets() if subnets is None else subnets,
        "security_groups": dict(GROUPS) if groups is None else groups,
        "kubernetes_version": min(versions) if versions else None,
        "machines": machines, "machine_sets": sets,
    }


def default_machines(control_planes=1, workers=2):
    return [machine("control-plane", i) for i in range(control_planes)] + [machine("md-0", i) for i in range(workers)]


def assert_golden(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("KUBECLUSTER_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    with open(path, encoding="utf-8") as handle:
        expected = handle.read()
    assert text == expected, "the export differs from %s" % path


def export(spec, cluster):
    return capi_export.dump_manifests(capi_export.spec_to_manifests(spec, cluster, VERSION))


def objects(text):
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(text)}


def test_the_quick_start_cluster_one_control_plane_two_workers():
    text = export(example(), cluster_view(default_machines()))

    assert_golden("capi-example.manifest", text)
    docs = list(yaml.safe_load_all(text))
    # clusterctl's order, and no add-on ClusterResourceSet: adoption must not apply the add-ons again; then each
    # running machine (bastion aside) as the Machine, AWSMachine and KubeadmConfig Cluster API adopts.
    machines = sorted(m["name"] for m in default_machines() if m["set"] != "bastion")
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Cluster", "capi-example"), ("AWSCluster", "capi-example"),
        ("KubeadmControlPlane", "capi-example-control-plane"), ("AWSMachineTemplate", "capi-example-control-plane"),
        ("MachineDeployment", "capi-example-md-0"), ("AWSMachineTemplate", "capi-example-md-0"),
        ("KubeadmConfigTemplate", "capi-example-md-0")] + [
        (kind, name) for name in machines for kind in ("Machine", "AWSMachine", "KubeadmConfig")]
    assert [list(d) for d in docs] == [["apiVersion", "kind", "metadata", "spec"]] * len(docs)
    assert text.count("\n---\n") == len(docs) - 1 and "&id" not in text and "*id" not in text
    cluster = docs[0]
    assert cluster["spec"]["paused"] is True
    assert cluster["metadata"]["annotations"] == {"kubecluster.aws/exported-from": "kubecluster.aws 1.0.0"}
    vpc = docs[1]["spec"]["network"]["vpc"]
    assert vpc["tags"] == {"sigs.k8s.io/cluster-api-provider-aws/cluster/capi-example": "owned"}
    assert vpc["availabilityZoneUsageLimit"] == 3


def test_three_control_planes():
    text = export(example(control_plane={"replicas": 3, "instance_type": "m5.large"}),
                  cluster_view(default_machines(3, 2)))

    assert_golden("three-control-planes.manifest", text)
    assert objects(text)[("KubeadmControlPlane", "capi-example-control-plane")]["spec"]["replicas"] == 3


def test_a_brought_vpc_has_no_owned_tag_and_the_spec_subnets_in_order():
    subnets = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2", "subnet-0aaaaaaaaaaaaaaa3"]
    spec = example(network={"vpc_id": "vpc-0bbbbbbbbbbbbbbb1", "subnet_ids": subnets, "nat_gateways": "none",
                            "bastion": {"enabled": False}})
    used = [{"id": subnets[0], "role": "private", "availability_zone": ZONES[0], "cidr": "172.31.0.0/20"},
            {"id": subnets[2], "role": "public", "availability_zone": ZONES[2], "cidr": "172.31.32.0/20"}]
    groups = {k: v for k, v in GROUPS.items() if k != "bastion"}
    text = export(spec, cluster_view(default_machines(), managed_vpc=False, subnets=used,
                                     vpc_id="vpc-0bbbbbbbbbbbbbbb1", groups=groups))

    assert_golden("byo-vpc.manifest", text)
    network = objects(text)[("AWSCluster", "capi-example")]["spec"]["network"]
    assert network["vpc"] == {"id": "vpc-0bbbbbbbbbbbbbbb1", "availabilityZoneUsageLimit": 3,
                              "availabilityZoneSelection": "Ordered"}, "no owned tag, no CIDR: CAPA leaves it alone"
    assert [s["id"] for s in network["subnets"]] == subnets
    assert network["subnets"][1] == {"id": subnets[1]}, "a subnet no machine uses is named by id alone"
    assert "bastion" not in network["securityGroupOverrides"]


def test_settings_without_a_cluster_api_field_go_in_the_annotation_when_not_default():
    spec = example(
        network={"availability_zones": ZONES[:2], "nat_gateways": "single", "cni": "cilium",
                 "node_port_cidrs": ["10.0.0.0/8"],
                 "api_load_balancer": {"type": "classic", "scheme": "internal", "allowed_cidrs": ["10.0.0.0/8"],
                                       "cross_zone": True, "health_check_protocol": "TCP"},
                 "bastion": {"enabled": True, "allowed_cidrs": ["203.0.113.0/24"], "instance_type": "t3.small",
                             "ami_id": "ami-0bbbbbbbbbbbbbbb1"}},
        additional_tags={"team": "platform"},
        image_lookup={"owner": "self", "name_format": "my-{base_os}-{k8s_version}-*", "base_os": "debian-12"},
        instance_metadata={"http_tokens": "optional", "http_put_response_hop_limit": 1},
        kubernetes_packages={"source": "mirror", "repository_url": "https://mirror.example.com/k8s/"},
        addons={"cni_version": "v1.16.5", "ebs_csi_driver_version": "v1.43.0"},
        kubeconfig_path="/etc/kube/capi.kubeconfig", kubeconfig_secret="ssm", upgrade_strategy="in_place",
        node_startup_timeout=900, node_drain_timeout=120, ssh_key_name=None,
        control_plane={"replicas": 1, "root_volume": {"size": 100, "type": "io2", "kms_key_id": "alias/capi"}},
        machine_deployments=[
            {"name": "md-0", "replicas": 1, "availability_zones": [ZONES[0]], "deletion_order": "oldest",
             "max_surge": 0, "max_unavailable": 1},
            {"name": "md-1", "replicas": 2, "availability_zones": ZONES[:2], "iam_instance_profile": "workers"},
        ])
    machines = [machine("control-plane", 0), machine("md-0", 0, zone=ZONES[0]),
                machine("md-1", 0, zone=ZONES[0]), machine("md-1", 1, zone=ZONES[1])]
    two_zones = [s for s in managed_subnets() if s["availability_zone"] in ZONES[:2]]
    text = export(spec, cluster_view(machines, subnets=two_zones))

    assert_golden("settings.manifest", text)
    cluster = objects(text)[("Cluster", "capi-example")]
    settings = json.loads(cluster["metadata"]["annotations"]["kubecluster.aws/settings"])
    assert settings == {
        "addons": {"cni_version": "v1.16.5", "ebs_csi_driver_version": "v1.43.0"},
        "kubeconfig_path": "/etc/kube/capi.kubeconfig", "kubeconfig_secret": "ssm",
        "kubernetes_packages": {"repository_url": "https://mirror.example.com/k8s/", "source": "mirror"},
        "machine_deployments": [{"name": "md-1", "availability_zones": ZONES[:2]}],
        "network": {"availability_zones": ZONES[:2], "nat_gateways": "single"},
        "node_startup_timeout": 900, "upgrade_strategy": "in_place",
    }
    assert cluster["metadata"]["annotations"]["kubecluster.aws/settings"] == json.dumps(settings, sort_keys=True)
    aws_cluster = objects(text)[("AWSCluster", "capi-example")]["spec"]
    assert aws_cluster["imageLookupFormat"] == "my-{{.BaseOS}}-{{.K8sVersion}}-*"
    assert "availabilityZoneUsageLimit" not in aws_cluster["network"]["vpc"], "named zones are in the annotation"
    assert aws_cluster["sshKeyName"] == "", "no key pair"
    md0 = objects(text)[("MachineDeployment", "capi-example-md-0")]["spec"]
    assert md0["template"]["spec"]["failureDomain"] == ZONES[0]
    assert md0["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1, "deletePolicy": "Oldest"}
    assert "failureDomain" not in objects(text)[("MachineDeployment", "capi-example-md-1")]["spec"]["template"]["spec"]


def test_the_machines_as_they_run_the_newest_launch_wins_and_the_lowest_version():
    machines = [
        machine("control-plane", 0, version="v1.31.4"),
        machine("md-0", 0, version="v1.30.8", image_id="ami-0000000000000old1", instance_type="t3.large",
                launch_time="2025-01-01T00:00:00+00:00"),
        machine("md-0", 1, version="v1.31.4", image_id="ami-0000000000000new1", instance_type="m5.xlarge",
                launch_time="2025-02-01T00:00:00+00:00"),
        # A machine that is gone counts for nothing; one still pending counts but a running one decides the image.
        machine("md-0", 2, version="v1.29.0", image_id="ami-000000000000gone1", state="terminated",
                launch_time="2025-03-01T00:00:00+00:00"),
        machine("md-0", 3, version="v1.31.4", image_id="ami-00000000000pending", state="pending",
                launch_time="2025-03-02T00:00:00+00:00"),
    ]
    text = export(example(), cluster_view(machines))

    assert_golden("machines-differ.manifest", text)
    docs = objects(text)
    md = docs[("MachineDeployment", "capi-example-md-0")]["spec"]
    assert md["replicas"] == 3 and md["template"]["spec"]["version"] == "v1.30.8"
    template = docs[("AWSMachineTemplate", "capi-example-md-0")]["spec"]["template"]["spec"]
    assert (template["ami"], template["instanceType"]) == ({"id": "ami-0000000000000new1"}, "m5.xlarge")
    assert docs[("KubeadmControlPlane", "capi-example-control-plane")]["spec"]["version"] == "v1.31.4"


def test_a_set_without_machines_keeps_the_spec_values_and_the_control_plane_version():
    spec = example(machine_deployments=[{"name": "md-0", "replicas": 2, "instance_type": "t3.xlarge",
                                         "ami_id": "ami-0cccccccccccccccc"}])
    docs = objects(export(spec, cluster_view([machine("control-plane", 0)], endpoint=None)))

    md = docs[("MachineDeployment", "capi-example-md-0")]["spec"]
    assert md["replicas"] == 0 and md["template"]["spec"]["version"] == "v1.31.4"
    template = docs[("AWSMachineTemplate", "capi-example-md-0")]["spec"]["template"]["spec"]
    assert (template["ami"], template["instanceType"]) == ({"id": "ami-0cccccccccccccccc"}, "t3.xlarge")
    assert "controlPlaneEndpoint" not in docs[("AWSCluster", "capi-example")]["spec"], "no endpoint known yet"
    assert "controlPlaneEndpoint" not in docs[("Cluster", "capi-example")]["spec"]


def test_a_cluster_that_does_not_exist_is_an_error():
    with pytest.raises(KubeclusterError) as caught:
        capi_export.spec_to_manifests(example(), {"name": "capi-example", "phase": "NotFound"}, VERSION)
    assert "cluster capi-example does not exist in ap-northeast-2" in str(caught.value)


def test_the_filter_takes_the_spec_as_written_and_tagged_values():
    raw = {"name": "capi-example", "region": REGION, "kubernetes_version": Origin(description="spec").tag("v1.31.4"),
           "ssh_key_name": "jonnung", "machine_deployments": [{"name": "md-0", "replicas": 2}]}
    text = spec_to_capi(raw, cluster_view(default_machines()), VERSION)
    assert text == export(example(), cluster_view(default_machines()))


def test_the_filter_fails_in_one_line_for_a_cluster_that_does_not_exist():
    with pytest.raises(AnsibleFilterError) as caught:
        spec_to_capi(example(), {"name": "capi-example", "phase": "NotFound"}, VERSION)
    assert "does not exist in ap-northeast-2" in str(caught.value)


def _with_running_images(changes):
    """Spec changes whose sets name the AMI their machines run, so that the export (AMIs as they run) is the spec."""
    changes = copy.deepcopy(changes)
    changes["control_plane"] = dict(changes.get("control_plane", {"replicas": 1}), ami_id=AMI)
    deployments = changes.get("machine_deployments", [{"name": "md-0", "replicas": 2}])
    changes["machine_deployments"] = [dict(d, ami_id=AMI) for d in deployments]
    return changes


ROUND_TRIPS = {
    "quick-start": ({}, {}),
    "three-control-planes": ({"control_plane": {"replicas": 3, "instance_type": "m5.large"}}, {}),
    "brought-vpc": ({"network": {"vpc_id": "vpc-0bbbbbbbbbbbbbbb1", "nat_gateways": "none",
                                 "subnet_ids": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]}},
                    {"managed_vpc": False, "subnets": [], "vpc_id": "vpc-0bbbbbbbbbbbbbbb1"}),
    "settings": ({
        "network": {"availability_zones": ZONES[:2], "nat_gateways": "single", "cni": "cilium",
                    "node_port_cidrs": ["10.0.0.0/8"],
                    "api_load_balancer": {"type": "classic", "scheme": "internal", "allowed_cidrs": ["10.0.0.0/8"],
                                          "cross_zone": True, "health_check_protocol": "TCP"},
                    "bastion": {"enabled": False, "allowed_cidrs": ["203.0.113.0/24"], "instance_type": "t3.small"}},
        "additional_tags": {"team": "platform"},
        "image_lookup": {"owner": "self", "name_format": "my-{base_os}-{k8s_version}-*", "base_os": "debian-12"},
        "instance_metadata": {"http_tokens": "optional", "http_put_response_hop_limit": 1},
        "kubernetes_packages": {"source": "mirror", "repository_url": "https://mirror.example.com/k8s/"},
        # No ClusterResourceSet ConfigMaps in an export: the add-on versions ride in the settings annotation too.
        "addons": {"cni_version": "v1.16.5", "manifests_dir": "/srv/addons",
                   "aws_cloud_controller_manager_version": "v1.31.8"},
        "kubeconfig_path": "/etc/kube/capi.kubeconfig", "kubeconfig_secret": "ssm", "upgrade_strategy": "in_place",
        "node_startup_timeout": 900, "node_drain_timeout": 120, "ssh_key_name": None,
        "control_plane": {"replicas": 1, "root_volume": {"size": 100, "type": "io2", "kms_key_id": "alias/capi"}},
        "machine_deployments": [
            {"name": "md-0", "replicas": 2, "availability_zones": [ZONES[0]], "deletion_order": "oldest",
             "max_surge": 0, "max_unavailable": 1},
            {"name": "md-1", "replicas": 0, "availability_zones": ZONES[:2], "iam_instance_profile": "workers"},
        ]}, {}),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_spec_export_import_gives_the_same_spec(case):
    changes, view = ROUND_TRIPS[case]
    spec = example(**_with_running_images(changes))
    control_plane = spec["control_plane"]
    machines = [machine("control-plane", i, instance_type=control_plane["instance_type"])
                for i in range(control_plane["replicas"])]
    machines += [machine(d["name"], i, instance_type=d["instance_type"])
                 for d in spec["machine_deployments"] for i in range(d["replicas"])]
    cluster = dict(cluster_view(machines), **view)

    raw, warnings = manifest_to_spec(export(spec, cluster))

    assert warnings == []
    assert resolve(raw) == spec
