"""Score a model's thinks from the true centers on held-out questions, next to chance and the
train median (the second table of this study's README).

    python experiments/reasoning_warmup/score.py --model runs/reason --data runs/full/data \\
        --questions 400 --seed 1 [--replies replies.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reasoning  # noqa: E402 - the study module beside this script

from workbench import model as M  # noqa: E402
from workbench.eval import metrics  # noqa: E402
from workbench.tasks import rewards  # noqa: E402
from workbench.train import examples as sft_examples  # noqa: E402


def _mean(values):
    return round(sum(values) / len(values), 3) if values else None


_WRITTEN_X = (re.compile(r"x of (.+?) = (-?\d+\.\d+)"), re.compile(r"x = (-?\d+\.\d+) \((.+?)\)"))


def written_x(reply: str) -> dict[str, float]:
    """{label: x} a left/right think states, in either think order (`reasoning.THINK_ORDERS`)."""
    found = {label: float(x) for label, x in _WRITTEN_X[0].findall(reply)}
    found.update({label: float(x) for x, label in _WRITTEN_X[1].findall(reply)})
    return found


def x_copied(prompt: str, reply: str, labels: Sequence[str]) -> list[float]:
    """For each region label of the question: 1.0 when the think states its x exactly as the
    prompt's detect block wrote it, else 0.0."""
    detected = rewards.match_centers(rewards.parse_centers(prompt[prompt.index("<detect>"):]) or {}, labels)
    stated = written_x(reply)
    return [float(label in stated and label in detected and abs(stated[label] - detected[label][0]) < 1e-9)
            for label in labels]


_NUMBER = re.compile(r"-?\d+\.\d+")


def coords_copied(prompt: str, truth: str, reply: str) -> list[float]:
    """For each number of the true think that is a coordinate of the prompt's detect block as the
    block writes it ("-0.62"), in order: 1.0 when the reply's think states the same number at the
    same place among its numbers, else 0.0. Every category's copying, not only left/right's x."""
    block = set(_NUMBER.findall(prompt[prompt.index("<detect>"):]))
    stated = _NUMBER.findall(reply.split("</think>")[0])
    return [float(i < len(stated) and stated[i] == v)
            for i, v in enumerate(_NUMBER.findall(truth.split("</think>")[0])) if v in block]


def score(model, processor, train, held, replies_path: str | None = None) -> dict:
    """{"all": {...}, category: {...}}: choice accuracy and its chance, MRA of numeric answers and
    of always answering the category's train median, the question counts, and on left/right the
    share of detected x values the think states exactly (`x_copied`); in every category the share
    of the true think's detected coordinates stated in place (`coords_copied`)."""
    options = M.prompt_options(model)
    medians = defaultdict(list)
    for row in train:
        if row["answer_type"] == "number":
            medians[row["category"]].append(float(row["answer"]))
    medians = {c: statistics.median(v) for c, v in medians.items()}
    examples = [reasoning.make_example(r, processor.tokenizer, options["system"], options["option_style"]) for r in held]
    replies = reasoning.greedy_replies(model, processor.tokenizer, examples)
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row, example, reply in zip(held, examples, replies):
        answer = rewards.parse_answer(reply)
        copied = coords_copied(example.prompt, example.reply, reply)
        cells[row["category"]]["coords_copied"] += copied
        cells["all"]["coords_copied"] += copied
        if row["category"] == "left_right":
            copied = x_copied(example.prompt, reply, [region["label"] for region in row["regions"]])
            cells["left_right"]["x_copied"] += copied
            cells["all"]["x_copied"] += copied
        for cell in (cells[row["category"]], cells["all"]):
            if row["answer_type"] == "choice":
                cell["choice"].append(float(answer is not None and rewards.normalize_choice(answer) == row["answer"]))
                cell["chance"].append(1 / len(row["choices"]))
            else:
                x = rewards.parse_number(answer) if answer else None
                cell["mra"].append(metrics.mean_relative_accuracy(x, float(row["answer"])))
                cell["median_mra"].append(metrics.mean_relative_accuracy(medians.get(row["category"]),
                                                                         float(row["answer"])))
    if replies_path:
        Path(replies_path).write_text(json.dumps([{"id": r["id"], "category": r["category"], "truth": e.reply,
                                                   "reply": rep} for r, e, rep in zip(held, examples, replies)],
                                                 indent=1), encoding="utf-8")
    return {name: {key: _mean(v) for key, v in cell.items()} | {"n_choice": len(cell["choice"]),
                                                                "n_number": len(cell["mra"])}
            for name, cell in sorted(cells.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved built-in model (e.g. from warm_reasoning.py)")
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--questions", type=int, default=400, help="val questions (a seeded sample)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replies", default=None, help="write every reply here (JSON)")
    args = parser.parse_args(argv)
    model, processor = M.load(args.model)
    splits = sft_examples.load_splits(args.data)
    result = score(model, processor, reasoning.question_rows(splits["train"]),
                   reasoning.question_rows(splits["val"], args.questions, args.seed), args.replies)
    for name, cell in result.items():
        print(name, json.dumps(cell))
    return 0


if __name__ == "__main__":
    sys.exit(main())
