"""The whole create, end to end, on the local AWS (tests/localaws): the product's create_cluster.yml and
delete_cluster.yml run with ansible-playbook as a user runs them (no host-key seeding, no extra settings
but the two limits of this machine noted at LIMITS), against moto, with every instance a real Debian host
in Docker and the API load balancer a real TCP proxy.

kubeadm, kubelet, kubectl and crictl on those hosts are stand-ins and the API server is the emulator
(tests/stand_ins): this proves the AWS part, the hosts' configuration, the order and endpoints of the
kubeadm calls and what reaches the API, not that Kubernetes runs. Needs root and Docker
(`make test-localaws`). One local AWS serves the whole module (its daemon and hosts image come up once);
each scenario creates and deletes its own cluster in its own VPC.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALAWS = os.path.join(REPO, "tests", "localaws")
if LOCALAWS not in sys.path:
    sys.path.insert(0, LOCALAWS)

from helpers.test_hosts import call_document as document, call_interval as interval, parse_recap  # noqa: E402  pylint: disable=wrong-import-position
# tests/localaws/localaws.py, put on the path above
from localaws import LocalAws  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.kubecluster.aws.plugins.module_utils.capi_manifest import manifest_to_spec  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import resolve  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.localaws
VERSION = "v1.31.4"
PROFILES = ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io")
MANIFEST_SOURCES = os.path.join(REPO, "tests", "nodes", "files")
# what `clusterctl generate cluster capi-example ...` writes for CAPA's default flavor (the import's golden file)
QUICK_START_MANIFEST = os.path.join(REPO, "tests", "unit", "plugins", "capi", "capa-2cf09d78-default.manifest")
OUTPUT = os.path.join(REPO, "tests", "output", "localaws")
TASK_RE = re.compile(r"^TASK \[(.*)\] \*+$")
OWNER_TAG = "sigs.k8s.io/cluster-api-provider-aws/cluster/%s"
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
# kubeadm subcommands that change a host or the cluster (a rerun must make none of them)
KUBEADM_WRITES = ("init", "join", "reset", "token")
# Limits of this machine, not of the product: its kernel has no br_netfilter module to load (as in the node
# tests, tests/nodes/test_node_roles.py); and there is no internet, so the add-on manifests come from
# cluster.addons.manifests_dir (make_spec).
LIMITS = ("-e", "node_prerequisites_load_kernel_modules=false")
TIMINGS = {}


def elastic_ip_in_range(address):
    """moto's public and Elastic IPs on the local AWS come from 198.19.24.0/21."""
    octets = [int(part) for part in address.split(".")]
    return octets[:2] == [198, 19] and 24 <= octets[2] < 32


def test_down_leaves_nothing_labelled(tmp_path):
    """First in the module: the scenarios' local AWS (module scope) holds the machine lock until the module ends."""
    if os.geteuid() != 0:
        pytest.fail("the local AWS needs root (Docker)")
    aws = LocalAws(str(tmp_path / "state"), REPO)
    aws.up()
    aws.down()
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter", "label=" + aws.label], capture_output=True, text=True, check=True).stdout.split()
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", "label=" + aws.label], capture_output=True, text=True, check=True).stdout.split()
    assert leftovers == [] and networks == []


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory):
    """One local AWS for the module, in an account prepared as hack/demo_prepare.py and bootstrap_iam.yml leave it."""
    if os.geteuid() != 0:
        pytest.fail("the local AWS needs root (Docker); run it as root, e.g. through `make test-localaws`")
    aws = LocalAws(str(tmp_path_factory.mktemp("localaws") / "state"), REPO)
    try:
        started = time.time()
        aws.up()
        spec = os.path.join(aws.state_dir, "demo-spec.yml")
        subprocess.run([sys.executable, os.path.join(REPO, "hack", "demo_prepare.py"), "--spec", os.path.join(REPO, "examples", "capi-example.yml"),
                        "--out", spec, "--key-dir", aws.state_dir], env=aws.env(), check=True, capture_output=True, text=True, timeout=300)
        for profile in PROFILES:  # what bootstrap_iam.yml makes once per account
            aws.client("iam").create_instance_profile(InstanceProfileName=profile)
        TIMINGS["local AWS up"] = round(time.time() - started, 1)
        yield aws
    finally:
        sys.stderr.write("\n--- local AWS log (tail) ---\n%s\n" % aws.log_tail(3000))
        aws.down()
        sys.stderr.write("localaws timings (s): %s\n" % json.dumps(TIMINGS))


