"""One scene of the synthetic dataset as stored: its rendered view and its rows.

`scene_records` renders scene `index` of a split and writes every row it gives: region questions
(DTR path), general questions (LOR path) and, in `train` only, cold-start blend rows (`ground_3d`:
region -> 3D center, `ground_2d`: region -> 2D box, `caption`: counting, colors, what is where).
The view is stored once (`views.VIEW_COLUMNS`); the rows name it. Every scene draws its randomness
from `SeedSequence([seed, scene_index])`. `build` turns scenes into a dataset folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np

from workbench import schema
from workbench.dataset import views
from workbench.dataset.settings import DataSettings


def split_ranges(settings: DataSettings) -> dict[str, range]:
    """Scene indices of each split: train first, then val, test, test_ood (at least 1 each)."""
    n = settings.num_scenes
    sizes = {
        s: max(1, round(n * f))
        for s, f in (
            ("val", settings.val_fraction),
            ("test", settings.test_fraction),
            ("test_ood", settings.ood_fraction),
        )
    }
    n_train = n - sum(sizes.values())
    if n_train < 1:
        raise ValueError(f"num_scenes={n} leaves no training scene with these split fractions")
    out, start = {}, 0
    for split, size in (("train", n_train), *sizes.items()):
        out[split] = range(start, start + size)
        start += size
    return out


def _geometry_round(x: float, digits: int) -> float:
    v = round(float(x), digits)
    return 0.0 if v == 0 else v  # no -0.0: bytes must not depend on the sign of zero


def scene_records(settings: DataSettings, split: str, index: int) -> tuple[list[dict], list[dict]]:
    """Scene `index` of `split` as stored: its views (`views.VIEW_COLUMNS`: the clean image as PNG
    bytes, depth as a 16-bit PNG; `views_per_scene` of them) and its rows, which name their views
    (`view`: the first view's position in its split; `views`, multi-view builds only: every frame's)
    instead of carrying image and depth (`views.join` adds them back on read)."""
    from workbench.tasks import questions, traces
    from workbench.world import render, scenes
    seq = np.random.SeedSequence([settings.seed, index])
    scene_rng, question_rng, text_rng = (np.random.default_rng(s) for s in seq.spawn(3))
    n_views = settings.views_per_scene
    # further views and their questions draw from a fourth stream: a single-view build's scenes and
    # rows are those of the same settings with more views
    view_rng = np.random.default_rng(seq.spawn(1)[0]) if n_views > 1 else None
    domain = "ood" if split == "test_ood" else "in"
    frames = None
    for _ in range(8):  # a view where fewer than 2 objects are clearly seen is re-drawn
        scene = scenes.sample_scene(
            scene_rng,
            domain,
            settings.image_size,
            settings.min_objects,
            settings.max_objects,
            settings.stack_probability,
            settings.walls_probability,
        )
        view = render.render(scene, settings.min_object_area, settings.min_visible_fraction)
        if view.usable.sum() >= 2:
            if n_views == 1:
                break
            try:  # the scene's walls may leave no room for a further camera: draw another scene
                poses = scenes.sample_views(scene, view_rng, n_views)
            except ValueError:
                continue
            frames = [view] + [render.render(dataclasses.replace(scene, camera_to_world=pose), settings.min_object_area,
                                             settings.min_visible_fraction) for pose in poses[1:]]
            break
    if n_views > 1 and frames is None:
        raise ValueError(f"scene {index} of {split}: no draw of 8 leaves room for {n_views} views; "
                         "lower views_per_scene or walls_probability")

    # Stored geometry (rounded once); every label below is computed from these stored values.
    c2w = _stored_pose(scene.camera_to_world)
    intr = [_geometry_round(v, 4) for v in scene.intrinsics]
    centers = scenes.camera_from_world(np.array([o.position for o in scene.objects]), scene.camera_to_world)
    objects, scene_of_row, row_of_scene = [], [], {}
    for i, obj in enumerate(scene.objects):
        center = [_geometry_round(v, 4) for v in centers[i]]
        if not (view.usable[i] and _center_checks(center, intr, view.bbox_2d[i], view.depth)):
            continue
        row_of_scene[i] = len(objects)
        scene_of_row.append(i)
        objects.append(_stored_object(obj, center, view.bbox_2d[i]))
    scene_objects = [
        {
            "name": o.name,
            "color": o.color,
            "visible": bool(view.visible_px[i] > 0),
            "row_index": row_of_scene.get(i, -1),
        }
        for i, o in enumerate(scene.objects)
    ]
    geometry = {"objects": objects, "camera_to_world": c2w, "intrinsics": intr, "width": settings.image_size}
    n_general = settings.general_questions
    items = questions.generate(
        question_rng,
        geometry,
        scene_objects,
        scenes.domain_vocabulary(domain),
        settings.questions_per_scene - n_general,
        n_general,
        list(render.MARK_COLORS),
        settings.point_fraction,
        categories=settings.categories or None,
    )
    if split == "train":
        items += _blend_items(
            question_rng, settings.blend_per_scene, geometry, scene, scene_of_row, scene_objects
        )

    view_index = (index - split_ranges(settings)[split].start) * n_views
    rows = []
    for k, item in enumerate(items):
        regions = [render.region_for(view, scene_of_row[r["object_index"]], r["label"]) for r in item["regions"]]
        row = _stored_row(split, index, k, item, regions, view_index, intr, c2w, objects, settings.image_size)
        if item["task"] in schema.QA_TASKS:
            # targets are written from the full row (regions, geometry); image and depth unused
            row["lor_target"] = traces.lor_target(row, text_rng, settings.trace_style)
            row["dtr_target"] = traces.dtr_target(row, text_rng, settings.trace_style)
        if n_views > 1:  # the multi-view columns of a single-view row: its one frame
            row.update(views=[view_index], view_poses=[c2w], region_frames=[1] * len(row["regions"]),
                       frame_centers="{}", reference_frame=0)
        rows.append(row)
    if n_views > 1:
        rows += _multiview_rows(settings, split, index, scene, centers, frames, poses, c2w, intr, view_index,
                                len(rows), view_rng, text_rng)
    records = [{"scene_id": f"scene-{index:06d}", "image": render.png_bytes(render.draw_marks(frame.rgb, [])),
                "depth": views.encode_depth(frame.depth)} for frame in (frames or [view])]
    return records, rows


MULTIVIEW_COLUMNS = ("views", "view_poses", "region_frames", "frame_centers", "reference_frame")
"""Stored columns of a multi-view build (`views_per_scene` > 1), on every row: the row's frames as
view indices and camera_to_world poses (frame k is `views[k - 1]`), each region's frame, the
regions' centers in every frame (JSON {frame: {label: [x, y, z]}}, the multi-view detect reward's
ground truth) and the frame a question requires (0: any; `crossview.reference_frame`)."""


def _multiview_rows(settings, split, index, scene, centers, frames, poses, c2w, intr, view_index, first_k, rng,
                    text_rng):
    """The multi-view question rows of a scene (`crossview`): every frame shown, regions in theirs.
    `centers`: the scene's object centers in frame 1's camera coordinates, unrounded."""
    from workbench.tasks import crossview, multiview
    from workbench.world import render
    stored_poses = [c2w] + [_stored_pose(pose) for pose in poses[1:]]
    objects, scene_index, usable = [], [], [[] for _ in frames]
    for i, obj in enumerate(scene.objects):
        center = [_geometry_round(v, 4) for v in centers[i]]
        seen = []
        for f, (frame, pose) in enumerate(zip(frames, stored_poses)):
            in_f = [_geometry_round(v, 4) for v in multiview.to_frame(center, c2w, pose)]
            if frame.usable[i] and _center_checks(in_f, intr, frame.bbox_2d[i], frame.depth):
                seen.append(f)
        if not seen:
            continue
        for f in seen:
            usable[f].append(len(objects))
        scene_index.append(i)
        objects.append(_stored_object(obj, center, frames[0].bbox_2d[i] if 0 in seen else crossview.NOT_IN_FRAME_1))
    geometry = {"objects": objects, "view_poses": stored_poses, "intrinsics": intr, "width": settings.image_size}
    items = crossview.generate(rng, geometry, usable, settings.multiview_questions, list(render.MARK_COLORS),
                               settings.point_fraction, settings.multiview_categories or None)
    rows = []
    for k, item in enumerate(items, start=first_k):
        regions = [render.region_for(frames[f - 1], scene_index[r["object_index"]], r["label"])
                   for r, f in zip(item["regions"], item["region_frames"])]
        row = _stored_row(split, index, k, item, regions, view_index, intr, c2w, objects, settings.image_size)
        row.update(views=[view_index + f for f in range(len(frames))], view_poses=stored_poses,
                   region_frames=list(item["region_frames"]), reference_frame=int(item["reference_frame"]))
        row["frame_centers"] = crossview.frame_centers_json(row)
        row["lor_target"] = crossview.lor_target(row, text_rng, settings.trace_style)
        row["dtr_target"] = crossview.dtr_target(row, text_rng, settings.trace_style)
        rows.append(row)
    return rows


def _stored_pose(camera_to_world) -> list[list[float]]:
    """A camera_to_world as rows store it (6 decimals)."""
    return [[_geometry_round(v, 6) for v in r] for r in np.asarray(camera_to_world).tolist()]


def _stored_object(obj, center: list[float], bbox) -> dict:
    """One object of a row's `objects` (`schema.OBJECT_KEYS`), `center` already rounded."""
    return {"name": obj.name, "category": obj.category, "color": obj.color, "center": center,
            "yaw": _geometry_round(obj.yaw, 4), "size": [float(v) for v in obj.size], "bbox_2d": [int(v) for v in bbox]}


