"""A browser over a model's predictions: filter, then read each path's trace beside the 3D centers.

Used by `notebooks/06_traces_3d.ipynb`:

    from workbench.widgets.trace_browser import trace_browser
    trace_browser(ds, "runs/smoke/eval/predictions.jsonl")

Prediction rows (one per completion, as `workbench eval` writes `predictions.jsonl`); the keys
read here, all but the first three optional:

- `id`: the dataset row's id (with `split`, finds the row: image, geometry, ground truth);
- `model`: the model's name; `path`: `lor`, `dtr` or `auto` (the path it was asked to take);
- `split`, `category`, `answer_type` (`choice` | `number`), `answer` (the ground truth);
- `completion`: the raw generated text;
- `pred_answer`: the parsed answer (`workbench.tasks.rewards.parse_answer`), None if none;
- `pred_centers`: the parsed detected centers {3d_box text: [x, y, z]} (camera frame, m) or a
  JSON string of it; None / {} when the completion has none (parsed from `completion` when
  the key is missing);
- `correct`: bool, the answer is right (choice: same letter; number: the SPEC's
  `success_25`, within 25% of the truth);
- shown when present: `accuracy`, `format`, `detect`, `overall` (the SPEC rewards),
  `center_error_m`, `implied_answer` / `implied_agrees` (the answer recomputed from the
  detected centers), `resolved_path` (what `auto` became), `gt_centers` (used for the
  center badges when the dataset row is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from workbench import viz
from workbench.eval.metrics import read_predictions
from workbench.schema import centers_of
from workbench.widgets._common import (
    ALL,
    FigureBox,
    FigureContainer,
    RowIndex,
    choices_html,
    esc,
    options,
    question_html,
)

PREDICTION_KEYS = ("id", "model", "path", "split", "category", "answer_type", "answer", "completion",
                   "pred_answer", "pred_centers", "correct")  # fmt: skip
"""Keys of a `predictions.jsonl` row that the trace browser reads (see the module docstring)."""
SCORE_KEYS = ("accuracy", "format", "detect", "overall", "center_error_m")
PATH_ORDER = ("lor", "dtr", "auto")
CORRECT_OPTIONS = (ALL, "correct", "wrong")


def _correct_ok(pred: Mapping[str, Any], want: str) -> bool:
    if want == ALL:
        return True
    return bool(pred.get("correct")) == (want == "correct")


def predicted_centers(pred: Mapping[str, Any]) -> dict[str, list[float]]:
    """The prediction's detected centers: `pred_centers` when present, else parsed from the completion."""
    if "pred_centers" in pred:
        return viz.as_centers(pred.get("pred_centers"))
    return viz.as_centers(pred.get("completion") or "")


