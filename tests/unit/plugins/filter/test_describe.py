"""describe_cluster / describe_clusters: cluster_info's view and the API's Nodes as clusterctl describe shows them."""

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter.describe import FilterModule
from ansible_collections.kubecluster.aws.plugins.filter.describe import describe_cluster
from ansible_collections.kubecluster.aws.plugins.filter.describe import describe_clusters
from ansible_collections.kubecluster.aws.plugins.filter.describe import instance_id_of

HOST = "capi-example-apiserver-0123.elb.ap-northeast-2.amazonaws.com"


def machine(name, instance_id, set_name, ip, zone="ap-northeast-2a", state="running", outdated=False, version="v1.31.4"):
    role = {"control-plane": "control-plane", "bastion": "bastion"}.get(set_name, "node")
    return {"name": name, "instance_id": instance_id, "set": set_name, "role": role, "state": state, "availability_zone": zone,
            "private_ip": ip, "private_dns_name": "ip-%s.ap-northeast-2.compute.internal" % ip.replace(".", "-"),
            "public_ip": None, "kubernetes_version": None if set_name == "bastion" else version, "outdated": outdated}


CLUSTER = {
    "name": "capi-example", "region": "ap-northeast-2", "phase": "Provisioned", "failure_message": None,
    "kubernetes_version": "v1.31.4", "control_plane_endpoint": {"host": HOST, "port": 6443}, "vpc_id": "vpc-0123",
    "load_balancer": {"name": "capi-example-apiserver", "type": "nlb", "dns_name": HOST, "scheme": "internet-facing", "state": "active"},
    "machines": [
        machine("capi-example-bastion-zzzzz", "i-0b00", "bastion", "10.0.0.5"),
        machine("capi-example-control-plane-abcde", "i-0c01", "control-plane", "10.0.64.12"),
        machine("capi-example-md-0-aaaaa", "i-0d01", "md-0", "10.0.128.4", zone="ap-northeast-2b"),
        machine("capi-example-md-0-bbbbb", "i-0d02", "md-0", "10.0.64.99"),
        machine("capi-example-md-0-old", "i-0d00", "md-0", "10.0.64.98", state="terminated"),
    ],
    "machine_sets": {
        "bastion": {"replicas": 1, "running": 1, "desired": 1, "up_to_date": 1},
        "control-plane": {"replicas": 1, "running": 1, "desired": 1, "up_to_date": 1},
        "md-0": {"replicas": 2, "running": 2, "desired": 2, "up_to_date": 2},
    },
}


def node(name, provider_id=None, ready="True", kubelet="v1.31.4"):
    return {"metadata": {"name": name}, "spec": {"providerID": provider_id} if provider_id else {},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}],
                       "nodeInfo": {"kubeletVersion": kubelet}}}


NODES = [
    node("ip-10-0-64-12.ap-northeast-2.compute.internal", "aws:///ap-northeast-2a/i-0c01"),
    node("ip-10-0-128-4.ap-northeast-2.compute.internal", "aws:///ap-northeast-2b/i-0d01"),
    # Matched by its name: the cloud controller manager has not set the providerID yet.
    node("ip-10-0-64-99.ap-northeast-2.compute.internal"),
]


def machines_of(group):
    return [(m["name"], m["node_condition"], m["ready"]) for m in group["machines"]]


def test_healthy_cluster_is_ready_with_every_count():
    described = describe_cluster(CLUSTER, NODES)

    assert described["ready"] is True and described["exists"] is True and described["nodes_known"] is True
    control_plane = described["control_plane"]
    assert (control_plane["name"], control_plane["desired"], control_plane["ready"], control_plane["up_to_date"]) == (
        "capi-example-control-plane", 1, 1, 1)
    (md0,) = described["machine_deployments"]
    assert (md0["name"], md0["desired"], md0["ready"], md0["up_to_date"], md0["ready_condition"]) == ("capi-example-md-0", 2, 2, 2, True)
    assert machines_of(md0) == [("capi-example-md-0-aaaaa", "Ready", True), ("capi-example-md-0-bbbbb", "Ready", True)]
    assert md0["machines"][1]["node_name"] == "ip-10-0-64-99.ap-northeast-2.compute.internal"
    assert described["infrastructure"]["bastion"]["name"] == "capi-example-bastion-zzzzz"
    assert described["nodes_without_machine"] == []
    assert "capi-example-md-0-old" not in str(described["lines"]), "terminated machines are not shown"


