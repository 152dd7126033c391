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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.schema import PATHS, centers_of

TAGS = ("<detect>", "</detect>", "<think>", "</think>", "<answer>", "</answer>")
"""The tags of both output formats (SPEC section 2), after `normalize`."""

ANSWER_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
"""Each must occur exactly once for accuracy (both paths) and for the LOR format."""

CHOICE_LETTERS = ("A", "B", "C", "D", "E")
"""A ground truth that is one of these letters is a choice answer."""

CENTER_STEPS = ((0.1, 1.0), (0.2, 0.8), (0.3, 0.6), (0.4, 0.4), (0.6, 0.2), (1.0, 0.1))
"""(upper bound in m, score) of the discrete center reward: the first d < bound wins, else 0."""

_WS = re.compile(r"\s+")  # a maximal run: no backtracking, one match per run
_BARE_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Unambiguous: digits after the point only follow a mandatory point, so a failed fullmatch
# backtracks each quantifier once (linear), unlike `\d+\.?\d*`.
_AROUND_SPECIAL = re.compile(r"(?<=[<>/])\s+|(?<!\s)\s+(?=[<>/])")
# Linear: a run after < > / is taken whole by the first branch; the second only starts at the
# beginning of a run (`(?<!\s)`), so a run followed by nothing special is scanned once, not once
# per position as in the quadratic `\s*([<>/])\s*`.
_BOX_OPEN, _BOX_MID, _BOX_CLOSE = '<3d_box center="', '">', "</3d_box>"


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
    included (`multiview.frame_detect(released=True)`), for exact comparison with it."""

    def __post_init__(self):
        if self.center_reward not in ("step", "exp"):
            raise ValueError(f"center_reward must be 'step' or 'exp', got {self.center_reward!r}")
        if not (math.isfinite(self.center_scale) and self.center_scale > 0):
            raise ValueError(f"center_scale must be a positive number of meters, got {self.center_scale!r}")
        if self.detect_denominator not in ("predicted", "max"):
            raise ValueError(
                f"detect_denominator must be 'predicted' or 'max', got {self.detect_denominator!r}"
            )


# ----------------------------------------------------------------------------- parsing helpers


def completion_text(completion: Any) -> str | None:
    """The text of a completion as TRL passes it: a string, or a list of chat messages.

    >>> completion_text([{"role": "assistant", "content": "<answer>B</answer>"}])
    '<answer>B</answer>'
    """
    if completion is None or isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        if not completion:
            return ""
        # The reply is the last assistant message (tool calls may precede it).
        replies = [m for m in completion if m.get("role", "assistant") == "assistant"] or list(completion)
        content = replies[-1].get("content")
        if content is None or isinstance(content, str):
            return content
        if isinstance(content, Sequence):  # multimodal parts [{"type": "text", "text": ...}]
            parts = [p.get("text") for p in content if isinstance(p, Mapping)]
            return "".join(t for t in parts if isinstance(t, str))
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def normalize(completion: str) -> str:
    """Remove white space around `<`, `>` and `/` (SPEC section 4), in linear time.

    >>> normalize("< think > a / b </ think >\\n<answer> C </answer>")
    '<think>a/b</think><answer>C</answer>'
    """
    return _AROUND_SPECIAL.sub("", completion)


def tag_counts(completion: str) -> dict[str, int]:
    """How often each tag of `TAGS` occurs in the normalized completion.

    >>> tag_counts("<think>a</think><think>")["<think>"]
    2
    """
    text = normalize(completion)
    return {tag: text.count(tag) for tag in TAGS}


def _between(text: str, open_: str, close: str) -> str | None:
    """Group 1 of the first `open_(.*?)close` (dot matches newlines), or None."""
    i = text.find(open_)
    if i < 0:
        return None
    j = text.find(close, i + len(open_))
    # If the first opener has no closer after it, no later opener has one either.
    return None if j < 0 else text[i + len(open_) : j]


def parse_answer(completion: str) -> str | None:
    """The first `<answer>(.*?)</answer>` of the normalized completion, stripped; None if absent.

    Tag counts are not checked here (accuracy checks them).

    >>> parse_answer("<think>x</think> <answer> (b) </answer>")
    '(b)'
    """
    answer = _between(normalize(completion), "<answer>", "</answer>")
    return None if answer is None else answer.strip()


def parse_number(text: str) -> float | None:
    """`text` as a finite float if it is a bare ASCII float literal (after strip), else None.

    >>> [parse_number(s) for s in ("0.72", "+3", "1e2", " 2. ", "3 m", "nan", "inf", "1e999999")]
    [0.72, 3.0, 100.0, 2.0, None, None, None, None]
    """
    text = text.strip()
    if not _BARE_FLOAT.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999999 overflows to inf


def _parse_center(text: str) -> tuple[float, float, float] | None:
    parts = text.split(",")
    if len(parts) != 3:
        return None
    xyz = tuple(parse_number(p) for p in parts)
    return None if None in xyz else xyz  # type: ignore[return-value]


def _boxes(text: str) -> list[tuple[str, str]] | None:
    """(center text, box text) of each `<3d_box center="(.*?)">(.*?)</3d_box>` inside the first
    `<detect>(.*?)</detect>`, in order; None when there is no detect block."""
    block = _between(text, "<detect>", "</detect>")
    if block is None:
        return None
    boxes, pos = [], 0
    while (i := block.find(_BOX_OPEN, pos)) >= 0:
        j = block.find(_BOX_MID, i + len(_BOX_OPEN))
        k = block.find(_BOX_CLOSE, j + len(_BOX_MID)) if j >= 0 else -1
        if k < 0:  # no later opener can be closed either
            break
        boxes.append((block[i + len(_BOX_OPEN) : j], block[j + len(_BOX_MID) : k]))
        pos = k + len(_BOX_CLOSE)
    return boxes


def _predictions(text: str) -> dict[str, tuple[float, float, float]] | None:
    found = {}
    for center, label in _boxes(text) or ():
        xyz = _parse_center(center)
        if xyz is None:
            return None
        found[label] = xyz  # a repeated text keeps the last center (and its first position)
    return found


def parse_centers(completion: str) -> dict[str, tuple[float, float, float]] | None:
    """Predicted centers {box text: (x, y, z)} of the 3d_boxes inside `<detect>`.

    {} when there is no detect block or no box; None when any center fails to parse.

    >>> parse_centers('<detect><3d_box center="0.31,-0.27,1.3">cube (red box)</3d_box></detect>')
    {'cube (red box)': (0.31, -0.27, 1.3)}
    >>> parse_centers('<detect><3d_box center="1,2">cube (red box)</3d_box></detect>') is None
    True
    """
    return _predictions(normalize(completion))


def match_centers(
    predicted: Mapping[str, Sequence[float]], labels: Sequence[str]
) -> dict[str, tuple[float, float, float]]:
    """{label: center of the first prediction whose text contains the label} for labels that match.

    >>> match_centers({"cube (red box)": (0, 0, 1), "ball (blue box)": (1, 0, 1)}, ["blue box", "green box"])
    {'blue box': (1, 0, 1)}
    """
    matched = {}
    for label in labels:
        for text, xyz in predicted.items():
            if label in text:
                matched[label] = tuple(xyz)
                break
    return matched


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


def _full_match(text: str, pairs: Sequence[tuple[str, str]]) -> bool:
    """Whether `text` fully matches `o1.*?c1\\s*o2.*?c2 ... \\s*on.*?cn` (dot matches newlines).

    Taking, at each `ck\\s*o(k+1)` junction, its earliest occurrence is optimal (the `.*?` gaps are
    free and an earlier junction never ends later), and the white-space runs scanned after the
    candidate `ck` are disjoint, so this is linear.
    """
    if not text.startswith(pairs[0][0]):
        return False
    pos = len(pairs[0][0])
    for (_, close), (open_, _) in zip(pairs, pairs[1:]):
        q = text.find(close, pos)
        while q >= 0:
            m = _WS.match(text, q + len(close))
            after = m.end() if m else q + len(close)
            if text.startswith(open_, after):
                pos = after + len(open_)
                break
            q = text.find(close, q + 1)
        else:
            return False
    last = pairs[-1][1]
    return text.endswith(last) and len(text) - len(last) >= pos


_FORMAT_PAIRS = {
    "lor": (("<think>", "</think>"), ("<answer>", "</answer>")),
    "dtr": (("<detect>", "</detect>"), ("<think>", "</think>"), ("<answer>", "</answer>")),
}


def _format_ok(text: str, path: str) -> bool:
    if path == "lor" and any(text.count(tag) != 1 for tag in ANSWER_TAGS):
        return False  # DTR: the full match alone (decision 1)
    return _full_match(text, _FORMAT_PAIRS[path])


def format_ok(completion: str, path: str) -> bool:
    """Whether the completion has the format of `path` (SPEC section 4).

    >>> format_ok("<think>a</think>\\n<answer>B</answer>", "lor"), format_ok("<answer>B</answer>", "lor")
    (True, False)
    """
    return _format_ok(normalize(completion), _check_path(path))


# ----------------------------------------------------------------------------- ground truth


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


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
        from workbench.tasks import multiview
        if not multiview.camera_moves(text):
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
        from workbench.tasks import multiview
        value = multiview.camera_motion_accuracy(answer, truth)
    else:
        value = float(answer.casefold() == truth)
    return round(value, 2)


def detect_score(completion: str, truth: Mapping[str, Sequence[float]], settings: RewardSettings | None = None) -> float:
    """The SPEC detect reward of a completion against centers {label: [x, y, z]} (multi-view
    rules call it with the centers of the frame a completion names: `tasks.multiview`)."""
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


def _frames(frame_centers: Any) -> dict[int, dict[str, tuple[float, float, float]]]:
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
    `frame_centers`) scores its detect block against the frame it names (`multiview.frame_detect`;
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
        frames = _frames(frame_centers)
        if frames:
            from workbench.tasks import multiview
            settings = settings or RewardSettings()
            values["detect"] = multiview.frame_detect(text, frames, int(reference_frame or 0) or None,
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
    `answer_type="motion"` scores a camera-motion answer (`multiview.camera_motion_accuracy`).

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
