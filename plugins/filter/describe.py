# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of both filters is in describe_cluster.yml and describe_clusters.yml beside
# this file, where ansible-doc looks for a filter that shares a file with another.

"""``clusterctl describe cluster`` for kubecluster.aws: cluster_info's view of a cluster and the
Node list of its API merged into structured data and a text tree; and the region's table.

Pure functions of their inputs: no AWS, no Kubernetes call; the playbook reads both.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError

CONTROL_PLANE = "control-plane"
BASTION = "bastion"
CONTROL_PLANE_ROLE = "control-plane"
# What a machine's node condition is when the API was not read.
NODE_UNKNOWN = "unknown"
NODE_READY = "Ready"
NODE_NOT_READY = "NotReady"
# The API answered and no Node belongs to the machine (yet, or any more).
NODE_MISSING = "NoNode"
PROVISIONED = "Provisioned"
NOT_FOUND = "NotFound"
FAILED = "Failed"
DELETING = "Deleting"
PROVIDER_ID_PREFIX = "aws://"

Machine = Dict[str, Any]
Node = Mapping[str, Any]


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def instance_id_of(node: Node) -> Optional[str]:
    """The EC2 instance of a Node, from its spec.providerID (``aws:///<zone>/<instance id>``)."""
    provider_id = _get(node, "spec", "providerID")
    if isinstance(provider_id, str) and provider_id.startswith(PROVIDER_ID_PREFIX):
        last = provider_id.rstrip("/").rsplit("/", 1)[-1]
        return last if last.startswith("i-") else None
    return None


def node_condition(node: Node) -> str:
    """Ready when the Node's Ready condition is True, else NotReady (False, Unknown or none yet), as kubectl shows it."""
    for condition in _get(node, "status", "conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return NODE_READY if condition.get("status") == "True" else NODE_NOT_READY
    return NODE_NOT_READY


def match_nodes(machines: Sequence[Machine], nodes: Sequence[Node]) -> Dict[str, Node]:
    """{instance id: Node}: by the Node's providerID, else by its name being the machine's private DNS name."""
    by_instance: Dict[str, Node] = {}
    by_name: Dict[str, Node] = {}
    for each in nodes:
        instance = instance_id_of(each)
        if instance:
            by_instance.setdefault(instance, each)
        name = _get(each, "metadata", "name")
        if name:
            by_name.setdefault(name, each)
    matched: Dict[str, Node] = {}
    for machine in machines:
        node: Optional[Node] = by_instance.get(machine["instance_id"])
        if node is None and machine.get("private_dns_name") in by_name:
            candidate = by_name[machine["private_dns_name"]]
            # A Node naming another instance in its providerID is that instance's, whatever its name.
            if instance_id_of(candidate) in (None, machine["instance_id"]):
                node = candidate
        if node is not None:
            matched[machine["instance_id"]] = node
    return matched


def _machine(machine: Machine, node: Optional[Node], nodes_known: bool) -> Machine:
    running = machine["state"] == "running"
    if not nodes_known:
        condition = NODE_UNKNOWN
    elif node is None:
        condition = NODE_MISSING
    else:
        condition = node_condition(node)
    kubelet = _get(node, "status", "nodeInfo", "kubeletVersion") if node is not None else None
    if not running:
        ready: Optional[bool] = False
    elif condition == NODE_UNKNOWN:
        ready = None
    else:
        ready = condition == NODE_READY
    return {
        "name": machine["name"],
        "instance_id": machine["instance_id"],
        "set": machine.get("set"),
        "state": machine["state"],
        "availability_zone": machine.get("availability_zone"),
        "private_ip": machine.get("private_ip"),
        "public_ip": machine.get("public_ip"),
        # The kubelet's own word when the API was read; the version the machine was launched for otherwise.
        "kubernetes_version": kubelet or machine.get("kubernetes_version"),
        "node_name": _get(node, "metadata", "name") if node is not None else None,
        "node_condition": condition,
        "outdated": machine.get("outdated"),
        "ready": ready,
    }


def _all_true(values: Sequence[Optional[bool]]) -> Optional[bool]:
    """False when any is False, else None when any is unknown, else True."""
    if any(value is False for value in values):
        return False
    if any(value is None for value in values):
        return None
    return True


def _set(cluster_name: str, set_name: str, counts: Mapping[str, Any], machines: List[Machine], nodes_known: bool) -> Dict[str, Any]:
    ready = sum(1 for m in machines if m["ready"]) if nodes_known else None
    desired = counts.get("desired")
    target = desired if desired is not None else counts.get("replicas", len(machines))
    if ready is None:
        condition: Optional[bool] = None if machines or target else True
    else:
        condition = ready >= target and all(m["ready"] for m in machines)
    return {
        "name": "%s-%s" % (cluster_name, set_name),
        "set": set_name,
        "desired": desired,
        "replicas": counts.get("replicas", len(machines)),
        "running": counts.get("running", sum(1 for m in machines if m["state"] == "running")),
        "ready": ready,
        "up_to_date": counts.get("up_to_date"),
        "ready_condition": condition,
        "machines": machines,
    }


def _endpoint(cluster: Mapping[str, Any]) -> Optional[str]:
    endpoint = cluster.get("control_plane_endpoint")
    return "%s:%s" % (endpoint["host"], endpoint["port"]) if endpoint else None


def _check_cluster(cluster: Any) -> None:
    if not isinstance(cluster, Mapping) or not all(key in cluster for key in ("name", "phase", "machines")):
        raise AnsibleFilterError("describe_cluster expects one cluster as kubecluster.aws.cluster_info returns it "
                                 "(its result's cluster key), not %r" % (type(cluster).__name__,))


def _nodes_list(nodes: Any) -> Optional[List[Node]]:
    if nodes is None:
        return None
    if not isinstance(nodes, Sequence) or isinstance(nodes, (str, bytes)) or not all(isinstance(n, Mapping) for n in nodes):
        raise AnsibleFilterError("describe_cluster: nodes must be the Node objects kubernetes.core.k8s_info returns "
                                 "(its resources), or none when the API was not read")
    return list(nodes)


def _condition(value: Optional[bool], message: str) -> Dict[str, str]:
    # Kubernetes writes a condition's status as the words _word gives.
    return {"status": _word(value), "message": message}


def _sum(values: Sequence[Optional[int]]) -> Optional[int]:
    return None if any(value is None for value in values) else sum(value or 0 for value in values)


def _ratio(ready: Optional[int], desired: Optional[int]) -> str:
    return "%s/%s" % (_count(ready), _count(desired))


def _infrastructure_condition(cluster: Mapping[str, Any]) -> Dict[str, str]:
    phase = cluster["phase"]
    if phase == PROVISIONED:
        return _condition(True, "the network and the API load balancer are ready, with the control-plane endpoint")
    if phase == NOT_FOUND:
        return _condition(False, "the cluster owns nothing in %s" % cluster.get("region"))
    if phase == FAILED:
        return _condition(False, cluster.get("failure_message") or "the cluster failed")
    if phase == DELETING:
        return _condition(False, "the cluster is being deleted")
    waiting = cluster.get("infrastructure_waiting_for")
    return _condition(False, "waiting for %s" % ", ".join(waiting) if waiting else "the network or the API load balancer is not ready")


def _answered(cluster: Mapping[str, Any], api_server: Optional[str]) -> str:
    """Where the API answered: through the control-plane endpoint (the API load balancer), or said to be elsewhere."""
    if not api_server:
        return "the API server answered"
    endpoint = _endpoint(cluster)
    host = urlsplit(api_server).hostname if "://" in api_server else api_server.split(":")[0]
    if endpoint and host == endpoint.rsplit(":", 1)[0]:
        return "the API server answered through the control-plane endpoint %s" % endpoint
    return "the API server answered at %s, which is not the control-plane endpoint %s" % (api_server, endpoint or "(none yet)")


def conditions(cluster: Mapping[str, Any], control_plane: Mapping[str, Any], workers: Sequence[Mapping[str, Any]],
               nodes_known: bool, nodes_message: Optional[str], api_server: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """Cluster API's conditions of the cluster: {type: {status: True, False or Unknown, message}}.

    InfrastructureReady from AWS (the phase Provisioned); ControlPlaneInitialized when the API answered through the
    kubeconfig (kubeadm init is done), False without a control-plane endpoint or a running control-plane machine;
    ControlPlaneReady when every control-plane machine's Node is Ready; WorkersReady likewise for the machine
    deployments (ready/desired). Unknown when the API was not read.
    """
    if cluster["phase"] == NOT_FOUND:
        gone = _condition(False, "the cluster does not exist")
        return {"InfrastructureReady": _infrastructure_condition(cluster), "ControlPlaneInitialized": gone,
                "ControlPlaneReady": gone, "WorkersReady": gone}
    unknown = nodes_message or "the cluster's API was not read"
    if nodes_known:
        initialized = _condition(True, _answered(cluster, api_server))
    elif not cluster.get("control_plane_endpoint"):
        initialized = _condition(False, "no control-plane endpoint (the API load balancer has no DNS name)")
    elif not any(m["state"] == "running" for m in control_plane["machines"]):
        initialized = _condition(False, "no control-plane machine is running")
    else:
        initialized = _condition(None, unknown)
    not_initialized = initialized["status"] == "False"
    if not_initialized:
        cp_ready = _condition(False, "the control plane is not initialized")
    elif not nodes_known:
        cp_ready = _condition(None, unknown)
    else:
        cp_ready = _condition(control_plane["ready_condition"],
                              "%s control-plane machines ready" % _ratio(control_plane["ready"], control_plane["desired"]))
    if not workers:
        workers_ready = _condition(True, "no machine deployments")
    elif not_initialized:
        workers_ready = _condition(False, "the control plane is not initialized")
    elif not nodes_known:
        workers_ready = _condition(None, unknown)
    else:
        workers_ready = _condition(_all_true([g["ready_condition"] for g in workers]), "%s worker machines ready" % _ratio(
            _sum([g["ready"] for g in workers]), _sum([g["desired"] for g in workers])))
    return {"InfrastructureReady": _infrastructure_condition(cluster), "ControlPlaneInitialized": initialized,
            "ControlPlaneReady": cp_ready, "WorkersReady": workers_ready}


def _as_bool(condition: Mapping[str, str]) -> Optional[bool]:
    return {"True": True, "False": False}.get(condition["status"])


def describe_cluster(cluster: Any, nodes: Any = None, nodes_message: Optional[str] = None, api_server: Optional[str] = None) -> Dict[str, Any]:
    """cluster_info's view of one cluster and its API's Nodes (None: the API was not read) as describe data and text lines;
    ``api_server``: the kubeconfig's server the Nodes were read from."""
    _check_cluster(cluster)
    node_list = _nodes_list(nodes)
    nodes_known = node_list is not None
    live = [m for m in cluster["machines"] if m["state"] != "terminated"]
    matched = match_nodes(live, node_list or [])
    views = [_machine(m, matched.get(m["instance_id"]), nodes_known) for m in live]
    matched_names = {_get(node, "metadata", "name") for node in matched.values()}
    orphans = sorted(str(_get(node, "metadata", "name")) for node in node_list or [] if _get(node, "metadata", "name") not in matched_names)
    counts: Mapping[str, Mapping[str, Any]] = cluster.get("machine_sets") or {}
    set_names = sorted({m["set"] for m in views if m["set"]} | set(counts), key=lambda s: (s != CONTROL_PLANE, s))
    sets = {name: _set(cluster["name"], name, counts.get(name, {}), [v for v in views if v["set"] == name], nodes_known)
            for name in set_names if name != BASTION}
    bastions = [v for v in views if v["set"] == BASTION]
    for view in bastions:
        view["node_condition"], view["ready"] = None, view["state"] == "running"
    control_plane = sets.pop(CONTROL_PLANE, None) or _set(cluster["name"], CONTROL_PLANE, {}, [], nodes_known)
    phase = cluster["phase"]
    workers = list(sets.values())
    cluster_conditions = conditions(cluster, control_plane, workers, nodes_known, nodes_message, api_server)
    infrastructure_ready = phase == PROVISIONED
    # Ready as Cluster API's summary: the infrastructure and the control plane (the workers have their own condition).
    ready = _all_true([_as_bool(cluster_conditions["InfrastructureReady"]), _as_bool(cluster_conditions["ControlPlaneReady"])])
    described = {
        "name": cluster["name"],
        "region": cluster.get("region"),
        "phase": phase,
        "exists": phase != NOT_FOUND,
        "ready": ready,
        "failure_message": cluster.get("failure_message"),
        "kubernetes_version": cluster.get("kubernetes_version"),
        "control_plane_endpoint": _endpoint(cluster),
        "conditions": cluster_conditions,
        "workers": {"ready": _sum([g["ready"] for g in workers]), "desired": _sum([g["desired"] for g in workers])},
        "nodes_known": nodes_known,
        "nodes_message": nodes_message if not nodes_known else None,
        "infrastructure": {
            "name": cluster["name"],
            "ready": infrastructure_ready,
            "vpc_id": cluster.get("vpc_id"),
            "load_balancer": cluster.get("load_balancer"),
            "bastion": bastions[0] if bastions else None,
        },
        "control_plane": control_plane,
        "machine_deployments": workers,
        "outdated_machines": [v["name"] for v in views if v.get("outdated")],
        "nodes_without_machine": orphans,
        "ownership_conflicts": list(cluster.get("ownership_conflicts") or []),
    }
    described["lines"] = tree_lines(described)
    return described


# --- the text ----------------------------------------------------------------------------

def _word(value: Optional[bool]) -> str:
    return "Unknown" if value is None else str(value)


def _count(value: Optional[int]) -> str:
    return "?" if value is None else str(value)


def _replicas(group: Mapping[str, Any]) -> str:
    return "desired/ready/up-to-date %s/%s/%s" % (_count(group["desired"]), _count(group["ready"]), _count(group["up_to_date"]))


def condition_words(described: Mapping[str, Any]) -> str:
    """The conditions next to the phase: Provisioned says only that the infrastructure and the endpoint exist."""
    found = described["conditions"]
    workers = described["workers"]
    words = ["%s=%s" % (kind, found[kind]["status"]) for kind in ("InfrastructureReady", "ControlPlaneInitialized", "ControlPlaneReady")]
    if described["machine_deployments"]:
        words.append("WorkersReady=%s" % _ratio(workers["ready"], workers["desired"]))
    return " ".join(words)


def _machine_cells(machine: Machine) -> List[str]:
    extra = []
    if machine["state"] != "running":
        extra.append(machine["state"])
    if machine.get("outdated"):
        extra.append("outdated")
    condition = machine["node_condition"]
    return [machine["instance_id"] or "-", machine["availability_zone"] or "-", machine["private_ip"] or "-",
            machine["kubernetes_version"] or "-", "node " + condition if condition else "", " ".join(extra)]


def _rows(described: Mapping[str, Any]) -> List[Tuple[str, str, Any]]:
    """(tree name, READY, details: a text, or a machine's cells to align) per row."""
    name = described["name"]
    cluster_details = " ".join(part for part in (described["phase"], condition_words(described), described["kubernetes_version"],
                                                 described["control_plane_endpoint"], described["failure_message"]) if part)
    rows: List[Tuple[str, str, Any]] = [("Cluster/%s" % name, _word(described["ready"]), cluster_details)]
    infrastructure = described["infrastructure"]
    balancer = infrastructure["load_balancer"]
    infra_details = " ".join(part for part in (
        described["phase"], infrastructure["vpc_id"],
        "%s %s (%s)" % (balancer["type"], balancer["name"], balancer["state"]) if balancer else "no API load balancer") if part)
    groups: List[Tuple[str, Mapping[str, Any]]] = [("ControlPlane - KubeadmControlPlane/", described["control_plane"])]
    groups += [("MachineDeployment/", group) for group in described["machine_deployments"]]
    last_top = not groups
    rows.append(("%sClusterInfrastructure - AWSCluster/%s" % ("└─" if last_top else "├─", name), _word(infrastructure["ready"]), infra_details))
    if infrastructure["bastion"]:
        bastion = infrastructure["bastion"]
        rows.append(("%s└─Bastion/%s" % ("  " if last_top else "│ ", bastion["name"]), _word(bastion["ready"]), _machine_cells(bastion)))
    control_plane = described["control_plane"]
    workers = described["machine_deployments"]
    rows.append(("%sControlPlane - KubeadmControlPlane/%s" % ("├─" if workers else "└─", control_plane["name"]),
                 _word(control_plane["ready_condition"]), _replicas(control_plane)))
    rows += _machine_rows(control_plane["machines"], "│ " if workers else "  ")
    if workers:
        rows.append(("└─Workers", "", ""))
        for index, group in enumerate(workers):
            last = index == len(workers) - 1
            rows.append(("  %sMachineDeployment/%s" % ("└─" if last else "├─", group["name"]), _word(group["ready_condition"]), _replicas(group)))
            rows += _machine_rows(group["machines"], "    " if last else "  │ ")
    return rows


def _machine_rows(machines: Sequence[Machine], indent: str) -> List[Tuple[str, str, Any]]:
    return [("%s%sMachine/%s" % (indent, "└─" if index == len(machines) - 1 else "├─", machine["name"]), _word(machine["ready"]),
             _machine_cells(machine)) for index, machine in enumerate(machines)]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(row[column])) for row in [header] + list(rows)) for column in range(len(header))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header] + list(rows)]


