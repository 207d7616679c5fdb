# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one error base of the collection's services, as kubernetes.core has its CoreException.

Every service raises a subclass when a reconcile cannot go on (bad input only AWS can tell,
a resource that is not the cluster's in the way, a state only a person can resolve); the
runner catches the base in one place and fails the module with the message, which names the
cause and the fix. AWS errors stay amazon.aws's AnsibleAWSError.
"""

from typing import Iterable, List


class KubeclusterError(Exception):
    """A reconcile that cannot go on; the message names the cause and the fix.

    ``problems`` holds one line per problem when there are several (each names the field or
    resource and the fix), so a caller can list them one by one.
    """

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems: List[str] = list(problems)

    @property
    def message(self) -> str:
        return str(self)
