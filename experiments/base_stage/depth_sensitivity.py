"""Does a model's grounding follow the depth? Greedy region -> 3D center answers of val regions
(`workbench.train.base.grounding_rows`) with the rows' depth, with every depth map scaled by 1.5
(the scene moved away: z should grow by half) and without depth; per-axis errors of the first.

    python experiments/base_stage/depth_sensitivity.py MODEL_DIR DATA_DIR [--rows 160]
"""

from __future__ import annotations

import argparse

import numpy as np


def written_centers(model, processor, rows) -> np.ndarray:
    """(n, 3) centers the model writes for grounding rows (NaN where none parses)."""
    from workbench.train import base

    _, records = base.grounding_eval(model, processor, rows)
    return np.array([rec["predicted"] or [np.nan] * 3 for rec in records], dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--rows", type=int, default=160)
    args = parser.parse_args()
    from workbench import model as M
    from workbench import schema
    from workbench.train import base
    from workbench.train.examples import load_splits

    model, processor = M.load(args.model)
    rows = base.grounding_rows(load_splits(args.data, ("val",))["val"], args.rows, seed=0)
    truth = np.array([next(iter(schema.centers_of(r).values())) for r in rows])
    real = written_centers(model, processor, rows)
    far = written_centers(model, processor, [{**r, "depth": (np.asarray(r["depth"], np.float32) * 1.5).tolist()}
                                             for r in rows])
    blind = written_centers(model, processor, [{**r, "depth": None} for r in rows])
    ok = ~np.isnan(real).any(1)
    for i, axis in enumerate("xyz"):
        error = np.median(np.abs(real[ok, i] - truth[ok, i]))
        print(f"{axis}: median error {error:.3f} m, r {np.corrcoef(real[ok, i], truth[ok, i])[0, 1]:.2f}")
    print(f"median 3D error {np.median(np.linalg.norm(real[ok] - truth[ok], axis=1)):.3f} m over {ok.sum()}/{len(rows)}")
    print(f"depth x1.5: written z grows by {np.nanmean(far[:, 2] / real[:, 2]) - 1:+.1%} (a model that reads depth: +50%)")
    both = ok & ~np.isnan(blind).any(1)
    print(f"without depth: z r {np.corrcoef(blind[both, 2], truth[both, 2])[0, 1]:.2f} "
          f"(with depth {np.corrcoef(real[both, 2], truth[both, 2])[0, 1]:.2f})")


if __name__ == "__main__":
    main()
