"""The ground truth a prediction row carries (`truth_fields`) and the pseudo-models the evaluation
puts beside real ones: `chance` (a seeded letter, the train median for numbers) and `oracle`
(the reference targets, which must score 1.0: a check of the scoring itself).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from workbench import schema
from workbench.eval.metrics import median
from workbench.tasks import rewards

# ----------------------------------------------------------------------------- ground truth and baselines


def truth_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ground truth a prediction row carries, so it can be re-scored without the dataset."""
    from workbench.tasks import crossview, questions
    centers = schema.centers_of(row)
    try:
        labels = questions.role_labels(row)
    except (KeyError, ValueError):
        labels = list(centers)
    return {
        "id": row["id"],
        "row_index": row.get("row_index"),
        "scene_id": row.get("scene_id"),
        "split": row["split"],
        "task": row["task"],
        "category": row["category"],
        "question": row["question"],
        "answer_type": row["answer_type"],
        "answer": row["answer"],
        "choices": list(row.get("choices") or []),
        "regions": [dict(r) for r in row.get("regions") or []],
        "role_labels": labels,
        "gt_centers": centers,
        "camera_to_world": row.get("camera_to_world"),
        "intrinsics": row.get("intrinsics"),
        "reference_targets": {path: str(row[key]) for path, key in (("lor", "lor_target"), ("dtr", "dtr_target"))
                              if row.get(key)},
        # a multi-view row: how many frames, each region's center in each, the frame it requires, and
        # each frame's camera_to_world (the implied answer in the frame a completion names reads it)
        **({"views": len(row["view_poses"]), "frame_centers": row.get("frame_centers") or "{}",
            "reference_frame": int(row.get("reference_frame") or 0),
            "view_poses": [[list(map(float, r)) for r in pose] for pose in row["view_poses"]]}
           if crossview.is_multiview(row) else {}),
        # a public benchmark's row (`workbench bench`): its name, grouping and gold as it states it
        **{key: row[key] for key in ("benchmark", "group", "official_answer") if row.get(key) is not None},
    }


def chance_completion(row: Mapping[str, Any], path: str, number_prior: float = 1.0, seed: int = 0) -> str:
    """A guess in the format of `path`: a uniform letter (seeded by `seed` and the row id) for
    choice questions, `number_prior` for numeric ones. No centers are detected."""
    if row["answer_type"] == "number":
        answer = f"{number_prior:.2f}"
    else:
        n = len(row.get("choices") or []) or 2
        answer = "ABCDEFGH"[random.Random(f"chance|{seed}|{row['id']}").randrange(n)]
    return _completion(path, [], "A guess without looking.", answer)


def oracle_completion(row: Mapping[str, Any], path: str) -> str:
    """The exact SPEC format of `path` with the true centers (2 decimals) of the question's
    objects and the answer recomputed from the stored geometry."""
    from workbench.tasks import crossview, questions, traces
    if crossview.is_multiview(row):  # centers in the reference frame, which the detect block names
        answer = crossview.recompute_answer(row)
        if path != "dtr" or not row.get("regions"):
            return _completion(path, [], "The answer follows from the true geometry.", answer)
        centers = schema.centers_of(row)
        boxes = [traces.box3d(centers[r["label"]], row["objects"][r["object_index"]]["name"], r["label"])
                 for r in row["regions"]]
        text = _completion(path, boxes, "The answer follows from the true geometry.", answer)
        return crossview.aligned(text, crossview.reference_frame(row))
    answer = questions.recompute_answer(row)
    boxes = []
    if path == "dtr":
        centers = schema.centers_of(row)
        labels = questions.role_labels(row) if centers else []
        indices = questions.roles(row) if centers else []
        boxes = [
            traces.box3d(centers[lab], row["objects"][i]["name"], lab) for lab, i in zip(labels, indices)
        ]
    return _completion(path, boxes, "The answer follows from the true geometry.", answer)


def _completion(path: str, boxes: Sequence[str], think: str, answer: str) -> str:
    from workbench.tasks import traces
    if path == "dtr":
        return traces.dtr(boxes, think, answer)
    return traces.lor(think, answer)


def number_priors(data: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """{numeric category: median answer} of the train split (of `rows` when there is none)."""
    source: list[tuple[str, str]] = []
    if "train" in data:
        train = data["train"].select_columns(["task", "category", "answer_type", "answer"])
        source = [
            (r["category"], r["answer"])
            for r in train
            if r["answer_type"] == "number" and r["task"] in schema.QA_TASKS
        ]
    if not source:
        source = [(r["category"], r["answer"]) for r in rows if r["answer_type"] == "number"]
    by_cat: dict[str, list[float]] = {}
    for cat, answer in source:
        value = rewards.parse_number(str(answer))
        if value is not None:
            by_cat.setdefault(cat, []).append(value)
    overall = median([v for vs in by_cat.values() for v in vs]) or 1.0
    return {cat: median(by_cat.get(cat, [])) or overall for cat in (*schema.NUMERIC_CATEGORIES, *by_cat)}
