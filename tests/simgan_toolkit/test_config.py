"""Run configuration: defaults, precedence, --set parsing, one ConfigError naming the field."""

from __future__ import annotations

import json
import warnings

import pytest
from pydantic import ValidationError

from simgan_toolkit.config import (
    DiscriminatorConfig,
    RunConfig,
    build_config,
    check_resume_compatible,
    config_differences,
    deep_merge,
    describe_differences,
    load_config_file,
    parse_override,
    resume_comparable,
)
from simgan_toolkit.errors import ConfigError, SimganDeprecationWarning

#: Core has no default estimator: every test config names one (a made-up name; nothing is built).
ESTIMATOR = {"name": "est"}
#: Nor default discriminator layers: every test config states some (nothing is built).
LAYERS = ["conv3s2-8", "conv1-2"]
#: What every test config must state: the sections core has no default for.
STATED = {"estimator": ESTIMATOR, "discriminator": {"layers": LAYERS}}
NAMED = {"default": STATED}

PROFILES = {
    "quick": {**STATED, "train": {"lam": 0.1, "k_g": 3, "k_d": 4, "batch_size": 8, "history_size": 64}, "refiner": {"width": 8}},
    "other": {},
}


def test_defaults_of_every_section():
    c = RunConfig(task="t", **STATED)
    assert (c.profile, c.seed, c.device) == ("default", 0, "auto")
    assert (c.refiner.name, c.refiner.width, c.refiner.blocks, c.refiner.kernel_size) == ("resnet", 64, 4, 3)
    assert (c.refiner.output, c.refiner.noise_channels) == ("tanh", 0)
    assert c.discriminator.name == "local" and c.discriminator.layers == LAYERS
    assert (c.train.batch_size, c.train.k_g, c.train.k_d, c.train.lam) == (512, 2, 1, 0.5)
    assert (c.train.history, c.train.history_size, c.train.loss) == (True, 12800, "auto")
    assert (c.train.refiner_optimizer.name, c.train.refiner_optimizer.lr) == ("sgd", 1e-3)
    assert c.feature.name == "identity" and c.feature.checkpoint is None
    assert c.refiner.factory_options() == {"width": 64, "blocks": 4, "kernel_size": 3, "output": "tanh", "noise_channels": 0, "padding_mode": "zeros", "missing_value": None}
    assert "name" not in c.discriminator.factory_options()


def test_a_run_without_an_estimator_name_says_so():
    """No domain default: a profile that names no estimator is one ConfigError naming the field."""
    with pytest.raises(ConfigError, match=r"^invalid configuration: estimator\.name is not set: task 't', profile 'other'"):
        build_config("t", "other", PROFILES)
    layered = build_config("t", "other", PROFILES, overrides=["estimator.name=x", f"discriminator.layers={LAYERS}"])
    assert layered.estimator.name == "x"
    with pytest.raises(ValidationError, match=r"estimator\.name is not set"):
        RunConfig(task="t")


@pytest.mark.parametrize("name", ["local", "global"])
def test_a_built_in_discriminator_without_layers_says_so(name):
    """No domain default: the built-in discriminators need a task to state their layers."""
    assert DiscriminatorConfig().layers is None
    message = (
        rf"^invalid configuration: discriminator\.layers is not set: task 't', profile 'other' gives the "
        rf"'{name}' discriminator no layers; set discriminator\.layers"
    )
    with pytest.raises(ConfigError, match=message):
        build_config("t", "other", PROFILES, overrides=["estimator.name=x", f"discriminator.name={name}"])
    with pytest.raises(ConfigError, match=r"discriminator\.layers is not set"):
        build_config("t", "other", PROFILES, overrides=["estimator.name=x", "discriminator.layers=[]"])


def test_a_plugin_discriminator_may_go_without_layers():
    """A plugin discriminator may build its own layers: no layers is not an error for it."""
    config = build_config("t", "other", PROFILES, overrides=["estimator.name=x", "discriminator.name=mine"])
    assert config.discriminator.layers is None
    assert config.discriminator.factory_options()["layers"] is None


def test_default_profile_needs_no_entry():
    c = build_config("t", "default", NAMED)
    assert c == RunConfig(task="t", **STATED)


