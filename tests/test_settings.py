"""Profiles are presets of each stage's settings dataclass, built by one function."""

from __future__ import annotations

import doctest

import pytest

from workbench import settings
from workbench.dataset import DataSettings
from workbench.eval.evaluate import EvalSettings
from workbench.model import ModelSettings
from workbench.train.grpo_settings import GRPOSettings
from workbench.train.sft import SFTSettings

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


@pytest.mark.parametrize("cls", STAGES, ids=[c.__name__ for c in STAGES])
def test_settings_built_without_a_profile_claim_none(cls):
    made = cls()
    assert getattr(made, "profile", "") == ""
    if hasattr(made, "profile"):
        with pytest.raises(ValueError, match="unknown profile 'huge'"):
            bad = cls(profile="huge")
            getattr(bad, "validate", lambda: None)()  # DataSettings validates when a build starts


def test_the_profile_names_are_written_once():
    from workbench import run
    from workbench.train import grpo, sft

    assert grpo.PROFILES is sft.PROFILES is run.PROFILES is settings.PROFILES


@pytest.mark.parametrize("cls", STAGES, ids=[c.__name__ for c in STAGES])
def test_set_overrides_are_typed_by_each_stage_field(cls):
    from dataclasses import MISSING, fields

    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            assert settings.parse_set(cls, [f"{f.name}=yes"]) == {f.name: True}
        elif isinstance(default, int):
            assert settings.parse_set(cls, [f"{f.name}=7"]) == {f.name: 7}
            with pytest.raises(ValueError, match=rf"--set '{f.name}=seven': {f.name} must be a whole number, got 'seven'"):
                settings.parse_set(cls, [f"{f.name}=seven"])
        elif isinstance(default, float):
            assert settings.parse_set(cls, [f"{f.name}=0.5"]) == {f.name: 0.5}


@pytest.mark.parametrize("command", ["data", "sft", "grpo", "eval"])
def test_every_stage_command_takes_set(command, capsys):
    from workbench.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "--set FIELD=VALUE" in capsys.readouterr().out


def test_data_command_applies_set_and_names_a_bad_field(tmp_path, capsys):
    from workbench.cli import main
    from workbench.dataset import read_data_card

    out = tmp_path / "d"
    assert main(["data", "--out", str(out), "--no-progress", "--set", "num_scenes=12", "--set", "seed=3"]) == 0
    card = read_data_card(out)
    assert card["settings"]["num_scenes"] == 12 and card["settings"]["seed"] == 3
    assert main(["data", "--out", str(tmp_path / "e"), "--set", "scenes=12"]) == 2
    assert "--set 'scenes=12'" in capsys.readouterr().err and not (tmp_path / "e").exists()
