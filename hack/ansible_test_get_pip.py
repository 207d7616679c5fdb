# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip into each sanity
test's virtualenv. Its download host is not reachable here (only package registries are), so
hack/sanity.sh saves this file where ansible-test caches that script
(~/.ansible/test/cache/get_pip_<version>.py, the place its error message names).

ansible-test runs it as ``get-pip.py [pip options] pip==X --no-setuptools --no-wheel`` in a
venv made with --without-pip. This does the same with the interpreter's own ensurepip and then
pip from PyPI.
"""

import subprocess
import sys

GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main(argv):
    pip_arguments = [arg for arg in argv if arg not in GET_PIP_ONLY_OPTIONS]
    # In a child process: ensurepip.bootstrap() would set PIP_CONFIG_FILE=/dev/null in this one,
    # and the pip install below needs the machine's pip configuration (index, certificates).
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + pip_arguments)
    if "--no-setuptools" in argv:
        # ensurepip of Python < 3.12 brings setuptools along; get-pip.py would not have.
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"])


if __name__ == "__main__":
    main(sys.argv[1:])