def _stored_row(split, index, k, item, regions, view_index, intr, c2w, objects, image_size) -> dict:
    """Row `k` of scene `index` as stored (`build.STORED_COLUMNS`), from a generated `item` and the
    rendered `regions` its marks come from (checked: the join redraws these very marks); its targets
    are the item's own (blend rows) or "" for the caller to write."""
    from workbench.world import render
    row = {
        "id": f"{split}-{index:06d}-{k:02d}",
        "scene_id": f"scene-{index:06d}",
        "split": split,
        "task": item["task"],
        "view": view_index,
        "intrinsics": intr,
        "camera_to_world": c2w,
        "objects": objects,
        "regions": [{"label": r["label"], "kind": r["kind"], "object_index": int(q["object_index"]),
                     "bbox_2d": [int(v) for v in r["bbox_2d"]]} for r, q in zip(regions, item["regions"])],
        "question": item["question"],
        "category": item["category"],
        "answer_type": item["answer_type"],
        "answer": item["answer"],
        "choices": list(item["choices"]),
        "path": item["path"],
        "centers": json.dumps(item["centers"]),
        "lor_target": item.get("target", ""),
        "dtr_target": item.get("target", ""),
    }
    for stored, region in zip(row["regions"], regions):
        assert render.region_marks(stored, image_size) == region, (stored, region)
    return row


