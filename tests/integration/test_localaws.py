"""Smoke test of the local AWS (tests/localaws): the product's create_cluster.yml and delete_cluster.yml
against moto, with every instance a real Debian host in Docker and the API load balancer a real TCP proxy.

kubeadm, kubelet, kubectl and crictl on those hosts are stand-ins and the API server is the emulator
(tests/stand_ins): this proves the AWS part makes machines that Ansible reaches through the bastion and
the load balancer, not that Kubernetes runs. Needs root and Docker (`make test-localaws`).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALAWS = os.path.join(REPO, "tests", "localaws")
if LOCALAWS not in sys.path:
    sys.path.insert(0, LOCALAWS)

# tests/localaws/localaws.py, put on the path above
from localaws import LocalAws  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.localaws
VERSION = "v1.31.4"
PROFILES = ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io")
MANIFEST_SOURCES = os.path.join(REPO, "tests", "nodes", "files")
OUTPUT = os.path.join(REPO, "tests", "output", "localaws")
TASK_RE = re.compile(r"^TASK \[(.*)\] \*+$")


@pytest.fixture
def local_aws(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the local AWS needs root (Docker); run it as root, e.g. through `make test-localaws`")
    aws = LocalAws(str(tmp_path / "localaws"), REPO)
    try:
        aws.up()
        yield aws
    finally:
        sys.stderr.write("\n--- local AWS log (tail) ---\n%s\n" % aws.log_tail(3000))
        aws.down()


def make_spec(aws):
    """The example cluster made small and put in 198.18.0.0/15, in an account prepared as hack/demo_prepare.py does."""
    out = os.path.join(aws.state_dir, "spec.yml")
    subprocess.run([sys.executable, os.path.join(REPO, "hack", "demo_prepare.py"), "--spec", os.path.join(REPO, "examples", "capi-example.yml"),
                    "--out", out, "--key-dir", aws.state_dir], env=aws.env(), check=True, capture_output=True, text=True, timeout=300)
    iam = aws.client("iam")
    for profile in PROFILES:  # what bootstrap_iam.yml makes once per account
        iam.create_instance_profile(InstanceProfileName=profile)
    with open(out, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    cluster = spec["cluster"]
    cluster["network"].update(vpc_cidr="198.18.64.0/18", pod_cidr="198.18.128.0/17", service_cidr="198.19.128.0/18", nat_gateways="single")
    cluster["control_plane"]["replicas"] = 1
    cluster["machine_deployments"][0]["replicas"] = 1
    cluster["kubernetes_packages"] = {"source": "binaries", "binaries_dir": aws.binaries_dir(VERSION)}
    # no internet here: the add-on manifests the node tests apply (tests/nodes/files), under the names the addons role reads
    manifests = os.path.join(aws.state_dir, "manifests")
    os.makedirs(manifests, exist_ok=True)
    for source in os.listdir(MANIFEST_SOURCES):
        shutil.copyfile(os.path.join(MANIFEST_SOURCES, source), os.path.join(manifests, source.replace(".manifest", ".yaml")))
    cluster.setdefault("addons", {})["manifests_dir"] = manifests
    with open(out, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)
    return out, cluster


def last_task(output):
    tasks = [match.group(1) for match in (TASK_RE.match(line) for line in output.splitlines()) if match]
    return tasks[-1] if tasks else None


def trust_new_host_keys(aws):
    """Pre-seeded only in this smoke test: the product trusting a new machine's host key on first contact (also for the
    bastion jump's own ssh, which ANSIBLE_HOST_KEY_CHECKING does not reach) is being fixed in parallel (issue 7, "SSH
    host-key checking on first contact"); remove this and ANSIBLE_HOST_KEY_CHECKING below once that lands."""
    ssh_dir = os.path.join(aws.state_dir, "controller-home", ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(ssh_dir, "config"), "w", encoding="utf-8") as config:
        config.write("Host *\n  StrictHostKeyChecking accept-new\n")


