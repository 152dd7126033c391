"""SPAR-Bench (hub `jasonzhango/SPAR-Bench`, also `-Tiny`; split `test`): 20 tasks on ScanNet views,
single- and multi-view, multiple choice (`select`), numbers (`fill`) and one camera-action task.

Follows the dataset card's columns (`id`, `img_type` single_view | multi_view, `format_type` select |
fill, `task`, `image`: a list of images, `question` with the options inside it, `answer`) and the
task lists of the official scorer, `lmms-eval/lmms_eval/tasks/sparbench/utils.py` of
LogosRoboticsGroup/SPAR (unchanged since commit 54465ac, 2025-03-26), as the paper's
`cold-start/eval/cal_spar.py` (jiyt17/SR-REAL, commit 030d782) reuses them.

The marks SPAR refers to ("the towel (red point)") are drawn in its images already, so plain items
have no regions and go to LOR. The region version the paper evaluates on DTR reads
`sparbench_region_prompts.json`, which the paper's repository links but does not publish; pass such
a file as `regions=` (a JSON list or {id: record} of `id`, `question_region` with one `<mask>` per
region, `bbox`: [[x1, y1, x2, y2], ...] in pixels of the first image) and single-view items with
boxes there get them (multi-view ones stay plain: regions across views are issue #24's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from workbench.dataset.benchmarks import common

NAME = "spar"
HUB = "jasonzhango/SPAR-Bench"
SPLIT = "test"
REQUIRED = ("id", "img_type", "format_type", "task", "image", "question", "answer")


def category_of(record: dict[str, Any]) -> str:
    return str(record["task"])


LOW = (
    "depth_prediction_oc",
    "depth_prediction_oo",
    "distance_prediction_oc",
    "distance_prediction_oo",
    "depth_prediction_oc_mv",
    "depth_prediction_oo_mv",
    "distance_prediction_oc_mv",
    "distance_prediction_oo_mv",
)
MIDDLE = ("view_change_infer", "position_matching", "camera_motion_infer")
HIGH = (
    "obj_spatial_relation_oo",
    "spatial_imagination_oc",
    "spatial_imagination_oo",
    "distance_infer_center_oo",
    "obj_spatial_relation_oc_mv",
    "obj_spatial_relation_oo_mv",
    "spatial_imagination_oc_mv",
    "spatial_imagination_oo_mv",
    "distance_infer_center_oo_mv",
)
NUMERIC = LOW
"""Tasks answered with a number, scored by MRA (the official `NA` list)."""
CAMERA_ACTION = ("view_change_infer",)
"""Answered with `move_right:0.4,...,rotate_up:5`: the official VCI metric."""
TASKS = LOW + MIDDLE + HIGH
CAMERA_INSTRUCTION = ("Answer with the camera motion as comma-separated key:value pairs, "
                      "e.g. move_right:0.4,move_forward:2.4,rotate_right:60.")
"""Appended to a camera-move question that does not spell its format out: the workbench's system
prompt asks for a letter or a number, which this task's rule cannot read."""


def level_of(task: str) -> str:
    for level, tasks in (("Low", LOW), ("Middle", MIDDLE), ("High", HIGH)):
        if task in tasks:
            return level
    raise common.BenchmarkError(f"{NAME}: unknown task {task!r}; SPAR-Bench has {list(TASKS)}")


def items(records: list[dict[str, Any]], regions: str | Path | None = None) -> Iterator[dict[str, Any]]:
    common.check_columns(records, REQUIRED, NAME)
    extra = _region_prompts(regions) if regions else {}
    for k, rec in enumerate(records):
        what = f"{NAME} record {k} (id {rec['id']!r})"
        task = str(rec["task"])
        level = level_of(task)
        images = rec["image"] if isinstance(rec["image"], list) else [rec["image"]]
        images = [common.decode_image(img, f"{what} image {j}") for j, img in enumerate(images)]
        answer = str(rec["answer"]).strip()
        question, choices = common.split_options(str(rec["question"]))
        if task in NUMERIC:
            answer_type = "number"
            try:
                float(answer)
            except ValueError:
                raise common.BenchmarkError(
                    f"{what}: task {task!r} needs a number as answer, got {answer!r}"
                ) from None
        elif task in CAMERA_ACTION:
            answer_type = "text"
        else:
            answer_type = "choice"
            n = len(choices) or 4
            if len(answer) != 1 or answer.upper() not in common.LETTERS[:n]:
                raise common.BenchmarkError(
                    f"{what}: answer {answer!r} is not an option letter A-{common.LETTERS[n - 1]}"
                )
            answer = answer.upper()
        if not choices:
            question = str(rec["question"])  # options (if any) stay in the text, as SPAR writes them
        if answer_type == "text" and "move_" not in question:
            question += "\n" + CAMERA_INSTRUCTION
        regs: list[dict[str, Any]] = []
        prompt = extra.get(str(rec["id"]))
        if prompt and len(images) == 1 and prompt.get("bbox"):
            text, labels = common.region_phrases(str(prompt["question_region"]), "<mask>")
            boxes = prompt["bbox"]
            if len(boxes) != len(labels):
                raise common.BenchmarkError(
                    f"{what}: {len(labels)} <mask> in question_region but {len(boxes)} boxes"
                )
            regs = [
                {
                    "label": lab,
                    "kind": "box",
                    "bbox_2d": common.check_box(b, images[0].size, f"{what} box {j}"),
                }
                for j, (lab, b) in enumerate(zip(labels, boxes))
            ]
            question, choices_r = common.split_options(text)
            choices = choices_r or choices
            if not choices_r:
                question = text
        yield {
            "id": f"{NAME}/{rec['id']}",
            "benchmark": NAME,
            "category": task,
            "group": {"level": level, "view": str(rec["img_type"]), "format": str(rec["format_type"])},
            "images": images,
            "question": question,
            "choices": choices,
            "answer_type": answer_type,
            "answer": answer,
            "official_answer": str(rec["answer"]),
            "regions": regs,
        }


def _region_prompts(path: str | Path) -> dict[str, Mapping[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: region prompt file {str(path)!r} does not exist")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise common.BenchmarkError(f"{NAME}: {str(path)!r} is not valid JSON ({err})") from None
    records = value.values() if isinstance(value, Mapping) else value
    out = {}
    for k, rec in enumerate(records):
        if not isinstance(rec, Mapping) or "id" not in rec or "question_region" not in rec:
            raise common.BenchmarkError(
                f"{NAME}: region prompt {k} in {str(path)!r} needs 'id' and 'question_region'"
            )
        out[str(rec["id"])] = rec
    return out
