"""Day 2 on the local AWS (tests/localaws), one cluster for the whole module, created once: scale the workers
up and down, the control plane up and down, and replace a worker by name (remove_node.yml), first blocked by a
PodDisruptionBudget, then finished by a rerun; then delete. After each step: the instances and the load
balancer's targets in moto, the hosts, the stand-ins' records (etcd member removals on another control-plane host
before the machine's termination, control-plane machines one at a time) and the API emulator's requests (cordon,
evictions and the Node's DELETE before the instance's termination), and the node list.

The product runs as a user runs it (ansible-playbook in the controller container); see test_localaws.py for
what is real and what is a stand-in. The tests of this module depend on each other's cluster and run in order.
"""

import datetime
import json
import os
import re
import ssl
import sys
import time
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the whole-flow module's fixture and helpers, not copies  # noqa: E402
from test_localaws import (LIMITS, Run, api_objects, assert_api, assert_delete_leaves_nothing, assert_hosts,  # noqa: E402,F401 pylint: disable=unused-import
                           create_and_check, local_aws, owned, role, tags)

pytestmark = pytest.mark.localaws
NAME = "capi-scale"
# fails fast when a PodDisruptionBudget blocks (the spec's node_drain_timeout is 600 s)
SHORT_DRAIN = ("-e", "node_removal_drain_timeout=20", "-e", "node_removal_drain_delay=5")
STATE = {}


# -- what moto, the API and the hosts say ---------------------------------------------------------------------------------
def machines(aws):
    """The cluster's instances that are not terminated, by role."""
    by_role = {"bastion": [], "control-plane": [], "node": []}
    for instance in owned(aws, NAME)["instances"]:
        by_role[role(instance)].append(instance)
    return by_role


def terminated_at(aws, instance_id):
    """When EC2 terminated the instance (StateTransitionReason "User initiated (YYYY-MM-DD HH:MM:SS UTC)", whole seconds)."""
    (reservation,) = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["State"]["Name"] == "terminated", (instance_id, instance["State"])
    stamp = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\)", instance["StateTransitionReason"]).group(1)
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()


def ids(by_role):
    return {key: sorted(instance["InstanceId"] for instance in value) for key, value in by_role.items()}


