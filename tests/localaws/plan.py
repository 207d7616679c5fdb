"""What the local AWS should run, from a snapshot of moto's EC2 and ELBv2 state (pure; unit-tested).

``snapshot(account, regions)`` reads moto's backends in process (no API call, so nothing lands in
moto's recorder); ``desired(snapshot)`` turns it into networks, hosts and load balancer proxies.
"""

import ipaddress

INTERNET_NETWORK = "localaws-internet"
INTERNET_SUBNET = "198.19.16.0/20"
INTERNET_GATEWAY = "198.19.16.1"
DOCKER_RANGE = "198.19.16.0/21"  # Docker's own assignments on localaws-internet; moto's public IPs use 198.19.24.0/21
ALLOWED = ipaddress.ip_network("198.18.0.0/15")
# the node tests' fixed networks (tests/nodes/conftest.py) and the Docker bridge / internet ranges
RESERVED = [ipaddress.ip_network(cidr) for cidr in ("198.18.0.0/20", "198.19.0.0/20", INTERNET_SUBNET)]
LIVE_STATES = ("pending", "running")
KEPT_STATES = ("pending", "running", "stopping", "stopped")


def _state_name(instance):
    state = getattr(instance, "_state", None)
    return getattr(state, "name", None) or getattr(instance, "state", "unknown")


def snapshot(backends_by_region):
    """{vpcs, instances, key_pairs, load_balancers, target_groups} from {region: (ec2, elbv2)} moto backends."""
    shot = {"vpcs": {}, "instances": [], "key_pairs": {}, "load_balancers": [], "target_groups": {}}
    for region, (ec2, elbv2) in sorted(backends_by_region.items()):
        for vpc in list(ec2.vpcs.values()):
            shot["vpcs"][vpc.id] = vpc.cidr_block
        for pair in list(ec2.key_pairs.values()):
            public = pair.material_public
            shot["key_pairs"][pair.key_name] = public.decode() if isinstance(public, bytes) else public
        for reservation in list(ec2.reservations.values()):
            for instance in list(reservation.instances):
                shot["instances"].append({
                    "id": instance.id, "state": _state_name(instance), "private_ip": instance.private_ip,
                    "public_ip": instance.public_ip, "private_dns": instance.private_dns_name, "vpc_id": instance.vpc_id,
                    "key_name": instance.key_name, "zone": instance.placement.zone if hasattr(instance.placement, "zone") else instance.placement,
                    "region": region})
        if elbv2 is None:
            continue
        for group in list(elbv2.target_groups.values()):
            shot["target_groups"][group.arn] = {"port": group.port, "type": getattr(group, "target_type", "instance"),
                                                "targets": [{"id": target["Id"], "port": target.get("Port", group.port)}
                                                            for target in list(group.targets.values())]}
        for balancer in list(elbv2.load_balancers.values()):
            listeners = []
            for listener in list(balancer.listeners.values()):
                groups = []
                for action in listener.default_actions:
                    data = getattr(action, "data", action)
                    if data.get("TargetGroupArn"):
                        groups.append(data["TargetGroupArn"])
                    for forward in data.get("ForwardConfig", {}).get("TargetGroups", []):
                        groups.append(forward["TargetGroupArn"])
                listeners.append({"port": int(listener.port), "target_groups": groups})
            shot["load_balancers"].append({"name": balancer.name, "arn": balancer.arn, "dns_name": balancer.dns_name, "scheme": balancer.scheme,
                                           "vpc_id": balancer.vpc_id, "type": balancer.type, "listeners": listeners, "region": region})
    return shot


def container_name(kind, ident):
    return "localaws-%s-%s" % (kind, ident)


def vpc_addresses(cidr):
    network = ipaddress.ip_network(cidr)
    return {"cidr": str(network), "gateway": str(network.network_address + 1), "lb_ip": str(network.network_address + 3)}


