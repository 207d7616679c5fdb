"""The API emulator's eviction subresource respects PodDisruptionBudgets as the apiserver does: an eviction that
would leave fewer selected pods than minAvailable (or disrupt more than maxUnavailable) is refused with 429 and
the apiserver's message, which kubernetes.core.k8s_drain reports; without a blocking budget the pod goes."""

import pytest

import stand_in_lib

PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def client(api):
    return stand_in_lib.ApiClient(api.url, api.store.ca_pem, api.admin_token)


def pod(name, app="web"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}


def evict(api, name):
    return client(api).request("POST", "%s/%s/eviction" % (PODS, name), {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}})


def budget(name, **spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": "default"},
            "spec": dict(spec, selector={"matchLabels": {"app": "web"}})}


def names(api):
    return sorted(item["metadata"]["name"] for item in client(api).request("GET", PODS)["items"])


def test_min_available_blocks_the_last_pod_and_lets_a_spare_go(api):
    for name in ("web-1", "web-2"):
        client(api).request("POST", PODS, pod(name))
    client(api).request("POST", PDBS, budget("web", minAvailable=1))
    evict(api, "web-1")  # two selected, one may go
    with pytest.raises(stand_in_lib.ApiError) as refused:
        evict(api, "web-2")
    assert refused.value.status == 429 and str(refused.value) == MESSAGE
    assert names(api) == ["web-2"]
    # a pod starts Pending, as the apiserver makes it (kubernetes.core.k8s_drain reads status.phase)
    assert client(api).request("GET", PODS + "/web-2")["status"]["phase"] == "Pending"
    client(api).request("DELETE", PDBS + "/web")
    evict(api, "web-2")
    assert names(api) == []


def test_max_unavailable_zero_and_percentages_and_unselected_pods(api):
    client(api).request("POST", PODS, pod("web-1"))
    client(api).request("POST", PODS, pod("other", app="other"))
    client(api).request("POST", PDBS, budget("web", maxUnavailable=0))
    with pytest.raises(stand_in_lib.ApiError) as refused:
        evict(api, "web-1")
    assert refused.value.status == 429
    evict(api, "other")  # no budget selects it
    client(api).request("DELETE", PDBS + "/web")
    client(api).request("POST", PDBS, budget("web", minAvailable="50%"))
    with pytest.raises(stand_in_lib.ApiError):
        evict(api, "web-1")  # 50 % of one pod, rounded up, is the pod itself
    assert names(api) == ["web-1"]
    assert [request["status"] for request in api.requests() if request["path"].endswith("/eviction")] == [429, 201, 429]
