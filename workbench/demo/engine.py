"""The LOR-vs-DTR demo's engine (the Gradio UI over it, and `workbench demo`, are `workbench.demo.app`).

`DemoEngine` answers one input on both paths: a dataset example (`compare_example(split,
index)`) or an upload (`compare(image, question, regions, depth, choices)`: an optional depth
map, else the estimate of `depth_model` when the engine has one). Each returns both completions,
the parsed answers, the truth and each path's reward when known, and one 3D figure with both
paths' detected centers against the truth (`figure_note` says in words why it shows less).
Bad input raises ValueError naming the bad value; the app turns that into a message and keeps
serving.

The upload's checks are `freeform.make_row`'s, plus two the demo adds because a visitor types
the question and clicks the regions separately: the region labels named before `<region>` in
the question must be exactly the regions' labels (`match_regions`), and choices come as
comma-separated text (`parse_choices_text`). Clicks become regions with `click_region` and are
drawn on the upload with `draw_upload`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from workbench import viz
from workbench.dataset import freeform
from workbench.schema import QA_TASKS, REGION_TOKEN, centers_of
from workbench.tasks import rewards
from workbench.world import render

PATHS = ("lor", "dtr")


@dataclass
class Comparison:
    """Both paths on one input."""

    row: dict[str, Any]
    completions: dict[str, str]
    answers: dict[str, str | None]
    centers: dict[str, dict[str, tuple[float, float, float]] | None]
    scores: dict[str, dict[str, float] | None] = field(default_factory=dict)
    depth: str = ""
    """Where the depth the model saw came from, in words ("" for a dataset row)."""

    @property
    def truth(self) -> str | None:
        return self.row.get("answer")

    def figure(self):
        """3D plot: the scene with DTR's detected centers (and, for dataset rows, the true centers
        and error vectors), plus LOR's centers if it wrote any. An upload with depth shows its point
        cloud (in the scale of its depth: relative depth gives an arbitrary one); an upload without
        depth shows the detected centers alone."""
        import plotly.graph_objects as go

        scene = self.row.get("depth") is not None and self.row.get("intrinsics") is not None
        if scene:
            fig = viz.scene_figure(self.row, predicted_centers=self.centers["dtr"] or None)
        else:
            fig = go.Figure()
            fig.update_layout(scene=dict(xaxis_title="x (m, right)", yaxis_title="y (m, down)", zaxis_title="z (m, forward)"))
        for path, color in (("lor", "#1f77b4"), ("dtr", "#d62728")):
            pts = self.centers.get(path)
            if not pts or (path == "dtr" and scene):
                continue
            xs, ys, zs = zip(*pts.values())
            fig.add_scatter3d(x=xs, y=ys, z=zs, mode="markers+text", text=list(pts), name=f"{path.upper()} centers",
                              marker=dict(size=6, color=color, symbol="diamond"))
        note = self.figure_note()
        if not fig.data:  # nothing in 3D: say why instead of drawing an empty grid
            fig = go.Figure()
            fig.update_layout(xaxis_visible=False, yaxis_visible=False, plot_bgcolor="white")
        if note:
            fig.add_annotation(text=note, xref="paper", yref="paper", x=0.5, y=1.0 if fig.data else 0.5,
                               showarrow=False, font=dict(size=13))
        fig.update_layout(height=480, margin=dict(l=0, r=0, t=30, b=0))
        return fig

    def figure_note(self) -> str:
        """Why the 3D panel shows less than DTR's centers over the scene, in words; "" when it
        shows them all.

        >>> Comparison(row={"depth": None}, completions={"lor": "", "dtr": "<think>far</think>"},
        ...            answers={}, centers={"lor": {}, "dtr": {}}).figure_note()
        'Nothing to show in 3D: DTR wrote no <detect> block, so it placed no object in 3D, and the input has no depth map for a point cloud.'
        """
        dtr, completion = self.centers.get("dtr"), self.completions.get("dtr") or ""
        if dtr is None:
            why = "a center in DTR's <detect> block does not parse as x,y,z"
        elif not dtr:
            why = ("DTR's <detect> block has no 3d_box" if "<detect>" in completion
                   else "DTR wrote no <detect> block, so it placed no object in 3D")
        else:
            why = ""
        scene = self.row.get("depth") is not None and self.row.get("intrinsics") is not None
        if scene:
            return f"{why[0].upper()}{why[1:]}; the scene is shown alone." if why else ""
        if why:
            return f"Nothing to show in 3D: {why}, and the input has no depth map for a point cloud."
        return "No depth map: DTR's centers are shown without a point cloud."

    def as_dict(self) -> dict[str, Any]:
        return {
            "truth": self.truth,
            **{f"{p}_completion": self.completions[p] for p in PATHS},
            **{f"{p}_answer": self.answers[p] for p in PATHS},
            **{f"{p}_score": self.scores.get(p) for p in PATHS},
        }


HELD_OUT_FIRST = ("val", "test", "test_ood")
"""Splits the demo offers first, in this order."""


class DemoEngine:
    """A loaded model (and optionally a dataset) answering inputs on both paths."""

    def __init__(self, model_dir: str, data_dir: str | None = None, max_new_tokens: int = 200, image_size: int = 112,
                 depth_model: str = ""):
        from workbench.model import load

        self.model, self.processor = load(model_dir)
        self.depth_model = depth_model
        """A transformers depth-estimation model that fills in the depth of an upload without one."""
        self.max_new_tokens = max_new_tokens
        self.dataset = None
        self.image_size = image_size
        if data_dir:
            from workbench.dataset import load_dataset_dir, views

            # in memory: a cache file would change the folder the demo serves
            self.dataset = {s: ds.select([i for i, t in enumerate(views.column(ds, "task")) if t in QA_TASKS],
                                         keep_in_memory=True)
                            for s, ds in load_dataset_dir(data_dir).items()}
            first = next((ds for ds in self.dataset.values() if len(ds)), None)
            if first is not None:
                self.image_size = max(first[0]["image"].size)

    def split_sizes(self) -> dict[str, int]:
        """{split: rows}, held-out splits first (val, test, test_ood), then the rest (train): a
        visitor should first see questions the model was not trained on."""
        found = dict(self.dataset or {})
        order = [s for s in HELD_OUT_FIRST if s in found] + sorted(set(found) - set(HELD_OUT_FIRST))
        return {s: len(found[s]) for s in order}

    def example(self, split: str, index: int | float | str) -> dict[str, Any]:
        if self.dataset is None:
            raise ValueError("no dataset loaded: start the demo with --data DIR to browse examples")
        if split not in self.dataset:
            raise ValueError(f"split {split!r} is not in the dataset; choose one of {sorted(self.dataset)}")
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise ValueError(f"index must be a whole number, got {index!r}") from None
        n = len(self.dataset[split])
        if not 0 <= i < n or float(index) != i:
            raise ValueError(f"index {index!r} is out of range for split {split!r} (0..{n - 1})")
        return self.dataset[split][i]

    def compare_row(self, row: dict[str, Any]) -> Comparison:
        from workbench.model import generate

        completions = {
            path: generate(self.model, self.processor, [row], path=path, max_new_tokens=self.max_new_tokens)[0]
            for path in PATHS
        }
        truth_centers = centers_of(row) if row.get("centers") else {}
        scores = {}
        if row.get("answer"):
            for path in PATHS:
                scores[path] = rewards.score(completions[path], row["answer"], centers=truth_centers or None, path=path)
        return Comparison(
            row=row,
            completions=completions,
            answers={p: rewards.parse_answer(c) for p, c in completions.items()},
            centers={p: rewards.parse_centers(c) for p, c in completions.items()},
            scores=scores,
        )

    def compare_example(self, split: str, index: int) -> Comparison:
        return self.compare_row(self.example(split, index))

    def gallery(self, split: str, n: int = 12) -> list[tuple[Image.Image, str]]:
        """(marked image, "#index category") of the first `n` examples of `split`."""
        self.example(split, 0)  # names a bad split
        rows = self.dataset[split].select(range(min(n, len(self.dataset[split]))))
        return [(viz.row_image(row), f"#{i} {row.get('category', '')}") for i, row in enumerate(rows)]

    def compare(self, image: Any, question: str, regions: Any = None, depth: Any = None,
                choices: Any = None) -> Comparison:
        """Both paths on an upload; `depth`: its depth map (`freeform.load_depth`: an array in m, a
        .npy in m or a 16-bit PNG in mm, the size of the image), else `depth_model`'s estimate;
        `choices`: option texts (`parse_choices_text`), shown to the model as lettered lines."""
        from workbench.model import depth as depth_codec
        from workbench.model import uses_depth

        source = "the uploaded depth map" if depth is not None else "none"
        if depth is None and self.depth_model and image is not None:
            depth, kind = depth_codec.estimate_depth(freeform.load_image(image), self.depth_model)
            source = f"{kind} depth estimated by {self.depth_model}. {depth_codec.mismatch_note(self.model, kind)}"
        options = parse_choices_text(choices)
        row = freeform.make_row(image, question, regions, image_size=self.image_size, depth=depth, choices=options)
        row["regions"] = match_regions(row["question"], row["regions"])
        comparison = self.compare_row(row)
        comparison.depth = (source if uses_depth(self.model) else "not used (this model has no depth embedding)"
                            ) if depth is not None else "none: the 3D positional embedding is off"
        return comparison


_NAMED_TOKEN = re.compile(rf"\b((?:{'|'.join(render.MARK_COLORS)})\s+(?:{'|'.join(render.MARK_KINDS)}))\s*{re.escape(REGION_TOKEN)}",
                          re.IGNORECASE)


def match_regions(question: str, regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`regions` in the order the question names them (the k-th `<region>` token belongs to the
    k-th region, SPEC section 3), so regions may be clicked in any order. A label written before
    a `<region>` token that no region has, or a region whose label is not written before one,
    is a ValueError naming the label.

    >>> regs = [{"label": "red box"}, {"label": "blue point"}]
    >>> [r["label"] for r in match_regions("Is the blue point <region> left of the red box <region>?", regs)]
    ['blue point', 'red box']
    >>> match_regions("Is the green point <region> left of the red box <region>?", regs)
    Traceback (most recent call last):
    ...
    ValueError: the question names 'green point <region>', but no region is labelled 'green point' (the regions: 'red box', 'blue point'); region 'blue point' is not named in the question
    """
    labels = [r["label"] for r in regions]
    named = [" ".join(m.group(1).lower().split()) for m in _NAMED_TOKEN.finditer(question)]
    unknown = [n for n in dict.fromkeys(named) if n not in labels]
    unnamed = [lab for lab in labels if lab not in named]
    listed = ", ".join(repr(lab) for lab in labels) or "none"
    problems = [f"the question names '{n} {REGION_TOKEN}', but no region is labelled {n!r} (the regions: {listed})"
                for n in unknown]
    problems += [f"region {lab!r} is not named in the question" for lab in unnamed]
    if problems:
        if not unknown:
            problems[-1] += f"; write '{unnamed[0]} {REGION_TOKEN}' where the question means it"
        raise ValueError("; ".join(problems))
    if len(named) != len(labels):  # a label before two tokens: which region the other one means is unknown
        raise ValueError(f"the question names {', '.join(repr(n) for n in named)} before its {REGION_TOKEN} tokens; "
                         f"name each of the regions ({listed}) once")
    by_label = {r["label"]: r for r in regions}
    return [by_label[n] for n in named]


