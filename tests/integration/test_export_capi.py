"""export_capi.yml, run for real with ansible-playbook against a moto server: the manifests of a cluster made with
create_cluster.yml (--tags infra) name what AWS has by id, the file is private and left alone on a rerun, a cluster
that does not exist fails with no file written, and the export never writes to AWS."""

import json
import os
import stat

import pytest
import yaml

from helpers.aws import CLUSTER as NAME, OWNER, REGION, ROLE
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITE = "Write the manifests, leaving a file with the same content alone"


def by_kind(docs):
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def export(run_playbook, spec, path, **kwargs):
    return run_playbook("export_capi", spec, extra_vars={"export_path": str(path)}, **kwargs)


def test_export_names_what_aws_has_is_private_idempotent_and_writes_nothing_to_aws(account, run_playbook, moto_server,
                                                                                   tmp_path):
    image_id = account.prepare()
    spec = example_spec(image_id)
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    owned = account.owned(NAME)
    path = tmp_path / "capi-example-export.yaml"

    moto_server.start_recording()
    done = export(run_playbook, spec, path)
    rerun = export(run_playbook, spec, path)
    moto_server.stop_recording()

    assert done.rc == 0, done.explain()
    assert done.result(WRITE)["changed"] is True
    assert rerun.rc == 0, rerun.explain()
    assert rerun.changed == 0, "a rerun on the same cluster leaves the file alone"
    assert moto_server.recorded_writes() == [], "the export only reads AWS (no lease either)"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    said = " ".join(done.result("Say where the manifests are")["msg"])
    assert str(path) in said and "hand the cluster to Cluster API" in said

    docs = list(yaml.safe_load_all(path.read_text()))
    running = sorted((tags(i)["Name"], i) for i in owned["instances"] if tags(i)[ROLE] != "bastion")
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Cluster", NAME), ("AWSCluster", NAME), ("KubeadmControlPlane", NAME + "-control-plane"),
        ("AWSMachineTemplate", NAME + "-control-plane"), ("MachineDeployment", NAME + "-md-0"),
        ("AWSMachineTemplate", NAME + "-md-0"), ("KubeadmConfigTemplate", NAME + "-md-0")] + [
        (kind, name) for name, unused in running for kind in ("Machine", "AWSMachine", "KubeadmConfig")]
    objects = by_kind(docs)
    assert objects[("Cluster", NAME)]["spec"]["paused"] is True
    for name, instance in running:
        provider_id = "aws:///%s/%s" % (instance["Placement"]["AvailabilityZone"], instance["InstanceId"])
        assert objects[("Machine", name)]["spec"]["providerID"] == provider_id
        assert objects[("AWSMachine", name)]["spec"]["instanceID"] == instance["InstanceId"]

    (vpc,) = owned["vpcs"]
    (balancer,) = owned["load_balancers"]
    aws_cluster = objects[("AWSCluster", NAME)]["spec"]
    network = aws_cluster["network"]
    assert aws_cluster["region"] == REGION
    assert network["vpc"]["id"] == vpc["VpcId"] and network["vpc"]["cidrBlock"] == vpc["CidrBlock"]
    assert network["vpc"]["tags"] == {OWNER: "owned"}, "a VPC the collection made stays CAPA-managed"
    assert network["vpc"]["availabilityZoneUsageLimit"] == 3
    subnets = {s["SubnetId"]: s for s in owned["subnets"]}
    assert sorted(s["id"] for s in network["subnets"]) == sorted(subnets)
    for subnet in network["subnets"]:
        aws = subnets[subnet["id"]]
        assert (subnet["cidrBlock"], subnet["availabilityZone"]) == (aws["CidrBlock"], aws["AvailabilityZone"])
        assert subnet["isPublic"] is (tags(aws)[ROLE] == "public")
    groups = {tags(g)[ROLE]: g["GroupId"] for g in owned["security_groups"]}
    assert network["securityGroupOverrides"] == groups
    endpoint = {"host": balancer["DNSName"], "port": 6443}
    assert aws_cluster["controlPlaneEndpoint"] == endpoint
    assert objects[("Cluster", NAME)]["spec"]["controlPlaneEndpoint"] == endpoint
    annotations = objects[("Cluster", NAME)]["metadata"]["annotations"]
    assert annotations["kubecluster.aws/exported-from"] == "kubecluster.aws 1.0.0"
    assert "kubecluster.aws/settings" not in annotations, "the example spec has only Cluster API's fields"
    assert aws_cluster["imageLookupOrg"] == spec["cluster"]["image_lookup"]["owner"]
    assert aws_cluster["bastion"]["ami"] == image_id

    instances = {}
    for instance in owned["instances"]:
        instances.setdefault(tags(instance)["kubecluster.aws/machine-set"], []).append(instance)
    kcp = objects[("KubeadmControlPlane", NAME + "-control-plane")]["spec"]
    md = objects[("MachineDeployment", NAME + "-md-0")]["spec"]
    assert (kcp["replicas"], md["replicas"]) == (len(instances["control-plane"]), len(instances["md-0"])) == (1, 2)
    assert kcp["version"] == md["template"]["spec"]["version"] == "v1.31.4"
    for set_name in ("control-plane", "md-0"):
        machine = objects[("AWSMachineTemplate", "%s-%s" % (NAME, set_name))]["spec"]["template"]["spec"]
        assert machine["ami"]["id"] == instances[set_name][0]["ImageId"] == image_id
        assert machine["instanceType"] == instances[set_name][0]["InstanceType"]

    preview = export(run_playbook, spec, tmp_path / "preview.yaml", check=True, diff=True)
    assert preview.rc == 0, preview.explain()
    assert preview.result(WRITE)["changed"] is True and not (tmp_path / "preview.yaml").exists()
    assert "AWSCluster" in json.dumps(preview.result(WRITE).get("diff"))


def test_an_export_read_back_as_the_spec_exports_the_same(account, run_playbook, tmp_path):
    image_id = account.prepare()
    spec = example_spec(image_id)
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    first = tmp_path / "first.yaml"
    assert export(run_playbook, spec, first).rc == 0

    again = tmp_path / "again.yaml"
    done = run_playbook("export_capi", extra_vars={"capi_manifest": str(first), "export_path": str(again)})

    assert done.rc == 0, done.explain()
    assert again.read_text() == first.read_text(), "the manifest is the spec: the import reads what the export wrote"


def test_export_of_a_cluster_that_does_not_exist_fails_and_writes_no_file(account, run_playbook, tmp_path):
    image_id = account.prepare()
    spec = example_spec(image_id, name="no-such-cluster")
    path = tmp_path / "export.yaml"

    done = export(run_playbook, spec, path)

    assert done.rc != 0
    assert "cluster no-such-cluster does not exist in %s" % REGION in done.explain()
    assert not path.exists()


def test_export_without_export_path_fails_before_reading_aws(account, run_playbook, moto_server):
    spec = example_spec("ami-0123456789abcdef0")
    moto_server.start_recording()
    done = run_playbook("export_capi", spec)
    moto_server.stop_recording()

    assert done.rc != 0
    assert "no export_path" in done.explain()
    assert moto_server.recorded_calls() == []
