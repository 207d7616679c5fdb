"""Issue 10 part 1 against moto in process: what only the account can tell about a spec (AMI ids, instance types
offered in the cluster's zones, a region that does not exist) is checked by cluster_spec and cluster_infra before
any write, in check mode too, with one read for all the sets; a run that launches nothing reads none of it."""

from unittest import mock

import boto3
import botocore
import botocore.parsers
import pytest
import yaml

from ansible_collections.kubecluster.aws.plugins.module_utils import runner

from helpers import moto_fixes
from helpers.aws import AMI, CLUSTER, KUBERNETES_VERSION, REGION
from helpers.aws import KEY_NAME as KEY
from helpers.module_runner import run_module

PROFILES = ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io")
SPEC = {
    "name": CLUSTER,
    "region": REGION,
    "kubernetes_version": KUBERNETES_VERSION,
    "ssh_key_name": KEY,
    "network": {"availability_zones": 3, "nat_gateways": "single", "bastion": {"enabled": True, "ami_id": AMI}},
    "control_plane": {"replicas": 1, "ami_id": AMI},
    "machine_deployments": [{"name": "md-0", "replicas": 1, "ami_id": AMI}],
}
MISSING_AMI = "ami-0123456789abcdef0"


@pytest.fixture
def account(ec2, monkeypatch):
    moto_fixes.apply(monkeypatch)
    iam = boto3.client("iam", region_name=REGION)
    for profile in PROFILES:
        iam.create_instance_profile(InstanceProfileName=profile)
    ec2.create_key_pair(KeyName=KEY)
    return ec2


def spec_with(control_plane=None, bastion=None, deployment=None):
    spec = dict(SPEC, control_plane=dict(SPEC["control_plane"], **(control_plane or {})),
                network=dict(SPEC["network"], bastion=dict(SPEC["network"]["bastion"], **(bastion or {}))),
                machine_deployments=[dict(SPEC["machine_deployments"][0], **(deployment or {}))])
    return spec


def infra(spec, check_mode=False):
    return run_module("cluster_infra", {"cluster": spec, "wait_timeout": 60, "wait_delay": 1}, check_mode)


BAD = [
    (spec_with(control_plane={"ami_id": MISSING_AMI}),
     ["cluster.control_plane.ami_id: %s does not exist in %s" % (MISSING_AMI, REGION)]),
    (spec_with(bastion={"ami_id": MISSING_AMI}, deployment={"ami_id": "ami-0fedcba9876543210"}),
     ["cluster.network.bastion.ami_id: %s does not exist" % MISSING_AMI,
      "cluster.machine_deployments[0].ami_id: ami-0fedcba9876543210 does not exist"]),
    (spec_with(control_plane={"instance_type": "t3.lage"}),
     ["cluster.control_plane.instance_type: t3.lage is not an instance type offered in %s" % REGION]),
    # moto, as AWS, offers p4d.24xlarge in ap-northeast-2b and 2d only
    (spec_with(deployment={"instance_type": "p4d.24xlarge"}),
     ["cluster.machine_deployments[0].instance_type: p4d.24xlarge is not offered in ap-northeast-2a, ap-northeast-2c "
      "(only in ap-northeast-2b, ap-northeast-2d)"]),
]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("spec, messages", BAD)
def test_cluster_infra_refuses_a_bad_image_or_instance_type_before_any_write(account, aws_calls, spec, messages, check_mode):
    aws_calls.clear()
    result, failed = infra(spec, check_mode)
    assert failed, result
    for message in messages:
        assert message in result["msg"], result["msg"]
    assert aws_calls.writes() == []
    assert account.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["sigs.k8s.io/cluster-api-provider-aws/cluster/" + CLUSTER]}])["Vpcs"] == []
    # one read of each kind for all the sets
    assert aws_calls.operations().count("DescribeImages") == 1
    assert aws_calls.operations().count("DescribeInstanceTypeOfferings") == 1


@pytest.mark.parametrize("spec, messages", BAD)
def test_cluster_spec_refuses_the_same(account, aws_calls, spec, messages):
    result, failed = run_module("cluster_spec", {"cluster": spec})
    assert failed, result
    for message in messages:
        assert message in result["msg"], result["msg"]
    assert aws_calls.writes() == []


