#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: cluster_kubeconfig
version_added: 1.0.0
short_description: Keep a cluster's admin kubeconfig in AWS, encrypted, and fetch it back, like clusterctl get kubeconfig
description:
  - An AWX job's files are gone when it ends; so would be the admin kubeconfig the control plane role fetched. With
    C(cluster.kubeconfig_secret) set to V(ssm) or V(secretsmanager) in the spec, O(state=present) stores it there,
    as Cluster API keeps the secret C(<cluster>-kubeconfig), and O(state=fetched) writes it back to a file.
  - V(ssm) is the SecureString parameter C(/kubecluster.aws/clusters/<cluster>/kubeconfig) (tier
    Intelligent-Tiering, as an admin kubeconfig is often over the Standard tier's 4 KB); V(secretsmanager) the secret
    C(kubecluster.aws/clusters/<cluster>/kubeconfig). Both are encrypted with the service's AWS managed key, or
    O(kms_key_id), and tagged as owned by the cluster. A parameter or secret of that name that is not tagged so is
    never overwritten, read or deleted.
  - O(state=present) writes only when the stored value (or the KMS key asked for) differs, so a rerun reports no
    change. It also removes the cluster's copy from the other service when the spec moved it. With
    C(kubeconfig_secret=none) it makes no AWS call; a copy stored before stays until the cluster is deleted (or
    O(state=absent)).
  - O(state=absent) deletes the cluster's copies in both services (a secret at once, without a recovery window, since a
    kubeconfig is of no use once its cluster is gone, and a secret waiting out its recovery window would keep a new
    cluster of the same name from storing its own). C(delete_cluster.yml) does this as part of the delete; only
    C(name) and C(region) of O(cluster) are read.
  - O(state=fetched) reads the cluster's copy (SSM first, then Secrets Manager) and writes it to O(dest), mode
    C(0600), in a directory made C(0700) if missing; a file with the same content is left as it is. Only C(name) and
    C(region) of O(cluster) are read.
  - The kubeconfig is never returned nor shown in a diff.
author:
  - kubecluster.aws developers (@kubecluster)
options:
  state:
    description:
      - V(present) stores the kubeconfig file O(src) where the spec says; V(absent) deletes the stored copies;
        V(fetched) writes the stored copy to O(dest).
    type: str
    choices: [present, absent, fetched]
    default: present
  src:
    description:
      - With O(state=present), the kubeconfig file on the controller to store. Default the spec's
        C(kubeconfig_path).
      - A missing file fails the module, except in check mode (a first create has no kubeconfig before its node plays).
    type: path
  dest:
    description:
      - With O(state=fetched), the file to write. Default C(~/.kube/<cluster>.kubeconfig).
    type: path
  kms_key_id:
    description:
      - The KMS key (id, ARN or alias) to encrypt the stored copy with, with O(state=present). Default the service's
        AWS managed key (C(aws/ssm), C(aws/secretsmanager)). A copy encrypted with another key is re-encrypted.
    type: str
attributes:
  check_mode:
    description: Reads and returns the plan (and, with O(state=fetched), whether the file would change); writes nothing.
    support: full
  diff_mode:
    description: The plan rendered, one line per parameter or secret, without the value.
    support: full
