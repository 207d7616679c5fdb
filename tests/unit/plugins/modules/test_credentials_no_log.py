"""Every module marks the connection credentials no_log, so they never reach output or the log.

The argument spec each module actually builds is read by stopping AnsibleModule in its
constructor, so a new module that builds its spec without runner.connection_argument_spec()
fails here without anyone listing it.
"""

import importlib
import os

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kubecluster.aws.plugins.module_utils import runner

MODULES_DIR = os.path.join(os.path.dirname(os.path.abspath(runner.__file__)), os.pardir, "modules")
MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py") and not name.startswith("_"))
CREDENTIALS = ("access_key", "secret_key", "session_token")
# Names (options or aliases) that hold a credential, in amazon.aws and boto3 spelling.
CREDENTIAL_NAMES = frozenset(CREDENTIALS + (
    "aws_access_key_id", "aws_access_key", "aws_secret_access_key", "aws_secret_key", "aws_session_token",
    "security_token", "aws_security_token"))


class SpecRead(Exception):
    pass


def argument_spec_of(monkeypatch, name):
    """The argument spec module ``name`` hands AnsibleModule, read before any argument is parsed."""
    def stop(self, argument_spec=None, **kwargs):
        raise SpecRead(argument_spec)

    monkeypatch.setattr(basic.AnsibleModule, "__init__", stop)
    module = importlib.import_module("ansible_collections.kubecluster.aws.plugins.modules." + name)
    with pytest.raises(SpecRead) as read:
        module.main()
    return read.value.args[0]


def test_every_module_is_checked():
    assert {"cluster_spec", "iam_stack", "cluster_network", "apiserver_lb", "machine_set", "cluster_info"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_marks_credentials_no_log(monkeypatch, name):
    spec = argument_spec_of(monkeypatch, name)
    for option in CREDENTIALS:
        assert spec.get(option, {}).get("no_log") is True, "%s: %s is not no_log" % (name, option)
    for option, settings in spec.items():
        if CREDENTIAL_NAMES & set([option] + list(settings.get("aliases", []))):
            assert settings.get("no_log") is True, "%s: %s holds a credential but is not no_log" % (name, option)


@pytest.mark.parametrize("name", MODULES)
def test_module_keeps_connection_options(monkeypatch, name):
    """The helper changes no_log, and region's environment fallback (read only when neither the spec nor the option
    names a region: runner.connection_region): every other amazon.aws connection option is as amazon.aws has it,
    in every module (module_defaults for the action group gives them all, region included)."""
    spec = argument_spec_of(monkeypatch, name)
    connection = runner.connection_argument_spec()
    for option, settings in connection.items():
        assert spec[option] == settings, name
    assert "fallback" not in spec["region"] and spec["region"]["aliases"] == ["aws_region"], name


def test_connection_argument_spec_masks_every_alias():
    """Whichever alias a credential is given by, and from the environment too, its value is a no_log value."""
    spec = runner.connection_argument_spec()
    for option in CREDENTIALS:
        for given in [option] + spec[option]["aliases"]:
            result = ArgumentSpecValidator(spec).validate({given: "canary-" + given})
            assert result.error_messages == [], given
            assert "canary-" + given in result._no_log_values, given


def test_connection_argument_spec_masks_environment(monkeypatch):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(variable, "canary-" + variable)
    result = ArgumentSpecValidator(runner.connection_argument_spec()).validate({})
    assert {"canary-AWS_ACCESS_KEY_ID", "canary-AWS_SECRET_ACCESS_KEY", "canary-AWS_SESSION_TOKEN"} <= result._no_log_values


def test_connection_argument_spec_leaves_amazon_aws_alone():
    """amazon.aws's own spec is not changed for other collections' modules in the same process."""
    runner.connection_argument_spec()
    from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
    assert aws_argument_spec()["access_key"]["no_log"] is False
