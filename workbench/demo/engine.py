"""The LOR-vs-DTR demo's engine (the Gradio UI over it, and `workbench demo`, are `workbench.demo.app`).

`DemoEngine` answers one input on both paths: a dataset example (`compare_example(split,
index)`) or an upload (`compare(image, question, regions, depth)`: an optional depth map, else
the estimate of `depth_model` when the engine has one). Each returns both completions, the
parsed answers, the truth and each path's reward when known, and one 3D figure with both
paths' detected centers against the truth. Bad input raises ValueError naming the bad value;
the app turns that into a message and keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench import viz
from workbench.dataset import freeform
from workbench.schema import QA_TASKS, centers_of
from workbench.tasks import rewards

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
        fig.update_layout(height=480, margin=dict(l=0, r=0, t=30, b=0))
        return fig

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

    def compare(self, image: Any, question: str, regions: Any = None, depth: Any = None) -> Comparison:
        """Both paths on an upload; `depth`: its depth map (`freeform.load_depth`: an array in m, a
        .npy in m or a 16-bit PNG in mm, the size of the image), else `depth_model`'s estimate."""
        from workbench.model import depth as depth_codec
        from workbench.model import uses_depth

        source = "the uploaded depth map" if depth is not None else "none"
        if depth is None and self.depth_model and image is not None:
            depth, kind = depth_codec.estimate_depth(freeform.load_image(image), self.depth_model)
            source = f"{kind} depth estimated by {self.depth_model}. {depth_codec.mismatch_note(self.model, kind)}"
        row = freeform.make_row(image, question, regions, image_size=self.image_size, depth=depth)
        comparison = self.compare_row(row)
        comparison.depth = (source if uses_depth(self.model) else "not used (this model has no depth embedding)"
                            ) if depth is not None else "none: the 3D positional embedding is off"
        return comparison
