"""The node test harness itself: hosts reached over SSH through the bastion, the API emulator used by
real kubernetes.core tasks, and the stand-ins doing a kubeadm HA bootstrap on the Docker hosts."""

import json
import re
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.nodes

PING_PLAYBOOK = """
- name: Reach every machine
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:

    - name: Read where the SSH connection comes from
      ansible.builtin.command: printenv SSH_CLIENT
      register: harness_ssh_client
      changed_when: false

    - name: Show it
      ansible.builtin.debug:
        msg: "SSH_CLIENT={{ harness_ssh_client.stdout }} USER={{ ansible_user_id | default('') }}"

    - name: Become root
      ansible.builtin.command: id -u
      become: true
      register: harness_uid
      changed_when: false

    - name: Show the uid
      ansible.builtin.debug:
        msg: "UID={{ harness_uid.stdout }}"
"""

K8S_PLAYBOOK = """
- name: Use the API emulator like the roles will
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    harness_kubeconfig: "{{ kubeconfig }}"
  tasks:
    - name: List namespaces
      kubernetes.core.k8s_info:
        kubeconfig: "{{ harness_kubeconfig }}"
        kind: Namespace
      register: harness_namespaces

    - name: Show them
      ansible.builtin.debug:
        msg: "NAMESPACES={{ harness_namespaces.resources | map(attribute='metadata.name') | sort | join(',') }}"

    - name: Create a ConfigMap
      kubernetes.core.k8s:
        kubeconfig: "{{ harness_kubeconfig }}"
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata:
            name: harness
            namespace: kube-system
            labels:
              app: harness
          data:
            answer: "42"

    - name: Create a Deployment
      kubernetes.core.k8s:
        kubeconfig: "{{ harness_kubeconfig }}"
        apply: true
        definition:
          apiVersion: apps/v1
          kind: Deployment
          metadata:
            name: harness
            namespace: default
          spec:
            replicas: 2
            selector:
              matchLabels:
                app: harness
            template:
              metadata:
                labels:
                  app: harness
              spec:
                containers:
                  - name: web
                    image: registry.k8s.io/pause:3.10

    - name: Apply a DaemonSet server-side
      kubernetes.core.k8s:
        kubeconfig: "{{ harness_kubeconfig }}"
        server_side_apply:
          field_manager: harness
        definition:
          apiVersion: apps/v1
          kind: DaemonSet
          metadata:
            name: harness-agent
            namespace: kube-system
          spec:
            selector:
              matchLabels:
                app: harness-agent
            template:
              metadata:
                labels:
                  app: harness-agent
              spec:
                containers:
                  - name: agent
                    image: registry.k8s.io/pause:3.10

    - name: Find the ConfigMap by label
      kubernetes.core.k8s_info:
        kubeconfig: "{{ harness_kubeconfig }}"
        kind: ConfigMap
        namespace: kube-system
        label_selectors:
          - app=harness
      register: harness_found

    - name: Show it
      ansible.builtin.debug:
        msg: "FOUND={{ harness_found.resources | map(attribute='metadata.name') | join(',') }}"
"""

RECAP_LINE = re.compile(r'ok: \[(?P<host>[^\]]+)\] => \{\s*"msg": "(?P<msg>[^"]*)"', re.S)


def messages(stdout, prefix):
    """{host: text after prefix} from the debug messages starting with prefix."""
    found = {}
    for match in RECAP_LINE.finditer(stdout):
        if match.group("msg").startswith(prefix):
            found[match.group("host")] = match.group("msg")[len(prefix):]
    return found


def test_every_machine_answers_over_ssh_and_only_the_bastion_is_reached_directly(nodes_env, tmp_path):
    playbook = tmp_path / "ping.yml"
    playbook.write_text(PING_PLAYBOOK)

    result = nodes_env.run_playbook(str(playbook)).assert_ok()

    names = sorted(nodes_env.hosts)
    assert sorted(result.recap) == names
    assert all(result.recap[name]["ok"] == 5 and result.recap[name]["changed"] == 0 for name in names)
    clients = messages(result.stdout, "SSH_CLIENT=")
    # the controller talks to the bastion on its public address; every other machine sees the bastion's private
    # address as its SSH client, i.e. the connection was forwarded by the bastion (ProxyJump)
    assert clients["bastion"].split()[0] == "198.18.1.1"
    for host in nodes_env.cluster_hosts:
        assert clients[host.name].split()[0] == nodes_env.bastion.private_ip, host.name
        assert clients[host.name].split()[2] == "22"
    assert set(messages(result.stdout, "UID=").values()) == {"0"}
    # the bastion's sshd logged the forwarded connections (as in an AWS bastion's auth log)
    journal = nodes_env.exec("bastion", "journalctl -u ssh --no-pager -o cat").stdout
    assert "Accepted publickey for ansible" in journal


