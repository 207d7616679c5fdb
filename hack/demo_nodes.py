# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""`kubectl get nodes` for `make demo`: the Nodes as the API behind a kubeconfig reports them.

The demo has no kubectl on the controller; the kubernetes client that kubernetes.core uses is
in the venv. Run where the kubeconfig's server name resolves (the local AWS's controller
container: `tests/localaws/localaws.py run -- python hack/demo_nodes.py KUBECONFIG`).
"""

import argparse
import sys

from kubernetes import client, config

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"


def ready(node):
    conditions = {condition.type: condition.status for condition in node.status.conditions or []}
    return conditions.get("Ready", "Unknown")


def row(node):
    labels = node.metadata.labels or {}
    taints = [taint.key for taint in node.spec.taints or []]
    return (node.metadata.name,
            "control-plane" if CONTROL_PLANE_LABEL in labels else "worker",
            ready(node),
            node.status.node_info.kubelet_version if node.status.node_info else "",
            node.spec.provider_id or ("(uninitialized)" if UNINITIALIZED_TAINT in taints else "-"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kubeconfig")
    args = parser.parse_args()
    api_client = config.new_client_from_config(config_file=args.kubeconfig)
    nodes = client.CoreV1Api(api_client).list_node().items
    rows = [("NAME", "ROLE", "READY", "VERSION", "PROVIDER-ID")] + sorted((row(node) for node in nodes), key=lambda r: (r[1] != "control-plane", r[0]))
    widths = [max(len(r[column]) for r in rows) for column in range(len(rows[0]))]
    print("Nodes as the API at %s reports them:" % api_client.configuration.host)
    for line in rows:
        print("  " + "  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())
    return 0 if nodes and all(r[2] == "True" for r in rows[1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
