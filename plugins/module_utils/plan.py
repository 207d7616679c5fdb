# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Plan: the ordered actions a reconcile computed from want and have, before any write.

A service reads what exists once, compares it with the spec and adds one Action per
write to a Plan. Check mode returns the plan unapplied; ``--diff`` shows it rendered
like ``kops update cluster``; a real run applies it in order. Values that only exist
after an earlier action (a new VPC's id) travel through ``Plan.refs``: an action stores
them, later actions read them, and the rendered plan shows "(known after apply)".
"""

from typing import Any, Callable, Dict, List, Optional

# What an action calls; whatever it returns is not used.
Run = Callable[[], object]

CREATE = "create"
UPDATE = "update"
DELETE = "delete"
WAIT = "wait"

_SYMBOLS = {CREATE: "+", UPDATE: "~", DELETE: "-", WAIT: "."}
UNKNOWN = "(known after apply)"


class PlanApplyError(Exception):
    """An action failed; ``applied`` lists what was done before it, for the failure message."""

    def __init__(self, action: "Action", error: Exception, applied: List[str]) -> None:
        self.action = action
        self.error = error
        self.applied = applied
        super().__init__("%s %s %s failed: %s" % (action.verb, action.kind, action.name, error))


class Action:
    """One step: a verb on a resource kind and name, a human detail, and the call that does it."""

    def __init__(self, verb: str, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.verb = verb
        self.kind = kind
        self.name = name
        self.run = run
        self.detail = detail

    @property
    def changes(self) -> bool:
        return self.verb != WAIT

    def render(self) -> str:
        text = "%s %s %s" % (_SYMBOLS[self.verb], self.kind, self.name)
        return text + (" (%s)" % self.detail if self.detail else "")

    def as_dict(self) -> Dict[str, str]:
        return {"action": self.verb, "resource": self.kind, "name": self.name, "detail": self.detail}


class Refs(Dict[str, Optional[str]]):
    """Ids known now or after apply (None when AWS did not say); a missing key reads as the UNKNOWN placeholder."""

    def __missing__(self, key: str) -> str:
        return UNKNOWN


class Plan:
    """The ordered actions of one reconcile.

    ``header`` names what the plan is for (the first line of ``--diff``); ``returns`` holds the
    module's return values, callables among them computed once the plan ran.
    """

    def __init__(self, header: str = "") -> None:
        self.actions: List[Action] = []
        self.refs = Refs()
        self.header = header
        self.returns: Dict[str, Any] = {}

    def add(self, verb: str, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.actions.append(Action(verb, kind, name, run, detail))

    def create(self, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.add(CREATE, kind, name, run, detail)

    def update(self, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.add(UPDATE, kind, name, run, detail)

    def delete(self, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.add(DELETE, kind, name, run, detail)

    def wait(self, kind: str, name: str, run: Run, detail: str = "") -> None:
        self.add(WAIT, kind, name, run, detail)

    def extend(self, other: "Plan") -> None:
        self.actions.extend(other.actions)
        self.refs.update(other.refs)

    @property
    def changed(self) -> bool:
        return any(action.changes for action in self.actions)

    def apply(self) -> List[str]:
        """Run every action in order; on failure raise PlanApplyError naming what was done."""
        applied: List[str] = []
        for action in self.actions:
            try:
                action.run()
            except Exception as error:  # pylint: disable=broad-except
                raise PlanApplyError(action, error, applied)
            applied.append(action.render())
        return applied

    def as_list(self) -> List[Dict[str, str]]:
        return [action.as_dict() for action in self.actions]

    def render(self) -> str:
        if not self.actions:
            return "No changes: the AWS resources match the spec.\n"
        return "\n".join(action.render() for action in self.actions) + "\n"

    def diff(self, header: str) -> Dict[str, str]:
        """The Ansible diff of this plan: ``prepared`` text shown under ``--diff``."""
        return {"prepared": "%s\n%s" % (header, self.render())}
