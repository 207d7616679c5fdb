# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The IAM calls of the collection (the stack makes the roles; these only read them).

amazon.aws's ``module_utils.iam`` wrappers (AnsibleIAMError, AWSRetry) are used as they are.
"""

from typing import Any, List

from ansible_collections.amazon.aws.plugins.module_utils.iam import list_iam_instance_profiles

__all__ = ["list_iam_instance_profiles", "missing_instance_profiles"]

Client = Any


def missing_instance_profiles(iam: Client, names: List[str]) -> List[str]:
    """Which of the named instance profiles do not exist, sorted."""
    return sorted(name for name in set(names) if not list_iam_instance_profiles(iam, name=name))
