#!/usr/bin/env bash
# `make demo`: create the example cluster against a local AWS (moto) and show its status.
#   hack/demo.sh        start the server (or reuse the running one), prepare it, run the playbooks
#   hack/demo.sh stop   stop the server it started
# The server keeps running after the demo so the cluster can be looked at; its pid, port and
# log are in .cache/demo/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_bin="${VENV_BIN:-$repo/.venv/bin}"
state="$repo/.cache/demo"
pid_file="$state/moto_server.pid"
port_file="$state/moto_server.port"
example="$repo/examples/capi-example.yml"
spec="$state/capi-example.yml"

# The pid of the demo's moto server if it is still that process, else nothing.
running_pid() {
    local pid
    [[ -f "$pid_file" ]] || return 0
    pid="$(cat "$pid_file")"
    if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server; then
        echo "$pid"
    fi
}

wait_until_up() {
    "$venv_bin/python" - "$1" <<'EOF'
import sys, time, urllib.error, urllib.request
url = "http://127.0.0.1:%s/moto-api/data.json" % sys.argv[1]
for _ in range(600):
    try:
        urllib.request.urlopen(url, timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("moto_server did not answer on " + url)
EOF
}

start_server() {
    local pid port
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        echo "Reusing the local AWS (moto_server pid $pid) at http://127.0.0.1:$(cat "$port_file")"
        return
    fi
    port="$("$venv_bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    nohup "$venv_bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto_server.log" 2>&1 </dev/null &
    echo $! >"$pid_file"
    echo "$port" >"$port_file"
    if ! wait_until_up "$port"; then
        tail -n 50 "$state/moto_server.log" >&2
        stop_server
        exit 1
    fi
    echo "Started a local AWS (moto_server pid $(cat "$pid_file")) at http://127.0.0.1:$port"
}

stop_server() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        kill "$pid"
        for _ in {1..50}; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid"
        fi
        echo "Stopped moto_server (pid $pid)"
    else
        echo "No demo moto_server is running"
    fi
    rm -f "$pid_file" "$port_file"
}

# Point every AWS client at the local server with credentials that can reach nothing else.
use_local_aws() {
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_REGION AWS_URL EC2_URL AWS_SECURITY_TOKEN
    AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$port_file")"
    export AWS_ENDPOINT_URL
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
    export AWS_DEFAULT_REGION=ap-northeast-2 AWS_EC2_METADATA_DISABLED=true
}

demo() {
    mkdir -p "$state"
    "$repo/hack/link-collection.sh"
    start_server
    use_local_aws
    "$venv_bin/python" "$repo/hack/demo_prepare.py" --spec "$example" --out "$spec" --key-dir "$state"

    cd "$repo"
    export PATH="$venv_bin:$PATH"
    # Once per account, as with `clusterawsadm bootstrap iam create-cloudformation-stack`.
    ansible-playbook playbooks/bootstrap_iam.yml -e "@$spec"
    # Not the node plays (tag nodes): moto's instances are records, not machines to configure.
    ansible-playbook playbooks/create_cluster.yml -e "@$spec" --skip-tags nodes
    ansible-playbook playbooks/cluster_status.yml -e "@$spec"

    cat <<EOF

The cluster above lives in a local AWS (moto) at $AWS_ENDPOINT_URL; its spec is $spec.
Look around with the same environment, e.g.
  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
    .venv/bin/ansible-playbook playbooks/delete_cluster.yml -e @$spec -e confirm_delete=true
Stop the server with: make demo-stop
EOF
}

case "${1:-demo}" in
    demo) demo ;;
    stop) stop_server ;;
    *) echo "usage: $0 [demo|stop]" >&2; exit 2 ;;
esac