def test_precedence_profile_file_set(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('task = "ignored"\n[train]\nlam = 0.2\nk_g = 5\n[refiner]\noutput = "residual"\n')
    c = build_config("t", "quick", PROFILES, config_file=cfg, overrides=["train.lam=0.3"])
    assert c.task == "t" and c.profile == "quick"
    assert c.train.lam == 0.3  # --set beats file
    assert c.train.k_g == 5  # file beats profile
    assert c.train.k_d == 4  # profile beats default
    assert c.refiner.width == 8 and c.refiner.output == "residual"  # dicts merge, not replace
    assert c.refiner.blocks == 4  # untouched default
    assert c.train.steps == 2000


def test_later_set_wins_and_json_file(tmp_path):
    cfg = tmp_path / "saved.json"
    cfg.write_text(json.dumps(RunConfig(task="t", **STATED, seed=7).model_dump(mode="json")))
    c = build_config("t", "default", NAMED, config_file=cfg, overrides=["seed=1", "seed=2"])
    assert c.seed == 2
    assert c.train == RunConfig(task="t", **STATED).train


@pytest.mark.parametrize(
    "item,expected",
    [
        ("train.k_g=2", {"train": {"k_g": 2}}),
        ("train.lam=0.25", {"train": {"lam": 0.25}}),
        ("train.history=false", {"train": {"history": False}}),
        ("refiner.output=residual", {"refiner": {"output": "residual"}}),
        ("refiner.output='tanh'", {"refiner": {"output": "tanh"}}),
        ("device=cuda:1", {"device": "cuda:1"}),
        ("discriminator.layers=['conv3-8', 'conv1-2']", {"discriminator": {"layers": ["conv3-8", "conv1-2"]}}),
        (" seed = 3", {"seed": 3}),
        ("feature.options.note=a=b", {"feature": {"options": {"note": "a=b"}}}),
    ],
)
def test_parse_override_types(item, expected):
    got = parse_override(item)
    assert got == expected
    # == alone would accept 2.0 for 2 and 1 for True: compare the leaf types too.
    assert [type(v) for v in _leaf(got).values()] == [type(v) for v in _leaf(expected).values()]


def _leaf(d):
    while len(d) == 1 and isinstance(next(iter(d.values())), dict):
        d = next(iter(d.values()))
    return d


def test_parse_override_int_is_not_float_nor_bool():
    assert type(parse_override("a=2")["a"]) is int
    assert type(parse_override("a=2.0")["a"]) is float
    assert parse_override("a=true")["a"] is True


@pytest.mark.parametrize("item", ["train.k_g", "=3", "train..k_g=2", ".x=1"])
def test_parse_override_bad(item):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(item)


@pytest.mark.parametrize(
    "override,field",
    [
        ("train.k_g=0", "train.k_g"),
        ("train.lam=-1", "train.lam"),
        ("refiner.output='foo'", "refiner.output"),
        ("refiner.output=foo", "refiner.output"),
        ("train.nope=1", "train.nope"),
        ("nope=1", "nope"),
        ("train.refiner_optimizer.lr=0", "train.refiner_optimizer.lr"),
        ("train.refiner_optimizer.name='rmsprop'", "train.refiner_optimizer.name"),
        ("train.batch_size=1", "train.batch_size"),
        ("train.k_g='two'", "train.k_g"),
        ("train.steps=0", "train.steps"),  # pretraining only: "refined" images would never see a real one
    ],
)
def test_invalid_value_names_field(override, field):
    with pytest.raises(ConfigError) as info:
        build_config("t", "default", NAMED, overrides=[override])
    msg = str(info.value)
    assert msg.startswith("invalid configuration: ")
    assert f"{field}:" in msg
    assert "\n" not in msg


def test_several_errors_in_one_message():
    with pytest.raises(ConfigError) as info:
        build_config("t", "default", NAMED, overrides=["train.k_g=0", "train.k_d=0"])
    assert "train.k_g:" in str(info.value) and "train.k_d:" in str(info.value)


def test_unknown_profile():
    with pytest.raises(ConfigError) as info:
        build_config("gaze", "turbo", PROFILES)
    msg = str(info.value)
    assert "'turbo'" in msg and "'gaze'" in msg and "other, quick" in msg


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="absent.toml.*does not exist"):
        build_config("t", "default", NAMED, config_file=path)


