#!/usr/bin/env bash
# Build the collection's tarball into build/ as it is released: from a copy of the checkout in
# which antsibull-changelog has turned changelogs/fragments/ into the release of galaxy.yml's
# version (changelogs/changelog.yaml and CHANGELOG.rst), so that every tarball carries the
# release notes of what it holds. The checkout itself is left as it is: `make release` does the
# same in the checkout when a version is released. Prints the tarball's path last.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
PATH="$(dirname "$python"):$PATH"
export PATH

stage="$(mktemp -d "${TMPDIR:-/tmp}/kubecluster-build.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# What galaxy.yml's build_ignore leaves out anyway, and what is large, is not copied.
tar -C "$repo" --exclude=./.venv --exclude=./.ansible --exclude=./.git --exclude=./build --exclude=./.cache \
    --exclude=./.pytest_cache --exclude=./.mypy_cache --exclude=./tests/output -cf - . | tar -C "$stage" -xf -

version="$("$python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' "$stage/galaxy.yml")"
cd "$stage"
if "$python" -c 'import sys, yaml; sys.exit(0 if sys.argv[2] in (yaml.safe_load(open(sys.argv[1])).get("releases") or {}) else 1)' \
        changelogs/changelog.yaml "$version"; then
    # Released already (make release): the checkout's CHANGELOG.rst is the release's.
    antsibull-changelog generate >&2
else
    antsibull-changelog release --version "$version" --date "$(date -u +%F)" >&2
fi

mkdir -p "$repo/build"
rm -f "$repo"/build/kubecluster-aws-*.tar.gz
ansible-galaxy collection build --force --output-path "$repo/build" . >&2
ls "$repo"/build/kubecluster-aws-*.tar.gz
