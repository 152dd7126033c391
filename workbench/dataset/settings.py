"""Settings of one dataset build (`DataSettings`, `workbench data`) and its profile presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.settings import as_names, check_profile, from_preset

MAX_IMAGE_SIZE = 1024
"""Largest rendered side: a 1024 px view already takes ~40 MB of depth and image per row."""
MAX_VIEWS = 4
"""Most views of one scene (the paper's multi-view questions show 2-4 images)."""


@dataclass
class DataSettings:
    """Settings of one dataset build (`workbench data`)."""

    profile: str = ""
    """Preset these settings started from (smoke | default | gpu); "" when built without one."""
    num_scenes: int = 24
    """Scenes over all splits; each scene is `views_per_scene` rendered views (one by default)."""
    seed: int = 0
    """Master seed; scene i uses SeedSequence([seed, i])."""
    image_size: int = 112
    """Rendered images are image_size x image_size pixels."""
    questions_per_scene: int = 8
    """Question rows (region_qa + general_qa) per scene, in every split."""
    general_fraction: float = 0.3
    """Share of a scene's questions that are general (LOR, no regions)."""
    blend_per_scene: int = 3
    """Cold-start blend rows (ground_3d, ground_2d, caption) per train scene."""
    val_fraction: float = 0.1
    """Share of scenes in `val`."""
    test_fraction: float = 0.1
    """Share of scenes in `test` (same domain as train)."""
    ood_fraction: float = 0.1
    """Share of scenes in `test_ood` (held-out shapes, colors, cameras, layouts)."""
    min_objects: int = 3
    """Fewest objects placed in a scene."""
    max_objects: int = 8
    """Most objects placed in a scene."""
    stack_probability: float = 0.3
    """Chance that an object is put on top of a free flat-topped one."""
    walls_probability: float = 0.5
    """Chance that a scene has walls behind the objects."""
    min_object_area: float = 0.0025
    """An object in a question covers at least this share of the image."""
    min_visible_fraction: float = 0.5
    """An object in a question is at least this unoccluded."""
    point_fraction: float = 0.5
    """Share of regions drawn as a point (the rest as a box)."""
    trace_style: str = "numbers_first"
    """Order of the reasoning in comparison targets (`traces.STYLES`): "numbers_first" (evidence,
    then the conclusion) or "verdict_first" (the verdict in the option's word, then the evidence)."""
    categories: tuple[str, ...] = ()
    """Question categories to ask (SPEC section 6 names); empty or "all" = all of them. Every split
    gets the same subset: a focused build for probes, curricula and the CPU-sized `default` profile
    (`--categories left_right,front_behind`)."""

    views_per_scene: int = 1
    """Views rendered of each scene (1-4): the scene's camera, then the same camera moved around the
    objects (`scenes.sample_views`; `test_ood` holds out the wider moves). Single-view questions use
    the first view; with more than one, the rows carry the multi-view columns (`MULTIVIEW_COLUMNS`)."""
    multiview_questions: int = 0
    """Questions per scene across its views (`crossview.CATEGORIES`), on top of `questions_per_scene`;
    needs `views_per_scene` >= 2."""
    multiview_categories: tuple[str, ...] = ()
    """Multi-view categories to ask; empty or "all" = all of `crossview.CATEGORIES`."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> DataSettings:
        """The named preset with `overrides` applied (unknown names raise ValueError)."""
        settings = from_preset(cls, PRESETS, name, overrides, label="data")
        settings.validate()
        return settings

    @property
    def general_questions(self) -> int:
        """How many of a scene's `questions_per_scene` are general (the rest ask about regions)."""
        return round(self.questions_per_scene * self.general_fraction)

    def _validate_categories(self) -> None:
        from workbench.tasks import questions
        names = as_names(self.categories)
        self.categories = () if names == ("all",) else names
        unknown = [c for c in self.categories if c not in questions.GENERAL_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown question categories {unknown}; choose from {questions.GENERAL_CATEGORIES}")
        if not self.categories:
            return
        if self.questions_per_scene - self.general_questions and not set(self.categories) & set(questions.REGION_CATEGORIES):
            raise ValueError(f"categories {list(self.categories)} have no region questions; "
                             "add one of them or set general_fraction=1")

    def validate(self) -> None:
        """Raise ValueError naming the first bad value."""
        check_profile(self.profile)
        for name in (
            "num_scenes",
            "questions_per_scene",
            "blend_per_scene",
            "image_size",
            "min_objects",
            "max_objects",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.num_scenes < 4:
            raise ValueError(f"num_scenes must be at least 4 (one scene per split), got {self.num_scenes}")
        if not 32 <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be between 32 and {MAX_IMAGE_SIZE} pixels, got {self.image_size}")
        if self.questions_per_scene < 1:
            raise ValueError(f"questions_per_scene must be at least 1 (a split needs questions), got {self.questions_per_scene}")
        if not 2 <= self.min_objects <= self.max_objects <= 8:
            raise ValueError(
                f"need 2 <= min_objects <= max_objects <= 8, got {self.min_objects}, {self.max_objects}"
            )
        for name in (
            "general_fraction",
            "val_fraction",
            "test_fraction",
            "ood_fraction",
            "stack_probability",
            "walls_probability",
            "min_object_area",
            "min_visible_fraction",
            "point_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        from workbench.tasks.traces import STYLES

        if self.trace_style not in STYLES:
            raise ValueError(f"trace_style must be one of {STYLES}, got {self.trace_style!r}")
        self._validate_categories()
        self._validate_views()

    def _validate_views(self) -> None:
        from workbench.tasks import crossview
        if not isinstance(self.views_per_scene, (int, np.integer)) or not 1 <= self.views_per_scene <= MAX_VIEWS:
            raise ValueError(f"views_per_scene must be an integer from 1 to {MAX_VIEWS}, got {self.views_per_scene!r}")
        if not isinstance(self.multiview_questions, (int, np.integer)) or self.multiview_questions < 0:
            raise ValueError(f"multiview_questions must be a non-negative integer, got {self.multiview_questions!r}")
        if self.multiview_questions and self.views_per_scene < 2:
            raise ValueError(f"multiview_questions={self.multiview_questions} needs views_per_scene >= 2, "
                             f"got {self.views_per_scene}")
        names = as_names(self.multiview_categories)
        self.multiview_categories = () if names == ("all",) else names
        unknown = [c for c in self.multiview_categories if c not in crossview.CATEGORIES]
        if unknown:
            raise ValueError(f"unknown multi-view categories {unknown}; choose from {crossview.CATEGORIES}")
        if self.val_fraction + self.test_fraction + self.ood_fraction >= 1.0:
            raise ValueError(
                "val_fraction + test_fraction + ood_fraction must be below 1 (train needs scenes)"
            )


DEFAULT_CATEGORIES = ("left_right", "front_behind", "above_below")
"""What the `default` profile asks: the three relations of an object pair in the viewer's and gravity's frames."""
DEFAULT_MULTIVIEW_CATEGORIES = ("cross_left_right", "cross_front_behind", "cross_above_below")
"""The same three relations across two views of a scene (`tasks.crossview`): the multi-view categories
measured with the `default` profile."""

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"num_scenes": 24, "image_size": 112},
    # The real small run on 2 CPU cores asks three relations on regions only: a four-layer model needs
    # a few thousand examples per relation and path, and SFT's budget is ~29,000. All fifteen region
    # categories, general questions and the grounding blend give each ~500 and stay at chance
    # (issue #3, docs/experiments.md). `categories="all", general_fraction=0.3, blend_per_scene=3` restore them.
    # Two views per scene with two cross-view questions a scene (`views_per_scene=2, multiview_questions=2,
    # multiview_categories=DEFAULT_MULTIVIEW_CATEGORIES`) were measured as the profile and left out: the
    # centers improved but single-view DTR choices fell from 0.85 to 0.58-0.65 (docs/experiments.md,
    # "The default profile across two views"; issue #24).
    "default": {"num_scenes": 1500, "image_size": 112, "categories": DEFAULT_CATEGORIES,
                "general_fraction": 0.0, "blend_per_scene": 0},
    "gpu": {"num_scenes": 20000, "image_size": 224},
}