def scene_rows(settings: DataSettings, split: str, index: int) -> list[dict]:
    """The rows of scene `index` of `split` as a reader sees them: image (PIL, marks drawn) and
    depth (float32 (H, W), as stored) joined from the scene's view."""
    records, rows = scene_records(settings, split, index)
    first = rows[0]["view"] if rows else 0
    join = views.ViewJoin(records, views.joined_columns(rows[0] if rows else {}),
                          shown=(*schema.COLUMNS, *(c for c in MULTIVIEW_COLUMNS if c != "views")))
    out = []
    for row in rows:
        local = {c: [v - first if c == "view" else [i - first for i in v] if c == "views" else v]
                 for c, v in row.items()}
        batch = join(local)
        out.append({c: v[0] for c, v in batch.items()})
    return out


def _center_checks(center, intr, bbox, depth) -> bool:
    """The stored (rounded) center projects inside the visible box, behind the seen surface."""
    fx, fy, cx, cy = intr
    u, v = fx * center[0] / center[2] + cx, fy * center[1] / center[2] + cy
    x1, y1, x2, y2 = (int(b) for b in bbox)
    if not (x1 <= u <= x2 and y1 <= v <= y2):
        return False
    h, w = depth.shape
    d = depth[min(int(v), h - 1), min(int(u), w - 1)]
    return bool(0 < d < center[2])


