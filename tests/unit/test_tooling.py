"""The test tooling itself: tests/helpers/moto_server.MotoServer, which the e2e tests and the bench rely on, and the
in-process recorder and Context of conftest and helpers.aws, which the unit tests rely on."""

import base64
import json
import os
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError

from helpers.aws import REGION, context
from helpers.moto_server import ACCOUNT_ID, MotoServer, is_write, parse_recorded_request


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture
def clients(moto):
    moto.reset()
    env = moto.env()
    session = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                    aws_session_token=env["AWS_SESSION_TOKEN"], region_name=env["AWS_DEFAULT_REGION"])
    return lambda service: session.client(service, endpoint_url=moto.url)


def test_server_answers_on_loopback_with_an_env_that_names_no_real_account(moto):
    env = moto.env(base={"AWS_PROFILE": "production", "AWS_REGION": "us-east-1", "PATH": "/usr/bin"})

    assert moto.url.startswith("http://127.0.0.1:")
    assert env["AWS_ENDPOINT_URL"] == moto.url
    assert env["AWS_DEFAULT_REGION"] == "ap-northeast-2"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert "AWS_PROFILE" not in env and "AWS_REGION" not in env
    assert env["PATH"] == "/usr/bin"
    with urllib.request.urlopen(moto.url + "/moto-api/data.json", timeout=10) as response:
        assert response.status == 200


def test_recording_counts_reads_and_writes_per_service(moto, clients):
    ec2, elbv2, elb, iam, sts = (clients(name) for name in ("ec2", "elbv2", "elb", "iam", "sts"))
    ec2.describe_vpcs()  # before recording: not counted
    moto.start_recording()

    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.describe_vpcs(VpcIds=[vpc_id])
    with pytest.raises(ClientError, match="DryRunOperation"):
        ec2.create_internet_gateway(DryRun=True)
    elbv2.describe_load_balancers()
    elb.describe_load_balancers()
    iam.create_role(RoleName="tooling-test", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iam.list_roles()
    assert sts.get_caller_identity()["Account"] == ACCOUNT_ID
    moto.stop_recording()
    ec2.create_vpc(CidrBlock="10.1.0.0/16")  # after recording: not counted

    calls = [(call["service"], call["action"], call["is_write"]) for call in moto.recorded_calls()]
    assert calls == [
        ("ec2", "CreateVpc", True),
        ("ec2", "DescribeVpcs", False),
        ("ec2", "CreateInternetGateway", False),
        ("elbv2", "DescribeLoadBalancers", False),
        ("elb", "DescribeLoadBalancers", False),
        ("iam", "CreateRole", True),
        ("iam", "ListRoles", False),
        ("sts", "GetCallerIdentity", False),
    ]
    assert [call["action"] for call in moto.recorded_writes()] == ["CreateVpc", "CreateRole"]


def test_start_recording_starts_from_empty(moto, clients):
    ec2 = clients("ec2")
    moto.start_recording()
    ec2.create_vpc(CidrBlock="10.0.0.0/16")
    moto.start_recording()
    ec2.describe_vpcs()
    moto.stop_recording()

    assert [call["action"] for call in moto.recorded_calls()] == ["DescribeVpcs"]


def test_reset_forgets_resources(moto, clients):
    ec2 = clients("ec2")
    ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "t", "Value": "1"}]}])
    tagged = [{"Name": "tag:t", "Values": ["1"]}]
    assert len(ec2.describe_vpcs(Filters=tagged)["Vpcs"]) == 1

    moto.reset()

    assert ec2.describe_vpcs(Filters=tagged)["Vpcs"] == []


def test_stop_ends_the_process_and_removes_its_files():
    server = MotoServer().start()
    process, workdir = server.process, os.path.dirname(server.recording_path)

    server.stop()

    assert process.poll() is not None
    assert not os.path.exists(workdir)


def _entry(body="", headers=None, url="http://127.0.0.1:5000/", method="POST", encoded=False):
    if encoded:
        body = base64.b64encode(body.encode()).decode()
    return {"url": url, "method": method, "headers": headers or {}, "body": body, "body_encoded": encoded}


def _signed(service, **headers):
    return dict(headers, Authorization="AWS4-HMAC-SHA256 Credential=testing/20250101/ap-northeast-2/%s/aws4_request, Signature=x" % service)


