"""Gaps in moto that this project's tests hit, filled for tests only (never in plugins/).

- moto's CloudFormation cannot delete an AWS::IAM::ManagedPolicy (the model has no delete),
  so deleting the IAM stack fails with DeleteConflict where AWS succeeds.
- moto's RunInstances ignores ClientToken: every call launches. EC2 answers a repeated token
  with the instances the first call made (whatever their state now), or with
  IdempotentParameterMismatch when the other parameters differ; machine_set's deterministic
  launches rely on that, so the tests need it.
- moto's AuthorizeSecurityGroupIngress fails (500, int(None)) for a rule of a protocol without ports (such as 4,
  IP-in-IP) given without FromPort/ToPort, as amazon.aws.ec2_security_group sends it (bench/stock); EC2 takes it.
- moto's DescribeTags names a NAT gateway's resource type "nat-gateway", EC2 "natgateway": a filter on
  resource-type natgateway (amazon.aws.ec2_vpc_nat_gateway's tag check, bench/stock) found no tags, so every
  run re-tagged.
"""

import json

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE
from moto.iam.models import ManagedPolicy

_real_run_instances = InstanceResponse.run_instances
_real_security_group_rule_init = SecurityGroupRule.__init__
_PORTED_PROTOCOLS = ("tcp", "6", "udp", "17", "icmp", "1", "icmpv6", "58")


def _security_group_rule_init(self, ec2_backend, ip_protocol, group_id, from_port, to_port, *args, **kwargs):
    portless = ip_protocol and str(ip_protocol).lower() not in _PORTED_PROTOCOLS + ("-1", "all") and from_port is None
    if not portless:
        return _real_security_group_rule_init(self, ec2_backend, ip_protocol, group_id, from_port, to_port, *args, **kwargs)
    # as for protocol -1: no ports; then the protocol given
    _real_security_group_rule_init(self, ec2_backend, "-1", group_id, None, None, *args, **kwargs)
    self.ip_protocol = str(ip_protocol)
    return None


def _delete_managed_policy(policy, account_id, region_name):  # pylint: disable=unused-argument
    backend = policy.backend
    for role in backend.roles.values():
        if policy.arn in role.managed_policies:
            policy.detach_from(role)
    backend.delete_policy(policy.arn)


def _run_instances_with_client_token(response):
    token = response._get_param("ClientToken")  # pylint: disable=protected-access
    if not token:
        return _real_run_instances(response)
    backend = response.ec2_backend
    # Kept on the backend, so moto's reset forgets them with the instances.
    known = backend.__dict__.setdefault("_kubecluster_client_tokens", {})
    params = json.dumps(dict((key, value) for key, value in response.querystring.items() if key != "ClientToken"),
                        sort_keys=True, default=str)
    if token in known:
        reservation_id, first_params = known[token]
        if params != first_params:
            raise EC2ClientError("IdempotentParameterMismatch",
                                 "Arguments on this idempotent request are inconsistent with arguments used in previous "
                                 "request(s).")
        return ActionResult(backend.reservations[reservation_id])
    result = _real_run_instances(response)
    known[token] = (result.result.id, params)
    return result


def apply(monkeypatch=None):
    """Fill the gaps: through a pytest monkeypatch (undone after the test) or for the process."""
    if monkeypatch is not None:
        monkeypatch.setitem(EC2_PREFIX_TO_RESOURCE, "nat", "natgateway")
        monkeypatch.setattr(ManagedPolicy, "delete", _delete_managed_policy, raising=False)
        monkeypatch.setattr(InstanceResponse, "run_instances", _run_instances_with_client_token)
        monkeypatch.setattr(SecurityGroupRule, "__init__", _security_group_rule_init)
    else:
        SecurityGroupRule.__init__ = _security_group_rule_init
        EC2_PREFIX_TO_RESOURCE["nat"] = "natgateway"
        ManagedPolicy.delete = _delete_managed_policy
        InstanceResponse.run_instances = _run_instances_with_client_token