def lb_targets(aws):
    elbv2 = aws.client("elbv2")
    (group,) = owned(aws, NAME)["target_groups"]
    return sorted(target["Target"]["Id"] for target in elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"])


def node_names(aws):
    return sorted(item["metadata"]["name"] for item in api_objects(aws, STATE["vpc"]) if item["kind"] == "Node")


def api_requests(aws, since):
    return [request for request in aws.emulator_get(STATE["vpc"], "/stand-in/requests")["items"] if request["time"] >= since]


def etcd_members(aws):
    return aws.emulator_get(STATE["vpc"], "/stand-in/etcd/members")["members"]


def api_write(aws, method, path, body=None):
    """A write to the cluster's API emulator with its admin token, as a user's kubectl would make it."""
    entry = aws.emulator(STATE["vpc"])
    request = urllib.request.Request(entry["url"] + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + entry["admin_token"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context(cafile=entry["ca_cert"])) as response:
        return json.loads(response.read())


def set_spec_replicas(deployment, replicas):
    with open(STATE["spec"], encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    for entry in spec["cluster"]["machine_deployments"]:
        if entry["name"] == deployment:
            entry["replicas"] = replicas
    with open(STATE["spec"], "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)


def scale(aws, label, deployment, replicas):
    since = time.time()
    run = Run(aws, label, "scale_cluster.yml", STATE["spec"], "-e", "machine_deployment=" + deployment, "-e", "replicas=%d" % replicas, *LIMITS)
    run.assert_ok()
    return since, run


def assert_cluster(aws, control_planes, workers):
    """moto holds the replicas; every machine has its host and is a ready, initialised Node; the LB targets the control plane."""
    by_role = machines(aws)
    assert {key: len(value) for key, value in by_role.items()} == {"bastion": 1, "control-plane": control_planes, "node": workers}
    assert lb_targets(aws) == sorted(instance["InstanceId"] for instance in by_role["control-plane"])
    assert_hosts(aws, by_role)
    assert_api(aws, STATE["vpc"], by_role)
    assert len(etcd_members(aws)) == control_planes
    return by_role


def assert_removed_safely(aws, instance, since):
    """Cordoned, drained and its Node deleted through the API before EC2 terminated the instance; its host is gone.

    EC2 may give a later machine the private address this one freed (AWS does, and so does the local AWS), and with
    it the same Node name: the requests after the first delete can be the replacement's, and what must be gone is
    the Node of this instance, known by its providerID."""
    node = instance["PrivateDnsName"]
    requests = api_requests(aws, since)
    deleted = [request["time"] for request in requests if request["method"] == "DELETE" and request["path"] == "/api/v1/nodes/" + node]
    assert deleted, (node, "never deleted")
    cordon = [request["time"] for request in requests
              if request["method"] == "PATCH" and request["path"] == "/api/v1/nodes/" + node and request["time"] < min(deleted)]
    assert cordon, (node, "not cordoned before its deletion", deleted)
    terminated = terminated_at(aws, instance["InstanceId"])
    assert min(deleted) < terminated + 1, (node, deleted, terminated)  # EC2's stamp has whole seconds
    providers = {item["metadata"]["name"]: (item.get("spec") or {}).get("providerID", "")
                 for item in api_objects(aws, STATE["vpc"]) if item["kind"] == "Node"}
    assert not [name for name, provider in providers.items() if provider.endswith("/" + instance["InstanceId"])], (instance["InstanceId"], providers)
    assert instance["InstanceId"] not in aws.hosts()
    return terminated


def member_removals(aws, control_planes, since):
    """(time, host, argv) of each `etcdctl member remove` the stand-ins recorded on the control-plane hosts."""
    found = []
    for instance in control_planes:
        for call in aws.stand_in_calls(instance["InstanceId"], "crictl"):
            if call["time"] >= since and "member" in call["argv"] and "remove" in call["argv"]:
                assert call["exit_code"] == 0, call
                found.append((call["time"], instance["InstanceId"], call["argv"]))
    return sorted(found)


# -- the steps, in order, on one cluster -----------------------------------------------------------------------------------
def test_create_one_control_plane_and_two_workers(local_aws):
    spec_file, vpc_id, by_role = create_and_check(local_aws, "scale", NAME, "198.18.16.0/20", 1, 2, "single")
    STATE.update(spec=spec_file, vpc=vpc_id, first=by_role)


def test_scale_workers_to_four_then_one(local_aws):
    aws = local_aws
    before = machines(aws)["node"]
    scale(aws, "scale-md-4", "md-0", 4)
    grown = assert_cluster(aws, 1, 4)
    assert {i["InstanceId"] for i in before} <= {i["InstanceId"] for i in grown["node"]}  # only launches

    since, unused = scale(aws, "scale-md-1", "md-0", 1)
    after = assert_cluster(aws, 1, 1)
    gone = [instance for instance in grown["node"] if instance["InstanceId"] not in {i["InstanceId"] for i in after["node"]}]
    assert len(gone) == 3
    for instance in gone:
        assert_removed_safely(aws, instance, since)
    # no control-plane machine was touched
    assert [i["InstanceId"] for i in after["control-plane"]] == [i["InstanceId"] for i in grown["control-plane"]]
    # scale_cluster.yml leaves the spec file alone: the next run with it would scale back to 2; keep 1, as a user would
    set_spec_replicas("md-0", 1)


def test_scale_control_plane_to_three_then_one(local_aws):
    aws = local_aws
    first = machines(aws)["control-plane"]
    scale(aws, "scale-cp-3", "control-plane", 3)
    grown = assert_cluster(aws, 3, 1)

    since, unused = scale(aws, "scale-cp-1", "control-plane", 1)
    after = assert_cluster(aws, 1, 1)
    (kept,) = after["control-plane"]
    gone = [instance for instance in grown["control-plane"] if instance["InstanceId"] != kept["InstanceId"]]
    assert len(gone) == 2
    removals = member_removals(aws, grown["control-plane"], since)
    assert len(removals) == 2, removals
    ends = {}
    for instance in gone:
        ends[instance["InstanceId"]] = assert_removed_safely(aws, instance, since)
    terminations = sorted((end, machine) for machine, end in ends.items())
    # each member removed on another control-plane host (never the leaving one), before that machine's termination;
    # the second removal only after the first machine was terminated
    for (removed, host, argv), (end, machine) in zip(removals, terminations):
        assert host != machine and removed < end + 1, (removals, terminations)
    assert terminations[0][0] < removals[1][0] + 1, (removals, terminations)
    assert [member["name"] for member in etcd_members(aws)] == [kept["PrivateDnsName"]]
    # KubeadmControlPlane's order (machine_set's surplus): outdated, then the fullest zone (one each here: the later
    # zone), then the oldest; so the first machine, in the first zone, stays
    assert kept["InstanceId"] == first[0]["InstanceId"]


def test_remove_a_worker_by_name_blocked_by_a_disruption_budget_then_finished(local_aws):
    aws = local_aws
    (worker,) = machines(aws)["node"]
    node = worker["PrivateDnsName"]
    api_write(aws, "POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        # no owner: the emulator's garbage collector would delete a pod whose ReplicaSet does not exist (the drain
        # evicts unmanaged pods too, as Cluster API's does)
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]}})
    api_write(aws, "POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})

    since = started = time.time()
    blocked = Run(aws, "remove-node-blocked", "remove_node.yml", STATE["spec"], "-e", "node=" + node, *SHORT_DRAIN, *LIMITS)
    assert blocked.rc != 0
    assert "default/web-0" in blocked.stdout and "PodDisruptionBudget" in blocked.stdout, blocked.stdout[-3000:]
    assert [i["InstanceId"] for i in machines(aws)["node"]] == [worker["InstanceId"]]  # left running
    assert node in node_names(aws)
    evictions = [r["status"] for r in api_requests(aws, since) if r["path"].endswith("/pods/web-0/eviction")]
    assert evictions and set(evictions) == {429}, evictions

    api_write(aws, "DELETE", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web")
    since = time.time()
    # by its machine name this time: the same machine
    Run(aws, "remove-node", "remove_node.yml", STATE["spec"], "-e", "node=" + tags(worker)["Name"], *LIMITS).assert_ok()
    after = assert_cluster(aws, 1, 1)
    (replacement,) = after["node"]
    assert replacement["InstanceId"] != worker["InstanceId"]
    assert_removed_safely(aws, worker, started)  # cordoned by the blocked run, which the rerun finds so
    assert [r["status"] for r in api_requests(aws, since) if r["path"].endswith("/pods/web-0/eviction")] == [201]
    # the replacement launched after the removal
    assert terminated_at(aws, worker["InstanceId"]) <= replacement["LaunchTime"].timestamp() + 1


def test_unknown_node_and_bastion_are_refused_without_change(local_aws):
    aws = local_aws
    before = machines(aws)
    unknown = Run(aws, "remove-node-unknown", "remove_node.yml", STATE["spec"], "-e", "node=ip-198-18-31-254.nowhere", *LIMITS)
    assert unknown.rc != 0 and "is no running machine of cluster " + NAME in unknown.stdout
    assert before["node"][0]["PrivateDnsName"] in unknown.stdout  # names what exists
    bastion = Run(aws, "remove-node-bastion", "remove_node.yml", STATE["spec"], "-e", "node=" + before["bastion"][0]["InstanceId"], *LIMITS)
    assert bastion.rc != 0 and "is the bastion" in bastion.stdout
    assert ids(machines(aws)) == ids(before)


def test_delete_leaves_nothing(local_aws):
    assert_delete_leaves_nothing(local_aws, "scale-delete", NAME, STATE["spec"])
