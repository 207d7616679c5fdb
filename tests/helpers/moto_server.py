"""A moto server on a free loopback port, for tests and tools that run real AWS clients out of process.

In-process ``moto.mock_aws`` cannot see what ``ansible-playbook`` does in its own processes;
a ``moto_server`` can, and its recorder tells which API calls reached it. Usage::

    with MotoServer() as moto:
        subprocess.run(["ansible-playbook", ...], env=moto.env(), check=True)
        moto.start_recording()
        ...                              # rerun
        assert moto.recorded_writes() == []

or as a pytest fixture: ``with MotoServer() as server: yield server``.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import boto3

from helpers.aws import REGION, is_read_action

# run_moto_server.py applies tests/helpers/moto_timing with this factor (helpers.moto_timing.ENV_VARIABLE; not
# imported here so that clients of MotoServer do not import moto's models).
TIMING_VARIABLE = "KUBECLUSTER_MOTO_TIMING"

# moto_server answers as this account (moto's default).
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = REGION

# Classic ELB and ELBv2 sign with the same service name; their API versions tell them apart.
ELB_VERSIONS = {"2012-06-01": "elb", "2015-12-01": "elbv2"}
SIGNING_NAME_TO_CLIENT = {"servicequotas": "service-quotas", "monitoring": "cloudwatch", "email": "ses"}

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Variables that could point a client at a real account or another endpoint.
REAL_ACCOUNT_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN", "AWS_REGION", "AWS_URL", "EC2_URL",
                          "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


class MotoServerError(RuntimeError):
    pass


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_server_command():
    """moto_server from the running interpreter's environment (the venv), with the test-only
    fixes of moto_fixes applied, whatever PATH says."""
    return [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_moto_server.py")]


class MotoRecorder:
    """moto's request recorder, for a server at ``self.url`` that records to ``self.recording_path``
    (MOTO_RECORDER_FILEPATH): MotoServer's and the local AWS's (tests/localaws)."""

    def start_recording(self):
        """Record every request from now on, starting from an empty recording."""
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self):
        self._post("/moto-api/recorder/stop-recording")

    def recorded_calls(self):
        """The AWS API calls recorded so far, in order: [{service, action, is_write}]."""
        return read_recording(self.recording_path)

    def recorded_writes(self):
        return [call for call in self.recorded_calls() if call["is_write"]]

    def _post(self, path):
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()


class MotoServer(MotoRecorder):
    """A ``moto_server`` process on 127.0.0.1 with its request recorder writing to a temp file."""

    def __init__(self, region=DEFAULT_REGION, start_timeout=60, timing=None):
        """``timing``: a factor > 0 runs the server in the state-transition mode of tests/helpers/moto_timing
        (AWS's durations times the factor), 0 = moto finishing everything at once, None = as the environment's
        KUBECLUSTER_MOTO_TIMING says (unset: at once)."""
        self.region = region
        self.timing = timing
        self.start_timeout = start_timeout
        self.port = None
        self.process = None
        self._workdir = None
        self._log = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def recording_path(self):
        return os.path.join(self._workdir, "recording.jsonl")

    @property
    def log_path(self):
        return os.path.join(self._workdir, "moto_server.log")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        if self.process is not None:
            raise MotoServerError("moto_server already running at %s" % self.url)
        self._workdir = tempfile.mkdtemp(prefix="moto-server-")
        # Another process can take the port between free_port() and the bind: try a few.
        for attempt in range(3):
            self.port = free_port()
            self._spawn()
            try:
                self._wait_until_up()
                return self
            except MotoServerError:
                self._terminate()
                if attempt == 2:
                    raise
        return self

    def stop(self):
        self._terminate()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def client(self, service):
        """A boto3 client of this server, with the fake credentials."""
        return boto3.client(service, region_name=self.region, endpoint_url=self.url, aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def env(self, base=None):
        """Environment for a client of this server: ``base`` (default os.environ) with fake
        credentials, the endpoint and the default region, and nothing that names a real account."""
        env = dict(os.environ if base is None else base)
        for name in REAL_ACCOUNT_VARIABLES:
            env.pop(name, None)
        env.update(FAKE_CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = self.url
        env["AWS_DEFAULT_REGION"] = self.region
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        return env

    def reset(self):
        """Forget every resource (and recorded request) the server holds."""
        self._post("/moto-api/reset")

    def _spawn(self):
        env = dict(os.environ, MOTO_RECORDER_FILEPATH=self.recording_path, MOTO_PORT=str(self.port))
        env.pop("MOTO_ENABLE_RECORDING", None)
        if self.timing is not None:  # None: whatever KUBECLUSTER_MOTO_TIMING says in this process's environment
            env[TIMING_VARIABLE] = repr(float(self.timing))
        self._log = open(self.log_path, "ab")  # pylint: disable=consider-using-with  # closed in _terminate
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with  # lives until stop()
            moto_server_command() + ["-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def _wait_until_up(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MotoServerError("moto_server exited with %s:\n%s" % (self.process.returncode, self._log_tail()))
            try:
                with urllib.request.urlopen(self.url + "/moto-api/data.json", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                time.sleep(0.1)
        raise MotoServerError("moto_server did not answer on %s within %ss:\n%s" % (self.url, self.start_timeout, self._log_tail()))

    def _terminate(self):
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _log_tail(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()[-4000:]
        except OSError:
            return ""


def read_recording(path):
    """The AWS API calls in a recorder file (MOTO_RECORDER_FILEPATH), in order: [{service, action, is_write}]."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as recording:
        entries = [json.loads(line) for line in recording if line.strip()]
    return [call for call in (parse_recorded_request(entry) for entry in entries) if call is not None]


def parse_recorded_request(entry):
    """One recorder line -> {service, action, is_write}; None for moto's own /moto-api calls."""
    url = urlsplit(entry.get("url", ""))
    if url.path.startswith("/moto-api"):
        return None
    headers = {key.lower(): value for key, value in (entry.get("headers") or {}).items()}
    body = _body_bytes(entry)
    params = _query_params(url.query, body, headers)
    action = _action(url.path, params, headers, entry.get("method", "GET"))
    service = _service(headers, params)
    return {"service": service, "action": action, "is_write": is_write(action, params, entry.get("method", "GET"))}


def is_write(action, params=None, method="POST"):
    """Whether an API call may change something (a DryRun call never does): helpers.aws's classification,
    for a call as the server recorded it (form parameters as strings, REST calls by HTTP method)."""
    if (params or {}).get("DryRun", "").lower() == "true":
        return False
    if " " in action:  # a REST call with no action name: its HTTP method tells
        return method.upper() not in ("GET", "HEAD")
    return not is_read_action(action)


def _body_bytes(entry):
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def _query_params(query, body, headers):
    """Form parameters of a query-protocol call (EC2, ELB, ELBv2, IAM, CloudFormation, STS)."""
    params = {key: values[0] for key, values in parse_qs(query).items()}
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        params.update({key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()})
    return params


def _action(path, params, headers, method):
    if "Action" in params:
        return params["Action"]
    target = headers.get("x-amz-target")
    if target:  # JSON protocol: "<ServicePrefix>.<Action>"
        return target.rsplit(".", 1)[-1]
    if "/operation/" in path:  # Smithy RPC v2 CBOR: /service/<Service>/operation/<Action>
        return path.rsplit("/operation/", 1)[-1]
    return "%s %s" % (method.upper(), path)


def _service(headers, params):
    """The client name (boto3's) from the SigV4 credential scope: <key>/<date>/<region>/<service>/aws4_request."""
    authorization = headers.get("authorization", "")
    if "Credential=" not in authorization:
        return "unknown"
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    signing_name = scope[3] if len(scope) > 3 else "unknown"
    if signing_name == "elasticloadbalancing":
        return ELB_VERSIONS.get(params.get("Version"), "elb")
    return SIGNING_NAME_TO_CLIENT.get(signing_name, signing_name)
