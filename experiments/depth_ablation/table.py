"""The ablation table of issue #19 from evaluation folders: one line per (run, model, path), the
val / test / test_ood values of DTR center error, number MRA and choice accuracy, with n.

    python experiments/depth_ablation/table.py LABEL=EVAL_DIR [LABEL=EVAL_DIR ...] [--models sft,grpo,language_prior]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SPLITS = ("val", "test", "test_ood")
COLUMNS = (("center_error_m", "center m"), ("number_mra", "MRA"), ("choice_accuracy", "choice"))


def rows(metrics: list[dict], model: str, path: str) -> dict[str, dict]:
    return {m["split"]: m for m in metrics if m["model"] == model and m["path"] == path and m["category"] == "all"}


def fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=EVAL_DIR (a folder holding metrics.json)")
    parser.add_argument("--models", default="sft,grpo,language_prior,chance")
    args = parser.parse_args()
    header = "| run | model | path | " + " | ".join(f"{name} (val / test / ood)" for _, name in COLUMNS) + " | n |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        for model in args.models.split(","):
            for path in ("lor", "dtr"):
                by_split = rows(metrics, model, path)
                if not by_split:
                    continue
                cells = [" / ".join(fmt(by_split.get(s, {}).get(key)) for s in SPLITS) for key, _ in COLUMNS]
                n = " / ".join(str(by_split.get(s, {}).get("n", "-")) for s in SPLITS)
                print(f"| {label} | {model} | {path} | " + " | ".join(cells) + f" | {n} |")


if __name__ == "__main__":
    main()
