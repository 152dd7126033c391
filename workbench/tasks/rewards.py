"""Rewards of SR-ReaL (SPEC section 4): `score` and the TRL reward functions built on it.

`score(completion, answer, centers, path)` is the reference: format, accuracy and (DTR with
ground-truth centers) the discrete center-based detect reward, combined with the paper's
weights. The parsing helpers (`normalize`, `parse_answer`, `parse_number`, `normalize_choice`,
`parse_centers`, `match_centers`, `center_score`, `tag_counts`, `format_ok`,
`completion_text`) are shared with evaluation, viz and the demo, so a model is judged by one
parser everywhere. Taught in `notebooks/04_grpo.ipynb` (reward lab).

Every pattern of the SPEC (`<answer>(.*?)</answer>`, the full-match format patterns, the
3d_box pattern) is evaluated with `str.find` scans that give the same answer as the regex
with dot-matches-newline, and the white-space and number rules with regexes written to be
linear: RL feeds these functions every string a policy can emit, and the obvious
backtracking regexes take quadratic (or worse) time on inputs such as 100 kB of white space
or of unclosed tags. `tests/test_rewards.py` checks each scan against the literal regex on
short strings and times 100 kB adversarial strings.

Decisions where the SPEC is silent (each also stated where it is implemented):
1. DTR format is the full match only; unlike LOR it does not require each tag exactly once
   (read literally). Accuracy still requires each think/answer tag exactly once on both paths.
2. A number answer must be a bare ASCII float literal: optional sign, digits with an optional
   decimal point, optional exponent (`3`, `+3`, `-0.5`, `.5`, `3.`, `1e5`). `nan`, `inf`,
   words, units, `1_000`, non-ASCII digits and values that overflow (`1e999999`) score 0.
   Surrounding white space is stripped first (the SPEC strips the answer).
3. Choice answers: strip, drop one pair of surrounding parentheses, strip, upper-case.
   A ground truth that is neither a choice nor a number (blend rows, `answer_type="text"`)
   is compared as text: equal after strip and case-folding.
4. "inside <detect>" is the first `<detect>(.*?)</detect>`; a center is three comma-separated
   bare floats (white space around each allowed); one center that fails to parse makes detect
   0 even if its text is later repeated. Predictions keep first-seen order with the last
   center (a Python dict), label containment is case-sensitive, and detect is clipped to 1
   (one prediction text could contain two labels).
5. `detect` is a key of the result exactly when it enters `overall` (path DTR with
   ground-truth centers); `centers` is ignored on the LOR path.
6. `completion=None` scores 0 everywhere; a bad ground truth (answer, centers, path) raises
   ValueError naming it, since it is a data bug and not something a policy can emit.

Multi-view rows (issue #24; section "Multi-view rules" below): `reference_frame`, `frame_detect`
(the detect reward against the centers of the frame a detect block names) and
`camera_motion_accuracy`; `score` and the TRL functions apply them to rows with `frame_centers`
and to `answer_type="motion"`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.schema import PATHS, centers_of

# the parsing helpers, re-exported: evaluation, viz and the demo read completions through `rewards`
from workbench.tasks.parsing import (
    ANSWER_TAGS,
    CAMERA_KEYS,  # noqa: F401 - re-exported
    FRAME_PREFIX,  # noqa: F401 - re-exported
    TAGS,  # noqa: F401 - re-exported
    _between,
    _check_path,
    _format_ok,
    _predictions,
    camera_moves,
    completion_text,
    format_ok,  # noqa: F401 - re-exported
    match_centers,
    normalize,
    parse_answer,  # noqa: F401 - re-exported
    parse_centers,  # noqa: F401 - re-exported
    parse_number,
    reference_frame,
    tag_counts,  # noqa: F401 - re-exported
)

CHOICE_LETTERS = ("A", "B", "C", "D", "E")
"""A ground truth that is one of these letters is a choice answer."""

CENTER_STEPS = ((0.1, 1.0), (0.2, 0.8), (0.3, 0.6), (0.4, 0.4), (0.6, 0.2), (1.0, 0.1))
"""(upper bound in m, score) of the discrete center reward: the first d < bound wins, else 0."""

@dataclass(frozen=True)
class RewardSettings:
    """Variants of the rewards (SPEC section 4 allows them as options); defaults are the SPEC."""

    center_reward: str = "step"
    """`step`: the SPEC's discrete score of a center at distance d; `exp`: continuous exp(-d / center_scale)."""
    center_scale: float = 0.3
    """Length scale in meters of the `exp` center reward."""
    detect_denominator: str = "predicted"
    """`predicted`: divide by the number of distinct predicted texts (SPEC); `max`: by max(that, number of
    ground-truth labels), so that missing an object costs reward (recall-aware variant)."""
    detect_reward: bool = True
    """False: DTR rows are scored without the detection reward, as a row without centers (accuracy
    0.8, format 0.2): the ablation of the paper's discrete center reward (issue #23)."""
    released_multiview: bool = False
    """True: multi-view detect scores as the released reward code computes them, both of its flaws
    included (`frame_detect(released=True)`), for exact comparison with it."""

    def __post_init__(self):
        if self.center_reward not in ("step", "exp"):
            raise ValueError(f"center_reward must be 'step' or 'exp', got {self.center_reward!r}")
        if not (math.isfinite(self.center_scale) and self.center_scale > 0):
            raise ValueError(f"center_scale must be a positive number of meters, got {self.center_scale!r}")
        if self.detect_denominator not in ("predicted", "max"):
            raise ValueError(
                f"detect_denominator must be 'predicted' or 'max', got {self.detect_denominator!r}"
            )