def test_tree_lines_are_shaped_like_clusterctl_describe():
    lines = describe_cluster(CLUSTER, NODES)["lines"]

    ready_at = lines[0].index("READY")
    names = [line[:ready_at].rstrip() for line in lines]
    assert names == [
        "NAME",
        "Cluster/capi-example",
        "├─ClusterInfrastructure - AWSCluster/capi-example",
        "│ └─Bastion/capi-example-bastion-zzzzz",
        "├─ControlPlane - KubeadmControlPlane/capi-example-control-plane",
        "│ └─Machine/capi-example-control-plane-abcde",
        "└─Workers",
        "  └─MachineDeployment/capi-example-md-0",
        "    ├─Machine/capi-example-md-0-aaaaa",
        "    └─Machine/capi-example-md-0-bbbbb",
    ]
    assert lines[1].split() == ["Cluster/capi-example", "True", "Provisioned", "InfrastructureReady=True", "ControlPlaneInitialized=True",
                                "ControlPlaneReady=True", "WorkersReady=2/2", "v1.31.4", HOST + ":6443"]
    assert lines[4].split()[-2:] == ["desired/ready/up-to-date", "1/1/1"]
    assert lines[5].split() == ["│", "└─Machine/capi-example-control-plane-abcde", "True", "i-0c01", "ap-northeast-2a", "10.0.64.12",
                                "v1.31.4", "node", "Ready"]
    # Columns line up: READY starts at one offset on every row.
    assert len({line.index(" True ") for line in lines[1:] if " True " in line}) == 1
    assert all(line == line.rstrip() for line in lines)


def test_without_the_api_every_node_condition_is_unknown():
    described = describe_cluster(CLUSTER, None, "no kubeconfig at ~/.kube/capi-example.kubeconfig")

    assert described["nodes_known"] is False and described["ready"] is None
    assert {m["node_condition"] for group in [described["control_plane"]] + described["machine_deployments"]
            for m in group["machines"]} == {"unknown"}
    assert described["control_plane"]["ready"] is None and described["control_plane"]["ready_condition"] is None
    assert "desired/ready/up-to-date 1/?/1" in described["lines"][4]
    assert described["lines"][-1] == "Node conditions unknown: no kubeconfig at ~/.kube/capi-example.kubeconfig"
    assert described["control_plane"]["machines"][0]["kubernetes_version"] == "v1.31.4", "the machine's tag stands in"


def test_not_ready_missing_and_stale_nodes():
    nodes = [node("ip-10-0-64-12.ap-northeast-2.compute.internal", "aws:///ap-northeast-2a/i-0c01", kubelet="v1.31.5"),
             node("ip-10-0-128-4.ap-northeast-2.compute.internal", "aws:///ap-northeast-2b/i-0d01", ready="Unknown"),
             node("ip-10-0-64-98.ap-northeast-2.compute.internal", "aws:///ap-northeast-2a/i-0d00")]

    described = describe_cluster(CLUSTER, nodes)

    (md0,) = described["machine_deployments"]
    assert machines_of(md0) == [("capi-example-md-0-aaaaa", "NotReady", False), ("capi-example-md-0-bbbbb", "NoNode", False)]
    assert md0["ready"] == 0 and md0["ready_condition"] is False
    assert described["ready"] is True, "the cluster is ready when its control plane is, as in Cluster API"
    assert described["control_plane"]["machines"][0]["kubernetes_version"] == "v1.31.5", "the kubelet's own version wins"
    assert described["nodes_without_machine"] == ["ip-10-0-64-98.ap-northeast-2.compute.internal"]
    assert described["lines"][-1] == "Nodes without a machine: ip-10-0-64-98.ap-northeast-2.compute.internal"


