"""The kubecluster.aws.machines inventory plugin, against moto: in process through Ansible's own plugin
loader and the plugin's parse(), and as `ansible-inventory --list` against a moto server.

Machines are launched here with boto3 and tagged as kubecluster.aws.machine_set tags them
(naming.resource_tags plus the machine-set tag), in a VPC with a public and a private subnet.
"""

import json
import os
import subprocess
import sys

import boto3
import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
from moto import mock_aws

from conftest import COLLECTIONS_ROOT, REPO
from helpers.aws import REGION
from helpers.moto_server import MotoServer

from ansible_collections.kubecluster.aws.plugins.module_utils import naming

PLUGIN = "kubecluster.aws.machines"
OTHER_REGION = "eu-west-1"
BIN = os.path.dirname(sys.executable)


def _collection_modules():
    return [name for name in sys.modules if name == "ansible_collections" or name.startswith("ansible_collections.")]


@pytest.fixture(scope="module")
def plugins():
    """Ansible's collection loader, installed as ansible-inventory installs it, for this module only.

    The other tests import the checkout through sys.path (conftest); the loader must import the
    collections itself (it reads their metadata as it does), so those imports step aside while
    these tests run and are put back afterwards.
    """
    saved = dict((name, sys.modules.pop(name)) for name in _collection_modules())
    init_plugin_loader([COLLECTIONS_ROOT])
    try:
        yield inventory_loader
    finally:
        _AnsibleCollectionFinder._remove()  # pylint: disable=protected-access  # the only way to uninstall it
        for name in _collection_modules():
            del sys.modules[name]
        sys.modules.update(saved)


class Inventory(object):
    """What a parse produced, queried the way a play sees it."""

    def __init__(self, data):
        self.data = data

    def hosts(self, group="all"):
        """Host names of a group, its children's included, sorted."""
        return sorted(host.name for host in self.data.groups[group].get_hosts())

    def listed_hosts(self, group):
        """Host names of the group itself, in the order the plugin added them."""
        return [host.name for host in self.data.groups[group].hosts]

    def children(self, group):
        return sorted(child.name for child in self.data.groups[group].child_groups)

    def vars(self, host):
        """The variables the plugin set (InventoryData adds inventory_file and inventory_dir itself)."""
        return dict((key, value) for key, value in self.data.hosts[host].vars.items() if key not in ("inventory_file", "inventory_dir"))

    def by_instance(self, instance_id):
        names = [name for name, host in self.data.hosts.items() if host.vars.get("kubecluster_instance_id") == instance_id]
        assert len(names) == 1, names
        return names[0]

    @property
    def groups(self):
        return set(self.data.groups)


def parse_file(plugins, path):
    """Parse one inventory source as InventoryManager does (no --flush-cache): parse, write the cache, reconcile the groups."""
    data = InventoryData()
    plugin = plugins.get(PLUGIN)
    plugin.parse(data, DataLoader(), path, cache=True)
    try:
        plugin.update_cache_if_changed()
    except AttributeError:  # as InventoryManager: a source without cache: true has no cache to write
        pass
    data.reconcile_inventory()
    return Inventory(data)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A home of the test's own: the plugin makes ~/.kube/<cluster>.known_hosts in it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def pinned(instance, cluster="alpha", directory=None, checking="accept-new", known_hosts=None):
    """The host key options of one machine, with the cluster's own known_hosts in ~/.kube by default."""
    known_hosts = known_hosts or os.path.join(directory or os.path.join(os.environ["HOME"], ".kube"), cluster + ".known_hosts")
    return "-o StrictHostKeyChecking=%s -o UserKnownHostsFile=%s -o HostKeyAlias=%s" % (checking, known_hosts, instance["InstanceId"])


def through(bastion, user="ubuntu", **keys):
    """The hop through ``bastion``: a ProxyCommand whose ssh gets the same host key options."""
    return "-o 'ProxyCommand=ssh -W %%h:%%p -o LogLevel=ERROR %s %s@%s'" % (pinned(bastion, **keys), user, bastion["PublicIpAddress"])


