#!/usr/bin/env bash
# Make this machine able to run the node tests (tests/nodes): the Docker engine and debootstrap
# from Debian's archive, and dockerd running. Idempotent: installs only what is missing and
# starts dockerd only when no daemon answers. Needs root (apt-get, dockerd); the node test
# fixtures call it, and .ci/run may call it before pytest.
#
# dockerd's default bridge gets 198.19.0.1/24 so that every address the tests use stays in
# 198.18.0.0/15 (the benchmarking range), clear of networks a developer's machine may route.
set -euo pipefail

dockerd_log="${KUBECLUSTER_DOCKERD_LOG:-/var/log/kubecluster-dockerd.log}"
dockerd_wait_seconds="${KUBECLUSTER_DOCKERD_WAIT:-60}"

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# docker.io's client is found through PATH; another client (e.g. a static build) does as well
command -v docker >/dev/null 2>&1 || missing+=(docker.io)

if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # no recommends: docker.io would pull in git, apparmor and needrestart, none of which the tests use
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

# setsid and nohup: dockerd outlives the pytest or CI process that started it, as a system
# service would; later runs reuse it (see the check above)
setsid nohup dockerd --bip 198.19.0.1/24 >>"$dockerd_log" 2>&1 </dev/null &

for ((second = 0; second < dockerd_wait_seconds; second++)); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "nodes-env: dockerd did not answer within ${dockerd_wait_seconds}s; last lines of $dockerd_log:" >&2
tail -n 20 "$dockerd_log" >&2
exit 1
