"""Gaps in moto that this project's tests hit, filled for tests only (never in plugins/).

moto's CloudFormation cannot delete an AWS::IAM::ManagedPolicy (the model has no delete),
so deleting the IAM stack fails with DeleteConflict where AWS succeeds.
"""

from moto.iam.models import ManagedPolicy


def _delete_managed_policy(policy, account_id, region_name):  # pylint: disable=unused-argument
    backend = policy.backend
    for role in backend.roles.values():
        if policy.arn in role.managed_policies:
            policy.detach_from(role)
    backend.delete_policy(policy.arn)


def apply(monkeypatch=None):
    """Fill the gaps: through a pytest monkeypatch (undone after the test) or for the process."""
    if monkeypatch is not None:
        monkeypatch.setattr(ManagedPolicy, "delete", _delete_managed_policy, raising=False)
    else:
        ManagedPolicy.delete = _delete_managed_policy