class TraceBrowser(FigureContainer):
    """The widget `trace_browser` returns. Filters: `model`, `split`, `category`, `path`,
    `correct`; `example` lists the (model, id) pairs with at least one prediction passing all
    filters; parts: `header`, `image`, `plot`, `traces` (one HTML per path on display)."""

    def __init__(self, rows: Any, predictions: Iterable[Mapping[str, Any]] | str | Path, show_3d: bool = True):
        preds = read_predictions(predictions) if isinstance(predictions, (str, Path)) else list(predictions)
        for p in preds:
            missing = [k for k in ("id", "model", "path") if k not in p]
            if missing:
                raise ValueError(f"prediction {p.get('id', '?')!r} lacks keys {missing} (see PREDICTION_KEYS)")
        self.predictions = preds
        self.index = RowIndex(rows)
        self.groups: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
        for p in preds:
            self.groups.setdefault((str(p["model"]), p["id"]), []).append(p)

        def dropdown(name: str, values: Iterable[Any]) -> W.Dropdown:
            w = W.Dropdown(options=options(values), value=ALL, description=name, layout=W.Layout(width="220px"))
            w.observe(self._on_filter, names="value")
            return w

        self.model = dropdown("model", (p["model"] for p in preds))
        self.split = dropdown("split", (p.get("split") for p in preds))
        self.category = dropdown("category", (p.get("category") for p in preds))
        self.path = dropdown("path", sorted({p["path"] for p in preds}, key=_path_rank))
        self.correct = W.Dropdown(options=CORRECT_OPTIONS, value=ALL, description="answer", layout=W.Layout(width="220px"))
        self.correct.observe(self._on_filter, names="value")
        self.example = W.Dropdown(description="example", layout=W.Layout(width="95%"))
        self.example.observe(self._on_example, names="value")
        self.count = W.HTML()
        self.header = W.HTML()
        self.image = W.Image(format="png", width=300)
        self.plot = FigureBox() if show_3d else None
        self.traces = W.HBox()
        self._updating = False
        self._figure_boxes = (self.plot,)
        filters = W.HBox([self.model, self.split, self.category, self.path, self.correct])
        middle = [self.image] + ([self.plot.widget] if self.plot is not None else [])
        super().__init__([filters, W.HBox([self.example, self.count]), self.header, W.HBox(middle), self.traces])
        self._on_filter()

    # ------------------------------------------------------------------ filtering

    def _passes(self, p: Mapping[str, Any]) -> bool:
        for w, key in ((self.split, "split"), (self.category, "category"), (self.path, "path")):
            if w.value != ALL and str(p.get(key)) != w.value:
                return False
        return _correct_ok(p, self.correct.value)

    def matching(self) -> list[tuple[str, Any]]:
        """(model, id) of every example passing the filters, in prediction order."""
        return [key for key, group in self.groups.items()
                if (self.model.value in (ALL, key[0])) and any(self._passes(p) for p in group)]  # fmt: skip

    def _on_filter(self, change: Any = None) -> None:
        keys = self.matching()
        self.count.value = f"{len(keys)} of {len(self.groups)} examples"
        labels = []
        for model, rid in keys:
            group = sorted(self.groups[(model, rid)], key=lambda p: _path_rank(p["path"]))
            marks = " ".join(f"{p['path']}{'✓' if p.get('correct') else '✗'}" for p in group)
            labels.append((f"{rid} · {group[0].get('category', '')} · {model} · {marks}", (model, rid)))
        self._updating = True
        try:
            self.example.options = labels
            self.example.value = labels[0][1] if labels else None
        finally:
            self._updating = False
        self._render()

    def _on_example(self, change: Any = None) -> None:
        if not self._updating:
            self._render()

    # ------------------------------------------------------------------ one example

    def _render(self) -> None:
        key = self.example.value
        if key is None:
            self.header.value = "<i>no prediction passes these filters</i>"
            self.image.value = b""
            self.traces.children = []
            if self.plot is not None:
                self.plot.show(go.Figure())
            return
        group = sorted(self.groups[key], key=lambda p: _path_rank(p["path"]))
        first = group[0]
        row = self.index.get(first["id"], first.get("split"))
        truth = centers_of(row) if row is not None else viz.as_centers(first.get("gt_centers"))
        self.header.value = self._header(first, row)
        self.image.value = viz.image_png(row) if row is not None else b""
        columns = []
        for p in group:
            columns.append(W.HTML(viz.trace_html(p.get("completion"), truth, title=_title(p)),
                                  layout=W.Layout(width=f"{100 // len(group)}%")))  # fmt: skip
        self.traces.children = columns
        if self.plot is not None:
            if row is None:
                self.plot.show(go.Figure())
            else:
                chosen = self._centers_source(group)
                centers = predicted_centers(chosen) if chosen is not None else None
                fig = viz.scene_figure(row, predicted_centers=centers, height=420)
                if chosen is not None:
                    fig.update_layout(title=f"{esc(first['id'])}: centers of the {esc(chosen['path'])} trace vs truth")
                self.plot.show(fig)

    def _centers_source(self, group: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """The prediction whose centers the 3D plot shows: the filtered path if it detected any,
        else DTR, else auto."""
        with_centers = [p for p in group if predicted_centers(p)]
        for want in (self.path.value, "dtr", "auto", "lor"):
            for p in with_centers:
                if p["path"] == want:
                    return p
        return with_centers[0] if with_centers else None

    def _header(self, pred: Mapping[str, Any], row: Mapping[str, Any] | None) -> str:
        if row is None:
            return (f"<b>{esc(pred['id'])}</b>: no dataset row with this id; truth "
                    f"<b>{esc(pred.get('answer'))}</b>")  # fmt: skip
        return (
            f"<code>{esc(row['id'])}</code> · {esc(row['split'])} · <b>{esc(row['category'])}</b> · "
            f"model {esc(pred['model'])}<p style='font-size:14px'>{question_html(row['question'])}</p>"
            f"<p>{choices_html(row.get('choices') or [], row['answer'])}</p>"
            f"<p>truth: <b>{esc(row['answer'])}</b></p>"
        )


def _path_rank(path: str) -> int:
    return PATH_ORDER.index(path) if path in PATH_ORDER else len(PATH_ORDER)


def _title(p: Mapping[str, Any]) -> str:
    path = str(p["path"]).upper()
    if p.get("resolved_path") and p["resolved_path"] != p["path"]:
        path += f" (as {str(p['resolved_path']).upper()})"
    mark = "right" if p.get("correct") else "wrong"
    text = f"{path}: answered {p.get('pred_answer')!s} ({mark}, truth {p.get('answer')!s})"
    scores = [f"{k} {float(p[k]):.2f}" for k in SCORE_KEYS if isinstance(p.get(k), (int, float))]
    if p.get("implied_answer") is not None:
        agrees = {True: "agrees", False: "disagrees"}.get(p.get("implied_agrees"), "")
        scores.append(f"answer implied by its centers {p['implied_answer']} {agrees}".rstrip())
    return f"{text}; {', '.join(scores)}" if scores else text


def trace_browser(
    rows: Any, predictions: Iterable[Mapping[str, Any]] | str | Path, show_3d: bool = True
) -> TraceBrowser:
    """Browse `predictions` (dicts or a `predictions.jsonl` path; keys: `PREDICTION_KEYS`)
    against the dataset `rows` (a `Dataset`, a `DatasetDict`, a list of rows or {id: row})."""
    return TraceBrowser(rows, predictions, show_3d=show_3d)
