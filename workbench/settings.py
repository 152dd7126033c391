"""Profiles as presets of a settings dataclass: the one `from_profile` every stage uses.

Each stage (data, model, sft, grpo, evaluate) has one flat settings dataclass and a table of
named presets (`smoke`, `default`, `gpu`); this builds an instance from a preset plus field
overrides, refusing unknown profile and field names with a message that names them.
`as_names` reads a list setting given as "a,b" or as a sequence. `trainer_bf16` and
`trainer_report_to` resolve the `None` / "auto" values the SFT and GRPO
settings share into what the HF trainers take.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_preset(cls: type[T], presets: Mapping[str, Mapping[str, Any]], name: str,
                overrides: Mapping[str, Any], label: str = "") -> T:
    """`cls(**presets[name], **overrides)`, with the profile recorded when `cls` has that field.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class S:
    ...     profile: str = "smoke"
    ...     steps: int = 1
    >>> from_preset(S, {"smoke": {}, "default": {"steps": 9}}, "default", {})
    S(profile='default', steps=9)
    >>> from_preset(S, {"smoke": {}}, "huge", {})
    Traceback (most recent call last):
    ...
    ValueError: unknown profile 'huge'; choose one of ('smoke',)
    """
    if name not in presets:
        what = f"{label} profile" if label else "profile"
        raise ValueError(f"unknown {what} {name!r}; choose one of {tuple(presets)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
    values = {**presets[name], **overrides}
    if "profile" in known:
        values.setdefault("profile", name)
    return cls(**values)


def trainer_bf16(value: bool | None) -> bool:
    """bfloat16 mixed precision: `value`, or when None, whether a CUDA GPU supports it."""
    if value is not None:
        return bool(value)
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def as_names(value: Any) -> tuple[str, ...]:
    """A comma-separated string or a sequence of names, as a tuple of stripped, non-empty names.

    >>> as_names("val, test,")
    ('val', 'test')
    >>> as_names(["lor", " dtr"])
    ('lor', 'dtr')
    """
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


def trainer_report_to(value: str) -> str | list[str]:
    """HF `report_to` from a comma-separated string; `auto` = tensorboard when installed, else none.

    >>> trainer_report_to("wandb, tensorboard")
    ['wandb', 'tensorboard']
    >>> trainer_report_to("")
    'none'
    """
    if value == "auto":
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else "none"
    return [v.strip() for v in value.split(",") if v.strip()] or "none"
