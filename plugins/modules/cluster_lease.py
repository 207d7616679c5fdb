#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cluster_lease
version_added: 1.0.0
short_description: Take, renew or release the lease that lets one run at a time change a cluster
description:
  - Two runs changing one cluster at once (two AWX jobs, a job and a terminal) can both create what neither
    found, for example two VPCs. The create and delete playbooks therefore take this lease before their first
    write and release it at the end; a second run fails at once, naming the run that holds the lease and since when.
  - The lease is the SSM parameter C(/kubecluster.aws/clusters/<cluster>/lease) in the spec's region, so one lease
    per cluster and region. It is created only if absent (PutParameter without overwrite), which AWS does
    atomically; of two runs, exactly one gets it. A tag on a cluster resource cannot do this, because EC2 CreateTags
    always overwrites and, before the first create, the cluster has no resource to tag.
  - The value is JSON with a random C(token) (made at acquire; whoever presents it holds the lease), the C(holder)
    text, C(since) and C(expires) (UTC, ISO 8601), and the controller's C(host) and ansible-playbook C(pid). The
    parameter carries the cluster's ownership tag.
  - With O(state=present) and the O(token) of the current lease the lease is renewed (its expiry moves to now plus
    O(ttl), C(since) is kept). A lease past its expiry is taken over, so a killed run blocks others for at most
    O(ttl) seconds. So is, at once, a lease held by an ansible-playbook process of this controller (same host name
    and pid namespace) that no longer runs, such as a run stopped with Ctrl-C. O(force=true) breaks a lease that
    has not expired.
  - A takeover goes through a second parameter, C(.../lease-takeover-<token of the old lease>), also created only
    if absent, so that of several runs taking over the same lease only one deletes and replaces it; a marker left
    for more than 5 minutes by a run that died during a takeover is removed.
  - With O(state=absent) the lease is deleted if O(token) holds it. A lease already gone is fine; a lease another
    run holds (it broke or took over this run's lease) is left alone, with a warning.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  cluster:
    description:
      - The cluster spec. Only its C(name) and C(region) are read (C(AWS_REGION) fills in a missing region), so
        that the lease of a cluster whose spec no longer validates can still be taken to delete it.
  state:
    description:
      - V(present) takes or renews the lease; V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  token:
    description:
      - The token RV(token) of an earlier call of this run. With O(state=present) it renews that lease; with
        O(state=absent) it is required and names the lease to release.
      - Without it, O(state=present) takes a new lease and returns its token.
    type: str
  holder:
    description:
      - Who holds the lease, as the refusal message to another run shows it, for example
        C(root@ctl01 create_cluster.yml pid 4242) or C(AWX job 17). At most 512 characters are kept.
      - Do not put secrets here; anyone who can read the parameter sees it.
    type: str
    default: unknown
  ttl:
    description:
      - Seconds from now until the lease expires, at acquire and at each renewal.
      - The default, 1800, outlasts each stretch between the create playbook's renewals (the AWS part, including a
        wait of up to 10 minutes for machines; the node part) with room to spare, while a killed run blocks the
        cluster for at most half an hour. Raise it when a single play of yours runs longer.
    type: int
    default: 1800
  force:
    description:
      - Break a lease another run holds even though it has not expired. Use it only when that run is known to be
        no longer running; if it still runs, both runs change the cluster at once.
    type: bool
    default: false
  validate_spec:
    description:
      - Validate O(cluster) as a whole, as M(kubecluster.aws.cluster_spec) does offline, before any AWS call, and fail
        naming every problem; without it only the name and the region are read (a delete can release the lease of a
        cluster whose spec no longer validates). C(create_cluster.yml) sets it, so that a bad spec takes no lease.
    type: bool
    default: false
attributes:
  check_mode:
    description: Reads the lease and returns what a real run would do (RV(outcome)); never writes. A lease another
      run holds is reported with a warning rather than a failure.
    support: full
  diff_mode:
    description: Returns the lease before and after under --diff.
    support: full
