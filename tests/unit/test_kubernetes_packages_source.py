"""The apt source kubernetes_packages writes, rendered by Ansible from the role's own vars and template.

pkgs.k8s.io (the default) and a mirror share every task of roles/kubernetes_packages/tasks/apt.yml;
only the URL differs. tests/nodes/test_package_sources.py installs from a mirror on a host with
real apt; this renders the source for the default and a mirror for several versions on localhost,
with ansible-playbook and the collection's kubernetes_version filter, as the role would.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "kubernetes_packages")

CASES = [
    # name, source, version, repository_url, URIs, Signed-By
    ("default-1.31", "pkgs.k8s.io", "v1.31.4", None,
     "https://pkgs.k8s.io/core:/stable:/v1.31/deb/", "/etc/apt/keyrings/kubernetes-v1.31-apt-keyring.asc"),
    ("default-1.33", "pkgs.k8s.io", "v1.33.0", None,
     "https://pkgs.k8s.io/core:/stable:/v1.33/deb/", "/etc/apt/keyrings/kubernetes-v1.33-apt-keyring.asc"),
    ("default-1.35", "pkgs.k8s.io", "1.35.2", None,
     "https://pkgs.k8s.io/core:/stable:/v1.35/deb/", "/etc/apt/keyrings/kubernetes-v1.35-apt-keyring.asc"),
    ("mirror-slash", "mirror", "v1.32.1", "https://apt.example.internal/core:/stable:/v1.32/deb/",
     "https://apt.example.internal/core:/stable:/v1.32/deb/", "/etc/apt/keyrings/kubernetes-v1.32-apt-keyring.asc"),
    ("mirror-no-slash", "mirror", "v1.31.4", "http://198.18.2.1:8080/k8s/v1.31",
     "http://198.18.2.1:8080/k8s/v1.31/", "/etc/apt/keyrings/kubernetes-v1.31-apt-keyring.asc"),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("sources")
    playbook = out / "render.yml"
    cases = [{"name": name, "version": version, "source": source, "url": url} for name, source, version, url, unused_uri, unused_key in CASES]
    playbook.write_text(yaml.safe_dump([{
        "name": "Render the Kubernetes apt source as kubernetes_packages does",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "vars", "main.yml")],
        "tasks": [
            {"name": "Render the source and record the key and file the role uses",
             "ansible.builtin.template": {"src": os.path.join(ROLE, "templates", "kubernetes.sources.j2"),
                                          "dest": str(out) + "/{{ item.name }}.sources", "mode": "0644"},
             "vars": {"kubernetes_packages_version": "{{ item.version }}", "kubernetes_packages_source": "{{ item.source }}",
                      "kubernetes_packages_repository_url": "{{ item.url }}"},
             "loop": cases},
            {"name": "Write down the file the role writes the source to",
             "ansible.builtin.copy": {"content": "{{ kubernetes_packages_sources_file }}", "dest": str(out) + "/sources_file", "mode": "0644"}},
        ]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
               "-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-3000:]
    return out


def fields(text):
    parsed = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(":", 1)
            assert key not in parsed, "%s twice" % key
            parsed[key] = value.strip()
    return parsed


@pytest.mark.parametrize("name, uri, key", [(case[0], case[4], case[5]) for case in CASES], ids=[case[0] for case in CASES])
def test_the_source_names_the_minors_repository_and_its_key(rendered, name, uri, key):
    text = (rendered / (name + ".sources")).read_text()
    # a flat repository: suite "/", so no Components field (apt refuses one with an exact path)
    assert fields(text) == {"Types": "deb", "URIs": uri, "Suites": "/", "Signed-By": key}
    assert all(line.startswith("#") for line in text.splitlines() if "{{" in line or "Components" in line)


def test_the_source_file_is_the_one_deb822_repository_wrote(rendered):
    # machines set up by earlier releases (deb822_repository, name: kubernetes) keep a single source
    assert (rendered / "sources_file").read_text() == "/etc/apt/sources.list.d/kubernetes.sources"


def test_the_role_needs_no_python3_debian():
    with open(os.path.join(ROLE, "tasks", "apt.yml"), encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    modules = {key for task in tasks for key in task if key.startswith("ansible.")}
    assert "ansible.builtin.deb822_repository" not in modules and "ansible.builtin.apt_repository" not in modules