def test_a_node_whose_provider_id_names_another_instance_is_not_matched_by_name():
    nodes = [node("ip-10-0-64-99.ap-northeast-2.compute.internal", "aws:///ap-northeast-2a/i-0other")]

    described = describe_cluster(CLUSTER, nodes)

    assert described["machine_deployments"][0]["machines"][1]["node_condition"] == "NoNode"


def test_outdated_and_unknown_counts_and_machines_not_running():
    cluster = copy.deepcopy(CLUSTER)
    cluster["machines"][3].update(outdated=True, state="pending")
    cluster["machine_sets"]["md-0"].update(desired=3, up_to_date=1)
    cluster["machine_sets"]["control-plane"].update(desired=None, up_to_date=None)

    described = describe_cluster(cluster, NODES)

    md0 = described["machine_deployments"][0]
    assert (md0["desired"], md0["ready"], md0["up_to_date"], md0["ready_condition"]) == (3, 1, 1, False)
    assert md0["machines"][1]["ready"] is False
    assert described["lines"][-2].split()[-2:] == ["pending", "outdated"]
    assert "desired/ready/up-to-date ?/1/?" in described["lines"][4]
    # Without desired (no spec), the set is ready when its machines are.
    assert described["control_plane"]["ready_condition"] is True


def test_a_set_without_machines_is_listed_and_not_ready():
    cluster = copy.deepcopy(CLUSTER)
    cluster["machine_sets"]["md-1"] = {"replicas": 0, "running": 0, "desired": 2, "up_to_date": 0}

    described = describe_cluster(cluster, NODES)

    assert [g["set"] for g in described["machine_deployments"]] == ["md-0", "md-1"]
    assert described["machine_deployments"][1]["ready_condition"] is False
    assert "  ├─MachineDeployment/capi-example-md-0" in "\n".join(described["lines"])
    assert "  └─MachineDeployment/capi-example-md-1" in "\n".join(described["lines"])


def test_a_cluster_that_does_not_exist_says_so():
    cluster = dict(CLUSTER, phase="NotFound", machines=[], machine_sets={}, control_plane_endpoint=None, kubernetes_version=None,
                   load_balancer=None, vpc_id=None)

    described = describe_cluster(cluster, None)

    assert described["exists"] is False and described["ready"] is False and described["phase"] == "NotFound"
    assert described["lines"] == ["cluster capi-example owns nothing in ap-northeast-2: it does not exist (create it with create_cluster.yml)"]
    assert "Pending" not in str(described)
    assert {kind: condition["status"] for kind, condition in described["conditions"].items()} == {
        "InfrastructureReady": "False", "ControlPlaneInitialized": "False", "ControlPlaneReady": "False", "WorkersReady": "False"}


def test_failed_cluster_shows_why():
    cluster = dict(CLUSTER, phase="Failed", failure_message="API load balancer capi-example-apiserver failed")

    described = describe_cluster(cluster, NODES)

    assert described["ready"] is False
    assert described["lines"][1].endswith("API load balancer capi-example-apiserver failed")
    ready_at = described["lines"][0].index("READY")
    assert described["lines"][2][ready_at:].split()[0] == "False"


@pytest.mark.parametrize("provider_id, expected", [
    ("aws:///ap-northeast-2a/i-0123456789abcdef0", "i-0123456789abcdef0"),
    ("aws:////i-0123", "i-0123"),
    ("gce://project/zone/name", None),
    ("", None),
    (None, None),
])
def test_instance_id_of_provider_id(provider_id, expected):
    assert instance_id_of({"spec": {"providerID": provider_id}}) == expected


