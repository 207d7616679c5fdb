"""AWS's state transitions in moto, for tests only (never in plugins/): the "timing" mode of the local AWS.

moto finishes every operation at once; AWS does not. With ``apply(factor)`` resources pass through AWS's
intermediate states for ``DEFAULT_DURATIONS[...] * factor`` seconds, measured from the create/delete call,
so a wait the product forgot fails a test instead of a first run on a real account:

- NAT gateway: ``pending`` after CreateNatGateway, then ``available``; ``deleting`` after DeleteNatGateway, then
  ``deleted``.
- EC2 instance: ``pending`` after RunInstances (or StartInstances), then ``running``; ``shutting-down`` after
  TerminateInstances, then ``terminated``. RegisterTargets already refuses an instance that is not ``running``
  in moto, as AWS does ("it must be in the running state when you register it").
- ELBv2 load balancer: ``provisioning`` after CreateLoadBalancer, then ``active``.
- The deletes AWS refuses while something is still going away (moto refuses none of these):
  ReleaseAddress while a NAT gateway that uses the address is not ``deleted`` (InvalidIPAddress.InUse);
  DeleteSecurityGroup while an instance that is not ``terminated`` uses the group, DeleteSubnet while such an
  instance or a NAT gateway that is not ``deleted`` is in the subnet, DetachInternetGateway while such an
  instance with a public address or such a public NAT gateway is in the VPC (all DependencyViolation).
  DeleteVpc needs no patch: moto already refuses it while the VPC has subnets, and these cannot go first.

The states are computed when read (moto stores what it finished; a property shows the intermediate state until
its time has passed), so nothing runs in the background and an injectable ``clock`` lets unit tests move time
without sleeping. Factor 0 (or ``KUBECLUSTER_MOTO_TIMING`` unset for the moto server) leaves moto as it is.
``remove()`` undoes every patch; resources made meanwhile then show moto's own (final) states again.

Used by tests/helpers/run_moto_server.py (env ``KUBECLUSTER_MOTO_TIMING=<factor>``, set by
``MotoServer(timing=<factor>)``) and in process through ``applied(...)``.
"""

import contextlib
import time

from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.models import instances as ec2_instances
from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
from moto.ec2.models.internet_gateways import InternetGatewayBackend
from moto.ec2.models.nat_gateways import NatGateway
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import SubnetBackend
from moto.elbv2.models import FakeLoadBalancer

ENV_VARIABLE = "KUBECLUSTER_MOTO_TIMING"

# Seconds each transition takes at factor 1.0. AWS documents none of these durations; they are estimates within the
# ranges that the reference notes (/work/shared/reference) quote from peers and AWS support:
DEFAULT_DURATIONS = {
    # Estimate. capa.md "Timing figures": CAPA waits up to 2 min per NAT gateway, kOps saw "up to 10 min"
    # Pending -> Available (kubernetes/kops#944); issue 9 "NAT gateways take 1-2 minutes".
    "nat_gateway_available": 90.0,
    # Estimate. capa.md "Timing figures": NAT gateway + EIP deletion is slow, "that is how AWS works", EIP release
    # alone ~4 min in a whole delete (CAPA#1328); the deleting -> deleted part is commonly about a minute.
    "nat_gateway_deleted": 60.0,
    # Estimate. Issue 9 "instances boot in 30-60 s" (pending -> running, from RunInstances).
    "instance_running": 40.0,
    # Estimate. Issue 9 "and take as long to terminate" (shutting-down -> terminated).
    "instance_terminated": 45.0,
    # Estimate. peers.md "ALB/NLB provisioning": Terraform's default wait is 10 min and can still time out while
    # "provisioning" (terraform-provider-aws#8054); capa.md: CAPA e2e "LB ready 5m"; issue 9 "provisions for minutes".
    "load_balancer_active": 150.0,
}

INSTANCE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


class _Timing:
    def __init__(self, factor, durations, clock):
        self.factor = float(factor)
        self.durations = dict(DEFAULT_DURATIONS, **(durations or {}))
        self.clock = clock

    def now(self):
        return self.clock()

    def until(self, transition):
        """The clock reading at which ``transition``, starting now, is over."""
        return self.clock() + self.durations[transition] * self.factor


_active = None      # the _Timing in force, None when not applied
_originals = []     # (owner, name, previous value or _MISSING), to undo in reverse order
_MISSING = object()


def _patch(owner, name, value):
    _originals.append((owner, name, owner.__dict__.get(name, _MISSING)))
    setattr(owner, name, value)


def _in_transition(obj, attribute):
    """Whether the intermediate state recorded in obj.__dict__[attribute] (a clock reading) still shows."""
    until = obj.__dict__.get(attribute)
    return _active is not None and until is not None and _active.now() < until