@pytest.fixture
def parse(plugins, tmp_path):
    """Write an inventory file of the plugin with ``options`` and run the plugin's parse() on it."""

    def run(name="capi.machines.yml", **options):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(dict(options, plugin=PLUGIN)))
        return parse_file(plugins, str(path))

    return run


class Cloud(object):
    """A VPC with a public and a private subnet, and machines tagged as machine_set tags them."""

    def __init__(self, ec2):
        self.ec2 = ec2
        region = ec2.meta.region_name
        self.image = ec2.register_image(Name="kubecluster-test", Architecture="x86_64", RootDeviceName="/dev/sda1",
                                        VirtualizationType="hvm", BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])["ImageId"]
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.public_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20", AvailabilityZone=region + "a")["Subnet"]["SubnetId"]
        self.private_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.64.0/18", AvailabilityZone=region + "b")["Subnet"]["SubnetId"]

    def machine(self, cluster, set_name, public_ip=False, instance_type="t3.large"):
        """Launch one machine of a cluster's set; a public IP puts it in the public subnet."""
        name = naming.machine_name(cluster, set_name, "%05d" % len(self.instances()))
        tags = naming.resource_tags(cluster, name, naming.machine_role(set_name), cloud_provider=True)
        tags[naming.MACHINE_SET_TAG] = set_name
        return self.launch(tags, public_ip, instance_type)

    def launch(self, tags, public_ip=False, instance_type="t3.micro"):
        subnet = self.public_subnet if public_ip else self.private_subnet
        instance = self.ec2.run_instances(
            ImageId=self.image, InstanceType=instance_type, MinCount=1, MaxCount=1,
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": public_ip}],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"][0]
        return self.describe(instance["InstanceId"])

    def describe(self, instance_id):
        return self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    def instances(self):
        return [i for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]]


@pytest.fixture
def cloud(aws_env, monkeypatch):
    """Two clusters and their neighbours in one region.

    alpha: a bastion (public IP), 2 control-plane machines, md-0 with 2 workers, md-1 with 1 worker
    that has a public IP. beta: no bastion, 1 control-plane machine, 1 md-0 worker. Beside them, an
    untagged instance, one whose ownership tag is ``shared`` (not owned), and an owned one with no role.
    """
    # moto builds ~5000 public images per region and test otherwise (seconds each); the machines use their own.
    # Set before moto starts (so not conftest's moto_aws): starting resets the backends, which loads them.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        world = Cloud(boto3.client("ec2", region_name=REGION))
        world.alpha = {
            "bastion": world.machine("alpha", "bastion", public_ip=True, instance_type="t3.micro"),
            "control-plane": [world.machine("alpha", "control-plane") for dummy in range(2)],
            "md-0": [world.machine("alpha", "md-0") for dummy in range(2)],
            "md-1": [world.machine("alpha", "md-1", public_ip=True, instance_type="m5.xlarge")],
        }
        world.beta = {
            "control-plane": [world.machine("beta", "control-plane")],
            "md-0": [world.machine("beta", "md-0")],
        }
        world.strangers = [
            world.launch({"Name": "untagged"}),
            world.launch({naming.owner_tag("alpha"): naming.SHARED, naming.ROLE_TAG: naming.ROLE_NODE, "Name": "alpha-lookalike"}),
            world.launch({naming.owner_tag("alpha"): naming.OWNED, "Name": "alpha-no-role"}),
        ]
        yield world


def dns(instance):
    return instance["PrivateDnsName"]


def dns_names(instances):
    return sorted(dns(i) for i in instances)


def alpha_hosts(cloud):
    machines = [cloud.alpha["bastion"]] + [m for key in ("control-plane", "md-0", "md-1") for m in cloud.alpha[key]]
    return dns_names(machines)


@pytest.fixture
def calls(cloud, aws_calls):
    """The AWS calls the test itself makes, once the cloud is built."""
    del aws_calls[:]
    return aws_calls


# --- groups and hosts -------------------------------------------------------------------------


