"""hosts.py, the node contract: which machines are hosts, their groups, the address SSH connects
to and the hop through the bastion - one decision for the inventory plugin and create_cluster.yml."""

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

def test_the_bastion_is_the_lowest_up_one_with_a_public_ip():
    assert hosts.bastion_address([worker(), bastion()]) == BASTION_IP
    assert hosts.bastion_address([bastion(state="pending")]) == BASTION_IP
    assert hosts.bastion_address([bastion(state="stopped")]) is None
    assert hosts.bastion_address([bastion(public_ip=None)]) is None
    assert hosts.bastion_address([worker(public_ip="198.51.100.1")]) is None
    second = bastion(public_ip="203.0.113.99", instance_id="i-2")
    assert hosts.bastion_address([second, bastion(instance_id="i-1")]) == BASTION_IP


def test_a_private_machine_is_reached_through_the_bastion():
    variables = hosts.host_vars(worker(), BASTION_IP)

    assert variables["ansible_host"] == "10.0.64.21"
    assert variables["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@" + BASTION_IP


def test_the_bastion_itself_is_reached_at_its_public_ip_directly():
    variables = hosts.host_vars(bastion(), BASTION_IP)

    assert variables["ansible_host"] == BASTION_IP
    assert "ansible_ssh_common_args" not in variables


def test_a_machine_with_its_own_public_ip_is_reached_at_it_directly():
    variables = hosts.host_vars(worker(public_ip="198.51.100.7"), BASTION_IP)

    assert variables["ansible_host"] == "198.51.100.7"
    assert "ansible_ssh_common_args" not in variables


def test_without_a_bastion_machines_are_reached_directly():
    assert hosts.host_vars(worker(public_ip="198.51.100.7"), None)["ansible_host"] == "198.51.100.7"
    private = hosts.host_vars(worker(), None)
    assert private["ansible_host"] == "10.0.64.21"
    assert "ansible_ssh_common_args" not in private


def test_from_inside_the_vpc_every_machine_but_the_bastion_is_reached_at_its_private_ip():
    public_worker = hosts.host_vars(worker(public_ip="198.51.100.7"), BASTION_IP, proxy_jump=False)
    assert public_worker["ansible_host"] == "10.0.64.21"
    assert "ansible_ssh_common_args" not in public_worker
    assert "ansible_ssh_common_args" not in hosts.host_vars(worker(), BASTION_IP, proxy_jump=False)
    assert hosts.host_vars(bastion(), BASTION_IP, proxy_jump=False)["ansible_host"] == BASTION_IP


def test_the_hop_with_a_key_file_passes_the_key_to_the_jump_too():
    assert hosts.bastion_hop("ubuntu", BASTION_IP) == "-o ProxyJump=ubuntu@203.0.113.10"
    assert hosts.bastion_hop("admin", BASTION_IP, "~/.ssh/jonnung.pem") == (
        '-o ProxyCommand="ssh -W %h:%p -q -i ~/.ssh/jonnung.pem admin@203.0.113.10"')

    variables = hosts.host_vars(worker(), BASTION_IP, bastion_user="admin", user="admin", private_key_file="~/.ssh/k.pem")
    assert variables["ansible_ssh_common_args"] == '-o ProxyCommand="ssh -W %h:%p -q -i ~/.ssh/k.pem admin@203.0.113.10"'
    assert variables["ansible_ssh_private_key_file"] == "~/.ssh/k.pem"
    assert variables["ansible_user"] == "admin"


def test_host_vars_name_the_machine():
    assert hosts.host_vars(control_plane(), BASTION_IP) == {
        "ansible_host": "10.0.64.11",
        "ansible_ssh_common_args": "-o ProxyJump=ubuntu@" + BASTION_IP,
        "kubecluster_node_name": "ip-10-0-64-11.ap-northeast-2.compute.internal",
        "kubecluster_instance_id": "i-cp",
        "kubecluster_machine_set": "control-plane",
        "kubecluster_availability_zone": "ap-northeast-2a",
        "kubecluster_cluster_name": CLUSTER,
    }


# --- one cluster's hosts, as create_cluster.yml adds them ---------------------------------------

def without_cluster(*machines):
    """Machines as machine_set returns them: no cluster key."""
    return [dict((key, value) for key, value in m.items() if key != "cluster") for m in machines]


def test_node_hosts_of_a_cluster_with_a_bastion():
    listed = hosts.node_hosts(without_cluster(bastion(), control_plane(), worker()), CLUSTER)

    assert [(h["name"], h["groups"]) for h in listed] == [
        ("bastion", ["kubecluster_capi_example", "bastion"]),
        ("cp", ["kubecluster_capi_example", "kube_control_plane", "k8s_cluster"]),
        ("w", ["kubecluster_capi_example", "kubecluster_md_md_0", "kube_node", "k8s_cluster"]),
    ]
    by_name = dict((h["name"], h["vars"]) for h in listed)
    assert by_name["bastion"]["ansible_host"] == BASTION_IP and "ansible_ssh_common_args" not in by_name["bastion"]
    assert by_name["w"]["ansible_ssh_common_args"] == "-o ProxyJump=ubuntu@" + BASTION_IP
    assert all(v["ansible_user"] == "ubuntu" and v["kubecluster_cluster_name"] == CLUSTER for v in by_name.values())
    assert not any("ansible_ssh_private_key_file" in v for v in by_name.values())


def test_node_hosts_take_state_and_addresses_from_the_later_read():
    # machine_set returned before AWS assigned the bastion its public IP; cluster_info read it after the wait
    launched = without_cluster(bastion(state="pending", public_ip=None), worker(state="pending"))
    later = without_cluster(bastion(), worker())

    listed = hosts.node_hosts(launched, CLUSTER, current=later, private_key_file="/keys/k.pem")

    by_name = dict((h["name"], h["vars"]) for h in listed)
    assert by_name["bastion"]["ansible_host"] == BASTION_IP
    assert by_name["w"]["ansible_ssh_common_args"] == '-o ProxyCommand="ssh -W %h:%p -q -i /keys/k.pem ubuntu@203.0.113.10"'
    assert by_name["w"]["ansible_ssh_private_key_file"] == "/keys/k.pem"


def test_node_hosts_leave_out_machines_planned_in_check_mode_and_stopped_ones():
    planned = dict(worker("new"), instance_id=UNKNOWN, private_ip=UNKNOWN, private_dns_name=UNKNOWN)
    stopped = worker("off", state="stopped")

    assert [h["name"] for h in hosts.node_hosts(without_cluster(planned, stopped, control_plane()), CLUSTER)] == ["cp"]


def test_node_hosts_without_a_bastion_reach_machines_directly():
    listed = hosts.node_hosts(without_cluster(control_plane(public_ip="198.51.100.5"), worker()), CLUSTER, user="admin")

    assert [h["vars"]["ansible_host"] for h in listed] == ["198.51.100.5", "10.0.64.21"]
    assert not any("ansible_ssh_common_args" in h["vars"] for h in listed)
    assert [h["vars"]["ansible_user"] for h in listed] == ["admin", "admin"]


def test_node_hosts_fail_on_a_group_clash():
    with pytest.raises(hosts.NodeContractError, match="group kubecluster_md_x would hold both cluster md-x"):
        hosts.node_hosts(without_cluster(worker(set_name="x")), "md-x")
