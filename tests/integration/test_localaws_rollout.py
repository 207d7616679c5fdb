"""The immutable rolling replacement (playbooks/rollout_machines.yml) and its health gate, end to end on the local
AWS (tests/localaws): one cluster for the module, 1 control plane + 2 workers at v1.31.4, rolled to a new minor with
stand-in binaries of that version.

The first rollout meets a kubelet that never gets Ready (the API emulator's test fault keeps the first new Node
NotReady): the health gate stops it naming the new control-plane machine, nothing is removed and the old machines
keep serving. After the fault is cleared, a rerun continues with the machine already launched (not a second one)
and finishes: the control plane first (new machine joined and Ready before the old one's etcd member is removed,
before its drain, Node deletion and termination), then the workers, never more than replicas + max_surge machines
of a set. A rerun changes nothing; the delete leaves nothing.

kubeadm, kubelet, kubectl, crictl and the API server are stand-ins (tests/stand_ins): this proves the order and
targets of what the product does, not that Kubernetes runs. Needs root and Docker (`make test-localaws`).
"""

import datetime
import json
import os
import ssl
import time
import urllib.request

import pytest
import yaml

from helpers.modules import load_file, load_sibling

_FLOW = load_sibling(__file__, "test_localaws.py", "localaws_whole_flow")
# test_localaws.py's helpers and its module-scoped local AWS (one per module: this module gets its own)
local_aws = _FLOW.local_aws
LIMITS, OLD, Run, api_objects, interval, make_spec, owned, role, tags = (
    _FLOW.LIMITS, _FLOW.VERSION, _FLOW.Run, _FLOW.api_objects, _FLOW.interval, _FLOW.make_spec, _FLOW.owned, _FLOW.role, _FLOW.tags)

pytestmark = pytest.mark.localaws
NEW = "v1.32.1"
NAME = "capi-roll"
VERSION_TAG = "kubecluster.aws/kubernetes-version"
# seconds a new machine's node has for the gate; the stand-ins' nodes are Ready within seconds of their join
STARTUP_TIMEOUT = 60
FAULT = "stand-in test fault: the kubelet cannot reach its container runtime"


