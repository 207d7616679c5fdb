"""examples/execution-environment: what `ansible-builder create` makes of it for AWX.

An image build needs a registry and a network this machine does not have; `ansible-builder create`
writes the build context an image build would run, so what the image will hold is checked there:
the collections from requirements.yml, the system packages (the ssh client the node plays use),
helm for the Cilium add-on (fetched and checked against its published checksum), and the Python
packages ansible-builder finds in this collection's meta/execution-environment.yml.
"""

import os
import re
import subprocess
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EE_DIR = os.path.join(REPO, "examples", "execution-environment")
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


def create(context):
    completed = subprocess.run([BUILDER, "create", "-f", os.path.join(EE_DIR, "execution-environment.yml"), "-c", str(context),
                                "--output-filename", "Containerfile"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    with open(os.path.join(context, "Containerfile"), encoding="utf-8") as handle:
        return handle.read()


def test_ansible_builder_create_writes_a_context_with_the_collection_ssh_and_helm(tmp_path):
    containerfile = create(tmp_path)

    with open(os.path.join(tmp_path, "_build", "requirements.yml"), encoding="utf-8") as handle:
        collections = [entry["name"] for entry in yaml.safe_load(handle)["collections"]]
    assert collections == ["kubecluster.aws"]
    with open(os.path.join(tmp_path, "_build", "bindep.txt"), encoding="utf-8") as handle:
        bindep = handle.read()
    assert re.search(r"^openssh-clients \[platform:rpm\]$", bindep, re.M)

    assert re.search(r"^RUN .*ansible-galaxy collection install .*-r requirements\.yml", containerfile, re.M), containerfile
    final_stage = containerfile[containerfile.index("FROM base AS final"):]
    helm = [line for line in final_stage.splitlines() if "helm-${HELM_VERSION}-linux-${arch}.tar.gz" in line]
    assert len(helm) == 1, final_stage
    # fetched with its checksum file and checked before it is installed, into the PATH of the image's user
    step = helm[0]
    assert step.index('sha256sum -c "${file}.sha256sum"') < step.index("install -m 0755")
    assert "/usr/local/bin/helm" in step and step.startswith("RUN set -eu;")
    assert re.search(r"^ARG HELM_VERSION=v3\.\d+\.\d+$", final_stage, re.M)
    # installed as root, before the image drops to its runtime user
    assert final_stage.index(step) < final_stage.index("USER 1000")


def test_ansible_builder_finds_the_collections_python_packages():
    """What the image build's introspection step reads from the installed collections."""
    collections = os.path.join(REPO, ".ansible", "collections")
    completed = subprocess.run([BUILDER, "introspect", "--sanitize", collections], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    found = yaml.safe_load(completed.stdout.split("\n", 1)[1])
    packages = {re.split(r"[<>=\s]", line, maxsplit=1)[0] for line in found["python"] if "kubecluster.aws" in line}
    assert packages == {"boto3", "botocore", "kubernetes", "jmespath"}
