"""Make this checkout importable as the collection kubecluster.aws, and share AWS fixtures.

Collections import as ``ansible_collections.<namespace>.<name>``; a checkout is not laid
out that way, so the session links it into a temporary ``ansible_collections`` tree and
puts that first on sys.path. ``ansible_collections`` is a namespace package, so the
amazon.aws and kubernetes.core collections installed with Ansible stay importable.
"""

import os
import sys

import pytest

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


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and a default region, so nothing can reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-2")
    for name in ("AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_URL", "KUBERNETES_VERSION",
                 "AWS_SSH_KEY_NAME", "AWS_CONTROL_PLANE_MACHINE_TYPE", "AWS_NODE_MACHINE_TYPE",
                 "CONTROL_PLANE_MACHINE_COUNT", "WORKER_MACHINE_COUNT"):
        monkeypatch.delenv(name, raising=False)