def task_block(output, name):
    """The lines a task printed (up to the next TASK or PLAY), or None when it never ran."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = TASK_RE.match(line)
        if match and match.group(1) == name:
            end = next((other for other in range(index + 1, len(lines)) if lines[other].startswith(("TASK [", "PLAY "))), len(lines))
            return lines[index + 1:end]
    return None


def playbook(aws, name, spec_file, *extra):
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg")}  # see trust_new_host_keys
    key = os.path.join(aws.state_dir, "jonnung.pem")
    return aws.run(["ansible-playbook", os.path.join(REPO, "playbooks", name), "-e", "@" + spec_file, "-e", "ssh_private_key_file=" + key] + list(extra),
                   env=env, timeout=3600)


def test_create_and_delete_a_cluster_on_real_hosts(local_aws):
    aws = local_aws
    spec_file, cluster = make_spec(aws)
    trust_new_host_keys(aws)

    # As in the node tests (tests/nodes/test_node_roles.py): this machine's kernel has no br_netfilter module to load,
    # a limit of the test machine, not of the product.
    created = playbook(aws, "create_cluster.yml", spec_file, "-e", "node_prerequisites_load_kernel_modules=false")
    report = {"rc": created.returncode, "stopped_at": last_task(created.stdout)}
    sys.stderr.write("\ncreate_cluster.yml: %s\n%s\n" % (json.dumps(report), created.stdout[-6000:]))
    os.makedirs(OUTPUT, exist_ok=True)  # kept after the run (tests/output is not tracked): where the node plays stopped
    with open(os.path.join(OUTPUT, "create_cluster.log"), "w", encoding="utf-8") as log:
        log.write("%s\n%s\n%s" % (json.dumps(report), created.stdout, created.stderr))

    # the infra play got through: its last task ran and every instance of the cluster has its host
    assert "Show the cluster's phase" in created.stdout, created.stdout[-8000:]
    ec2 = aws.client("ec2")
    instances = [instance for reservation in ec2.describe_instances(Filters=[
        {"Name": "tag:sigs.k8s.io/cluster-api-provider-aws/cluster/%s" % cluster["name"], "Values": ["owned"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for instance in reservation["Instances"]]
    assert len(instances) == 3  # bastion, one control plane, one worker

    def all_up():
        found = aws.hosts()
        return found if all(found.get(instance["InstanceId"], {}).get("up") for instance in instances) else None

    hosts = aws.wait(all_up, 300, what="a host per instance")
    for instance in instances:
        host = hosts[instance["InstanceId"]]
        assert host["private_ip"] == instance["PrivateIpAddress"] and host["hostname"] == instance["PrivateDnsName"]
        assert host["public_ip"] == instance.get("PublicIpAddress")
        assert aws.exec(instance["InstanceId"], "hostname").stdout.strip() == instance["PrivateDnsName"]
        assert instance["PrivateIpAddress"] in aws.exec(instance["InstanceId"], "ip -4 -o addr").stdout
    proxies = aws.proxies()
    assert len(proxies) == 1 and next(iter(proxies.values()))["up"]

    # the node plays reached the machines through the bastion: SSH answered on each
    reached = task_block(created.stdout, "Wait until the machine answers over SSH")
    assert reached is not None and not [line for line in reached if line.startswith(("fatal:", "failed:"))], created.stdout[-8000:]
    assert "UNREACHABLE!" not in created.stdout, created.stdout[-8000:]
    # ... and all the way: kubeadm init on the control plane and the worker's join went through the load balancer's
    # proxy to the control-plane host (the kubelet stand-in forwarding to the VPC's emulator), and kubernetes.core
    # from the controller container too. Where it stops otherwise is in tests/output/localaws/create_cluster.log.
    assert created.returncode == 0, "create_cluster.yml stopped at %r:\n%s" % (report["stopped_at"], created.stdout[-8000:])
    vpc_id = instances[0]["VpcId"]
    nodes = [item for item in aws.emulator_get(vpc_id, "/stand-in/objects")["items"] if item["kind"] == "Node"]
    ready = {node["metadata"]["name"]: [c["status"] for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"] for node in nodes}
    names = {instance["PrivateDnsName"] for instance in instances if instance.get("PublicIpAddress") is None}
    assert set(ready) == names and all(status == ["True"] for status in ready.values()), ready
    control_plane = next(i["InstanceId"] for i in instances if i["PrivateDnsName"] in names and aws.stand_in_calls(i["InstanceId"], "kubeadm", "init"))
    assert len(aws.stand_in_calls(control_plane, "kubeadm", "init")) == 1
    kubeconfig = os.path.join(aws.state_dir, "controller-home", ".kube", cluster["name"] + ".kubeconfig")
    with open(kubeconfig, encoding="utf-8") as handle:
        assert next(iter(proxies.values()))["dns_name"] in handle.read()

    deleted = playbook(aws, "delete_cluster.yml", spec_file, "-e", "confirm_delete=true")
    assert deleted.returncode == 0, deleted.stdout[-8000:] + deleted.stderr[-3000:]
    aws.wait(lambda: not aws.hosts() and not aws.proxies(), 120, what="every host and proxy gone")
    assert not [line for line in subprocess.run(["docker", "ps", "-a", "--filter", "label=" + aws.label, "--format", "{{.Names}}"],
                                                capture_output=True, text=True, check=True).stdout.split() if line != "localaws-controller"]


def test_down_leaves_nothing_labelled(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the local AWS needs root (Docker)")
    aws = LocalAws(str(tmp_path / "state"), REPO)
    aws.up()
    aws.down()
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", "label=" + aws.label], capture_output=True, text=True, check=True).stdout.split()
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", "label=" + aws.label], capture_output=True, text=True, check=True).stdout.split()
    assert leftovers == [] and networks == []
