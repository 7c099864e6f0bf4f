"""estimator.seeds: its default, its bound, and resuming a run saved before it existed."""

from __future__ import annotations

import pytest

from simgan_toolkit.config import RunConfig, build_config, resume_comparable
from simgan_toolkit.errors import ConfigError

#: Core has no default estimator: every test config names one (a made-up name; nothing is built).
ESTIMATOR = {"name": "est"}
#: Nor default discriminator layers: every test config states some (nothing is built).
STATED = {"estimator": ESTIMATOR, "discriminator": {"layers": ["conv3s2-8", "conv1-2"]}}
NAMED = {"default": STATED}


def test_two_estimator_seeds_by_default():
    assert RunConfig(task="t", **STATED).estimator.seeds == 2
    assert build_config("t", "default", NAMED, overrides=["estimator.seeds=1"]).estimator.seeds == 1


@pytest.mark.parametrize("value", ["0", "-1"])
def test_estimator_seeds_must_be_at_least_one(value):
    with pytest.raises(ConfigError, match=r"estimator\.seeds"):
        build_config("t", "default", NAMED, overrides=[f"estimator.seeds={value}"])


def test_a_config_saved_without_estimator_seeds_resumes_as_the_default():
    """A run folder written before estimator.seeds existed compares equal to today's default."""
    current = RunConfig(task="t", **STATED).model_dump(mode="json")
    saved = {**current, "estimator": {k: v for k, v in current["estimator"].items() if k != "seeds"}}
    assert resume_comparable(saved) == resume_comparable(current)
    other = {**current, "estimator": {**current["estimator"], "seeds": 3}}
    assert resume_comparable(other) != resume_comparable(current)
