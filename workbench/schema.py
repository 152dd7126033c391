"""The data contract shared by every stage (SPEC sections 2, 3 and 6).

One row of a workbench dataset is one question (or one grounding / general-QA item) on one
rendered view. Every stage (SFT, GRPO, evaluation, `ask`, the demo) reads rows through this
module's names, so a column renamed here is renamed everywhere. Taught in
`notebooks/01_build_data.ipynb`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

REGION_TOKEN = "<region>"
"""Placeholder for the k-th visual prompt of the example inside `question`."""

SPLITS = ("train", "val", "test", "test_ood")
PATHS = ("lor", "dtr")

NUMERIC_CATEGORIES = (
    "distance",
    "horizontal_distance",
    "vertical_distance",
    "width",
    "height",
    "camera_distance",
)
CHOICE_CATEGORIES = (
    "left_right",
    "above_below",
    "front_behind",
    "bigger_smaller",
    "taller_shorter",
    "wider_thinner",
    "closest_to",
)
GENERAL_ONLY_CATEGORIES = ("count", "exists")
"""General (no-region) questions use the relations above plus these."""

TASKS = ("region_qa", "general_qa", "ground_3d", "ground_2d", "caption")
"""`region_qa`: a question with visual prompts (DTR by default); `general_qa`: objects named by
unique description (LOR by default); the other three are cold-start blend data only."""

ANSWER_TYPES = ("choice", "number", "text", "motion")
"""`motion`: a camera-motion answer across views (`move_right:0.4,rotate_right:60`; issue #24)."""

QA_TASKS = ("region_qa", "general_qa")
"""Tasks that are evaluated and used as RL prompts."""

COLUMNS = (
    "id",
    "scene_id",
    "split",
    "task",
    "image",
    "depth",
    "intrinsics",
    "camera_to_world",
    "objects",
    "regions",
    "question",
    "category",
    "answer_type",
    "answer",
    "choices",
    "path",
    "centers",
    "lor_target",
    "dtr_target",
)
"""Columns every dataset row has. `centers` is a JSON object string {label: [x, y, z]}
(arrow cannot store a dict with per-row keys); use `centers_of(row)` to read it."""

OBJECT_KEYS = ("name", "category", "color", "center", "yaw", "size", "bbox_2d")
REGION_KEYS = ("label", "kind", "object_index", "bbox_2d")


def centers_of(row_or_value: Mapping[str, Any] | str | None) -> dict[str, list[float]]:
    """Ground-truth centers {label: [x, y, z]} of a row, or of its `centers` value.

    >>> centers_of('{"red box": [0.1, 0.2, 1.5]}')
    {'red box': [0.1, 0.2, 1.5]}
    >>> centers_of({"blue point": [0, 0, 2]})
    {'blue point': [0.0, 0.0, 2.0]}
    >>> centers_of(None)
    {}
    """
    value = row_or_value
    if isinstance(value, Mapping) and "id" in value and "centers" in value:
        value = value["centers"]  # a row, not a centers mapping
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"centers must be a JSON object {{label: [x, y, z]}}, got {value!r}")
    return {str(k): [float(c) for c in v] for k, v in value.items()}


def validate_row(row: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first column that breaks the contract."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"row {row.get('id', '?')!r} lacks required columns {missing}")
    rid = row["id"]
    if row["split"] not in SPLITS:
        raise ValueError(f"row {rid!r}: split {row['split']!r} not in {SPLITS}")
    if row["task"] not in TASKS:
        raise ValueError(f"row {rid!r}: task {row['task']!r} not in {TASKS}")
    if row["path"] not in PATHS:
        raise ValueError(f"row {rid!r}: path {row['path']!r} not in {PATHS}")
    if row["answer_type"] not in ANSWER_TYPES:
        raise ValueError(f"row {rid!r}: answer_type {row['answer_type']!r} is not one of {'|'.join(ANSWER_TYPES)}")
    n_tokens = str(row["question"]).count(REGION_TOKEN)
    if n_tokens != len(row["regions"]):
        raise ValueError(
            f"row {rid!r}: question has {n_tokens} {REGION_TOKEN} tokens but {len(row['regions'])} regions"
        )
    if len(row["intrinsics"]) != 4:
        raise ValueError(f"row {rid!r}: intrinsics must be [fx, fy, cx, cy], got {row['intrinsics']!r}")
    centers_of(row)


def check_depth(depth: Any, size: tuple[int, int], name: str = "depth"):
    """`depth` as a float32 (H, W) numpy array of z in meters for an image of `size` (W, H), or a
    ValueError naming what is wrong (shape, NaN, negative values). 0 (or inf) = no depth there."""
    import numpy as np

    arr = np.asarray(depth, dtype=np.float32)
    w, h = size
    if arr.ndim != 2 or arr.shape != (h, w):
        raise ValueError(f"{name} has shape {tuple(arr.shape)}; the image needs ({h}, {w}) (H, W)")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values")
    if (arr < 0).any():
        raise ValueError(f"{name} contains negative values (min {float(arr.min()):.3g}); depth is z in meters")
    return arr
