"""Per-axis errors of DTR's written centers: for each (evaluation folder, model), the median
absolute error and the correlation with the truth of x, y and z over every matched region of the
DTR predictions. Which axis a model fails on says where its 3D information stops.

    python experiments/base_stage/axes.py EVAL_DIR::MODEL [EVAL_DIR::MODEL ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def matched_pairs(predictions: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) centers, one row per matched region of `model`'s DTR predictions."""
    predicted, truth = [], []
    with open(predictions, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["model"] != model or row["path"] != "dtr":
                continue
            gt = row["gt_centers"]
            gt = json.loads(gt) if isinstance(gt, str) else gt
            for label, xyz in (row.get("matched_centers") or {}).items():
                if label in gt and xyz is not None:
                    predicted.append(xyz)
                    truth.append(gt[label])
    return np.asarray(predicted, dtype=float).reshape(-1, 3), np.asarray(truth, dtype=float).reshape(-1, 3)


def axis_line(predicted: np.ndarray, truth: np.ndarray) -> str:
    """`x 0.13 m (r 0.82), y ..., z ...` for matched centers.

    >>> t = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 2.0], [2.0, 0.5, 3.0]])
    >>> axis_line(t + [0.1, 0.0, 0.5], t)
    'x 0.10 m (r 1.00), y 0.00 m (r 1.00), z 0.50 m (r 1.00)'
    """
    parts = []
    for i, axis in enumerate("xyz"):
        error = float(np.median(np.abs(predicted[:, i] - truth[:, i])))
        r = float(np.corrcoef(predicted[:, i], truth[:, i])[0, 1])
        parts.append(f"{axis} {error:.2f} m (r {r:.2f})")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="+", help="EVAL_DIR::MODEL")
    args = parser.parse_args()
    print("| evaluation | model | regions | x | y | z |\n|---|---|---|---|---|---|")
    for spec in args.specs:
        folder, model = spec.split("::")
        predicted, truth = matched_pairs(Path(folder) / "predictions.jsonl", model)
        cells = axis_line(predicted, truth).split(", ")
        print(f"| {folder} | {model} | {len(predicted)} | " + " | ".join(c.split(" ", 1)[1] for c in cells) + " |")


if __name__ == "__main__":
    main()
