"""Two base models' region -> 3D center grounding on the same val regions, paired: the median error
of each, and how many regions each gets closer, with a two-sided sign test.

    python experiments/base_stage/compare_grounding.py MODEL_A MODEL_B DATA_DIR [--rows 400] [--task ground_frame]

Used for the base stage's length (issue #19): 1,000 against 2,000 grounding steps; with `--task
ground_frame`, regions of multi-view questions grounded in a named frame (issue #24), reported
also apart for the region's own frame and the other one.
"""

from __future__ import annotations

import argparse
import statistics


def errors(model_dir: str, rows: list[dict], max_new_tokens: int = 48) -> list[float | None]:
    from workbench import model as M
    from workbench.train import base

    model, processor = M.load(model_dir)
    _, records = base.grounding_eval(model, processor, rows, max_new_tokens=max_new_tokens)
    return [rec["error_m"] for rec in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("data")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--task", default="ground_3d", choices=("ground_3d", "ground_frame"))
    args = parser.parse_args()
    from workbench.eval.metrics import mcnemar_p
    from workbench.train import base
    from workbench.train.examples import load_splits

    rows = base.grounding_rows(load_splits(args.data, ("val",))["val"], args.rows, seed=0, task=args.task)
    budget = 80 if args.task == "ground_frame" else 48  # the frame's detect opening is ~25 tokens more
    a, b = errors(args.model_a, rows, budget), errors(args.model_b, rows, budget)
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    a_closer = sum(x < y for x, y in both)
    b_closer = sum(y < x for x, y in both)
    groups = {"all": [True] * len(rows)}
    if args.task == "ground_frame":
        own = [row["reference_frame"] == row["region_frames"][0] for row in rows]
        groups.update({"own frame": own, "other frame": [not o for o in own]})
    for name, errs in (("A", a), ("B", b)):
        for group, keep in groups.items():
            picked = [e for e, k in zip(errs, keep) if k]
            parsed = [e for e in picked if e is not None]
            median = f"{statistics.median(parsed):.3f} m" if parsed else "-"
            within = sum(e < 0.15 for e in parsed) / max(len(picked), 1)
            print(f"{name} {group}: median {median}, within 0.15 m {within:.2f} ({len(parsed)}/{len(picked)} parsed)")
    print(f"paired over {len(both)} regions: A closer on {a_closer}, B closer on {b_closer}, "
          f"sign test p = {mcnemar_p(a_closer, b_closer):.2g}")


if __name__ == "__main__":
    main()
