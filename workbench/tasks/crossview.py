"""Multi-view questions (issue #24, items 1 and 2): questions across several views of one scene,
their exact answers and their LOR and DTR targets.

A multi-view row shows every view of its scene as frames 1..N (`view_poses`, one camera_to_world
each; one camera, so one `intrinsics`). Its `objects` are the scene's objects usable in at least
one frame, with `center` in frame 1's camera coordinates like a single view's, and `bbox_2d` their
visible box in frame 1 (`NOT_IN_FRAME_1`, all zeros, when frame 1 does not show them). Its regions
mark objects in their own frames (`region_frames`, parallel to `regions`; a region's box is in
its frame's pixels). Categories (`CATEGORIES`):
- `cross_distance` (number): the distance between an object marked in one frame and another
  marked in a second frame; the same in every frame;
- `cross_left_right`, `cross_front_behind` (choice): the relation as seen from the camera of a
  frame the question names (`reference_frame`, required: the answer changes with the viewpoint);
- `cross_above_below` (choice): heights along gravity, the same from every frame;
- `camera_motion` (`answer_type` "motion"): how the camera moved from one frame to another,
  `move_right:0.4,move_forward:2.4,rotate_right:60` style (`multiview.camera_motion`).

Every answer is a function of the stored geometry: `recompute_answer(row)` converts the frame-1
centers into the question's reference frame (`in_frame`) and asks the single-view rule of the
matching category (`AS_SINGLE`), so the single-view exactness tests carry over.

Targets: the DTR target picks the reference frame (the named one; for distances and heights the
frame of the first region), writes every center in that frame's camera coordinates under the
multi-view detect opening (`rewards.FRAME_PREFIX`), then reasons exactly as a single view does on
those numbers. The LOR target states the same quantities in words. Camera motion has no object to
detect: both its targets are the LOR trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench import schema
from workbench.tasks import multiview, questions, rewards, traces
from workbench.tasks import vocab as Q
from workbench.world.scenes import world_from_camera

CATEGORIES = ("cross_distance", "cross_left_right", "cross_front_behind", "cross_above_below", "camera_motion")
AS_SINGLE = {"cross_distance": "distance", "cross_left_right": "left_right",
             "cross_front_behind": "front_behind", "cross_above_below": "above_below"}
"""The single-view category whose rule answers a cross-view one, in the reference frame."""
VIEWPOINT_CATEGORIES = ("cross_left_right", "cross_front_behind")
"""Categories whose answer depends on the viewpoint: the question names its frame, and a detect
block aligned to another frame scores 0 (`rewards.frame_detect`'s `required_frame`)."""
MOTION = "camera_motion"
NOT_IN_FRAME_1 = [0, 0, 0, 0]
"""`bbox_2d` of a multi-view row's object that frame 1 does not show."""
MIN_FRONT = 0.3
"""Both objects of a viewpoint question lie at least this far (m) in front of its camera."""

_VIEWPOINT_TEMPLATES = {
    "cross_left_right": (("Seen from image {K}, is {A} to the left or to the right of {B}?", "right", "left"),
                         ("From the camera of image {K}, is {A} left or right of {B}?", "right", "left")),
    "cross_front_behind": (("Seen from image {K}, is {A} in front of or behind {B}?", "in front", "behind"),
                           ("From the camera of image {K}, is {A} closer or farther than {B}?", "closer", "farther")),
    "cross_above_below": (("Is {A} above or below {B}?", "above", "below"),
                          ("Is the center of {A} higher or lower than that of {B}?", "higher", "lower")),
}
_DISTANCE_TEMPLATES = ("How far is {A} from {B}?", "What is the distance between {A} and {B}?")
_MOTION_TEMPLATES = ("How did the camera move from image {a} to image {b}?",
                     "What camera motion takes image {a} to image {b}?")
_MOTION_RE = [re.compile("^" + re.escape(t).replace(r"\{a\}", r"(\d+)").replace(r"\{b\}", r"(\d+)") + "$")
              for t in _MOTION_TEMPLATES]


def is_multiview(row: Mapping[str, Any]) -> bool:
    """True for a row that shows several frames."""
    return len(row.get("view_poses") or ()) > 1


def motion_frames(question: str) -> tuple[int, int]:
    """(from, to) frames a camera-motion question names."""
    for pattern in _MOTION_RE:
        m = pattern.match(question)
        if m:
            return int(m.group(1)), int(m.group(2))
    raise ValueError(f"not a camera-motion question: {question!r}")


def reference_frame(row: Mapping[str, Any]) -> int:
    """The frame a row's DTR target aligns to: the frame the question names, else the first
    region's frame (1 for a row without regions)."""
    if row.get("reference_frame"):
        return int(row["reference_frame"])
    frames = row.get("region_frames") or ()
    return int(frames[0]) if len(frames) else 1


def in_frame(row: Mapping[str, Any], frame: int) -> dict[str, Any]:
    """`row` as a single-view row seen from `frame`: object centers in that frame's camera
    coordinates (unrounded, from the stored frame-1 centers), its camera_to_world (its only pose),
    the single-view category (`AS_SINGLE`). Boxes stay frame 1's; the single-view rules used here do not read them."""
    poses = row["view_poses"]
    if not 1 <= frame <= len(poses):
        raise ValueError(f"row {row.get('id')!r} has frames 1..{len(poses)}, not {frame}")
    first, pose = poses[0], poses[frame - 1]
    objects = [{**o, "center": [float(v) for v in multiview.to_frame(o["center"], first, pose)]}
               for o in row["objects"]]
    return {**row, "objects": objects, "camera_to_world": pose, "view_poses": [pose],
            "category": AS_SINGLE.get(row["category"], row["category"])}


def frame_centers(row: Mapping[str, Any]) -> dict[int, dict[str, list[float]]]:
    """{frame: {region label: [x, y, z]}}: every region's center in every frame's camera
    coordinates (4 decimals, as stored centers): the ground truth of the multi-view detect reward."""
    out = {}
    for frame in range(1, len(row["view_poses"]) + 1):
        seen = in_frame(row, frame)["objects"]
        out[frame] = {r["label"]: [_round4(v) for v in seen[int(r["object_index"])]["center"]] for r in row["regions"]}
    return out


def recompute_answer(row: Mapping[str, Any]) -> str:
    """The answer of a question row from its stored geometry: a multi-view one through its reference
    frame, a single-view one by `questions.recompute_answer`."""
    if not is_multiview(row) and row["category"] not in CATEGORIES:
        return questions.recompute_answer(row)
    if row["category"] == MOTION:
        a, b = motion_frames(row["question"])
        return multiview.camera_motion(row["view_poses"][a - 1], row["view_poses"][b - 1])
    if row["category"] not in AS_SINGLE:
        raise ValueError(f"{row['category']!r} is not a multi-view category {CATEGORIES}")
    return questions.recompute_answer(in_frame(row, reference_frame(row)))


# ----------------------------------------------------------------------------- generation


def generate(
    rng: np.random.Generator,
    geometry: Mapping[str, Any],
    usable: Sequence[Sequence[int]],
    n: int,
    mark_colors: Sequence[str],
    point_fraction: float = 0.5,
    categories: Sequence[str] | None = None,
) -> list[dict]:
    """`n` multi-view questions on one scene (round-robin over `categories`, default all, from a
    random start; a category with no clear question yields to the next).

    geometry: {objects (as stored in the rows: centers in frame 1), view_poses, intrinsics, width};
    usable: per frame, the indices into `objects` that frame shows clearly enough to mark.
    Returns dicts like `questions.generate`'s plus `region_frames` and `reference_frame` (0 = any).
    """
    cats = tuple(c for c in CATEGORIES if categories is None or c in categories)
    if not cats or len(geometry["view_poses"]) < 2:
        return []
    out, offset = [], int(rng.integers(len(cats)))
    for j in range(n):
        for k in range(len(cats)):
            item = _make(rng, cats[(offset + j + k) % len(cats)], geometry, usable, mark_colors, point_fraction)
            if item is not None:
                out.append(item)
                break
    return out


def _make(rng, cat, geometry, usable, mark_colors, point_fraction) -> dict | None:
    poses = geometry["view_poses"]
    n_frames = len(poses)
    if cat == MOTION:
        a, b = (int(v) + 1 for v in rng.permutation(n_frames)[:2])
        template = _MOTION_TEMPLATES[int(rng.integers(len(_MOTION_TEMPLATES)))]
        return {"task": "general_qa", "category": MOTION, "question": template.format(a=a, b=b),
                "answer_type": "motion", "answer": multiview.camera_motion(poses[a - 1], poses[b - 1]),
                "choices": [], "path": "lor", "regions": [], "region_frames": [], "centers": {}, "reference_frame": 0}
    single = AS_SINGLE[cat]
    pairs = [(fa, fb) for fa in range(1, n_frames + 1) for fb in range(1, n_frames + 1) if fa != fb]
    for t in rng.permutation(len(pairs)):
        fa, fb = pairs[t]
        cands = [(i, j) for i in usable[fa - 1] for j in usable[fb - 1] if i != j]
        if not cands:
            continue
        ref = int(rng.integers(n_frames)) + 1 if cat in VIEWPOINT_CATEGORIES else fa
        seen = in_frame({"objects": geometry["objects"], "view_poses": poses, "category": cat}, ref)["objects"]
        for c in rng.permutation(len(cands))[:12]:
            pick = list(cands[c])
            cams = [seen[i]["center"] for i in pick]
            sizes = [geometry["objects"][i]["size"] for i in pick]
            if cat in VIEWPOINT_CATEGORIES and min(cams[0][2], cams[1][2]) < MIN_FRONT:
                continue
            if not questions._is_clear(single, cams, sizes, poses[ref - 1], geometry["intrinsics"], geometry["width"]):
                continue
            if single == "distance" and not questions._trace_consistent(single, cams, sizes, poses[ref - 1]):
                continue
            return _question(rng, cat, pick, (fa, fb), ref, cams, sizes, geometry, mark_colors, point_fraction)
    return None


def _question(rng, cat, pick, frames, ref, cams, sizes, geometry, mark_colors, point_fraction) -> dict:
    colors = [mark_colors[i] for i in rng.permutation(len(mark_colors))[:2]]
    kinds = ["point" if rng.random() < point_fraction else "box" for _ in pick]
    labels = [f"{c} {k}" for c, k in zip(colors, kinds)]
    refs = [f"the object in the {lab} {schema.REGION_TOKEN} in image {f}" for lab, f in zip(labels, frames)]
    if cat == "cross_distance":
        question = _DISTANCE_TEMPLATES[int(rng.integers(len(_DISTANCE_TEMPLATES)))].format(A=refs[0], B=refs[1])
        choices, answer_type = [], "number"
    else:
        template, pos, neg = _VIEWPOINT_TEMPLATES[cat][int(rng.integers(len(_VIEWPOINT_TEMPLATES[cat])))]
        question = template.format(A=refs[0], B=refs[1], K=ref)
        choices, answer_type = [pos, neg] if rng.random() < 0.5 else [neg, pos], "choice"
    question = question[0].upper() + question[1:]
    context = {"camera_to_world": geometry["view_poses"][ref - 1], "choices": choices}
    answer = questions._answer(AS_SINGLE[cat], cams, sizes, context, labels)
    return {
        "task": "region_qa", "category": cat, "question": question, "answer_type": answer_type, "answer": answer,
        "choices": choices, "path": "dtr",
        "regions": [{"label": lab, "kind": k, "object_index": i} for lab, k, i in zip(labels, kinds, pick)],
        "region_frames": list(frames),
        "centers": {lab: [_round4(v) for v in c] for lab, c in zip(labels, cams)},
        "reference_frame": ref if cat in VIEWPOINT_CATEGORIES else 0,
    }


def _round4(v: float) -> float:
    r = round(float(v), 4)
    return 0.0 if r == 0 else r


# ----------------------------------------------------------------------------- targets


def dtr_target(row: Mapping[str, Any], rng: np.random.Generator | None = None, style: str = "numbers_first") -> str:
    """`<detect>After aligning to the reference frame K, find N relevant objects: ...` with the
    centers in frame K, then the single-view reasoning on those numbers. Camera motion: the LOR trace."""
    if row["category"] == MOTION:
        return lor_target(row, rng, style)
    frame = reference_frame(row)
    return aligned(traces.dtr_target(in_frame(row, frame), rng, style), frame)


def aligned(dtr_text: str, frame: int) -> str:
    """A DTR text (`traces.dtr`) whose detect block opens as multi-view DTR's does, naming `frame`.

    >>> aligned("<detect>Find 1 relevant object:", 2)
    '<detect>After aligning to the reference frame 2, find 1 relevant object:'
    """
    head = "<detect>Find "
    if not dtr_text.startswith(head):
        raise ValueError(f"not a DTR text: {dtr_text[:40]!r}")
    return f"{rewards.FRAME_PREFIX}{frame}, find " + dtr_text[len(head):]


def lor_target(row: Mapping[str, Any], rng: np.random.Generator | None = None, style: str = "numbers_first") -> str:
    """`<think>..</think>\\n<answer>..</answer>`: the quantities the answer rests on, in words."""
    if row["category"] == MOTION:
        return traces.lor(_motion_think(row), row["answer"])
    frame = reference_frame(row)
    seen = in_frame(row, frame)
    objs = [seen["objects"][i] for i in Q.roles(row)]
    cams = [np.asarray(o["center"], dtype=np.float64) for o in objs]
    names = [f"the {o['color']} {o['name']} in the {r['label']} (image {f})"
             for o, r, f in zip(objs, row["regions"], row["region_frames"])]
    about = traces._pick(rng, ("about", "roughly", "around"))
    ans, cat = row["answer"], row["category"]
    if cat == "cross_distance":
        side, up, depth = traces._world_parts(cams, seen["camera_to_world"])
        think = (f"In the camera frame of image {frame}, the centers of {names[0]} and {names[1]} differ by "
                 f"{about} {Q.fmt(side)} m sideways, {Q.fmt(up)} m in height and {Q.fmt(depth)} m in depth, "
                 f"so they are {ans} m apart.")
        return traces.lor(think, ans)
    opt = traces._option(row)
    if cat == "cross_left_right":
        where = [f"{Q.fmt(abs(c[0]))} m {'right' if c[0] >= 0 else 'left'}" for c in cams]
        think = (f"Seen from image {frame}, {names[0]} is {about} {where[0]} of the view axis and {names[1]} "
                 f"{about} {where[1]}, so the answer is {opt}.")
    elif cat == "cross_front_behind":
        think = (f"Seen from image {frame}, {names[0]} is {about} {Q.fmt(np.linalg.norm(cams[0]))} m from the camera "
                 f"and {names[1]} {about} {Q.fmt(np.linalg.norm(cams[1]))} m, so the answer is {opt}.")
    else:
        z = world_from_camera(np.stack(cams), seen["camera_to_world"])[:, 2]
        think = (f"The center of {names[0]} is {about} {Q.fmt(z[0])} m above the floor and that of {names[1]} "
                 f"{about} {Q.fmt(z[1])} m, so the answer is {opt}.")
    return traces.lor(traces._styled(seen, think, style), ans)


def _motion_think(row: Mapping[str, Any]) -> str:
    a, b = motion_frames(row["question"])
    m = multiview.camera_motion_components(row["view_poses"][a - 1], row["view_poses"][b - 1])

    def part(value: float, pos: str, neg: str, unit: str, digits: int) -> str:
        number = multiview.magnitude(value, digits)
        return f"{pos if value > 0 else neg} {number} {unit[:-1] if number == '1' else unit}"

    md, td = multiview.MOVE_DECIMALS, multiview.TURN_DECIMALS
    return (f"From image {a} to image {b} the camera moved {part(m['right'], 'right', 'left', 'm', md)}, "
            f"{part(m['forward'], 'forward', 'backward', 'm', md)} and {part(m['up'], 'up', 'down', 'm', md)}, "
            f"and turned {part(m['turn_right'], 'right', 'left', 'degrees', td)} and "
            f"{part(m['turn_up'], 'up', 'down', 'degrees', td)}.")


def frame_centers_json(row: Mapping[str, Any]) -> str:
    """`frame_centers(row)` as the JSON string a stored row keeps ("{}" without regions)."""
    return json.dumps({str(k): v for k, v in frame_centers(row).items()}) if row["regions"] else "{}"
