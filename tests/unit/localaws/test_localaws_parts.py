"""The pure parts of the local AWS (tests/localaws): the public address patch of moto, the desired state
computed from a moto snapshot, and the load balancer proxy's target selection."""

import ipaddress
import os
import socket
import sys

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend

LOCALAWS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "localaws")
if LOCALAWS not in sys.path:
    sys.path.insert(0, LOCALAWS)

import lb_proxy  # noqa: E402
import moto_ips  # noqa: E402
import plan  # noqa: E402

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
PRIVATE = [ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


@pytest.fixture
def local_moto(aws_env, monkeypatch):
    """moto in process with the local AWS's public address allocator patched in (undone after the test)."""
    from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces
    with mock_aws():
        allocator = moto_ips.PublicIpAllocator(in_use=lambda: moto_ips.addresses_in_use([get_backend("ec2")[ACCOUNT][REGION]]))
        monkeypatch.setattr(elastic_network_interfaces, "random_public_ip", allocator)
        monkeypatch.setattr(elastic_ip_addresses, "random_ip", allocator)
        yield boto3.client("ec2", region_name=REGION), boto3.client("elbv2", region_name=REGION)


def backends():
    return {REGION: (get_backend("ec2")[ACCOUNT][REGION], get_backend("elbv2")[ACCOUNT][REGION])}


def make_vpc(ec2, cidr="198.18.64.0/18"):
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=str(next(ipaddress.ip_network(cidr).subnets(new_prefix=24))),
                               AvailabilityZone=REGION + "a")["Subnet"]["SubnetId"]
    return vpc, subnet


def launch(ec2, subnet, public=False, key="k"):
    return ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1, KeyName=key,
                             NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": public}])["Instances"][0]["InstanceId"]


# -- public addresses -------------------------------------------------------------------------------------------
def test_public_and_elastic_ips_come_from_the_local_internet_range_and_are_unique(local_moto):
    ec2, _elbv2 = local_moto
    _vpc, subnet = make_vpc(ec2)
    ec2.import_key_pair(KeyName="k", PublicKeyMaterial="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0xgmB8bqMC7u3K6Y9oQ6g8b8F4mP2b8x5b8fL0a1B t")
    instance_ips = [ec2.describe_instances(InstanceIds=[launch(ec2, subnet, public=True)])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
                    for _index in range(3)]
    elastic_ips = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _index in range(3)]
    addresses = [ipaddress.ip_address(address) for address in instance_ips + elastic_ips]
    assert len(set(addresses)) == 6
    assert all(address in ipaddress.ip_network(moto_ips.PUBLIC_POOL) for address in addresses)
    assert not any(address in network for address in addresses for network in PRIVATE)


def test_the_allocator_skips_addresses_in_use_and_reuses_freed_ones():
    in_use = {"198.19.24.1"}
    allocator = moto_ips.PublicIpAllocator("198.19.24.0/30", in_use=lambda: in_use)
    assert allocator() == "198.19.24.2"
    in_use.add("198.19.24.2")
    in_use.discard("198.19.24.1")
    assert allocator() == "198.19.24.1"  # every address was issued once: a free one comes back
    in_use.add("198.19.24.1")
    with pytest.raises(RuntimeError, match="exhausted"):
        allocator()


