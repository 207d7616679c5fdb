#!/usr/bin/env bash
# ansible-test sanity on this checkout's files (tracked, plus new files git does not ignore).
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name> with the
# collections it depends on beside it, so the files are copied into a temp tree of that shape
# and amazon.aws / kubernetes.core are linked in from the venv's `ansible` package (offline).
# Each sanity test runs in its own virtualenv that ansible-test makes with exactly the tool
# versions it pins for this ansible-core (--venv --requirements; kept under
# ~/.ansible/test/venv, so only the first run installs them). Extra arguments go to ansible-test.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
# the venv's Python (3.11 on Debian 12); ansible-test runs the tests on it alone
python_version="${SANITY_PYTHON:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
bin_dir="$(dirname "$python")"
site_collections="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections"

# ansible-test bootstraps pip into each test's venv with a get-pip.py from a host outside the
# package registries; give it the stand-in where it caches that script, unless one is there.
pip_version="$("$python" -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as p; print(p(types.SimpleNamespace(version="'"$python_version"'"))["pip"])')"
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -e "$get_pip" ]]; then
    mkdir -p "$(dirname "$get_pip")"
    cp "$repo/hack/ansible_test_get_pip.py" "$get_pip"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/kubecluster-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
collection="$work/ansible_collections/kubecluster/aws"
mkdir -p "$collection"

cd "$repo"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    # a tracked file deleted in the work tree is not part of what would be committed
    if [[ -e "$file" || -L "$file" ]]; then
        cp -P --parents -- "$file" "$collection/"
    fi
done

for dependency in amazon kubernetes; do
    if [[ -d "$site_collections/$dependency" ]]; then
        ln -s "$site_collections/$dependency" "$work/ansible_collections/$dependency"
    fi
done

cd "$collection"
export PATH="$bin_dir:$PATH"
"$bin_dir/ansible-test" sanity --color --venv --requirements --python "$python_version" "$@"