# --- NAT gateway: moto sets NatGateway.state = "available" in __init__ and "deleted" in delete_nat_gateway. ---
# A property keeps what moto set in the instance dict (what shows once the patch is removed) and shows
# pending/deleting until the transition's time has passed; DescribeNatGateways and its state filter read it.

def _nat_state_get(nat):
    state = nat.__dict__.get("state")
    if state == "available" and _in_transition(nat, "_kubecluster_available_at"):
        return "pending"
    if state == "deleted" and _in_transition(nat, "_kubecluster_deleted_at"):
        return "deleting"
    return state


def _nat_state_set(nat, value):
    previous = nat.__dict__.get("state")
    if _active is not None and value != previous:
        if value == "available" and previous is None:  # created
            nat.__dict__["_kubecluster_available_at"] = _active.until("nat_gateway_available")
        elif value == "deleted":
            nat.__dict__["_kubecluster_deleted_at"] = _active.until("nat_gateway_deleted")
    nat.__dict__["state"] = value


# --- EC2 instance: moto keeps an InstanceState(name, code) in Instance._state and sets name/code on it. ---
# Instances made while applied get this subclass (moto's Instance.__init__ looks InstanceState up in its module):
# it records moto's state and shows pending (until booted) / shutting-down (until terminated) in between.

class TimedInstanceState(ec2_instances.InstanceState):
    """An instance's state as AWS shows it: pending before running, shutting-down before terminated."""

    def __init__(self, name="pending", code=0):  # pylint: disable=super-init-not-called
        self.__dict__.update(_name=None, _code=None, _shown=None)
        self.name = name
        self.code = code

    @property
    def name(self):
        return self._shown[0] if self._showing() else self._name

    @name.setter
    def name(self, value):
        if _active is not None and value != self._name:
            if value == "running":  # launched or started: AWS boots it first
                self.__dict__["_shown"] = ("pending", _active.until("instance_running"))
            elif value == "terminated":
                self.__dict__["_shown"] = ("shutting-down", _active.until("instance_terminated"))
            else:
                self.__dict__["_shown"] = None
        self.__dict__["_name"] = value

    @property
    def code(self):
        return INSTANCE_CODES[self._shown[0]] if self._showing() else self._code

    @code.setter
    def code(self, value):
        self.__dict__["_code"] = value

    def _showing(self):
        shown = self.__dict__.get("_shown")
        return _active is not None and shown is not None and _active.now() < shown[1]


def _not_terminated(instance):
    return instance.state != "terminated"


_real_terminate = ec2_instances.Instance.terminate


def _terminate_keeping_public_ip(instance):
    """moto frees the instance's public IP and deletes its ENI at once; AWS only once it is terminated, which
    DetachInternetGateway checks ("has some mapped public address(es)"). Remember the address meanwhile."""
    try:
        instance.__dict__["_kubecluster_public_ip"] = instance.public_ip
    except (KeyError, AttributeError):
        pass
    return _real_terminate(instance)


def _public_ip(instance):
    try:
        return instance.public_ip or instance.__dict__.get("_kubecluster_public_ip")
    except (KeyError, AttributeError):
        return instance.__dict__.get("_kubecluster_public_ip")


# --- ELBv2 load balancer: moto creates it "provisioning" and makes it "active" on the first describe. ---

def _lb_state_get(balancer):
    state = balancer.__dict__.get("state")
    if state == "active" and _in_transition(balancer, "_kubecluster_active_at"):
        return "provisioning"
    return state


def _lb_state_set(balancer, value):
    previous = balancer.__dict__.get("state")
    if _active is not None and previous is None and value == "provisioning":  # created
        balancer.__dict__["_kubecluster_active_at"] = _active.until("load_balancer_active")
    balancer.__dict__["state"] = value


# --- The deletes AWS refuses while a dependency is still there (or still going away). ---
# Checked before moto's own method runs; "not terminated" / "not deleted" read the timed states above.

def _live_instances(backend):
    return [instance for instance in backend.all_instances() if instance.state != "terminated"]


def _live_nat_gateways(backend):
    return [nat for nat in backend.nat_gateways.values() if nat.state != "deleted"]


def _refuse_release_of_nat_address(backend, address=None, allocation_id=None):
    """ReleaseAddress: a NAT gateway holds its Elastic IP until it is deleted (deleting included); AWS answers
    InvalidIPAddress.InUse until then."""
    for nat in _live_nat_gateways(backend):
        for entry in nat.address_set:
            if (allocation_id and entry.get("allocationId") == allocation_id) or (address and entry.get("publicIp") == address):
                raise EC2ClientError("InvalidIPAddress.InUse",
                                     "Address %s is in use by %s (%s)." % (allocation_id or address, nat.id, nat.state))


