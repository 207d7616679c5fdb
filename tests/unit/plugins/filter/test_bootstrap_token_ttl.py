"""The workers' bootstrap token outlasts every round of joins Ansible makes with its forks."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubecluster.aws.plugins.filter.bootstrap_token_ttl import FilterModule
from ansible_collections.kubecluster.aws.plugins.filter.bootstrap_token_ttl import bootstrap_token_ttl


@pytest.mark.parametrize("joining, forks, per_round, minimum, expected", [
    (0, 5, "10m", "15m", "15m"),      # nobody joins: the minimum
    (1, 5, "10m", "15m", "15m"),      # one round, shorter than the minimum
    (5, 5, "10m", "15m", "15m"),
    (6, 5, "10m", "15m", "20m"),      # two rounds
    (2, 1, "10m", "15m", "20m"),      # forks=1: one worker per round
    (12, 5, "10m", "15m", "30m"),
    (50, 5, "10m", "15m", "1h40m"),
    (3, 1, "1h", "15m", "3h"),
    (3, 2, 90, "1m", "3m"),           # seconds as numbers
    (1, 1, "90s", "1m", "1m30s"),
    (4, 0, "10m", "15m", "40m"),      # no forks reads as one at a time
    ("3", "2", "10m", "15m", "20m"),  # numbers as Jinja may hand them over
])
def test_rounds_times_the_allowance_with_a_floor(joining, forks, per_round, minimum, expected):
    assert bootstrap_token_ttl(joining, forks, per_round, minimum) == expected


def test_defaults_are_cluster_apis_fifteen_minutes_and_ten_per_round():
    assert bootstrap_token_ttl(1, 5) == "15m"
    assert bootstrap_token_ttl(11, 5) == "30m"


@pytest.mark.parametrize("args, message", [
    ((-1, 5), "the number of joining machines must be a whole number"),
    ((True, 5), "the number of joining machines must be a whole number"),
    ((1, "many"), "forks must be a whole number"),
    ((1, 5, "ten minutes"), "per_round 'ten minutes' is not a duration"),
    ((1, 5, "10m", ""), "minimum '' is not a duration"),
])
def test_bad_input_is_refused_naming_it(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        bootstrap_token_ttl(*args)


def test_the_filter_is_registered():
    assert FilterModule().filters()["bootstrap_token_ttl"] is bootstrap_token_ttl
