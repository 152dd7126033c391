"""Evaluation (SPEC section 7): batched greedy generation, metrics, baselines, `workbench eval`.

    workbench eval --model DIR [--model DIR2 ...] --data DIR --out DIR [--splits test,test_ood]
                   [--paths lor,dtr,auto] [--profile P] [--baselines chance,oracle,language_prior]
    workbench eval --rescore DIR/predictions.jsonl --out DIR2 [--center-reward exp]   # offline

How it works:
1. Rows. The QA rows (`schema.QA_TASKS`) of each chosen split; with `max_examples`, a
   round-robin over categories in dataset order, so a small budget still covers every category.
2. Completions. Greedy, batched with left padding, one `model.generate` per batch
   (`workbench.model.generate`); rows of one path are sorted by question length so a batch
   pads little, and images are decoded a batch at a time (`ImageReader`). `auto` asks each row on `dtr` if it has regions, else on `lor`; since greedy
   decoding is deterministic, an `auto` completion is the `lor` / `dtr` completion of the
   same row when that path is evaluated too (generated once, reported under both paths).
3. Prediction rows (`predictions.jsonl`, one per model x path x row): the completion plus
   every piece of ground truth needed to score it (answer, choices, role labels, centers,
   camera_to_world, ...), so `rescore` needs neither the model nor the dataset.
4. `score_prediction` derives the parsed answer, parsed / matched centers, the SPEC rewards,
   `correct` and the implied answer; `aggregate` turns scored rows into `metrics.json` rows.
   `evaluate` computes its metrics with `rescore(predictions)` itself, so the saved table and
   a re-scoring of the saved predictions cannot drift; `rescore(preds, EvalSettings(...))`
   re-scores under another reward variant or agreement tolerance.
5. Baselines are pseudo-models that produce completions like a model: `chance` (a seeded
   uniform letter; for numbers the train-split median of the category), `language_prior`
   (the last `--model` on the same prompts with a blank gray image: what the text alone
   gives), `oracle` (the exact SPEC format with the true centers at 2 decimals and the answer
   recomputed from the geometry; it must score 1.0 everywhere, which checks this module).

Metric definitions (per model x path x split x category, plus `category = "all"`; None where
a metric has no rows to average over):
- stated answer: `<answer>(.*?)</answer>` as the reward reads it, and only when each of
  `<think>`, `</think>`, `<answer>`, `</answer>` occurs exactly once (the SPEC accuracy rule);
  a row without one counts as wrong.
- `choice_accuracy`: share of choice rows whose stated letter is the truth (= the mean SPEC
  accuracy reward over choice rows).
- `number_mra`: mean over numeric rows of mean over t in {0.50, 0.55, ..., 0.95} of
  1[|x - g| / |g| < 1 - t]; relative errors and thresholds are rounded to 9 decimals before
  comparing so that float noise never moves a boundary case (x = 1.05, g = 1 fails t = 0.95).
- `success_25`: share of numeric rows with |x - g| / |g| <= 0.25 (same rounding).
- `center_error_m`: median, over every (row, ground-truth label) matched as the detect reward
  matches (first predicted 3d_box text containing the label), of the Euclidean distance in m;
  pooled per object, not per row. Rows whose detect block fails to parse match nothing.
- `detect_reward`: mean SPEC detect reward over rows asked on DTR that have ground-truth centers.
- `format_rate`: mean SPEC format reward on the path each row was asked on.
- `implied_answer_agreement`: over rows asked on DTR whose own detected centers imply an
  answer (`questions.answer_from_centers`: every role matched; categories decided by centers
  alone, not sizes or counts), the share whose stated answer equals it: the same letter, or
  for numbers |stated - implied| <= max(0.05 m, 5% of implied). With `correct`, it separates
  perception errors (the centers imply a wrong answer) from reasoning errors (they imply the
  right one but the model said otherwise): `diagnose`.
- `correct` (per prediction, used by the widgets): choice = same letter; number = success_25.

Taught in `notebooks/04_evaluate.ipynb` and `notebooks/05_traces_3d.ipynb`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench import io, rewards, schema

PROFILES = ("smoke", "default", "gpu")
PATH_ORDER = ("lor", "dtr", "auto")
BASELINES = ("chance", "language_prior", "oracle")
METRIC_COLUMNS = (
    "n",
    "choice_accuracy",
    "number_mra",
    "success_25",
    "center_error_m",
    "detect_reward",
    "format_rate",
    "implied_answer_agreement",
)
KEY_COLUMNS = ("model", "path", "split", "category")
MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))
"""t in {0.50, 0.55, ..., 0.95} of the mean relative accuracy."""
SUCCESS_THRESHOLD = 0.25
"""`success_25`: relative error at most this."""
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
SETTINGS_FILE = "eval_settings.json"
BLANK_GRAY = (127, 127, 127)
"""Color of the blank image the language-prior baseline sees."""


@dataclass
class EvalSettings:
    """Settings of one evaluation (`workbench eval`). Profiles are presets (`from_profile`)."""

    profile: str = "default"
    """Preset these settings started from (smoke | default | gpu)."""
    splits: tuple[str, ...] = ("val", "test", "test_ood")
    """Dataset splits to evaluate."""
    paths: tuple[str, ...] = ("lor", "dtr", "auto")
    """Reasoning paths: lor / dtr force one for every question; auto = dtr when the question has regions."""
    max_examples: int = 200
    """QA rows per split (0 = all), taken round-robin over categories in dataset order."""
    batch_size: int = 32
    """Prompts per `generate` call (left padded)."""
    max_new_tokens: int = 256
    """Generation budget per completion (DTR targets of the built-in data are up to ~200 tokens)."""
    baselines: tuple[str, ...] = ()
    """Pseudo-models to add: chance, language_prior, oracle."""
    seed: int = 0
    """Seed of the chance baseline."""
    device: str = ""
    """Device for the models: "" = cuda when available, else cpu."""
    num_threads: int = 0
    """torch CPU threads while generating (0 = torch's default)."""
    center_reward: str = "step"
    """Re-scoring variant of the detect reward: `step` (SPEC) or `exp` (`rewards.RewardSettings`)."""
    center_scale: float = 0.3
    """Length scale in m of the `exp` center reward."""
    detect_denominator: str = "predicted"
    """Detect reward denominator: `predicted` (SPEC) or `max` (recall-aware)."""
    agreement_abs: float = 0.05
    """Implied-answer agreement of numbers: |stated - implied| within this many meters ..."""
    agreement_rel: float = 0.05
    """... or within this share of the implied value (the larger tolerance applies)."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> EvalSettings:
        """The named preset with `overrides` applied (unknown names raise ValueError)."""
        presets: dict[str, dict[str, Any]] = {
            # Smoke data has 16 rows per split; 160 tokens is the 90th percentile of DTR targets in
            # built-in tokens, enough for a model that learned the format to reach its answer.
            # One thread: the smoke model is so small that per-op overhead dominates, and a second
            # OpenMP thread spin-waits (5x slower measured) when other processes share the cores.
            "smoke": dict(
                splits=("test", "test_ood"), max_examples=16, batch_size=32, max_new_tokens=160, num_threads=1
            ),
            "default": {},
            "gpu": dict(max_examples=0, batch_size=64, max_new_tokens=384),
        }
        if name not in presets:
            raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES}")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ValueError(f"unknown EvalSettings fields {bad}; known: {sorted(known)}")
        return cls(**{**presets[name], "profile": name, **overrides})

    def __post_init__(self):
        self.splits = _as_tuple(self.splits)
        self.paths = _as_tuple(self.paths)
        self.baselines = _as_tuple(self.baselines)
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {PROFILES}")
        for split in self.splits:
            if split not in schema.SPLITS:
                raise ValueError(f"unknown split {split!r}; choose from {schema.SPLITS}")
        for path in self.paths:
            if path not in PATH_ORDER:
                raise ValueError(f"unknown path {path!r}; choose from {PATH_ORDER}")
        for name in self.baselines:
            if name not in BASELINES:
                raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
        if not self.splits or not self.paths:
            raise ValueError("need at least one split and one path")
        for name in ("max_examples", "batch_size", "max_new_tokens", "num_threads"):
            value, low = getattr(self, name), 0 if name in ("max_examples", "num_threads") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (self.agreement_abs >= 0 and self.agreement_rel >= 0):
            raise ValueError(
                f"agreement tolerances must be >= 0, got {self.agreement_abs!r}, {self.agreement_rel!r}"
            )
        self.reward_settings()  # validates the reward variant

    def reward_settings(self) -> rewards.RewardSettings:
        return rewards.RewardSettings(
            center_reward=self.center_reward,
            center_scale=self.center_scale,
            detect_denominator=self.detect_denominator,
        )


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    return tuple(str(v).strip() for v in value if str(v).strip())


@dataclass
class EvalResult:
    """What `evaluate` returns (and writes to `out`)."""

    metrics: list[dict]
    """`metrics.json` rows."""
    predictions: list[dict]
    """`predictions.jsonl` rows (scored)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each model's (and baseline's) completions; filled at runtime."""


# ----------------------------------------------------------------------------- metric primitives


def relative_error(x: float | None, g: float) -> float:
    """|x - g| / |g| (inf when there is no answer, or g = 0 and x != 0).

    >>> round(relative_error(1.2, 1.0), 9), relative_error(None, 1.0), relative_error(0.0, 0.0)
    (0.2, inf, 0.0)
    """
    if x is None:
        return math.inf
    if g == 0:
        return 0.0 if x == 0 else math.inf
    return abs(x - g) / abs(g)


def mean_relative_accuracy(x: float | None, g: float) -> float:
    """Mean over t in {0.50, ..., 0.95} of 1[|x - g| / |g| < 1 - t].

    >>> [mean_relative_accuracy(x, 1.0) for x in (1.0, 1.05, 1.3, 0.51, 2.0, None)]
    [1.0, 0.9, 0.4, 0.1, 0.0, 0.0]
    """
    rel = round(relative_error(x, g), 9)
    return sum(rel < round(1.0 - t, 9) for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def success_25(x: float | None, g: float) -> bool:
    """Whether x is within 25% of g.

    >>> success_25(1.25, 1.0), success_25(1.26, 1.0), success_25(None, 1.0)
    (True, False, False)
    """
    return round(relative_error(x, g), 9) <= SUCCESS_THRESHOLD


def median(values: Sequence[float]) -> float | None:
    """Median (mean of the middle two for an even count); None for no values."""
    return float(statistics.median(values)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def answers_agree(
    stated: str | None, implied: str | None, answer_type: str, abs_tol: float = 0.05, rel_tol: float = 0.05
) -> bool:
    """Whether a stated answer equals the implied one: same letter (choice), or numbers within
    max(abs_tol, rel_tol * |implied|).

    >>> answers_agree("(b)", "B", "choice"), answers_agree("1.04", "1.00", "number"), answers_agree("1.2", "1.00", "number")
    (True, True, False)
    """
    if stated is None or implied is None:
        return False
    if answer_type == "number":
        x, y = rewards.parse_number(stated), rewards.parse_number(implied)
        if x is None or y is None:
            return False
        return abs(x - y) <= max(abs_tol, rel_tol * abs(y)) + 1e-9
    return rewards.normalize_choice(stated) == rewards.normalize_choice(implied)


# ----------------------------------------------------------------------------- scoring one prediction


def _stated_answer(text: str) -> str | None:
    """The answer the model committed to: None unless think/answer tags each occur exactly once."""
    counts = rewards.tag_counts(text)
    if any(counts[tag] != 1 for tag in rewards.ANSWER_TAGS):
        return None
    return rewards.parse_answer(text)


def _truth_row(pred: Mapping[str, Any]) -> dict[str, Any]:
    """The minimal row `questions.answer_from_centers` reads, rebuilt from a prediction."""
    labels = list(pred.get("role_labels") or [])
    gt = pred.get("gt_centers") or {}
    return {
        "id": pred.get("id"),
        "task": pred.get("task", "region_qa"),
        "regions": pred.get("regions") or [],
        "centers": {lab: gt[lab] for lab in labels if lab in gt},
        "camera_to_world": pred.get("camera_to_world"),
        "choices": pred.get("choices") or [],
    }


def score_prediction(pred: Mapping[str, Any], settings: EvalSettings | None = None) -> dict[str, Any]:
    """A copy of prediction `pred` with every derived field recomputed from its completion and
    the ground truth it carries: `pred_answer`, `stated_answer`, `pred_centers`,
    `matched_centers`, `center_errors`, `center_error_m` (mean over this row's matched labels),
    `accuracy`, `format`, `detect`, `overall` (SPEC rewards), `correct`, `rel_error`,
    `implied_answer`, `implied_agrees`."""
    from workbench import questions

    settings = settings or EvalSettings()
    out = dict(pred)
    text = rewards.completion_text(pred.get("completion")) or ""
    path = pred["resolved_path"]
    answer_type = pred["answer_type"]
    gt_centers = {k: [float(c) for c in v] for k, v in (pred.get("gt_centers") or {}).items()}
    score = rewards.score(
        text,
        pred["answer"],
        gt_centers if path == "dtr" else None,
        path,
        answer_type,
        settings.reward_settings(),
    )
    out.update(
        accuracy=score["accuracy"],
        format=score["format"],
        detect=score.get("detect"),
        overall=score["overall"],
    )
    out["pred_answer"] = rewards.parse_answer(text)
    stated = _stated_answer(text)
    out["stated_answer"] = stated
    if answer_type == "number":
        g = rewards.parse_number(str(pred["answer"]))
        x = rewards.parse_number(stated) if stated is not None else None
        rel = relative_error(x, g)
        out["rel_error"] = rel if math.isfinite(rel) else None
        out["correct"] = success_25(x, g)
    else:
        out["rel_error"] = None
        out["correct"] = stated is not None and rewards.normalize_choice(stated) == rewards.normalize_choice(
            str(pred["answer"])
        )

    parsed = rewards.parse_centers(text) if path == "dtr" else {}
    out["pred_centers"] = None if parsed is None else {k: list(v) for k, v in parsed.items()}
    matched = rewards.match_centers(parsed or {}, list(gt_centers)) if path == "dtr" else {}
    out["matched_centers"] = {k: list(v) for k, v in matched.items()}
    errors = {lab: math.dist(xyz, gt_centers[lab]) for lab, xyz in matched.items()}
    out["center_errors"] = errors
    out["center_error_m"] = _mean(list(errors.values()))

    implied = None
    if path == "dtr" and pred["category"] in questions.REGION_CATEGORIES and matched:
        implied = questions.answer_from_centers(pred["category"], matched, _truth_row(pred))
    out["implied_answer"] = implied
    out["implied_agrees"] = (
        None
        if implied is None
        else answers_agree(stated, implied, answer_type, settings.agreement_abs, settings.agreement_rel)
    )
    if implied is None:
        out["implied_correct"] = None
    elif answer_type == "number":
        out["implied_correct"] = success_25(
            rewards.parse_number(implied), rewards.parse_number(str(pred["answer"]))
        )
    else:
        out["implied_correct"] = rewards.normalize_choice(implied) == rewards.normalize_choice(
            str(pred["answer"])
        )
    return out


def score_predictions(
    predictions: Iterable[Mapping[str, Any]], settings: EvalSettings | None = None
) -> list[dict]:
    """`score_prediction` of each row."""
    settings = settings or EvalSettings()
    return [score_prediction(p, settings) for p in predictions]


# ----------------------------------------------------------------------------- aggregation


def group_metrics(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metric columns of one group of scored predictions (see the module docstring)."""
    choice = [p for p in scored if p["answer_type"] != "number"]
    number = [p for p in scored if p["answer_type"] == "number"]
    dtr = [p for p in scored if p["resolved_path"] == "dtr"]
    values = []
    for p in number:
        g = rewards.parse_number(str(p["answer"]))
        stated = p.get("stated_answer")
        values.append((rewards.parse_number(stated) if stated is not None else None, g))
    errors = [d for p in dtr for d in (p.get("center_errors") or {}).values()]
    implied = [p for p in dtr if p.get("implied_agrees") is not None]
    return {
        "n": len(scored),
        "choice_accuracy": _mean([float(bool(p["correct"])) for p in choice]),
        "number_mra": _mean([mean_relative_accuracy(x, g) for x, g in values]),
        "success_25": _mean([float(success_25(x, g)) for x, g in values]),
        "center_error_m": median(errors),
        "detect_reward": _mean([p["detect"] for p in dtr if p.get("detect") is not None]),
        "format_rate": _mean([float(p["format"]) for p in scored]),
        "implied_answer_agreement": _mean([float(p["implied_agrees"]) for p in implied]),
    }


def _rank(value: Any, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), str(value))


