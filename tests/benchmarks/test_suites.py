"""benchmarks.suites: looking suites up, and every suite being runnable as configured."""

from __future__ import annotations

import pytest

from benchmarks.ablations import GROUPS
from benchmarks.context import suite_config
from benchmarks.suites import FULL_EFFECT, SUITES, Suite, get_suite
from simgan_toolkit.config import build_config
from simgan_toolkit.errors import ConfigError, SimganError


def test_get_suite_known():
    assert get_suite("tiny") is SUITES["tiny"]
    assert {"tiny", "quick", "long", "full"} <= set(SUITES)


@pytest.mark.parametrize("name", ["nope", "", "Tiny"])
def test_get_suite_unknown_is_a_config_error_listing_the_suites(name):
    with pytest.raises(ConfigError) as info:
        get_suite(name)
    message = str(info.value)
    assert repr(name) in message
    for known in SUITES:
        assert known in message
    assert isinstance(info.value, SimganError) and info.value.exit_code == 2


@pytest.mark.parametrize("suite", list(SUITES.values()), ids=list(SUITES))
@pytest.mark.parametrize("task_name", ["gaze", "hand_depth"])
def test_every_suite_builds_a_valid_config_for_each_task(registry, suite, task_name):
    """Rot guard: a renamed config field or a dropped profile would break a suite only at run time."""
    task = registry.create("task", task_name)
    config = suite_config(task_name, task, suite)
    assert config.profile == suite.profile_for(task)
    for profile in suite.speed_profiles:
        build_config(task_name, profile, task.profiles())
    assert set(suite.ablations) <= set(GROUPS)
    assert suite.seeds >= 1 and suite.simgan_seeds >= 1 and suite.noise_sigmas
    assert set(suite.overrides) <= set(registry.names("task"))


def test_suite_overrides_are_applied(registry):
    task = registry.create("task", "gaze")
    config = suite_config("gaze", task, SUITES["quick"], ["estimator.steps=7"])
    assert config.data.n_synthetic == 4000 and config.train.steps == 400 and config.estimator.batch_size == 24
    assert config.estimator.steps == 7  # extra overrides come last


@pytest.mark.parametrize(("task_name", "profile"), [("hand_depth", "long"), ("hand_depth_tof", "long"), ("gaze", "default")])
def test_full_effect_suite_starts_each_task_from_its_full_effect_profile(registry, task_name, profile):
    """hand_depth names `long` (its estimator sees 5 px there); gaze names none, so `default`."""
    task = registry.create("task", task_name)
    assert SUITES["long"].profile == FULL_EFFECT
    assert SUITES["long"].profile_for(task) == profile
    assert suite_config(task_name, task, SUITES["long"]).profile == profile


def test_a_named_profile_is_used_as_it_is(registry):
    task = registry.create("task", "hand_depth")
    assert Suite(name="x", profile="default").profile_for(task) == "default"


def test_long_suite_runs_the_sim_to_real_rows_only():
    long = SUITES["long"]
    assert long.ablations == () and long.multipliers == () and long.speed_profiles == ()


@pytest.mark.parametrize("name", ["quick", "long", "full"])
def test_quick_and_full_train_one_refiner_per_estimator_seed(name):
    """So the refined rows' spread includes the refiner's (estimator seed k uses refiner k)."""
    assert SUITES[name].simgan_seeds == SUITES[name].seeds == 3


def test_every_suite_takes_the_median_of_several_turing_classifiers():
    assert all(s.turing_classifiers >= 3 and s.turing_classifiers % 2 == 1 for s in SUITES.values())
