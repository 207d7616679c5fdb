#!/usr/bin/env bash
# `make demo`: the README's main job against a local AWS, and the cluster it made.
#   hack/demo.sh        create the example cluster and show it
#   hack/demo.sh stop   remove everything the demo started (`make demo-stop`)
#
# As root with Docker (installed and started when missing, as for the node tests) the local AWS
# is tests/localaws: moto, whose instances are Debian 12 hosts in Docker at their own addresses,
# a TCP proxy per load balancer, and Ansible run from a controller container on its "internet"
# (as an AWX execution environment runs it). The demo then runs bootstrap_iam.yml, the whole
# create_cluster.yml (AWS part and node plays, through the bastion it made, joined through the
# load balancer it made), cluster_status.yml, and lists the Nodes the kubeconfig's API reports.
# There kubeadm, kubelet, kubectl and crictl are stand-ins and the API server is an emulator
# (tests/stand_ins); the AWS API, the hosts, SSH, systemd, containerd, the network and the load
# balancing are real. Without root or Docker it says why and runs the AWS part alone on moto.
# The local AWS keeps running after the demo so the cluster can be looked at; its state, logs and
# the controller's home (kubeconfig, known_hosts) are in .cache/demo/.
#   DEMO_VERBOSE=1    stream every playbook's output (default: a log per playbook, recap shown)
#   DEMO_AWS_ONLY=1   the AWS part alone, even where the hosts could run
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_bin="${VENV_BIN:-$repo/.venv/bin}"
state="$repo/.cache/demo"
pid_file="$state/moto_server.pid"
port_file="$state/moto_server.port"
localaws_state="$state/localaws"
logs="$state/logs"
example="$repo/examples/capi-example.yml"
spec="$state/capi-example.yml"
verbose="${DEMO_VERBOSE:-0}"
localaws=("$venv_bin/python" "$repo/tests/localaws/localaws.py")

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

phase_number=0
phase_count=0
phase() {
    phase_number=$((phase_number + 1))
    printf '\n==> [%d/%d] %s   (%ds so far)\n' "$phase_number" "$phase_count" "$1" "$SECONDS"
}

# Why this machine cannot run the local AWS's hosts; nothing when it can.
why_no_hosts() {
    local out
    if [[ "${DEMO_AWS_ONLY:-0}" == 1 ]]; then
        echo "DEMO_AWS_ONLY=1 asks for the AWS part alone"
    elif [[ $EUID -ne 0 ]]; then
        echo "the local AWS's hosts are Docker containers, which need root (run make demo as root)"
    elif ! out="$(bash "$repo/hack/nodes-env.sh" 2>&1)"; then
        echo "Docker could not be installed or started by hack/nodes-env.sh: ${out##*$'\n'}"
    fi
}

# ansible-playbook in the local AWS's controller container. Its output goes to a log; the
# messages and the recap (or, when it fails, the end of the log) to the terminal.
playbook() {
    local log="$logs/$1.log"
    shift
    local command=("${localaws[@]}" run --state "$localaws_state" -- ansible-playbook "$@")
    if [[ "$verbose" == 1 ]]; then
        "${command[@]}" 2>&1 | tee "$log"
    elif ! "${command[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "FAILED: ansible-playbook $* (whole output: $log)" >&2
        exit 1
    else
        grep -E '^ +"msg": ' "$log" | sed -E 's/^ +"msg": "?//; s/",?$//; s/^/    /' || true
        sed -n '/^PLAY RECAP/,$p' "$log" | sed '/^$/d; s/^/    /'
        echo "    (whole output: $log)"
    fi
}

