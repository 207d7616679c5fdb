"""etcdctl endpoint health in the crictl stand-in's etcd container, as the node_removal and node_health roles
run it: `--cluster -w json` lists every member's client URL with its health, and fails when one is unhealthy."""

import json

from tests.unit.stand_ins.test_kubeadm_stand_in import ETCDCTL, etcd_id, init_cluster, join_config, join_parts  # pylint: disable=import-error


def test_endpoint_health_of_the_cluster_as_json_and_a_member_that_never_started(make_host, endpoint, api):
    first, second = make_host("cp-0"), make_host("cp-1")
    token, ca_hash, key = join_parts(init_cluster(first, endpoint).stdout)
    assert second.run("kubeadm", "join", "--config", join_config(second, endpoint, token, ca_hash, "cp-1", key)).returncode == 0
    container = etcd_id(first)

    healthy = first.run("crictl", "exec", container, *ETCDCTL, "endpoint", "health", "--cluster", "-w", "json")
    local = first.run("crictl", "exec", container, *ETCDCTL, "endpoint", "health")
    api.store.etcd_members[1]["name"] = ""  # added (member add) but never started
    unhealthy = first.run("crictl", "exec", container, *ETCDCTL, "endpoint", "health", "--cluster", "-w", "json")

    assert healthy.returncode == 0, healthy.stderr
    assert sorted((entry["endpoint"], entry["health"]) for entry in json.loads(healthy.stdout)) == sorted(
        [("https://%s:2379" % first.node_ip, True), ("https://%s:2379" % second.node_ip, True)])
    assert local.returncode == 0 and "https://127.0.0.1:2379 is healthy" in local.stdout
    assert unhealthy.returncode == 1 and "unhealthy cluster" in unhealthy.stderr
    assert [entry["health"] for entry in json.loads(unhealthy.stdout) if entry["endpoint"].startswith("https://%s:" % second.node_ip)] == [False]
