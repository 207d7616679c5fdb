"""Connection credentials never reach output or disk, at any verbosity (issue 12, point 4).

Every playbook runs at -vvvv with canary credentials, given the two ways AWX gives them: in the
environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and as module options
through ``module_defaults`` for ``group/kubecluster.aws.cluster``; the machines inventory plugin
gets them as its own options. No canary may appear in stdout, stderr, the log file, the
controller's local and remote temp directories, the fact cache or the inventory cache.
"""

import json
import os
import secrets
import subprocess

import pytest
import yaml

from helpers.aws import CLUSTER as NAME, REGION
from helpers.e2e import ANSIBLE_INVENTORY, ansible_env, example_spec

pytestmark = pytest.mark.e2e

MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
                        "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
NO_CREDENTIALS_IN_ENV = dict((name, None) for name in CREDENTIAL_VARIABLES)

# The AWX way with a custom credential type: the credentials arrive as variables, and play-level
# module_defaults hand them to every module of the collection's action group.
MODULE_DEFAULTS_PLAYBOOK = """
- name: Run the collection's modules with credentials given as module options
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - credentials.yml
  module_defaults:
    group/kubecluster.aws.cluster:
      access_key: "{{ canary_access_key }}"
      secret_key: "{{ canary_secret_key }}"
      session_token: "{{ canary_session_token }}"
  tasks:
    - name: Validate the spec and check the account
      kubecluster.aws.cluster_spec:
        cluster: "{{ cluster }}"
      register: kubecluster_spec

    - name: Read the IAM stack
      kubecluster.aws.iam_stack:
        region: "{{ kubecluster_spec.cluster.region }}"
      register: kubecluster_iam

    - name: Reconcile the network
      kubecluster.aws.cluster_network:
        cluster: "{{ kubecluster_spec.cluster }}"
      register: kubecluster_network

    - name: Reconcile the control plane machines
      kubecluster.aws.machine_set:
        cluster: "{{ kubecluster_spec.cluster }}"
        set: control-plane
      register: kubecluster_machines

    - name: Reconcile the API server load balancer
      kubecluster.aws.apiserver_lb:
        cluster: "{{ kubecluster_spec.cluster }}"
      register: kubecluster_lb

    - name: Read the cluster
      kubecluster.aws.cluster_info:
        name: "{{ kubecluster_spec.cluster.name }}"
        region: "{{ kubecluster_spec.cluster.region }}"
      register: kubecluster_status

    - name: Keep the registered results as cached facts, as a later play might
      ansible.builtin.set_fact:
        kubecluster_results: "{{ kubecluster_results_all }}"
        cacheable: true
      vars: &kubecluster_results
        kubecluster_results_all:
          - "{{ kubecluster_spec }}"
          - "{{ kubecluster_iam }}"
          - "{{ kubecluster_network }}"
          - "{{ kubecluster_machines }}"
          - "{{ kubecluster_lb }}"
          - "{{ kubecluster_status }}"

    - name: Hand the registered results to later workflow nodes
      ansible.builtin.set_stats:
        data:
          kubecluster_results: "{{ kubecluster_results_all }}"
      vars: *kubecluster_results

    - name: Show the registered results
      ansible.builtin.debug:
        var: kubecluster_results
"""


def canaries():
    """An access key id, a secret key and a session token found nowhere else (moto accepts any)."""
    return {
        "access_key": "AKIACANARY" + secrets.token_hex(5).upper(),
        "secret_key": "canarysecret" + secrets.token_hex(14),
        "session_token": "canarytoken" + secrets.token_hex(24),
    }


class Sinks(object):
    """Where Ansible writes on the controller, each pointed into the test's directory."""

    def __init__(self, root):
        self.log = root / "ansible.log"
        self.dirs = dict((name, root / name) for name in ("local_tmp", "remote_tmp", "fact_cache", "inventory_cache"))
        for path in self.dirs.values():
            path.mkdir()
        self.outputs = []  # (what, text)

    def env(self, **changes):
        env = dict(ANSIBLE_LOG_PATH=str(self.log), ANSIBLE_LOCAL_TEMP=str(self.dirs["local_tmp"]),
                   ANSIBLE_REMOTE_TMP=str(self.dirs["remote_tmp"]), ANSIBLE_CACHE_PLUGIN="jsonfile",
                   ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.dirs["fact_cache"]), ANSIBLE_SHOW_CUSTOM_STATS="true")
        env.update(changes)
        return env

    def record(self, what, run):
        self.outputs.append(("%s stdout" % what, run.stdout))
        self.outputs.append(("%s stderr" % what, run.stderr))

    def files(self):
        """(path, bytes) of the log file and of every file under the directories."""
        found = [(str(self.log), self.log.read_bytes())] if self.log.exists() else []
        for path in self.dirs.values():
            found += [(str(full), full.read_bytes()) for full in sorted(path.rglob("*")) if full.is_file()]
        return found

    def leaks(self, values):
        """Where each canary was found, with a little context."""
        found = []
        for what, text in self.outputs:
            for key, value in values.items():
                if value in text:
                    at = text.index(value)
                    found.append("%s in %s: ...%s..." % (key, what, text[max(0, at - 120):at + len(value) + 20]))
        for path, data in self.files():
            for key, value in values.items():
                if value.encode() in data or value in path:
                    found.append("%s in %s" % (key, path))
        return found


