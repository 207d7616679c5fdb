"""moto_server with tests/helpers/moto_fixes applied: what MotoServer starts.

With KUBECLUSTER_MOTO_TIMING=<factor> (> 0) set, tests/helpers/moto_timing is applied too: resources pass through
AWS's intermediate states (pending, deleting, shutting-down, provisioning) for the AWS durations times the factor.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers import moto_fixes, moto_timing  # noqa: E402  pylint: disable=wrong-import-position
from moto.server import main  # noqa: E402  pylint: disable=wrong-import-position

if __name__ == "__main__":
    moto_fixes.apply()
    moto_timing.apply(moto_timing.factor_from_env(os.environ))
    sys.exit(main())
