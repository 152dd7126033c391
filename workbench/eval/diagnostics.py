"""Where the errors come from: perception (the model's own centers already imply a wrong answer)
or reasoning (they imply the right one and the answer disagrees), the largest center errors, and
right answers reached with wrong geometry. Taught in `notebooks/05_evaluate.ipynb` and
`notebooks/06_traces_3d.ipynb`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# ----------------------------------------------------------------------------- diagnostics


def diagnose(scored: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Perception vs reasoning errors of the DTR predictions, per model x path x split.

    Over the rows whose detected centers imply an answer (`implied_answer` not None):
    `right_right_geometry` (answer right, centers imply it too), `right_wrong_geometry`
    (answer right although its own centers imply another: luck or a shortcut),
    `reasoning_error` (answer wrong although its centers imply the right one),
    `perception_error` (answer wrong and the centers imply a wrong answer), as shares of
    `n_implied`; `n_dtr` counts every row asked on DTR. Single- and multi-view questions apart
    (`views`: single_view | multi_view; a cross-view row's centers imply its answer in the frame
    its detect block names, `metrics.score_prediction`)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for p in scored:
        if p.get("resolved_path") == "dtr":
            views = "multi_view" if int(p.get("views") or 1) > 1 else "single_view"
            groups.setdefault((str(p["model"]), p["path"], p["split"], views), []).append(p)
    out = []
    for (model, path, split, views), rows in groups.items():
        implied = [p for p in rows if p.get("implied_correct") is not None]
        n = len(implied)
        counts = {
            "right_right_geometry": sum(bool(p["correct"] and p["implied_correct"]) for p in implied),
            "right_wrong_geometry": sum(bool(p["correct"] and not p["implied_correct"]) for p in implied),
            "reasoning_error": sum(bool(not p["correct"] and p["implied_correct"]) for p in implied),
            "perception_error": sum(bool(not p["correct"] and not p["implied_correct"]) for p in implied),
            "implied_answer_agreement": sum(bool(p["implied_agrees"]) for p in implied),
        }
        shares = {k: (v / n if n else None) for k, v in counts.items()}
        out.append(
            {"model": model, "path": path, "split": split, "views": views, "n_dtr": len(rows), "n_implied": n,
             **shares}
        )
    return out


def largest_center_errors(scored: Iterable[Mapping[str, Any]], k: int = 6, **where: Any) -> list[dict]:
    """The `k` predictions with the largest mean center error (filter with keyword columns)."""
    rows = [p for p in _where(scored, where) if p.get("center_error_m") is not None]
    return sorted(rows, key=lambda p: -p["center_error_m"])[:k]


def right_with_wrong_geometry(
    scored: Iterable[Mapping[str, Any]], min_error_m: float = 0.3, **where: Any
) -> list[dict]:
    """Right answers whose detected geometry is wrong: a matched center off by at least
    `min_error_m`, or centers that imply a wrong answer. Largest error first."""
    rows = [
        p
        for p in _where(scored, where)
        if p.get("correct")
        and (
            any(d >= min_error_m for d in (p.get("center_errors") or {}).values())
            or p.get("implied_correct") is False
        )
    ]
    return sorted(rows, key=lambda p: -(p.get("center_error_m") or 0.0))


def _where(rows: Iterable[Mapping[str, Any]], where: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in rows if all(v is None or r.get(k) == v for k, v in where.items())]
