"""hosts.py, the node contract: which machines are hosts, their groups, the address SSH connects
to and the hop through the bastion - one decision for the inventory plugin and create_cluster.yml."""

import shlex

import pytest

from ansible_collections.kubecluster.aws.plugins.module_utils import hosts
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import UNKNOWN

from helpers.aws import CLUSTER

BASTION_IP = "203.0.113.10"


def machine(name, role, set_name, private_ip, public_ip=None, state="running", instance_id=None):
    """A machine as machines.machine_view gives it, with its cluster."""
    return {
        "cluster": CLUSTER, "instance_id": instance_id or "i-" + name, "name": name, "set": set_name, "role": role,
        "state": state, "availability_zone": "ap-northeast-2a", "subnet_id": "subnet-1", "private_ip": private_ip,
        "private_dns_name": "ip-%s.ap-northeast-2.compute.internal" % private_ip.replace(".", "-") if private_ip != UNKNOWN else UNKNOWN,
        "public_ip": public_ip, "image_id": "ami-1", "instance_type": "t3.large", "launch_time": "2025-01-31T08:15:00+00:00",
    }


def bastion(state="running", public_ip=BASTION_IP, instance_id=None):
    return machine("bastion", "bastion", "bastion", "10.0.0.10", public_ip, state, instance_id)


def control_plane(public_ip=None):
    return machine("cp", "control-plane", "control-plane", "10.0.64.11", public_ip)


def worker(name="w", set_name="md-0", public_ip=None, state="running"):
    return machine(name, "node", set_name, "10.0.64.21", public_ip, state)


# --- which machines are hosts --------------------------------------------------------------

@pytest.mark.parametrize("state, include_stopped, expected", [
    ("pending", False, True), ("running", False, True), ("stopped", False, False), ("stopping", False, False),
    ("stopped", True, True), ("shutting-down", True, False), ("terminated", True, False),
])
def test_hosts_are_up_machines_and_stopped_ones_when_asked(state, include_stopped, expected):
    assert hosts.listed(worker(state=state), include_stopped) is expected


def test_a_machine_planned_in_check_mode_is_no_host_yet():
    assert not hosts.listed(dict(worker(), private_ip=UNKNOWN))
    assert not hosts.listed(dict(worker(), private_ip=None))


# --- groups --------------------------------------------------------------------------------

def test_groups_and_their_parents():
    assert hosts.groups(bastion()) == [("kubecluster_capi_example", None), ("bastion", None)]
    assert hosts.groups(control_plane()) == [("kubecluster_capi_example", None), ("kube_control_plane", None)]
    assert hosts.groups(worker()) == [("kubecluster_capi_example", None), ("kubecluster_md_md_0", "kube_node")]
    # a Cluster API machine without the machine-set tag
    assert hosts.groups(worker(set_name=None)) == [("kubecluster_capi_example", None), ("kube_node", None)]
    assert hosts.GROUP_PARENTS == {"kube_control_plane": "k8s_cluster", "kube_node": "k8s_cluster"}


def test_member_groups_spell_out_the_tree_for_add_host():
    assert hosts.member_groups(bastion()) == ["kubecluster_capi_example", "bastion"]
    assert hosts.member_groups(control_plane()) == ["kubecluster_capi_example", "kube_control_plane", "k8s_cluster"]
    assert hosts.member_groups(worker()) == ["kubecluster_capi_example", "kubecluster_md_md_0", "kube_node", "k8s_cluster"]
    assert hosts.member_groups(worker(set_name=None)) == ["kubecluster_capi_example", "kube_node", "k8s_cluster"]


def test_group_names_keep_letters_digits_and_underscores():
    assert hosts.deployment_group("md-0") == "kubecluster_md_md_0"
    assert hosts.cluster_group("capi.example-1") == "kubecluster_capi_example_1"


def test_a_cluster_group_that_is_also_a_deployment_group_is_a_clash():
    md_x = dict(control_plane(), cluster="md-x")
    assert hosts.group_clashes([md_x, dict(worker(set_name="x"), cluster="alpha")]) == ["kubecluster_md_x"]
    assert hosts.group_clashes([md_x, dict(worker(set_name="y"), cluster="md-x")]) == []


# --- the address and the hop ------------------------------------------------------------------

JUMP = hosts.Bastion(BASTION_IP, "i-bastion")
KEYS = hosts.HostKeys("/home/me/.kube/capi-example.known_hosts")
PINNED = "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/home/me/.kube/capi-example.known_hosts -o HostKeyAlias=%s"