def test_one_cluster_fills_the_node_plays_groups(parse, cloud, calls):
    inventory = parse(clusters=["alpha"])

    assert inventory.hosts() == alpha_hosts(cloud)
    assert inventory.hosts("bastion") == [dns(cloud.alpha["bastion"])]
    assert inventory.hosts("kube_control_plane") == dns_names(cloud.alpha["control-plane"])
    assert inventory.hosts("kube_node") == dns_names(cloud.alpha["md-0"] + cloud.alpha["md-1"])
    assert inventory.hosts("kubecluster_md_md_0") == dns_names(cloud.alpha["md-0"])
    assert inventory.hosts("kubecluster_md_md_1") == dns_names(cloud.alpha["md-1"])
    assert inventory.children("kube_node") == ["kubecluster_md_md_0", "kubecluster_md_md_1"]
    assert inventory.children("k8s_cluster") == ["kube_control_plane", "kube_node"]
    assert inventory.hosts("k8s_cluster") == dns_names(cloud.alpha["control-plane"] + cloud.alpha["md-0"] + cloud.alpha["md-1"])
    assert inventory.hosts("kubecluster_alpha") == alpha_hosts(cloud)
    # the other cluster, the untagged instance, the not-owned look-alike and the role-less one are left out
    assert "kubecluster_beta" not in inventory.groups
    assert not set(inventory.hosts()) & set(dns_names(cloud.beta["control-plane"] + cloud.beta["md-0"] + cloud.strangers))
    # one read, no write
    assert calls == [("ec2", "DescribeInstances")]


def test_host_vars_follow_the_node_contract(parse, cloud):
    inventory = parse(clusters=["alpha"])
    bastion = cloud.alpha["bastion"]
    control_plane = cloud.alpha["control-plane"][0]

    assert inventory.vars(dns(control_plane)) == {
        "ansible_host": control_plane["PrivateIpAddress"],
        "ansible_ssh_common_args": pinned(control_plane) + " " + through(bastion),
        "kubecluster_node_name": dns(control_plane),
        "kubecluster_instance_id": control_plane["InstanceId"],
        "kubecluster_machine_set": "control-plane",
        "kubecluster_availability_zone": REGION + "b",
        "kubecluster_cluster_name": "alpha",
        "kubecluster_role": "control-plane",
        "kubecluster_region": REGION,
    }
    bastion_vars = inventory.vars(dns(bastion))
    assert bastion_vars["ansible_host"] == bastion["PublicIpAddress"]
    assert bastion_vars["kubecluster_machine_set"] == "bastion"
    assert bastion_vars["ansible_ssh_common_args"] == pinned(bastion)


def test_proxy_jump_only_for_machines_without_a_public_ip(parse, cloud):
    inventory = parse(clusters=["alpha"])
    jump = through(cloud.alpha["bastion"])

    for worker in cloud.alpha["md-0"]:
        assert inventory.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker) + " " + jump
        assert inventory.vars(dns(worker))["ansible_host"] == worker["PrivateIpAddress"]
    public_worker = cloud.alpha["md-1"][0]
    assert inventory.vars(dns(public_worker))["ansible_ssh_common_args"] == pinned(public_worker)
    assert inventory.vars(dns(public_worker))["ansible_host"] == public_worker["PublicIpAddress"]


def test_no_proxy_jump_in_a_cluster_without_bastion(parse, cloud):
    inventory = parse(clusters=["beta"])

    assert inventory.hosts("bastion") == []
    assert inventory.hosts() == dns_names(cloud.beta["control-plane"] + cloud.beta["md-0"])
    for machine in cloud.beta["control-plane"] + cloud.beta["md-0"]:
        assert inventory.vars(dns(machine))["ansible_ssh_common_args"] == pinned(machine, "beta")
        assert inventory.vars(dns(machine))["ansible_host"].startswith("10.0.64.")