def center_score(distance: float, settings: RewardSettings | None = None) -> float:
    """Score of one detected center at `distance` meters from the truth.

    >>> [center_score(d) for d in (0.0, 0.1, 0.35, 0.99, 1.0)]
    [1.0, 0.8, 0.4, 0.1, 0.0]
    """
    settings = settings or RewardSettings()
    if not distance >= 0:  # nan (impossible from finite centers, but never a reward)
        return 0.0
    if settings.center_reward == "exp":
        return math.exp(-distance / settings.center_scale)
    return next((s for bound, s in CENTER_STEPS if distance < bound), 0.0)


# ----------------------------------------------------------------------------- ground truth


def normalize_choice(text: str) -> str:
    """A choice answer for comparison: stripped, one pair of surrounding parentheses dropped, upper-case.

    >>> [normalize_choice(s) for s in ("c", " (C) ", "( b )", "((C))", "C.")]
    ['C', 'C', 'B', '(C)', 'C.']
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        text = text[1:-1].strip()
    return text.upper()


def choice_letter(answer: str | None) -> str | None:
    """The option letter an answer names after `normalize_choice`, None if it names none.

    >>> [choice_letter(s) for s in ("(b)", " C ", "2.5", "", None)]
    ['B', 'C', None, None, None]
    """
    if answer is None:
        return None
    letter = normalize_choice(answer)
    return letter if letter in CHOICE_LETTERS else None


def _ground_truth(answer: Any, answer_type: str | None) -> tuple[str, Any]:
    """(kind, normalized ground truth); kind is choice, number or text."""
    if answer is None:
        raise ValueError("ground-truth answer is None")
    text = str(answer)
    if answer_type is None and normalize_choice(text) in CHOICE_LETTERS:
        answer_type = "choice"
    elif answer_type is None:
        answer_type = "number" if parse_number(text) is not None else "text"
    if answer_type == "choice":
        return "choice", normalize_choice(text)
    if answer_type == "number":
        g = parse_number(text)
        if g is None:
            raise ValueError(
                f"ground-truth answer {answer!r} of answer_type 'number' is not a finite bare number"
            )
        return "number", g
    if answer_type == "text":
        return "text", text.strip().casefold()
    if answer_type == "motion":
        if not camera_moves(text):
            raise ValueError(f"ground-truth camera motion {answer!r} has no key:value pair")
        return "motion", text
    raise ValueError(f"answer_type must be choice, number, text, motion or None, got {answer_type!r}")


def _ground_centers(centers: Any) -> dict[str, tuple[float, float, float]]:
    try:
        found = centers_of(centers)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"ground-truth centers must be {{label: [x, y, z]}}, got {centers!r}: {err}"
        ) from None
    for label, xyz in found.items():
        if not label or len(xyz) != 3 or not all(math.isfinite(c) for c in xyz):
            raise ValueError(f"ground-truth center {label!r}: {xyz!r} is not a labelled finite [x, y, z]")
    return {label: tuple(xyz) for label, xyz in found.items()}


def component_weights(path: str, has_centers: bool) -> dict[str, float]:
    """Weights of the components in `overall` (SPEC section 4), in summation order.

    >>> component_weights("dtr", has_centers=True)
    {'accuracy': 0.8, 'format': 0.1, 'detect': 0.1}
    """
    if _check_path(path) == "dtr" and has_centers:
        return {"accuracy": 0.8, "format": 0.1, "detect": 0.1}
    return {"accuracy": 0.8, "format": 0.2}


# ----------------------------------------------------------------------------- scores


def _accuracy(text: str, kind: str, truth: Any) -> float:
    if any(text.count(tag) != 1 for tag in ANSWER_TAGS):
        return 0.0
    answer = _between(text, "<answer>", "</answer>")
    if answer is None:  # both tags once, but </answer> first
        return 0.0
    answer = answer.strip()
    if kind == "choice":
        value = float(normalize_choice(answer) == truth)
    elif kind == "number":
        x = parse_number(answer)
        # |x - g| can overflow to inf for huge finite x; exp(-inf) = 0, never nan.
        value = 0.0 if x is None else math.exp(-2.0 * abs(x - truth) / (abs(truth) + 0.01))
    elif kind == "motion":
        value = camera_motion_accuracy(answer, truth)
    else:
        value = float(answer.casefold() == truth)
    return round(value, 2)


def detect_score(completion: str, truth: Mapping[str, Sequence[float]], settings: RewardSettings | None = None) -> float:
    """The SPEC detect reward of a completion against centers {label: [x, y, z]} (multi-view
    rules call it with the centers of the frame a completion names: `frame_detect`)."""
    return _detect(normalize(completion), truth, settings or RewardSettings())


def _detect(text: str, truth: Mapping[str, Sequence[float]], settings: RewardSettings) -> float:
    predicted = _predictions(text)
    if not predicted:  # no box, or a center that fails to parse
        return 0.0
    matched = match_centers(predicted, list(truth))
    if not matched:
        return 0.0
    total = sum(center_score(math.dist(xyz, truth[label]), settings) for label, xyz in matched.items())
    denominator = len(predicted)
    if settings.detect_denominator == "max":
        denominator = max(denominator, len(truth))
    return min(1.0, total / denominator)


def frame_truths(frame_centers: Any) -> dict[int, dict[str, tuple[float, float, float]]]:
    """{frame: {label: center}} of a multi-view row's `frame_centers` (JSON or dict); {} without."""
    if frame_centers is None or frame_centers == "":
        return {}
    try:
        found = json.loads(frame_centers) if isinstance(frame_centers, str) else frame_centers
        return {int(frame): _ground_centers(dict(centers)) for frame, centers in found.items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"frame_centers must be {{frame: {{label: [x, y, z]}}}}, got {frame_centers!r}: {err}") from None