def hop(jump_options="", key=""):
    """The ProxyCommand common args of a hop to the bastion as ubuntu, as they are written."""
    return "-o 'ProxyCommand=ssh -W %%h:%%p -o LogLevel=ERROR %s%subuntu@%s'" % (jump_options + " " if jump_options else "", key, BASTION_IP)


def test_the_bastion_is_the_lowest_up_one_with_a_public_ip():
    assert hosts.bastion_address([worker(), bastion()]) == BASTION_IP
    assert hosts.jump_host([worker(), bastion()]) == hosts.Bastion(BASTION_IP, "i-bastion")
    assert hosts.bastion_address([bastion(state="pending")]) == BASTION_IP
    assert hosts.bastion_address([bastion(state="stopped")]) is None
    assert hosts.bastion_address([bastion(public_ip=None)]) is None
    assert hosts.bastion_address([worker(public_ip="198.51.100.1")]) is None
    second = bastion(public_ip="203.0.113.99", instance_id="i-2")
    assert hosts.jump_host([second, bastion(instance_id="i-1")]) == hosts.Bastion(BASTION_IP, "i-1")


def test_a_private_machine_is_reached_through_the_bastion():
    variables = hosts.host_vars(worker(), JUMP)

    assert variables["ansible_host"] == "10.0.64.21"
    assert variables["ansible_ssh_common_args"] == hop()


def test_the_bastion_itself_is_reached_at_its_public_ip_directly():
    variables = hosts.host_vars(bastion(), JUMP)

    assert variables["ansible_host"] == BASTION_IP
    assert "ansible_ssh_common_args" not in variables


def test_a_machine_with_its_own_public_ip_is_reached_at_it_directly():
    variables = hosts.host_vars(worker(public_ip="198.51.100.7"), JUMP)

    assert variables["ansible_host"] == "198.51.100.7"
    assert "ansible_ssh_common_args" not in variables


def test_without_a_bastion_machines_are_reached_directly():
    assert hosts.host_vars(worker(public_ip="198.51.100.7"), None)["ansible_host"] == "198.51.100.7"
    private = hosts.host_vars(worker(), None)
    assert private["ansible_host"] == "10.0.64.21"
    assert "ansible_ssh_common_args" not in private


def test_from_inside_the_vpc_every_machine_but_the_bastion_is_reached_at_its_private_ip():
    public_worker = hosts.host_vars(worker(public_ip="198.51.100.7"), JUMP, proxy_jump=False)
    assert public_worker["ansible_host"] == "10.0.64.21"
    assert "ansible_ssh_common_args" not in public_worker
    assert "ansible_ssh_common_args" not in hosts.host_vars(worker(), JUMP, proxy_jump=False)
    assert hosts.host_vars(bastion(), JUMP, proxy_jump=False)["ansible_host"] == BASTION_IP


def test_the_hop_with_a_key_file_passes_the_key_to_the_jump_too():
    assert hosts.ssh_args(hosts.bastion_hop("ubuntu", JUMP)) == hop()
    assert hosts.bastion_hop("admin", JUMP, "/keys/jonnung.pem") == [
        "-o", "ProxyCommand=ssh -W %h:%p -o LogLevel=ERROR -i /keys/jonnung.pem admin@203.0.113.10"]

    variables = hosts.host_vars(worker(), JUMP, bastion_user="admin", user="admin", private_key_file="/keys/k.pem")
    assert variables["ansible_ssh_common_args"] == "-o 'ProxyCommand=ssh -W %h:%p -o LogLevel=ERROR -i /keys/k.pem admin@203.0.113.10'"
    assert variables["ansible_ssh_private_key_file"] == "/keys/k.pem"
    assert variables["ansible_user"] == "admin"


