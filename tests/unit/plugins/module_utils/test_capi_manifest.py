"""Cluster API manifests in (issue 11): clusterctl's CAPA manifest read as the cluster spec, every field the mapping
does not read reported, never dropped silently. Golden manifests and their expected specs: tests/unit/plugins/capi."""

import copy
import json
import os

import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.module_utils.capi_manifest import (
    CapiManifestError,
    manifest_to_spec,
    parse_duration,
)
from ansible_collections.kubecluster.aws.plugins.module_utils.capi_machines import machine_objects
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capi")
CONVERTIBLE = ["capa-d029c95-default", "capa-2cf09d78-default", "capi-example-3cp", "capi-example-existing-vpc",
               "capi-example-v1beta2"]


def text(name):
    with open(os.path.join(GOLDEN, name), encoding="utf-8") as handle:
        return handle.read()


def objects(name="capi-example-3cp.manifest"):
    return [doc for doc in yaml.safe_load_all(text(name)) if doc]


def find(docs, kind, name=None):
    return next(doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name))


def problems_of(manifest, **kwargs):
    with pytest.raises(CapiManifestError) as caught:
        manifest_to_spec(manifest, **kwargs)
    return caught.value.problems


def leaves(value, path=""):
    """Every leaf of a spec as (path, value), to compare field by field and name the field that differs."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from leaves(child, "%s.%s" % (path, key) if path else key)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, child in enumerate(value):
            yield from leaves(child, "%s[%d]" % (path, index))
    else:
        yield path, value


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_each_golden_manifest_converts_to_its_expected_spec_field_by_field(name):
    raw, warnings = manifest_to_spec(text(name + ".manifest"))
    expected = yaml.safe_load(text(name + ".spec.yml"))["cluster"]
    assert warnings == []
    assert dict(leaves(raw)) == dict(leaves(expected))
    assert raw == expected
    resolved = resolve(raw)
    assert resolved["name"] == "capi-example"


def test_the_manifest_may_be_given_parsed():
    raw, unused_warnings = manifest_to_spec(objects())
    assert raw == yaml.safe_load(text("capi-example-3cp.spec.yml"))["cluster"]


def test_v1beta1_and_v1beta2_give_the_same_spec():
    assert manifest_to_spec(text("capi-example-3cp.manifest")) == manifest_to_spec(text("capi-example-v1beta2.manifest"))


def test_the_default_flavor_resolves_to_the_quick_start_cluster():
    resolved = resolve(manifest_to_spec(text("capa-2cf09d78-default.manifest"))[0])
    assert resolved["control_plane"]["replicas"] == 1
    assert [(d["name"], d["replicas"]) for d in resolved["machine_deployments"]] == [("md-0", 2)]
    assert resolved["network"]["bastion"]["enabled"] is True  # no bastion key: the collection's default
    assert resolved["network"]["cni"] == "calico"


UNSUPPORTED = [
    "MachineHealthCheck capi-example-mhc: not supported",
    "Cluster capi-example: metadata.labels.env: not supported",
    "Cluster capi-example: spec.clusterNetwork.serviceDomain: not supported",
    "Cluster capi-example: spec.paused: not supported",
    "AWSCluster capi-example: spec.s3Bucket: not supported",
    "AWSCluster capi-example: spec.controlPlaneLoadBalancer.loadBalancerType: not supported",
    "AWSCluster capi-example: spec.network.vpc.availabilityZoneSelection: not supported",
    "KubeadmControlPlane capi-example-control-plane: spec.kubeadmConfigSpec.preKubeadmCommands: not supported",
    "KubeadmControlPlane capi-example-control-plane: spec.kubeadmConfigSpec.files: not supported",
    "AWSMachineTemplate capi-example-control-plane: spec.template.spec.additionalSecurityGroups: not supported",
    "MachineDeployment capi-example-md-0: spec.strategy.rollingUpdate.maxSurge: not supported",
    "AWSMachineTemplate capi-example-md-0: spec.template.spec.spotMarketOptions: not supported (the collection "
    "launches on-demand instances)",
    "KubeadmConfigTemplate capi-example-md-0: spec.template.spec.preKubeadmCommands: not supported",
    "KubeadmConfigTemplate capi-example-md-0: spec.template.spec.joinConfiguration.nodeRegistration.kubeletExtraArgs."
    "max-pods: not supported",
]


def test_unsupported_fields_fail_listing_every_one():
    problems = problems_of(text("unsupported.manifest"))
    for expected in UNSUPPORTED:
        assert [p for p in problems if p.startswith(expected)], expected
    assert len(problems) == len(UNSUPPORTED)
    # An empty list (taints: []) is no setting.
    assert not [p for p in problems if "taints" in p]


def test_unsupported_fields_fail_in_one_error_whose_message_says_how_to_go_on():
    with pytest.raises(CapiManifestError) as caught:
        manifest_to_spec(text("unsupported.manifest"))
    message = str(caught.value)
    assert "unsupported=warn" in message
    assert all(expected in message for expected in UNSUPPORTED)


def test_warn_mode_returns_the_unsupported_fields_as_warnings_and_the_spec():
    raw, warnings = manifest_to_spec(text("unsupported.manifest"), unsupported="warn")
    assert len(warnings) == len(UNSUPPORTED)
    for expected in UNSUPPORTED:
        assert [w for w in warnings if w.startswith(expected)], expected
    assert raw["name"] == "capi-example"
    assert raw["machine_deployments"] == [{"name": "md-0", "replicas": 2, "instance_type": "t3.large"}]
    assert "type" not in raw["network"].get("api_load_balancer", {})
    resolve(raw)


def test_an_unknown_mode_fails():
    problems = problems_of(text("capi-example-3cp.manifest"), unsupported="ignore")
    assert "unsupported: 'ignore' is not fail or warn" in problems[0]


def test_placeholders_are_all_named_in_one_error_before_any_other_check():
    problems = problems_of(text("placeholders.manifest"))
    assert len(problems) == 1
    for name in ("CLUSTER_NAME", "AWS_REGION", "AWS_SSH_KEY_NAME", "AWS_CONTROL_PLANE_MACHINE_TYPE",
                 "AWS_NODE_MACHINE_TYPE", "KUBERNETES_VERSION", "CONTROL_PLANE_MACHINE_COUNT", "WORKER_MACHINE_COUNT",
                 "KUBERNETES_AWS_CCM_VERSION"):
        assert "${%s}" % name in problems[0]
    assert "set CLUSTER_NAME, AWS_REGION," in problems[0] and "run clusterctl generate cluster again" in problems[0]
    assert "(it fills in KUBERNETES_AWS_CCM_VERSION (default v1.32.5))" in problems[0]
    # Fails with placeholders in warn mode too, and before the unsupported fields are judged.
    manifest = text("unsupported.manifest").replace("us-east-1", "${AWS_REGION}")
    assert problems_of(manifest, unsupported="warn") == problems_of(manifest)
    assert "${AWS_REGION}" in problems_of(manifest)[0]


def test_a_placeholder_with_a_default_alone_asks_only_for_clusterctl_again():
    image = "cloud-controller-manager:"
    variable = "${KUBERNETES_AWS_CCM_VERSION:-v1.32.5}"
    manifest = text("capa-2cf09d78-default.manifest").replace(image + "v1.32.5", image + variable)
    assert problems_of(manifest) == [
        "the manifest still holds the placeholder ${KUBERNETES_AWS_CCM_VERSION} (left unexpanded); run clusterctl "
        "generate cluster again (it fills in KUBERNETES_AWS_CCM_VERSION (default v1.32.5)), or edit the manifest to "
        "hold the values"]


def test_subnets_of_a_vpc_the_collection_makes_are_unsupported():
    docs = objects()
    find(docs, "AWSCluster")["spec"]["network"]["subnets"] = [{"cidrBlock": "10.10.0.0/24", "isPublic": True}]
    assert problems_of(docs) == [
        "AWSCluster capi-example: spec.network.subnets: not supported (the collection lays out the subnets of the VPC "
        "it makes; subnets are read by id with your own VPC (spec.network.vpc.id))"]


def test_a_text_that_is_no_yaml_fails_first():
    problems = problems_of("kind: Cluster\n  name: [x\n")
    assert len(problems) == 1 and problems[0].startswith("the manifest is not YAML")
    assert problems_of("- a\n- b\n") == ["document 1 is a list, not a Kubernetes object"]


def test_no_cluster_and_two_clusters_fail():
    docs = objects()
    assert "holds no Cluster" in problems_of([d for d in docs if d["kind"] != "Cluster"])[0]
    second = copy.deepcopy(find(docs, "Cluster"))
    second["metadata"]["name"] = "other"
    assert "holds 2 Clusters (capi-example, other)" in problems_of(docs + [second])[0]


def test_an_object_defined_twice_fails():
    docs = objects()
    assert problems_of(docs + [copy.deepcopy(find(docs, "AWSCluster"))]) == [
        "AWSCluster capi-example: defined twice; keep one"]


def test_an_unknown_version_of_a_known_kind_fails_saying_which_are_read():
    docs = objects()
    find(docs, "KubeadmControlPlane")["apiVersion"] = "controlplane.cluster.x-k8s.io/v1alpha4"
    problems = problems_of(docs, unsupported="warn")
    assert problems == ["KubeadmControlPlane capi-example-control-plane: apiVersion: controlplane.cluster.x-k8s.io/"
                        "v1alpha4 is not read; kubecluster.aws reads controlplane.cluster.x-k8s.io/v1beta1 and "
                        "controlplane.cluster.x-k8s.io/v1beta2"]


@pytest.mark.parametrize("kind, path, name", [
    ("Cluster", ("spec", "infrastructureRef"), "AWSCluster"),
    ("Cluster", ("spec", "controlPlaneRef"), "KubeadmControlPlane"),
    ("KubeadmControlPlane", ("spec", "machineTemplate", "infrastructureRef"), "AWSMachineTemplate"),
    ("MachineDeployment", ("spec", "template", "spec", "bootstrap", "configRef"), "KubeadmConfigTemplate"),
])
def test_a_reference_to_an_object_not_in_the_manifest_fails(kind, path, name):
    docs = objects()
    ref = find(docs, kind)
    for key in path:
        ref = ref[key]
    ref["name"] = "missing"
    problems = problems_of(docs, unsupported="warn")
    wanted = ": %s.name: names %s missing, which is not in the manifest" % (".".join(path), name)
    assert any(p.startswith(kind) and wanted in p for p in problems), problems


def test_the_machine_deployment_version_must_be_the_control_plane_version():
    docs = objects()
    find(docs, "MachineDeployment")["spec"]["template"]["spec"]["version"] = "v1.30.8"
    problems = problems_of(docs)
    assert problems == ["MachineDeployment capi-example-md-0: spec.template.spec.version: is v1.30.8 but "
                        "KubeadmControlPlane capi-example-control-plane spec.version is v1.31.4; kubecluster.aws runs "
                        "one Kubernetes version (cluster.kubernetes_version), make them the same"]


def test_a_machine_template_key_pair_other_than_the_clusters_fails():
    docs = objects()
    find(docs, "AWSMachineTemplate", "capi-example-md-0")["spec"]["template"]["spec"]["sshKeyName"] = "other"
    problems = problems_of(docs)
    assert len(problems) == 1
    assert problems[0].startswith("AWSMachineTemplate capi-example-md-0: spec.template.spec.sshKeyName: is 'other' but "
                                  "AWSCluster capi-example spec.sshKeyName is 'capi-key'")


def test_a_key_pair_only_the_machine_templates_name_is_the_clusters():
    docs = objects()
    del find(docs, "AWSCluster")["spec"]["sshKeyName"]
    assert manifest_to_spec(docs)[0]["ssh_key_name"] == "capi-key"


def test_instance_metadata_options_that_disagree_fail():
    docs = objects()
    template = find(docs, "AWSMachineTemplate", "capi-example-md-0")["spec"]["template"]["spec"]
    options = template["instanceMetadataOptions"]
    options["httpPutResponseHopLimit"] = 1
    problems = problems_of(docs)
    assert len(problems) == 1
    assert "instanceMetadataOptions" in problems[0] and "cluster.instance_metadata" in problems[0]


@pytest.mark.parametrize("value, seconds", [
    ("10m", 600), ("600s", 600), ("1h30m", 5400), ("1h", 3600), ("90s", 90), ("1.5m", 90), ("2h0m0s", 7200),
    ("", None), ("10", None), ("10x", None), ("m10", None), ("1.5s", None), (600, None),
])
def test_durations_are_read_in_seconds(value, seconds):
    assert parse_duration(value) == seconds


def test_drain_timeouts_that_disagree_fail_naming_both():
    docs = objects()
    find(docs, "MachineDeployment")["spec"]["template"]["spec"]["nodeDrainTimeout"] = "10m"
    problems = problems_of(docs)
    assert problems == ["MachineDeployment capi-example-md-0: spec.template.spec.nodeDrainTimeout is 600 but "
                        "KubeadmControlPlane capi-example-control-plane spec.machineTemplate.nodeDrainTimeout is 300; "
                        "cluster.node_drain_timeout is one value for the cluster, make them agree"]


def test_a_drain_timeout_that_is_no_duration_fails():
    docs = objects()
    find(docs, "KubeadmControlPlane")["spec"]["machineTemplate"]["nodeDrainTimeout"] = "ten minutes"
    assert "'ten minutes' is not a duration such as 10m, 600s or 1h30m" in problems_of(docs)[0]


def test_settings_are_merged_and_a_field_the_manifest_sets_too_fails():
    settings = {"kubernetes_packages": {"source": "mirror", "repository_url": "https://apt.example.com/k8s/"},
                "addons": {"manifests_dir": "/srv/addons"}, "machine_deployments": [{"name": "md-0", "max_surge": 2}]}
    raw, unused_warnings = manifest_to_spec(text("capa-2cf09d78-default.manifest"), settings=settings)
    assert raw["kubernetes_packages"] == settings["kubernetes_packages"]
    assert raw["addons"] == {"aws_cloud_controller_manager_version": "v1.32.5", "ebs_csi_driver_version": "v1.25.0",
                             "manifests_dir": "/srv/addons"}
    assert raw["machine_deployments"][0]["max_surge"] == 2
    resolve(raw)
    # A spec file's text, its cluster: key included, is taken too.
    assert manifest_to_spec(text("capa-2cf09d78-default.manifest"), settings=yaml.safe_dump({"cluster": settings}))[0] == raw
    problems = problems_of(text("capa-2cf09d78-default.manifest"),
                           settings={"region": "eu-west-1", "network": {"pod_cidr": "10.244.0.0/16"},
                                     "machine_deployments": [{"name": "md-0", "replicas": 3}, {"name": "md-9"}]})
    assert problems == [
        "cluster.region: settings sets it and so does the manifest; set it in one place",
        "cluster.network.pod_cidr: settings sets it and so does the manifest; set it in one place",
        "cluster.machine_deployments[0].replicas: settings sets it and so does the manifest; set it in one place",
        "settings cluster.machine_deployments[1]: 'md-9' is not a MachineDeployment of the manifest (md-0); "
        "name one of those",
    ]


def test_the_settings_annotation_is_merged():
    raw, unused_warnings = manifest_to_spec(text("capi-example-existing-vpc.manifest"))
    assert raw["kubeconfig_secret"] == "ssm" and raw["node_startup_timeout"] == 900


def with_annotation(settings, name="capi-example-3cp.manifest"):
    docs = objects(name)
    find(docs, "Cluster")["metadata"]["annotations"] = {"kubecluster.aws/settings": json.dumps(settings)}
    return docs


def test_the_annotation_carries_zone_lists_and_nat_gateways():
    docs = with_annotation({"network": {"nat_gateways": "single"},
                            "machine_deployments": [{"name": "md-0",
                                                     "availability_zones": ["eu-west-1a", "eu-west-1b"]}]})
    del find(docs, "MachineDeployment")["spec"]["template"]["spec"]["failureDomain"]
    raw, unused_warnings = manifest_to_spec(docs)
    assert raw["network"]["nat_gateways"] == "single"
    assert raw["machine_deployments"][0]["availability_zones"] == ["eu-west-1a", "eu-west-1b"]


@pytest.mark.parametrize("settings, field", [
    ({"region": "us-west-2"}, "region"),
    ({"network": {"vpc_cidr": "10.1.0.0/16"}}, "network.vpc_cidr"),
    ({"kubernetes_version": "v1.31.5"}, "kubernetes_version"),
    ({"machine_deployments": [{"name": "md-0", "replicas": 4}]}, "machine_deployments[0].replicas"),
])
def test_an_annotation_field_cluster_api_also_carries_fails(settings, field):
    problems = problems_of(with_annotation(settings))
    assert problems == ["Cluster capi-example: metadata.annotations.kubecluster.aws/settings: %s is a field Cluster "
                        "API's own fields carry; set it there, not in the annotation" % field]


def test_annotation_add_on_versions_are_read_without_the_add_on_config_maps_and_conflict_with_them():
    """An export applies no add-on ConfigMaps, so the versions the cluster runs travel in the annotation."""
    raw, unused_warnings = manifest_to_spec(with_annotation({"addons": {"ebs_csi_driver_version": "v1.40.0"}}))
    assert raw["addons"]["ebs_csi_driver_version"] == "v1.40.0"
    docs = list(yaml.safe_load_all(text("capa-2cf09d78-default.manifest")))
    cluster = find(docs, "Cluster")
    cluster["metadata"]["annotations"] = {"kubecluster.aws/settings": json.dumps({"addons": {"ebs_csi_driver_version": "v1.40.0"}})}
    problems = problems_of(docs)
    assert len(problems) == 1 and "addons.ebs_csi_driver_version" in problems[0], problems


def test_an_annotation_zone_count_fails_naming_its_cluster_api_home():
    problems = problems_of(with_annotation({"network": {"availability_zones": 2}}))
    assert len(problems) == 1 and "availabilityZoneUsageLimit" in problems[0]
    assert problems_of(with_annotation({"network": "single"})) == [
        "Cluster capi-example: metadata.annotations.kubecluster.aws/settings: network must be a JSON object of its "
        "fields"]


def test_an_annotation_zone_list_beside_a_zone_count_fails():
    problems = problems_of(with_annotation({"network": {"availability_zones": ["eu-west-1a", "eu-west-1b"]}}))
    assert problems == ["cluster.network.availability_zones: Cluster capi-example metadata.annotations"
                        "[kubecluster.aws/settings] sets it and so does the manifest's Cluster API fields; "
                        "set it in one place"]


def test_an_annotation_that_is_no_json_object_fails():
    docs = objects()
    find(docs, "Cluster")["metadata"]["annotations"] = {"kubecluster.aws/settings": "{nat_gateways: single"}
    assert "is not JSON" in problems_of(docs)[0]


def test_a_managed_vpc_exported_by_the_collection_reads_as_its_own_network():
    docs = objects()
    find(docs, "Cluster")["metadata"]["annotations"] = {"kubecluster.aws/exported-from": "kubecluster.aws 1.4.0"}
    aws = find(docs, "AWSCluster")["spec"]
    aws["network"]["vpc"].update({"id": "vpc-0a1b2c3d4e5f67890",
                                  "tags": {"sigs.k8s.io/cluster-api-provider-aws/cluster/capi-example": "owned"}})
    aws["network"]["subnets"] = [{"id": "subnet-0a0000000000000a1", "availabilityZone": "eu-west-1a"}]
    aws["network"]["securityGroupOverrides"] = {"controlplane": "sg-0123456789abcdef0"}
    aws["controlPlaneEndpoint"] = {"host": "capi-example-apiserver.elb.amazonaws.com", "port": 6443}
    raw, unused_warnings = manifest_to_spec(docs)
    assert "vpc_id" not in raw["network"] and raw["network"]["vpc_cidr"] == "10.10.0.0/16"
    # Without the export annotation, the groups and the endpoint are no setting of the collection's.
    del find(docs, "Cluster")["metadata"]["annotations"]
    problems = problems_of(docs)
    assert [p.split(": not supported")[0] for p in problems] == [
        "AWSCluster capi-example: spec.network.securityGroupOverrides",
        "AWSCluster capi-example: spec.controlPlaneEndpoint"]


def test_cilium_rules_read_as_cilium_and_other_rules_are_unsupported():
    docs = objects()
    network = find(docs, "AWSCluster")["spec"]["network"]
    network["cni"]["cniIngressRules"] = [{"protocol": "udp", "fromPort": 8472, "toPort": 8472},
                                         {"protocol": "tcp", "fromPort": 4240, "toPort": 4240}]
    assert manifest_to_spec(docs)[0]["network"]["cni"] == "cilium"
    network["cni"]["cniIngressRules"] = [{"protocol": "tcp", "fromPort": 179, "toPort": 179}]
    assert problems_of(docs)[0].startswith("AWSCluster capi-example: spec.network.cni.cniIngressRules: not supported")


def test_machine_deployment_names_drop_the_cluster_prefix_only():
    docs = objects()
    deployment = find(docs, "MachineDeployment")
    deployment["metadata"]["name"] = "workers"
    assert manifest_to_spec(docs)[0]["machine_deployments"][0]["name"] == "workers"


def test_a_classic_elb_reads_as_classic():
    docs = objects()
    find(docs, "AWSCluster")["spec"]["controlPlaneLoadBalancer"]["loadBalancerType"] = "elb"
    assert manifest_to_spec(docs)[0]["network"]["api_load_balancer"]["type"] == "classic"


def test_objects_in_several_namespaces_fail():
    docs = objects()
    find(docs, "AWSCluster")["metadata"]["namespace"] = "other"
    assert "several namespaces" in problems_of(docs)[0]


def _with_machines(exported):
    """The quick start's manifest plus one running machine as an export describes it (capi_machines)."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capi", "capa-2cf09d78-default.manifest")
    with open(here, encoding="utf-8") as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    spec = resolve({"name": "capi-example", "region": "us-east-1", "kubernetes_version": "v1.31.4"}, environ={})
    running = {"name": "capi-example-control-plane-aa111", "set": "control-plane", "role": "control-plane",
               "state": "running", "kubernetes_version": "v1.31.4", "instance_id": "i-0aa111", "instance_type": "t3.large",
               "availability_zone": "us-east-1a", "image_id": "ami-0123456789abcdef0"}
    docs += machine_objects(spec, {"name": "capi-example", "machines": [running]})
    cluster = docs[0]
    cluster["spec"]["paused"] = True
    if exported:
        cluster["metadata"]["annotations"] = {"kubecluster.aws/exported-from": "kubecluster.aws 1.0.0"}
    return docs


def test_an_export_s_machines_and_pause_are_read_as_descriptions():
    raw, warnings = manifest_to_spec(_with_machines(exported=True))
    assert warnings == [] and raw["name"] == "capi-example"


def test_machines_and_pause_outside_an_export_are_not_supported():
    with pytest.raises(CapiManifestError) as raised:
        manifest_to_spec(_with_machines(exported=False))
    problems = raised.value.problems
    for kind in ("Machine", "AWSMachine", "KubeadmConfig"):
        assert any(problem.startswith("%s capi-example-control-plane-aa111:" % kind) for problem in problems), problems
    assert any("Cluster capi-example: spec.paused: not supported" in problem for problem in problems), problems
