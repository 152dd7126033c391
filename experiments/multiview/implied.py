"""Implied answers of cross-view DTR predictions written before evaluations carried each frame's
pose (issue #24): the single-view rule applied to the model's own centers in the frame its detect
block names, the poses read from the dataset. Newer evaluations hold `implied_answer` themselves
(`workbench.eval.metrics.score_prediction`), and `workbench.eval.diagnostics.diagnose` splits them.

    python experiments/multiview/implied.py EVAL_DIR DATA_DIR

Prints, per model and cross-view category: questions, right answers, detect blocks naming the
question's reference frame, rows whose centers imply an answer, implied right, stated answer equal
to the implied one, and reasoning errors (implied right, answer wrong).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from workbench.eval.metrics import score_prediction
from workbench.tasks import crossview, rewards
from workbench.train.examples import load_splits

SPLITS = ("val", "test", "test_ood")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_dir")
    parser.add_argument("data_dir")
    args = parser.parse_args()
    dd = load_splits(args.data_dir)
    rows = {}  # cross-view rows by id: their frames' poses and the frame they require
    for split in SPLITS:
        ds = dd[split].select_columns(["id", "view_poses", "category", "reference_frame", "region_frames"])
        for row in ds:
            if row["category"] in crossview.AS_SINGLE:
                rows[row["id"]] = row
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for line in (Path(args.eval_dir) / "predictions.jsonl").read_text().splitlines():
        pred = json.loads(line)
        if pred["path"] != "dtr" or pred["id"] not in rows:  # asked on DTR (not "auto")
            continue
        row = rows[pred["id"]]
        p = score_prediction({**pred, "view_poses": row["view_poses"]})
        c = counts[(pred["model"], pred["category"])]
        c["n"] += 1
        c["right"] += bool(p["correct"])
        c["frame_named_right"] += crossview.reference_frame(row) == _named(p)
        if p["implied_correct"] is not None:
            c["implied"] += 1
            c["implied_right"] += bool(p["implied_correct"])
            c["agrees"] += bool(p["implied_agrees"])
            c["reasoning_error"] += bool(p["implied_correct"] and not p["correct"])
    print("| model | category | n | right | frame named right | implied | implied right | agrees | reasoning errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, cat), c in sorted(counts.items()):
        print(f"| {model} | {cat} | {c['n']} | {c['right']} | {c['frame_named_right']} | {c['implied']} | "
              f"{c['implied_right']} | {c['agrees']} | {c['reasoning_error']} |")


def _named(p: dict) -> int | None:
    return rewards.reference_frame(rewards.completion_text(p.get("completion")) or "")


if __name__ == "__main__":
    main()