def parse_choices_text(choices: Any) -> list[str]:
    """Options from the demo's choices field: comma-separated text, or a JSON list (as `workbench
    ask --choices`) for options that contain commas; [] for none. A choice question needs two.

    >>> parse_choices_text("left, right")
    ['left', 'right']
    >>> parse_choices_text('["left, mostly", "right"]')
    ['left, mostly', 'right']
    """
    if isinstance(choices, str) and not choices.lstrip().startswith("["):
        parts = [p.strip() for p in choices.split(",")] if choices.strip() else []
        if any(not p for p in parts):
            raise ValueError(f"choices {choices!r} have an empty option; separate options by commas, e.g. 'left, right'")
        choices = parts
    options = freeform.parse_choices(choices)
    if len(options) == 1:
        raise ValueError(f"one choice ({options[0]!r}) is not a choice; give at least two, e.g. 'left, right'")
    return options


def click_region(regions: str, pending: list[int] | None, kind: str, color: str,
                 x: int, y: int) -> tuple[str, list[int] | None, str]:
    """A click at (x, y) on the upload: (regions JSON, pending corner, hint). A point region is
    placed at once; a box takes two clicks, its opposite corners (the first is `pending` until the
    second). A region of the same label is replaced.

    >>> regions, pending, hint = click_region("[]", None, "box", "red", 10, 20)
    >>> regions, pending
    ('[]', [10, 20])
    >>> click_region(regions, pending, "box", "red", 40, 5)[0]
    '[{"label": "red box", "bbox_2d": [10, 5, 41, 21]}]'
    """
    label = f"{color} {kind}"
    spec = [{"label": r["label"], **({"bbox_2d": _whole(r["bbox_2d"])} if r["kind"] == "box" else {"point": _whole(r["point"])})}
            for r in freeform.parse_regions(regions) if r["label"] != label]
    if kind == "point":
        spec.append({"label": label, "point": [x, y]})
    elif not pending:
        return regions, [x, y], f"first corner of the {label} at ({x}, {y}); click the opposite corner"
    else:
        x0, y0 = pending
        spec.append({"label": label, "bbox_2d": [min(x0, x), min(y0, y), max(x0, x) + 1, max(y0, y) + 1]})
    return json.dumps(spec), None, regions_hint(spec)


