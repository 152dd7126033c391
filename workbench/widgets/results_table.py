"""A filterable, sortable table of `metrics.json` rows (`workbench eval`, SPEC section 7).

Used by `notebooks/05_evaluate.ipynb`:

    from workbench.widgets.results_table import results_table
    results_table(json.loads(Path("runs/smoke/eval/metrics.json").read_text()))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W

from workbench.viz import METRIC_KEYS, METRICS, metric_value
from workbench.widgets._common import ALL, StaticBox, esc, options

LOWER_IS_BETTER = ("center_error_m",)
UNBOUNDED = ("center_error_m",)
"""Metrics that are not shares in [0, 1] (no shading)."""


def _cell(metric: str, value: Any) -> str:
    v = metric_value(value)
    if v is None:
        return "<td style='color:#aaa;text-align:right'>–</td>"
    if metric in UNBOUNDED:
        return f"<td style='text-align:right'>{v:.3f}</td>"
    shade = f"rgba(44,160,44,{0.08 + 0.5 * min(max(v, 0.0), 1.0):.2f})"
    return f"<td style='text-align:right;background:{shade}'>{v:.3f}</td>"


class ResultsTable(StaticBox):
    """The widget `results_table` returns: dropdown filters `model`, `path`, `split`,
    `category`; `sort` (a metric; shares sort high first, center error low first); `html` is the
    table; `shown()` the rows on display."""

    def __init__(self, metrics_rows: Iterable[Mapping[str, Any]]):
        self.rows = [dict(r) for r in metrics_rows]
        self.filters: dict[str, W.Dropdown] = {}
        for key in METRIC_KEYS:
            w = W.Dropdown(options=options(r.get(key) for r in self.rows), value=ALL, description=key,
                           layout=W.Layout(width="210px"))  # fmt: skip
            w.observe(self._render, names="value")
            self.filters[key] = w
        self.sort = W.Dropdown(options=["(none)", "n", *METRICS], value="(none)", description="sort by",
                               layout=W.Layout(width="280px"))  # fmt: skip
        self.sort.observe(self._render, names="value")
        self.count = W.HTML()
        self.html = W.HTML()
        super().__init__([W.HBox(list(self.filters.values())), W.HBox([self.sort, self.count]), self.html])
        self._render()

    def shown(self) -> list[dict]:
        rows = [r for r in self.rows if all(w.value in (ALL, str(r.get(k))) for k, w in self.filters.items())]
        metric = self.sort.value
        if metric != "(none)":
            sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
            # Rows without the metric go last whichever way the sort runs.
            rows.sort(key=lambda r: (metric_value(r.get(metric)) is None, sign * (metric_value(r.get(metric)) or 0.0)))
        return rows

    def _render(self, change: Any = None) -> None:
        rows = self.shown()
        self.count.value = f"&nbsp;{len(rows)} of {len(self.rows)} rows"
        head = "".join(f"<th style='padding:2px 6px'>{esc(c)}</th>" for c in (*METRIC_KEYS, "n", *METRICS))
        body = []
        for r in rows:
            keys = "".join(f"<td style='padding:2px 6px'>{esc(r.get(k))}</td>" for k in METRIC_KEYS)
            n = f"<td style='text-align:right'>{esc(r.get('n'))}</td>"
            body.append(f"<tr>{keys}{n}{''.join(_cell(m, r.get(m)) for m in METRICS)}</tr>")
        self.html.value = (
            "<table style='border-collapse:collapse;font-size:12px;font-family:monospace'>"
            f"<thead><tr style='border-bottom:1px solid #999'>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )


def results_table(metrics_rows: Iterable[Mapping[str, Any]] | str | Path) -> ResultsTable:
    """A filterable table of `metrics.json` rows (a list of dicts or the file's path)."""
    if isinstance(metrics_rows, (str, Path)):
        metrics_rows = json.loads(Path(metrics_rows).read_text(encoding="utf-8"))
    return ResultsTable(metrics_rows)