GROUND_3D_TEMPLATES = (
    "Where is the object in the {label} <region>?",
    "Give the 3D center of the object in the {label} <region>.",
    "Locate the object in the {label} <region> in 3D.",
)
GROUND_2D_TEMPLATES = (
    "Give the 2D box of the object in the {label} <region>.",
    "Where in the image is the object in the {label} <region>?",
    "Outline the object in the {label} <region> with a 2D box.",
)


def _blend_items(rng, n: int, geometry, scene, scene_of_row, scene_objects) -> list[dict]:
    """Cold-start blend rows for one train scene: grounding (3D, 2D) and captions."""
    from workbench.tasks import traces
    from workbench.world import render
    objs = geometry["objects"]
    if not objs:
        return []
    kinds = ("ground_3d", "ground_2d", "caption")
    start = int(rng.integers(len(kinds)))
    out = []
    for j in range(n):
        task = kinds[(start + j) % len(kinds)]
        if task == "caption":
            question, target = _caption(rng, geometry, scene, scene_of_row, scene_objects)
            out.append(
                {
                    "task": task,
                    "category": task,
                    "question": question,
                    "answer_type": "text",
                    "answer": target,
                    "choices": [],
                    "path": "lor",
                    "regions": [],
                    "centers": {},
                    "target": target,
                }
            )
            continue
        i = int(rng.integers(len(objs)))
        color = list(render.MARK_COLORS)[int(rng.integers(len(render.MARK_COLORS)))]
        label = f"{color} {'point' if rng.random() < 0.5 else 'box'}"
        if task == "ground_3d":
            question = GROUND_3D_TEMPLATES[int(rng.integers(len(GROUND_3D_TEMPLATES)))]
            target = traces.box3d(objs[i]["center"], objs[i]["name"], label)
        else:
            question = GROUND_2D_TEMPLATES[int(rng.integers(len(GROUND_2D_TEMPLATES)))]
            target = traces.box2d(objs[i]["bbox_2d"], objs[i]["name"], label)
        out.append(
            {
                "task": task,
                "category": task,
                "question": question.format(label=label),
                "answer_type": "text",
                "answer": target,
                "choices": [],
                "path": "dtr",
                "regions": [{"label": label, "kind": label.split()[1], "object_index": i}],
                "centers": {label: list(objs[i]["center"])},
                "target": target,
            }
        )
    return out


def _caption(rng, geometry, scene, scene_of_row, scene_objects) -> tuple[str, str]:
    """A general question about the whole view and its plain-text answer."""
    from workbench.tasks import traces
    objs = geometry["objects"]
    all_clear = all(o["row_index"] >= 0 for o in scene_objects if o["visible"])
    descs = Counter(f"{o['color']} {o['name']}" for o in scene_objects if o["visible"])
    names = Counter(o["name"] for o in scene_objects if o["visible"])
    options = ["describe"]
    if all_clear:
        options.append("count")
    unique_names = [o for o in objs if names[o["name"]] == 1]
    if unique_names:
        options.append("color")
    stacked = []
    for r, o in enumerate(objs):
        sup = scene.objects[scene_of_row[r]].support
        if sup >= 0 and scene_objects[sup]["row_index"] >= 0:
            base = objs[scene_objects[sup]["row_index"]]
            if descs[f"{base['color']} {base['name']}"] == 1:
                stacked.append((o, base))
    if stacked:
        options.append("on_top")
    kind = options[int(rng.integers(len(options)))]
    if kind == "count":
        n = len(objs)
        return (
            "How many objects are there?",
            f"There {'is' if n == 1 else 'are'} {n} object{'' if n == 1 else 's'}.",
        )
    if kind == "color":
        o = unique_names[int(rng.integers(len(unique_names)))]
        return f"What color is the {o['name']}?", f"The {o['name']} is {o['color']}."
    if kind == "on_top":
        o, base = stacked[int(rng.integers(len(stacked)))]
        return f"What is on top of the {base['color']} {base['name']}?", f"A {o['color']} {o['name']}."
    order = sorted(range(len(objs)), key=lambda r: objs[r]["center"][2])[:5]  # nearest first
    parts = [
        f"a {objs[r]['color']} {objs[r]['name']} {traces.where(objs[r], geometry['intrinsics'])}"
        for r in order
    ]
    question = ("Describe the scene.", "What do you see?", "List the objects you can see.")[
        int(rng.integers(3))
    ]
    return question, "I see " + ", ".join(parts) + "."
