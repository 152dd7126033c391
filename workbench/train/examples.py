"""Training examples of the cold start: the dataset's splits checked for SFT, each row expanded into
one example per path of a blend (`example_index`, `training_examples`), batches kept on one path
(`group_by_path`) and the val rows of the quick evaluation (`qa_rows`). Taught in
`notebooks/03_cold_start_sft.ipynb`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench import schema
from workbench.dataset import views
from workbench.model import depth as depth_codec
from workbench.settings import known_names
from workbench.tasks import prompts

BLENDS: dict[str, dict[str, tuple[str, ...]]] = {
    "blend": {"paths": ("lor", "dtr"), "tasks": ("region_qa", "general_qa", "ground_3d", "ground_2d", "caption")},
    "cot_only": {"paths": ("lor", "dtr"), "tasks": ("region_qa", "general_qa")},
    "lor_only": {"paths": ("lor",), "tasks": ("region_qa", "general_qa")},
    "dtr_only": {"paths": ("dtr",), "tasks": ("region_qa", "general_qa")},
}
"""Cold-start mixtures: `paths` each QA row is trained on (one example per path), `tasks` kept."""
REQUIRED_COLUMNS = ("id", "task", "image", "regions", "question", "category", "answer_type", "answer",
                    "choices", "path", "centers", "lor_target", "dtr_target")
"""Columns SFT reads from the dataset (`schema.COLUMNS` is the full contract)."""
GROUNDING_TASKS = ("ground_3d", "ground_2d", "ground_frame")
"""Grounding examples a marked region of a question row can give (`grounding_row`): `ground_3d` and
`ground_2d` from single-view rows, `ground_frame` (the region's center in a named frame) from
multi-view rows."""
FRAME_GROUNDING = "ground_frame"
FRAME_TEMPLATES = (
    "In the camera coordinates of image {frame}, where is the object in the {label} <region> in image {own}?",
    "Give the 3D center of the object in the {label} <region> in image {own}, in the camera frame of image {frame}.",
    "Seen from the camera of image {frame}, where is the object in the {label} <region> in image {own}?",
)
"""Questions of a `ground_frame` example: the frame asked for, the region and its own image."""


# ---------------------------------------------------------------------------------------------
# Data


def load_splits(data_dir: str | os.PathLike, splits: Sequence[str] = ("train", "val")):
    """The DatasetDict at `data_dir`, checked for the splits and columns SFT needs."""
    from workbench.dataset import build as data
    path = Path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist (build one with `workbench data --out {path}`)")
    dd = data.load_dataset_dir(path)
    for split in splits:
        if split not in dd:
            raise ValueError(f"dataset {str(path)!r} has no {split!r} split (it has {sorted(dd)})")
        missing = [c for c in REQUIRED_COLUMNS if c not in views.column_names(dd[split])]
        if missing:
            raise ValueError(f"dataset {str(path)!r}, split {split!r} lacks required columns {missing}")
    return dd


def example_index(tasks: Sequence[str], blend: str) -> list[tuple[int, str]]:
    """(row index, path) of every training example of `blend`: one per path for QA rows, one
    (path "plain") for blend rows.

    >>> example_index(["region_qa", "caption", "general_qa"], "blend")
    [(0, 'lor'), (0, 'dtr'), (1, 'plain'), (2, 'lor'), (2, 'dtr')]
    >>> example_index(["region_qa", "caption"], "dtr_only")
    [(0, 'dtr')]
    """
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose one of {tuple(BLENDS)}")
    preset = BLENDS[blend]
    out: list[tuple[int, str]] = []
    for i, task in enumerate(tasks):
        if task not in preset["tasks"]:
            continue
        if task in schema.QA_TASKS:
            out += [(i, path) for path in preset["paths"]]
        else:
            out.append((i, "plain"))
    return out


def single_view(rows) -> list[bool]:
    """Per row of a split, whether it shows one view. Grounding examples are derived from those only:
    a multi-view row's region lives in its own frame, whose image and center frame 1's are not."""
    if "view_poses" not in views.column_names(rows):
        return [True] * len(rows)
    return [len(poses or ()) <= 1 for poses in views.column(rows, "view_poses")]


def grounding_index(rows, kinds: Sequence[str]) -> list[tuple[int, int, str]]:
    """(row, region, kind) of every grounding example the QA rows of `rows` give: each marked region
    once per kind of `kinds` that fits the row (`ground_3d` / `ground_2d` on a single-view row,
    `ground_frame` on a multi-view one; a multi-view row's region lives in its own frame, whose
    image and center frame 1's are not)."""
    tasks, marked, single = views.column(rows, "task"), views.column(rows, "regions"), single_view(rows)
    return [(i, k, kind) for i, task in enumerate(tasks) if task in schema.QA_TASKS
            for k in range(len(marked[i] or ())) for kind in kinds if (kind == FRAME_GROUNDING) != single[i]]


def grounding_images(row: dict[str, Any], with_depth: bool) -> list[Any]:
    """The images of a (grounding or question) example: every frame of a multi-view row, else its
    one image; each with its depth when `with_depth` and the row has it."""
    return depth_codec.row_images(row, with_depth=with_depth) or [depth_codec.row_image(row, with_depth=with_depth)]


def training_examples(rows, blend: str = "blend", region_coords: bool = True, max_examples: int = 0, seed: int = 0,
                      group_size: int = 1, system: str = "full", option_style: str = "letter_first",
                      depth: bool = False, depth_dropout: float = 0.0, grounding: Sequence[str] = (),
                      length: int = 0, single_view_first: float = 0.0):
    """The `datasets.Dataset` TRL trains on, one item per (row, path) of `blend`, shuffled with
    `seed` (`max_examples` > 0 keeps the first ones). `group_size` > 1 orders the items so that
    each consecutive group of that many shares one path (see `group_by_path`), with the groups in
    seeded random order. Items are made on access (a `with_transform`,
    so an epoch never pays for examples it does not reach): `messages` (system, user with an image
    placeholder, assistant target), `image`, and `id` / `task` / `path` for inspection (TRL's
    collator reads only the first two). `.with_format(None)` shows the raw index: row, task, path.
    `region_coords`, `system` and `option_style` shape the prompts (`model.prompt_options(model)`
    gives all three). `depth`: each image carries its row's depth (`model.depth.attach`, for a model
    that embeds depth, `model.uses_depth(model)`), except a seeded `depth_dropout` share of the
    examples, so the model also learns to answer without depth (an upload has none).
    `grounding` (`GROUNDING_TASKS`): each region a QA row marks also gives one plain example per
    task, made on access (`grounding_row`): the blend's grounding for data without grounding rows.
    `single_view_first` (a share in [0, 1), needs `length`): a curriculum for data with multi-view
    rows. The items are then an explicit schedule of exactly `length` (the steps times the batch, for
    a sequential sampler): the first `single_view_first` of it drawn from the single-view examples
    only (questions and their grounding), the rest from all of them, multi-view questions and
    `ground_frame` included; each part passes over its examples in a fresh seeded order as often as
    it needs (`schedule`). `max_examples` does not combine with it.
    """
    import datasets as hf
    import numpy as np

    tasks = views.column(rows, "task")  # a plain list: indexing a datasets Column reads the table each time
    # (row, path, region, task): region -1 for the row itself, k for a grounding example of its k-th region
    index = [(i, path, -1, tasks[i]) for i, path in example_index(tasks, blend)]
    grounding = known_names(grounding, GROUNDING_TASKS, "grounding tasks")
    if grounding:
        index += [(i, "plain", k, task) for i, k, task in grounding_index(rows, grounding)]
    if not index:
        raise ValueError(f"the training split has no rows for blend {blend!r} (tasks {BLENDS[blend]['tasks']})")
    if single_view_first:
        if max_examples:
            raise ValueError("single_view_first makes its own schedule; it does not combine with max_examples")
        single = single_view(rows)
        first = [item for item in index if single[item[0]]]
        if not first:
            raise ValueError("single_view_first needs single-view rows; the training split has none")
        picked = schedule([first, index], [single_view_first, 1.0 - single_view_first], length, group_size, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(index))
        if max_examples:
            order = order[:max_examples]
        picked = [index[i] for i in order]
        if group_size > 1:
            picked = group_by_path(picked, group_size, seed)
    if not 0.0 <= depth_dropout <= 1.0:
        raise ValueError(f"depth_dropout must be in [0, 1], got {depth_dropout!r}")
    columns = ("id", "task", "image", "regions", "question", "choices", "lor_target", "dtr_target", "images",
               "region_frames")
    columns += ("depth", "intrinsics", "depths") if depth else ()
    columns += ("objects",) if grounding else ()
    columns += ("frame_centers",) if FRAME_GROUNDING in grounding else ()
    kept = [c for c in columns if c in views.column_names(rows)]
    # no copy; geometry (and depth, unless asked) is never read; depth as numpy: python lists of
    # 112 x 112 floats cost 75 ms a batch of 8
    source = views.numpy_depth(views.select_columns(rows, kept))
    path_code = {"lor": 0, "dtr": 1, "plain": 2}

    def make(batch: dict[str, list]) -> dict[str, list]:
        src = source[list(batch["row"])]  # dict of columns, images decoded
        out: dict[str, list] = {"messages": [], "images": [[image] for image in src["image"]], "id": list(src["id"]),
                                "task": list(src["task"]), "path": list(batch["path"])}
        for k, (path, region) in enumerate(zip(batch["path"], batch["region"])):
            row = {c: src[c][k] for c in kept}
            if region >= 0:  # a grounding example of one marked region
                row = grounding_row(row, batch["task"][k], region, seed)
                out["id"][k], out["task"][k] = row["id"], row["task"]
            dropped = True
            if depth:  # the same draw for an example in every epoch
                code = [path_code[path], region + 1]
                dropped = np.random.default_rng([seed, int(batch["row"][k]), *code]).random() < depth_dropout
            if depth or len(row.get("images") or ()) > 1:  # a multi-view row: every frame, in order
                out["images"][k] = grounding_images(row, with_depth=not dropped)
                if len(out["images"][k]) > 1:
                    row["images"] = out["images"][k]
            out["messages"].append(prompts.to_messages(row, "auto" if path == "plain" else path,
                                                       region_coords=region_coords, with_target=True,
                                                       system=system, option_style=option_style))
        return out

    raw = hf.Dataset.from_dict({"row": [i for i, _, _, _ in picked], "task": [t for _, _, _, t in picked],
                                "path": [p for _, p, _, _ in picked], "region": [k for _, _, k, _ in picked]})
    return raw.with_transform(make)


def grounding_row(row: dict[str, Any], task: str, k: int, seed: int = 0) -> dict[str, Any]:
    """A grounding row made from region `k` of a question row: same images, depth and geometry, one
    region, a grounding question (the wording drawn with `seed`) and its target:
    - `ground_3d`: the object's center, `<3d_box center="x,y,z">cube (red box)</3d_box>`;
    - `ground_2d`: its visible 2D box;
    - `ground_frame` (a multi-view row): its center in the camera coordinates of a frame drawn with
      `seed` among the row's frames (its own or another), written as the detect block multi-view
      DTR opens with: `<detect>After aligning to the reference frame 2, find 1 relevant object:`
      and the box (`reference_frame` and `frame_centers` of the row say which frame and center).

    >>> row = {"id": "s1-q0", "task": "region_qa", "regions": [{"label": "red box", "kind": "box",
    ...        "object_index": 0, "bbox_2d": [1, 2, 30, 40]}], "objects": [{"name": "cube",
    ...        "center": [0.3, -0.2, 2.5], "bbox_2d": [1, 2, 30, 40]}], "centers": {}}
    >>> g = grounding_row(row, "ground_3d", 0)
    >>> g["id"], g["lor_target"], schema.centers_of(g)
    ('s1-q0/ground_3d0', '<3d_box center="0.30,-0.20,2.50">cube (red box)</3d_box>', {'red box': [0.3, -0.2, 2.5]})
    >>> two = {**row, "region_frames": [2], "frame_centers": {"1": {"red box": [0.5, 0, 2]}, "2": {"red box": [0.3, -0.2, 2.5]}}}
    >>> print(grounding_row(two, "ground_frame", 0, seed=3)["lor_target"])
    <detect>After aligning to the reference frame 1, find 1 relevant object:
    <3d_box center="0.50,0.00,2.00">cube (red box)</3d_box></detect>
    """
    import json

    import numpy as np

    from workbench.dataset.records import GROUND_2D_TEMPLATES, GROUND_3D_TEMPLATES
    from workbench.tasks import rewards, traces
    region = row["regions"][k]
    obj = row["objects"][region["object_index"]]
    label = region["label"]
    rng = np.random.default_rng([seed, k, sum(map(ord, str(row["id"])))])
    extra: dict[str, Any] = {}
    if task == FRAME_GROUNDING:
        truths = rewards.frame_truths(row.get("frame_centers"))
        if not truths or label not in next(iter(truths.values())):
            raise ValueError(f"row {row.get('id')!r}: ground_frame needs a multi-view row with frame_centers of {label!r}")
        question = FRAME_TEMPLATES[int(rng.integers(len(FRAME_TEMPLATES)))]
        frame = sorted(truths)[int(rng.integers(len(truths)))]
        center = [float(v) for v in truths[frame][label]]
        target = f"{rewards.FRAME_PREFIX}{frame}, find 1 relevant object:\n{traces.box3d(center, obj['name'], label)}</detect>"
        question = question.format(label=label, frame=frame, own=int(row["region_frames"][k]))
        extra = {"region_frames": [row["region_frames"][k]], "reference_frame": frame,
                 "frame_centers": json.dumps({str(frame): {label: center}})}
    else:
        templates = GROUND_3D_TEMPLATES if task == "ground_3d" else GROUND_2D_TEMPLATES
        question = templates[int(rng.integers(len(templates)))].format(label=label)
        center = [float(v) for v in obj["center"]]
        target = (traces.box3d(obj["center"], obj["name"], label) if task == "ground_3d"
                  else traces.box2d(obj["bbox_2d"], obj["name"], label))
    return {**row, "id": f"{row['id']}/{task}{k}", "task": "ground_3d" if task == FRAME_GROUNDING else task,
            "category": task, "regions": [region], "question": question, "answer_type": "text", "answer": target,
            "choices": [], "path": "dtr", "centers": json.dumps({label: center}), "lor_target": target,
            "dtr_target": target, **extra}


def schedule(pools: Sequence[Sequence[tuple]], shares: Sequence[float], length: int, group_size: int = 1,
             seed: int = 0) -> list[tuple]:
    """Exactly `length` items (row, path, ...) in phases: phase k takes `shares[k]` of `length`
    (rounded down to whole groups of `group_size`; the last phase takes the rest) from `pools[k]`,
    passing over the pool in a fresh seeded order as often as it needs; a pass is grouped by path
    (`group_by_path`) and keeps its whole groups only, so every batch of `group_size` holds one path.
    The curriculum of `training_examples(single_view_first=)`.

    >>> schedule([[(0, "lor")], [(1, "lor"), (2, "dtr")]], [0.5, 0.5], 4, seed=0)
    [(0, 'lor'), (0, 'lor'), (1, 'lor'), (2, 'dtr')]
    """
    import numpy as np

    if len(pools) != len(shares) or not pools:
        raise ValueError(f"need one share per pool, got {len(pools)} pools and {len(shares)} shares")
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"a schedule needs a positive length (steps x batch), got {length!r}")
    if any(not 0.0 <= s <= 1.0 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError(f"phase shares must lie in [0, 1] and add up to 1, got {list(shares)}")
    if any(not pool for pool in pools):
        raise ValueError("every phase of a schedule needs examples to draw from")
    rng = np.random.default_rng(seed)
    out: list[tuple] = []
    for k, (pool, share) in enumerate(zip(pools, shares)):
        n = length - len(out) if k == len(pools) - 1 else int(share * length) // group_size * group_size
        phase: list[tuple] = []
        while len(phase) < n:
            one_pass = [pool[i] for i in rng.permutation(len(pool))]
            if group_size > 1:
                one_pass = group_by_path(one_pass, group_size, int(rng.integers(2**31)))
                per_path = Counter(item[1] for item in one_pass)
                full = len(one_pass) - sum(count % group_size for count in per_path.values())
                # whole groups only, so that every batch stays one path across passes (the few left
                # over come back in the next pass's fresh order); a pool too small for one group keeps them
                one_pass = one_pass[:full] or one_pass
            phase += one_pass
        out += phase[:n]
    return out


def group_by_path(items: Sequence[tuple], size: int, seed: int = 0) -> list[tuple]:
    """`items` (row, path, ...) reordered into consecutive groups of `size` with one path each (DTR
    prompts are about twice as long as LOR ones, so a mixed batch is mostly padding), the groups
    in seeded random order; what is left of each path (fewer than `size`) goes last, so that
    every batch boundary stays on a group boundary.

    >>> group_by_path([(0, "lor"), (1, "dtr"), (2, "lor"), (3, "dtr"), (4, "lor")], 2, seed=0)
    [(1, 'dtr'), (3, 'dtr'), (0, 'lor'), (2, 'lor'), (4, 'lor')]
    """
    import numpy as np

    groups, rest = [], []
    for path in sorted({item[1] for item in items}):
        same = [item for item in items if item[1] == path]
        full = len(same) - len(same) % size
        groups += [same[i : i + size] for i in range(0, full, size)]
        rest += same[full:]
    order = np.random.default_rng(seed).permutation(len(groups))
    return [item for g in order for item in groups[g]] + rest


def qa_rows(split, n: int, seed: int = 0) -> list[dict]:
    """`n` QA rows (region_qa, general_qa) of a split, a seeded random sample in a fixed order."""
    import numpy as np

    idx = [i for i, t in enumerate(split["task"]) if t in schema.QA_TASKS]
    if n and n < len(idx):
        idx = sorted(np.random.default_rng(seed).choice(idx, size=n, replace=False).tolist())
    return [split[int(i)] for i in idx]
