"""The reward lab and the before / after comparison of GRPO: small helpers for the notebook, no training.
Taught in `notebooks/04_grpo.ipynb` (reward lab, threshold sweep, before and after RL).

Nothing here runs TRL: completions are scored with `rewards.score` exactly as the GRPO reward
functions score them (`score_row`), hand-written variants of a row's target break one thing at a
time (`example_completions`), `sample_groups` samples a first-step group per prompt with the
rollout settings of a `grpo_settings.GRPOSettings`, `kept_fraction` applies the dynamic-sampling filter
(`dynamic_sampling.group_kept`) to those groups, and `compare_completions` scores greedy answers
of several model folders side by side.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

from workbench import model as model_mod
from workbench.schema import PATHS, QA_TASKS
from workbench.tasks import rewards as rewards_mod
from workbench.train.dynamic_sampling import group_kept
from workbench.train.grpo_settings import GRPOSettings


def score_row(completion: str | None, row: dict, path: str | None = None, settings=None) -> dict[str, float]:
    """`rewards.score` of a completion against a dataset row, on `path` (default: the row's)."""
    return rewards_mod.score(
        completion, row["answer"], row.get("centers"), path or row["path"], row.get("answer_type"), settings
    )


def lab_rows(split) -> list[dict]:
    """Rows of a split for the reward lab: one DTR question (numeric if there is one) and one LOR question."""
    meta = split.select_columns(["task", "path", "answer_type"]).to_list()  # no image decoding
    qa = [i for i, r in enumerate(meta) if r["task"] in QA_TASKS]
    dtr = sorted(
        (i for i in qa if meta[i]["path"] == "dtr"), key=lambda i: meta[i]["answer_type"] != "number"
    )
    lor = [i for i in qa if meta[i]["path"] == "lor"]
    return [split[i] for i in dtr[:1] + lor[:1]]


def example_completions(row: dict) -> dict[str, str]:
    """Hand-written completions of one QA row for the reward lab: its own target on its path and
    variants that each break one thing (answer, centers, tags, white space, units).

    >>> row = {"path": "lor", "answer": "B", "answer_type": "choice",
    ...        "lor_target": "<think>t</think>\\n<answer>B</answer>", "dtr_target": ""}
    >>> {k: score_row(c, row)["overall"] for k, c in example_completions(row).items()}["wrong answer"]
    0.2
    """
    target = row["dtr_target"] if row["path"] == "dtr" else row["lor_target"]
    answer = str(row["answer"])

    def answer_as(text: str) -> str:
        head, sep, tail = target.rpartition("<answer>")
        return head + sep + text + "</answer>" + tail.partition("</answer>")[2]

    if row.get("answer_type") == "number":
        wrong, loose = f"{float(answer) * 1.5 + 0.5:.2f}", f"{answer} m"
        near = f"{float(answer) * 1.1:.2f}"
        cases = {"number 10% off": answer_as(near), "answer with a unit": answer_as(loose)}
    else:
        wrong = "A" if answer.upper() != "A" else "B"
        cases = {"(b) for B: case and parentheses": answer_as(f"({answer.lower()})")}
    out = {"target": target, "wrong answer": answer_as(wrong), **cases}
    out["spaces around tags"] = target.replace("<answer>", "< answer >").replace("</think>", "</ think >")
    out["no </think>"] = target.replace("</think>", "", 1)
    out["answer only"] = f"<answer>{answer}</answer>"
    if row["path"] == "dtr":

        def shifted(match, dx: float) -> str:
            x, y, z = (float(v) for v in match.group(1).split(","))
            return f'center="{x + dx:.2f},{y:.2f},{z:.2f}"'

        for dx in (0.15, 0.35, 0.8):
            out[f"centers {dx:.2f} m off"] = re.sub(
                r'center="([^"]*)"', lambda m, dx=dx: shifted(m, dx), target
            )
        out["LOR format on the DTR path"] = row["lor_target"]
    return out


def sample_groups(model, processor, rows: Sequence[dict], settings: GRPOSettings) -> list[dict]:
    """What GRPO would see at its first step: `settings.num_generations` sampled completions of each
    row on its path (temperature / top_p / max_completion_length of `settings`), scored.

    Returns one dict per row: {"id", "path", "completions", "scores" (overall each), "mean", "std"}.
    """
    out = []
    for path in PATHS:
        subset = [r for r in rows if r["path"] == path]
        if not subset:
            continue
        repeated = [r for r in subset for _ in range(settings.num_generations)]
        texts = model_mod.generate(
            model,
            processor,
            repeated,
            path=path,
            max_new_tokens=settings.max_completion_length,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
        )
        g = settings.num_generations
        for i, row in enumerate(subset):
            group = texts[i * g : (i + 1) * g]
            scores = [score_row(t, row, path, settings.reward_settings())["overall"] for t in group]
            mean = sum(scores) / g
            std = math.sqrt(sum((x - mean) ** 2 for x in scores) / (g - 1))
            out.append(
                {
                    "id": row["id"],
                    "path": path,
                    "completions": group,
                    "scores": scores,
                    "mean": mean,
                    "std": std,
                }
            )
    return out


def kept_fraction(means: Sequence[float], low: float, high: float) -> float:
    """Share of groups with these mean rewards that dynamic sampling keeps for (low, high).

    >>> kept_fraction([0.0, 0.5, 1.0, 0.3], 0.2, 0.99)
    0.5
    """
    return sum(group_kept(m, low, high) for m in means) / len(means) if means else float("nan")


def compare_completions(
    models: dict[str, str | os.PathLike], rows: Sequence[dict], max_new_tokens: int = 256
) -> list[dict]:
    """Greedy completions of `rows` (each on its own path) by each model folder, scored: one dict per
    (model, row) with the completion and its reward components (before / after RL in notebook 04)."""
    out = []
    for name, folder in models.items():
        net, processor = model_mod.load(folder)
        for path in PATHS:
            subset = [r for r in rows if r["path"] == path]
            if not subset:
                continue
            texts = model_mod.generate(net, processor, subset, path=path, max_new_tokens=max_new_tokens)
            for row, text in zip(subset, texts):
                out.append(
                    {
                        "model": name,
                        "id": row["id"],
                        "path": path,
                        "completion": text,
                        **score_row(text, row, path),
                    }
                )
    return out
