"""Pieces shared by the widgets: a figure holder, row lookup, small HTML helpers."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go

from workbench import compat
from workbench.dataset import views

ALL = "(all)"
"""Dropdown value meaning "no filter"."""


class FigureBox:
    """A plotly figure inside a widget tree.

    `figure` is a `go.FigureWidget` (live in Jupyter, updated in place) when plotly can make
    one (it needs the `anywidget` package); otherwise a `go.Figure` drawn into an
    `ipywidgets.Output`, so the widgets still work, headless included, just less smoothly.
    `widget` is what goes into a layout.
    """

    def __init__(self, fig: go.Figure | None = None):
        fig = fig if fig is not None else go.Figure()
        try:
            self.figure: go.Figure = go.FigureWidget(fig)
            self.widget: W.Widget = self.figure
            self.live = True
        except ImportError:  # plotly >= 6 without anywidget
            self.figure = go.Figure(fig)
            self.widget = W.Output()
            self.live = False
            self.refresh()

    def show(self, fig: go.Figure) -> None:
        """Replace the traces and layout by those of `fig`."""
        self.figure.data = []
        self.figure.layout = fig.layout
        self.figure.add_traces(list(fig.data))
        self.refresh()

    def sync(self) -> None:
        """Copy the whole figure into the widget's synced state, as plotly does when a FigureWidget
        is displayed on its own: changes made before a view exists travel as messages that a
        front end which is not ready yet can miss, and a FigureWidget inside a box is never
        displayed on its own."""
        if self.live:
            compat.sync_figure_widget(self.figure)

    def refresh(self) -> None:
        """Redraw the fallback Output (a FigureWidget redraws itself)."""
        if self.live:
            return
        from IPython import get_ipython
        from IPython.display import display

        self.widget.clear_output(wait=True)
        if get_ipython() is not None:  # outside a kernel display() would print the repr
            with self.widget:
                display(self.figure)


STATIC_ENV = "WORKBENCH_STATIC_WIDGETS"
"""Environment variable that makes the workbench's widgets display a static snapshot (`StaticBox`):
set to "1" by `workbench run` for the notebook kernels it starts, since a notebook executed
headlessly is saved without widget state and would show `SceneBrowser(children=...` instead."""


def static_mode() -> bool:
    """Whether widgets display as static HTML (`STATIC_ENV` is "1")."""
    return os.environ.get(STATIC_ENV) == "1"


def static_html(widget: W.Widget) -> str:
    """What a widget tree shows, as HTML: its `HTML` and `Image` parts in order (controls, which do
    nothing in a saved page, left out).

    >>> static_html(W.VBox([W.IntSlider(), W.HTML("<b>hi</b>"), W.HBox([W.HTML("there")])]))
    '<div><b>hi</b></div><div style="display:flex;gap:12px;align-items:flex-start"><div>there</div></div>'
    """
    if isinstance(widget, W.HTML):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, W.Image):
        data = widget.value if isinstance(widget.value, bytes) else bytes(widget.value or b"")
        if not data:
            return ""
        width = f' width="{widget.width}"' if widget.width else ""
        uri = f"data:image/{widget.format};base64," + base64.b64encode(data).decode()
        return f'<img src="{uri}"{width} style="image-rendering:pixelated">'
    children = getattr(widget, "children", ())
    if not children:
        return ""
    inner = "".join(static_html(child) for child in children)
    flex = "display:flex;gap:12px;align-items:flex-start" if isinstance(widget, W.HBox) else ""
    return f'<div style="{flex}">{inner}</div>' if flex else inner


class StaticBox(W.VBox):
    """A VBox that displays as a static snapshot (`static_html`, under `static_note`, at most
    `static_max_height` pixels tall with a scroll bar) when `static_mode()`, and as the live
    widget otherwise. Only the display changes: the widget and its parts work the same either way."""

    static_note = "A static snapshot of an interactive widget: open the notebook in Jupyter to use it."
    static_max_height = 640
    static_snapshot = True
    """False: the note alone (a live plot whose state at display time means nothing afterwards)."""

    def _repr_mimebundle_(self, **kwargs):
        if static_mode():
            note = f'<p style="color:#777;font-style:italic;margin:0 0 4px">{esc(self.static_note)}</p>'
            body = (f'<div style="max-height:{self.static_max_height}px;overflow:auto">'
                    f"{static_html(self)}</div>") if self.static_snapshot else ""
            return {"text/html": note + body, "text/plain": f"{type(self).__name__} (static snapshot)"}
        return super()._repr_mimebundle_(**kwargs)


class FigureContainer(StaticBox):
    """A VBox holding `FigureBox`es (listed in `_figure_boxes`) whose figures are synced in full
    each time the box is displayed."""

    _figure_boxes: tuple[FigureBox, ...] = ()

    def _repr_mimebundle_(self, **kwargs):
        if not static_mode():
            for box in self._figure_boxes:
                if box is not None:
                    box.sync()
        return super()._repr_mimebundle_(**kwargs)


def column(rows: Any, name: str) -> list:
    """One column of a `datasets.Dataset` or of a list of dicts, as a list."""
    if hasattr(rows, "column_names"):
        return views.column(rows, name)
    return [r[name] for r in rows]


class RowIndex:
    """Rows by id: from a `Dataset`, a `DatasetDict` / {split: rows}, a list of rows, or {id: row}.

    Lookups try (split, id) first, since two splits may reuse an id, then the id alone.
    Rows of a `Dataset` are fetched (and their image decoded) only when asked for.
    """

    def __init__(self, rows: Any):
        self._sources: list[Any] = []
        self._where: dict[Any, tuple[int, Any]] = {}
        if isinstance(rows, Mapping) and rows and all(_is_rows(v) for v in rows.values()):
            for split, part in rows.items():
                self._add(part, default_split=str(split))
        elif isinstance(rows, Mapping):
            self._add(list(rows.values()))
        elif rows is not None:
            self._add(rows)

    def _add(self, rows: Any, default_split: str | None = None) -> None:
        k = len(self._sources)
        self._sources.append(rows)
        ids = column(rows, "id")
        names = views.column_names(rows) if hasattr(rows, "column_names") else (rows[0].keys() if len(rows) else ())
        splits = column(rows, "split") if "split" in names else [default_split] * len(ids)
        for i, (rid, split) in enumerate(zip(ids, splits)):
            self._where.setdefault((split, rid), (k, i))
            self._where.setdefault(rid, (k, i))

    def get(self, rid: Any, split: str | None = None) -> Mapping[str, Any] | None:
        loc = self._where.get((split, rid)) or self._where.get(rid)
        if loc is None:
            return None
        k, i = loc
        return self._sources[k][i]

    def __len__(self) -> int:
        return sum(len(s) for s in self._sources)


def _is_rows(value: Any) -> bool:
    return hasattr(value, "column_names") or (
        isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(r, Mapping) for r in value)
    )


def options(values: Iterable[Any]) -> list[str]:
    """Dropdown options: `(all)` then the distinct values in first-seen order."""
    return [ALL, *dict.fromkeys(str(v) for v in values if v is not None)]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def question_html(question: str) -> str:
    """The question escaped, its `<region>` tokens highlighted."""
    token = html.escape("<region>")
    return esc(question).replace(token, f'<span style="background:#e0ecff;color:#1f4e9a">{token}</span>')


def choices_html(choices: Sequence[str], answer: Any = None) -> str:
    """Lettered options, the correct letter in bold."""
    if not choices:
        return ""
    items = []
    for k, text in enumerate(choices):
        letter = chr(ord("A") + k)
        body = f"{letter}. {esc(text)}"
        items.append(f"<b>{body} &#10003;</b>" if letter == str(answer).strip() else body)
    return "<br>".join(items)
