# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Context: what a service reaches AWS with, handed to every ``plan_present(ctx, spec)`` and
``plan_absent(ctx, spec)``.

It holds the clients of one region, each made on first use (a service that needs only EC2
makes no other), and how long the plan's waits may take. A module builds it from its
AnsibleAWSModule (runner.context); tests build it from plain boto3 clients.
"""

from typing import Any, Callable, Dict, Optional, Sequence

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from .snapshot import SnapshotClient
from .snapshot import snapshot_client

ClientFactory = Callable[[str], Any]
# The clients a read snapshot (snapshot.py) sits in front of, when the Context has one.
SNAPSHOT_SERVICES = ("ec2", "elb", "elbv2")


class _Client:
    """A Context attribute that is the client of one AWS service, made on first use."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __get__(self, ctx: "Context", owner: Any = None) -> Any:
        return ctx.client(self.service)


class Context:
    """Clients of one region made on first use, and the wait settings of a reconcile."""

    ec2 = _Client("ec2")
    elb = _Client("elb")
    elbv2 = _Client("elbv2")
    cloudformation = _Client("cloudformation")
    iam = _Client("iam")
    service_quotas = _Client("service-quotas")
    ssm = _Client("ssm")

    def __init__(self, client_factory: ClientFactory, region: str, wait: bool = True, wait_timeout: int = 600,
                 snapshot: bool = False) -> None:
        """``snapshot``: the EC2 and load balancing clients answer reads from the run's earlier reads (snapshot.py),
        for a reconcile of many services in one process."""
        self._factory = client_factory
        self.snapshot = snapshot
        self._clients: Dict[str, Any] = {}
        self.region = region
        self.wait = wait
        self.wait_timeout = wait_timeout

    @classmethod
    def from_module(cls, module: Any, region: str, wait: bool = True, wait_timeout: int = 600, snapshot: bool = False) -> "Context":
        """Clients from an AnsibleAWSModule, with amazon.aws's throttling retries (``aws_retry=True`` on direct calls)."""

        def factory(service: str) -> Any:
            return module.client(service, region=region, retry_decorator=AWSRetry.jittered_backoff())

        return cls(factory, region, wait, wait_timeout, snapshot)

    def with_wait(self, wait: bool) -> "Context":
        """The same clients, waiting or not (a delete survey plans terminations it does not wait for)."""
        return Context(self.client, self.region, wait, self.wait_timeout)

    def forget_reads(self, operations: Optional[Sequence[str]] = None) -> None:
        """The next reads (of ``operations`` only, boto3 method names, when given) reach AWS again (a wait's
        polls), when the clients have a read snapshot."""
        for client in self._clients.values():
            if isinstance(client, SnapshotClient):
                client.forget(operations)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            client = self._factory(service)
            self._clients[service] = snapshot_client(service, client) if self.snapshot and service in SNAPSHOT_SERVICES else client
        return self._clients[service]
