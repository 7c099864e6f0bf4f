"""Every kind takes an ``options`` mapping: a plugin's own settings reach its factory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simgan_toolkit.config import DiscriminatorConfig, RefinerConfig


@pytest.mark.parametrize("section", [RefinerConfig, DiscriminatorConfig])
def test_options_reach_the_factory_after_the_fields(section):
    default = section().factory_options()
    with_options = section(name="mine", options={"depth": 3, "act": "gelu"}).factory_options()
    assert with_options == {**default, "depth": 3, "act": "gelu"}
    assert "options" not in default and "name" not in default


@pytest.mark.parametrize(("section", "field"), [(RefinerConfig, "width"), (DiscriminatorConfig, "layers")])
def test_options_may_not_repeat_a_field(section, field):
    with pytest.raises(ValidationError, match=f"options.{field} repeats the field"):
        section(options={field: 1})


def test_refiner_fields_are_unchanged():
    # Existing configs build the same refiner: the fields and their defaults are as before.
    assert RefinerConfig().factory_options() == {
        "width": 64, "blocks": 4, "kernel_size": 3, "output": "tanh", "noise_channels": 0,
        "padding_mode": "zeros", "missing_value": None,
    }