notes:
  - Needs C(ssm:PutParameter), C(ssm:GetParameter), C(ssm:DeleteParameter) and C(ssm:AddTagsToResource) on
    C(arn:aws:ssm:*:*:parameter/kubecluster.aws/*).
  - Whether a lease is expired is judged by the clock of the run that reads it; keep controllers' clocks in sync (NTP).
  - A renewal of a lease that is not near its expiry overwrites it; renewals and releases within a minute of the
    expiry go through the takeover parameter, so they never race a takeover.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Take the cluster lease before the first write
  kubecluster.aws.cluster_lease:
    cluster: "{{ cluster }}"
    holder: "{{ lookup('env', 'USER') }}@{{ ansible_host | default('localhost') }} my_playbook.yml"
  register: lease

- name: Renew it before a long stretch of work
  kubecluster.aws.cluster_lease:
    cluster: "{{ cluster }}"
    token: "{{ lease.token }}"
    holder: "{{ lease.holder }}"

- name: Release it at the end
  kubecluster.aws.cluster_lease:
    cluster: "{{ cluster }}"
    token: "{{ lease.token }}"
    state: absent

- name: Break the lease of a run known to be dead
  kubecluster.aws.cluster_lease:
    cluster: "{{ cluster }}"
    holder: alice fixing a stuck cluster
    force: true
"""

RETURN = r"""
outcome:
  description:
    - What the call did, V(acquired), V(renewed), V(taken_over), V(released), V(gone) (nothing to release) or
      V(not_ours) (another run holds the lease now).
    - In check mode V(would_acquire), V(would_renew), V(would_take_over), V(would_release) or V(held) (another run
      holds it).
  returned: always
  type: str
  sample: acquired
lease:
  description: The SSM parameter of the lease.
  returned: always
  type: str
  sample: /kubecluster.aws/clusters/capi-example/lease
token:
  description:
    - The token of the lease this run holds; pass it to renew and release. Null in check mode before a lease was
      taken, and after a release.
  returned: always
  type: str
  sample: 0f8c6c3e-2b7a-4f53-9a57-5f0e2f2f9d71
holder:
  description: Who holds the lease (this run, or, with V(held) or V(not_ours), the other run).
  returned: when a lease exists or was taken
  type: str
  sample: root@ctl01 create_cluster.yml pid 4242
since:
  description: When the holder took the lease, UTC ISO 8601.
  returned: when a lease exists or was taken
  type: str
  sample: "2025-01-31T08:00:00Z"
expires:
  description: When the lease expires unless renewed, UTC ISO 8601.
  returned: when a lease exists or was taken
  type: str
  sample: "2025-01-31T08:30:00Z"
previous_holder:
  description: The holder of the lease this call took over or broke, and since when.
  returned: when RV(outcome) is V(taken_over) or V(would_take_over)
  type: str
  sample: AWX job 17 since 2025-01-31T07:10:00Z
"""

from typing import Any, Dict, Tuple

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from ansible_collections.kubecluster.aws.plugins.module_utils import lease as lease_utils
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError


def check_options(module: Any) -> None:
    params = module.params
    if not lease_utils.MIN_TTL <= params["ttl"] <= lease_utils.MAX_TTL:
        module.fail_json(msg="ttl: must be from %d to %d seconds, not %d"
                         % (lease_utils.MIN_TTL, lease_utils.MAX_TTL, params["ttl"]))
    if params["state"] == "absent" and not params["token"]:
        module.fail_json(msg="token: state absent releases the lease this run took; pass the token its acquire returned")


def present(module: Any, lease: lease_utils.Lease) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    params = module.params
    return lease_utils.take(module, lease, params["token"], params["holder"], params["ttl"], params["force"])


def absent(module: Any, lease: lease_utils.Lease) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    return lease_utils.give_back(module, lease, module.params["token"])


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        token=dict(type="str", no_log=False),
        holder=dict(type="str", default="unknown"),
        ttl=dict(type="int", default=lease_utils.DEFAULT_TTL),
        force=dict(type="bool", default=False),
        validate_spec=dict(type="bool", default=False),
    )
    module = runner.cluster_module(argument_spec)
    identity = runner.load_spec(module) if module.params["validate_spec"] else runner.load_identity(module)
    check_options(module)
    ctx = Context.from_module(module, identity["region"])
    lease = lease_utils.Lease(ctx.ssm, identity["name"], identity["region"])
    try:
        if module.params["state"] == "absent":
            out, diff = absent(module, lease)
        else:
            out, diff = present(module, lease)
    except lease_utils.LeaseHeld as held:
        # Held is an answer, not a fault: the holder and its times are return values a playbook reads.
        module.fail_json(msg=str(held), outcome="held", lease=lease.name, **lease_utils.visible(held.lease))
    except KubeclusterError as error:
        runner.fail(module, error)
    except AnsibleAWSError as error:
        runner.fail_aws(module, error)
    out["lease"] = lease.name
    if module._diff:
        out["diff"] = diff
    module.exit_json(**out)


if __name__ == "__main__":
    main()
