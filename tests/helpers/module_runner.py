"""Run a module's main() in process and hand back what it returned or why it failed."""

import importlib
import json
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super(ModuleExit, self).__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), failed=False)


def _fail_json(self, **kwargs):
    kwargs["failed"] = True
    raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), failed=True)


def run_module(name, args, check_mode=False, diff=False):
    """Run kubecluster.aws module ``name`` with ``args``; return (result, failed)."""
    module = importlib.import_module("ansible_collections.kubecluster.aws.plugins.modules." + name)
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(payload), \
            mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json):
        try:
            module.main()
        except ModuleExit as done:
            return done.result, done.failed
    raise AssertionError("module %s returned without exit_json or fail_json" % name)