def _components(completion, answer, centers, path, answer_type, settings, frame_centers=None, reference_frame=None):
    """(components, weights) of one row; both dicts share keys and order. A multi-view row (with
    `frame_centers`) scores its detect block against the frame it names (`frame_detect`;
    `reference_frame` > 0: the frame the question requires)."""
    kind, truth = _ground_truth(answer, answer_type)
    truth_centers = _ground_centers(centers) if _check_path(path) == "dtr" else {}
    if settings is not None and not settings.detect_reward:
        truth_centers = {}
    weights = component_weights(path, bool(truth_centers))
    text = completion_text(completion)
    if text is None:
        return dict.fromkeys(weights, 0.0), weights
    text = normalize(text)
    values = {"accuracy": _accuracy(text, kind, truth), "format": float(_format_ok(text, path))}
    if "detect" in weights:
        frames = frame_truths(frame_centers)
        if frames:
            settings = settings or RewardSettings()
            values["detect"] = frame_detect(text, frames, int(reference_frame or 0) or None,
                                                      released=settings.released_multiview, settings=settings)
        else:
            values["detect"] = _detect(text, truth_centers, settings or RewardSettings())
    return values, weights


def score(
    completion: str | None,
    answer: str,
    centers: Mapping[str, Sequence[float]] | str | None = None,
    path: str = "lor",
    answer_type: str | None = None,
    settings: RewardSettings | None = None,
    frame_centers: Mapping[Any, Any] | str | None = None,
    reference_frame: int | None = None,
) -> dict[str, float]:
    """The SPEC section 4 reward of one completion: {overall, format, accuracy[, detect]}.

    `answer` is the ground truth (a letter for choice questions, a number string in meters);
    `answer_type` (choice|number|text) overrides inferring the kind from it. `centers` are the
    ground-truth centers {region label: [x, y, z]} (dict or the dataset's JSON string); `detect`
    is present exactly when the path is DTR and centers are given. Every value is a finite
    float in [0, 1]. `settings` selects the variants (default: the SPEC). A multi-view row passes
    `frame_centers` ({frame: {label: [x, y, z]}}) and its `reference_frame` (0 or None: any frame);
    `answer_type="motion"` scores a camera-motion answer (`camera_motion_accuracy`).

    >>> score("<think>2 m apart</think>\\n<answer>(b)</answer>", "B")
    {'overall': 1.0, 'format': 1.0, 'accuracy': 1.0}
    >>> dtr = '<detect><3d_box center="0.05,0,1">cube (red box)</3d_box></detect><think>t</think><answer>1.1</answer>'
    >>> score(dtr, "1.00", {"red box": [0, 0, 1]}, path="dtr")
    {'overall': 0.856, 'format': 1.0, 'accuracy': 0.82, 'detect': 1.0}
    """
    values, weights = _components(completion, answer, centers, path, answer_type, settings, frame_centers,
                                  reference_frame)
    overall = sum(w * values[k] for k, w in weights.items())
    return {"overall": min(1.0, max(0.0, overall)), "format": values["format"], **values}


