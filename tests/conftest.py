"""Make this checkout importable as the collection kubecluster.aws, and share the AWS fixtures.

Collections import as ``ansible_collections.<namespace>.<name>``; a checkout is not laid
out that way, so the session links it into a temporary ``ansible_collections`` tree and
puts that first on sys.path. ``ansible_collections`` is a namespace package, so the
amazon.aws and kubernetes.core collections installed with Ansible stay importable.
"""

import os
import sys

import boto3
import botocore.session
import pytest
from botocore.client import BaseClient
from moto import mock_aws

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO, ".ansible", "collections")


def link_collection():
    """Link the checkout as <repo>/.ansible/collections/ansible_collections/kubecluster/aws."""
    namespace_dir = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "kubecluster")
    link = os.path.join(namespace_dir, "aws")
    os.makedirs(namespace_dir, exist_ok=True)
    if not os.path.islink(link):
        os.symlink(os.path.relpath(REPO, namespace_dir), link)
    return COLLECTIONS_ROOT


link_collection()
for path in (COLLECTIONS_ROOT, os.path.join(REPO, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)


_shared_loaders = {}


def _shared_loader(data_path=None):
    """One botocore data loader per data path for the whole test run.

    Every in-process module run makes new boto3 sessions, and each session's loader would
    parse the large service models (EC2's is megabytes of JSON) again; the models never
    change during a run, so tests share one loader and its cache.
    """
    if data_path not in _shared_loaders:
        _shared_loaders[data_path] = botocore.loaders.create_loader(data_path)
    return _shared_loaders[data_path]


botocore.session.create_loader = _shared_loader

from helpers.aws import REGION, AwsCalls  # noqa: E402  (tests/ is put on sys.path above)


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and a default region, so nothing can reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_URL", "KUBERNETES_VERSION",
                 "AWS_SSH_KEY_NAME", "AWS_CONTROL_PLANE_MACHINE_TYPE", "AWS_NODE_MACHINE_TYPE",
                 "CONTROL_PLANE_MACHINE_COUNT", "WORKER_MACHINE_COUNT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws_calls(monkeypatch):
    """Record every botocore API call (moto still answers them); ``aws_calls.writes()`` must be empty on a rerun.

    The test's own calls count too: clear the recorder (``aws_calls.clear()``) before the part to watch.
    """
    calls = AwsCalls()
    make_api_call = BaseClient._make_api_call

    def recording(client, operation_name, api_params):
        calls.record(client.meta.service_model.service_name, operation_name, api_params)
        return make_api_call(client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


@pytest.fixture
def moto_aws(aws_env):
    """moto's AWS in process, for the test: an empty account in every region, forgotten afterwards."""
    with mock_aws():
        yield


@pytest.fixture
def ec2(moto_aws):
    """A boto3 EC2 client on moto in process, in REGION."""
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def ssm(moto_aws):
    """A boto3 SSM client on moto in process, in REGION (the cluster lease's parameters)."""
    return boto3.client("ssm", region_name=REGION)
