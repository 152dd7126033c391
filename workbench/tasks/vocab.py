"""The spatial vocabulary that questions and traces share: question templates per category, the
option words and their signs, category groups, the 2-decimal number format, and how a stored row
names its objects (`roles`, `role_labels`, `parse_target`, `matches`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from workbench import schema
from workbench.world.scenes import (
    COLORS,
    NAME_TO_CATEGORY,
    PLURAL_TO_NAME,
)

LETTERS = "ABCDE"

NUMERIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "distance": (
        "How far is {A} from {B}?",
        "What is the distance between {A} and {B}?",
        "How far apart are {A} and {B}?",
    ),
    "horizontal_distance": (
        "What is the horizontal distance between {A} and {B}?",
        "Ignoring height, how far is {A} from {B}?",
        "Measured along the floor, how far apart are {A} and {B}?",
    ),
    "vertical_distance": (
        "What is the vertical distance between {A} and {B}?",
        "How far apart are {A} and {B} vertically?",
        "What is the height difference between the centers of {A} and {B}?",
    ),
    "width": ("How wide is {A}?", "What is the width of {A}?", "Measure the width of {A}."),
    "height": ("How tall is {A}?", "What is the height of {A}?", "Measure how tall {A} is."),
    "camera_distance": (
        "How far is {A} from the camera?",
        "What is the distance from the camera to {A}?",
        "How far away from the viewer is {A}?",
    ),
}

CHOICE_TEMPLATES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # (template, word when the signed relation of A to B is positive, word when negative)
    "left_right": (
        ("Is {A} to the left or to the right of {B}?", "right", "left"),
        ("From the viewer's position, is {A} left or right of {B}?", "right", "left"),
        ("Seen from the camera, is {A} on the left or the right of {B}?", "right", "left"),
    ),
    "above_below": (
        ("Is {A} above or below {B}?", "above", "below"),
        ("Is the center of {A} higher or lower than that of {B}?", "higher", "lower"),
        ("Does {A} sit higher or lower than {B}?", "higher", "lower"),
    ),
    "front_behind": (
        ("Is {A} in front of or behind {B}?", "in front", "behind"),
        ("Is {A} closer to the camera or farther than {B}?", "closer", "farther"),
        ("From the camera, is {A} nearer or farther than {B}?", "nearer", "farther"),
    ),
    "bigger_smaller": (
        ("Is {A} bigger or smaller than {B}?", "bigger", "smaller"),
        ("Does {A} take up more or less space than {B}?", "more", "less"),
        ("By volume, is {A} larger or smaller than {B}?", "larger", "smaller"),
    ),
    "taller_shorter": (
        ("Is {A} taller or shorter than {B}?", "taller", "shorter"),
        ("Standing upright, is {A} taller or shorter than {B}?", "taller", "shorter"),
    ),
    "wider_thinner": (
        ("Is {A} wider or thinner than {B}?", "wider", "thinner"),
        ("Is {A} wider or narrower than {B}?", "wider", "narrower"),
    ),
}
CLOSEST_TEMPLATES = (
    "Which is closest to {A}: {C}?",
    "Which object is nearest to {A}: {C}?",
    "Of these, which lies closest to {A}: {C}?",
)
COUNT_TEMPLATES = (
    "How many {target} are there?",
    "How many {target} can you see?",
    "Count the {target} in the image.",
)
EXISTS_TEMPLATES = (
    "Is there a {target} in the image?",
    "Can you see a {target}?",
    "Does the scene contain a {target}?",
)

WORD_SIGN: dict[str, dict[str, int]] = {
    cat: {w: s for _, pos, neg in temps for w, s in ((pos, 1), (neg, -1))}
    for cat, temps in CHOICE_TEMPLATES.items()
}
"""category -> option word -> +1 if it says 'A relates positively to B' (right, above, ...)."""

REGION_CATEGORIES = schema.NUMERIC_CATEGORIES + schema.CHOICE_CATEGORIES
GENERAL_CATEGORIES = REGION_CATEGORIES + schema.GENERAL_ONLY_CATEGORIES
SIZE_CATEGORIES = ("width", "height", "bigger_smaller", "taller_shorter", "wider_thinner")
"""Categories whose answer needs object sizes, not just centers."""
N_ROLES = {c: 1 for c in ("width", "height", "camera_distance")}

MIN_NUMERIC = {"distance": 0.05, "horizontal_distance": 0.1, "vertical_distance": 0.1}
"""Numeric answers below these are not asked (near-zero ground truth makes the reward degenerate)."""

for _temps in list(NUMERIC_TEMPLATES.values()) + [[t for t, _, _ in v] for v in CHOICE_TEMPLATES.values()]:
    for _t in _temps:  # roles appear in question order: regions[k] and centers keys follow it
        assert "{B}" not in _t or _t.index("{A}") < _t.index("{B}"), f"template names B before A: {_t!r}"


# ----------------------------------------------------------------------------- geometry of roles


def fmt(value: float) -> str:
    """A number as the 2-decimal string answers use (never `-0.00`)."""
    s = f"{value:.2f}"
    return "0.00" if s == "-0.00" else s


def volume(size: Sequence[float]) -> float:
    return float(size[0]) * float(size[1]) * float(size[2])


def width_of(size: Sequence[float]) -> float:
    return max(float(size[0]), float(size[1]))


# ----------------------------------------------------------------------------- reading rows


def roles(row: Mapping[str, Any]) -> list[int]:
    """Object indices the question refers to, in question order ([] for count / exists)."""
    if row["task"] == "general_qa" or not row["regions"]:
        keys = list(schema.centers_of(row))
        index = {}
        for i, o in enumerate(row["objects"]):
            index.setdefault(f"{o['color']} {o['name']}", []).append(i)
        out = []
        for k in keys:
            if len(index.get(k, ())) != 1:
                raise ValueError(f"row {row.get('id')!r}: description {k!r} does not name exactly one object")
            out.append(index[k][0])
        return out
    return [int(r["object_index"]) for r in row["regions"]]


def role_labels(row: Mapping[str, Any]) -> list[str]:
    """How the question names each role: region labels, or descriptions for general rows."""
    if row["task"] == "general_qa" or not row["regions"]:
        return list(schema.centers_of(row))
    return [r["label"] for r in row["regions"]]


def _target_regexes(templates: Sequence[str]) -> list[re.Pattern]:
    return [
        re.compile("^" + re.escape(t).replace(re.escape("{target}"), "(?P<target>.+?)") + "$")
        for t in templates
    ]


_COUNT_RE = _target_regexes(COUNT_TEMPLATES)
_EXISTS_RE = _target_regexes(EXISTS_TEMPLATES)


def parse_target(question: str, category: str) -> tuple[str | None, str | None]:
    """(color, name) a count / exists question asks about; None = any."""
    for pattern in _COUNT_RE if category == "count" else _EXISTS_RE:
        m = pattern.match(question)
        if m:
            words = m.group("target").split()
            color = words[0] if len(words) == 2 else None
            noun = words[-1]
            name = None if noun in ("objects", "object") else PLURAL_TO_NAME.get(noun, noun)
            if (color is not None and color not in COLORS) or (
                name is not None and name not in NAME_TO_CATEGORY
            ):
                break
            return color, name
    raise ValueError(f"cannot read the target of {category} question {question!r}")


def matches(obj: Mapping[str, Any], color: str | None, name: str | None) -> bool:
    """Whether an object has this color and name (None matches any)."""
    return (color is None or obj["color"] == color) and (name is None or obj["name"] == name)