def test_inventory_has_the_contract_groups_and_host_vars(nodes_env):
    inventory = nodes_env.inventory()
    children = inventory["all"]["children"]

    assert list(children["bastion"]["hosts"]) == ["bastion"]
    assert list(children["kube_control_plane"]["hosts"]) == ["control-plane-0", "control-plane-1", "control-plane-2"]
    assert list(children["kube_node"]["children"]["kubecluster_md_md_0"]["hosts"]) == ["md-0-0", "md-0-1"]
    assert children["k8s_cluster"]["children"] == {"kube_control_plane": {}, "kube_node": {}}
    worker = children["kube_node"]["children"]["kubecluster_md_md_0"]["hosts"]["md-0-0"]
    assert worker["ansible_host"] == "198.18.2.21"
    assert worker["kubecluster_node_name"] == "ip-198-18-2-21.ap-northeast-2.compute.internal"
    assert worker["kubecluster_machine_set"] == "md-0"
    assert re.match(r"^i-0[0-9a-f]{16}$", worker["kubecluster_instance_id"])
    assert "-o ProxyJump=ansible@198.18.1.10" in worker["ansible_ssh_common_args"]
    assert "ProxyJump" not in children["bastion"]["hosts"]["bastion"]["ansible_ssh_common_args"]
    assert inventory["all"]["vars"]["kubecluster_control_plane_endpoint"] == "198.18.2.1:6443"
    # every address the harness uses is in the benchmarking range 198.18.0.0/15
    addresses = [host.private_ip for host in nodes_env.hosts.values()] + [nodes_env.bastion.public_ip, nodes_env.api_endpoint.split(":")[0]]
    assert all(address.startswith("198.18.") for address in addresses)
    assert nodes_env.exec("md-0-0", "hostname").stdout.strip() == "ip-198-18-2-21.ap-northeast-2.compute.internal"


def test_the_api_emulator_serves_kubernetes_core(nodes_env, tmp_path):
    nodes_env.reset_api()
    playbook = tmp_path / "k8s.yml"
    playbook.write_text(K8S_PLAYBOOK)

    first = nodes_env.run_playbook(str(playbook), extra_vars={"kubeconfig": nodes_env.kubeconfig_path}).assert_ok()
    nodes_env.api.clear_requests()
    revision = nodes_env.api.store.revision
    second = nodes_env.run_playbook(str(playbook), extra_vars={"kubeconfig": nodes_env.kubeconfig_path}).assert_ok()

    assert messages(first.stdout, "NAMESPACES=")["localhost"] == "default,kube-node-lease,kube-public,kube-system"
    assert messages(first.stdout, "FOUND=")["localhost"] == "harness"
    assert first.recap["localhost"]["changed"] == 3
    assert second.recap["localhost"]["changed"] == 0
    assert nodes_env.api_object("ConfigMap", "harness", "kube-system")["data"] == {"answer": "42"}
    deployment = nodes_env.api_object("Deployment", "harness", "default")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    assert deployment["status"]["replicas"] == 2 and "availableReplicas" not in deployment["status"]  # no Ready node yet
    # kubernetes.core sends its patches again on a rerun; the emulator, like an API server, changes nothing for them
    writes = [(entry["method"], entry["path"].rsplit("/", 2)[-2]) for entry in nodes_env.api_requests(writes_only=True)]
    assert writes == [("PATCH", "configmaps"), ("PATCH", "deployments"), ("PATCH", "daemonsets")], nodes_env.api_requests(writes_only=True)
    assert nodes_env.api.store.revision == revision
    assert all(entry["user"] == "kubernetes-admin" for entry in nodes_env.api_requests())


KUBELET_UNIT = """[Unit]
Description=kubelet (harness test)
After=network-online.target
[Service]
ExecStart=/usr/local/bin/kubelet
Restart=always
RestartSec=2
[Install]
WantedBy=multi-user.target
"""
KUBELET_DROP_IN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
ExecStart=
ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""
HARNESS_FILES = ("/usr/local/bin/kubeadm /usr/local/bin/kubelet /usr/local/bin/kubectl /usr/local/bin/crictl /etc/systemd/system/kubelet.service "
                 "/etc/systemd/system/kubelet.service.d /run/containerd /tmp/harness-*.yaml")


def install_like_a_role(nodes_env, host):
    """What the roles do before kubeadm, in the least possible form: binaries, kubelet.service, a CRI socket."""
    binaries = nodes_env.stand_in_binaries()
    for name in ("kubeadm", "kubelet", "kubectl", "crictl"):
        with open("%s/%s" % (binaries, name), "rb") as handle:
            install = "cat > /usr/local/bin/%s && chmod 0755 /usr/local/bin/%s" % (name, name)
            subprocess.run(["docker", "exec", "-i", nodes_env.host(host).container, "sh", "-c", install], stdin=handle, check=True, capture_output=True)
    nodes_env.exec(host, "mkdir -p /etc/systemd/system/kubelet.service.d /run/containerd && : > /run/containerd/containerd.sock && "
                         "cat > /etc/systemd/system/kubelet.service <<'EOF'\n%sEOF\n"
                         "cat > /etc/systemd/system/kubelet.service.d/10-kubeadm.conf <<'EOF'\n%sEOF\n"
                         "systemctl daemon-reload && systemctl enable kubelet" % (KUBELET_UNIT, KUBELET_DROP_IN))