def test_proxy_jump_off_and_bastion_user(parse, cloud):
    bastion_ip = cloud.alpha["bastion"]["PublicIpAddress"]
    worker = cloud.alpha["md-0"][0]
    as_admin = parse(clusters=["alpha"], bastion_user="admin")
    assert as_admin.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker) + " " + through(cloud.alpha["bastion"], "admin")

    inside = parse(clusters=["alpha"], proxy_jump=False)
    for host in inside.hosts():
        assert "ProxyCommand" not in inside.vars(host)["ansible_ssh_common_args"]
    assert inside.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker)
    # from inside the VPC every machine but the bastion is reached at its private IP
    public_worker = cloud.alpha["md-1"][0]
    assert inside.vars(dns(public_worker))["ansible_host"] == public_worker["PrivateIpAddress"]
    assert inside.vars(dns(cloud.alpha["bastion"]))["ansible_host"] == bastion_ip


def test_host_keys_are_pinned_on_first_contact_in_the_clusters_own_known_hosts(parse, cloud, home):
    parse()

    # made for ssh, which makes neither the file nor its directory, readable by the owner only
    assert oct((home / ".kube").stat().st_mode & 0o777) == "0o700"
    for cluster in ("alpha", "beta"):
        assert oct((home / ".kube" / (cluster + ".known_hosts")).stat().st_mode & 0o777) == "0o600"


def test_host_keys_in_a_directory_of_ones_choice(parse, cloud, tmp_path):
    worker = cloud.alpha["md-0"][0]
    inventory = parse(clusters=["alpha"], known_hosts_dir=str(tmp_path / "my kube"))

    common = inventory.vars(dns(worker))["ansible_ssh_common_args"]
    known_hosts = '"%s"' % (tmp_path / "my kube" / "alpha.known_hosts")
    assert common.startswith("-o StrictHostKeyChecking=accept-new -o 'UserKnownHostsFile=%s' -o HostKeyAlias=%s " % (
        known_hosts, worker["InstanceId"]))
    assert (tmp_path / "my kube" / "alpha.known_hosts").is_file()


def test_a_known_hosts_file_of_ones_own_is_checked_strictly_and_left_alone(parse, cloud, tmp_path, home):
    worker, bastion = cloud.alpha["md-0"][0], cloud.alpha["bastion"]
    own = str(tmp_path / "pinned")
    inventory = parse(clusters=["alpha"], known_hosts_file=own)

    keys = {"checking": "yes", "known_hosts": own}
    assert inventory.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker, **keys) + " " + through(bastion, **keys)
    assert not os.path.exists(own) and not (home / ".kube").exists()


def test_a_stopped_bastion_is_not_jumped_through(parse, cloud):
    cloud.ec2.stop_instances(InstanceIds=[cloud.alpha["bastion"]["InstanceId"]])

    worker = cloud.alpha["md-0"][0]
    running = parse(clusters=["alpha"])
    assert dns(cloud.alpha["bastion"]) not in running.hosts()
    assert running.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker)

    with_stopped = parse(clusters=["alpha"], include_stopped=True)
    assert with_stopped.hosts("bastion") == [dns(cloud.alpha["bastion"])]
    assert with_stopped.vars(dns(worker))["ansible_ssh_common_args"] == pinned(worker)


def test_stopped_machines_only_with_include_stopped(parse, cloud):
    stopped = cloud.alpha["md-0"][1]
    cloud.ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])
    cloud.ec2.terminate_instances(InstanceIds=[cloud.alpha["md-0"][0]["InstanceId"]])

    assert "kubecluster_md_md_0" not in parse(clusters=["alpha"]).groups
    # a terminated machine is never listed
    assert parse(clusters=["alpha"], include_stopped=True).hosts("kubecluster_md_md_0") == [dns(stopped)]


def test_every_cluster_when_none_is_named(parse, cloud, calls):
    inventory = parse()

    assert inventory.hosts("kubecluster_alpha") == alpha_hosts(cloud)
    assert inventory.hosts("kubecluster_beta") == dns_names(cloud.beta["control-plane"] + cloud.beta["md-0"])
    assert inventory.hosts() == sorted(alpha_hosts(cloud) + inventory.hosts("kubecluster_beta"))
    # the kubespray-style groups hold both clusters: one cluster per source is the documented use
    assert inventory.hosts("kube_control_plane") == dns_names(cloud.alpha["control-plane"] + cloud.beta["control-plane"])
    assert inventory.vars(dns(cloud.beta["md-0"][0]))["kubecluster_cluster_name"] == "beta"
    assert inventory.vars(dns(cloud.beta["md-0"][0]))["ansible_ssh_common_args"] == pinned(cloud.beta["md-0"][0], "beta")
    assert calls == [("ec2", "DescribeInstances")]