def aggregate(scored: Iterable[Mapping[str, Any]]) -> list[dict]:
    """`metrics.json` rows: one per model x path x split x category, plus category `all`.

    Models keep their first-seen order; paths, splits and categories their canonical order."""
    scored = list(scored)
    models = list(dict.fromkeys(str(p["model"]) for p in scored))
    categories = (
        "all",
        *schema.NUMERIC_CATEGORIES,
        *schema.CHOICE_CATEGORIES,
        *schema.GENERAL_ONLY_CATEGORIES,
    )
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for p in scored:
        base = (str(p["model"]), p["path"], p["split"])
        groups.setdefault((*base, "all"), []).append(p)
        groups.setdefault((*base, p["category"]), []).append(p)
    keys = sorted(
        groups,
        key=lambda k: (
            models.index(k[0]),
            _rank(k[1], PATH_ORDER),
            _rank(k[2], schema.SPLITS),
            _rank(k[3], categories),
        ),
    )
    return [{**dict(zip(KEY_COLUMNS, k)), **group_metrics(groups[k])} for k in keys]


def rescore(
    predictions: Iterable[Mapping[str, Any]] | str | Path, settings: EvalSettings | None = None
) -> list[dict]:
    """`metrics.json` rows recomputed from prediction rows (or a `predictions.jsonl` path) alone:
    no model, no dataset. Pass `settings` to re-score under another reward variant
    (`center_reward`, `detect_denominator`) or agreement tolerance."""
    if isinstance(predictions, (str, Path)):
        predictions = read_predictions(predictions)
    return aggregate(score_predictions(predictions, settings))


