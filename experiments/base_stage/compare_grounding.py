"""Two base models' region -> 3D center grounding on the same val regions, paired: the median error
of each, and how many regions each gets closer, with a two-sided sign test.

    python experiments/base_stage/compare_grounding.py MODEL_A MODEL_B DATA_DIR [--rows 400]

Used for the base stage's length (issue #19): 1,000 against 2,000 grounding steps.
"""

from __future__ import annotations

import argparse
import statistics


def errors(model_dir: str, rows: list[dict]) -> list[float | None]:
    from workbench import model as M
    from workbench.train import base

    model, processor = M.load(model_dir)
    _, records = base.grounding_eval(model, processor, rows)
    return [rec["error_m"] for rec in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_a")
    parser.add_argument("model_b")
    parser.add_argument("data")
    parser.add_argument("--rows", type=int, default=400)
    args = parser.parse_args()
    from workbench.eval.metrics import mcnemar_p
    from workbench.train import base
    from workbench.train.examples import load_splits

    rows = base.grounding_rows(load_splits(args.data, ("val",))["val"], args.rows, seed=0)
    a, b = errors(args.model_a, rows), errors(args.model_b, rows)
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    a_closer = sum(x < y for x, y in both)
    b_closer = sum(y < x for x, y in both)
    for name, errs in (("A", a), ("B", b)):
        parsed = [e for e in errs if e is not None]
        print(f"{name}: median {statistics.median(parsed):.3f} m, within 0.15 m {sum(e < 0.15 for e in parsed) / len(errs):.2f}"
              f" ({len(parsed)}/{len(errs)} parsed)")
    print(f"paired over {len(both)} regions: A closer on {a_closer}, B closer on {b_closer}, "
          f"sign test p = {mcnemar_p(a_closer, b_closer):.2g}")


if __name__ == "__main__":
    main()
