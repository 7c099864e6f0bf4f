"""Task composition: ``Task.derive`` / :class:`DerivedTask` hand every member to the base task
except the replaced ones; data sources get a generator seeded like the base's."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from simgan_toolkit.config import build_config
from simgan_toolkit.errors import ConfigError, SimganDeprecationWarning
from simgan_toolkit.task import DerivedTask, LabelledImages, Task, seeded_generator

CPU = torch.device("cpu")


def _public_members(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_every_task_member_is_handed_on_or_replaced():
    """A member added to Task later must be added to DerivedTask too, or derived tasks lose it.
    (``real``/``real_labelled``, the deprecated aliases, call the new names on the task itself;
    ``full_effect_profile`` and ``data_version`` are class attributes DerivedTask copies from
    its base when built.)"""
    not_handed_on = {"derive", "name", "full_effect_profile", "data_version", "real", "real_labelled"}
    inherited = {
        name for name in _public_members(Task)
        if getattr(DerivedTask, name) is getattr(Task, name) and name not in not_handed_on
    }
    assert inherited == set()


def test_a_derived_task_without_replacements_is_its_base(spot):
    base = spot.Task()
    derived = base.derive(name="copy")
    assert derived.name == "copy" and base.name == "tiny_spot"
    for method in ("synthetic", "target_labelled"):
        a, b = getattr(base, method)(5, 3, CPU), getattr(derived, method)(5, 3, CPU)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels["y"], b.labels["y"])
    assert torch.equal(base.target(5, 3, CPU), derived.target(5, 3, CPU))
    assert derived.profiles() == base.profiles()
    assert (derived.image_spec, derived.primary_metric, derived.estimator_output_dim) == (
        base.image_spec, base.primary_metric, base.estimator_output_dim)
    assert derived.estimator_labels == {"y": (2,)} and derived.estimator_options() == {}
    prediction, labels = torch.zeros(2, 2), {"y": torch.tensor([[3.0, 4.0], [0.0, 0.0]])}
    assert derived.estimator_metrics(prediction, labels) == {"error_px": 2.5}
    assert float(derived.estimator_loss(prediction, labels)) == pytest.approx(25 / 4)


def test_a_target_serves_target_and_target_labelled_from_a_seeded_generator(spot):
    calls = []

    def sharp_camera(n: int, generator: torch.Generator, device: torch.device) -> LabelledImages:
        calls.append((n, device))
        return spot.draw(n, generator, device, blur=0.5)

    derived = spot.Task().derive(name="sharp", target=sharp_camera)
    expected = spot.draw(4, seeded_generator(9, CPU), CPU, blur=0.5)
    labelled = derived.target_labelled(4, 9, CPU)
    assert torch.equal(labelled.images, expected.images) and torch.equal(labelled.labels["y"], expected.labels["y"])
    assert torch.equal(derived.target(4, 9, CPU), expected.images)
    assert calls == [(4, CPU), (4, CPU)]
    # The simulator is still the base's.
    assert torch.equal(derived.synthetic(4, 9, CPU).images, spot.Task().synthetic(4, 9, CPU).images)


def test_a_synthetic_source_replaces_the_simulator_only(spot):
    derived = spot.Task().derive(name="blurred_sim", synthetic=lambda n, g, d: spot.draw(n, g, d, blur=2.0))
    assert torch.equal(derived.synthetic(3, 1, CPU).images, spot.Task().target(3, 1, CPU))
    assert torch.equal(derived.target(3, 1, CPU), spot.Task().target(3, 1, CPU))


def test_settings_merge_into_every_profile(spot):
    derived = spot.Task().derive(name="other_net", settings={"estimator": {"name": "other", "options": {"k": 1}}})
    for name, profile in derived.profiles().items():
        assert profile["estimator"] == {**spot.Task().profiles()[name]["estimator"], "name": "other", "options": {"k": 1}}
    assert build_config("other_net", "smoke", derived.profiles()).estimator.name == "other"
    # The base's profiles are untouched.
    assert spot.Task().profiles()["smoke"]["estimator"]["name"] == "tiny_linear"


def test_the_base_task_own_attributes_are_read_through(spot):
    base = spot.Task()
    base.blur = 1.5  # a task's own attribute, not part of Task
    derived = base.derive(name="d")
    assert derived.blur == 1.5 and derived.base is base
    with pytest.raises(AttributeError):
        derived.no_such_attribute  # noqa: B018


def test_derive_chains_and_needs_a_name(spot):
    twice = spot.Task().derive(name="a").derive(name="b", settings={"seed": 3})
    assert twice.name == "b" and twice.base.name == "a"
    assert twice.profiles()["smoke"]["seed"] == 3
    with pytest.raises(ValueError, match="needs a name"):
        spot.Task().derive(name="")


def test_the_tiny_task_resolves_and_a_task_without_estimator_is_refused(spot):
    registry = spot.registry()
    task = registry.create("task", "tiny_spot")
    config = build_config("tiny_spot", "smoke", task.profiles())
    assert config.estimator.name == "tiny_linear" and "tiny_linear" in registry.names("estimator")
    no_estimator = task.derive(name="bare", settings={"estimator": {"name": None}})
    with pytest.raises(ConfigError, match=r"estimator\.name is not set: task 'bare'"):
        build_config("bare", "smoke", no_estimator.profiles())


def test_core_runs_a_task_of_its_own_without_the_domain_plugins(spot, tmp_path):
    """No gaze or hand plugin loaded: the tiny task's profile names everything a run needs."""
    from simgan_toolkit.pipeline import run_pipeline

    registry = spot.registry()
    assert registry.names("task") == ["tiny_spot"] and "gaze_cnn" not in registry.names("estimator")
    config = build_config("tiny_spot", "smoke", registry.create("task", "tiny_spot").profiles(), overrides=["device='cpu'"])
    summary = run_pipeline(config, tmp_path, registry, progress=False, say=lambda _: None)
    assert set(summary["estimators"]) == {"synthetic", "refined", "target"}
    assert set(summary["label_preservation"]) == {"mean_abs_pixel_change"}


