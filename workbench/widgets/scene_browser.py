"""A browser over the scenes of a dataset split: slider over scenes, dropdown over questions.

For the chosen row: the image with its marks, the question, choices and answer, both targets
(LOR and DTR, highlighted by `workbench.viz.trace_html`) and the scene in 3D
(`workbench.viz.scene_figure`). Used by `notebooks/01_build_data.ipynb`:

    from workbench.widgets.scene_browser import scene_browser
    scene_browser(ds["train"])
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from workbench import viz
from workbench.schema import centers_of
from workbench.widgets._common import FigureBox, FigureContainer, choices_html, column, esc, question_html


class SceneBrowser(FigureContainer):
    """The widget `scene_browser` returns; its parts are attributes (`slider`, `dropdown`,
    `frame`, `image`, `info`, `lor`, `dtr`, `plot`) so a notebook or a test can drive it."""

    def __init__(self, rows: Any, show_3d: bool = True, frame: str = "camera"):
        if rows is None or len(rows) == 0:
            raise ValueError("scene_browser needs at least one row")
        self.rows = rows
        self.scenes: dict[Any, list[int]] = {}
        for i, sid in enumerate(column(rows, "scene_id")):
            self.scenes.setdefault(sid, []).append(i)
        self.scene_ids = list(self.scenes)
        # Columns read once: indexing a Dataset row by row would decode every image.
        self._questions = column(rows, "question")
        self._categories = column(rows, "category")
        self.slider = W.IntSlider(value=0, min=0, max=len(self.scene_ids) - 1, description="scene",
                                  continuous_update=False)  # fmt: skip
        self.scene_label = W.HTML()
        self.dropdown = W.Dropdown(description="question", layout=W.Layout(width="95%"))
        self.frame = W.ToggleButtons(options=list(viz.FRAMES), value=frame, description="3D frame")
        self.image = W.Image(format="png", width=300)
        self.info = W.HTML()
        self.lor = W.HTML(layout=W.Layout(width="50%"))
        self.dtr = W.HTML(layout=W.Layout(width="50%"))
        self.plot = FigureBox() if show_3d else None
        self._updating = False
        self._figure_boxes = (self.plot,)

        self.slider.observe(self._on_scene, names="value")
        self.dropdown.observe(self._on_question, names="value")
        self.frame.observe(self._on_question, names="value")
        top = W.HBox([self.image, self.info])
        parts = [W.HBox([self.slider, self.scene_label]), self.dropdown, top, W.HBox([self.lor, self.dtr])]
        if self.plot is not None:
            parts += [self.frame, self.plot.widget]
        super().__init__(parts)
        self._on_scene()

    @property
    def row(self) -> dict:
        """The row on display."""
        return self.rows[self.dropdown.value]

    def _on_scene(self, change: Any = None) -> None:
        sid = self.scene_ids[self.slider.value]
        indices = self.scenes[sid]
        opts = [
            (f"{k + 1}. [{self._categories[i] or '-'}] {self._questions[i].replace('<region>', '▢')[:110]}", i)
            for k, i in enumerate(indices)
        ]
        self.scene_label.value = f"<b>{esc(sid)}</b>: {len(indices)} rows"
        self._updating = True
        try:
            self.dropdown.options = opts
            self.dropdown.value = indices[0]
        finally:
            self._updating = False
        self._render()

    def _on_question(self, change: Any = None) -> None:
        if not self._updating:
            self._render()

    def _render(self) -> None:
        row = self.row
        self.image.value = viz.image_png(row)
        regions = ", ".join(f"{esc(r['label'])} ({esc(r['kind'])}) = object {int(r['object_index'])}"
                            for r in row.get("regions") or [])  # fmt: skip
        self.info.value = (
            f"<div style='padding-left:12px'><code>{esc(row['id'])}</code> · split {esc(row['split'])} · "
            f"task {esc(row.get('task'))} · category <b>{esc(row['category'])}</b> · path {esc(row['path'])}"
            f"<p style='font-size:14px'>{question_html(row['question'])}</p>"
            f"<p>{choices_html(row.get('choices') or [], row['answer'])}</p>"
            f"<p>answer: <b>{esc(row['answer'])}</b> ({esc(row['answer_type'])})</p>"
            f"<p style='color:#555'>regions: {regions or 'none'}</p></div>"
        )
        centers = centers_of(row)
        self.lor.value = viz.trace_html(row.get("lor_target"), centers, title="LOR target")
        self.dtr.value = viz.trace_html(row.get("dtr_target"), centers, title="DTR target")
        if self.plot is not None:
            self.plot.show(viz.scene_figure(row, frame=self.frame.value, height=480))


def scene_browser(dataset_split: Any, show_3d: bool = True, frame: str = "camera") -> SceneBrowser:
    """Browse a split (a `datasets.Dataset` or a list of rows) scene by scene (rows grouped by
    `scene_id` in order of appearance), question by question. `show_3d=False` skips the 3D view."""
    return SceneBrowser(dataset_split, show_3d=show_3d, frame=frame)
