# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # The cluster spec every kubecluster.aws module takes.
    DOCUMENTATION = r"""
options:
  cluster:
    description:
      - The cluster spec, the value of the C(cluster) key of a spec file such as
        C(examples/capi-example.yml), either as written or as returned by
        M(kubecluster.aws.cluster_spec).
      - A mapping, or its text in YAML or JSON (an AWX survey's textarea); the text of a whole spec file,
        C(cluster:) at its top, is taken too. A text that does not parse to a mapping fails naming C(cluster).
      - Fields the spec leaves unset take their defaults, or the Cluster API quick-start
        environment variables C(AWS_REGION), C(AWS_SSH_KEY_NAME), C(KUBERNETES_VERSION),
        C(AWS_CONTROL_PLANE_MACHINE_TYPE), C(AWS_NODE_MACHINE_TYPE),
        C(CONTROL_PLANE_MACHINE_COUNT) and C(WORKER_MACHINE_COUNT).
      - The whole spec is validated before any AWS call; an invalid one fails with one
        line per problem naming the field and the fix. The README lists every field with
        its default.
      - The spec's C(region) is the region every AWS call goes to. Without one, O(region) is used, then
        C(AWS_REGION), C(AWS_DEFAULT_REGION) and the profile's region, as the AWS SDKs look for one.
      - Deleting (C(state=absent) where a module has it) reads only C(name) and C(region), as what goes is found
        by the ownership tags, so a spec that no longer validates (an unknown key, an even replica count) can
        still be deleted.
    type: raw
    required: true
  region:
    description:
      - The AWS region, for a spec without C(cluster.region). Every module of the action group takes it, so that
        C(module_defaults) for C(group/kubecluster.aws.cluster) can give it to all of them.
      - When the spec has a region too, both must be the same; the module fails naming both otherwise.
      - Unlike other amazon.aws modules, C(AWS_REGION) and C(AWS_DEFAULT_REGION) are not read into this option;
        they are read only when neither the spec nor this option gives a region, so an exported region never
        contradicts a spec's.
    type: str
    aliases: [aws_region]
"""