# -- desired state ------------------------------------------------------------------------------------------------
def test_desired_state_from_a_moto_snapshot(local_moto):
    ec2, elbv2 = local_moto
    vpc, subnet = make_vpc(ec2)
    ec2.import_key_pair(KeyName="k", PublicKeyMaterial="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0xgmB8bqMC7u3K6Y9oQ6g8b8F4mP2b8x5b8fL0a1B t")
    bastion, control_plane, worker, gone = (launch(ec2, subnet, public=True), launch(ec2, subnet), launch(ec2, subnet), launch(ec2, subnet))
    ec2.stop_instances(InstanceIds=[worker])
    ec2.terminate_instances(InstanceIds=[gone])
    balancer = elbv2.create_load_balancer(Name="c-apiserver", Subnets=[subnet], Type="network", Scheme="internet-facing")["LoadBalancers"][0]
    group = elbv2.create_target_group(Name="c-apiserver", Protocol="TCP", Port=6443, VpcId=vpc, TargetType="instance")["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="TCP", Port=6443,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}])
    elbv2.register_targets(TargetGroupArn=group["TargetGroupArn"], Targets=[{"Id": control_plane}])
    # a VPC that overlaps the node tests' networks is refused
    other, other_subnet = make_vpc(ec2, "198.18.0.0/20")
    launch(ec2, other_subnet)

    shot = plan.snapshot(backends())
    wanted = plan.desired(shot)

    assert wanted["vpcs"] == {vpc: {"network": "localaws-" + vpc, "cidr": "198.18.64.0/18", "gateway": "198.18.64.1", "lb_ip": "198.18.64.3"}}
    assert other in wanted["refused"] and "node tests" in wanted["refused"][other]
    hosts = wanted["hosts"]
    assert sorted(hosts) == sorted([bastion, control_plane, worker])
    assert hosts[worker]["running"] is False and hosts[control_plane]["running"] is True
    assert hosts[bastion]["public_ip"].startswith("198.19.") and hosts[control_plane]["public_ip"] is None
    assert hosts[control_plane]["hostname"] == "ip-%s.%s.compute.internal" % (hosts[control_plane]["private_ip"].replace(".", "-"), REGION)
    assert hosts[control_plane]["public_key"].startswith("ssh-ed25519 ")
    assert all(ipaddress.ip_address(host["private_ip"]) in ipaddress.ip_network("198.18.64.0/18") for host in hosts.values())
    proxy = wanted["proxies"]["c-apiserver"]
    assert proxy["ip"] == "198.18.64.3" and proxy["internet"] is True and proxy["dns_name"] == balancer["DNSName"]
    assert proxy["listeners"] == [{"port": 6443, "targets": [[hosts[control_plane]["private_ip"], 6443]]}]
    assert plan.provider_id(shot, vpc, hosts[control_plane]["hostname"]) == "aws:///%sa/%s" % (REGION, control_plane)
    assert plan.provider_id(shot, vpc, "ip-198-18-99-99.%s.compute.internal" % REGION) is None


def test_overlapping_vpcs_and_ranges_outside_the_benchmark_range_are_refused():
    shot = {"vpcs": {"vpc-a": "198.18.64.0/18", "vpc-b": "198.18.96.0/19", "vpc-c": "10.0.0.0/16"},
            "instances": [{"id": "i-%d" % index, "state": "running", "private_ip": ip, "public_ip": None, "private_dns": "n%d" % index,
                           "vpc_id": vpc, "key_name": None, "zone": "z", "region": REGION}
                          for index, (vpc, ip) in enumerate((("vpc-a", "198.18.64.4"), ("vpc-b", "198.18.96.4"), ("vpc-c", "10.0.0.4")))],
            "key_pairs": {}, "load_balancers": [], "target_groups": {}}
    wanted = plan.desired(shot)
    assert list(wanted["vpcs"]) == ["vpc-a"]
    assert "overlaps" in wanted["refused"]["vpc-b"] and "outside" in wanted["refused"]["vpc-c"]
    assert list(wanted["hosts"]) == ["i-0"]


# -- the load balancer proxy --------------------------------------------------------------------------------------
def test_targets_get_traffic_only_while_healthy_round_robin():
    first, second = ("198.18.64.4", 6443), ("198.18.64.5", 6443)
    pool = lb_proxy.TargetPool([first, second])
    assert pool.pick() is None  # initial: no probe passed yet
    pool.report(first, True)
    pool.report(second, True)
    assert [pool.pick() for _index in range(4)] == [first, second, first, second]
    pool.report(second, False)
    assert pool.healthy() == [first, second]  # one failure is not enough
    pool.report(second, False)
    assert pool.healthy() == [first] and pool.pick() == first
    pool.update([second])  # registrations changed: first deregistered, second keeps its health
    assert pool.pick() is None
    pool.report(second, True)
    assert pool.pick() == second


def test_the_proxy_forwards_to_a_healthy_target_and_refuses_without_one(tmp_path):
    with socket.socket() as backend:
        backend.bind(("127.0.0.1", 0))
        backend.listen(1)
        with socket.socket() as probe_port:
            probe_port.bind(("127.0.0.1", 0))
            port = probe_port.getsockname()[1]
        listener = lb_proxy.Listener(port, host="127.0.0.1")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
                assert client.recv(10) == b""  # no target: closed at once
            listener.pool.update([backend.getsockname()])
            listener.pool.report(backend.getsockname(), lb_proxy.probe(backend.getsockname()))
            backend.accept()[0].close()  # the probe's connection
            with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
                served, _address = backend.accept()
                with served:
                    served.sendall(b"hello")
                    assert client.recv(10) == b"hello"
        finally:
            listener.close()


def test_one_local_aws_per_machine_a_second_waits_for_the_lock(tmp_path, monkeypatch):
    """up() takes the machine-wide lock (the daemon inherits it; down() releases it): a second local AWS waits, naming the first."""
    import localaws  # pylint: disable=import-outside-toplevel  # needs tests/ on the path, which localaws.py sets up itself
    monkeypatch.setattr(localaws, "MACHINE_LOCK", str(tmp_path / "localaws.lock"))
    first, second = localaws.LocalAws(str(tmp_path / "first")), localaws.LocalAws(str(tmp_path / "second"))
    first.take_machine_lock()
    try:
        with pytest.raises(localaws.LocalAwsError, match=str(tmp_path / "first")):
            second.take_machine_lock(wait=0.1)
    finally:
        first.release_machine_lock()
    second.take_machine_lock(wait=0.1)
    second.release_machine_lock()
