"""Fixtures for the end-to-end tests: a moto server, an account prepared like a real one, and
ansible-playbook runs of the collection's own playbooks against it."""

import pytest

from helpers.aws import REGION
from helpers.e2e import Account, playbook_runner
from helpers.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server():
    with MotoServer(region=REGION) as server:
        yield server


@pytest.fixture
def account(moto_server):
    moto_server.reset()
    return Account(moto_server)


@pytest.fixture
def run_playbook(moto_server, tmp_path):
    """Run one of the collection's playbooks, from the checkout, against the moto server."""
    return playbook_runner(moto_server, tmp_path)
