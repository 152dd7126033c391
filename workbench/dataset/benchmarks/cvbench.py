"""CV-Bench (hub `nyu-visionx/CV-Bench`, split `test`: 2,638 questions; Count and Relation on ADE20K
and COCO images (2D), Depth and Distance on Omni3D images (3D)).

Follows the dataset card (main after the "separate out 2d/3d" commit, bc284db): columns `idx`,
`type` (2D | 3D), `task`, `image`, `question`, `choices` (option texts), `answer` ("(C)"),
`source` (ADE20K | COCO | Omni3D); the card's score groups by `source`. The paper's script
(`cold-start/eval/eval_cvbench.py`, jiyt17/SR-REAL commit 030d782) asks the dataset's `prompt`,
which is the question followed by the same options. No regions: every item goes to LOR.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workbench.dataset.benchmarks import common

NAME = "cvbench"
HUB = "nyu-visionx/CV-Bench"
SPLIT = "test"
REQUIRED = ("idx", "type", "task", "image", "question", "choices", "answer", "source")


def category_of(record: dict[str, Any]) -> str:
    return str(record["task"])


SOURCES = ("ADE20K", "COCO", "Omni3D")


def items(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    common.check_columns(records, REQUIRED, NAME)
    for k, rec in enumerate(records):
        what = f"{NAME} record {k} (idx {rec['idx']!r})"
        choices = [str(c) for c in common.parse_literal(rec["choices"])]
        if len(choices) < 2 or len(choices) > len(common.LETTERS):
            raise common.BenchmarkError(f"{what}: needs 2-{len(common.LETTERS)} choices, got {choices!r}")
        gold = str(rec["answer"]).strip()
        letter = gold.strip("()").upper()
        if len(letter) != 1 or letter not in common.LETTERS[: len(choices)]:
            raise common.BenchmarkError(
                f"{what}: answer {gold!r} is not one of the options (A)-({common.LETTERS[len(choices) - 1]})"
            )
        if str(rec["source"]) not in SOURCES:
            raise common.BenchmarkError(f"{what}: source {rec['source']!r} is not one of {SOURCES}")
        yield {
            "id": f"{NAME}/{rec['idx']}",
            "benchmark": NAME,
            "category": str(rec["task"]),
            "group": {"type": str(rec["type"]), "source": str(rec["source"])},
            "images": [common.decode_image(rec["image"], f"{what} image")],
            "question": str(rec["question"]),
            "choices": choices,
            "answer_type": "choice",
            "answer": letter,
            "official_answer": gold,
            "regions": [],
        }