# ----------------------------------------------------------------------------- multi-view rules
# Multi-view DTR's reward rules (SPEC sections 2 and 4; issue #24, item 3): the reference frame a
# detect block names, the detect reward against that frame's ground truth, and camera-motion accuracy.
#
# A multi-view detect block starts `<detect>After aligning to the reference frame K, find N relevant
# objects:` and gives every center in frame K's camera coordinates (frames counted from 1). The
# ground truth of a question holds each region's center in every frame ({frame: {label: [x, y, z]}}),
# and the detect reward (`detect_score`) is taken against the named frame's. A question may
# require one frame (`required_frame`: the released code's `first_main_frame`, "the question mentions
# the first image"); naming another frame then scores 0.
#
# The released reward code (jiyt17/SR-REAL, `grpo/examples/reward_function/r1v_vila.py`, commit 030d782)
# has two flaws the workbench does not copy by default; `released=True` reproduces both, for exact
# comparison:
# 1. it reads the frame as the one character after the prefix, so frame 12 reads as 1 (and frame 10
#    as 1, a wrong frame);
# 2. where a frame is required it compares that character (a string) with the integer 0, which is
#    never equal, so the detect score is 0 whatever frame is named.
#
# Camera-motion answers (`move_right:0.4,move_forward:2.4,rotate_right:60`, meters and degrees) score
# the SPEC's exponential numeric score per ground-truth key, averaged over those keys: a missing key
# scores 0, an extra key costs nothing (as the released code scores them). `multiview.camera_motion`
# computes that answer between two views from their poses. `RewardSettings.released_multiview` and
# `score(..., frame_centers=..., reference_frame=...)` apply these rules to a multi-view row.