def module_args(report):
    """Every invocation.module_args in a JSON callback report (loop items included)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("invocation"), dict) and "module_args" in node["invocation"]:
                found.append(node["invocation"]["module_args"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report.get("plays", []))
    return found


def assert_access_key_masked(run, what):
    """The run's module results show access_key, and only masked: the no_log path was exercised."""
    shown = [args for args in module_args(run.report) if "access_key" in args]
    assert shown, "%s: no module result shows access_key; run at -vvvv with credentials?" % what
    assert [args["access_key"] for args in shown] == [MASKED] * len(shown), what


def list_inventory(moto_server, workdir, sinks, values):
    """ansible-inventory -vvvv --list of a machines source given the credentials as plugin options."""
    source = workdir / "canary.machines.yml"
    source.write_text(yaml.safe_dump({
        "plugin": "kubecluster.aws.machines",
        "regions": [REGION],
        "clusters": [NAME],
        "endpoint_url": moto_server.url,
        "access_key": values["access_key"],
        "secret_key": values["secret_key"],
        "session_token": values["session_token"],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(sinks.dirs["inventory_cache"]),
        "cache_timeout": 300,
    }))
    env = ansible_env(moto_server, dict(NO_CREDENTIALS_IN_ENV, **sinks.env()))
    return subprocess.run([ANSIBLE_INVENTORY, "-vvvv", "-i", str(source), "--list"], cwd=str(workdir), env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_credentials_never_reach_output_or_disk(account, run_playbook, moto_server, tmp_path):
    image_id = account.prepare(iam=False)
    spec = example_spec(image_id)
    values = canaries()
    sinks = Sinks(tmp_path)
    # The AWX "Amazon Web Services" credential: the environment.
    in_env = sinks.env(AWS_ACCESS_KEY_ID=values["access_key"], AWS_SECRET_ACCESS_KEY=values["secret_key"],
                       AWS_SESSION_TOKEN=values["session_token"])

    for playbook, kwargs in (("bootstrap_iam", {}),
                             ("create_cluster", dict(tags=["infra"])),
                             ("cluster_status", {})):
        run = run_playbook(playbook, spec, verbosity=4, env=in_env, **kwargs)
        sinks.record(playbook, run)
        assert run.rc == 0, run.explain()
        assert_access_key_masked(run, playbook)

    listed = list_inventory(moto_server, tmp_path, sinks, values)
    sinks.outputs += [("ansible-inventory stdout", listed.stdout), ("ansible-inventory stderr", listed.stderr)]
    assert listed.returncode == 0, listed.stderr[-3000:]
    inventory = json.loads(listed.stdout[listed.stdout.index("{"):])
    assert inventory["kube_control_plane"]["hosts"], "the inventory listed no machine"
    assert os.listdir(str(sinks.dirs["inventory_cache"])), "the inventory cache was not written"

    (tmp_path / "credentials.yml").write_text(yaml.safe_dump(dict(("canary_" + key, value) for key, value in values.items())))
    wrapper = tmp_path / "module_defaults.yml"
    wrapper.write_text(MODULE_DEFAULTS_PLAYBOOK)
    as_options = run_playbook(str(wrapper), spec, verbosity=4, env=sinks.env(**NO_CREDENTIALS_IN_ENV))
    sinks.record("module_defaults", as_options)
    assert as_options.rc == 0, as_options.explain()
    assert_access_key_masked(as_options, "module_defaults")
    assert as_options.report["global_custom_stats"]["kubecluster_results"], "set_stats was not exercised"
    assert os.listdir(str(sinks.dirs["fact_cache"])), "the fact cache was not written"

    deleted = run_playbook("delete_cluster", spec, extra_vars={"confirm_delete": True}, verbosity=4, env=in_env)
    sinks.record("delete_cluster", deleted)
    assert deleted.rc == 0, deleted.explain()
    assert_access_key_masked(deleted, "delete_cluster")

    assert sinks.log.exists() and sinks.log.stat().st_size > 0, "nothing was logged to ANSIBLE_LOG_PATH"
    assert sinks.leaks(values) == []