def test_the_stand_ins_bootstrap_an_ha_cluster_on_the_hosts(clean_nodes):
    env = clean_nodes
    first, second = env.control_planes[:2]
    worker = env.workers[0]
    try:
        for host in (first, second, worker):
            install_like_a_role(env, host)
        env.exec(first, "cat > /tmp/harness-init.yaml <<'EOF'\n" + textwrap.dedent("""\
            apiVersion: kubeadm.k8s.io/v1beta4
            kind: InitConfiguration
            nodeRegistration:
              name: %s
            ---
            apiVersion: kubeadm.k8s.io/v1beta4
            kind: ClusterConfiguration
            kubernetesVersion: %s
            controlPlaneEndpoint: "%s"
            networking:
              podSubnet: 192.168.0.0/16
            """) % (first.node_name, env.kubernetes_version, env.api_endpoint) + "EOF")

        init = env.exec(first, "kubeadm init --config /tmp/harness-init.yaml --upload-certs", check=False)
        assert init.returncode == 0, init.stdout + init.stderr
        key = re.search(r"--certificate-key ([0-9a-f]{64})", init.stdout).group(1)
        join = re.search(r"kubeadm join (\S+) --token (\S+) \\\s+--discovery-token-ca-cert-hash (\S+)\s*$", init.stdout).groups()
        kubelet = env.exec(first, "systemctl is-active kubelet && curl -s http://127.0.0.1:10248/healthz").stdout.split()
        assert kubelet == ["active", "ok"]

        env.exec(second, "cat > /tmp/harness-join.yaml <<'EOF'\n" + textwrap.dedent("""\
            apiVersion: kubeadm.k8s.io/v1beta4
            kind: JoinConfiguration
            nodeRegistration:
              name: %s
            discovery:
              bootstrapToken:
                apiServerEndpoint: "%s"
                token: %s
                caCertHashes: ["%s"]
            controlPlane:
              certificateKey: "%s"
            """) % (second.node_name, join[0], join[1], join[2], key) + "EOF")
        assert env.exec(second, "kubeadm join --config /tmp/harness-join.yaml", check=False).returncode == 0
        worker_join = env.exec(worker, "kubeadm join %s --token %s --discovery-token-ca-cert-hash %s --node-name %s" % (join + (worker.node_name,)),
                               check=False)
        assert worker_join.returncode == 0, worker_join.stderr

        nodes = {node["metadata"]["name"]: node for node in env.api_objects("Node")}
        assert sorted(nodes) == sorted(host.node_name for host in (first, second, worker))
        assert all(node["status"]["conditions"][-1]["status"] == "False" for node in nodes.values())  # NotReady: no CNI yet
        kubectl = env.exec(first, "KUBECONFIG=/etc/kubernetes/admin.conf kubectl get nodes -o json").stdout
        assert len(json.loads(kubectl)["items"]) == 3
        env.api.store.create(env.api.store.resource("apps", "v1", "daemonsets"), "kube-system", {
            "metadata": {"name": "calico-node"}, "spec": {"selector": {"matchLabels": {"k8s-app": "calico-node"}}, "template": {}}})
        assert all(node["status"]["conditions"][-1]["status"] == "True" for node in env.api_objects("Node"))

        calls = env.stand_in_calls(first, "kubeadm", "init")
        assert calls[-1]["exit_code"] == 0 and calls[-1]["configs"][0]["documents"][1]["controlPlaneEndpoint"] == env.api_endpoint
        assert env.stand_in_calls(second, "kubeadm", "join")[-1]["configs"][0]["documents"][0]["controlPlane"]["certificateKey"] == key
        assert [call["exit_code"] for call in env.stand_in_calls(worker, "kubelet")][-1] is None  # the service is running
        rerun = env.exec(first, "kubeadm init --config /tmp/harness-init.yaml --upload-certs", check=False)
        assert rerun.returncode == 1 and "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]" in rerun.stderr

        assert env.exec(worker, "kubeadm reset -f", check=False).returncode == 0
        assert not env.file_exists(worker, "/etc/kubernetes/kubelet.conf")
    finally:
        env.wipe_hosts()
        for host in (first, second, worker):
            env.exec(host, "systemctl disable --now kubelet 2>/dev/null; rm -rf %s; systemctl daemon-reload" % HARNESS_FILES, check=False)
