"""Each public benchmark's own scoring rule (SPEC section 8), beside the workbench's strict metrics.

The paper's numbers come from its evaluation scripts (jiyt17/SR-REAL, `cold-start/eval/`, commit
030d782), which read the first `<answer>...</answer>` of a reply (unstripped; the whole reply when
there is none) and then apply a rule per benchmark; the benchmarks' own harnesses read the raw
reply with rules of their own. Both are here, as *schemes*, so a table says which rule made a
number and a reader sees where they differ:

- spar. `official` (lmms-eval's `sparbench`, on the raw reply): a choice is right if the lower-cased
  reply equals the letter, is a substring of it (the empty reply too) or starts with it; a number is
  the first run of digits (the last for `_mv` tasks), sign ignored, scored by MRA with `<=` at the
  thresholds; camera moves by MRA per axis with gold and prediction swapped, as the code calls it;
  Low / Middle / High and the overall score are means over tasks, Middle without `view_change_infer`
  (the code loses it to a name-parsing slip). `sr-real`: the same rules on the answer span; levels,
  overall and the view x format sub-splits weighted by questions, `view_change_infer` in Middle.
- cvbench. `official` (Cambrian's harness, raw reply): the text after "answer is" / "answer:", a
  final dot and brackets dropped, its first character compared; the score is (mean of the ADE20K
  and COCO accuracies + the Omni3D accuracy) / 2. `sr-real`: the answer span stripped, lower-cased,
  `(`, `)`, spaces and dots removed, compared whole; accuracy per task and over all questions.
- sat. `official` (the SAT authors' harness): right if "answer is (X" names the letter, or the
  capital letter appears anywhere in the raw reply, or the reply is the letter. `sr-real`: as cvbench.
- embspatial. No published rule; `sr-real`: the first standalone A-D of the upper-cased answer span.
- spatialrgpt. `official`: a length is the first length in the answer converted to metres, right
  when 0.75 g <= x <= 1.25 g; a direction is right within one clock hour; qualitative answers are
  scored by **a rule standing in for the official GPT-4 judge** (yes / no polarity for predicates,
  the region named for choices), so those figures are approximate.

`score(pred)` gives a prediction row's {scheme: score in [0, 1]}; `summarize(scored)` the tables in
each benchmark's own grouping. Scores are fractions (the official SPAR-Bench figure is x 100).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench.dataset.benchmarks import common, spar, spatialrgpt

SCHEMES = ("official", "sr-real")
SUMMARY_FILE = "benchmark.json"
MRA_THRESHOLDS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))
"""SPAR's thresholds, as its code makes them (`np.linspace`), so a tie at a threshold falls the same way."""
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def answer_span(text: str) -> str:
    """What the paper's scripts score: the first `<answer>` span as it is (not stripped), else the reply.

    >>> answer_span("<think>x</think><answer> C </answer>"), answer_span("C) cube")
    (' C ', 'C) cube')
    """
    m = _ANSWER.search(text)
    return m.group(1) if m else text


# ----------------------------------------------------------------------------- SPAR-Bench


def spar_choice(pred: str, gold: str) -> float:
    """lmms-eval's `exact_match`: lower-cased, not stripped; equal, a substring of the gold, or the
    same first character.

    >>> [spar_choice(p, "C") for p in ("C", "c.", "C) cube", "cube (C)", "(C)", " C", "The answer is C", "")]
    [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    """
    p, g = pred.lower(), gold.lower()
    return float(p == g or p in g or p[:1] == g)


_DIGITS = re.compile(r"(?<!\^)(\d+\.\d+|\d+)")


def spar_number(pred: str, last: bool) -> float | None:
    """The number SPAR reads from a reply: the first run of digits (`last`: the last), the sign
    ignored; None when there is none.

    >>> spar_number("about -2.3 m, not 4", last=False), spar_number("2 then 4.5", last=True), spar_number("none", False)
    (2.3, 4.5, None)
    """
    found = _DIGITS.findall(pred)
    if not found:
        return None
    return float(found[-1] if last else found[0])