def test_several_named_clusters_in_one_read(parse, cloud, calls):
    both = parse(clusters=["beta", "alpha", "gamma"])

    assert both.hosts("kubecluster_alpha") == alpha_hosts(cloud)
    assert both.hosts("kubecluster_beta") == dns_names(cloud.beta["control-plane"] + cloud.beta["md-0"])
    assert "kubecluster_gamma" not in both.groups
    assert calls == [("ec2", "DescribeInstances")]


def test_one_read_per_region(parse, cloud, calls):
    elsewhere = Cloud(boto3.client("ec2", region_name=OTHER_REGION))
    far = elsewhere.machine("alpha", "md-2")
    del calls[:]

    inventory = parse(clusters=["alpha"], regions=[REGION, OTHER_REGION])

    assert inventory.hosts("kubecluster_md_md_2") == [dns(far)]
    assert inventory.vars(dns(far))["kubecluster_region"] == OTHER_REGION
    assert len(inventory.hosts("kubecluster_alpha")) == len(alpha_hosts(cloud)) + 1
    assert calls == [("ec2", "DescribeInstances")] * 2


def test_first_control_plane_in_sorted_order(parse, cloud):
    inventory = parse(clusters=["alpha"])

    # nodes.yml runs kubeadm init on the first of kube_control_plane
    assert inventory.listed_hosts("kube_control_plane") == dns_names(cloud.alpha["control-plane"])


# --- host names ------------------------------------------------------------------------------


def test_hosts_named_by_instance_id_or_name_tag(parse, cloud):
    control_plane = cloud.alpha["control-plane"][0]
    name_tag = naming.tags_to_dict(control_plane["Tags"])["Name"]

    by_id = parse(clusters=["alpha"], hostnames="instance_id")
    assert by_id.by_instance(control_plane["InstanceId"]) == control_plane["InstanceId"]
    assert by_id.vars(control_plane["InstanceId"])["kubecluster_node_name"] == dns(control_plane)

    by_name = parse(clusters=["alpha"], hostnames="name_tag")
    assert name_tag.startswith("alpha-control-plane-")
    assert by_name.by_instance(control_plane["InstanceId"]) == name_tag


def test_a_name_taken_twice_falls_back_to_the_instance_id(parse, cloud):
    keeper, other = sorted(cloud.alpha["md-0"], key=lambda machine: machine["InstanceId"])  # the lower id keeps the name
    name = naming.tags_to_dict(keeper["Tags"])["Name"]
    cloud.ec2.create_tags(Resources=[other["InstanceId"]], Tags=[{"Key": "Name", "Value": name}])

    inventory = parse(clusters=["alpha"], hostnames="name_tag")

    assert inventory.by_instance(keeper["InstanceId"]) == name
    assert inventory.by_instance(other["InstanceId"]) == other["InstanceId"]


# --- constructed and cache ---------------------------------------------------------------------


def test_compose_groups_and_keyed_groups(parse, cloud):
    inventory = parse(
        clusters=["alpha"],
        compose={"ansible_user": "'ubuntu'", "machine_type": "instance_type"},
        groups={"large": "instance_type == 't3.large'"},
        keyed_groups=[{"key": "kubecluster_machine_set", "prefix": "set"},
                      {"key": "tags['sigs.k8s.io/cluster-api-provider-aws/role']", "prefix": "role"},
                      {"key": "placement.region", "prefix": "aws_region"}],
    )

    worker = dns(cloud.alpha["md-1"][0])
    assert inventory.vars(worker)["ansible_user"] == "ubuntu"
    assert inventory.vars(worker)["machine_type"] == "m5.xlarge"
    assert inventory.hosts("large") == dns_names(cloud.alpha["control-plane"] + cloud.alpha["md-0"])
    assert inventory.hosts("set_md_1") == [worker]
    assert inventory.hosts("set_control_plane") == dns_names(cloud.alpha["control-plane"])
    assert inventory.hosts("role_bastion") == [dns(cloud.alpha["bastion"])]
    assert inventory.hosts("aws_region_ap_northeast_2") == alpha_hosts(cloud)