def frame_detect(
    completion: str,
    frame_centers: Mapping[int | str, Mapping[str, Sequence[float]]],
    required_frame: int | None = None,
    released: bool = False,
    settings: RewardSettings | None = None,
) -> float:
    """The multi-view detect reward: the SPEC detect score against the centers of the frame the
    completion names (`frame_centers`: {frame: {label: [x, y, z]}}, frames counted from 1); 0 when it
    names no frame, one without ground truth, or not `required_frame` when the question requires one.

    >>> truth = {1: {"red box": [0.3, -0.8, 3.3]}, 2: {"red box": [0.7, -1.7, 3.1]}}
    >>> done = '<3d_box center="0.3,-0.8,3.3">bin (red box)</3d_box></detect><think>t</think><answer>C</answer>'
    >>> [frame_detect(FRAME_PREFIX + k + ", find 1 relevant objects:\\n" + done, truth) for k in ("1", "2", "3")]
    [1.0, 0.0, 0.0]
    """
    frame = reference_frame(completion, released)
    if frame is None:
        return 0.0
    if required_frame is not None:
        if released:  # the released code compares a string with 0: never equal, so always 0
            return 0.0
        if frame != required_frame:
            return 0.0
    truth = {int(k): v for k, v in frame_centers.items()}.get(frame)
    if not truth:
        return 0.0
    return detect_score(completion, truth, settings)


def camera_motion_accuracy(answer: str | None, truth: str) -> float:
    """The exponential numeric score per ground-truth key (`exp(-2|x - g| / (|g| + 0.01))`),
    averaged over the ground-truth keys; a missing key scores 0. Rounded to 2 decimals like accuracy.

    >>> camera_motion_accuracy("move_right:0.4,rotate_right:60", "move_right:0.4,rotate_right:60")
    1.0
    >>> camera_motion_accuracy("move_right:0.4", "move_right:0.4,rotate_right:60")
    0.5
    """
    gold = camera_moves(truth)
    if not gold:
        raise ValueError(f"camera-motion ground truth {truth!r} has no key:value pair")
    given = camera_moves(answer or "")
    total = 0.0
    for key, g in gold.items():
        if key in given:
            total += math.exp(-2 * abs(given[key] - g) / (abs(g) + 0.01))
    return round(total / len(gold), 2)


# ----------------------------------------------------------------------------- TRL reward functions


