# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How long every boto3 waiter of the collection polls: one rule, so timeouts mean the same everywhere."""

import math
from typing import Dict


def waiter_config(timeout: float, delay: int) -> Dict[str, int]:
    """A boto3 ``WaiterConfig`` polling every ``delay`` seconds for ``timeout`` seconds, rounded up, at least once."""
    return {"Delay": delay, "MaxAttempts": max(1, int(math.ceil(float(timeout) / delay)))}