def tree_lines(described: Mapping[str, Any]) -> List[str]:
    """The text ``clusterctl describe cluster`` would print, one line each (no trailing spaces)."""
    if not described["exists"]:
        return ["cluster %s owns nothing in %s: it does not exist (create it with create_cluster.yml)" % (described["name"], described["region"])]
    rows = _rows(described)
    cell_rows = [details for _name, _ready, details in rows if isinstance(details, list)]
    cell_widths = [max(len(cells[column]) for cells in cell_rows) for column in range(len(cell_rows[0]))] if cell_rows else []

    def details_text(details: Any) -> str:
        if isinstance(details, list):
            return "  ".join(cell.ljust(width) for cell, width in zip(details, cell_widths)).rstrip()
        return str(details)

    lines = _table(["NAME", "READY", "DETAILS"], [(name, ready, details_text(details)) for name, ready, details in rows])
    if not described["nodes_known"]:
        lines.append("Node conditions unknown: %s" % (described["nodes_message"] or "the cluster's API was not read"))
    if described["outdated_machines"]:
        lines.append("Outdated machines (launched from settings the spec no longer has; rollout_machines.yml replaces them): %s"
                     % ", ".join(described["outdated_machines"]))
    if described["nodes_without_machine"]:
        lines.append("Nodes without a machine: %s" % ", ".join(described["nodes_without_machine"]))
    lines += ["Ownership conflict: %s" % line for line in described["ownership_conflicts"]]
    return lines


