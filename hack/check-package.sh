#!/usr/bin/env bash
# Check what the collection tarball holds for its users: the release notes of its own version
# (CHANGELOG.rst, made from changelogs/fragments/ by hack/build-collection.sh), the licence text
# the source headers point to (COPYING), and, of tests/, only what runs from an installed copy
# (tests/config.yml for ansible-test); no development files. Usage: check-package.sh TARBALL
set -euo pipefail

tarball="$1"
version="$(basename "$tarball" .tar.gz)"
version="${version##*-}"
listing="$(tar -tzf "$tarball")"
failures=0

fail() {
    echo "FAILED: $tarball: $*" >&2
    failures=$((failures + 1))
}

for required in CHANGELOG.rst COPYING README.md requirements.txt meta/runtime.yml changelogs/changelog.yaml tests/config.yml; do
    grep -qxF "$required" <<<"$listing" || fail "$required is missing"
done
if grep -qxF CHANGELOG.rst <<<"$listing"; then
    # read whole first: grep -q stops reading early, and pipefail would take tar's SIGPIPE for a failure
    changelog="$(tar -xzOf "$tarball" CHANGELOG.rst)"
    grep -qxF "v$version" <<<"$changelog" || fail "CHANGELOG.rst has no section for v$version"
fi
if grep -qxF COPYING <<<"$listing"; then
    licence="$(tar -xzOf "$tarball" COPYING)"
    grep -q "GNU GENERAL PUBLIC LICENSE" <<<"$licence" || fail "COPYING is not the GPL text the headers name"
fi
# Fragments are the release's, consumed into changelog.yaml and CHANGELOG.rst.
unwanted="$(grep -E '^(tests/(unit|integration|nodes|localaws|helpers|stand_ins|output)/|tests/conftest\.py$|changelogs/fragments/.+|bench/|hack/|\.ci/|\.venv/|\.ansible/|\.mypy_cache/|\.pytest_cache/|build/|Makefile$|ansible\.cfg$|mypy\.ini$|pytest\.ini$|requirements-dev\.txt$|\.ansible-lint$)' \
    <<<"$listing" || true)"
[[ -z "$unwanted" ]] || fail "holds files its users cannot use: $(head -n 5 <<<"$unwanted" | tr '\n' ' ')"

if ((failures)); then
    exit 1
fi
echo "check-package: $tarball holds CHANGELOG.rst (v$version), COPYING, and no development files"
