#!/usr/bin/env python
"""Write the vars file of the stock-module composition (bench/stock/create.yml, delete.yml) from a kubecluster.aws spec.

The stock modules take explicit values: this fills in what the spec leaves to its defaults (the README's, CAPA's)
and lays out what CAPA computes (subnet CIDRs, which zone each machine goes to), with the standard library only.

    bench/stock/stock_vars.py --spec examples/capi-example.yml --out stock-vars.yml [--workers 20]
"""

import argparse
import ipaddress

import yaml

# The spec's defaults for the fields the example leaves out (README "Spec reference"; plugins/module_utils/spec.py).
ROOT_VOLUME = {"size": 80, "type": "gp3", "encrypted": True}
METADATA = {"http_tokens": "required", "http_put_response_hop_limit": 2}
IMAGE_LOOKUP = {"owner": "819546954734", "name_format": "capa-ami-{base_os}-?{k8s_version}-*", "base_os": "ubuntu-24.04"}
CONTROL_PLANE_PROFILE = "control-plane.cluster-api-provider-aws.sigs.k8s.io"
NODES_PROFILE = "nodes.cluster-api-provider-aws.sigs.k8s.io"
BASTION_INSTANCE_TYPE = "t3.micro"
NODE_PORT_CIDRS = ["0.0.0.0/0"]


def split(cidr, count):
    """CAPA's SplitIntoSubnetsIPv4: the first `count` of 2^k equal blocks of `cidr`."""
    blocks = ipaddress.ip_network(cidr).subnets(prefixlen_diff=(count - 1).bit_length())
    return [str(block) for _index, block in zip(range(count), blocks)]


def subnet_cidrs(vpc_cidr, zones):
    """CAPA's layout: zones+1 blocks; the first split again into the public subnets, the others private."""
    blocks = split(vpc_cidr, zones + 1)
    return split(blocks[0], zones), blocks[1:]


def per_zone(replicas, zones):
    """Machines of a set per zone index, spread round-robin from the first zone (as the collection does)."""
    return [len(range(index, replicas, zones)) for index in range(zones)]


def stock_vars(spec, workers=None):
    cluster = spec["cluster"]
    network = cluster.get("network", {})
    zones = network.get("availability_zones", 3)
    public, private = subnet_cidrs(network.get("vpc_cidr", "10.0.0.0/16"), zones)
    lookup = dict(IMAGE_LOOKUP, **cluster.get("image_lookup", {}))
    image_name = lookup["name_format"].replace("{base_os}", lookup["base_os"]).replace("{k8s_version}", cluster["kubernetes_version"].lstrip("v"))
    balancer = network.get("api_load_balancer", {})
    bastion = network.get("bastion", {})
    control_plane = cluster.get("control_plane", {})
    machine_sets = [{"name": "control-plane", "role": "control-plane", "replicas": control_plane.get("replicas", 1),
                     "instance_type": control_plane.get("instance_type", "t3.large"),
                     "profile": control_plane.get("iam_instance_profile", CONTROL_PLANE_PROFILE),
                     "groups": ["node", "lb", "controlplane"]}]
    for deployment in cluster["machine_deployments"]:
        replicas = deployment["replicas"] if workers is None else workers
        machine_sets.append({"name": deployment["name"], "role": "node", "replicas": replicas,
                             "instance_type": deployment.get("instance_type", "t3.large"),
                             "profile": deployment.get("iam_instance_profile", NODES_PROFILE), "groups": ["node", "lb"]})
    # One ec2_instance task (exact_count) per machine set and zone that holds machines of it.
    machines = []
    for machine_set in machine_sets:
        replicas = machine_set.pop("replicas")
        machines += [dict(machine_set, groups=list(machine_set["groups"]), zone_index=index, count=count)
                     for index, count in enumerate(per_zone(replicas, zones)) if count]
    return {"stock": {
        "name": cluster["name"],
        "region": cluster["region"],
        "key_name": cluster.get("ssh_key_name"),
        "vpc_cidr": network.get("vpc_cidr", "10.0.0.0/16"),
        "zone_count": zones,
        "public_cidrs": public,
        "private_cidrs": private,
        "node_port_cidrs": network.get("node_port_cidrs", NODE_PORT_CIDRS),
        "api_allowed_cidrs": balancer.get("allowed_cidrs", ["0.0.0.0/0"]),
        "api_scheme": balancer.get("scheme", "internet-facing"),
        "bastion": {"allowed_cidrs": bastion.get("allowed_cidrs", ["0.0.0.0/0"]), "ami_id": bastion.get("ami_id"),
                    "instance_type": bastion.get("instance_type", BASTION_INSTANCE_TYPE)},
        "image": {"owner": lookup["owner"], "name": image_name},
        "root_volume": dict(ROOT_VOLUME, **control_plane.get("root_volume", {})),
        "metadata": dict(METADATA, **cluster.get("instance_metadata", {})),
        "machines": machines,
    }}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, help="replicas of every machine deployment (default: the spec's)")
    args = parser.parse_args()
    with open(args.spec, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("# bench/stock/stock_vars.py --spec %s\n" % args.spec)
        yaml.safe_dump(stock_vars(spec, args.workers), handle, default_flow_style=False, sort_keys=False)


if __name__ == "__main__":
    main()
