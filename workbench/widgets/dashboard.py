"""A live training dashboard, one layout per stage: GRPO's loss, reward components, kept groups
and completion lengths; the base stage's and cold-start SFT's loss, next-token accuracy,
learning rate and gradient norm.

Fed by a TRL / transformers trainer through a callback, or by hand (`update(logs)`); the
panels and which logged keys go where are those of `workbench.viz.training_dashboard`. Works
headless (papermill, a script): updates only change the figure's data. Used by
`notebooks/02_base.ipynb`, `notebooks/03_cold_start_sft.ipynb` and `notebooks/04_grpo.ipynb`:

    dash = TrainingDashboard("GRPO", stage="grpo")
    display(dash.widget)
    trainer = GRPOTrainer(..., callbacks=[dash.callback()])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import ipywidgets as W

from workbench import viz
from workbench.widgets._common import FigureBox, FigureContainer, esc


class TrainingDashboard:
    """A 2 x 2 plotly dashboard over a trainer's log history, redrawn on every log; `stage`
    (grpo | sft | base, `viz.STAGES`) picks its panels (`viz.STAGE_PANELS`).

    `history` holds every log dict received (with `step`); `figure` is the plotly figure
    (a FigureWidget when available), `widget` the box to display (status line + figure).
    """

    def __init__(self, title: str = "training", log_history: Iterable[Mapping[str, Any]] | None = None,
                 stage: str = "grpo"):
        self.title = title
        self.stage = stage
        self.panels = viz.check_stage(stage)
        self.history: list[dict[str, Any]] = []
        fig = viz.empty_dashboard(stage)
        fig.update_layout(title=title)
        self._box = FigureBox(fig)
        self.status = W.HTML()
        self.widget = FigureContainer([self.status, self._box.widget])
        self.widget._figure_boxes = (self._box,)
        self.widget.static_note = (f"{title}: the live training plot is drawn while the notebook runs in Jupyter; "
                                   "the curves of the finished run follow below.")
        self.widget.static_snapshot = False
        self._trace_of: dict[str, int] = {}  # logged key -> index of its trace in figure.data
        self._series: dict[str, dict[str, tuple[list, list]]] = {p: {} for p in self.panels}
        for entry in log_history or ():
            self._ingest(dict(entry))
        self.redraw()

    @property
    def figure(self):
        return self._box.figure

    def update(self, logs: Mapping[str, Any], step: int | None = None) -> None:
        """Append one log dict (a trainer's `on_log` payload) and redraw."""
        entry = dict(logs)
        if step is not None:
            entry.setdefault("step", step)
        self._ingest(entry)
        self.redraw()

    def _ingest(self, entry: dict[str, Any]) -> None:
        # Incremental: each log is parsed once, so a long run does not re-read its whole history.
        entry.setdefault("step", len(self.history) + 1)
        self.history.append(entry)
        for panel, keyed in viz.log_series([entry], self.stage).items():
            for key, (xs, ys) in keyed.items():
                old = self._series[panel].setdefault(key, ([], []))
                old[0].extend(xs)
                old[1].extend(ys)

    def redraw(self) -> None:
        """Bring every trace up to date with `history` (new keys get a trace in their panel)."""
        series = self._series
        fig = self.figure
        new: list[tuple[str, str, list, list]] = []
        batch = fig.batch_update() if self._box.live else nullcontext()
        with batch:
            for panel in self.panels:
                for key, (xs, ys) in series[panel].items():
                    if key in self._trace_of:
                        trace = fig.data[self._trace_of[key]]
                        trace.x, trace.y = list(xs), list(ys)
                    else:
                        new.append((panel, key, xs, ys))
        for panel, key, xs, ys in new:  # traces cannot be added inside batch_update
            row, col = viz.panel_cell(panel, self.stage)
            color = viz.PALETTE[sum(1 for k in self._trace_of if viz.panel_of(k, self.stage) == panel) % len(viz.PALETTE)]
            fig.add_scatter(x=list(xs), y=list(ys), name=key, mode="lines+markers", marker=dict(size=4),
                            line=dict(color=color), row=row, col=col,
                            legend=viz.panel_legend(panel, self.stage))  # fmt: skip
            self._trace_of[key] = len(fig.data) - 1
        self._box.refresh()
        latest = [f"{key} {ys[-1]:.4g}" for panel in self.panels for key, (_, ys) in series[panel].items()]
        head = f"<b>{esc(self.title)}</b> · "
        if self.history:
            step = self.history[-1].get("step", len(self.history))
            self.status.value = head + f"step {esc(step)} · {esc(', '.join(latest[:8]))}"
        else:
            self.status.value = head + "waiting for the first log"

    def callback(self):
        """A `transformers.TrainerCallback` whose `on_log` feeds this dashboard (main process only)."""
        from transformers import TrainerCallback

        dashboard = self

        class DashboardCallback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and getattr(state, "is_world_process_zero", True):
                    dashboard.update(logs, step=getattr(state, "global_step", None))

        return DashboardCallback()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