def desired(shot):
    """{vpcs: {id: {network, cidr, gateway, lb_ip}}, refused: {id: reason}, hosts: {instance id: {...}}, proxies: {lb name: {...}}}."""
    used_vpcs = {instance["vpc_id"] for instance in shot["instances"] if instance["state"] in KEPT_STATES and instance["vpc_id"]}
    used_vpcs |= {balancer["vpc_id"] for balancer in shot["load_balancers"] if balancer["vpc_id"]}
    vpcs, refused = {}, {}
    for vpc_id in sorted(used_vpcs):
        cidr = shot["vpcs"].get(vpc_id)
        if not cidr:
            continue
        network = ipaddress.ip_network(cidr)
        reason = None
        if not network.subnet_of(ALLOWED):
            reason = "%s is outside 198.18.0.0/15" % cidr
        elif any(network.overlaps(reserved) for reserved in RESERVED):
            reason = "%s overlaps a range the node tests, Docker's bridge or localaws-internet use" % cidr
        else:
            clash = [other for other, entry in vpcs.items() if network.overlaps(ipaddress.ip_network(entry["cidr"]))]
            if clash:
                reason = "%s overlaps %s of %s" % (cidr, vpcs[clash[0]]["cidr"], clash[0])
        if reason:
            refused[vpc_id] = reason
            continue
        vpcs[vpc_id] = dict(vpc_addresses(cidr), network="localaws-%s" % vpc_id)
    hosts = {}
    for instance in shot["instances"]:
        if instance["state"] not in KEPT_STATES or instance["vpc_id"] not in vpcs:
            continue
        hosts[instance["id"]] = {
            "container": container_name("host", instance["id"]), "vpc_id": instance["vpc_id"], "network": vpcs[instance["vpc_id"]]["network"],
            "private_ip": instance["private_ip"], "public_ip": instance["public_ip"], "hostname": instance["private_dns"],
            "public_key": shot["key_pairs"].get(instance["key_name"]), "running": instance["state"] in LIVE_STATES, "zone": instance["zone"],
            "state": instance["state"]}
    addresses = {instance["id"]: instance["private_ip"] for instance in shot["instances"] if instance["state"] in LIVE_STATES}
    proxies, proxied_vpcs = {}, {}
    for balancer in sorted(shot["load_balancers"], key=lambda item: item["name"]):
        if balancer["vpc_id"] not in vpcs or balancer["type"] != "network":
            continue
        if balancer["vpc_id"] in proxied_vpcs:  # one reserved address (VPC base + 3) per VPC
            refused[balancer["name"]] = "a second network load balancer in %s (%s has its address)" % (balancer["vpc_id"], proxied_vpcs[balancer["vpc_id"]])
            continue
        proxied_vpcs[balancer["vpc_id"]] = balancer["name"]
        listeners = []
        for listener in balancer["listeners"]:
            targets = []
            for arn in listener["target_groups"]:
                group = shot["target_groups"].get(arn, {"targets": []})
                for target in group["targets"]:
                    address = addresses.get(target["id"]) if target["id"].startswith("i-") else target["id"]
                    if address:
                        targets.append([address, int(target["port"])])
            listeners.append({"port": listener["port"], "targets": sorted(targets)})
        proxies[balancer["name"]] = {
            "container": container_name("lb", balancer["name"]), "vpc_id": balancer["vpc_id"], "network": vpcs[balancer["vpc_id"]]["network"],
            "ip": vpcs[balancer["vpc_id"]]["lb_ip"], "dns_name": balancer["dns_name"], "internet": balancer["scheme"] == "internet-facing",
            "listeners": listeners}
    return {"vpcs": vpcs, "refused": refused, "hosts": hosts, "proxies": proxies}


def provider_id(shot, vpc_id, node_name):
    """The providerID the AWS cloud controller manager gives a node: aws:///<zone>/<instance id>, or None."""
    for instance in shot["instances"]:
        if instance["private_dns"] == node_name and instance["vpc_id"] == vpc_id and instance["state"] in LIVE_STATES:
            return "aws:///%s/%s" % (instance["zone"], instance["id"])
    return None