def spar_mra(x: float, g: float) -> float:
    """MRA as lmms-eval's sparbench computes it: error relative to |g| (absolute when g is 0),
    right at a threshold t when the error is <= 1 - t.

    >>> spar_mra(1.05, 1.0), spar_mra(1.5, 1.0), spar_mra(0.3, 0.0)
    (1.0, 0.1, 0.5)
    """
    e = abs(x - g) / abs(g) if g != 0 else abs(x - g)
    return sum(e <= 1 - t for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


_AXES = (
    ("move_right", "move_left"),
    ("move_up", "move_down"),
    ("move_forward", "move_backward"),
    ("rotate_right", "rotate_left"),
    ("rotate_up", "rotate_down"),
)


def _camera_moves(text: str) -> list[float] | None:
    values: dict[str, float] = {}
    try:
        for item in text.split(","):
            key, value = item.split(":")
            values[key] = float(value)
    except ValueError:
        return None
    return [values.get(plus, 0.0) - values.get(minus, 0.0) for plus, minus in _AXES]


def spar_camera(pred: str, gold: str) -> float:
    """The camera-move metric (`view_change_infer`): MRA per axis (right, up, forward, yaw, pitch),
    averaged; 0 for a malformed reply. As in the official code the prediction is the reference of
    the relative error (its arguments are swapped), so a 0 in the reply makes the error absolute.

    >>> spar_camera("move_right:0.4,rotate_right:60", "move_right:0.4,rotate_right:60"), spar_camera("left", "move_up:1")
    (1.0, 0.0)
    """
    p, g = _camera_moves(pred), _camera_moves(gold)
    if p is None or g is None:
        return 0.0
    return sum(spar_mra(gv, pv) for gv, pv in zip(g, p)) / len(_AXES)


def _spar(text: str, pred: Mapping[str, Any]) -> float:
    task, gold = pred["category"], str(pred["official_answer"])
    if task in spar.CAMERA_ACTION:
        return spar_camera(text, gold)
    if task in spar.NUMERIC:
        multi = task.endswith("_mv")
        x = spar_number(text, last=multi)
        if x is None:
            x = (
                -1.0 if multi else None
            )  # the official code: -1 for multi-view, an exception (0) for single-view
        return 0.0 if x is None else spar_mra(x, float(gold))
    return spar_choice(text, gold)


# ----------------------------------------------------------------------------- letters


def letter_strip(reply: str, gold: str) -> float:
    """The paper's CV-Bench / SAT rule: both stripped, lower-cased, `(`, `)`, spaces and dots
    removed, then equal.

    >>> [letter_strip(r, "(C)") for r in ("C", " (c). ", "C) cube", "The answer is C")]
    [1.0, 1.0, 0.0, 0.0]
    """

    def norm(s: str) -> str:
        return re.sub(r"[() .]", "", s.strip().lower())

    return float(norm(reply) == norm(gold))


def cambrian_letter(reply: str, gold: str, omni: bool = False, option: str = "") -> float:
    """Cambrian's CV-Bench harness: the text after "answer is" / "answer is:" / "answer:", stripped
    of a final dot and brackets, its first character compared with the gold letter.

    Its Omni3D script (the 3D half) also strips ":" and "," and accepts the gold option's text.

    >>> [cambrian_letter(r, "(C)") for r in ("C", "((C))", "The answer is (C).", "<answer>C</answer>", "cube")]
    [1.0, 1.0, 1.0, 0.0, 1.0]
    """
    text = reply.lower().strip()
    for key in ("answer is", "answer is:", "answer:"):
        if key in text:
            text = text.split(key)[-1]
    text = text.strip().rstrip(".:," if omni else ".").lstrip("(").rstrip(")")
    if omni and option and text == option.lower():  # the Omni3D script also takes the option's text
        return 1.0
    return float(text[:1] == gold.strip("()").lower()[:1] and text[:1] != "")


def sat_lenient(reply: str, gold: str) -> float:
    """The SAT authors' harness: "answer is (X" names the gold letter, or the capital letter appears
    anywhere in the reply, or the stripped reply is the letter (any case).

    >>> [sat_lenient(r, "B") for r in ("The answer is (B)", "<answer>B</answer>", "b", "A cube")]
    [1.0, 1.0, 1.0, 0.0]
    """
    m = re.search(r"answer is\s*\(?([A-Z])", reply)
    if m and m.group(1) == gold:
        return 1.0
    return float(gold in reply or reply.strip().lower() == gold.lower())


_STANDALONE = re.compile(r"\b([A-D])\b")


def first_letter(reply: str) -> str | None:
    """EmbSpatial's reading in the paper's script: the first standalone A-D of the upper-cased text
    (so an English "a" reads as A).

    >>> first_letter("It is (b)."), first_letter("a cup"), first_letter("none")
    ('B', 'A', None)
    """
    m = _STANDALONE.search(reply.upper())
    return m.group(1) if m else None


# ----------------------------------------------------------------------------- SpatialRGPT-Bench


def within_25(x: float | None, g: float) -> float:
    """SpatialRGPT-Bench's success: 0.75 g <= x <= 1.25 g (both ends in)."""
    return float(x is not None and 0.75 * g <= x <= 1.25 * g)


_CLOCK = re.compile(r"(\d{1,2})\s*o['’]?\s*clock", re.I)


def clock_hour(text: str) -> int | None:
    m = _CLOCK.search(text)
    return int(m.group(1)) if m and 1 <= int(m.group(1)) <= 12 else None


_YES = re.compile(r"^\W*(yes|correct|indeed|true|that is true|that's true)\b", re.I)
_NO = re.compile(r"^\W*(no|not|incorrect|false|in fact|actually|that is false|that's false)\b", re.I)
_REGION = re.compile(r"region\s*\[(\d+)\]", re.I)


def polarity(text: str) -> bool | None:
    """Yes (True) / no (False) at the start of an answer; None when it says neither. The benchmark's
    own negative answers include "In fact, ..." and "Actually, ..." (its generator's templates).

    >>> [polarity(t) for t in ("Yes, it is.", "Actually, it is below.", "That is True.", "That is False.", "1.2")]
    [True, False, True, False, None]
    """
    if _YES.search(text):
        return True
    if _NO.search(text):
        return False
    return None


def named_region(text: str) -> int | None:
    """Index of the first region an answer names: `Region [k]` or the k-th mark label."""
    hits = [(m.start(), int(m.group(1))) for m in _REGION.finditer(text)]
    low = text.lower()
    hits += [(low.find(lab), k) for k, lab in enumerate(common.REGION_LABELS) if lab in low]
    return min(hits)[1] if hits else None


def _spatialrgpt(text: str, pred: Mapping[str, Any]) -> float:
    category, gold = pred["category"], str(pred["official_answer"])
    if category in spatialrgpt.QUANTITATIVE:
        return within_25(common.metres_in(text), float(pred["answer"]))
    if category == spatialrgpt.DIRECTION:
        a, r = clock_hour(gold), clock_hour(text)
        return float(a is not None and r is not None and min(abs(a - r), 12 - abs(a - r)) <= 1)
    if "choice" in category:
        g = named_region(gold)
        return float(g is not None and named_region(text) == g)
    g, p = polarity(gold), polarity(text)
    return float(g is not None and p == g)


# ----------------------------------------------------------------------------- one prediction


def score(pred: Mapping[str, Any]) -> dict[str, float]:
    """{scheme: score in [0, 1]} of one prediction row of a benchmark (its `benchmark`,
    `category`, `answer`, `official_answer` and `completion`)."""
    from workbench.tasks import rewards

    raw = rewards.completion_text(pred.get("completion")) or ""
    span = answer_span(raw)
    bench, gold = pred["benchmark"], str(pred["official_answer"])
    if bench == "spar":
        return {"official": _spar(raw, pred), "sr-real": _spar(span, pred)}
    if bench == "cvbench":
        letter = gold.strip("()").upper()
        choices = pred.get("choices") or []
        option = choices[common.LETTERS.index(letter)] if letter in common.LETTERS[: len(choices)] else ""
        omni = (pred.get("group") or {}).get("source") == "Omni3D"
        return {"official": cambrian_letter(raw, gold, omni, option), "sr-real": letter_strip(span, gold)}
    if bench == "sat":
        return {"official": sat_lenient(raw, gold), "sr-real": letter_strip(span, gold)}
    if bench == "embspatial":
        return {"sr-real": float(first_letter(span) == first_letter(gold))}
    if bench == "spatialrgpt":
        return {"official": _spatialrgpt(span, pred)}
    raise ValueError(f"prediction {pred.get('id')!r}: unknown benchmark {bench!r}")


def score_all(predictions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of benchmark prediction rows with `official_scores` filled (other rows unchanged)."""
    return [{**p, "official_scores": score(p)} if p.get("benchmark") else dict(p) for p in predictions]


# ----------------------------------------------------------------------------- tables


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _rows(preds: Sequence[Mapping[str, Any]], scheme: str) -> list[dict[str, Any]]:
    """(group, score, n) rows of one model x path x benchmark under one scheme."""
    bench = preds[0]["benchmark"]
    s = [p["official_scores"][scheme] for p in preds]
    by: dict[str, dict[str, list[float]]] = {}

    def add(key: str, value: str, x: float) -> None:
        by.setdefault(key, {}).setdefault(value, []).append(x)

    for p, x in zip(preds, s):
        add("category", p["category"], x)
        for key, value in (p.get("group") or {}).items():
            add(key, value, x)
    out = [
        {"group": f"category={c}", "score": _mean(v), "n": len(v)} for c, v in sorted(by["category"].items())
    ]
    tasks = {c: _mean(v) for c, v in by["category"].items()}
    if bench == "spar" and scheme == "official":
        for level, members in (
            ("Low", spar.LOW),
            ("Middle", ("position_matching", "camera_motion_infer")),
            ("High", spar.HIGH),
        ):
            vals = [tasks[t] for t in members if t in tasks]
            out.append(
                {
                    "group": f"level={level}",
                    "score": _mean(vals),
                    "n": sum(len(by["category"][t]) for t in members if t in tasks),
                }
            )
        out.append({"group": "overall (mean of tasks)", "score": _mean(list(tasks.values())), "n": len(s)})
        return out
    if bench == "cvbench" and scheme == "official":
        src = {k: _mean(v) for k, v in by.get("source", {}).items()}
        two_d = [src[k] for k in ("ADE20K", "COCO") if k in src]
        parts = [x for x in (_mean(two_d), src.get("Omni3D")) if x is not None]
        out += [
            {"group": f"source={k}", "score": v, "n": len(by["source"][k])} for k, v in sorted(src.items())
        ]
        out.append({"group": "overall ((2D + 3D) / 2)", "score": _mean(parts), "n": len(s)})
        return out
    for key in sorted(by):
        if key != "category":
            out += [
                {"group": f"{key}={v}", "score": _mean(x), "n": len(x)} for v, x in sorted(by[key].items())
            ]
    if bench == "spar":  # the paper's sub-splits: view x format, weighted by questions
        cells: dict[str, list[float]] = {}
        for p, x in zip(preds, s):
            cells.setdefault(f"{p['group']['view']} {p['group']['format']}", []).append(x)
        out += [{"group": f"split={k}", "score": _mean(v), "n": len(v)} for k, v in sorted(cells.items())]
    if bench == "spatialrgpt":
        return out + _spatialrgpt_rows(preds, s)
    label = "overall (mean of questions)"
    if bench == "sat" and scheme == "official" and not any(p["id"].endswith("/reversed") for p in preds):
        label += "; one option order: the authors' protocol needs --circular"
    out.append({"group": label, "score": _mean(s), "n": len(s)})
    return out


RGPT_PAIRS = (("tall/short", ("tall", "short")), ("left/right", ("left", "right")), ("below/above", ("below", "above")),
              ("behind/front", ("behind", "front")), ("big/small", ("big", "small")), ("wide/thin", ("wide", "thin")))
"""SpatialRGPT-Bench's qualitative groups: categories matched by these words, in this order."""


def _spatialrgpt_rows(preds: Sequence[Mapping[str, Any]], s: Sequence[float]) -> list[dict[str, Any]]:
    """The official script's rows: qualitative accuracy per pair group and overall, quantitative
    success overall and, per length category, the mean absolute relative error of the answers it
    could read (`|x - g| / g`; unreadable answers count as misses but not in the error)."""
    qual = [(p, x) for p, x in zip(preds, s) if p["group"].get("type") == "qualitative"]
    quan = [(p, x) for p, x in zip(preds, s) if p["group"].get("type") == "quantitative"]
    out = []
    def pair_of(category: str) -> str | None:
        return next((name for name, words in RGPT_PAIRS if any(w in category for w in words)), None)

    for name, _ in RGPT_PAIRS:
        xs = [x for p, x in qual if pair_of(p["category"]) == name]
        if xs:
            out.append({"group": f"qualitative {name}", "score": _mean(xs), "n": len(xs)})
    errors: dict[str, list[float]] = {}
    for p, _ in quan:
        if p["category"] in spatialrgpt.QUANTITATIVE:
            x = common.metres_in(answer_span(p.get("completion") or ""))
            g = float(p["answer"])
            if x is not None and g > 0:
                errors.setdefault(p["category"], []).append(abs(x - g) / g)
    out += [{"group": f"abs_rel_error={c}", "score": _mean(v), "n": len(v)} for c, v in sorted(errors.items())]
    if qual:
        out.append({"group": "qualitative overall", "score": _mean([x for _, x in qual]), "n": len(qual)})
    if quan:
        out.append({"group": "quantitative overall", "score": _mean([x for _, x in quan]), "n": len(quan)})
    return out


def summarize(scored: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The benchmark tables of scored prediction rows: one row per model x path x benchmark x
    scheme x group ({model, path, benchmark, scheme, group, score, n})."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for p in scored:
        if p.get("benchmark") and p.get("official_scores"):
            groups.setdefault((p["model"], p["path"], p["benchmark"]), []).append(p)
    out = []
    for (model, path, bench), preds in groups.items():
        for scheme in SCHEMES:
            if scheme in preds[0]["official_scores"]:
                out += [
                    {"model": model, "path": path, "benchmark": bench, "scheme": scheme, **row}
                    for row in _rows(preds, scheme)
                ]
    return out


def format_summary(rows: Sequence[Mapping[str, Any]], groups: str = "overall") -> str:
    """A plain-text table of `summarize` rows; `groups`: "overall" (the headline rows and levels)
    or "all"."""
    keep = [
        r
        for r in rows
        if groups == "all" or not r["group"].startswith(("category=", "split=", "order=", "version=", "abs_rel"))
    ]
    if not keep:
        return "(no benchmark rows)"
    head = ("model", "path", "benchmark", "scheme", "group", "score", "n")
    body = [
        [
            str(r[h])
            if h != "score"
            else ("-" if r["score"] is None or math.isnan(r["score"]) else f"{r['score']:.3f}")
            for h in head
        ]
        for r in keep
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)