def test_cache_answers_the_second_parse_without_aws(parse, cloud, calls, tmp_path):
    options = dict(clusters=["alpha"], cache=True, cache_plugin="ansible.builtin.jsonfile",
                   cache_connection=str(tmp_path / "cache"), cache_timeout=300)
    first = parse(**options)
    assert calls == [("ec2", "DescribeInstances")]
    del calls[:]

    again = parse(**options)

    assert calls == []
    assert again.hosts() == first.hosts() == alpha_hosts(cloud)
    host = dns(cloud.alpha["md-0"][0])
    assert again.vars(host) == first.vars(host)
    assert os.listdir(str(tmp_path / "cache"))


def test_assume_role_arn_reads_with_the_role(parse, cloud, calls):
    inventory = parse(clusters=["beta"], assume_role_arn="arn:aws:iam::123456789012:role/kubecluster-inventory")

    assert calls == [("sts", "AssumeRole"), ("ec2", "DescribeInstances")]
    assert inventory.hosts() == dns_names(cloud.beta["control-plane"] + cloud.beta["md-0"])


# --- errors and file names -------------------------------------------------------------------


def test_bad_cluster_name_fails_before_any_aws_call(parse, cloud, calls):
    with pytest.raises(AnsibleError, match=r"clusters: 'Capi_Example' is not a valid cluster name"):
        parse(clusters=["alpha", "Capi_Example"])
    assert calls == []


def test_unknown_hostnames_choice_fails(parse, cloud, calls):
    with pytest.raises(AnsibleError, match="Invalid value 'public_dns_name' for config 'hostnames'") as failed:
        parse(clusters=["alpha"], hostnames="public_dns_name")
    # Ansible shows the choices under the message
    assert "private_dns_name" in failed.value._help_text  # pylint: disable=protected-access
    assert calls == []


def test_no_region_fails_naming_the_option(parse, cloud, calls, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))

    with pytest.raises(AnsibleError, match="regions: no region to read"):
        parse(clusters=["alpha"])
    assert calls == []


def test_group_clash_between_a_cluster_and_a_deployment_fails(parse, cloud):
    md_x = cloud.machine("md-x", "control-plane")  # cluster md-x's group: kubecluster_md_x
    cloud.machine("alpha", "x")  # deployment x's group: kubecluster_md_x too

    with pytest.raises(AnsibleError, match="group kubecluster_md_x would hold both a cluster and a machine deployment"):
        parse()
    # one cluster per source, as documented, has no clash
    assert parse(clusters=["md-x"]).hosts("kubecluster_md_x") == [dns(md_x)]


