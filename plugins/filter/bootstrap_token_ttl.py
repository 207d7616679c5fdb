# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: bootstrap_token_ttl
short_description: The lifetime of a bootstrap token that must outlast every round of joins
version_added: 1.0.0
description:
  - Ansible runs a task on at most C(forks) hosts at a time, so machines that join together join in
    rounds - V(ceil(joining / forks)) of them. A bootstrap token made for all of them must stay valid
    until the last round has joined.
  - Returns the larger of O(minimum) and the number of rounds times O(per_round), as a duration
    C(kubeadm token create --ttl) reads (V(15m), V(1h10m), V(90s)).
  - No machine joining gives O(minimum).
positional: forks, per_round, minimum
options:
  _input:
    description: How many machines join with the token.
    type: int
    required: true
  forks:
    description: How many hosts Ansible runs a task on at a time (the C(ansible_forks) magic variable).
    type: int
    required: true
  per_round:
    description:
      - How long one round of joins may take, as a duration (V(10m), V(1h), V(90s)) or a number of seconds.
    type: raw
    default: 10m
  minimum:
    description: The shortest lifetime, as a duration or a number of seconds.
    type: raw
    default: 15m
"""

EXAMPLES = r"""
- name: Create a bootstrap token that outlasts the joins of this batch
  ansible.builtin.command:
    argv: [kubeadm, token, create, --ttl, "{{ joining | length | kubecluster.aws.bootstrap_token_ttl(ansible_forks, '10m', '15m') }}"]
  # 12 machines with 5 forks: 3 rounds of 10m, --ttl 30m; 1 machine: the minimum, --ttl 15m
"""

RETURN = r"""
_value:
  description: The token's lifetime as a duration kubeadm reads, in whole hours, minutes and seconds.
  type: str
  sample: 30m
"""

import re
from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def seconds(value: Any, what: str) -> int:
    """A duration (``1h30m``, ``15m``, ``90s``, or a number of seconds) in seconds."""
    if _is_int(value) and value >= 0:
        return int(value)
    text = value.strip() if isinstance(value, str) else None
    if text and text.isdigit():
        return int(text)
    match = _DURATION.match(text) if text else None
    if not match or not any(match.groups()):
        raise AnsibleFilterError("bootstrap_token_ttl: %s %r is not a duration such as 15m, 1h30m or 90s" % (what, value))
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def duration(total: int) -> str:
    """Seconds as a duration kubeadm reads: ``1h10m``, ``15m``, ``90s`` -> ``1m30s``."""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join("%d%s" % (amount, unit) for amount, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if amount)
    return text or "0s"


def _count(value: Any, what: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if not _is_int(value) or value < 0:
        raise AnsibleFilterError("bootstrap_token_ttl: %s must be a whole number, not %r" % (what, value))
    return int(value)


def bootstrap_token_ttl(joining: Any, forks: Any, per_round: Any = "10m", minimum: Any = "15m") -> str:
    """max(minimum, ceil(joining / forks) * per_round), as a kubeadm duration."""
    count = _count(joining, "the number of joining machines")
    parallel = max(1, _count(forks, "forks"))
    rounds = -(-count // parallel)
    return duration(max(seconds(minimum, "minimum"), rounds * seconds(per_round, "per_round")))


class FilterModule:
    """The bootstrap token's lifetime."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"bootstrap_token_ttl": bootstrap_token_ttl}
