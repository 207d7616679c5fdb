"""End-to-end test helpers: an account on a moto server prepared like a real one, and
ansible-playbook runs of the collection's own playbooks against it (used by tests and bench/)."""

import copy
import json
import os
import subprocess
import sys

import boto3
import yaml

from helpers.aws import AMI, KEY_NAME, REGION
from helpers.moto_server import ACCOUNT_ID

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS_ROOT = os.path.join(REPO, ".ansible", "collections")

# moto has no CNCF (CAPA) images: register one with CAPA's name format, owned by moto's account.
CAPA_IMAGE_NAME = "capa-ami-ubuntu-24.04-v1.31.4-1732500000"
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")


def tags(resource):
    """A boto3 resource's ``Tags`` (or ``TagSet``) list as a dict."""
    return dict((t["Key"], t["Value"]) for t in resource.get("Tags", resource.get("TagSet", [])))


class Account(object):
    """boto3 clients on the moto server, and the things a user's account already has."""

    def __init__(self, server):
        self.server = server
        kwargs = dict(region_name=REGION, endpoint_url=server.url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
        self.ec2 = boto3.client("ec2", **kwargs)
        self.elbv2 = boto3.client("elbv2", **kwargs)
        self.elb = boto3.client("elb", **kwargs)
        self.iam = boto3.client("iam", **kwargs)
        self.cloudformation = boto3.client("cloudformation", **kwargs)
        self.ssm = boto3.client("ssm", **kwargs)

    def prepare(self, iam=True):
        """Import the spec's key pair and register a CAPA-named image, as a real account would have;
        with ``iam``, also the instance profiles bootstrap_iam.yml makes (tests of the IAM playbook pass False)."""
        if iam:
            for profile in ("control-plane.cluster-api-provider-aws.sigs.k8s.io", "nodes.cluster-api-provider-aws.sigs.k8s.io"):
                self.iam.create_instance_profile(InstanceProfileName=profile)
        self.ec2.create_key_pair(KeyName=KEY_NAME)
        # moto's RegisterImage drops the architecture and virtualization type that CAPA's lookup
        # filters on; an image made from an instance of one of moto's own AMIs keeps them.
        builder = self.ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        image = self.ec2.create_image(InstanceId=builder, Name=CAPA_IMAGE_NAME)
        self.ec2.terminate_instances(InstanceIds=[builder])
        return image["ImageId"]

    def owned(self, cluster_name):
        """Every EC2 / ELB resource carrying the cluster's ownership tag, by type."""
        owned_filter = [{"Name": "tag:sigs.k8s.io/cluster-api-provider-aws/cluster/%s" % cluster_name, "Values": ["owned"]}]
        instances = [i for r in self.ec2.describe_instances(Filters=owned_filter)["Reservations"] for i in r["Instances"]
                     if i["State"]["Name"] != "terminated"]
        nat_gateways = [n for n in self.ec2.describe_nat_gateways(Filters=owned_filter)["NatGateways"]
                        if n["State"] not in ("deleted",)]
        balancers = [b for b in self.elbv2.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"].startswith(cluster_name)]
        return {
            "vpcs": self.ec2.describe_vpcs(Filters=owned_filter)["Vpcs"],
            "subnets": self.ec2.describe_subnets(Filters=owned_filter)["Subnets"],
            "internet_gateways": self.ec2.describe_internet_gateways(Filters=owned_filter)["InternetGateways"],
            "nat_gateways": nat_gateways,
            "addresses": self.ec2.describe_addresses(Filters=owned_filter)["Addresses"],
            "route_tables": self.ec2.describe_route_tables(Filters=owned_filter)["RouteTables"],
            "security_groups": self.ec2.describe_security_groups(Filters=owned_filter)["SecurityGroups"],
            "instances": instances,
            "load_balancers": balancers,
        }


class PlaybookRun(object):
    """One ansible-playbook run's outcome, read from the JSON callback."""

    def __init__(self, completed):
        self.rc = completed.returncode
        self.stderr = completed.stderr
        self.stdout = completed.stdout
        try:
            self.report = json.loads(completed.stdout[completed.stdout.index("{"):])
        except ValueError:
            self.report = {"plays": [], "stats": {}}

    @property
    def stats(self):
        return self.report.get("stats", {}).get("localhost", {})

    @property
    def changed(self):
        return self.stats.get("changed", 0)

    def results(self, task_name):
        """The per-host results of every task whose name starts with task_name, across plays."""
        found = []
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"].startswith(task_name):
                    found.append(task["hosts"].get("localhost", {}))
        return found

    def result(self, task_name):
        results = self.results(task_name)
        assert results, "no task named %r ran" % task_name
        return results[0]

    def explain(self):
        failures = []
        for play in self.report.get("plays", []):
            for task in play.get("tasks", []):
                for host, result in task["hosts"].items():
                    if result.get("failed") or result.get("unreachable"):
                        failures.append("%s on %s: %s" % (task["task"]["name"], host, result.get("msg")))
                        for item in result.get("results", []):
                            if item.get("failed"):
                                failures.append("  item %s: %s" % (item.get("item"), item.get("msg")))
        return "rc=%s\n%s\n%s" % (self.rc, "\n".join(failures), self.stderr[-3000:])


def playbook_command(moto_server, workdir, playbook, spec=None, extra_vars=None, check=False, diff=False, tags=None,
                     verbosity=0, env=None):
    """The ansible-playbook command line and environment that run a playbook, from the checkout, against the moto server.

    ``playbook`` names one of playbooks/ (without .yml) or is the absolute path of a playbook file;
    ``verbosity`` adds that many -v; ``env`` overrides or, with a value of None, removes variables
    of the environment ansible_env() gives.
    """
    path = playbook if os.path.isabs(playbook) else os.path.join(REPO, "playbooks", playbook + ".yml")
    args = [ANSIBLE_PLAYBOOK, path]
    if tags:
        args += ["--tags", ",".join(tags)]
    if spec is not None:
        spec_file = workdir / ("spec-%s.yml" % spec["cluster"]["name"])
        spec_file.write_text(yaml.safe_dump(spec))
        args += ["-e", "@%s" % spec_file]
    for key, value in (extra_vars or {}).items():
        args += ["-e", json.dumps({key: value})]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbosity:
        args.append("-" + "v" * verbosity)
    return args, ansible_env(moto_server, env)


def playbook_runner(moto_server, workdir):
    """A function that runs one of the collection's playbooks, from the checkout, against the moto server."""

    def run(playbook, spec=None, **options):
        args, env = playbook_command(moto_server, workdir, playbook, spec, **options)
        completed = subprocess.run(args, cwd=str(workdir), env=env, capture_output=True, text=True, timeout=900,
                                   check=False)
        return PlaybookRun(completed)

    return run


def ansible_env(moto_server, changes=None):
    """The environment of an Ansible command run from the checkout against the moto server: the
    server's fake credentials and endpoint, the JSON stdout callback; then ``changes`` applied,
    a value of None removing the variable."""
    env = moto_server.env()
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_NOCOLOR="1")
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


class StartedRun(object):
    """An ansible-playbook run started without waiting (in its own process group, so a test can kill it)."""

    def __init__(self, args, env, workdir):
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # waited for in wait()
            args, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)

    @property
    def pid(self):
        return self.process.pid

    def wait(self, timeout=900):
        stdout, stderr = self.process.communicate(timeout=timeout)
        return PlaybookRun(subprocess.CompletedProcess(self.process.args, self.process.returncode, stdout, stderr))


def start_playbook(moto_server, workdir, playbook, **options):
    """Start one of the collection's playbooks like playbook_runner's run, without waiting for it."""
    args, env = playbook_command(moto_server, workdir, playbook, **options)
    return StartedRun(args, env, workdir)


def example_spec(image_id, **changes):
    """examples/capi-example.yml, with the local account's image, and `changes` merged into `cluster`."""
    with open(os.path.join(REPO, "examples", "capi-example.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    cluster = spec["cluster"]
    cluster["image_lookup"] = {"owner": ACCOUNT_ID}
    cluster["network"]["bastion"]["ami_id"] = image_id
    _merge(cluster, copy.deepcopy(changes))
    return spec


def _merge(into, changes):
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
