"""Ownership and deletes, end to end with ansible-playbook against a moto server: a spec cannot
claim another cluster's resources, a delete stops before its first write on what is not the
cluster's, says when there is nothing to delete, and needs only the cluster's name and region."""

import copy

import pytest

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import example_spec, tags

pytestmark = pytest.mark.e2e

STAGING_OWNER = "sigs.k8s.io/cluster-api-provider-aws/cluster/staging"
MISSING_AMI = "ami-0123456789abcdef0"


def running(account, cluster=NAME):
    return sorted(tags(i)["Name"] for i in account.owned(cluster)["instances"] if i["State"]["Name"] in ("pending", "running"))


def test_a_spec_cannot_claim_another_clusters_resources(account, run_playbook, moto_server):
    image_id = account.prepare()
    forged = example_spec(image_id, additional_tags={STAGING_OWNER: "owned", "kubernetes.io/cluster/staging": "owned"})
    moto_server.start_recording()
    refused = run_playbook("create_cluster", forged, tags=["infra"])
    moto_server.stop_recording()
    assert refused.rc != 0
    message = refused.explain()
    assert "cluster.additional_tags: 'kubernetes.io/cluster/staging', '%s' are set by kubecluster.aws itself" % STAGING_OWNER in message
    assert moto_server.recorded_writes() == []
    assert account.owned(NAME)["vpcs"] == []


def test_deletes_stop_on_what_is_not_the_clusters_and_need_only_name_and_region(account, run_playbook):
    image_id = account.prepare()
    spec = example_spec(image_id, network={"nat_gateways": "single"},
                        machine_deployments=[{"name": "md-0", "replicas": 1, "ami_id": MISSING_AMI},
                                             {"name": "md-1", "replicas": 1}])

    # A machine set that fails stops the sets after it: md-1 launches nothing.
    failed = run_playbook("create_cluster", spec, tags=["infra"])
    assert failed.rc != 0 and MISSING_AMI in failed.explain()
    assert not [n for n in running(account) if "-md-" in n]
    spec["cluster"]["machine_deployments"][0]["ami_id"] = image_id
    created = run_playbook("create_cluster", spec, tags=["infra"])
    assert created.rc == 0, created.explain()
    machines = running(account)
    assert len(machines) == 4

    # Someone else's instance in a private subnet: the delete stops before its first write.
    private = next(s["SubnetId"] for s in account.owned(NAME)["subnets"] if tags(s)["Name"].startswith(NAME + "-subnet-private-"))
    stranger = account.ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, SubnetId=private)["Instances"][0]["InstanceId"]
    refused = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True})
    assert refused.rc != 0
    assert "instance %s (no Name tag) in %s, not tagged as the cluster's" % (stranger, private) in refused.explain()
    assert "nothing was deleted" in refused.explain()
    assert running(account) == machines
    account.ec2.terminate_instances(InstanceIds=[stranger])

    # Resources of this cluster tagged as staging's too (as a forged spec made them before): neither delete touches them.
    worker = next(i for i in account.owned(NAME)["instances"] if tags(i)["Name"].startswith(NAME + "-md-0-"))
    account.ec2.create_tags(Resources=[worker["InstanceId"], private], Tags=[{"Key": STAGING_OWNER, "Value": "owned"}])
    staging = {"cluster": {"name": "staging", "region": REGION}}
    for target in (staging, spec):
        refused = run_playbook("delete_cluster", target, extra_vars={"confirm_delete": True})
        assert refused.rc != 0
        assert "instance %s (%s) is tagged as owned by cluster" % (worker["InstanceId"], tags(worker)["Name"]) in refused.explain()
        assert "subnet %s is tagged as owned by cluster" % private in refused.explain()
        assert running(account) == machines
    status = run_playbook("cluster_status", {"cluster": {"name": "staging", "region": REGION}})
    assert status.rc == 0, status.explain()
    conflicts = status.result("Read what the clusters own")["cluster"]["ownership_conflicts"]
    assert any(line.startswith("instance %s is tagged as owned by cluster staging and by %s" % (worker["InstanceId"], NAME))
               for line in conflicts), conflicts
    account.ec2.delete_tags(Resources=[worker["InstanceId"], private], Tags=[{"Key": STAGING_OWNER}])

    # Nothing owned: said plainly, and not a failure.
    ghost = run_playbook("delete_cluster", staging, extra_vars={"confirm_delete": True})
    assert ghost.rc == 0, ghost.explain()
    assert ghost.result("Find what deleting the cluster removes")["warnings"] == [
        "cluster staging has nothing in region %s: nothing to delete" % REGION]
    assert running(account) == machines

    # A spec that no longer validates (an even control plane, a key from a newer version) is still deleted.
    invalid = copy.deepcopy(spec)
    invalid["cluster"]["control_plane"] = {"replicas": 2}
    invalid["cluster"]["from_a_newer_version"] = {"enabled": True}
    assert run_playbook("create_cluster", invalid, tags=["infra"]).rc != 0
    deleted = run_playbook("delete_cluster", invalid, extra_vars={"confirm_delete": True})
    assert deleted.rc == 0, deleted.explain()
    left = dict((kind, items) for kind, items in account.owned(NAME).items() if items)
    assert left == {}
    assert account.ec2.describe_addresses()["Addresses"] == []