def test_region_table():
    other = dict(CLUSTER, name="staging", phase="Failed", failure_message="NAT gateway nat-1 failed: no reason",
                 control_plane_endpoint=None, kubernetes_version="v1.30.2")

    table = describe_clusters([CLUSTER, other], "ap-northeast-2")

    assert [(row["name"], row["phase"], row["kubernetes_version"]) for row in table["clusters"]] == [
        ("capi-example", "Provisioned", "v1.31.4"), ("staging", "Failed", "v1.30.2")]
    assert table["clusters"][0]["control_plane"] == {"running": 1, "replicas": 1}
    assert table["clusters"][0]["workers"] == {"running": 2, "replicas": 2}, "the bastion is no worker"
    assert table["lines"][0].split() == ["NAME", "REGION", "PHASE", "VERSION", "CONTROL", "PLANE", "WORKERS", "ENDPOINT"]
    assert table["lines"][1].split() == ["capi-example", "ap-northeast-2", "Provisioned", "v1.31.4", "1/1", "running", "2/2", "running",
                                         HOST + ":6443"]
    assert table["lines"][2].split()[:3] == ["staging", "ap-northeast-2", "Failed"]
    assert table["lines"][3] == "staging: NAT gateway nat-1 failed: no reason"
    # Provisioned is not read as "works": the table says what it means.
    assert table["lines"][4].startswith("Provisioned: the infrastructure and the control-plane endpoint exist, not that the cluster works")


def test_empty_region_table_says_so():
    assert describe_clusters([], "ap-northeast-2") == {
        "clusters": [], "lines": ["no clusters in ap-northeast-2: nothing there carries a cluster's ownership tag"]}