def test_a_derived_task_pickles(spot):
    """Spawned workers get tasks by pickling: a derived task (and its base) survive it."""
    import functools
    import pickle

    derived = spot.Task().derive(name="sharp", target=functools.partial(spot.draw, blur=0.5))
    copy = pickle.loads(pickle.dumps(derived))
    assert copy.name == "sharp" and copy.base.name == "tiny_spot"
    assert torch.equal(copy.target(3, 2, CPU), derived.target(3, 2, CPU))


# --- the names before v1: real() / real_labelled() ---------------------------------------------


def _define_legacy(spot):
    """A third-party task written before v1: a Task with real() and real_labelled(), not the new
    names (its data: the spot task's)."""
    inner = spot.Task()

    class LegacySpot(Task):
        name = "legacy_spot"
        image_spec = inner.image_spec
        estimator_output_dim = 2
        primary_metric = inner.primary_metric

        def synthetic(self, n, seed, device):
            return inner.synthetic(n, seed, device)

        def real(self, n, seed, device):
            return inner.target(n, seed, device)

        def real_labelled(self, n, seed, device):
            return inner.target_labelled(n, seed, device)

        def estimator_loss(self, prediction, labels):
            return inner.estimator_loss(prediction, labels)

        def estimator_metrics(self, prediction, labels):
            return inner.estimator_metrics(prediction, labels)

        def label_preservation(self, synthetic, refined):
            return inner.label_preservation(synthetic, refined)

    return LegacySpot


def test_a_task_class_with_the_old_method_names_still_works_and_warns_once(spot):
    with pytest.warns(SimganDeprecationWarning) as record:
        legacy_class = _define_legacy(spot)
    assert len(record) == 1
    message = str(record[0].message)
    assert "LegacySpot" in message and "target()" in message and "target_labelled()" in message
    assert record[0].filename == __file__  # points at the class statement, not at the toolkit
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimganDeprecationWarning)  # instantiating and using the new names warns no more
        legacy = legacy_class()  # ABC sees target/target_labelled as defined
        target, labelled = legacy.target(4, 9, CPU), legacy.target_labelled(4, 9, CPU)
        derived = legacy.derive(name="d")  # DerivedTask reads the base's new names
        assert torch.equal(derived.target(4, 9, CPU), target)
    expected = spot.Task().target_labelled(4, 9, CPU)
    assert torch.equal(target, expected.images) and torch.equal(labelled.images, expected.images)
    assert torch.equal(labelled.labels["y"], expected.labels["y"])


def test_a_subclass_overriding_only_an_old_name_gets_it_under_the_new_name(spot):
    """Overriding real() of a task that defines target() still changes what the pipeline reads."""
    with pytest.warns(SimganDeprecationWarning, match=r"defines real\(\), renamed target\(\)"):
        class Zeros(spot.Task):
            def real(self, n, seed, device):
                return torch.zeros(n, 1, 12, 16)

    assert torch.equal(Zeros().target(2, 0, CPU), torch.zeros(2, 1, 12, 16))
    assert torch.equal(Zeros().target_labelled(2, 0, CPU).images, spot.Task().target_labelled(2, 0, CPU).images)


@pytest.mark.parametrize(("old", "new"), [("real", "target"), ("real_labelled", "target_labelled")])
def test_the_old_method_names_are_deprecated_aliases_on_every_task(spot, old, new):
    for task in (spot.Task(), spot.Task().derive(name="d")):
        with pytest.warns(SimganDeprecationWarning, match=rf"Task\.{old}\(\) is deprecated: call {new}\(\)") as record:
            got = getattr(task, old)(3, 5, CPU)
        assert record[0].filename == __file__
        expected = getattr(task, new)(3, 5, CPU)
        assert torch.equal(got if old == "real" else got.images, expected if old == "real" else expected.images)