def test_the_jump_gets_the_key_file_with_home_expanded_on_the_controller(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    variables = hosts.host_vars(worker(), JUMP, private_key_file="~/.ssh/k.pem")

    assert variables["ansible_ssh_common_args"] == hop(key="-i /home/me/.ssh/k.pem ")
    assert variables["ansible_ssh_private_key_file"] == "~/.ssh/k.pem"  # Ansible expands its own


def test_host_vars_name_the_machine():
    assert hosts.host_vars(control_plane(), JUMP, keys=KEYS) == {
        "ansible_host": "10.0.64.11",
        "ansible_ssh_common_args": PINNED % "i-cp" + " " + hop(PINNED % "i-bastion"),
        "kubecluster_node_name": "ip-10-0-64-11.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-cp",
        "kubecluster_machine_set": "control-plane",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": CLUSTER,
    }


# --- host keys ---------------------------------------------------------------------------------

def test_every_connection_pins_the_key_under_the_instance_id_not_the_address():
    assert hosts.host_vars(bastion(), JUMP, keys=KEYS)["ansible_ssh_common_args"] == PINNED % "i-bastion"
    assert hosts.host_vars(worker(public_ip="198.51.100.7"), JUMP, keys=KEYS)["ansible_ssh_common_args"] == PINNED % "i-w"
    assert hosts.host_vars(worker(), JUMP, proxy_jump=False, keys=KEYS)["ansible_ssh_common_args"] == PINNED % "i-w"


def test_the_jump_through_the_bastion_gets_the_same_options_under_the_bastions_id():
    common = hosts.host_vars(worker(), JUMP, private_key_file="/keys/k.pem", keys=KEYS)["ansible_ssh_common_args"]

    assert "ProxyJump" not in common
    assert common == PINNED % "i-w" + " " + hop(PINNED % "i-bastion", "-i /keys/k.pem ")


def test_the_clusters_own_known_hosts_is_next_to_the_kubeconfig_and_pins_new_keys(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")

    assert hosts.host_keys(CLUSTER) == hosts.HostKeys("/home/me/.kube/capi-example.known_hosts", "accept-new")
    assert hosts.host_keys(CLUSTER, "~/clusters/prod.kubeconfig") == hosts.HostKeys("/home/me/clusters/capi-example.known_hosts")
    assert hosts.host_keys(CLUSTER, "/srv/kube/x.kubeconfig").managed
    assert hosts.host_keys(CLUSTER, directory="~/pins").known_hosts_file == "/home/me/pins/capi-example.known_hosts"


def test_a_relative_kubeconfig_puts_the_known_hosts_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert hosts.host_keys(CLUSTER, "capi.kubeconfig").known_hosts_file == str(tmp_path / "capi-example.known_hosts")


def test_a_known_hosts_file_of_ones_own_is_checked_strictly_and_not_managed(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    keys = hosts.host_keys(CLUSTER, "/srv/kube/x.kubeconfig", "~/pinned")

    assert keys == hosts.HostKeys("/home/me/pinned", "yes") and not keys.managed
    assert hosts.host_key_options("i-1", keys) == [
        "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/home/me/pinned", "-o", "HostKeyAlias=i-1"]


@pytest.mark.parametrize("path, value", [
    ("/home/me/.kube/c.known_hosts", "/home/me/.kube/c.known_hosts"),
    ("/home/me/my clusters/c.known_hosts", '"/home/me/my clusters/c.known_hosts"'),
    ("/home/me/100%/c", "/home/me/100%%/c"),
    ('/home/me/a"b\\c', '"/home/me/a\\"b\\\\c"'),
    ("/home/me/#c", '"/home/me/#c"'),
])
def test_a_known_hosts_path_is_quoted_for_ssh(path, value):
    assert hosts.host_key_options("i-1", hosts.HostKeys(path))[3] == "UserKnownHostsFile=" + value


def test_paths_survive_ansibles_split_and_the_shell_that_runs_the_jump():
    keys = hosts.HostKeys("/home/me/my clusters/c.known_hosts")
    common = hosts.host_vars(worker(), JUMP, private_key_file="/keys/my key%.pem", keys=keys)["ansible_ssh_common_args"]

    argv = shlex.split(common)  # as Ansible's ssh connection splits ansible_ssh_common_args
    assert argv[:6] == ["-o", "StrictHostKeyChecking=accept-new", "-o", 'UserKnownHostsFile="/home/me/my clusters/c.known_hosts"',
                        "-o", "HostKeyAlias=i-w"]
    command = argv[7]
    assert command.startswith("ProxyCommand=ssh -W %h:%p ")
    # ssh expands %-tokens in the command, then /bin/sh splits it
    jump = shlex.split(command[len("ProxyCommand="):].replace("%%", "\0").replace("%h", "H").replace("%p", "P").replace("\0", "%"))
    assert jump == ["ssh", "-W", "H:P", "-o", "LogLevel=ERROR", "-o", "StrictHostKeyChecking=accept-new",
                    "-o", 'UserKnownHostsFile="/home/me/my clusters/c.known_hosts"', "-o", "HostKeyAlias=i-bastion",
                    "-i", "/keys/my key%%.pem", "ubuntu@" + BASTION_IP]  # the jump's ssh expands %% in -i once more


def test_the_clusters_own_known_hosts_is_made_owner_only_when_missing(tmp_path):
    keys = hosts.host_keys(CLUSTER, directory=str(tmp_path / "kube"))

    hosts.prepare_known_hosts(keys)

    assert oct((tmp_path / "kube").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "kube" / "capi-example.known_hosts").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "kube" / "capi-example.known_hosts").write_text("i-1 ssh-ed25519 AAAA\n")
    hosts.prepare_known_hosts(keys)
    assert (tmp_path / "kube" / "capi-example.known_hosts").read_text() == "i-1 ssh-ed25519 AAAA\n"


def test_a_known_hosts_of_ones_own_is_never_made(tmp_path):
    hosts.prepare_known_hosts(hosts.host_keys(CLUSTER, known_hosts_file=str(tmp_path / "mine" / "pinned")))

    assert not (tmp_path / "mine").exists()


# --- one cluster's hosts, as create_cluster.yml adds them ---------------------------------------

def without_cluster(*machines):
    """Machines as machine_set returns them: no cluster key."""
    return [dict((key, value) for key, value in m.items() if key != "cluster") for m in machines]


def test_node_hosts_of_a_cluster_with_a_bastion(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    listed = hosts.node_hosts(without_cluster(bastion(), control_plane(), worker()), CLUSTER)

    assert [(h["name"], h["groups"]) for h in listed] == [
        ("bastion", ["kubecluster_capi_example", "bastion"]),
        ("cp", ["kubecluster_capi_example", "kube_control_plane", "k8s_cluster"]),
        ("w", ["kubecluster_capi_example", "kubecluster_md_md_0", "kube_node", "k8s_cluster"]),
    ]
    by_name = dict((h["name"], h["vars"]) for h in listed)
    assert by_name["bastion"]["ansible_host"] == BASTION_IP
    assert by_name["bastion"]["ansible_ssh_common_args"] == PINNED % "i-bastion"
    assert by_name["w"]["ansible_ssh_common_args"] == PINNED % "i-w" + " " + hop(PINNED % "i-bastion")
    assert all(v["ansible_user"] == "ubuntu" and v["kubecluster_cluster_name"] == CLUSTER for v in by_name.values())
    assert not any("ansible_ssh_private_key_file" in v for v in by_name.values())


def test_node_hosts_pin_keys_next_to_the_kubeconfig_or_in_ones_own_file():
    machines = without_cluster(bastion(), worker())

    beside = hosts.node_hosts(machines, CLUSTER, kubeconfig_path="/srv/kube/capi.kubeconfig")
    own = hosts.node_hosts(machines, CLUSTER, kubeconfig_path="/srv/kube/capi.kubeconfig", known_hosts_file="/etc/pinned")

    assert beside[0]["vars"]["ansible_ssh_common_args"] == (
        "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/srv/kube/capi-example.known_hosts -o HostKeyAlias=i-bastion")
    strict = "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/pinned -o HostKeyAlias=%s"
    assert own[1]["vars"]["ansible_ssh_common_args"] == strict % "i-w" + " " + hop(strict % "i-bastion")


def test_node_hosts_take_state_and_addresses_from_the_later_read(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    # machine_set returned before AWS assigned the bastion its public IP; cluster_info read it after the wait
    launched = without_cluster(bastion(state="pending", public_ip=None), worker(state="pending"))
    later = without_cluster(bastion(), worker())

    listed = hosts.node_hosts(launched, CLUSTER, current=later, private_key_file="/keys/k.pem")

    by_name = dict((h["name"], h["vars"]) for h in listed)
    assert by_name["bastion"]["ansible_host"] == BASTION_IP
    assert by_name["w"]["ansible_ssh_common_args"] == PINNED % "i-w" + " " + hop(PINNED % "i-bastion", "-i /keys/k.pem ")
    assert by_name["w"]["ansible_ssh_private_key_file"] == "/keys/k.pem"


def test_node_hosts_leave_out_machines_planned_in_check_mode_and_stopped_ones():
    planned = dict(worker("new"), instance_id=UNKNOWN, private_ip=UNKNOWN, private_dns_name=UNKNOWN)
    stopped = worker("off", state="stopped")

    assert [h["name"] for h in hosts.node_hosts(without_cluster(planned, stopped, control_plane()), CLUSTER)] == ["cp"]


def test_node_hosts_without_a_bastion_reach_machines_directly():
    listed = hosts.node_hosts(without_cluster(control_plane(public_ip="198.51.100.5"), worker()), CLUSTER, user="admin")

    assert [h["vars"]["ansible_host"] for h in listed] == ["198.51.100.5", "10.0.64.21"]
    assert not any("ProxyCommand" in h["vars"]["ansible_ssh_common_args"] for h in listed)
    assert [h["vars"]["ansible_user"] for h in listed] == ["admin", "admin"]


def test_node_hosts_fail_on_a_group_clash():
    with pytest.raises(hosts.NodeContractError, match="group kubecluster_md_x would hold both cluster md-x"):
        hosts.node_hosts(without_cluster(worker(set_name="x")), "md-x")