@pytest.mark.parametrize("name,text", [("bad.toml", "[train\nlam = "), ("bad.json", "{not json"), ("bin.toml", None)])
def test_invalid_config_file(tmp_path, name, text):
    path = tmp_path / name
    if text is None:
        path.write_bytes(b"\xff\xfe\x00bad")
    else:
        path.write_text(text)
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_config_file(path)


def test_history_size_must_hold_half_a_batch():
    with pytest.raises(ConfigError, match=r"train\.history_size \(3\).*half a batch"):
        build_config("t", "default", NAMED, overrides=["train.batch_size=8", "train.history_size=3"])
    ok = build_config("t", "default", NAMED, overrides=["train.batch_size=8", "train.history_size=4"])
    assert ok.train.history_size == 4
    # Without a history buffer the size does not matter.
    build_config("t", "default", NAMED, overrides=["train.batch_size=8", "train.history_size=1", "train.history=false"])


def test_validate_assignment():
    c = RunConfig(task="t", **STATED)
    with pytest.raises(ValidationError, match="k_g"):
        c.train.k_g = 0


def test_config_differences_name_each_field_and_both_values():
    saved = resume_comparable(RunConfig(task="t", **STATED, profile="smoke").model_dump(mode="json"))
    current = resume_comparable(
        build_config("t", "default", NAMED, overrides=["train.steps=800", "refiner.output='residual'", "feature.options={a = 1}"])
        .model_dump(mode="json")
    )
    assert config_differences(saved, saved) == []
    assert config_differences(saved, current) == [
        'profile: saved "smoke", now "default"',  # top-level first
        "feature.options.a: saved unset, now 1",
        'refiner.output: saved "tanh", now "residual"',
        "train.steps: saved 2000, now 800",
    ]


def test_describe_differences_lists_the_first_eight_and_counts_the_rest():
    items = [f"f{i}: saved 0, now 1" for i in range(10)]
    assert describe_differences(items[:2]) == "f0: saved 0, now 1; f1: saved 0, now 1"
    assert describe_differences(items).endswith("f7: saved 0, now 1; and 2 more")


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    out = deep_merge(base, {"a": {"b": 9}, "d": {"x": 1}})
    assert out == {"a": {"b": 9, "c": 2}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


def test_config_file_that_is_not_a_table_is_config_error(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="list.json"):
        build_config("t", "default", NAMED, config_file=path)


@pytest.mark.parametrize("override", ["train.refiner_optimizer.lr=inf", "train.lam=inf"])
def test_infinite_values_rejected(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        build_config("t", "default", NAMED, overrides=[override])


# --- data sources on disk -----------------------------------------------------------------
def test_data_sides_default_to_the_task_generators():
    data = build_config("t", "default", NAMED).data
    assert (data.synthetic, data.target, data.test, data.target_train) == (None, None, None, None)


def test_data_source_from_toml_and_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.toml"
    path.write_text(
        '[data.target]\npath = "mpii"\nformat = "mpiigaze"\noptions = {split = "test"}\n'
        '[data.test]\npath = "/data/test.h5"\n'
    )
    config = build_config("t", "default", NAMED, config_file=path, overrides=["data.synthetic=syn.h5", "data.target.skip_bad=true"])
    target = config.data.target
    assert (target.path, target.format, target.options, target.skip_bad) == (str(tmp_path / "mpii"), "mpiigaze", {"split": "test"}, True)
    assert (config.data.test.path, config.data.test.format) == ("/data/test.h5", "auto")
    assert config.data.synthetic.path == str(tmp_path / "syn.h5")  # a plain string is the path
    # The saved config.json records absolute paths and reloads to the same config.
    saved = config.model_dump(mode="json")
    assert saved["data"]["target"] == {"path": str(tmp_path / "mpii"), "format": "mpiigaze", "options": {"split": "test"}, "skip_bad": True}
    assert RunConfig.model_validate(json.loads(json.dumps(saved))) == config


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["data.target.formt='x'"], "data.target.formt"),
        (["data.test={format='auto'}"], "data.test.path"),
        (["data.target.path=''"], "data.target.path"),
        (["data.target_train=t.h5", "data.n_target_train=0"], "data.target_train is set but data.n_target_train = 0"),
    ],
)
def test_bad_data_source_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        build_config("t", "default", NAMED, overrides=overrides)
    assert field in str(info.value)