def emulator_request(aws, vpc_id, method, path, body=None):
    """A request to the VPC's API emulator with its admin token (the test endpoints: /stand-in/...)."""
    entry = aws.emulator(vpc_id)
    request = urllib.request.Request(entry["url"] + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + entry["admin_token"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context(cafile=entry["ca_cert"])) as response:
        return json.loads(response.read())


def instances(aws, with_terminated=False):
    """The cluster's Kubernetes machines by instance id (the bastion left out)."""
    ec2 = aws.client("ec2")
    owner = [{"Name": "tag:sigs.k8s.io/cluster-api-provider-aws/cluster/%s" % NAME, "Values": ["owned"]}]
    found = [instance for reservation in ec2.describe_instances(Filters=owner)["Reservations"] for instance in reservation["Instances"]]
    return {instance["InstanceId"]: instance for instance in found if role(instance) in ("control-plane", "node")
            and (with_terminated or instance["State"]["Name"] not in ("terminated", "shutting-down"))}


def by_set(found):
    sets = {}
    for instance in found.values():
        set_name = tags(instance).get("kubecluster.aws/machine-set") or role(instance)
        sets.setdefault(set_name, []).append(instance)
    return sets


def nodes(aws, vpc_id):
    return {item["metadata"]["name"]: item for item in api_objects(aws, vpc_id) if item["kind"] == "Node"}


def ready(node):
    return [condition["status"] for condition in node.get("status", {}).get("conditions", []) if condition["type"] == "Ready"] == ["True"]


def writes(aws, vpc_id, since):
    return [request for request in aws.emulator_get(vpc_id, "/stand-in/requests")["items"]
            if request["method"] not in ("GET", "HEAD") and request["time"] >= since and not (request.get("query") or {}).get("dryRun")]


def terminated_at(instance):
    """When moto terminated the instance (its StateTransitionReason, to the second)."""
    reason = instance.get("StateTransitionReason", "")
    stamp = reason[reason.index("(") + 1:reason.index(")")].replace(" UTC", "")
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()


def upgraded_spec(aws, spec_file):
    """The same cluster at the next minor: the image CAPA's lookup finds for it published in the account (as
    image-builder publishes one, made as hack/demo_prepare.py makes the first), its stand-in binaries, and a short
    node startup timeout for the gate."""
    with open(spec_file, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    prepare = load_file("demo_prepare", os.path.join(_FLOW.REPO, "hack", "demo_prepare.py"))
    prefix = "capa-ami-%s-%s-" % (spec["cluster"].get("image_lookup", {}).get("base_os", "ubuntu-24.04"), NEW)
    prepare.ensure_image(aws.client("ec2"), prefix, prefix + datetime.date.today().strftime("%Y%m%d"))
    spec["cluster"]["kubernetes_version"] = NEW
    spec["cluster"]["kubernetes_packages"] = {"source": "binaries", "binaries_dir": aws.binaries_dir(NEW)}
    spec["cluster"]["node_startup_timeout"] = STARTUP_TIMEOUT
    out = spec_file.replace(".yml", "-%s.yml" % NEW)
    with open(out, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)
    return out


@pytest.fixture(scope="module")
def cluster(local_aws):
    """1 control plane + 2 workers at v1.31.4 (one NAT gateway keeps it short); deleted at the end of the module."""
    aws = local_aws
    spec_file, _cluster = make_spec(aws, NAME, "198.18.64.0/18", 1, 2, "single")
    Run(aws, "rollout-create", "create_cluster.yml", spec_file, *LIMITS).assert_ok()
    vpc_id = owned(aws, NAME)["vpcs"][0]["VpcId"]
    yield aws, spec_file, vpc_id


def test_immutable_rollout_stops_at_the_gate_then_continues_control_plane_first(cluster):
    aws, spec_file, vpc_id = cluster
    old = instances(aws)
    old_sets = by_set(old)
    (old_cp,) = old_sets["control-plane"]
    assert len(old_sets["md-0"]) == 2 and {tags(instance)[VERSION_TAG] for instance in old.values()} == {OLD}
    new_spec = upgraded_spec(aws, spec_file)
    started = time.time()
    aws.start_recording()

    # -- a new node that never gets Ready stops the rollout; nothing is removed ------------------------------------
    emulator_request(aws, vpc_id, "PUT", "/stand-in/kubelet-faults", {"not_ready_registrations": 1, "message": FAULT})
    stopped = Run(aws, "rollout-gate-fails", "rollout_machines.yml", new_spec, *LIMITS)
    held = emulator_request(aws, vpc_id, "GET", "/stand-in/kubelet-faults")["nodes"]
    now = instances(aws)
    added = {instance_id: instance for instance_id, instance in now.items() if instance_id not in old}
    (new_cp,) = added.values()
    assert stopped.rc != 0 and "Fail naming each node that is not ready" in stopped.stopped_at, (stopped.stopped_at, stopped.stdout[-4000:])
    assert role(new_cp) == "control-plane" and tags(new_cp)[VERSION_TAG] == NEW and held == [new_cp["PrivateDnsName"]]
    message = stopped.stdout[stopped.stdout.rindex("Not ready after"):]
    assert new_cp["PrivateDnsName"] in message and tags(new_cp)["Name"] in message and new_cp["InstanceId"] in message, message
    assert "nothing was removed" in message and tags(old_cp)["Name"] in message, message
    # the old machines keep serving: all running, their Nodes Ready, the old control plane still behind the load balancer
    assert set(old) <= set(now) and [call["action"] for call in aws.recorded_writes() if call["action"] == "TerminateInstances"] == []
    api_nodes = nodes(aws, vpc_id)
    assert all(ready(api_nodes[instance["PrivateDnsName"]]) for instance in old.values()) and not ready(api_nodes[new_cp["PrivateDnsName"]])
    assert [request for request in writes(aws, vpc_id, started) if "/eviction" in request["path"] or request["method"] == "DELETE"
            and "/nodes/" in request["path"] or "/stand-in/etcd/members/" in request["path"]] == []
    elbv2 = aws.client("elbv2")
    (group,) = owned(aws, NAME)["target_groups"]
    targets = {target["Target"]["Id"] for target in elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]}
    assert old_cp["InstanceId"] in targets

    # -- the fault cleared, a rerun continues with the machine already launched and finishes --------------------------
    emulator_request(aws, vpc_id, "DELETE", "/stand-in/kubelet-faults")
    Run(aws, "rollout-continues", "rollout_machines.yml", new_spec, *LIMITS).assert_ok()
    aws.stop_recording()
    after, every = instances(aws), instances(aws, with_terminated=True)
    sets = by_set(after)
    assert len(sets["control-plane"]) == 1 and len(sets["md-0"]) == 2 and not set(old) & set(after)
    assert sets["control-plane"][0]["InstanceId"] == new_cp["InstanceId"]  # launched once, in the first run
    assert {tags(instance)[VERSION_TAG] for instance in after.values()} == {NEW}
    # surge 1 everywhere: every launch is followed by a termination before the next launch, so no set ever held
    # more than replicas + 1 machines; the control plane's (the first launch) came before any worker's
    launches = [call["action"] for call in aws.recorded_writes() if call["action"] in ("RunInstances", "TerminateInstances")]
    assert launches == ["RunInstances", "TerminateInstances"] * 3, launches

    requests = writes(aws, vpc_id, started)

    def first(predicate, what):
        found = [request["time"] for request in requests if predicate(request)]
        assert found, what
        return min(found)

    (join,) = aws.stand_in_calls(new_cp["InstanceId"], "kubeadm", "join")
    old_node = old_cp["PrivateDnsName"]
    member_removed = first(lambda r: r["method"] == "DELETE" and r["path"].startswith("/stand-in/etcd/members/"), "the old etcd member removed")
    drained = first(lambda r: r["path"].endswith("/eviction") or r["method"] == "PATCH" and r["path"] == "/api/v1/nodes/" + old_node, "the old CP cordoned")
    node_deleted = first(lambda r: r["method"] == "DELETE" and r["path"] == "/api/v1/nodes/" + old_node, "the old CP's Node deleted")
    assert interval(join)[1] < member_removed < drained < node_deleted <= terminated_at(every[old_cp["InstanceId"]]) + 1
    # control plane before workers: every new worker joined after the old control plane went
    for worker in sets["md-0"]:
        (worker_join,) = aws.stand_in_calls(worker["InstanceId"], "kubeadm", "join")
        assert worker_join["time"] > node_deleted
    # the new control plane runs its own version's static pods: kubeadm-config was raised before it joined
    manifest = aws.read_file(new_cp["InstanceId"], "/etc/kubernetes/manifests/kube-apiserver.yaml")
    assert "kube-apiserver:%s" % NEW in manifest, manifest
    config_map = next(item for item in api_objects(aws, vpc_id) if item["kind"] == "ConfigMap" and item["metadata"]["name"] == "kubeadm-config")
    assert yaml.safe_load(config_map["data"]["ClusterConfiguration"])["kubernetesVersion"] == NEW
    # versions in the API: exactly the new machines' Nodes, Ready, their kubelets at the new version
    api_nodes = nodes(aws, vpc_id)
    assert set(api_nodes) == {instance["PrivateDnsName"] for instance in after.values()}
    assert all(ready(node) and node["status"]["nodeInfo"]["kubeletVersion"] == NEW for node in api_nodes.values()), api_nodes
    (group,) = owned(aws, NAME)["target_groups"]
    targets = {target["Target"]["Id"] for target in elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]}
    assert targets == {new_cp["InstanceId"]}

    # -- a rerun changes nothing: no AWS write but the lease's, no kubeadm call that writes, no API write ----------------
    since = time.time()
    aws.start_recording()
    try:
        rerun = Run(aws, "rollout-rerun", "rollout_machines.yml", new_spec, *LIMITS)
    finally:
        aws.stop_recording()
    rerun.assert_ok()
    assert {host: counts["changed"] for host, counts in rerun.recap.items() if counts["changed"]} == {}, rerun.recap
    lease_writes = {("ssm", "PutParameter"), ("ssm", "DeleteParameter")}
    assert [(call["service"], call["action"]) for call in aws.recorded_writes() if (call["service"], call["action"]) not in lease_writes] == []
    assert [request for request in writes(aws, vpc_id, since) if not (request.get("user") or "").startswith("system:node:")] == []
    assert {machine: calls for machine, calls in _FLOW.kubeadm_writes_since(aws, list(after), since).items() if calls} == {}

    _FLOW.assert_delete_leaves_nothing(aws, "rollout-delete", NAME, new_spec)
