"""What the unit, e2e and node tests share about the AWS account they run against.

- The account's constants: one region, its zones, the example spec's cluster and the tags tests read back,
  the moto image that launches everywhere, the key pair name.
- One read/write classification of AWS API calls, used by the in-process recorder (conftest's ``aws_calls``)
  and by the moto server's (helpers.moto_server), so "a rerun only reads" means the same in both.
- ``AwsCalls``, what the in-process recorder hands a test.
- ``context()``, plugins' Context on moto in process.

Nothing here imports the collection at module level: helpers.moto_server (and so bench/) imports this module
before anything may have linked the checkout as kubecluster.aws.
"""

import boto3

REGION = "ap-northeast-2"
# The region's three zones in zone order, as DescribeAvailabilityZones answers (moto and AWS).
ZONES = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
# The example spec's cluster (examples/capi-example.yml) and the tags tests read back. Spelled out here rather
# than computed with plugins' naming, so a test that compares the collection's tags with these checks them.
CLUSTER = "capi-example"
OWNER = "sigs.k8s.io/cluster-api-provider-aws/cluster/" + CLUSTER
CCM = "kubernetes.io/cluster/" + CLUSTER
ROLE = "sigs.k8s.io/cluster-api-provider-aws/role"
KEY_NAME = "jonnung"
AMI = "ami-03cf127a"  # an x86_64 HVM image moto serves (and launches) in every region
KUBERNETES_VERSION = "v1.31.4"
LEASE = "/kubecluster.aws/clusters/%s/lease" % CLUSTER  # the cluster lease's SSM parameter

# --- which API calls only read --------------------------------------------------------------

# Actions that only read though their names do not say so. Everything else that does not start
# with one of READ_PREFIXES changes something (Create*, Delete*, Modify*, Run*, Terminate*,
# Authorize*, Revoke*, Associate*, Attach*, Register*, Put*, Add*, Remove*, Set*, Tag*, ...).
READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Head")
READ_ACTIONS = frozenset((
    "ValidateTemplate",          # cloudformation
    "EstimateTemplateCost",      # cloudformation
    "AssumeRole",                # sts: hands out credentials, changes no resource
    "AssumeRoleWithWebIdentity",
    "DecodeAuthorizationMessage",
    "SimulatePrincipalPolicy",   # iam
    "SimulateCustomPolicy",
))


def is_read_action(action, dry_run=False):
    """Whether an API operation (by its name, e.g. ``DescribeVpcs``) only reads; a DryRun call never changes anything."""
    return dry_run or action.startswith(READ_PREFIXES) or action in READ_ACTIONS


class AwsCalls(list):
    """The AWS API calls a test made, as (service, operation) pairs, in order.

    Their parameters are kept beside them (``params_of``); clearing the list (``clear()`` or
    ``del calls[:]``) forgets both.
    """

    def __init__(self):
        super().__init__()
        self._params = []

    def record(self, service, operation, params):
        self.append((service, operation))
        self._params.append(params)

    def __delitem__(self, index):
        super().__delitem__(index)
        del self._params[index]

    def clear(self):
        super().clear()
        self._params.clear()

    def _is_read(self, position):
        operation = self[position][1]
        return is_read_action(operation, dry_run=bool(self._params[position].get("DryRun")))

    def writes(self):
        return [call for position, call in enumerate(self) if not self._is_read(position)]

    def reads(self):
        return [call for position, call in enumerate(self) if self._is_read(position)]

    def operations(self):
        """The operation names alone, in order."""
        return [operation for _service, operation in self]

    def written(self):
        """The operation names of the writes, in order."""
        return [operation for _service, operation in self.writes()]

    def params_of(self, operation):
        """The parameters of every call of one operation, in order."""
        return [params for (_service, name), params in zip(self, self._params) if name == operation]


# --- plugins' Context on moto in process -------------------------------------------------------

def context(*clients, **options):
    """plugins' Context in REGION: the test's own boto3 ``clients`` for their services (so the service uses
    exactly the client the test holds), new boto3 clients on REGION for every other service. ``options`` go
    to Context (wait, wait_timeout)."""
    from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context

    own = {client.meta.service_model.service_name: client for client in clients}
    return Context(lambda service: own[service] if service in own else boto3.client(service, region_name=REGION), REGION, **options)


# --- the images CAPA's lookup finds -----------------------------------------------------------

CAPA_IMAGE_OWNER = "819546954734"      # CNCF's account, where CAPA publishes its Kubernetes images
CANONICAL_IMAGE_OWNER = "099720109477"  # the bastion's Ubuntu images


def publish_lookup_images(ec2, kubernetes_versions):
    """Images for the spec's default lookups in moto IN PROCESS: a CAPA-named Kubernetes image per version, owned by
    CAPA's account, and a Canonical Ubuntu 24.04 image for the bastion (moto serves neither). Returns their ids.

    Checks that run before a launch look the images up as the launch does; a test whose spec names no ami_id needs them.
    moto gives a new image the caller's account, so the owner is set in its backend (a test's fixture, never product code).
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    names = {"capa-ami-ubuntu-24.04-%s-00" % version: CAPA_IMAGE_OWNER for version in kubernetes_versions}
    names["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101"] = CANONICAL_IMAGE_OWNER
    source = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    published = {}
    for name, owner in names.items():
        image_id = ec2.create_image(InstanceId=source, Name=name)["ImageId"]
        ec2_backends[DEFAULT_ACCOUNT_ID][REGION].amis[image_id].owner_id = owner
        published[name] = image_id
    ec2.terminate_instances(InstanceIds=[source])
    return published