notes:
  - Needs, on C(arn:aws:ssm:*:*:parameter/kubecluster.aws/*), C(ssm:DescribeParameters), C(ssm:GetParameter),
    C(ssm:PutParameter), C(ssm:DeleteParameter), C(ssm:AddTagsToResource), C(ssm:ListTagsForResource); on
    C(arn:aws:secretsmanager:*:*:secret:kubecluster.aws/*), C(secretsmanager:DescribeSecret),
    C(secretsmanager:GetSecretValue), C(secretsmanager:CreateSecret), C(secretsmanager:PutSecretValue),
    C(secretsmanager:UpdateSecret), C(secretsmanager:RestoreSecret), C(secretsmanager:DeleteSecret),
    C(secretsmanager:TagResource); and C(kms:Encrypt) / C(kms:Decrypt) on a key of your own.
extends_documentation_fragment:
  - kubecluster.aws.cluster
  - amazon.aws.common.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Note: These examples do not set authentication details, see the AWS Guide for details.

- name: Keep the admin kubeconfig in SSM Parameter Store (cluster.kubeconfig_secret is ssm)
  kubecluster.aws.cluster_kubeconfig:
    cluster: "{{ cluster }}"
    src: ~/.kube/capi-example.kubeconfig

- name: Fetch it in a later job, like clusterctl get kubeconfig
  kubecluster.aws.cluster_kubeconfig:
    cluster:
      name: capi-example
      region: ap-northeast-2
    state: fetched
    dest: ~/.kube/capi-example.kubeconfig

- name: Delete the stored copies
  kubecluster.aws.cluster_kubeconfig:
    cluster: {name: capi-example, region: ap-northeast-2}
    state: absent
"""

RETURN = r"""
plan:
  description: The writes of O(state=present) or O(state=absent), in order (none when nothing changes).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "create", "resource": "ssm-parameter", "name": "/kubecluster.aws/clusters/capi-example/kubeconfig",
            "detail": "encrypted with the AWS managed key"}]
stored:
  description: Where the cluster's kubeconfig is kept (V(none) when the spec keeps it only on the controller).
  returned: when O(state=present) or O(state=fetched)
  type: dict
  contains:
    backend:
      description: V(ssm), V(secretsmanager) or V(none).
      type: str
      sample: ssm
    name:
      description: The parameter's or secret's name.
      type: str
      sample: /kubecluster.aws/clusters/capi-example/kubeconfig
dest:
  description: The file O(state=fetched) wrote, or would write.
  returned: when O(state=fetched)
  type: str
  sample: /home/alice/.kube/capi-example.kubeconfig
"""

import os
import tempfile
from typing import Any, Dict

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from ansible_collections.kubecluster.aws.plugins.module_utils import kubeconfig
from ansible_collections.kubecluster.aws.plugins.module_utils import runner
from ansible_collections.kubecluster.aws.plugins.module_utils.context import Context
from ansible_collections.kubecluster.aws.plugins.module_utils.errors import KubeclusterError
from ansible_collections.kubecluster.aws.plugins.module_utils.plan import Plan
from ansible_collections.kubecluster.aws.plugins.module_utils.spec import default_kubeconfig_path


def present(module: Any) -> None:
    spec = runner.load_spec(module)
    src = module.params["src"] or kubeconfig.controller_path(spec["kubeconfig_path"])
    stored = dict(backend=spec["kubeconfig_secret"], name=None)
    if spec["kubeconfig_secret"] != kubeconfig.NONE:
        stored["name"] = kubeconfig.stored_name(spec["kubeconfig_secret"], spec["name"])
    try:
        with open(src, encoding="utf-8") as handle:
            content = handle.read()
    except OSError as error:
        if spec["kubeconfig_secret"] == kubeconfig.NONE or module.check_mode:
            # Nothing to store, or a first create's check mode: the node plays make the file.
            module.exit_json(changed=False, plan=[], stored=stored, msg="no kubeconfig at %s yet" % src)
        module.fail_json(msg="src: cannot read the kubeconfig %s (%s); the node plays write it (cluster.kubeconfig_path)"
                         % (src, error.strerror), stored=stored)
    ctx = Context.from_module(module, spec["region"])

    def build() -> Plan:
        plan = kubeconfig.plan_present(ctx, spec, content, module.params["kms_key_id"])
        plan.returns["stored"] = stored
        return plan

    runner.reconcile(module, build)


def absent(module: Any) -> None:
    identity = runner.load_identity(module)
    ctx = Context.from_module(module, identity["region"])

    def build() -> Plan:
        plan, warnings = kubeconfig.plan_absent(ctx, identity["name"])
        for warning in warnings:
            module.warn(warning)
        return plan

    runner.reconcile(module, build)


def _same_file(path: str, content: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            same = handle.read() == content
        return same and (os.stat(path).st_mode & 0o777) == 0o600
    except OSError:
        return False


def _write(path: str, content: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".kubeconfig-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def fetched(module: Any) -> None:
    identity = runner.load_identity(module)
    dest = module.params["dest"] or kubeconfig.controller_path(default_kubeconfig_path(identity["name"]))
    ctx = Context.from_module(module, identity["region"])
    try:
        backend, name, content = kubeconfig.fetch(ctx, identity["name"])
    except KubeclusterError as error:
        runner.fail(module, error)
    except (AnsibleAWSError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        runner.fail_aws(module, error)
    changed = not _same_file(dest, content)
    existed = os.path.exists(dest)
    result: Dict[str, Any] = dict(changed=changed, plan=[], dest=dest, stored=dict(backend=backend, name=name))
    if changed and not module.check_mode:
        try:
            _write(dest, content)
        except OSError as error:
            module.fail_json(msg="dest: cannot write %s (%s)" % (dest, error.strerror), **result)
    if module._diff:
        before = ("another kubeconfig or mode" if existed else "absent") if changed else "same content, mode 0600"
        result["diff"] = dict(before_header=dest, after_header=dest, before="%s\n" % before,
                              after="kubeconfig of cluster %s from %s, mode 0600\n" % (identity["name"], name))
    module.exit_json(**result)


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent", "fetched"], default="present"),
        src=dict(type="path"),
        dest=dict(type="path"),
        kms_key_id=dict(type="str", no_log=False),
    )
    module = runner.cluster_module(argument_spec)
    {"present": present, "absent": absent, "fetched": fetched}[module.params["state"]](module)


if __name__ == "__main__":
    main()
