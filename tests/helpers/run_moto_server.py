"""moto_server with tests/helpers/moto_fixes applied: what MotoServer starts."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers import moto_fixes  # noqa: E402  pylint: disable=wrong-import-position
from moto.server import main  # noqa: E402  pylint: disable=wrong-import-position

if __name__ == "__main__":
    moto_fixes.apply()
    sys.exit(main())
