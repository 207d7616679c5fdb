"""The running machines as the Machine, AWSMachine and KubeadmConfig objects Cluster API adopts."""

from ansible_collections.kubecluster.aws.plugins.module_utils.capi_machines import machine_objects
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve

SPEC = resolve({"name": "capi-example", "region": "ap-northeast-2", "kubernetes_version": "v1.31.4",
                "ssh_key_name": "jonnung", "machine_deployments": [{"name": "md-0", "replicas": 1}]}, environ={})


def machine(name, set_name, role, state="running", version="v1.31.4"):
    return {"name": name, "set": set_name, "role": role, "state": state, "kubernetes_version": version,
            "instance_id": "i-%s" % name[-5:], "availability_zone": "ap-northeast-2a", "instance_type": "t3.large",
            "image_id": "ami-0123456789abcdef0"}


CLUSTER = {"name": "capi-example", "machines": [
    machine("capi-example-md-0-zz111", "md-0", "node", version=None),
    machine("capi-example-control-plane-aa111", "control-plane", "control-plane"),
    machine("capi-example-bastion", "bastion", "bastion"),
    machine("capi-example-md-0-yy111", "md-0", "node", state="terminated"),
]}


def test_each_live_machine_is_a_machine_an_aws_machine_and_a_kubeadm_config_in_name_order():
    objects = machine_objects(SPEC, CLUSTER)
    assert [(item["kind"], item["metadata"]["name"]) for item in objects] == [
        ("Machine", "capi-example-control-plane-aa111"), ("AWSMachine", "capi-example-control-plane-aa111"),
        ("KubeadmConfig", "capi-example-control-plane-aa111"),
        ("Machine", "capi-example-md-0-zz111"), ("AWSMachine", "capi-example-md-0-zz111"),
        ("KubeadmConfig", "capi-example-md-0-zz111")]


def test_a_control_plane_machine_is_adoptable_by_the_kubeadm_control_plane():
    cp_machine, aws_machine, config = machine_objects(SPEC, CLUSTER)[:3]
    assert cp_machine["metadata"]["labels"] == {"cluster.x-k8s.io/cluster-name": "capi-example",
                                                "cluster.x-k8s.io/control-plane": "",
                                                "cluster.x-k8s.io/control-plane-name": "capi-example-control-plane"}
    assert "ownerReferences" not in cp_machine["metadata"]
    assert cp_machine["spec"] == {
        "clusterName": "capi-example", "version": "v1.31.4", "providerID": "aws:///ap-northeast-2a/i-aa111",
        "failureDomain": "ap-northeast-2a",
        "bootstrap": {"configRef": {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1", "kind": "KubeadmConfig",
                                    "name": "capi-example-control-plane-aa111"},
                      "dataSecretName": "capi-example-control-plane-aa111-bootstrap"},
        "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
                              "name": "capi-example-control-plane-aa111"}}
    assert aws_machine["spec"] == {"instanceID": "i-aa111", "providerID": "aws:///ap-northeast-2a/i-aa111",
                                   "instanceType": "t3.large", "ami": {"id": "ami-0123456789abcdef0"},
                                   "iamInstanceProfile": "control-plane.cluster-api-provider-aws.sigs.k8s.io",
                                   "sshKeyName": "jonnung"}
    assert config["spec"] == {}


def test_a_worker_names_its_deployment_and_takes_the_spec_version_when_untagged():
    worker, aws_machine = machine_objects(SPEC, CLUSTER)[3:5]
    assert worker["metadata"]["labels"] == {"cluster.x-k8s.io/cluster-name": "capi-example",
                                            "cluster.x-k8s.io/deployment-name": "capi-example-md-0"}
    assert worker["spec"]["version"] == "v1.31.4"
    assert aws_machine["spec"]["iamInstanceProfile"] == "nodes.cluster-api-provider-aws.sigs.k8s.io"


def test_no_key_pair_no_ssh_key_name():
    spec = dict(SPEC, ssh_key_name=None)
    assert all("sshKeyName" not in item["spec"] for item in machine_objects(spec, CLUSTER) if item["kind"] == "AWSMachine")