# --- the region's table -----------------------------------------------------------------------

def _running_of(cluster: Mapping[str, Any], control_plane: bool) -> Dict[str, int]:
    sets = cluster.get("machine_sets") or {}
    chosen = [counts for name, counts in sets.items() if (name == CONTROL_PLANE) == control_plane and name != BASTION]
    return {"running": sum(c.get("running", 0) for c in chosen), "replicas": sum(c.get("replicas", 0) for c in chosen)}


def describe_clusters(clusters: Any, region: Optional[str] = None) -> Dict[str, Any]:
    """cluster_info's clusters (no name given) as a table like ``kubectl get cluster -A``, with versions and machine counts."""
    if not isinstance(clusters, Sequence) or isinstance(clusters, (str, bytes)):
        raise AnsibleFilterError("describe_clusters expects the clusters list kubecluster.aws.cluster_info returns, not %r"
                                 % (type(clusters).__name__,))
    for cluster in clusters:
        _check_cluster(cluster)
    rows = [{
        "name": cluster["name"],
        "region": cluster.get("region"),
        "phase": cluster["phase"],
        "kubernetes_version": cluster.get("kubernetes_version"),
        "control_plane": _running_of(cluster, True),
        "workers": _running_of(cluster, False),
        "control_plane_endpoint": _endpoint(cluster),
        "failure_message": cluster.get("failure_message"),
    } for cluster in clusters]
    if not rows:
        return {"clusters": [], "lines": ["no clusters in %s: nothing there carries a cluster's ownership tag" % (region or "the default region")]}
    header = ["NAME", "REGION", "PHASE", "VERSION", "CONTROL PLANE", "WORKERS", "ENDPOINT"]
    table = [[row["name"], row["region"] or "-", row["phase"], row["kubernetes_version"] or "-",
              "%(running)d/%(replicas)d running" % row["control_plane"], "%(running)d/%(replicas)d running" % row["workers"],
              row["control_plane_endpoint"] or "-"] for row in rows]
    lines = _table(header, table)
    lines += ["%s: %s" % (row["name"], row["failure_message"]) for row in rows if row["failure_message"]]
    if any(row["phase"] == PROVISIONED for row in rows):
        lines.append("Provisioned: the infrastructure and the control-plane endpoint exist, not that the cluster works; "
                     "one cluster's conditions (its API, its Nodes) show with -e @<spec file>")
    lines += ["%s: ownership conflict: %s" % (cluster["name"], line) for cluster in clusters for line in cluster.get("ownership_conflicts") or []]
    return {"clusters": rows, "lines": lines}


class FilterModule:
    """clusterctl describe for kubecluster.aws."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "describe_cluster": describe_cluster,
            "describe_clusters": describe_clusters,
        }