def _whole(values: list[float]) -> list[float | int]:
    return [int(v) if float(v).is_integer() else v for v in values]


def regions_hint(regions: Any) -> str:
    """What a visitor writes in the question for the regions so far (plain text).

    >>> regions_hint('[{"label": "red box", "bbox_2d": [1, 2, 30, 40]}]')
    "1 region: write 'red box <region>' in the question"
    """
    labels = [r["label"] for r in freeform.parse_regions(regions)]
    if not labels:
        return "click the image to place regions"
    named = ", ".join(f"'{lab} {REGION_TOKEN}'" for lab in labels)
    return f"{len(labels)} region{'s' if len(labels) > 1 else ''}: write {named} in the question"


def draw_upload(image: Any, regions: Any = None) -> Image.Image:
    """The upload at its own size with its regions drawn in, as the model will see them (before
    scaling); ValueError names a bad image or region."""
    img = freeform.load_image(image)
    regs = freeform.parse_regions(regions)
    freeform.check_inside(regs, img.width, img.height)
    half = max(freeform.POINT_HALF_SIZE, round(freeform.POINT_HALF_SIZE * max(img.size) / 112))
    for reg in regs:
        if reg["kind"] == "point":
            px, py = (int(v) for v in reg["point"])
            reg["point"], reg["bbox_2d"] = [px, py], [px - half, py - half, px + half + 1, py + half + 1]
        else:
            reg["bbox_2d"] = [int(v) for v in reg["bbox_2d"]]
    return render.draw_marks(np.asarray(img), regs)
