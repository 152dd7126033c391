"""EmbSpatial-Bench (hub `Phineas476/EmbSpatial-Bench`, `embspatial_bench.json`: 3,640 questions on
MP3D, AI2-THOR and ScanNet views; relations left, right, above, under, close, far).

Follows the authors' upload (card commit e2733ca): a JSON list of records with `question_id`,
`question`, `answer_options` (four texts), `answer` (0-based index), `relation`, `data_source`,
`image` (base64 JPEG; the FlagEval parquet copy calls it `image_base64` or stores an image) and
`objects` [{name, bbox: [x, y, w, h]}]. The paper evaluates two versions
(`cold-start/eval/eval_embspatial.py` and `eval_embspatial_region.py`, jiyt17/SR-REAL commit 030d782):
plain (LOR), and with the objects as regions (DTR) appended as "Relevant objects: name <mask>, ...",
falling back to plain when a box runs past the image. `regions=True` builds the region version,
each object named and followed by its mark's label and `<region>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workbench.dataset.benchmarks import common
from workbench.schema import REGION_TOKEN

NAME = "embspatial"
HUB = "FlagEval/EmbSpatial-Bench"
SPLIT = "test"
REQUIRED = ("question_id", "question", "answer_options", "answer", "relation")


def category_of(record: dict[str, Any]) -> str:
    return str(record["relation"])


RELATIONS = ("left", "right", "above", "under", "close", "far")


def items(records: list[dict[str, Any]], regions: bool = False) -> Iterator[dict[str, Any]]:
    common.check_columns(records, REQUIRED, NAME)
    if regions and not any(common.parse_literal(r.get("objects")) for r in records):
        raise common.BenchmarkError(f"{NAME}: the region version needs the records' 'objects' (boxes); this copy has none")
    for k, rec in enumerate(records):
        what = f"{NAME} record {k} (question_id {rec['question_id']!r})"
        image_value = rec.get("image", rec.get("image_base64"))
        if image_value is None:
            raise common.BenchmarkError(f"{what}: no 'image' or 'image_base64' column")
        image = common.decode_image(image_value, f"{what} image")
        options = [str(o) for o in common.parse_literal(rec["answer_options"])]
        answer = rec["answer"]
        if isinstance(answer, str) and answer.strip().isdigit():
            answer = int(answer)
        letter = common.letter_of(answer, len(options), what)
        if str(rec["relation"]) not in RELATIONS:
            raise common.BenchmarkError(f"{what}: relation {rec['relation']!r} is not one of {RELATIONS}")
        question = str(rec["question"])
        regs: list[dict[str, Any]] = []
        objects = common.parse_literal(rec.get("objects")) or []
        if regions and objects and _boxes_fit(objects, image.size):
            if len(objects) > len(common.REGION_LABELS):
                raise common.BenchmarkError(
                    f"{what}: {len(objects)} objects; at most {len(common.REGION_LABELS)} can be marked"
                )
            named = []
            for j, (obj, label) in enumerate(zip(objects, common.REGION_LABELS)):
                x, y, w, h = (float(v) for v in obj["bbox"])
                # the paper checks only x + w; a box past the bottom edge is cut to the image
                box = [max(x, 0.0), max(y, 0.0), min(x + max(w, 1.0), image.width), min(y + max(h, 1.0), image.height)]
                if not (box[0] < box[2] and box[1] < box[3]):
                    raise common.BenchmarkError(f"{what} object {j}: box {obj['bbox']!r} lies outside the image")
                regs.append({"label": label, "kind": "box", "bbox_2d": box})
                named.append(f"{obj['name']} ({label} {REGION_TOKEN})")
            question += "\nRelevant objects: " + ", ".join(named) + "."
        yield {
            "id": f"{NAME}/{rec['question_id']}",
            "benchmark": NAME,
            "category": str(rec["relation"]),
            "group": {"source": str(rec.get("data_source", "")), "version": "regions" if regs else "plain"},
            "images": [image],
            "question": question,
            "choices": options,
            "answer_type": "choice",
            "answer": letter,
            "official_answer": letter,
            "regions": regs,
        }


def _boxes_fit(objects: list[Any], size: tuple[int, int]) -> bool:
    """The paper's check before it uses the boxes: every x + w within the image width (its
    region script falls back to the plain question otherwise)."""
    try:
        return all(float(o["bbox"][0]) + float(o["bbox"][2]) <= size[0] for o in objects)
    except (KeyError, TypeError, ValueError, IndexError):
        raise common.BenchmarkError(
            f"{NAME}: objects must be [{{name, bbox: [x, y, w, h]}}], got {str(objects)[:80]!r}"
        ) from None
