"""Profiles as presets of a settings dataclass: the one `from_profile` every stage uses.

Each stage (data, model, sft, grpo, evaluate) has one flat settings dataclass and a table of
named presets (`smoke`, `default`, `gpu`); this builds an instance from a preset plus field
overrides, refusing unknown profile and field names with a message that names them.
"""

from __future__ import annotations

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
