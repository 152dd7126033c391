"""SpatialRGPT-Bench (hub `a8cheng/SpatialRGPT-Bench`, `SpatialRGPT-Bench_v1.json`, ~1,400 questions on
Omni3D images; regions given as masks): qualitative relations (left/right, above/below,
tall/short, wide/thin, big/small, behind/front) and quantitative ones (distances, sizes, direction).

Follows the fields the official evaluation reads (`llava/eval/eval_spatial.py` of
AnjieCheng/SpatialRGPT, commit cfa293c): `id`, `image_info.file_path` (under the Omni3D image
folder; a parquet copy has an `image` column instead), `conversations` (human turns with one
`<mask>` per region, in order; each followed by the reference answer), `rle` (COCO RLE masks, what
the official run uses), `bbox` ([x1, y1, x2, y2], its fallback) and `qa_info` {type, category}.
Each human turn is one item; its `<mask>` tokens become region labels followed by `<region>`, every
item goes to DTR. Distances and sizes become numbers in metres (inch 0.0254, foot 0.3048, cm 0.01,
as the official judge prompt converts them); direction and qualitative answers stay text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.dataset.benchmarks import common

NAME = "spatialrgpt"
HUB = "a8cheng/SpatialRGPT-Bench"
SPLIT = "val"
REQUIRED = ("id", "conversations", "qa_info")


def category_of(record: dict[str, Any]) -> str:
    return str((common.parse_literal(record["qa_info"]) or {}).get("category", ""))


QUANTITATIVE = (
    "distance_data",
    "horizontal_distance_data",
    "vertical_distance_data",
    "width_data",
    "height_data",
)
DIRECTION = "direction"


def items(records: list[dict[str, Any]], image_root: str | Path | None = None) -> Iterator[dict[str, Any]]:
    common.check_columns(records, REQUIRED, NAME)
    root = None if image_root is None else Path(image_root)
    for k, rec in enumerate(records):
        what = f"{NAME} record {k} (id {rec['id']!r})"
        info = common.parse_literal(rec.get("image_info")) or {}
        if rec.get("image") is not None:
            image = common.decode_image(rec["image"], f"{what} image")
        elif info.get("file_path"):
            path = Path(info["file_path"]) if root is None else root / info["file_path"]
            if not path.is_file():
                raise FileNotFoundError(
                    f"{what}: image {str(path)!r} does not exist (pass the Omni3D image folder as image_root)"
                )
            image = common.decode_image(str(path), f"{what} image")
        else:
            raise common.BenchmarkError(f"{what}: neither an 'image' column nor image_info.file_path")
        boxes = _region_boxes(rec, image.size, what)
        qa = common.parse_literal(rec["qa_info"])
        qa_type, category = str(qa.get("type", "")), str(qa.get("category", ""))
        if qa_type not in ("qualitative", "quantitative"):
            raise common.BenchmarkError(
                f"{what}: qa_info.type {qa_type!r} is not qualitative or quantitative"
            )
        turns = common.parse_literal(rec["conversations"])
        for t in range(len(turns) // 2):
            human, gold = str(turns[2 * t]["value"]), str(turns[2 * t + 1]["value"])
            question = human.replace("<image>", "").strip()
            text, labels = common.region_phrases(question, "<mask>")
            if len(labels) > len(boxes):
                raise common.BenchmarkError(f"{what} turn {t}: {len(labels)} <mask> but {len(boxes)} regions")
            regions = [{"label": lab, "kind": "box", "bbox_2d": box} for lab, box in zip(labels, boxes)]
            if category in QUANTITATIVE:
                metres = common.metres_in(gold)
                if metres is None and re.search(r"\bno (vertical |horizontal )?distance\b", gold, re.I):
                    metres = 0.0
                if metres is None:
                    raise common.BenchmarkError(f"{what} turn {t}: no length in the reference answer {gold!r}")
                answer_type, answer = "number", repr(float(metres))
            else:
                answer_type, answer = "text", gold
                text += "\n" + instruction(category)
            yield {
                "id": f"{NAME}/{rec['id']}" + (f"/{t}" if len(turns) > 2 else ""),
                "benchmark": NAME,
                "category": category,
                "group": {"type": qa_type},
                "images": [image],
                "question": text,
                "choices": [],
                "answer_type": answer_type,
                "answer": answer,
                "official_answer": gold,
                "regions": regions,
            }


def instruction(category: str) -> str:
    """What a text answer should look like, appended to the question: the workbench's system prompt
    asks for an option letter or a number, which these categories' rules cannot read."""
    if category == DIRECTION:
        return "Answer with a clock direction, e.g. 3 o'clock."
    if "choice" in category:
        return "Answer with the label of the region."
    return "Answer yes or no."


def _region_boxes(rec: dict[str, Any], size: tuple[int, int], what: str) -> list[list[float]]:
    """One pixel box per region: the box around its RLE mask (whose size must be the image's),
    else its `bbox`."""
    w, h = size
    masks = common.parse_literal(rec.get("rle")) or []
    if masks:
        boxes = []
        for j, rle in enumerate(masks):
            mask = common.decode_rle(rle, f"{what} mask {j}")
            if mask.shape != (h, w):
                raise common.BenchmarkError(
                    f"{what}: region mask {j} is {mask.shape[1]}x{mask.shape[0]}, the image is {w}x{h}"
                )
            boxes.append([float(v) for v in common.mask_box(mask, f"{what} mask {j}")])
        return boxes
    return [
        common.check_box(b, size, f"{what} bbox {j}")
        for j, b in enumerate(common.parse_literal(rec.get("bbox")) or [])
    ]
