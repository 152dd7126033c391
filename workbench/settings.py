"""Profiles as presets of a settings dataclass: the one `from_profile` every stage uses.

Each stage (data, model, sft, grpo, evaluate) has one flat settings dataclass and a table of
named presets of `PROFILES`; this builds an instance from a preset plus field overrides,
refusing unknown profile and field names with a message that names them. A settings object
built without a profile (`SFTSettings()`) records none: its `profile` is "".
`parse_set` reads the typed `--set FIELD=VALUE` overrides every stage's command line takes.
`as_names` reads a list setting given as "a,b" or as a sequence. `trainer_bf16` and
`trainer_report_to` resolve the `None` / "auto" values the SFT and GRPO
settings share into what the HF trainers take.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")

PROFILES = ("smoke", "default", "gpu")
"""The named presets every stage has: `smoke` (seconds, tests and CI), `default` (the real small
run on a CPU), `gpu` (one GPU, more data and steps, or a real pretrained VLM)."""


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


def known_names(value: Any, known: Sequence[str], what: str) -> tuple[str, ...]:
    """`as_names(value)`, every name one of `known`; a ValueError names the others and `what` they are.

    >>> known_names("ground_3d", ("ground_3d", "ground_2d"), "grounding tasks")
    ('ground_3d',)
    >>> known_names(["ground_3d", "ground_4d"], ("ground_3d",), "grounding tasks")
    Traceback (most recent call last):
    ...
    ValueError: unknown grounding tasks ['ground_4d']; choose from ('ground_3d',)
    """
    names = as_names(value)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {tuple(known)}")
    return names


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


def check_profile(profile: str) -> None:
    """Refuse a profile name that is neither one of `PROFILES` nor "" (no profile)."""
    if profile not in ("", *PROFILES):
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")


def add_set_argument(parser: Any, cls: type) -> None:
    """The `--set FIELD=VALUE` option (repeatable) of a stage's command line, for the fields of `cls`."""
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"override a field of {cls.__name__} (repeatable; typed by the field)")


def parse_set(cls: type, pairs: Sequence[str]) -> dict[str, Any]:
    """{field: value} from `FIELD=VALUE` strings, typed by the dataclass `cls`'s field types.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class S:
    ...     beta: float = 0.0
    ...     use_lora: bool = False
    ...     max_prompts: int | None = 0
    ...     paths: str = "joint"
    ...     splits: tuple[str, ...] = ("val",)
    >>> parse_set(S, ["beta=0.02", "use_lora=true", "max_prompts=none", "paths=dtr", "splits=val,test"])
    {'beta': 0.02, 'use_lora': True, 'max_prompts': None, 'paths': 'dtr', 'splits': ('val', 'test')}
    >>> parse_set(S, ["nope=1"])
    Traceback (most recent call last):
    ...
    ValueError: --set 'nope=1': expected FIELD=VALUE with FIELD one of ['beta', 'max_prompts', 'paths', 'splits', 'use_lora']
    """
    types = {f.name: str(f.type) for f in fields(cls)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in types:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(types)}")
        kind = types[name]
        try:
            if text.lower() in ("none", "null") and "None" in kind:
                out[name] = None
            elif kind.startswith("bool"):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError("a boolean (true/false)")
                out[name] = text.lower() in ("true", "1", "yes")
            elif kind.startswith("int"):
                out[name] = int(text)
            elif kind.startswith("float"):
                out[name] = float(text)
            elif kind.startswith("tuple"):
                out[name] = as_names(text)
            else:
                out[name] = text
        except ValueError as err:
            names = {"int": "a whole number", "float": "a number"}
            what = str(err) if str(err).startswith("a ") else names.get(kind.split(" ")[0], kind.split(" ")[0])
            raise ValueError(f"--set {pair!r}: {name} must be {what}, got {text!r}") from None
    return out


def check_steps(settings: Any, counts: Sequence[str] = ()) -> None:
    """The step fields every trainer's settings share, checked in one place: each of `counts`
    (batch sizes, logging and save intervals) at least 1, `max_steps` a positive number of steps
    (or -1 where the settings allow epochs). ValueError names the field and the value.

    >>> from types import SimpleNamespace
    >>> check_steps(SimpleNamespace(max_steps=0, save_steps=5), ["save_steps"])
    Traceback (most recent call last):
    ValueError: max_steps must be a positive number of steps or -1, got 0
    """
    for name in counts:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    steps = getattr(settings, "max_steps", -1)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps == 0 or steps < -1:
        raise ValueError(f"max_steps must be a positive number of steps or -1, got {steps!r}")
