# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The cluster lease: one run at a time changes a cluster in a region.

The lease is the SSM parameter ``/kubecluster.aws/clusters/<cluster>/lease`` (SSM is regional, so
it is per cluster and region). PutParameter with ``Overwrite=False`` is atomic: of two runs
creating it, AWS answers ``ParameterAlreadyExists`` to the loser. That is the compare-and-set
EC2 lacks (CreateTags always overwrites), and it needs no resource of the cluster to exist yet,
which a tag on the VPC would before the first create.

The value is JSON: ``token`` (a random uuid4 made at acquire; whoever holds it holds the lease),
``holder`` (who, in the caller's words), ``since`` and ``expires`` (UTC ISO 8601), ``host``,
``pid`` (of the ansible-playbook process) and ``pid_namespace``.

A lease that is expired, or (``force``) that a person breaks, is taken over through a marker
parameter ``.../lease-takeover-<token of that lease>``, created only if absent: only the runner
that creates the marker may delete that lease and create its own (create-if-absent again, so a
run that acquires normally in between wins cleanly); then it deletes the marker. A marker older
than TAKEOVER_STALE (its maker died mid-takeover) is deleted and the takeover retried. A lease
whose holder ran on this host (same host name and pid namespace) with a pid no longer alive is
dead at once: a Ctrl-C'd or crashed run on the same controller does not block the next one.

Renewing one's own lease is an overwrite while it has more than RENEW_MARGIN left, and goes
through the same marker otherwise, so that it never races a takeover; releasing likewise.

Every time comes from an injectable clock so that tests can expire leases without sleeping.
"""

import datetime
import json
import os
import socket
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import naming
from .aws import ssm as aws_ssm
from .errors import KubeclusterError

Client = Any
Record = Dict[str, Any]

PARAMETER_PREFIX = "/kubecluster.aws/clusters/"
DEFAULT_TTL = 1800  # seconds
MIN_TTL = 60
MAX_TTL = 7 * 24 * 3600
# Within this much of its expiry a lease is renewed or released only through the takeover marker.
RENEW_MARGIN = datetime.timedelta(seconds=60)
# A takeover marker this old belongs to a runner that died mid-takeover.
TAKEOVER_STALE = datetime.timedelta(minutes=5)
# Rounds of acquire before giving up when other runners keep changing the lease under us.
MAX_ROUNDS = 6
ROUND_DELAY = 1.0  # seconds
MAX_HOLDER = 512
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DESCRIPTION = "kubecluster.aws: one run at a time changes this cluster"


class LeaseError(KubeclusterError):
    """The lease cannot be had as asked."""


class LeaseHeld(LeaseError):
    """Another run holds the lease; the message names it, since when, and how to go on."""

    def __init__(self, cluster: str, region: str, lease: Record, taking_over: bool = False) -> None:
        self.lease = lease
        if taking_over:
            text = ("cluster %s in %s: the lease of %s (since %s) is being taken over by %s since %s; rerun in a minute"
                    % (cluster, region, lease.get("previous_holder", "another run"), lease.get("previous_since", "?"),
                       lease.get("holder", "another run"), lease.get("since", "?")))
        else:
            text = ("cluster %s in %s is being changed by %s since %s (lease until %s); wait for that run to finish, or "
                    "if it is no longer running rerun after %s or with -e kubecluster_break_lease=true"
                    % (cluster, region, lease.get("holder", "an unknown run"), lease.get("since", "?"),
                       lease.get("expires", "?"), lease.get("expires", "?")))
        super().__init__(text)


# --- time and this process ----------------------------------------------------------------

def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def format_time(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text: Any) -> Optional[datetime.datetime]:
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def pid_namespace() -> Optional[str]:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _ancestors(pid: int) -> List[Tuple[int, str]]:
    """(pid, command line) of ``pid`` and its ancestors, from /proc; empty where there is no /proc."""
    chain: List[Tuple[int, str]] = []
    while pid and pid > 1 and len(chain) < 64:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open("/proc/%d/stat" % pid, "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
        except OSError:
            break
        chain.append((pid, cmdline))
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


def controller_pid() -> int:
    """The pid of the ansible-playbook run this module belongs to: the topmost ancestor whose command
    line names ansible-playbook (its task workers are forks with the same command line). Falls back to
    the parent process where /proc is not readable."""
    found = None
    for pid, cmdline in _ancestors(os.getppid()):
        if "ansible-playbook" in cmdline or "ansible-runner" in cmdline:
            found = pid
    return found or os.getppid()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return True
    return True


# --- the parameters ---------------------------------------------------------------------------

def parameter_name(cluster: str) -> str:
    return "%s%s/lease" % (PARAMETER_PREFIX, cluster)


def marker_name(cluster: str, token: str) -> str:
    return "%s%s/lease-takeover-%s" % (PARAMETER_PREFIX, cluster, token)


def _decode(raw: Optional[str]) -> Record:
    """The lease record of a parameter value; {} for a value that is not one (treated as expired)."""
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _encode(record: Record) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


# --- the lease ----------------------------------------------------------------------------

class Lease:
    """The lease of one cluster in one region, through the SSM client of a Context (``ctx.ssm``).

    ``clock``, ``sleep``, ``host``, ``pid``, ``namespace`` and ``alive`` are injectable for tests.
    Results are dicts: the lease record (token, holder, since, expires, host, pid) plus ``action``
    (acquired, renewed, taken_over, released, gone, not_ours, or with ``would_`` in check mode)
    and ``previous`` (the record taken over, if any). Another run's lease raises LeaseHeld, a
    KubeclusterError; SSM errors are aws.ssm's AnsibleSSMError.
    """

    def __init__(self, ssm: Client, cluster: str, region: str, clock: Callable[[], datetime.datetime] = utc_now,
                 sleep: Callable[[float], None] = time.sleep, host: Optional[str] = None, pid: Optional[int] = None,
                 namespace: Optional[str] = None, alive: Callable[[int], bool] = pid_alive) -> None:
        self.ssm = ssm
        self.cluster = cluster
        self.region = region
        self.clock = clock
        self.sleep = sleep
        self.host = host if host is not None else socket.gethostname()
        self.pid = pid if pid is not None else controller_pid()
        self.namespace = namespace if namespace is not None else pid_namespace()
        self.alive = alive
        self.name = parameter_name(cluster)
        self.busy_marker: Optional[Record] = None

    # the parameters

    def _create(self, name: str, record: Record, tag_name: str) -> bool:
        tags = [{"Key": key, "Value": value}
                for key, value in sorted(naming.resource_tags(self.cluster, tag_name, None).items())]
        created: bool = aws_ssm.create_parameter_if_absent(self.ssm, name, _encode(record), tags, DESCRIPTION)
        return created

    def _read(self, name: str) -> Optional[str]:
        raw: Optional[str] = aws_ssm.get_parameter_value(self.ssm, name)
        return raw

    def _delete(self, name: str) -> None:
        aws_ssm.delete_parameter(self.ssm, name)

    # reading and judging

    def read(self) -> Tuple[Optional[str], Record]:
        """(raw value, record) of the lease, or (None, {}) when there is none."""
        raw = self._read(self.name)
        if raw is None:
            return None, {}
        return raw, _decode(raw)

    def expired(self, record: Record, margin: datetime.timedelta = datetime.timedelta(0)) -> bool:
        expires = parse_time(record.get("expires"))
        return expires is None or expires - margin <= self.clock()

    def dead(self, record: Record) -> bool:
        """Held by a run of this host (same name and pid namespace) whose process is gone."""
        pid = record.get("pid")
        return (record.get("host") == self.host and record.get("pid_namespace") == self.namespace
                and isinstance(pid, int) and pid > 0 and not self.alive(pid))

    def record(self, token: str, holder: Optional[str], ttl: int, since: Optional[str] = None) -> Record:
        now = self.clock()
        return {"token": token, "holder": (holder or "unknown")[:MAX_HOLDER], "since": since or format_time(now),
                "expires": format_time(now + datetime.timedelta(seconds=ttl)), "host": self.host, "pid": self.pid,
                "pid_namespace": self.namespace}

    # acquire / renew

    def acquire(self, token: Optional[str], holder: Optional[str], ttl: int = DEFAULT_TTL, force: bool = False) -> Record:
        """Take the lease, or renew it when ``token`` is the holder's; raise LeaseHeld when another run
        holds it (and it is neither expired, dead, nor ``force``-d away)."""
        mine = token or str(uuid.uuid4())
        self.busy_marker = None
        for _round in range(MAX_ROUNDS):
            wanted = self.record(mine, holder, ttl)
            if self._create(self.name, wanted, "%s-lease" % self.cluster):
                return dict(wanted, action="acquired", previous=None)
            raw, current = self.read()
            if raw is None:
                continue  # released between our create and our read: try again
            if current.get("token") == mine:
                if not self.expired(current, RENEW_MARGIN):
                    renewed = self.record(mine, holder, ttl, since=current.get("since"))
                    aws_ssm.overwrite_parameter(self.ssm, self.name, _encode(renewed))
                    return dict(renewed, action="renewed", previous=None)
            elif not (force or self.expired(current) or self.dead(current)):
                raise LeaseHeld(self.cluster, self.region, current)
            done = self.take_over(raw, current, mine, holder, ttl)
            if done is not None:
                return done
            self.sleep(ROUND_DELAY)
        raw, current = self.read()
        if self.busy_marker is not None and raw is not None and not (force or self.expired(current) or self.dead(current)):
            raise LeaseHeld(self.cluster, self.region, current)
        if self.busy_marker is not None:
            raise LeaseHeld(self.cluster, self.region, self.busy_marker, taking_over=True)
        raise LeaseHeld(self.cluster, self.region, current or {"holder": "other runs that keep changing it"})

    def take_over(self, raw: str, current: Record, mine: str, holder: Optional[str], ttl: int) -> Optional[Record]:
        """Replace the lease ``raw`` through its takeover marker; the result, or None to try again."""
        marker = marker_name(self.cluster, current.get("token") or "invalid")
        claim = {"token": mine, "holder": (holder or "unknown")[:MAX_HOLDER], "since": format_time(self.clock())}
        if not self._create(marker, claim, "%s-lease-takeover" % self.cluster):
            self.clear_stale_marker(marker, current)
            return None
        try:
            again, _record = self.read()
            if again != raw:
                return None  # renewed, released or replaced meanwhile: judge it afresh
            self._delete(self.name)
            ours = current.get("token") == mine
            wanted = self.record(mine, holder, ttl, since=current.get("since") if ours else None)
            if not self._create(self.name, wanted, "%s-lease" % self.cluster):
                return None  # a run acquiring normally slipped in: it holds the lease fairly
            previous = None if ours else current
            return dict(wanted, action="renewed" if ours else "taken_over", previous=previous)
        finally:
            self._delete(marker)

    def clear_stale_marker(self, marker: str, current: Record) -> None:
        """Delete a takeover marker whose maker died mid-takeover; remember one still at work (``busy_marker``)."""
        raw = self._read(marker)
        if raw is None:
            return
        claim = _decode(raw)
        since = parse_time(claim.get("since"))
        if since is None or since + TAKEOVER_STALE <= self.clock():
            self._delete(marker)
            return
        self.busy_marker = dict(claim, previous_holder=current.get("holder"), previous_since=current.get("since"))

    # release

    def release(self, token: str) -> Record:
        """Give the lease back if ``token`` holds it; a lease already gone is fine, another's is left alone."""
        raw, current = self.read()
        if raw is None:
            return {"action": "gone"}
        if current.get("token") != token:
            return dict(current, action="not_ours")
        if not self.expired(current, RENEW_MARGIN):
            self._delete(self.name)
            return dict(current, action="released")
        # Near or past expiry another run may be taking it over: only through the marker.
        marker = marker_name(self.cluster, token)
        claim = {"token": token, "holder": current.get("holder"), "since": format_time(self.clock())}
        if not self._create(marker, claim, "%s-lease-takeover" % self.cluster):
            return dict(current, action="not_ours")  # another run is taking it over
        try:
            again, _record = self.read()
            if again != raw:
                return dict(_decode(again) if again else {}, action="not_ours" if again else "gone")
            self._delete(self.name)
            return dict(current, action="released")
        finally:
            self._delete(marker)

    # check mode

    def preview(self, token: Optional[str], force: bool = False) -> Record:
        """What acquire would do, without writing: the result, with ``action`` would_acquire,
        would_renew, would_take_over or held."""
        raw, current = self.read()
        if raw is None:
            return {"action": "would_acquire", "previous": None}
        if token and current.get("token") == token:
            return dict(current, action="would_renew", previous=None)
        if force or self.expired(current) or self.dead(current):
            return {"action": "would_take_over", "previous": current}
        return dict(current, action="held", previous=None)


# --- what a module returns of the lease ------------------------------------------------------

VISIBLE = ("holder", "since", "expires")


def visible(record: Optional[Record]) -> Dict[str, Any]:
    """What a module returns of a lease record: who and when, not the host's pid details."""
    return {key: (record or {}).get(key) for key in VISIBLE if (record or {}).get(key) is not None}


def previous_text(record: Optional[Record]) -> Optional[str]:
    if not record:
        return None
    return "%s since %s" % (record.get("holder", "an unknown run"), record.get("since", "?"))


def take(module: Any, lease: Lease, token: Optional[str], holder: Optional[str], ttl: int,
         force: bool) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Take or renew the lease for a module (cluster_lease, cluster_infra): its return values and diff.

    In check mode only reads it and says what a real run would do; a lease another run holds is then a
    warning, not a failure. Raises LeaseHeld when another run holds it."""
    if module.check_mode:
        seen = lease.preview(token, force)
        out = dict(visible(seen), outcome=seen["action"], token=token if seen["action"] == "would_renew" else None,
                   changed=seen["action"] != "held")
        if seen["action"] == "held":
            module.warn(str(LeaseHeld(lease.cluster, lease.region, seen)))
        if seen.get("previous"):
            out["previous_holder"] = previous_text(seen["previous"])
        return out, {"before": visible(seen.get("previous") or seen), "after": {"holder": holder}}
    got = lease.acquire(token, holder, ttl, force)
    out = dict(visible(got), outcome=got["action"], token=got["token"], changed=True)
    if got.get("previous"):
        out["previous_holder"] = previous_text(got["previous"])
        module.warn("took over the lease of cluster %s in %s from %s" % (lease.cluster, lease.region, out["previous_holder"]))
    return out, {"before": visible(got.get("previous")), "after": visible(got)}


def give_back(module: Any, lease: Lease, token: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Release the lease ``token`` holds, for a module: its return values and diff (in check mode, only read)."""
    if module.check_mode:
        raw, current = lease.read()
        mine = raw is not None and current.get("token") == token
        action = "would_release" if mine else ("gone" if raw is None else "not_ours")
        return dict(visible(current), outcome=action, token=None, changed=mine), {"before": visible(current), "after": {}}
    done = lease.release(token)
    if done["action"] == "not_ours":
        module.warn("the lease of cluster %s in %s is held by %s since %s, not by this run: it was broken or taken over "
                    "while this run went on; left as it is" % (lease.cluster, lease.region, done.get("holder"), done.get("since")))
    released = done["action"] == "released"
    return (dict(visible(done), outcome=done["action"], token=None, changed=released),
            {"before": visible(done) if released else {}, "after": {}})