class RewardFunc:
    """One component as a TRL reward function `f(completions, **columns) -> list[float | None]`.

    Columns used per row: `answer` (required), `answer_type`, `centers`, `frame_centers` and
    `reference_frame` (multi-view rows), and `path` (required
    when `path_mode="joint"`; `lor` / `dtr` score every row on that path). With
    `weighted=True` a row's value is already multiplied by its SPEC weight on that row's path
    (format is 0.2 on LOR rows but 0.1 on DTR rows with centers), so with TRL
    `reward_weights` all 1.0 the sum over components is exactly `score(...)["overall"]` even
    in a joint batch mixing paths. `detect` is None on rows where it is not part of overall
    (TRL reads None as NaN, leaves it out of the mean and adds it as 0). When TRL passes
    `log_metric`, the unweighted mean per path is logged as `rewards/<name>/<path>`.

    >>> f = RewardFunc("format", weighted=True)
    >>> f(["<think>a</think><answer>B</answer>"] * 2, answer=["B", "B"], path=["lor", "dtr"])
    [0.2, 0.0]
    """

    def __init__(
        self,
        component: str,
        path_mode: str = "joint",
        settings: RewardSettings | None = None,
        weighted: bool = False,
    ):
        if component not in ("accuracy", "format", "detect"):
            raise ValueError(f"component must be accuracy, format or detect, got {component!r}")
        if path_mode not in ("joint", *PATHS):
            raise ValueError(f"path_mode must be 'joint', 'lor' or 'dtr', got {path_mode!r}")
        self.component = component
        self.path_mode = path_mode
        self.settings = settings
        self.weighted = weighted
        self.__name__ = component  # TRL logs rewards/<__name__>/mean

    def __repr__(self) -> str:
        return f"RewardFunc({self.component!r}, path_mode={self.path_mode!r}, weighted={self.weighted})"

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)

        def column(name: str, required: bool = False) -> Sequence[Any]:
            values = columns.get(name)
            if values is None:
                if required:
                    raise ValueError(f"reward function {self.component!r} needs the dataset column {name!r}")
                return [None] * n
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
            return values

        answers, types, centers = column("answer", True), column("answer_type"), column("centers")
        frames, references = column("frame_centers"), column("reference_frame")
        paths = column("path", True) if self.path_mode == "joint" else [self.path_mode] * n
        rewards, per_path = [], {}
        for completion, answer, centers_, path, answer_type, frames_, reference in zip(
            completions, answers, centers, paths, types, frames, references
        ):
            values, weights = _components(completion, answer, centers_, path, answer_type, self.settings, frames_,
                                          reference)
            value = values.get(self.component)
            if value is not None:
                per_path.setdefault(path, []).append(value)
                value = weights[self.component] * value if self.weighted else value
            rewards.append(value)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            for path, values in per_path.items():
                log_metric(f"rewards/{self.component}/{path}", sum(values) / len(values))
        return rewards


def accuracy_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    """Unweighted accuracy per row (columns `answer`, optional `answer_type`).

    >>> accuracy_reward(["<think>a</think><answer>(c)</answer>", "<answer>C</answer>"], answer=["C", "C"])
    [1.0, 0.0]
    """
    return RewardFunc("accuracy", "joint" if "path" in columns else "lor")(completions, **columns)


def format_reward(completions: Sequence[Any], **columns: Any) -> list[float]:
    """Unweighted format per row on its `path`.

    >>> format_reward([[{"role": "assistant", "content": "<think>a</think><answer>B</answer>"}]] * 2,
    ...               answer=["B", "B"], path=["lor", "dtr"])
    [1.0, 0.0]
    """
    return RewardFunc("format")(completions, **columns)


def detect_reward(completions: Sequence[Any], **columns: Any) -> list[float | None]:
    """Unweighted detect per row; None on rows without it (LOR, or no ground-truth centers).

    >>> box = '<detect><3d_box center="0,0,1.15">cube (red box)</3d_box></detect><think>t</think><answer>A</answer>'
    >>> detect_reward([box, box], answer=["A", "A"], path=["dtr", "lor"], centers=['{"red box": [0, 0, 1]}'] * 2)
    [0.8, None]
    """
    return RewardFunc("detect")(completions, **columns)


def reward_funcs(path_mode: str = "joint", settings: RewardSettings | None = None):
    """(reward functions, weights) for `GRPOTrainer(reward_funcs=..., args=GRPOConfig(reward_weights=...))`.

    The functions are weighted per row (see `RewardFunc`), so the weights are all 1.0 and TRL's
    weighted sum equals `score(...)["overall"]` on every row. `path_mode="lor"` has no detect, nor
    has `settings.detect_reward=False`.

    >>> funcs, weights = reward_funcs("joint")
    >>> [f.__name__ for f in funcs], weights
    (['accuracy', 'format', 'detect'], [1.0, 1.0, 1.0])
    """
    detect = path_mode != "lor" and (settings is None or settings.detect_reward)
    names = ("accuracy", "format", "detect") if detect else ("accuracy", "format")
    funcs = [RewardFunc(name, path_mode, settings, weighted=True) for name in names]
    return funcs, [1.0] * len(funcs)
