"""Completions as HTML: tags, numbers and each detected center colored by its detect score
(`trace_html`). Taught in `notebooks/06_traces_3d.ipynb`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import numpy as np

from workbench.schema import centers_of
from workbench.tasks.rewards import center_score, parse_number

# ----------------------------------------------------------------------------- traces as HTML

_TAG_STYLE = {
    "think": "color:#6a3d9a;font-weight:bold",
    "answer": "color:#b15928;font-weight:bold",
    "detect": "color:#1f78b4;font-weight:bold",
    "3d_box": "color:#33a02c;font-weight:bold",
}
_TOKEN = re.compile(
    r"(?P<tag><\s*(?P<close>/\s*)?(?P<name>think|answer|detect|3d_box)\b(?P<attrs>[^<>]*)>)"
    r"|(?P<num>(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?![\w]))"
)
# Linear: one `\s*` before the optional `/` (two adjacent ones would split a run of blanks in
# quadratically many ways), `[^<>]*` stops at the next bracket, and a number cannot start inside
# a run of digits (the look-behind), so each character is scanned a bounded number of times.
# Completions are untrusted (a policy can emit anything): every other character is html-escaped.
_CENTER_ATTR = re.compile(r'center\s*=\s*"([^"]*)"')
_SCORE_COLORS = ((0.8, "#1a9850"), (0.4, "#fdae61"), (0.0, "#d73027"))


def _span(text: str, style: str, title: str | None = None) -> str:
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<span style="{style}"{t}>{text}</span>'


def trace_html(
    completion: str | None,
    centers: Mapping[str, Sequence[float]] | str | None = None,
    title: str | None = None,
) -> str:
    """HTML of a reasoning trace: tags colored by kind, numbers highlighted, the content of
    `<answer>` boxed, each 3d_box's center highlighted; with ground-truth `centers`
    ({label: xyz} or the row's JSON string), each box whose text contains a label gets a badge
    with its distance to that center (green < 0.2 m, orange < 0.6 m, red beyond). Everything
    from the completion is HTML-escaped; the result is one self-contained `<div>` with inline
    styles (Jupyter's sanitizer keeps them), linear in the completion's length. An empty
    completion is said to be empty.
    """
    truth = (
        centers_of(centers) if isinstance(centers, str) else {k: list(v) for k, v in (centers or {}).items()}
    )
    text = "" if completion is None else str(completion)
    out: list[str] = []
    if title:
        out.append(f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(title)}</div>')
    pos = 0
    in_answer = False
    box: dict | None = None  # the open 3d_box: its parsed center and where its text starts
    for m in _TOKEN.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        pos = m.end()
        if m.group("num") is not None:
            style = (
                "background:#fff3b0;color:#7a4f00" if not in_answer else "background:#ffd8a8;font-weight:bold"
            )
            out.append(_span(html.escape(m.group("num")), style))
            continue
        name, closing = m.group("name"), bool(m.group("close"))
        style = _TAG_STYLE[name]
        if name == "3d_box" and not closing:
            attr = _CENTER_ATTR.search(m.group("attrs"))
            if attr is None:
                out.append(_span(html.escape(m.group(0)), style))
                xyz = None
            else:
                a, b = m.start("attrs") + attr.start(1), m.start("attrs") + attr.end(1)
                parts = attr.group(1).split(",")
                xyz = [parse_number(p) for p in parts] if len(parts) == 3 else None
                xyz = None if xyz is None or None in xyz else xyz
                value_style = "font-weight:bold;" + (
                    "background:#c7e9c0;color:#00441b" if xyz else "background:#fcbba1;color:#67000d"
                )
                out.append(
                    _span(html.escape(text[m.start() : a]), style)
                    + _span(html.escape(text[a:b]), value_style, None if xyz else "does not parse as x,y,z")
                    + _span(html.escape(text[b : m.end()]), style)
                )
            box = {"xyz": xyz, "start": m.end()}
            continue
        if name == "answer" and closing and in_answer:
            out.append("</span>")
            in_answer = False
        out.append(_span(html.escape(m.group(0)), style))
        if name == "answer" and not closing and not in_answer:
            out.append('<span style="border:1px solid #b15928;border-radius:3px;padding:0 2px">')
            in_answer = True
        if name == "3d_box" and closing and box is not None:
            out.append(_box_badge(text[box["start"] : m.start()], box["xyz"], truth))
            box = None
    out.append(html.escape(text[pos:]))
    if in_answer:
        out.append("</span>")
    if not text.strip():  # an untrained model often stops at once: say so instead of an empty box
        out.append(_span("(empty completion: the model wrote nothing before its end-of-turn token)",
                         "color:#888;font-style:italic"))
    body = "".join(out)
    return (
        '<div style="font-family:monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;'
        f'line-height:1.5;border:1px solid #ddd;padding:6px;border-radius:4px">{body}</div>'
    )


def _box_badge(box_text: str, xyz: list[float] | None, truth: Mapping[str, Sequence[float]]) -> str:
    if not truth:
        return ""
    label = next((lab for lab in truth if lab in box_text), None)
    if label is None:
        return _span(" [no ground-truth label]", "color:#888;font-size:11px")
    if xyz is None:
        return _span(f" [{html.escape(label)}: center does not parse]", "color:#d73027;font-size:11px")
    d = float(np.linalg.norm(np.asarray(xyz) - np.asarray(truth[label], dtype=np.float64)))
    color = next(c for bound, c in _SCORE_COLORS if center_score(d) >= bound)
    return _span(
        f" \u0394 {d:.2f} m",
        f"background:{color};color:white;border-radius:3px;padding:0 3px;font-size:11px;white-space:nowrap",
        f"{label}: true center {', '.join(f'{float(v):.2f}' for v in truth[label])}; center score {center_score(d):.1f}",
    )


def question_html(row: Mapping[str, object], title: str | None = None, truth: bool = True) -> str:
    """A question as HTML, every text escaped (a `<region>` token is shown, not read as a tag):
    the title (default: category and task), the question, its options lettered A, B, ... and
    with `truth` the answer, a letter followed by its option ("B (closer)").

    >>> question_html({"category": "front_behind", "task": "region_qa", "answer": "B",
    ...                "question": "Is the red box <region> closer?", "choices": ["farther", "closer"]})
    '<h4>front_behind (region_qa)</h4><p>Is the red box &lt;region&gt; closer?<br>A. farther<br>B. closer<br><b>truth: B (closer)</b></p>'
    """
    choices = [str(c) for c in (row.get("choices") or [])]
    answer = str(row.get("answer", ""))
    heading = title if title is not None else f"{row.get('category', '')} ({row.get('task', '')})"
    options = "".join(f"<br>{chr(65 + i)}. {html.escape(c)}" for i, c in enumerate(choices))
    k = ord(answer) - 65 if len(answer) == 1 and answer.isupper() else -1
    shown = f"{answer} ({choices[k]})" if 0 <= k < len(choices) else answer
    tail = f"<br><b>truth: {html.escape(shown)}</b>" if truth else ""
    head = f"<h4>{html.escape(heading)}</h4>" if heading else ""  # title="": under a caller's own heading
    return f"{head}<p>{html.escape(str(row.get('question', '')))}{options}{tail}</p>"


def examples_html(rows: Sequence[Mapping[str, object]], open_first: int = 1) -> str:
    """One HTML block for example rows (one output in a notebook, however many rows): each row
    folded under its task and category (`<details>`), holding `question_html` and both targets
    (`trace_html`, the DTR one with the row's centers); the first `open_first` rows unfolded.

    >>> html_ = examples_html([{"task": "region_qa", "category": "left_right", "question": "Q <region>?",
    ...                         "choices": [], "answer": "A", "lor_target": "", "dtr_target": ""}] * 2)
    >>> html_.count("<details"), html_.count("<details open>"), "Q &lt;region&gt;?" in html_
    (2, 1, True)
    """
    parts = []
    for k, row in enumerate(rows):
        summary = html.escape(f"{row.get('task', '')} / {row.get('category', '')}: {row.get('question', '')}")
        body = (question_html(row)
                + trace_html(str(row.get("lor_target", "")), title="LOR target")
                + trace_html(str(row.get("dtr_target", "")), row.get("centers") or None, title="DTR target"))
        parts.append(f"<details{' open' if k < open_first else ''}><summary>{summary}</summary>{body}</details>")
    return "".join(parts)



def answers_html(rows: Sequence[Mapping[str, object]], records: Sequence[Mapping[str, object]],
                 open_first: int = 1, image: bool = False) -> str:
    """One HTML block of model answers (one output in a notebook, however many questions): each
    row folded (`<details>`) under its category and question, holding `question_html`, with
    `image` the row's marked image (enlarged, pixels kept sharp), and the trace of every record of
    that row in `records` (dicts with `id`, `path`, `completion`, the scores `format`, `accuracy`,
    `overall` and optionally `model`), DTR traces with the row's centers; the first `open_first`
    rows unfolded.

    >>> row = {"id": "q1", "category": "left_right", "question": "Q <region>?", "choices": ["left", "right"],
    ...        "answer": "A", "centers": "{}"}
    >>> rec = {"id": "q1", "model": "sft", "path": "lor", "completion": "", "format": 0.0, "accuracy": 0.0,
    ...        "overall": 0.0}
    >>> html_ = answers_html([row, {**row, "id": "q2"}], [rec])
    >>> html_.count("<details"), html_.count("<details open>"), "sft LOR: format 0" in html_, "(empty completion" in html_
    (2, 1, True, True)
    """
    parts = []
    for k, row in enumerate(rows):
        mine = [r for r in records if r.get("id") == row.get("id")]
        summary = html.escape(f"{row.get('category', '')}: {row.get('question', '')}")
        body = [question_html(row, title="")]
        if image:
            import base64

            from workbench.viz.scenes import image_png

            uri = "data:image/png;base64," + base64.b64encode(image_png(row)).decode()
            body.append(f'<img src="{uri}" width="224" style="image-rendering:pixelated">')
        for rec in mine:
            who = f"{rec['model']} " if rec.get("model") else ""
            title = (f"{who}{str(rec.get('path', '')).upper()}: format {float(rec.get('format') or 0):.0f}, "
                     f"accuracy {float(rec.get('accuracy') or 0):.2f}, overall {float(rec.get('overall') or 0):.2f}")
            centers = row.get("centers") if rec.get("path") == "dtr" else None
            body.append(trace_html(rec.get("completion"), centers or None, title=title))
        if not mine:
            body.append("<p>(no answer recorded for this question)</p>")
        parts.append(f"<details{' open' if k < open_first else ''}><summary>{summary}</summary>{''.join(body)}</details>")
    return "".join(parts)