def _refuse_delete_of_used_security_group(backend, name=None, group_id=None):
    """DeleteSecurityGroup: AWS refuses a group that an instance's network interface still uses, and the interface
    goes only once the instance is terminated (shutting-down included)."""
    if not group_id and name:
        group = backend.get_security_group_by_name_or_id(name)
        group_id = group.id if group else None
    for instance in _live_instances(backend):
        groups = set(group.id for group in instance.security_groups)
        for nic in instance.nics.values():
            groups.update(group.id for group in nic.group_set)
        if group_id in groups:
            raise DependencyViolationError("resource %s has a dependent object" % group_id)


def _refuse_delete_of_used_subnet(backend, subnet_id):
    """DeleteSubnet: AWS refuses a subnet that still holds an instance not yet terminated or a NAT gateway not yet
    deleted (their network interfaces are in it)."""
    users = [instance.id for instance in _live_instances(backend) if instance.subnet_id == subnet_id]
    users += [nat.id for nat in _live_nat_gateways(backend) if nat.subnet_id == subnet_id]
    if users:
        raise DependencyViolationError("The subnet '%s' has dependencies and cannot be deleted." % subnet_id)


def _refuse_detach_with_public_addresses(backend, internet_gateway_id, vpc_id):  # pylint: disable=unused-argument
    """DetachInternetGateway: AWS refuses while the VPC has public addresses mapped: an instance with a public IP
    that is not terminated yet, a public NAT gateway that is not deleted yet."""
    mapped = [instance.id for instance in _live_instances(backend) if instance.vpc_id == vpc_id and _public_ip(instance)]
    mapped += [nat.id for nat in _live_nat_gateways(backend)
               if nat.vpc_id == vpc_id and nat.connectivity_type != "private" and any(entry.get("publicIp") for entry in nat.address_set)]
    if mapped:
        raise DependencyViolationError("Network %s has some mapped public address(es). Please unmap those public address(es) before "
                                       "detaching the gateway." % vpc_id)


def _guard(owner, name, refuse):
    """Patch owner.name so that ``refuse(backend, *args)`` runs (and may raise AWS's error) before moto's method."""
    real = getattr(owner, name)

    def guarded(backend, *args, **kwargs):
        refuse(backend, *args, **kwargs)
        return real(backend, *args, **kwargs)

    guarded.__doc__ = refuse.__doc__
    _patch(owner, name, guarded)


def apply(factor, durations=None, clock=time.monotonic):
    """Make moto show AWS's intermediate states for ``durations[...] * factor`` seconds (``DEFAULT_DURATIONS``
    where ``durations`` does not say), read from ``clock``. Factor 0 or less: nothing changes."""
    global _active  # pylint: disable=global-statement
    if not factor or float(factor) <= 0:
        return
    if _active is not None:
        remove()
    unknown = set(durations or {}) - set(DEFAULT_DURATIONS)
    if unknown:
        raise ValueError("unknown moto_timing durations: %s" % ", ".join(sorted(unknown)))
    _active = _Timing(factor, durations, clock)
    _patch(NatGateway, "state", property(_nat_state_get, _nat_state_set))
    _patch(ec2_instances, "InstanceState", TimedInstanceState)
    _patch(ec2_instances.Instance, "terminate", _terminate_keeping_public_ip)
    _patch(FakeLoadBalancer, "state", property(_lb_state_get, _lb_state_set))
    _guard(ElasticAddressBackend, "release_address", _refuse_release_of_nat_address)
    _guard(SecurityGroupBackend, "delete_security_group", _refuse_delete_of_used_security_group)
    _guard(SubnetBackend, "delete_subnet", _refuse_delete_of_used_subnet)
    _guard(InternetGatewayBackend, "detach_internet_gateway", _refuse_detach_with_public_addresses)


def remove():
    """Undo apply(): moto as it was."""
    global _active  # pylint: disable=global-statement
    while _originals:
        owner, name, value = _originals.pop()
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
    _active = None


def factor_from_env(environ):
    """The factor ``KUBECLUSTER_MOTO_TIMING`` asks for (0.0 when unset or empty)."""
    value = (environ.get(ENV_VARIABLE) or "").strip()
    try:
        return float(value) if value else 0.0
    except ValueError as error:
        raise ValueError("%s must be a number (a factor of the AWS durations), not %r" % (ENV_VARIABLE, value)) from error


@contextlib.contextmanager
def applied(factor, durations=None, clock=time.monotonic):
    """apply() for the ``with`` block only."""
    apply(factor, durations, clock)
    try:
        yield
    finally:
        remove()
