"""Profiles are presets of each stage's settings dataclass, built by one function."""

from __future__ import annotations

import doctest

import pytest

from workbench import settings
from workbench.data import DataSettings
from workbench.evaluate import EvalSettings
from workbench.grpo import GRPOSettings
from workbench.model import ModelSettings
from workbench.sft import SFTSettings

STAGES = (DataSettings, ModelSettings, SFTSettings, GRPOSettings, EvalSettings)


def test_doctests():
    assert doctest.testmod(settings).failed == 0


@pytest.mark.parametrize("cls", STAGES, ids=[c.__name__ for c in STAGES])
def test_every_stage_has_the_three_profiles_and_refuses_unknown_fields(cls):
    for name in ("smoke", "default", "gpu"):
        made = cls.from_profile(name)
        assert isinstance(made, cls)
        if hasattr(made, "profile"):
            assert made.profile == name
    with pytest.raises(ValueError, match=rf"unknown {cls.__name__} fields \['nope'\]"):
        cls.from_profile("smoke", nope=1)
    with pytest.raises(ValueError, match="profile 'huge'"):
        cls.from_profile("huge")
