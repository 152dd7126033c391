"""Paired comparison of two models on the same questions: per path (and split), how many answers
B fixed and broke relative to A, with the exact two-sided McNemar p (binomial on the discordant
pairs), plus the median DTR center error of each on the questions both answered with centers.

    python experiments/depth_ablation/paired.py EVAL_DIR A B [--other-eval DIR_B] [--by-split] [--by-views]

A and B are model labels of predictions.jsonl (e.g. grpo and language_prior). With --other-eval,
B is read from another evaluation folder of the same data (e.g. two runs of an ablation).
--by-views reports single-view and multi-view questions apart (a multi-view build, issue #24).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from workbench.eval.metrics import mcnemar_p


def load(folder: str | Path, model: str) -> dict[tuple, dict]:
    rows = {}
    for line in (Path(folder) / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["model"] == model:
            rows[(row["split"], row["id"], row["path"])] = row
    if not rows:
        raise SystemExit(f"no predictions of model {model!r} in {folder}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("eval_dir")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--other-eval", default=None, help="evaluation folder B is read from")
    parser.add_argument("--by-split", action="store_true")
    parser.add_argument("--by-views", action="store_true", help="single-view and multi-view questions apart")
    args = parser.parse_args()
    a, b = load(args.eval_dir, args.a), load(args.other_eval or args.eval_dir, args.b)
    keys = sorted(set(a) & set(b))
    groups: dict[tuple, list] = {}
    for key in keys:
        split, _, path = key
        views = ("multi-view" if int(a[key].get("views") or 1) > 1 else "single-view") if args.by_views else ""
        groups.setdefault((path, (split if args.by_split else "all") + (f", {views}" if views else "")), []).append(key)
    print(f"| path | split | n | {args.a} acc | {args.b} acc | {args.b} fixed | {args.b} broke | McNemar p | "
          f"median center m ({args.a} / {args.b}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (path, split), ks in sorted(groups.items()):
        ok_a = [bool(a[k]["correct"]) for k in ks]
        ok_b = [bool(b[k]["correct"]) for k in ks]
        fixed = sum(1 for x, y in zip(ok_a, ok_b) if y and not x)
        broken = sum(1 for x, y in zip(ok_a, ok_b) if x and not y)
        both = [k for k in ks if a[k].get("center_error_m") is not None and b[k].get("center_error_m") is not None]
        centers = (f"{statistics.median(a[k]['center_error_m'] for k in both):.2f} / "
                   f"{statistics.median(b[k]['center_error_m'] for k in both):.2f} (n={len(both)})") if both else "-"
        print(f"| {path} | {split} | {len(ks)} | {sum(ok_a) / len(ks):.3f} | {sum(ok_b) / len(ks):.3f} | {fixed} | "
              f"{broken} | {mcnemar_p(fixed, broken):.3g} | {centers} |")


if __name__ == "__main__":
    main()
