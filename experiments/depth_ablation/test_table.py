"""The ablation table reads evaluation folders as `workbench eval` writes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_table_lists_each_model_and_path_with_all_splits(tmp_path):
    metrics = [
        {"model": "sft", "path": "dtr", "split": s, "category": "all", "n": 200, "center_error_m": e,
         "number_mra": 0.5, "choice_accuracy": 0.9}
        for s, e in (("val", 0.12), ("test", 0.14), ("test_ood", 0.3))
    ] + [{"model": "sft", "path": "dtr", "split": "val", "category": "left_right", "n": 50,
          "center_error_m": 9.0, "number_mra": None, "choice_accuracy": 0.1}]
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    script = Path(__file__).with_name("table.py")
    out = subprocess.run([sys.executable, str(script), f"metric={tmp_path}"], capture_output=True, text=True,
                         check=True).stdout
    assert "| metric | sft | dtr | 0.12 / 0.14 / 0.30 | 0.50 / 0.50 / 0.50 | 0.90 / 0.90 / 0.90 | 200 / 200 / 200 |" in out
    assert "9.00" not in out  # per-category rows are not the overall line
