#!/usr/bin/env bash
# Make this checkout resolvable as the collection kubecluster.aws through ansible.cfg's
# collections_path: .ansible/collections/ansible_collections/kubecluster/aws -> the checkout.
# tests/conftest.py makes the same link for pytest.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace_dir="$repo/.ansible/collections/ansible_collections/kubecluster"
link="$namespace_dir/aws"

mkdir -p "$namespace_dir"
if [[ -L "$link" ]]; then
    exit 0
fi
if [[ -e "$link" ]]; then
    echo "link-collection: $link exists and is not a symlink; remove it and rerun" >&2
    exit 1
fi
ln -s ../../../.. "$link"