def make_spec(aws, name, vpc_cidr, control_planes, workers, nat_gateways):
    """The example cluster as demo_prepare.py wrote it, renamed and put in 198.18.0.0/15 (pods and services too)."""
    with open(os.path.join(aws.state_dir, "demo-spec.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    cluster = spec["cluster"]
    cluster["name"] = name
    cluster["network"].update(vpc_cidr=vpc_cidr, pod_cidr="198.18.128.0/17", service_cidr="198.19.128.0/18", nat_gateways=nat_gateways)
    cluster["control_plane"]["replicas"] = control_planes
    cluster["machine_deployments"][0]["replicas"] = workers
    cluster["kubernetes_packages"] = {"source": "binaries", "binaries_dir": aws.binaries_dir(VERSION)}
    # no internet here: the add-on manifests the node tests apply (tests/nodes/files), under the names the addons role reads
    manifests = os.path.join(aws.state_dir, "manifests")
    os.makedirs(manifests, exist_ok=True)
    for source in os.listdir(MANIFEST_SOURCES):
        shutil.copyfile(os.path.join(MANIFEST_SOURCES, source), os.path.join(manifests, source.replace(".manifest", ".yaml")))
    cluster.setdefault("addons", {})["manifests_dir"] = manifests
    out = os.path.join(aws.state_dir, name + ".yml")
    with open(out, "w", encoding="utf-8") as handle:
        yaml.safe_dump(spec, handle)
    return out, cluster


# -- playbook runs ------------------------------------------------------------------------------------------------
class Run:
    """One ansible-playbook run in the controller container, its log kept in tests/output/localaws/<label>.log."""

    def __init__(self, aws, label, playbook, spec_file, *extra):
        key = os.path.join(aws.state_dir, "jonnung.pem")  # the example's key pair, imported by demo_prepare.py
        started = time.time()
        completed = aws.run(["ansible-playbook", os.path.join(REPO, "playbooks", playbook), "-e", "@" + spec_file,
                             "-e", "ssh_private_key_file=" + key] + list(extra), env={"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg")}, timeout=3600)
        self.started, self.seconds = started, round(time.time() - started, 1)
        TIMINGS[label] = self.seconds
        self.rc, self.stdout, self.stderr = completed.returncode, completed.stdout, completed.stderr
        tasks = [match.group(1) for match in (TASK_RE.match(line) for line in self.stdout.splitlines()) if match]
        self.stopped_at = tasks[-1] if tasks else None
        os.makedirs(OUTPUT, exist_ok=True)  # kept after the run (tests/output is not tracked)
        with open(os.path.join(OUTPUT, label + ".log"), "w", encoding="utf-8") as log:
            log.write("rc=%s stopped_at=%r seconds=%s\n%s\n%s" % (self.rc, self.stopped_at, self.seconds, self.stdout, self.stderr))

    @property
    def recap(self):
        """host -> {ok, changed, unreachable, failed, ...} from the PLAY RECAP."""
        return parse_recap(self.stdout)

    def assert_ok(self):
        assert self.rc == 0 and "UNREACHABLE!" not in self.stdout, "%s stopped at %r:\n%s\n%s" % (
            "the playbook", self.stopped_at, self.stdout[-8000:], self.stderr[-3000:])


# -- what moto holds ------------------------------------------------------------------------------------------------
def owned(aws, name):
    """The cluster's resources that are not gone, by kind (instances not terminated, NAT gateways not deleted)."""
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    owner = [{"Name": "tag:" + OWNER_TAG % name, "Values": ["owned"]}]
    balancers = [lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"].startswith(name + "-")]
    groups = elbv2.describe_target_groups()["TargetGroups"]
    tagged_groups = []
    if groups:
        descriptions = elbv2.describe_tags(ResourceArns=[group["TargetGroupArn"] for group in groups])["TagDescriptions"]
        owned_arns = {entry["ResourceArn"] for entry in descriptions if any(tag["Key"] == OWNER_TAG % name for tag in entry["Tags"])}
        tagged_groups = [group for group in groups if group["TargetGroupArn"] in owned_arns]
    return {
        "vpcs": ec2.describe_vpcs(Filters=owner)["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=owner)["Subnets"],
        "internet_gateways": ec2.describe_internet_gateways(Filters=owner)["InternetGateways"],
        "nat_gateways": [nat for nat in ec2.describe_nat_gateways(Filters=owner)["NatGateways"] if nat["State"] != "deleted"],
        "addresses": ec2.describe_addresses(Filters=owner)["Addresses"],
        "route_tables": ec2.describe_route_tables(Filters=owner)["RouteTables"],
        "security_groups": ec2.describe_security_groups(Filters=owner)["SecurityGroups"],
        "instances": [instance for reservation in ec2.describe_instances(Filters=owner)["Reservations"] for instance in reservation["Instances"]
                      if instance["State"]["Name"] != "terminated"],
        "volumes": ec2.describe_volumes(Filters=owner)["Volumes"],
        "network_interfaces": ec2.describe_network_interfaces(Filters=owner)["NetworkInterfaces"],
        "load_balancers": balancers,
        "target_groups": tagged_groups,
    }


def tags(resource):
    return {tag["Key"]: tag["Value"] for tag in resource.get("Tags", [])}


def role(resource):
    return tags(resource).get("sigs.k8s.io/cluster-api-provider-aws/role")


def assert_network(aws, name, cluster, found, nat_count):
    """VPC, subnets, gateways, Elastic IPs and routes as CAPA makes them; every resource carries the ownership tag."""
    ec2 = aws.client("ec2")
    (vpc,) = found["vpcs"]
    assert vpc["CidrBlock"] == cluster["network"]["vpc_cidr"]
    public = [subnet for subnet in found["subnets"] if role(subnet) == "public"]
    private = [subnet for subnet in found["subnets"] if role(subnet) == "private"]
    assert len(public) == len(private) == 3 and len(found["subnets"]) == 6
    assert len({subnet["AvailabilityZone"] for subnet in public}) == 3 == len({subnet["AvailabilityZone"] for subnet in private})
    assert all(subnet["VpcId"] == vpc["VpcId"] for subnet in found["subnets"])
    (igw,) = found["internet_gateways"]
    assert [attachment["VpcId"] for attachment in igw["Attachments"]] == [vpc["VpcId"]]
    nats = found["nat_gateways"]
    assert len(nats) == nat_count and all(nat["State"] == "available" for nat in nats), nats
    assert {nat["SubnetId"] for nat in nats} <= {subnet["SubnetId"] for subnet in public}
    assert len({nat["SubnetId"] for nat in nats}) == nat_count  # per_az: one per public subnet
    addresses = found["addresses"]
    assert len(addresses) == nat_count and all(elastic_ip_in_range(address["PublicIp"]) for address in addresses), addresses
    assert {address["AllocationId"] for address in addresses} == {nat["NatGatewayAddresses"][0]["AllocationId"] for nat in nats}
    # routes: the public subnets go out through the internet gateway, each private one through a NAT gateway
    tables = {association["SubnetId"]: table for table in found["route_tables"] for association in table["Associations"] if association.get("SubnetId")}
    assert set(tables) == {subnet["SubnetId"] for subnet in found["subnets"]}
    nat_by_zone = {ec2.describe_subnets(SubnetIds=[nat["SubnetId"]])["Subnets"][0]["AvailabilityZone"]: nat["NatGatewayId"] for nat in nats}
    for subnet in public:
        assert {"0.0.0.0/0": igw["InternetGatewayId"]}.items() <= routes(tables[subnet["SubnetId"]]).items()
    for subnet in private:
        target = routes(tables[subnet["SubnetId"]]).get("0.0.0.0/0")
        if nat_count == 3:
            assert target == nat_by_zone[subnet["AvailabilityZone"]], (subnet["AvailabilityZone"], target)
        else:
            assert target == nats[0]["NatGatewayId"]
    for kind, resources in found.items():
        if kind in ("load_balancers", "target_groups"):
            continue
        for resource in resources:
            assert tags(resource).get(OWNER_TAG % name) == "owned", (kind, resource)
    return vpc, public, private


def routes(table):
    return {route.get("DestinationCidrBlock"): route.get("GatewayId") or route.get("NatGatewayId") for route in table["Routes"]}


def instance_groups(instance):
    """An instance's security groups. The product launches with an explicit network interface (NetworkInterfaces[].Groups);
    AWS reports those groups in the instance's SecurityGroups as well, moto only on the interface."""
    return {group["GroupId"] for group in instance.get("SecurityGroups", [])} | {
        group["GroupId"] for interface in instance.get("NetworkInterfaces", []) for group in interface.get("Groups", [])}


def assert_machines(aws, name, found, public, private, control_planes, workers):
    """Security groups as CAPA names them, the instances where they belong, IMDSv2, encrypted root volumes, the NLB and its targets."""
    elbv2 = aws.client("elbv2")
    groups = {group["GroupName"]: group["GroupId"] for group in found["security_groups"]}
    assert set(groups) == {"%s-%s" % (name, role_name) for role_name in ("apiserver-lb", "lb", "controlplane", "node", "bastion")}, groups
    instances = found["instances"]
    by_role = {}
    for instance in instances:
        by_role.setdefault(role(instance), []).append(instance)
    assert {key: len(value) for key, value in by_role.items()} == {"bastion": 1, "control-plane": control_planes, "node": workers}, by_role.keys()
    public_ids, private_ids = {subnet["SubnetId"] for subnet in public}, {subnet["SubnetId"] for subnet in private}
    (bastion,) = by_role["bastion"]
    assert bastion["SubnetId"] in public_ids and bastion.get("PublicIpAddress") and elastic_ip_in_range(bastion["PublicIpAddress"])
    assert groups["%s-bastion" % name] in instance_groups(bastion)
    for instance in by_role["control-plane"] + by_role["node"]:
        assert instance["SubnetId"] in private_ids and instance.get("PublicIpAddress") is None, instance["InstanceId"]
        assert tags(instance).get("kubecluster.aws/kubernetes-version") == VERSION, tags(instance)
    for instance in by_role["control-plane"]:
        assert groups["%s-controlplane" % name] in instance_groups(instance)
    for instance in by_role["node"]:
        assert groups["%s-node" % name] in instance_groups(instance)
    for instance in instances:
        assert instance["MetadataOptions"]["HttpTokens"] == "required", instance["InstanceId"]
    # one encrypted root volume per instance, tagged as its instance
    roots = {mapping["Ebs"]["VolumeId"] for instance in instances for mapping in instance["BlockDeviceMappings"]
             if mapping["DeviceName"] == instance["RootDeviceName"]}
    assert len(roots) == len(instances) and {volume["VolumeId"] for volume in found["volumes"]} == roots
    assert all(volume["Encrypted"] for volume in found["volumes"]), found["volumes"]
    (balancer,) = found["load_balancers"]
    assert balancer["Type"] == "network" and balancer["Scheme"] == "internet-facing" and balancer["LoadBalancerName"] == name + "-apiserver"
    listeners = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert [(listener["Port"], listener["Protocol"]) for listener in listeners] == [(6443, "TCP")]
    (group,) = found["target_groups"]
    assert listeners[0]["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    targets = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    assert sorted(target["Target"]["Id"] for target in targets) == sorted(instance["InstanceId"] for instance in by_role["control-plane"])
    return by_role, balancer


def assert_nothing_else_owned(aws, name, expected):
    """Every EC2 resource carrying the cluster's ownership tag is one the assertions looked at. (Only while nothing of
    the cluster was deleted: moto's DescribeTags keeps listing the tags of deleted resources.)"""
    resources = aws.client("ec2").describe_tags(Filters=[{"Name": "key", "Values": [OWNER_TAG % name]}])["Tags"]
    assert [resource for resource in resources if resource["ResourceId"] not in expected] == []


def ids(found):
    keys = {"vpcs": "VpcId", "subnets": "SubnetId", "internet_gateways": "InternetGatewayId", "nat_gateways": "NatGatewayId",
            "addresses": "AllocationId", "route_tables": "RouteTableId", "security_groups": "GroupId", "instances": "InstanceId",
            "volumes": "VolumeId", "network_interfaces": "NetworkInterfaceId"}
    return {resource[key] for kind, key in keys.items() for resource in found[kind]}


# -- what the hosts, the stand-ins and the API say ----------------------------------------------------------------------
def assert_hosts(aws, by_role):
    """Every instance has its host; the Kubernetes machines run containerd and the kubelet as the roles configure them."""
    instances = [instance for group in by_role.values() for instance in group]

    def all_up():
        found = aws.hosts()
        return found if all(found.get(instance["InstanceId"], {}).get("up") for instance in instances) else None

    hosts = aws.wait(all_up, 300, what="a host per instance")
    for instance in instances:
        host = hosts[instance["InstanceId"]]
        assert host["private_ip"] == instance["PrivateIpAddress"] and host["hostname"] == instance["PrivateDnsName"]
        assert host["public_ip"] == instance.get("PublicIpAddress")
    for instance in by_role["control-plane"] + by_role["node"]:
        machine = instance["InstanceId"]

        def run(command, _machine=machine):
            return aws.exec(_machine, command).stdout

        assert run("systemctl is-active containerd kubelet").split() == ["active", "active"], machine
        assert run("systemctl is-enabled containerd kubelet").split() == ["enabled", "enabled"], machine
        flags = aws.read_file(machine, "/var/lib/kubelet/kubeadm-flags.env")
        # the kubelet leaves the node's addresses to the cloud controller manager, as CAPA's: no --node-ip, or the private IP
        assert "--cloud-provider=external" in flags, (machine, flags)
        assert set(re.findall(r"--node-ip=(\S+?)\"?(?:\s|$)", flags)) <= {instance["PrivateIpAddress"]}, (machine, flags)
        containerd = aws.read_file(machine, "/etc/containerd/config.toml")
        assert "SystemdCgroup = true" in containerd and 'sandbox_image = "registry.k8s.io/pause:3.10"' in containerd, machine
        assert aws.read_file(machine, "/etc/crictl.yaml").count("unix:///run/containerd/containerd.sock") == 2, machine
        sysctls = aws.read_file(machine, "/etc/sysctl.d/99-kubernetes.conf")
        assert "net.ipv4.ip_forward = 1" in sysctls and run("sysctl -n net.ipv4.ip_forward").strip() == "1", machine
        assert run("stat -c %a /usr/local/bin/kubeadm /usr/local/bin/kubelet /usr/local/bin/kubectl").split() == ["755"] * 3, machine
        assert "ExecStart=/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in aws.read_file(machine, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
        assert run("stat -c '%a %U' /etc/kubernetes/kubelet.conf").split() == ["600", "root"], machine
        # the configs holding the certificate key and tokens are gone
        assert run("ls -A /run/kubecluster 2>/dev/null || true").strip() == "", machine
    for instance in by_role["control-plane"]:
        assert aws.exec(instance["InstanceId"], "stat -c '%a %U' /etc/kubernetes/admin.conf").stdout.split() == ["600", "root"]
    for instance in by_role["node"]:
        assert aws.read_file(instance["InstanceId"], "/etc/kubernetes/admin.conf") is None


def is_init(call):
    return call["argv"][:1] == ["init"] and call["argv"][1:2] != ["phase"]


def assert_kubeadm_calls(aws, by_role, endpoint):
    """One init, on a control plane, to the NLB's name; the other control planes join one at a time, the workers after them."""
    control_planes, workers = by_role["control-plane"], by_role["node"]
    inits = {instance["InstanceId"]: [call for call in aws.stand_in_calls(instance["InstanceId"], "kubeadm") if is_init(call)]
             for instance in control_planes + workers}
    initialised = {machine: calls for machine, calls in inits.items() if calls}
    assert len(initialised) == 1 and len(next(iter(initialised.values()))) == 1, initialised
    first, (init,) = next(iter(initialised.items()))
    assert first in {instance["InstanceId"] for instance in control_planes}
    assert init["exit_code"] == 0 and document(init, "ClusterConfiguration")["controlPlaneEndpoint"] == endpoint
    assert document(init, "InitConfiguration")["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "cloud-provider", "value": "external"}]

    def joins(instances, control_plane):
        found = []
        for instance in instances:
            calls = aws.stand_in_calls(instance["InstanceId"], "kubeadm", "join")
            assert len(calls) == 1 and calls[0]["exit_code"] == 0, (instance["InstanceId"], calls)
            config = document(calls[0], "JoinConfiguration")
            assert config["discovery"]["bootstrapToken"]["apiServerEndpoint"] == endpoint
            assert config["nodeRegistration"]["name"] == instance["PrivateDnsName"]
            assert ("controlPlane" in config) is control_plane
            found.append(calls[0])
        return sorted(found, key=lambda call: call["time"])

    cp_joins = joins([instance for instance in control_planes if instance["InstanceId"] != first], True)
    for earlier, later in zip([init] + cp_joins, cp_joins):
        assert interval(earlier)[1] <= interval(later)[0], "control-plane joins overlapped (or started before init ended)"
    worker_joins = joins(workers, False)
    assert max(interval(call)[1] for call in [init] + cp_joins) <= min(call["time"] for call in worker_joins)
    return first


def api_objects(aws, vpc_id):
    return aws.emulator_get(vpc_id, "/stand-in/objects")["items"]


def assert_api(aws, vpc_id, by_role):
    """Every Kubernetes machine is a Ready Node the cloud controller manager initialised; the add-ons are there."""
    objects = api_objects(aws, vpc_id)
    nodes = {item["metadata"]["name"]: item for item in objects if item["kind"] == "Node"}
    machines = {instance["PrivateDnsName"]: instance for instance in by_role["control-plane"] + by_role["node"]}
    assert set(nodes) == set(machines)
    for name, node in nodes.items():
        ready = [condition["status"] for condition in node.get("status", {}).get("conditions", []) if condition["type"] == "Ready"]
        assert ready == ["True"], (name, ready)
        instance = machines[name]
        assert node["spec"].get("providerID") == "aws:///%s/%s" % (instance["Placement"]["AvailabilityZone"], instance["InstanceId"]), name
        assert UNINITIALIZED not in [taint["key"] for taint in node["spec"].get("taints") or []], name
        addresses = node.get("status", {}).get("addresses") or []
        assert [address["address"] for address in addresses if address["type"] == "InternalIP"] == [instance["PrivateIpAddress"]], (name, addresses)
    present = {(item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]) for item in objects}
    for wanted in (("DaemonSet", "kube-system", "calico-node"), ("DaemonSet", "kube-system", "aws-cloud-controller-manager"),
                   ("Deployment", "kube-system", "ebs-csi-controller"), ("DaemonSet", "kube-system", "ebs-csi-node"),
                   ("Deployment", "kube-system", "coredns"), ("DaemonSet", "kube-system", "kube-proxy")):
        assert wanted in present, wanted


def assert_controller_files(aws, name, by_role, dns_name):
    """The kubeconfig the create left on the controller, and the host keys it pinned on first contact (one per instance id)."""
    kube = os.path.join(aws.state_dir, "controller-home", ".kube")
    kubeconfig = os.path.join(kube, name + ".kubeconfig")
    assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
    with open(kubeconfig, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    assert [entry["cluster"]["server"] for entry in config["clusters"]] == ["https://%s:6443" % dns_name]
    known_hosts = os.path.join(kube, name + ".known_hosts")
    assert stat.S_IMODE(os.stat(known_hosts).st_mode) == 0o600
    with open(known_hosts, encoding="utf-8") as handle:
        entries = [line.split()[0] for line in handle if line.strip() and not line.startswith("#")]
    instance_ids = sorted(instance["InstanceId"] for group in by_role.values() for instance in group)
    assert sorted(known_host(entry, instance_ids) for entry in entries) == instance_ids, entries


def known_host(entry, names):
    """Which of names a known_hosts entry's host field is: plain, or hashed as HashKnownHosts (Debian's and Ubuntu's
    default) writes it, |1|base64(salt)|base64(HMAC-SHA1(salt, name))."""
    if not entry.startswith("|1|"):
        return entry
    salt, digest = (base64.b64decode(part) for part in entry[3:].split("|"))
    return next((name for name in names if hmac.new(salt, name.encode(), hashlib.sha1).digest() == digest), entry)


def kubeadm_writes_since(aws, machines, since):
    return {machine: [call["argv"] for call in aws.stand_in_calls(machine, "kubeadm")
                      if call["argv"][:1] in [[sub] for sub in KUBEADM_WRITES] and call["time"] >= since]
            for machine in machines}


def api_writes_since(aws, vpc_id, since):
    """What reached the API as writes since then, from anyone but the kubelets, not dry runs."""
    requests = aws.emulator_get(vpc_id, "/stand-in/requests")["items"]
    return [request for request in requests if request["method"] not in ("GET", "HEAD") and request["time"] >= since
            and not (request.get("user") or "").startswith("system:node:") and not (request.get("query") or {}).get("dryRun")]


def assert_rerun_changes_nothing(aws, label, spec_file, by_role, vpc_id):
    """The same create again: no host changed, no AWS write but the lease's, no kubeadm call that writes, no API write."""
    machines = [instance["InstanceId"] for instance in by_role["control-plane"] + by_role["node"]]
    since = time.time()
    aws.start_recording()
    try:
        rerun = Run(aws, label, "create_cluster.yml", spec_file, *LIMITS)
    finally:
        aws.stop_recording()
    rerun.assert_ok()
    assert set(rerun.recap) >= {tags(instance)["Name"] for group in by_role.values() for instance in group if role(instance) != "bastion"} | {"localhost"}
    assert {host: counts["changed"] for host, counts in rerun.recap.items() if counts["changed"]} == {}, rerun.recap
    # The run lease (an SSM parameter taken at the start and given back at the end, so that two runs never change one
    # cluster at once) is bookkeeping, not a change to the cluster: its writes are the only ones allowed.
    lease_writes = {("ssm", "PutParameter"), ("ssm", "DeleteParameter")}
    writes = [(call["service"], call["action"]) for call in aws.recorded_writes()]
    assert [write for write in writes if write not in lease_writes] == [], writes
    assert {machine: calls for machine, calls in kubeadm_writes_since(aws, machines, since).items() if calls} == {}
    assert api_writes_since(aws, vpc_id, since) == []


def assert_delete_leaves_nothing(aws, label, name, spec_file):
    deleted = Run(aws, label, "delete_cluster.yml", spec_file, "-e", "confirm_delete=true")
    deleted.assert_ok()
    aws.wait(lambda: not aws.hosts() and not aws.proxies(), 180, what="every host and proxy gone")
    assert {kind: resources for kind, resources in owned(aws, name).items() if resources} == {}
    leftovers = subprocess.run(["docker", "ps", "-a", "--filter", "label=" + aws.label, "--format", "{{.Names}}"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert [container for container in leftovers if container != "localaws-controller"] == []


def make_manifest(aws, cluster):
    """The quick start's capi-example.yaml (what `clusterctl generate cluster` writes for CAPA's default flavor, the
    golden file of the import's unit tests) with this local AWS's values in the fields Cluster API has (region, key
    pair, CIDRs, the image owner, the bastion's image), and the file
    to give beside it (`cluster:` holding only what Cluster API cannot say: where the packages and the add-on
    manifests come from). Returns both paths and the add-on versions the manifest names (its ConfigMaps' images)."""
    with open(QUICK_START_MANIFEST, encoding="utf-8") as handle:
        documents = [document for document in yaml.safe_load_all(handle) if document]
    objects = dict(((document["kind"], document["metadata"]["name"]), document) for document in documents)
    name, key = cluster["name"], cluster["ssh_key_name"]
    network = cluster["network"]
    spec = objects[("Cluster", name)]["spec"]
    spec["clusterNetwork"] = {"pods": {"cidrBlocks": [network["pod_cidr"]]}, "services": {"cidrBlocks": [network["service_cidr"]]}}
    aws_cluster = objects[("AWSCluster", name)]["spec"]
    aws_cluster.update(region=cluster["region"], sshKeyName=key,
                       network={"vpc": {"cidrBlock": network["vpc_cidr"]}},
                       bastion={"enabled": True, "ami": network["bastion"]["ami_id"]})
    if "image_lookup" in cluster:  # the owner demo_prepare.py published the CAPA-named images under
        aws_cluster["imageLookupOrg"] = cluster["image_lookup"]["owner"]
    for template in ("-control-plane", "-md-0"):
        objects[("AWSMachineTemplate", name + template)]["spec"]["template"]["spec"]["sshKeyName"] = key
    manifest = os.path.join(aws.state_dir, name + "-capi.yaml")
    with open(manifest, "w", encoding="utf-8") as handle:
        yaml.safe_dump_all(documents, handle, sort_keys=False)
    settings = os.path.join(aws.state_dir, name + "-settings.yml")
    with open(settings, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"cluster": {"kubernetes_packages": cluster["kubernetes_packages"],
                                    "addons": {"manifests_dir": cluster["addons"]["manifests_dir"]}}}, handle)
    images = {}
    for config_map in ("cloud-controller-manager-addon", "aws-ebs-csi-driver-addon"):
        for text in objects[("ConfigMap", config_map)]["data"].values():
            images.update(re.findall(r"image: \S*/(cloud-controller-manager|aws-ebs-csi-driver):(v[0-9.]+)", text))
    return manifest, settings, {"aws_cloud_controller_manager_version": images["cloud-controller-manager"],
                                "ebs_csi_driver_version": images["aws-ebs-csi-driver"]}


def create_and_check(aws, label, name, vpc_cidr, control_planes, workers, nat_gateways, from_manifest=False):
    """One run of create_cluster.yml, then what it made: in moto, on the hosts, in the stand-ins' records and in the API.
    from_manifest: create from the quick start's Cluster API manifest instead; the spec file returned is then the one
    written by hand for the same cluster (make_spec's, with the add-on versions the manifest names)."""
    spec_file, cluster = make_spec(aws, name, vpc_cidr, control_planes, workers, nat_gateways)
    if from_manifest:
        manifest, settings, addons = make_manifest(aws, cluster)
        cluster["addons"].update(addons)
        with open(spec_file, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"cluster": cluster}, handle)
        # the manifest and the hand-written spec are the same cluster, field by field, before anything runs
        with open(manifest, encoding="utf-8") as handle, open(settings, encoding="utf-8") as extra:
            imported, warnings = manifest_to_spec(handle.read(), settings=yaml.safe_load(extra)["cluster"])
        assert warnings == [] and resolve(imported, environ={}) == resolve(cluster, environ={})
        Run(aws, label + "-create", "create_cluster.yml", settings, "-e", "capi_manifest=" + manifest, *LIMITS).assert_ok()
    else:
        Run(aws, label + "-create", "create_cluster.yml", spec_file, *LIMITS).assert_ok()
    found = owned(aws, name)
    vpc, public, private = assert_network(aws, name, cluster, found, nat_count=3 if nat_gateways == "per_az" else 1)
    by_role, balancer = assert_machines(aws, name, found, public, private, control_planes=control_planes, workers=workers)
    assert_nothing_else_owned(aws, name, ids(found))
    assert_hosts(aws, by_role)
    assert_kubeadm_calls(aws, by_role, "%s:6443" % balancer["DNSName"])
    assert_api(aws, vpc["VpcId"], by_role)
    assert_controller_files(aws, name, by_role, balancer["DNSName"])
    return spec_file, vpc["VpcId"], by_role


# -- the scenarios --------------------------------------------------------------------------------------------------------
def test_the_example_cluster_created_rerun_and_deleted(local_aws):
    """The quick start as a user runs it: its own capi-example.yaml (Cluster API manifest: 1 control plane, 2 workers;
    plus the collection's bastion and a NAT gateway per zone) given to create_cluster.yml; a rerun from the spec file
    written by hand for the same cluster changes nothing; the delete leaves nothing."""
    aws, name = local_aws, "capi-example"
    spec_file, vpc_id, by_role = create_and_check(aws, "example", name, "198.18.64.0/18", 1, 2, "per_az", from_manifest=True)
    assert_rerun_changes_nothing(aws, "example-rerun", spec_file, by_role, vpc_id)
    assert_delete_leaves_nothing(aws, "example-delete", name, spec_file)


def test_three_control_planes_behind_one_nat_gateway(local_aws):
    """Both variants of the issue in one create: 3 control planes (they join one at a time through the load balancer's
    name; the target group holds all three) and nat_gateways: single (one NAT gateway and one Elastic IP for the three
    private subnets); 1 worker keeps it short. The stand-ins record no etcd membership, so etcd's members are not counted."""
    aws, name = local_aws, "capi-ha"
    spec_file, unused_vpc, unused_roles = create_and_check(aws, "ha", name, "198.18.32.0/19", 3, 1, "single")
    assert_delete_leaves_nothing(aws, "ha-delete", name, spec_file)