@pytest.mark.parametrize("entry, expected", [
    (_entry("Action=DeleteStack&Version=2010-05-15&StackName=x", _signed("cloudformation", **{"Content-Type": "application/x-www-form-urlencoded"}),
            encoded=True),
     {"service": "cloudformation", "action": "DeleteStack", "is_write": True}),
    (_entry("Action=ValidateTemplate&Version=2010-05-15", _signed("cloudformation", **{"Content-Type": "application/x-www-form-urlencoded"})),
     {"service": "cloudformation", "action": "ValidateTemplate", "is_write": False}),
    (_entry("Action=RegisterTargets&Version=2015-12-01", _signed("elasticloadbalancing", **{"Content-Type": "application/x-www-form-urlencoded"})),
     {"service": "elbv2", "action": "RegisterTargets", "is_write": True}),
    (_entry("", _signed("elasticloadbalancing"), url="http://127.0.0.1:5000/?Action=DescribeTags&Version=2012-06-01", method="GET"),
     {"service": "elb", "action": "DescribeTags", "is_write": False}),
    (_entry("{}", _signed("ssm", **{"X-Amz-Target": "AmazonSSM.PutParameter"})),
     {"service": "ssm", "action": "PutParameter", "is_write": True}),
    (_entry("{}", _signed("servicequotas", **{"X-Amz-Target": "ServiceQuotasV20190624.GetServiceQuota"})),
     {"service": "service-quotas", "action": "GetServiceQuota", "is_write": False}),
    (_entry("", _signed("monitoring"), url="http://127.0.0.1:5000/service/GraniteServiceVersion20100801/operation/PutMetricData"),
     {"service": "cloudwatch", "action": "PutMetricData", "is_write": True}),
    (_entry("", _signed("s3"), url="http://127.0.0.1:5000/bucket/key", method="PUT"),
     {"service": "s3", "action": "PUT /bucket/key", "is_write": True}),
    (_entry("", _signed("s3"), url="http://127.0.0.1:5000/bucket/key", method="GET"),
     {"service": "s3", "action": "GET /bucket/key", "is_write": False}),
])
def test_parse_recorded_request(entry, expected):
    assert parse_recorded_request(entry) == expected


def test_moto_api_requests_are_not_aws_calls():
    assert parse_recorded_request(_entry(url="http://127.0.0.1:5000/moto-api/reset")) is None


@pytest.mark.parametrize("action, params, writes", [
    ("TerminateInstances", {}, True),
    ("AuthorizeSecurityGroupIngress", {}, True),
    ("RunInstances", {"DryRun": "true"}, False),
    ("DescribeInstances", {}, False),
    ("GetCallerIdentity", {}, False),
    ("ListStackResources", {}, False),
    ("AssumeRole", {}, False),
])
def test_is_write(action, params, writes):
    assert is_write(action, params) is writes


# --- the in-process recorder (conftest's aws_calls) and helpers.aws --------------------------------------


def test_in_process_recorder_classifies_as_the_moto_server_recorder_does(ec2, aws_calls):
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.describe_vpcs(VpcIds=[vpc_id])
    with pytest.raises(ClientError, match="DryRunOperation"):
        ec2.create_internet_gateway(DryRun=True)
    boto3.client("sts", region_name=REGION).get_caller_identity()

    assert list(aws_calls) == [("ec2", "CreateVpc"), ("ec2", "DescribeVpcs"), ("ec2", "CreateInternetGateway"),
                               ("sts", "GetCallerIdentity")]
    assert aws_calls.writes() == [("ec2", "CreateVpc")] and aws_calls.written() == ["CreateVpc"]
    assert aws_calls.reads() == [("ec2", "DescribeVpcs"), ("ec2", "CreateInternetGateway"), ("sts", "GetCallerIdentity")]
    # the server's is_write, given the DryRun parameter as the server sees it, agrees
    dry_run = {"CreateInternetGateway": {"DryRun": "true"}}
    assert [call for call in aws_calls if is_write(call[1], dry_run.get(call[1]))] == aws_calls.writes()
    assert aws_calls.params_of("DescribeVpcs") == [{"VpcIds": [vpc_id]}]


def test_clearing_the_recorder_forgets_the_parameters_too(ec2, aws_calls):
    ec2.create_vpc(CidrBlock="10.0.0.0/16")
    del aws_calls[:]
    ec2.describe_vpcs()
    assert aws_calls.operations() == ["DescribeVpcs"] and aws_calls.params_of("DescribeVpcs") == [{}]
    aws_calls.clear()
    with pytest.raises(ClientError, match="DryRunOperation"):
        ec2.create_internet_gateway(DryRun=True)
    assert aws_calls.writes() == []


def test_context_uses_the_tests_clients_and_makes_the_others(ec2):
    ctx = context(ec2, wait=False)
    assert ctx.ec2 is ec2 and ctx.region == REGION and ctx.wait is False
    assert ctx.elbv2.meta.service_model.service_name == "elbv2" and ctx.elbv2.meta.region_name == REGION
