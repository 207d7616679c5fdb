"""AWX-ready input (issue 10, part 4), run for real with ansible-playbook against a moto server:

- the spec given as the YAML or JSON text of a survey's textarea, to every playbook that reads it;
- docs/iam.md's module_defaults example, run as written: ``region`` and ``debug_botocore_endpoint_logs`` given to
  every module of group/kubecluster.aws.cluster, and the actions it lists are the policy's.
"""

import fnmatch
import json
import os
import re

import pytest
import yaml

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import REPO, example_spec

pytestmark = pytest.mark.e2e

DESCRIBE = "Describe the cluster as clusterctl describe cluster does"
TABLE = "Describe every cluster of the region as a table"
# IAM's action prefix of a boto3 client name, where they differ.
IAM_PREFIXES = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "service-quotas": "servicequotas"}


def as_text(spec, form):
    return json.dumps(spec["cluster"], indent=2) if form == "json" else yaml.safe_dump(spec["cluster"])


def iam_doc():
    with open(os.path.join(REPO, "docs", "iam.md"), encoding="utf-8") as handle:
        return handle.read()


def test_every_playbook_takes_the_spec_as_a_surveys_text(account, run_playbook, tmp_path):
    image_id = account.prepare()
    spec = example_spec(image_id, kubeconfig_path=str(tmp_path / "kube" / ("%s.kubeconfig" % NAME)))
    text = as_text(spec, "yaml")

    created = run_playbook("create_cluster", extra_vars={"cluster": text}, tags=["infra"])
    assert created.rc == 0, created.explain()
    assert account.owned(NAME)["vpcs"], "the cluster was made from the text"

    again = run_playbook("create_cluster", extra_vars={"cluster": as_text(spec, "json")}, tags=["infra"])
    assert again.rc == 0, again.explain()
    assert again.changed == 0, "the JSON text is the same spec: nothing to change"

    for form in ("yaml", "json"):
        status = run_playbook("cluster_status", extra_vars={"cluster": as_text(spec, form)})
        assert status.rc == 0, status.explain()
        assert not status.results(TABLE) or status.result(TABLE).get("skipped"), "one cluster, not every cluster of the region"
        described = status.result(DESCRIBE)["ansible_facts"]["kubecluster_describe"]
        assert described["name"] == NAME and described["phase"] != "NotFound"
        # The spec's kubeconfig_path was read from the text: the reason names it.
        assert str(tmp_path / "kube") in json.dumps(described), described

    scaled = run_playbook("scale_cluster", extra_vars={"cluster": text, "machine_deployment": "md-0", "replicas": 3},
                          tags=["infra"], check=True)
    assert scaled.rc == 0, scaled.explain()

    deleted = run_playbook("delete_cluster", extra_vars={"cluster": text, "confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
    assert not any(account.owned(NAME).values())


@pytest.mark.parametrize("playbook", ["cluster_status", "create_cluster", "delete_cluster"])
def test_a_text_that_is_no_spec_fails_naming_cluster_before_any_write(account, moto_server, run_playbook, playbook):
    moto_server.start_recording()
    run = run_playbook(playbook, extra_vars={"cluster": "name: [capi-example"})
    moto_server.stop_recording()

    assert run.rc != 0
    assert "cluster: the text is neither YAML nor JSON" in run.stdout + run.stderr, run.explain()
    assert moto_server.recorded_writes() == []


def policy_allows(policy, service, action):
    """Whether the policy allows a call recorded by the moto server (service as boto3 names its client)."""
    prefix = IAM_PREFIXES.get(service, service)
    allowed = [action for statement in policy["Statement"] for action in
               ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])]
    return any(fnmatch.fnmatchcase("%s:%s" % (prefix, action), pattern) for pattern in allowed)


def test_the_iam_docs_module_defaults_example_runs_and_stays_within_the_policy(account, moto_server, run_playbook, tmp_path):
    doc = iam_doc()
    play = re.search(r"## Checking it.*?```yaml\n(.*?)```", doc, re.S).group(1)
    assert "group/kubecluster.aws.cluster:" in play and "region: %s" % REGION in play
    playbook = tmp_path / "iam_check.yml"
    playbook.write_text(play)
    policy = json.loads(re.search(r"## The runner policy.*?```json\n(.*?)```", doc, re.S).group(1))
    image_id = account.prepare()
    spec = example_spec(image_id)

    moto_server.start_recording()
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    # No AWS_DEFAULT_REGION: the region reaches every module through module_defaults alone.
    run = run_playbook(str(playbook), extra_vars={"cluster": as_text(spec, "yaml")},
                       env={"ANSIBLE_CALLBACKS_ENABLED": "amazon.aws.aws_resource_actions", "AWS_DEFAULT_REGION": None, "AWS_REGION": None})
    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    moto_server.stop_recording()

    assert run.rc == 0, run.explain()
    tasks = [task for play in run.report["plays"] for task in play["tasks"]]
    modules = sorted({task["task"]["name"] for task in tasks})
    assert len(tasks) == 9 == len(modules), modules
    for task in tasks:
        result = task["hosts"]["localhost"]
        # debug_botocore_endpoint_logs reached the module (moto's http:// endpoint leaves the list itself empty).
        assert isinstance(result.get("resource_actions"), list), (task["task"]["name"], sorted(result))
    assert deleted.rc == 0, deleted.explain()
    calls = {(call["service"], call["action"]) for call in moto_server.recorded_calls()}
    assert ("ec2", "DescribeVpcs") in calls and ("cloudformation", "DescribeStacks") in calls
    outside = sorted("%s:%s" % call for call in calls if not policy_allows(policy, *call))
    assert outside == [], "calls of create, the example and delete that the docs/iam.md policy does not allow: %s" % outside
