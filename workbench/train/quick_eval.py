"""The quick greedy evaluation a training stage runs on a few val rows when it ends (format,
accuracy and detect reward per path, next to chance). The full evaluation is `workbench.eval`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# ---------------------------------------------------------------------------------------------
# Quick evaluation


def quick_eval(model, processor, rows: Sequence[Mapping[str, Any]], paths: Sequence[str] = ("lor", "dtr"),
               max_new_tokens: int = 200, batch_size: int = 16) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Greedy completions of QA `rows` on each path, scored with `rewards.score`.

    Returns ({path: {n, format_rate, choice_accuracy, n_choice, number_accuracy, n_number,
    detect, overall}}, per-completion records). `number_accuracy` is the mean SPEC accuracy
    reward of numeric answers; `workbench eval` reports the full metric table.
    """
    from workbench import model as M
    from workbench.tasks import rewards
    metrics: dict[str, dict[str, float]] = {}
    records: list[dict] = []
    for path in paths:
        completions = M.generate(model, processor, list(rows), path, max_new_tokens=max_new_tokens, batch_size=batch_size)
        scores = []
        for row, completion in zip(rows, completions):
            s = rewards.score(completion, row["answer"], row.get("centers"), path, row.get("answer_type"))
            scores.append(s)
            records.append({"id": row["id"], "path": path, "category": row["category"], "answer_type": row["answer_type"],
                            "answer": row["answer"], "predicted": rewards.parse_answer(completion),
                            "completion": completion, **s})
        metrics[path] = _summarise(rows, scores)
    return metrics, records


def _summarise(rows, scores) -> dict[str, float | None]:
    def mean(values):
        values = list(values)
        return round(sum(values) / len(values), 4) if values else None

    choice = [s["accuracy"] for r, s in zip(rows, scores) if r["answer_type"] == "choice"]
    number = [s["accuracy"] for r, s in zip(rows, scores) if r["answer_type"] == "number"]
    detect = [s["detect"] for s in scores if "detect" in s]
    out = {"n": len(scores), "format_rate": mean(s["format"] for s in scores),
           "choice_accuracy": mean(choice), "n_choice": len(choice),
           "number_accuracy": mean(number), "n_number": len(number),
           "overall": mean(s["overall"] for s in scores)}
    if detect:
        out["detect"] = mean(detect)
    return out


def chance_choice_accuracy(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Expected accuracy of guessing a letter uniformly among each choice row's options."""
    per_row = [1.0 / len(r["choices"]) for r in rows if r["answer_type"] == "choice" and r["choices"]]
    return round(sum(per_row) / len(per_row), 4) if per_row else None
