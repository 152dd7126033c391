"""The per-axis read-out of DTR predictions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import axes  # noqa: E402


def test_matched_pairs_read_dtr_regions_of_one_model_and_axis_line_names_the_failing_axis(tmp_path):
    rows = [
        {"model": "sft", "path": "dtr", "gt_centers": json.dumps({"red box": [0, 0, 2], "blue box": [1, 0, 3]}),
         "matched_centers": {"red box": [0.1, 0.0, 2.9], "blue box": [1.0, 0.1, 2.0]}},
        {"model": "sft", "path": "dtr", "gt_centers": {"red box": [-1, 0.5, 4]}, "matched_centers": {"red box": [-1, 0.5, 3.0]}},
        {"model": "sft", "path": "lor", "gt_centers": {"red box": [9, 9, 9]}, "matched_centers": {"red box": [0, 0, 0]}},
        {"model": "grpo", "path": "dtr", "gt_centers": {"red box": [9, 9, 9]}, "matched_centers": {"red box": [0, 0, 0]}},
        {"model": "sft", "path": "dtr", "gt_centers": {"red box": [0, 0, 1]}, "matched_centers": {}},
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    predicted, truth = axes.matched_pairs(path, "sft")
    assert predicted.shape == truth.shape == (3, 3)
    assert np.allclose(truth[:, 2], [2, 3, 4])
    line = axes.axis_line(predicted, truth)
    assert line.startswith("x 0.00 m") and "z 1.00 m" in line  # errors 0.9, 1.0, 1.0