demo_with_hosts() {
    local kubeconfig="$localaws_state/controller-home/.kube/capi-example.kubeconfig"
    phase_count=6
    phase "Start the local AWS: moto, whose instances become Debian 12 hosts in Docker (the image is built once)"
    "${localaws[@]}" up --state "$localaws_state" | sed -n '1p'

    phase "Make the local account look like a real one (key pair, CAPA and Ubuntu images); write the demo spec"
    (
        # shellcheck source=/dev/null
        source "$localaws_state/env"
        "$venv_bin/python" "$repo/hack/demo_prepare.py" --spec "$example" --out "$spec" --key-dir "$state" \
            --local-hosts "$localaws_state" | sed 's/^/    /'
    )

    phase "bootstrap_iam.yml: IAM roles, policies and instance profiles, once per account"
    playbook 1-bootstrap_iam "$repo/playbooks/bootstrap_iam.yml" -e "@$spec"

    phase "create_cluster.yml: network, bastion, machines, load balancer; kubeadm on the machines through the bastion"
    # The containers share this machine's kernel: no modprobe in them (the modules file is still written).
    playbook 2-create_cluster "$repo/playbooks/create_cluster.yml" -e "@$spec" -e "ssh_private_key_file=$state/jonnung.pem" \
        -e node_prerequisites_load_kernel_modules=false

    phase "cluster_status.yml: the cluster's phase (kubectl get cluster)"
    playbook 3-cluster_status "$repo/playbooks/cluster_status.yml" -e "@$spec"

    phase "The Nodes as the API behind the kubeconfig reports them (kubectl get nodes), and the hosts behind the instances"
    "${localaws[@]}" run --state "$localaws_state" -- python "$repo/hack/demo_nodes.py" "$kubeconfig"
    "${localaws[@]}" status --state "$localaws_state" | sed -n '/^  instance\|^  load balancer/p'

    local tool=".venv/bin/python tests/localaws/localaws.py"
    local at="--state ${localaws_state#"$repo"/}"
    cat <<EOF

Done in ${SECONDS}s. Real here: the AWS API (moto), every EC2 instance a Debian 12 host in Docker at its
own address, SSH through the bastion, the load balancer a TCP proxy to the healthy control planes,
systemd, containerd, the packages and files the roles write. Stand-ins: kubeadm, kubelet, kubectl and
crictl on the hosts, and the API server is an emulator (tests/stand_ins), so no pod runs.
  spec:        ${spec#"$repo"/}
  kubeconfig:  ${kubeconfig#"$repo"/}
               (its server's name resolves inside the local AWS: $tool run $at -- CMD)
  local AWS:   $tool status $at
  delete:      $tool run $at -- \\
                 ansible-playbook playbooks/delete_cluster.yml -e @${spec#"$repo"/} -e confirm_delete=true
  stop it all: make demo-stop
EOF
}

# Without the hosts: moto alone, and the AWS part of create_cluster.yml.
demo_aws_only() {
    phase_count=4
    phase "Start a local AWS (moto)"
    start_server
    use_local_aws

    phase "Make the local account look like a real one (key pair, CAPA and Ubuntu images); write the demo spec"
    "$venv_bin/python" "$repo/hack/demo_prepare.py" --spec "$example" --out "$spec" --key-dir "$state" | sed 's/^/    /'

    cd "$repo"
    export PATH="$venv_bin:$PATH"
    phase "bootstrap_iam.yml, then create_cluster.yml without the node plays (--skip-tags nodes)"
    ansible-playbook playbooks/bootstrap_iam.yml -e "@$spec"
    ansible-playbook playbooks/create_cluster.yml -e "@$spec" --skip-tags nodes

    phase "cluster_status.yml"
    ansible-playbook playbooks/cluster_status.yml -e "@$spec"

    cat <<EOF

The cluster above lives in a local AWS (moto) at $AWS_ENDPOINT_URL; its spec is $spec.
Its machines are records only, the node plays did not run: $1.
Look around with the same environment, e.g.
  AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
    .venv/bin/ansible-playbook playbooks/delete_cluster.yml -e @$spec -e confirm_delete=true
Stop the server with: make demo-stop
EOF
}

demo() {
    local reason
    mkdir -p "$state" "$logs"
    "$repo/hack/link-collection.sh"
    reason="$(why_no_hosts)"
    if [[ -z "$reason" ]]; then
        demo_with_hosts
    else
        echo "make demo: the AWS part alone, because $reason"
        demo_aws_only "$reason"
    fi
}

stop() {
    if [[ -d "$localaws_state" ]]; then
        "${localaws[@]}" down --state "$localaws_state"
    fi
    stop_server
}

case "${1:-demo}" in
    demo) demo ;;
    stop) stop ;;
    *) echo "usage: $0 [demo|stop]" >&2; exit 2 ;;
esac
