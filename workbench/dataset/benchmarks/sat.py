"""SAT, Spatial Aptitude Training (hub `array/SAT`, split `test`: 150 questions on real images, one or
two images each: ego and object movement, action consequence, goal aiming, perspective).

Follows the dataset card (revision bda5dde): columns `image_bytes` (a list of images), `question`,
`answers` (option texts), `question_type`, `correct_answer` (the text of the right option). The
card asks for shuffled options or a circular evaluation. The paper's script
(`cold-start/eval/eval_sat.py`, jiyt17/SR-REAL commit 030d782) shuffles them with seed 42 in each of
its 8 worker processes (`eval.sh`); `paper_orders` reproduces that order exactly and `load` applies
it (without it, each item's order is a shuffle seeded by `seed` and the item's position). `circular=True` adds each
item once more with the options reversed (the SAT authors' circular evaluation: the two copies are
scored apart).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from workbench.dataset.benchmarks import common

NAME = "sat"
HUB = "array/SAT"
SPLIT = "test"
REQUIRED = ("image_bytes", "question", "answers", "question_type", "correct_answer")


ORDER = "__order__"
WORLD_SIZE = 8
"""Worker processes of the paper's SAT run (`eval.sh`: torchrun with 8 processes)."""


def paper_orders(records: list[dict[str, Any]], seed: int = 42, world_size: int = WORLD_SIZE) -> None:
    """Give each record (in place, under `ORDER`) the option order of the paper's run: worker r
    takes records r, r + 8, ... in turn, seeds Python's random with 42 once, then shuffles each
    record's answers in that order. Call it on the whole benchmark, before a sample is taken."""
    for rank in range(world_size):
        rng = random.Random(seed)
        for k in range(rank, len(records), world_size):
            order = [str(a) for a in common.parse_literal(records[k]["answers"])]
            rng.shuffle(order)
            records[k][ORDER] = order


def category_of(record: dict[str, Any]) -> str:
    return str(record["question_type"])


def items(records: list[dict[str, Any]], seed: int = 42, circular: bool = False) -> Iterator[dict[str, Any]]:
    common.check_columns(records, REQUIRED, NAME)
    for k, rec in enumerate(records):
        k = rec.get(common.INDEX, k)  # the position in the whole benchmark when `load` took a sample
        what = f"{NAME} record {k}"
        answers = [str(a) for a in common.parse_literal(rec["answers"])]
        correct = str(rec["correct_answer"])
        if correct not in answers:
            raise common.BenchmarkError(
                f"{what}: correct_answer {correct!r} is not one of the answers {answers!r}"
            )
        if not 2 <= len(answers) <= len(common.LETTERS):
            raise common.BenchmarkError(f"{what}: needs 2-{len(common.LETTERS)} answers, got {answers!r}")
        raw = rec["image_bytes"] if isinstance(rec["image_bytes"], list) else [rec["image_bytes"]]
        images = [common.decode_image(img, f"{what} image {j}") for j, img in enumerate(raw)]
        order = rec.get(ORDER) or list(answers)
        if ORDER not in rec:
            random.Random(f"{seed}|{k}").shuffle(order)
        orders = [("", order)] + ([("/reversed", order[::-1])] if circular else [])
        for suffix, choices in orders:
            letter = common.LETTERS[choices.index(correct)]
            yield {
                "id": f"{NAME}/{k}{suffix}",
                "benchmark": NAME,
                "category": str(rec["question_type"]),
                "group": {"order": "reversed" if suffix else "shuffled"},
                "images": images,
                "question": str(rec["question"]),
                "choices": choices,
                "answer_type": "choice",
                "answer": letter,
                "official_answer": letter,
                "regions": [],
            }