def test_aws_errors_fail_the_parse(parse, cloud, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # nothing listens there: fail at once
    with pytest.raises(AnsibleError, match="Failed to read the machines in ap-northeast-2"):
        parse(clusters=["alpha"], endpoint_url="http://127.0.0.1:9")


@pytest.mark.parametrize("name, accepted", [
    ("capi-example.machines.yml", True),
    ("capi-example.machines.yaml", True),
    ("machines.yml", True),
    ("capi-example.aws_ec2.yml", False),
    ("capi-example.yml", False),
])
def test_inventory_file_names(plugins, tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: %s\n" % PLUGIN)
    assert plugins.get(PLUGIN).verify_file(str(path)) is accepted


# --- as users run it ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server():
    with MotoServer(region=REGION) as server:
        yield server


def inventory_command_env(moto_server):
    env = moto_server.env()
    env.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
               ANSIBLE_INVENTORY_ENABLED="auto", ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    return env


def trusted(value):
    """ansible-inventory's JSON with its ``{"__ansible_unsafe": value}`` marks (every string from AWS) taken off."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((key, trusted(item)) for key, item in value.items())
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def ansible_inventory(path, env, cwd):
    completed = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", str(path), "--list"], env=env, cwd=str(cwd),
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    return trusted(json.loads(completed.stdout))


def test_ansible_inventory_list_against_a_moto_server(moto_server, tmp_path):
    moto_server.reset()
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_server.url, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    world = Cloud(ec2)
    bastion = world.machine("capi-example", "bastion", public_ip=True)
    control_plane = world.machine("capi-example", "control-plane")
    worker = world.machine("capi-example", "md-0")
    world.machine("other", "control-plane")
    path = tmp_path / "capi-example.machines.yml"
    path.write_text(yaml.safe_dump({"plugin": PLUGIN, "clusters": ["capi-example"], "compose": {"ansible_user": "'ubuntu'"}}))
    env = inventory_command_env(moto_server)
    moto_server.start_recording()

    listed = ansible_inventory(path, env, tmp_path)

    recorded = moto_server.recorded_calls()
    assert [(call["service"], call["action"]) for call in recorded] == [("ec2", "DescribeInstances")]
    assert sorted(listed["kube_control_plane"]["hosts"]) == [dns(control_plane)]
    assert listed["bastion"]["hosts"] == [dns(bastion)]
    assert listed["kube_node"]["children"] == ["kubecluster_md_md_0"]
    assert listed["kubecluster_md_md_0"]["hosts"] == [dns(worker)]
    assert sorted(listed["k8s_cluster"]["children"]) == ["kube_control_plane", "kube_node"]
    assert sorted(listed["kubecluster_capi_example"]["hosts"]) == dns_names([bastion, control_plane, worker])
    worker_vars = listed["_meta"]["hostvars"][dns(worker)]
    assert worker_vars["ansible_ssh_common_args"] == pinned(worker, "capi-example") + " " + through(bastion, cluster="capi-example")
    assert worker_vars["ansible_host"] == worker["PrivateIpAddress"]
    assert worker_vars["ansible_user"] == "ubuntu"
    assert worker_vars["kubecluster_node_name"] == dns(worker)

    # endpoint_url in the file instead of AWS_ENDPOINT_URL in the environment
    del env["AWS_ENDPOINT_URL"]
    path.write_text(yaml.safe_dump({"plugin": PLUGIN, "clusters": ["capi-example"], "endpoint_url": moto_server.url}))
    assert sorted(ansible_inventory(path, env, tmp_path)["_meta"]["hostvars"]) == dns_names([bastion, control_plane, worker])


def test_ansible_doc_renders_the_plugin(tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR="1")
    env.pop("ANSIBLE_CONFIG", None)
    completed = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "inventory", "--json", PLUGIN], env=env, cwd=str(tmp_path),
                               capture_output=True, text=True, timeout=120, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "[WARNING]" not in completed.stderr and "[ERROR]" not in completed.stderr
    doc = json.loads(completed.stdout)[PLUGIN]["doc"]
    options = doc["options"]
    assert {"clusters", "regions", "hostnames", "include_stopped", "proxy_jump", "bastion_user", "known_hosts_dir", "known_hosts_file",
            "compose", "keyed_groups", "cache", "endpoint_url", "assume_role_arn", "region"} <= set(options)
    assert options["hostnames"]["choices"] == ["private_dns_name", "instance_id", "name_tag"]
    assert options["bastion_user"]["default"] == "ubuntu"


def test_the_example_inventory_source_lists_capi_example(plugins, cloud):
    control_plane = cloud.machine("capi-example", "control-plane")
    worker = cloud.machine("capi-example", "md-0")
    example = os.path.join(REPO, "examples", "inventory", "capi-example.machines.yml")
    assert plugins.get(PLUGIN).verify_file(example)

    inventory = parse_file(plugins, example)

    assert inventory.hosts() == dns_names([control_plane, worker])
    assert inventory.hosts("kubecluster_md_md_0") == [dns(worker)]
    assert inventory.vars(dns(worker))["ansible_user"] == "ubuntu"
    assert inventory.hosts("zone_ap_northeast_2b") == dns_names([control_plane, worker])