def read_predictions(path: str | Path) -> list[dict]:
    """Rows of a `predictions.jsonl` file (or of `DIR/predictions.jsonl`)."""
    path = Path(path)
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no predictions file at {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a `metrics.json` file (or of `DIR/metrics.json`)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- diagnostics


def diagnose(scored: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Perception vs reasoning errors of the DTR predictions, per model x path x split.

    Over the rows whose detected centers imply an answer (`implied_answer` not None):
    `right_right_geometry` (answer right, centers imply it too), `right_wrong_geometry`
    (answer right although its own centers imply another: luck or a shortcut),
    `reasoning_error` (answer wrong although its centers imply the right one),
    `perception_error` (answer wrong and the centers imply a wrong answer), as shares of
    `n_implied`; `n_dtr` counts every row asked on DTR."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for p in scored:
        if p.get("resolved_path") == "dtr":
            groups.setdefault((str(p["model"]), p["path"], p["split"]), []).append(p)
    out = []
    for (model, path, split), rows in groups.items():
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
            {"model": model, "path": path, "split": split, "n_dtr": len(rows), "n_implied": n, **shares}
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


# ----------------------------------------------------------------------------- rows and ground truth


def select_rows(ds, max_examples: int = 0) -> list[int]:
    """Indices of the QA rows of a split; with `max_examples`, round-robin over categories
    (each category's rows in dataset order) until that many are taken, then sorted."""
    tasks, categories = ds["task"], ds["category"]
    by_cat: dict[str, list[int]] = {}
    for i, (task, cat) in enumerate(zip(tasks, categories)):
        if task in schema.QA_TASKS:
            by_cat.setdefault(cat, []).append(i)
    total = sum(len(v) for v in by_cat.values())
    if not max_examples or max_examples >= total:
        return sorted(i for v in by_cat.values() for i in v)
    picked: list[int] = []
    queues = [list(v) for _, v in sorted(by_cat.items())]
    while len(picked) < max_examples:
        for q in queues:
            if q and len(picked) < max_examples:
                picked.append(q.pop(0))
    return sorted(picked)


def load_rows(data: Any, split: str, max_examples: int = 0, images: bool = False) -> list[dict]:
    """The chosen QA rows of `split` as dicts, each with its position in the split as `row_index`.

    Without `images` the rows carry neither image nor depth (`ImageReader` decodes images a
    batch at a time, so a large split never sits decoded in memory); with it, the image too."""
    if split not in data:
        raise ValueError(f"the dataset has no split {split!r}; it has {sorted(data)}")
    ds = data[split]
    indices = select_rows(ds, max_examples)
    dropped = ("depth",) if images else ("depth", "image")
    ds = ds.remove_columns([c for c in dropped if c in ds.column_names]).select(indices)
    rows = []
    for i, row in zip(indices, ds):
        row["row_index"] = int(i)
        rows.append(row)
    return rows


def truth_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ground truth a prediction row carries, so it can be re-scored without the dataset."""
    from workbench import questions

    centers = schema.centers_of(row)
    try:
        labels = questions.role_labels(row)
    except (KeyError, ValueError):
        labels = list(centers)
    return {
        "id": row["id"],
        "row_index": row.get("row_index"),
        "scene_id": row.get("scene_id"),
        "split": row["split"],
        "task": row["task"],
        "category": row["category"],
        "question": row["question"],
        "answer_type": row["answer_type"],
        "answer": row["answer"],
        "choices": list(row.get("choices") or []),
        "regions": [dict(r) for r in row.get("regions") or []],
        "role_labels": labels,
        "gt_centers": centers,
        "camera_to_world": row.get("camera_to_world"),
        "intrinsics": row.get("intrinsics"),
    }


# ----------------------------------------------------------------------------- baselines


def chance_completion(row: Mapping[str, Any], path: str, number_prior: float = 1.0, seed: int = 0) -> str:
    """A guess in the format of `path`: a uniform letter (seeded by `seed` and the row id) for
    choice questions, `number_prior` for numeric ones. No centers are detected."""
    if row["answer_type"] == "number":
        answer = f"{number_prior:.2f}"
    else:
        n = len(row.get("choices") or []) or 2
        answer = "ABCDEFGH"[random.Random(f"chance|{seed}|{row['id']}").randrange(n)]
    return _completion(path, [], "A guess without looking.", answer)


def oracle_completion(row: Mapping[str, Any], path: str) -> str:
    """The exact SPEC format of `path` with the true centers (2 decimals) of the question's
    objects and the answer recomputed from the stored geometry."""
    from workbench import questions, traces

    answer = questions.recompute_answer(row)
    boxes = []
    if path == "dtr":
        centers = schema.centers_of(row)
        labels = questions.role_labels(row) if centers else []
        indices = questions.roles(row) if centers else []
        boxes = [
            traces.box3d(centers[lab], row["objects"][i]["name"], lab) for lab, i in zip(labels, indices)
        ]
    return _completion(path, boxes, "The answer follows from the true geometry.", answer)


def _completion(path: str, boxes: Sequence[str], think: str, answer: str) -> str:
    from workbench import traces

    if path == "dtr":
        return traces.dtr(boxes, think, answer)
    return traces.lor(think, answer)


def number_priors(data: Any, rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """{numeric category: median answer} of the train split (of `rows` when there is none)."""
    source: list[tuple[str, str]] = []
    if "train" in data:
        train = data["train"].select_columns(["task", "category", "answer_type", "answer"])
        source = [
            (r["category"], r["answer"])
            for r in train
            if r["answer_type"] == "number" and r["task"] in schema.QA_TASKS
        ]
    if not source:
        source = [(r["category"], r["answer"]) for r in rows if r["answer_type"] == "number"]
    by_cat: dict[str, list[float]] = {}
    for cat, answer in source:
        value = rewards.parse_number(str(answer))
        if value is not None:
            by_cat.setdefault(cat, []).append(value)
    overall = median([v for vs in by_cat.values() for v in vs]) or 1.0
    return {cat: median(by_cat.get(cat, [])) or overall for cat in (*schema.NUMERIC_CATEGORIES, *by_cat)}


class ImageReader:
    """`reader(rows) -> images` of rows from `load_rows` (found by `split` and `row_index`),
    decoded one batch at a time. `blank=True` gives uniformly gray images of the same sizes:
    no scene and no marks, the language-prior baseline's input."""

    def __init__(self, data: Any, blank: bool = False):
        self.data, self.blank = data, blank
        self._columns: dict[str, Any] = {}

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list:
        out: list = [None] * len(rows)
        by_split: dict[str, list[int]] = {}
        for k, row in enumerate(rows):
            by_split.setdefault(row["split"], []).append(k)
        for split, ks in by_split.items():
            if split not in self._columns:
                self._columns[split] = self.data[split].select_columns(["image"])
            images = self._columns[split][[int(rows[k]["row_index"]) for k in ks]]["image"]
            for k, image in zip(ks, images):
                out[k] = blank_image(image) if self.blank else image
        return out


def blank_image(image):
    """A uniformly gray RGB image of the size of `image`."""
    from PIL import Image

    return Image.new("RGB", image.size, BLANK_GRAY)


# ----------------------------------------------------------------------------- generation


def completions(
    model,
    processor,
    rows: Sequence[Mapping[str, Any]],
    paths: Sequence[str],
    settings: EvalSettings,
    images=None,
    desc: str = "",
    progress: bool = True,
) -> dict[tuple[int, str], str]:
    """{(index into rows, resolved path): completion} for every row on every path in `paths`,
    each distinct (row, resolved path) generated once, greedily, in batches of `batch_size`.
    `images(rows) -> PIL images` supplies the images of a batch (`ImageReader`); None = the
    rows carry their own `image`."""
    from tqdm.auto import tqdm

    from workbench import model as M
    from workbench import prompts

    jobs: dict[str, dict[int, None]] = {}  # resolved path -> row indices (an ordered set)
    for path in paths:
        for i, row in enumerate(rows):
            jobs.setdefault(prompts.resolve_path(row, path), {})[i] = None
    out: dict[tuple[int, str], str] = {}
    total = sum(len(v) for v in jobs.values())
    with (
        _threads(settings.num_threads),
        tqdm(total=total, desc=desc or "generate", unit="ex", disable=not progress, leave=False) as bar,
    ):
        for resolved, indices in jobs.items():
            # Similar prompt lengths per batch: less padding to run through every decode step.
            indices = sorted(
                indices, key=lambda i: (len(str(rows[i]["question"])), len(rows[i].get("choices") or []))
            )
            for start in range(0, len(indices), settings.batch_size):
                chunk = indices[start : start + settings.batch_size]
                batch = [rows[i] for i in chunk]
                if images is not None:
                    batch = [{**row, "image": image} for row, image in zip(batch, images(batch))]
                texts = M.generate(
                    model,
                    processor,
                    batch,
                    resolved,
                    max_new_tokens=settings.max_new_tokens,
                    batch_size=len(chunk),
                )
                out.update({(i, resolved): t for i, t in zip(chunk, texts)})
                bar.update(len(chunk))
    return out


@contextlib.contextmanager
def _threads(n: int):
    """torch's CPU thread count set to `n` inside the block (unchanged for n = 0)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _predictions(label: str, rows: Sequence[Mapping[str, Any]], paths: Sequence[str], complete) -> list[dict]:
    """Prediction rows of one model: `complete((index into rows, resolved path)) -> completion`."""
    from workbench import prompts

    preds = []
    for path in paths:
        for i, row in enumerate(rows):
            resolved = prompts.resolve_path(row, path)
            preds.append(
                {
                    "model": label,
                    "path": path,
                    "resolved_path": resolved,
                    **truth_fields(row),
                    "completion": complete((i, resolved)),
                }
            )
    return preds


def model_label(spec: Any, taken: Iterable[str] = ()) -> str:
    """The `model` column of a checkpoint folder: its name (`sft`), or `parent/name` when the
    name is already taken."""
    p = Path(str(spec)).expanduser()
    name = p.name or str(spec)
    if name in set(taken) and p.parent.name:
        name = f"{p.parent.name}/{p.name}"
    return name


def _model_specs(models: Any) -> list[tuple[str, Any]]:
    """[(label, path or (model, processor))] from a path, a list of paths / `label=path` strings /
    (label, spec) pairs, or a {label: spec} mapping."""
    if isinstance(models, (str, Path)):
        models = [models]
    if isinstance(models, Mapping):
        return [(str(k), v) for k, v in models.items()]
    specs: list[tuple[str, Any]] = []
    for m in models:
        if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and not hasattr(m[0], "generate"):
            specs.append(m)
            continue
        text = str(m)
        label, sep, path = text.partition("=")
        if sep and label and "/" not in label:
            specs.append((label, path))
        else:
            specs.append((model_label(text, [s[0] for s in specs]), text))
    labels = [s[0] for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"two models share the label(s) {dupes}; name them with LABEL=DIR")
    return specs


def _device(settings: EvalSettings) -> str:
    if settings.device:
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate(
    models: Any,
    data: Any,
    out: str | Path | None = None,
    settings: EvalSettings | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate `models` (checkpoint folders, `LABEL=DIR` strings, or {label: folder or
    (model, processor)}) and the chosen baselines on `data` (a dataset folder or DatasetDict).

    Writes `metrics.json`, `predictions.jsonl` and `eval_settings.json` into `out` (atomically,
    each) when given. The metrics are `rescore(predictions)`.
    """
    from workbench import data as data_mod

    settings = settings or EvalSettings()
    specs = _model_specs(models) if models else []
    if not specs and not settings.baselines:
        raise ValueError("nothing to evaluate: give at least one model or one baseline")
    if "language_prior" in settings.baselines and not specs:
        raise ValueError("the language_prior baseline needs a model (it is that model with a blank image)")
    data_dir = None
    if isinstance(data, (str, Path)):
        data_dir = str(data)
        data = data_mod.load_dataset_dir(data)
    rows = [r for split in settings.splits for r in load_rows(data, split, settings.max_examples)]
    if not rows:
        raise ValueError(f"no question rows in splits {settings.splits}")
    paths = [p for p in PATH_ORDER if p in settings.paths]
    predictions: list[dict] = []
    seconds: dict[str, float] = {}
    loaded = None
    for k, (label, spec) in enumerate(specs):
        t0 = time.time()
        model, processor = _load(spec, settings)
        texts = completions(model, processor, rows, paths, settings, ImageReader(data), label, progress)
        predictions += _predictions(label, rows, paths, texts.get)
        seconds[label] = round(time.time() - t0, 2)
        if k == len(specs) - 1:
            loaded = (model, processor)
        else:
            del model
    for name in BASELINES:
        if name not in settings.baselines:
            continue
        t0 = time.time()
        if name == "chance":
            priors = number_priors(data, rows)
            texts = {
                (i, p): chance_completion(row, p, priors.get(row["category"], 1.0), settings.seed)
                for p in ("lor", "dtr")
                for i, row in enumerate(rows)
            }
        elif name == "oracle":
            texts = {(i, p): oracle_completion(row, p) for p in ("lor", "dtr") for i, row in enumerate(rows)}
        else:
            blank = ImageReader(data, blank=True)
            texts = completions(*loaded, rows, paths, settings, blank, name, progress)
        predictions += _predictions(name, rows, paths, texts.get)
        seconds[name] = round(time.time() - t0, 2)

    scored = score_predictions(predictions, settings)
    metrics = rescore(scored, settings)  # the very function a reader re-scores the saved rows with
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        io.write_jsonl(out / PREDICTIONS_FILE, scored)
        io.write_json(out / METRICS_FILE, metrics)
        io.write_json(
            out / SETTINGS_FILE,
            {
                "settings": asdict(settings),
                "models": {
                    label: str(spec) if isinstance(spec, (str, Path)) else "in memory"
                    for label, spec in specs
                },
                "data": data_dir,
                "seconds": seconds,
                "rows": len(rows),
            },
        )
    return EvalResult(metrics=metrics, predictions=scored, seconds=seconds)


def _load(spec: Any, settings: EvalSettings):
    if isinstance(spec, tuple):
        return spec
    from workbench import model as M

    return M.load(spec, device=_device(settings))


# ----------------------------------------------------------------------------- run folders (notebooks 04, 05)

RUN_STAGES = ("sft", "grpo")
"""Model folders of a run folder, in the order they are evaluated (the last is the main model)."""


def run_models(run_dir: str | Path) -> dict[str, Path]:
    """{stage: folder} of the finished models in a run folder (a final `config.json`, which the
    SFT and GRPO stages write last)."""
    run = Path(run_dir)
    return {stage: run / stage for stage in RUN_STAGES if (run / stage / "config.json").is_file()}


def prepare_run(
    run_dir: str | Path, profile: str = "smoke", seed: int = 0, model: str = "", progress: bool = False
) -> tuple[Path, dict[str, Path]]:
    """(data folder, {stage: model folder}) of a run folder, regenerating what is missing from
    the seed through the library: the dataset (`workbench.data`), and an SFT model
    (`workbench.sft.train_sft`, from `model` or the built-in tiny one) when the run has neither
    an SFT nor a GRPO model."""
    from workbench import data

    run = Path(run_dir)
    data_dir = run / "data"
    if not data.is_dataset_dir(data_dir):
        data.build_dataset(data.DataSettings.from_profile(profile, seed=seed), data_dir, progress=progress)
    models = run_models(run)
    if not models:
        from workbench import sft

        settings = sft.SFTSettings.from_profile(profile, seed=seed, disable_tqdm=not progress)
        sft.train_sft(data_dir, run / "sft", settings, model_name_or_path=model, resume=True)
        models = run_models(run)
    return data_dir, models


def run_evaluation(
    run_dir: str | Path,
    profile: str = "smoke",
    seed: int = 0,
    model: str = "",
    progress: bool = False,
    **overrides: Any,
) -> EvalResult:
    """Evaluate a run folder's models (`prepare_run`) and the three baselines into `{run_dir}/eval`.
    `overrides` are `EvalSettings` fields."""
    data_dir, models = prepare_run(run_dir, profile, seed, model, progress)
    overrides = {"baselines": BASELINES, "seed": seed, **overrides}
    settings = EvalSettings.from_profile(profile, **overrides)
    return evaluate(models, data_dir, Path(run_dir) / "eval", settings, progress=progress)


# ----------------------------------------------------------------------------- tables


def format_table(metrics: Sequence[Mapping[str, Any]], category: str | None = "all") -> str:
    """A plain-text table of metrics rows (only `category` rows unless None)."""
    rows = [r for r in metrics if category is None or r["category"] == category]
    head = (*KEY_COLUMNS, *METRIC_COLUMNS)
    short = {
        "choice_accuracy": "choice_acc",
        "center_error_m": "center_err",
        "implied_answer_agreement": "implied_agr",
        "detect_reward": "detect",
        "format_rate": "format",
    }
    cells = [[short.get(h, h) for h in head]]
    for r in rows:
        cells.append([_fmt(r.get(h)) for h in head])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--model",
        action="append",
        default=[],
        metavar="DIR",
        help="checkpoint folder (repeat for several; LABEL=DIR names the model column)",
    )
    add("--data", default=None, help="dataset folder (`workbench data`); required unless --rescore")
    add("--out", required=True, help="output folder for metrics.json and predictions.jsonl")
    add("--profile", default="default", choices=PROFILES, help="preset of EvalSettings")
    add("--splits", default=None, help="comma-separated splits (profile default)")
    add("--paths", default=None, help="comma-separated paths among lor,dtr,auto (default all)")
    add("--baselines", default=None, help="comma-separated among chance,language_prior,oracle")
    add("--max-examples", type=int, default=None, help="QA rows per split, 0 = all (profile default)")
    add("--batch-size", type=int, default=None, help="prompts per generate call")
    add("--max-new-tokens", type=int, default=None, help="generation budget per completion")
    add("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    add(
        "--rescore",
        default=None,
        metavar="PREDICTIONS",
        help="re-score a predictions.jsonl (or its folder) offline instead: no model, no dataset",
    )
    add("--center-reward", default=None, choices=("step", "exp"), help="detect reward variant (default step)")
    add(
        "--detect-denominator",
        default=None,
        choices=("predicted", "max"),
        help="detect reward denominator (default predicted)",
    )
    add("--no-progress", action="store_true", help="no progress bars")  # fmt: skip


def cli(args: argparse.Namespace) -> int:
    keys = ("splits", "paths", "baselines", "max_examples", "batch_size", "max_new_tokens", "device",
            "center_reward", "detect_denominator")  # fmt: skip
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    settings = EvalSettings.from_profile(args.profile, **overrides)
    out = Path(args.out)
    if args.rescore:
        scored = score_predictions(read_predictions(args.rescore), settings)
        metrics = rescore(scored, settings)
        out.mkdir(parents=True, exist_ok=True)
        io.write_jsonl(out / PREDICTIONS_FILE, scored)
        io.write_json(out / METRICS_FILE, metrics)
        n = len(scored)
    else:
        if not args.data:
            raise ValueError(
                "--data DIR is required (or --rescore PREDICTIONS to re-score saved predictions)"
            )
        result = evaluate(args.model, args.data, out, settings, progress=not args.no_progress)
        metrics, n = result.metrics, len(result.predictions)
    print(format_table(metrics))
    print(f"wrote {out / METRICS_FILE} ({len(metrics)} rows) and {out / PREDICTIONS_FILE} ({n} predictions)")
    return 0
