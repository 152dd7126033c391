"""Metrics computed from saved predictions, no model (SPEC section 7): scoring and tables.

A prediction row (`predictions.jsonl`, one per model x path x row, written by `workbench.eval.evaluate`)
carries its completion and every piece of ground truth needed to score it (`baselines.truth_fields`: answer,
choices, role labels, centers, camera_to_world, ...), so all of this runs from the saved file alone
(`workbench eval --rescore DIR/predictions.jsonl --out DIR2 [--center-reward exp]`).
`score_prediction` derives the parsed answer, parsed / matched centers, the SPEC rewards, `correct`
and the implied answer; `aggregate` turns scored rows into `metrics.json` rows; `rescore` is both.
`workbench.eval.evaluate` computes its table with `rescore` too, so the saved table and a re-scoring of
the saved predictions cannot drift; `rescore(preds, EvalSettings(...))` re-scores under another
reward variant or agreement tolerance. `workbench.eval.diagnostics` tells perception errors from
reasoning errors; `workbench.eval.baselines` builds the `chance` and `oracle` completions (the
oracle must score 1.0 everywhere, which checks this module).

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
- `motion_accuracy`: mean camera-motion accuracy reward over `motion` rows (multi-view, issue #24:
  the exponential score per ground-truth key, averaged); such a row is `correct` when that score
  is at least `MOTION_CORRECT`. A build with multi-view rows also gets categories `single_view` and
  `multi_view`, and a multi-view DTR row's centers are matched against the frame its detect block names.
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
  right one but the model said otherwise): `diagnose`. Cross-view: the single-view rule in the frame
  the detect block names (its pose from `view_poses`; a viewpoint question aligned wrongly is perception).
- `label_recall`: over rows with regions, the mean share of the question's region labels
  (`red box`, ...) that the completion names anywhere. It measures whether the model reads the
  prompt at all, and moves before accuracy can: a model that writes the same labels whatever
  the question says scores near the chance of guessing them.
- `top_letter_share`: over choice rows whose answer is a letter, the share of the most common
  letter. Set it beside the truths' own (the `oracle` baseline's): a model that answers one
  letter whatever the question asks scores near 1 (GRPO from an SFT model at chance on the full
  blend: 0.93-1.00 on greedy answers, issue #4).
- stated option: the last `TEXT (L)` in a choice completion whose TEXT is one of the row's
  options (the trace form `so the answer is right (B)`); `stated_option`.
- `option_accuracy`: over choice rows that state an option, the share whose TEXT is the true
  option's text, whatever letter follows it: did the reasoning reach the right option?
- `letter_agreement`: over the same rows, the share whose L is TEXT's own letter in the
  options: was the option then looked up? A model that reasons well and looks up badly scores
  high on the first and near chance on the second, and its `choice_accuracy` stays at chance
  (the default built-in SFT model, issue #3: the traces of a left/right probe named the right
  side in 99% of rows and the matching letter in 46%).
- `think_number_corr`: are the numbers the reasoning states perceived, or a template's usual
  values? Over rows whose `<think>` states as many numbers as the reference trace of the same
  path (`reference_targets`), pair the numbers by position; per category and position (the
  first distance, the second, ...: one quantity each, so scales never mix), the Pearson
  correlation of stated with reference values; the group's value is their pair-weighted mean
  (cells with < 3 pairs or a constant side are left out; None if none is left). Near 0:
  the trace writes numbers unrelated to the scene, so its conclusion cannot beat chance (the
  default built-in SFT model, issue #3: -0.02 to 0.13 per path and split, noise around 0 in
  every category; a left/right probe that reads positions off the location tokens: 0.98).
- `correct` (per prediction, used by the widgets): choice = same letter; number = success_25.

Taught in `notebooks/05_evaluate.ipynb` (the table, re-scoring, the diagnostic) and
`notebooks/06_traces_3d.ipynb` (the galleries).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from workbench import io, schema
from workbench.tasks import rewards


class ScoringSettings(Protocol):
    """What scoring reads of the settings of `workbench eval` (`evaluate.EvalSettings` is one)."""

    agreement_abs: float
    agreement_rel: float

    def reward_settings(self) -> rewards.RewardSettings: ...

PATH_ORDER = ("lor", "dtr", "auto")
"""Reasoning paths in their canonical order (the rows of `metrics.json` follow it)."""
METRIC_COLUMNS = (
    "n",
    "choice_accuracy",
    "number_mra",
    "success_25",
    "center_error_m",
    "detect_reward",
    "format_rate",
    "implied_answer_agreement",
    "label_recall",
    "top_letter_share",
    "option_accuracy",
    "letter_agreement",
    "think_number_corr",
)
KEY_COLUMNS = ("model", "path", "split", "category")
MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))
"""t in {0.50, 0.55, ..., 0.95} of the mean relative accuracy."""
MOTION_CORRECT = math.exp(-0.5)
"""A camera-motion answer counts as `correct` at this mean score: every key within a quarter of its
size (exp(-2 * 0.25))."""
SUCCESS_THRESHOLD = 0.25
"""`success_25`: relative error at most this."""
AGREEMENT_ABS = 0.05
"""Default implied-answer agreement of numbers: |stated - implied| within this many meters ..."""
AGREEMENT_REL = 0.05
"""... or within this share of the implied value (the larger tolerance applies)."""
LETTERS = "ABCDEFGH"
"""Option letters in order (`choices[i]` is option `LETTERS[i]`)."""
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"


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


def label_recall(text: str, regions: Sequence[Mapping[str, Any]]) -> float | None:
    """Share of the distinct region labels that `text` names (None without regions).

    >>> label_recall("<think>the cube in the red box ...</think>", [{"label": "red box"}, {"label": "blue point"}])
    0.5
    """
    labels = {str(r.get("label", "")) for r in regions if r.get("label")}
    if not labels:
        return None
    return sum(label in text for label in labels) / len(labels)


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p of a paired comparison: the binomial(n, 1/2) probability of a split
    of the n discordant pairs at least this uneven.

    >>> round(mcnemar_p(52, 25), 4), mcnemar_p(0, 0), mcnemar_p(10, 0)
    (0.0028, 1.0, 0.001953125)
    """
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def median(values: Sequence[float]) -> float | None:
    """Median (mean of the middle two for an even count); None for no values."""
    return float(statistics.median(values)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def answers_agree(
    stated: str | None,
    implied: str | None,
    answer_type: str,
    abs_tol: float = AGREEMENT_ABS,
    rel_tol: float = AGREEMENT_REL,
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


def _scoring(settings: ScoringSettings | None) -> tuple[rewards.RewardSettings, float, float]:
    """(reward variant, agreement abs tolerance, agreement rel tolerance) of `settings`; None = the
    defaults, which are those of `EvalSettings()`: the SPEC rewards."""
    if settings is None:
        return rewards.RewardSettings(), AGREEMENT_ABS, AGREEMENT_REL
    return settings.reward_settings(), settings.agreement_abs, settings.agreement_rel


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


def score_prediction(pred: Mapping[str, Any], settings: ScoringSettings | None = None) -> dict[str, Any]:
    """A copy of prediction `pred` with every derived field recomputed from its completion and
    the ground truth it carries: `pred_answer`, `stated_answer`, `pred_centers`,
    `matched_centers`, `center_errors`, `center_error_m` (mean over this row's matched labels),
    `accuracy`, `format`, `detect`, `overall` (SPEC rewards), `correct`, `rel_error`,
    `implied_answer`, `implied_agrees`. `settings`: an `evaluate.EvalSettings` (its reward variant
    and agreement tolerances); None = the defaults."""
    from workbench.tasks import crossview, questions
    reward_settings, agreement_abs, agreement_rel = _scoring(settings)
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
        reward_settings,
        frame_centers=pred.get("frame_centers"),
        reference_frame=pred.get("reference_frame"),
    )
    named_pose = None  # a multi-view row: the camera_to_world of the frame its completion names
    if path == "dtr" and pred.get("frame_centers"):  # a multi-view row: centers of the frame it names
        frames = rewards.frame_truths(pred["frame_centers"])
        named = rewards.reference_frame(text)
        if named in frames:
            gt_centers = {k: [float(c) for c in v] for k, v in frames[named].items()}
            named_pose = pred["view_poses"][named - 1] if len(pred.get("view_poses") or ()) >= named else None
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
    elif answer_type == "motion":  # every move and turn of the truth within a quarter of its size
        out["rel_error"] = None
        out["correct"] = score["accuracy"] >= MOTION_CORRECT
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

    out["label_recall"] = label_recall(text, pred.get("regions") or [])
    stated_option = (
        stated_option_of(text, pred.get("choices") or []) if answer_type == "choice" else None
    )
    out["stated_option"] = None if stated_option is None else list(stated_option)
    reference = (pred.get("reference_targets") or {}).get(path)
    out["think_numbers"] = think_number_pairs(text, reference) if reference else None

    implied = None
    if path == "dtr" and pred["category"] in questions.REGION_CATEGORIES and matched:
        implied = questions.answer_from_centers(pred["category"], matched, _truth_row(pred))
    elif path == "dtr" and pred["category"] in crossview.AS_SINGLE and matched and named_pose is not None:
        implied = questions.answer_from_centers(  # cross-view: the single-view rule in the frame it names
            crossview.AS_SINGLE[pred["category"]], matched, {**_truth_row(pred), "camera_to_world": named_pose})
    out["implied_answer"] = implied
    out["implied_agrees"] = (
        None if implied is None else answers_agree(stated, implied, answer_type, agreement_abs, agreement_rel)
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
    predictions: Iterable[Mapping[str, Any]], settings: ScoringSettings | None = None
) -> list[dict]:
    """`score_prediction` of each row."""
    return [score_prediction(p, settings) for p in predictions]


# ----------------------------------------------------------------------------- aggregation


def group_metrics(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metric columns of one group of scored predictions (see the module docstring)."""
    choice = [p for p in scored if p["answer_type"] not in ("number", "motion")]
    number = [p for p in scored if p["answer_type"] == "number"]
    motion = [p for p in scored if p["answer_type"] == "motion"]
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
        **({"motion_accuracy": _mean([p["accuracy"] for p in motion])} if motion else {}),
        "center_error_m": median(errors),
        "detect_reward": _mean([p["detect"] for p in dtr if p.get("detect") is not None]),
        "format_rate": _mean([float(p["format"]) for p in scored]),
        "implied_answer_agreement": _mean([float(p["implied_agrees"]) for p in implied]),
        "label_recall": _mean([p["label_recall"] for p in scored if p.get("label_recall") is not None]),
        "top_letter_share": top_letter_share([p.get("pred_answer") for p in choice]),
        **option_metrics(choice),
        "think_number_corr": think_number_corr(scored),
    }


_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def think_numbers(text: str) -> list[float] | None:
    """The numbers in the first `<think>` of `text` in order; None without one."""
    match = _THINK.search(text or "")
    return None if match is None else [float(x) for x in _NUMBER.findall(match.group(1))]


def think_number_pairs(text: str, reference: str) -> list[list[float]] | None:
    """[[reference, stated], ...] of the numbers of the two `<think>`s by position; None unless
    both have one and they state equally many (at least one) numbers."""
    stated, truth = think_numbers(text), think_numbers(reference)
    if not stated or not truth or len(stated) != len(truth):
        return None
    return [[g, x] for g, x in zip(truth, stated)]


def think_number_corr(scored: Sequence[Mapping[str, Any]]) -> float | None:
    """`think_number_corr` of a group of scored predictions (module docstring)."""
    cells: dict[tuple[str, int], list[list[float]]] = {}
    for p in scored:
        for i, pair in enumerate(p.get("think_numbers") or []):
            cells.setdefault((p["category"], i), []).append(pair)
    weighted, total = 0.0, 0
    for pairs in cells.values():
        if len(pairs) < 3:
            continue
        truth, stated = [g for g, _ in pairs], [x for _, x in pairs]
        if statistics.pstdev(truth) == 0 or statistics.pstdev(stated) == 0:
            continue
        weighted += statistics.correlation(truth, stated) * len(pairs)
        total += len(pairs)
    return weighted / total if total else None


def stated_option_of(text: str, choices: Sequence[str]) -> tuple[str, str] | None:
    """(option text, letter) of the last `TEXT (L)` in `text` whose TEXT is one of `choices`
    (a whole word or phrase: `smaller (A)` does not state `larger`); None without one.

    >>> stated_option_of("47 > 29, so the answer is right (B).", ["left", "right"])
    ('right', 'B')
    >>> stated_option_of("it is smaller (a)", ["larger", "smaller"])
    ('smaller', 'A')
    >>> stated_option_of("no option here (B)", ["left", "right"]) is None
    True
    """
    best: tuple[int, int, str, str] | None = None
    for option in choices:
        if not option:
            continue
        pattern = r"(?<![\w])" + re.escape(option) + r" \(([A-Ha-h])\)"
        for m in re.finditer(pattern, text):
            key = (m.end(), len(option), option, m.group(1).upper())
            if best is None or key[:2] > best[:2]:
                best = key
    return None if best is None else (best[2], best[3])


def option_metrics(choice: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """`option_accuracy` and `letter_agreement` of scored choice predictions (module docstring)."""
    stated = [p for p in choice if p.get("stated_option") and p.get("choices")]
    right_text, own_letter = [], []
    for p in stated:
        text, letter = p["stated_option"]
        options = list(p["choices"])
        truth = rewards.choice_letter(str(p["answer"]))
        truth_text = options[LETTERS.index(truth)] if truth and LETTERS.index(truth) < len(options) else None
        right_text.append(float(text == truth_text))
        own_letter.append(float(LETTERS[options.index(text)] == letter))
    return {"option_accuracy": _mean(right_text), "letter_agreement": _mean(own_letter)}


def top_letter_share(answers: Iterable[str | None]) -> float | None:
    """Share of the most common letter among the answers that are option letters; None without any.

    >>> top_letter_share(["A", "(a)", "B", None, "2.5"])
    0.6666666666666666
    """
    letters = [letter for letter in map(rewards.choice_letter, answers) if letter is not None]
    if not letters:
        return None
    return max(letters.count(a) for a in set(letters)) / len(letters)


def _rank(value: Any, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value), "") if value in order else (len(order), str(value))


def aggregate(scored: Iterable[Mapping[str, Any]]) -> list[dict]:
    """`metrics.json` rows: one per model x path x split x category, plus category `all`.

    Models keep their first-seen order; paths, splits and categories their canonical order."""
    scored = list(scored)
    models = list(dict.fromkeys(str(p["model"]) for p in scored))
    categories = (
        "all",
        "single_view",
        "multi_view",
        *schema.NUMERIC_CATEGORIES,
        *schema.CHOICE_CATEGORIES,
        *schema.GENERAL_ONLY_CATEGORIES,
    )
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    multi = any(int(p.get("views") or 1) > 1 for p in scored)
    for p in scored:
        base = (str(p["model"]), p["path"], p["split"])
        groups.setdefault((*base, "all"), []).append(p)
        if multi:  # single- and multi-view apart (issue #24)
            groups.setdefault((*base, "multi_view" if int(p.get("views") or 1) > 1 else "single_view"), []).append(p)
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
    predictions: Iterable[Mapping[str, Any]] | str | Path, settings: ScoringSettings | None = None
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
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {number} is not a JSON prediction row ({err.msg}): {line[:60]!r}") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path} line {number} is not a JSON object: {line[:60]!r}")
        rows.append(row)
    return rows


def write_results(
    out: str | Path, scored: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]]
) -> None:
    """`out/predictions.jsonl` (scored prediction rows) and `out/metrics.json` (`table`), each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_jsonl(out / PREDICTIONS_FILE, scored)
    io.write_json(out / METRICS_FILE, table)


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a `metrics.json` file (or of `DIR/metrics.json`)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


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
        "label_recall": "labels",
        "top_letter_share": "top_letter",
        "option_accuracy": "option_acc",
        "letter_agreement": "letter_agr",
        "think_number_corr": "think_corr",
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
