#!/usr/bin/env bash
# Check the documentation of the collection as users get it: build the artifact into build/ as
# it is released (hack/build-collection.sh), check what it holds (release notes, licence, no
# tests that cannot run from an installed copy), install that tarball (no dependencies: amazon.aws and kubernetes.core come from the venv's
# `ansible` package, Galaxy is never asked), then render every plugin's docs with ansible-doc
# from the installed copy. Fails on any ansible-doc error or warning, and on any plugin file
# that ansible-doc does not list (e.g. one left out of the build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
PATH="$(dirname "$python"):$PATH"
export PATH

work="$(mktemp -d "${TMPDIR:-/tmp}/kubecluster-docs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cd "$repo"
tarball="$(PYTHON="$python" hack/build-collection.sh | tail -n 1)"
hack/check-package.sh "$tarball"

# Only the installed copy may resolve: no ansible.cfg from the checkout (its collections_path
# leads to the checkout itself), no other collection paths.
cd "$work"
unset ANSIBLE_CONFIG
export ANSIBLE_COLLECTIONS_PATH="$work/collections"
export ANSIBLE_NOCOLOR=1
ansible-galaxy collection install --offline --no-deps --collections-path "$work/collections" "$tarball"
installed="$work/collections/ansible_collections/kubecluster/aws"
failures=0

# Runs ansible-doc; an error, a warning or a non-zero exit is a failure.
run_doc() {
    local out="$work/doc.out" err="$work/doc.err"
    if ansible-doc "$@" >"$out" 2>"$err" && ! grep -qE '\[(WARNING|ERROR)\]' "$err"; then
        return 0
    fi
    echo "FAILED: ansible-doc $*" >&2
    cat "$err" >&2
    failures=$((failures + 1))
    return 1
}

# Plugin names ansible-doc lists for a type in the installed collection.
listed() {
    ansible-doc -t "$1" --list kubecluster.aws --json 2>/dev/null | "$python" -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin))))'
}

echo "ansible-doc --list kubecluster.aws"
run_doc --list kubecluster.aws && cat "$work/doc.out"

# plugins/<dir> -> ansible-doc type, for every documented plugin type a collection can hold.
declare -A doc_type=(
    [modules]=module [inventory]=inventory [lookup]=lookup [filter]=filter [test]=test
    [callback]=callback [connection]=connection [become]=become [cache]=cache [vars]=vars
    [strategy]=strategy [shell]=shell [cliconf]=cliconf [httpapi]=httpapi [netconf]=netconf
)
for dir in "${!doc_type[@]}"; do
    type="${doc_type[$dir]}"
    [[ -d "$installed/plugins/$dir" ]] || continue
    names="$(listed "$type")"
    # filter and test files may hold several plugins under other names; the rest are one plugin per file
    if [[ "$type" != filter && "$type" != test ]]; then
        for file in "$repo/plugins/$dir"/*.py; do
            [[ -e "$file" ]] || continue
            stem="$(basename "$file" .py)"
            [[ "$stem" == __init__ || "$stem" == _* ]] && continue
            if ! grep -qxF "kubecluster.aws.$stem" <<<"$names"; then
                echo "FAILED: plugins/$dir/$stem.py is not listed by ansible-doc -t $type --list kubecluster.aws" >&2
                failures=$((failures + 1))
            fi
        done
    fi
    for name in $names; do
        echo "ansible-doc -t $type $name"
        run_doc -t "$type" "$name" || true
    done
done

# Roles that declare an argument spec document their entry points.
for spec in "$installed"/roles/*/meta/argument_specs.y*ml; do
    [[ -e "$spec" ]] || continue
    role="$(basename "$(dirname "$(dirname "$spec")")")"
    echo "ansible-doc -t role kubecluster.aws.$role"
    run_doc -t role "kubecluster.aws.$role" || true
done

if ((failures)); then
    echo "docs-check: $failures failure(s)" >&2
    exit 1
fi
echo "docs-check: all documentation renders"