def test_a_good_spec_passes_and_a_run_that_launches_nothing_reads_neither(account, aws_calls):
    result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert not failed, result.get("msg")
    assert aws_calls.operations().count("DescribeImages") == 1
    created, failed = infra(SPEC)
    assert not failed, created.get("msg")
    aws_calls.clear()
    again, failed = infra(SPEC)
    assert not failed and again["launches"] == []
    assert "DescribeImages" not in aws_calls.operations() and "DescribeInstanceTypeOfferings" not in aws_calls.operations()


LOOKUP = dict(SPEC, control_plane={"replicas": 1}, machine_deployments=[{"name": "md-0", "replicas": 0}],
              network=dict(SPEC["network"], bastion={"enabled": False}))


def test_sets_with_the_image_lookup_read_no_image_by_id(account, aws_calls):
    run_module("cluster_spec", {"cluster": LOOKUP})
    assert aws_calls.operations().count("DescribeInstanceTypeOfferings") == 1
    # the one DescribeImages is the control plane's lookup (by owner and name), none by id
    assert aws_calls.operations().count("DescribeImages") == 1


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_image_lookup_that_finds_nothing_fails_before_any_write(account, aws_calls, check_mode):
    """moto holds no image named as CAPA names its AMIs: the launch's own lookup, made before the network."""
    result, failed = infra(LOOKUP, check_mode)
    assert failed, result
    assert "failed to find AMI for machine set control-plane" in result["msg"], result["msg"]
    assert "set cluster.control_plane.ami_id to an AMI built for Kubernetes" in result["msg"], result["msg"]
    assert aws_calls.writes() == []
    assert account.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["sigs.k8s.io/cluster-api-provider-aws/cluster/" + CLUSTER]}])["Vpcs"] == []


def test_an_image_lookup_that_finds_one_is_read_once_for_the_check_and_the_launch(account, aws_calls):
    source = account.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = account.create_image(InstanceId=source, Name="capa-ami-ubuntu-24.04-%s-00" % KUBERNETES_VERSION)["ImageId"]
    account.terminate_instances(InstanceIds=[source])
    owner = account.describe_images(ImageIds=[image])["Images"][0]["OwnerId"]
    spec = dict(LOOKUP, image_lookup={"owner": owner})
    aws_calls.clear()
    result, failed = infra(spec)
    assert not failed, result.get("msg")
    assert aws_calls.operations().count("DescribeImages") == 1


# --- a region that does not exist -------------------------------------------------------------

def no_answer(operation="DescribeAvailabilityZones"):
    return botocore.exceptions.ClientError({"Error": {"Code": "500", "Message": "<!doctype html><title>500</title>"},
                                            "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)


@pytest.mark.parametrize("error", [
    no_answer(),
    botocore.exceptions.EndpointConnectionError(endpoint_url="https://ec2.us-east-9.amazonaws.com/"),
    botocore.parsers.ResponseParserError("Unable to parse response (syntax error: line 1, column 0), invalid XML received"),
])
def test_a_region_that_does_not_exist_is_said_so(aws_env, error):
    with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=error):
        result, failed = run_module("cluster_spec", {"cluster": dict(SPEC, region="us-east-9")})
    assert failed
    assert result["msg"].startswith("no such region us-east-9; regions are like us-east-1"), result["msg"]


def test_a_known_region_keeps_the_aws_error(aws_env):
    with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=no_answer()):
        result, failed = run_module("cluster_spec", {"cluster": SPEC})
    assert failed and "no such region" not in result["msg"]


def test_an_aws_error_with_a_code_in_an_unknown_region_is_kept():
    error = botocore.exceptions.ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DescribeVpcs")
    module = mock.Mock(params={"cluster": dict(SPEC, region="xx-new-1")})
    assert runner.unknown_region(module, error) is None


def test_a_region_that_does_not_exist_is_said_so_for_a_spec_given_as_text(aws_env):
    """A survey's textarea: the module parses the text first, so the region is the text's."""
    with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=no_answer()):
        result, failed = run_module("cluster_spec", {"cluster": yaml.safe_dump(dict(SPEC, region="us-east-9"))})
    assert failed
    assert result["msg"].startswith("no such region us-east-9"), result["msg"]


def test_a_region_that_does_not_exist_is_said_so_for_a_module_without_a_spec(aws_env, monkeypatch):
    """cluster_info listing a region's clusters: the region comes from the environment, as the SDKs take it."""
    monkeypatch.setenv("AWS_REGION", "us-east-9")
    with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=no_answer("DescribeVpcs")):
        result, failed = run_module("cluster_info", {})
    assert failed
    assert result["msg"].startswith("no such region us-east-9"), result["msg"]