# --- keys renamed in v1: data.n_real -> data.n_target, data.real -> data.target ----------------
NEW_KEYS = ["data.n_target=7", "data.target='t.h5'"]
OLD_KEYS = ["data.n_real=7", "data.real='t.h5'"]


def test_old_data_keys_warn_and_give_the_same_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    new = build_config("t", "default", NAMED, overrides=NEW_KEYS)
    assert (new.data.n_target, new.data.target.path) == (7, str(tmp_path / "t.h5"))
    with pytest.warns(SimganDeprecationWarning) as record:
        old = build_config("t", "default", NAMED, overrides=OLD_KEYS)
    assert old == new
    assert [str(w.message) for w in record] == [
        "data.n_real is deprecated (--set data.n_real=7): it is now data.n_target (renamed in v1; the old name goes in v2)",
        "data.real is deprecated (--set data.real='t.h5'): it is now data.target (renamed in v1; the old name goes in v2)",
    ]
    # A config file, a task's profile and the model itself read them too.
    path = tmp_path / "old.toml"
    path.write_text('[data]\nn_real = 7\nreal = "t.h5"\n')
    # (Each pytest.warns matches both warnings: one that did not would be raised again, as an error.)
    with pytest.warns(SimganDeprecationWarning, match=r"is deprecated \(config file '.*old\.toml'\)"):
        assert build_config("t", "default", NAMED, config_file=path) == new
    with pytest.warns(SimganDeprecationWarning, match=r"is deprecated \(task 't', profile 'default'\)"):
        assert build_config("t", "default", {"default": {**STATED, "data": {"n_real": 7, "real": "t.h5"}}}) == new
    with pytest.warns(SimganDeprecationWarning, match=r"^data\.(n_)?real is deprecated: it is now data\.(n_)?target "):
        assert RunConfig.model_validate({"task": "t", **STATED, "data": {"n_real": 7, "real": "t.h5"}}) == new


def test_an_old_key_overrides_the_new_key_of_a_lower_layer():
    """A profile written with the new names and a --set with the old one: the --set wins, as always."""
    profiles = {"default": {**STATED, "data": {"n_target": 5}}}
    with pytest.warns(SimganDeprecationWarning):
        assert build_config("t", "default", profiles, overrides=["data.n_real=9"]).data.n_target == 9


@pytest.mark.parametrize("where", ["set", "file", "model"])
def test_a_setting_under_its_old_and_its_new_name_names_both(tmp_path, where):
    message = "data.n_real and data.n_target are both given"
    if where == "model":
        with pytest.raises(ValidationError, match=message):
            RunConfig.model_validate({"task": "t", **STATED, "data": {"n_real": 7, "n_target": 7}})
        return
    path = tmp_path / "both.toml"
    path.write_text("[data]\nn_real = 7\nn_target = 8\n")
    with pytest.raises(ConfigError) as info:
        if where == "set":
            build_config("t", "default", NAMED, overrides=["data.n_real=7", "data.n_target=8"])
        else:
            build_config("t", "default", NAMED, config_file=path)
    assert str(info.value).startswith(f"invalid configuration: {message}")
    assert "keep only data.n_target" in str(info.value)


def test_a_saved_config_with_the_old_names_resumes_silently():
    """A run folder's config.json (or checkpoint) written before v1 holds data.n_real / data.real."""
    current = build_config("t", "default", NAMED, overrides=["data.n_target=7"])
    saved = current.model_dump(mode="json")
    saved["data"]["n_real"], saved["data"]["real"] = saved["data"].pop("n_target"), saved["data"].pop("target")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_resume_compatible(saved, current, "run/config.json")
        assert resume_comparable(saved) == resume_comparable(current.model_dump(mode="json"))
    saved["data"]["n_real"] = 8
    with pytest.raises(ConfigError, match="data.n_target: saved 8, now 7"):
        check_resume_compatible(saved, current, "run/config.json")