@pytest.mark.parametrize("call, message", [
    (lambda: describe_cluster({"name": "x"}), "describe_cluster expects one cluster as kubecluster.aws.cluster_info returns it"),
    (lambda: describe_cluster(CLUSTER, "nodes"), "nodes must be the Node objects kubernetes.core.k8s_info returns"),
    (lambda: describe_clusters(CLUSTER), "describe_clusters expects the clusters list"),
])
def test_wrong_input_fails_naming_what_is_expected(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_the_filters_are_registered():
    assert sorted(FilterModule().filters()) == ["describe_cluster", "describe_clusters"]


def test_ownership_conflicts_are_listed_under_the_tree_and_the_table():
    conflict = "instance i-0d01 is tagged as owned by cluster capi-example and by staging; remove the tag ..."
    cluster = dict(CLUSTER, ownership_conflicts=[conflict])

    assert describe_cluster(cluster, NODES)["lines"][-1] == "Ownership conflict: " + conflict
    assert describe_clusters([cluster])["lines"][-1] == "capi-example: ownership conflict: " + conflict


def statuses(described):
    return {kind: condition["status"] for kind, condition in described["conditions"].items()}


def test_conditions_of_a_working_cluster_are_all_true_and_shown_next_to_the_phase():
    described = describe_cluster(CLUSTER, NODES)

    assert statuses(described) == {"InfrastructureReady": "True", "ControlPlaneInitialized": "True", "ControlPlaneReady": "True",
                                   "WorkersReady": "True"}
    assert described["conditions"]["ControlPlaneReady"]["message"] == "1/1 control-plane machines ready"
    assert described["conditions"]["WorkersReady"]["message"] == "2/2 worker machines ready"
    assert described["workers"] == {"ready": 2, "desired": 2}


def test_provisioned_without_the_api_is_not_read_as_working():
    described = describe_cluster(CLUSTER, None, "the API server https://capi-example-apiserver:6443 did not answer within 10 s")

    assert described["phase"] == "Provisioned" and described["ready"] is None
    assert statuses(described) == {"InfrastructureReady": "True", "ControlPlaneInitialized": "Unknown", "ControlPlaneReady": "Unknown",
                                   "WorkersReady": "Unknown"}
    assert described["conditions"]["ControlPlaneInitialized"]["message"] == (
        "the API server https://capi-example-apiserver:6443 did not answer within 10 s")
    assert described["workers"] == {"ready": None, "desired": 2}
    assert described["lines"][1].split()[1:7] == ["Unknown", "Provisioned", "InfrastructureReady=True", "ControlPlaneInitialized=Unknown",
                                                  "ControlPlaneReady=Unknown", "WorkersReady=?/2"]


def test_an_initialized_control_plane_whose_nodes_are_not_ready():
    nodes = [node("ip-10-0-64-12.ap-northeast-2.compute.internal", "aws:///ap-northeast-2a/i-0c01", ready="False")]

    described = describe_cluster(CLUSTER, nodes)

    assert statuses(described) == {"InfrastructureReady": "True", "ControlPlaneInitialized": "True", "ControlPlaneReady": "False",
                                   "WorkersReady": "False"}
    assert described["ready"] is False
    assert described["conditions"]["ControlPlaneReady"]["message"] == "0/1 control-plane machines ready"
    assert described["conditions"]["WorkersReady"]["message"] == "0/2 worker machines ready"
    assert "WorkersReady=0/2" in described["lines"][1]


def test_without_a_running_control_plane_or_an_endpoint_the_control_plane_is_not_initialized():
    stopped = copy.deepcopy(CLUSTER)
    stopped["machines"][1]["state"] = "stopped"
    no_endpoint = dict(CLUSTER, phase="Provisioning", control_plane_endpoint=None,
                       infrastructure_waiting_for=["DNS name of API load balancer capi-example-apiserver"])

    for cluster, reason in ((stopped, "no control-plane machine is running"),
                            (no_endpoint, "no control-plane endpoint (the API load balancer has no DNS name)")):
        described = describe_cluster(cluster, None, "no kubeconfig at ~/.kube/capi-example.kubeconfig")
        assert described["conditions"]["ControlPlaneInitialized"] == {"status": "False", "message": reason}
        assert described["conditions"]["ControlPlaneReady"]["status"] == "False"
        assert described["ready"] is False
    assert described["conditions"]["InfrastructureReady"] == {
        "status": "False", "message": "waiting for DNS name of API load balancer capi-example-apiserver"}


def test_failed_and_deleting_infrastructure_is_not_ready():
    failed = describe_cluster(dict(CLUSTER, phase="Failed", failure_message="NAT gateway nat-1 failed: no reason"), None)
    deleting = describe_cluster(dict(CLUSTER, phase="Deleting"), None)

    assert failed["conditions"]["InfrastructureReady"] == {"status": "False", "message": "NAT gateway nat-1 failed: no reason"}
    assert deleting["conditions"]["InfrastructureReady"] == {"status": "False", "message": "the cluster is being deleted"}


def test_a_cluster_without_machine_deployments_has_its_workers_ready():
    cluster = dict(CLUSTER, machines=CLUSTER["machines"][:2], machine_sets={k: v for k, v in CLUSTER["machine_sets"].items() if k != "md-0"})

    described = describe_cluster(cluster, NODES[:1])

    assert described["conditions"]["WorkersReady"] == {"status": "True", "message": "no machine deployments"}
    assert "WorkersReady" not in described["lines"][1]


def test_outdated_machines_are_listed_by_name():
    cluster = copy.deepcopy(CLUSTER)
    cluster["machines"][1]["outdated"] = True
    cluster["machines"][3]["outdated"] = True
    cluster["machines"][4]["outdated"] = True  # terminated: gone, not listed

    described = describe_cluster(cluster, NODES)

    assert described["outdated_machines"] == ["capi-example-control-plane-abcde", "capi-example-md-0-bbbbb"]
    assert ("Outdated machines (launched from settings the spec no longer has; rollout_machines.yml replaces them): "
            "capi-example-control-plane-abcde, capi-example-md-0-bbbbb") in described["lines"]
    assert describe_cluster(CLUSTER, NODES)["outdated_machines"] == []


@pytest.mark.parametrize("api_server, message", [
    ("https://%s:6443" % HOST, "the API server answered through the control-plane endpoint %s:6443" % HOST),
    ("https://10.0.64.12:6443", "the API server answered at https://10.0.64.12:6443, which is not the control-plane endpoint %s:6443" % HOST),
    (None, "the API server answered"),
])
def test_control_plane_initialized_says_where_the_api_answered(api_server, message):
    described = describe_cluster(CLUSTER, NODES, None, api_server)

    assert described["conditions"]["ControlPlaneInitialized"] == {"status": "True", "message": message}
