"""Spatial questions of every category (SPEC section 6), with exact answers from the geometry.

Two kinds of question on one rendered view:
- `region_qa` (DTR path): objects are named by visual prompts, `the object in the red box
  <region>`; the k-th `<region>` token is `regions[k]`;
- `general_qa` (LOR path): objects are named by a unique description, `the red cube`, and the
  categories add `count` and `exists`.

Objects play *roles* in question order: A then B for a pair, the reference then the candidates
for `closest_to`. `roles(row)` recovers them from a stored row (region order, or the key order
of `centers`), so every answer is recomputable from the stored geometry alone:
`recompute_answer(row)`. `answer_from_centers(category, centers, row)` computes the answer a set
of (e.g. model-detected) camera-frame centers implies, for the categories centers decide.

Choice questions compare with a margin (a clear difference only) and shuffle the options, so
the correct letter is uniform. Taught in `notebooks/01_build_data.ipynb`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench import schema
from workbench.tasks import traces
from workbench.tasks.vocab import (
    CHOICE_TEMPLATES,
    CLOSEST_TEMPLATES,
    COUNT_TEMPLATES,
    EXISTS_TEMPLATES,
    GENERAL_CATEGORIES,
    LETTERS,
    MIN_NUMERIC,
    N_ROLES,
    NUMERIC_TEMPLATES,
    REGION_CATEGORIES,
    SIZE_CATEGORIES,
    WORD_SIGN,
    fmt,
    matches,
    parse_target,
    role_labels,
    roles,
    volume,
    width_of,
)
from workbench.world.scenes import (
    CATALOGUE,
    NAME_TO_CATEGORY,
    project,
    world_from_camera,
)


def numeric_value(
    category: str, cams: Sequence[Any], sizes: Sequence[Any] | None, camera_to_world: Any
) -> float:
    """Exact value of a numeric category for role centers `cams` (camera frame) and `sizes`."""
    c = [np.asarray(x, dtype=np.float64) for x in cams]
    if category == "distance":
        return float(np.linalg.norm(c[0] - c[1]))
    if category == "camera_distance":
        return float(np.linalg.norm(c[0]))
    if category in ("horizontal_distance", "vertical_distance"):
        w = world_from_camera(np.stack(c[:2]), camera_to_world)
        if category == "horizontal_distance":
            return float(np.linalg.norm(w[0, :2] - w[1, :2]))
        return float(abs(w[0, 2] - w[1, 2]))
    if category == "width":
        return width_of(sizes[0])
    if category == "height":
        return float(sizes[0][2])
    raise ValueError(f"{category!r} is not a numeric category {schema.NUMERIC_CATEGORIES}")


def signed_relation(
    category: str, cams: Sequence[Any], sizes: Sequence[Any] | None, camera_to_world: Any
) -> float:
    """Signed amount by which A relates to B: > 0 means the positive word (right, above, in front,
    bigger, taller, wider) is true of A."""
    c = [np.asarray(x, dtype=np.float64) for x in cams]
    if category == "left_right":
        return float(c[0][0] - c[1][0])
    if category == "above_below":
        w = world_from_camera(np.stack(c[:2]), camera_to_world)
        return float(w[0, 2] - w[1, 2])
    if category == "front_behind":
        return float(np.linalg.norm(c[1]) - np.linalg.norm(c[0]))
    if category == "bigger_smaller":
        return volume(sizes[0]) - volume(sizes[1])
    if category == "taller_shorter":
        return float(sizes[0][2]) - float(sizes[1][2])
    if category == "wider_thinner":
        return width_of(sizes[0]) - width_of(sizes[1])
    raise ValueError(f"{category!r} is not a two-object choice category")


def closest_index(cams: Sequence[Any]) -> int:
    """Index (into cams[1:]) of the candidate nearest to the reference cams[0]."""
    c = np.asarray(cams, dtype=np.float64)
    return int(np.argmin(np.linalg.norm(c[1:] - c[0], axis=1)))


def _is_clear(category: str, cams, sizes, c2w, intrinsics, width: int) -> bool:
    """Only ask about differences a careful viewer could not get wrong."""
    if category in schema.NUMERIC_CATEGORIES:
        return numeric_value(category, cams, sizes, c2w) >= MIN_NUMERIC.get(category, 0.05)
    if category == "closest_to":
        c = np.asarray(cams, dtype=np.float64)
        d = np.sort(np.linalg.norm(c[1:] - c[0], axis=1))
        return bool(d[1] - d[0] >= 0.2 and d[0] <= 0.75 * d[1])
    s = signed_relation(category, cams, sizes, c2w)
    if category == "left_right":
        uv = project(np.asarray(cams[:2], dtype=np.float64), intrinsics)
        du = uv[0, 0] - uv[1, 0]
        return abs(s) >= 0.15 and np.sign(du) == np.sign(s) and abs(du) >= 0.05 * width
    if category == "above_below":
        return abs(s) >= 0.15
    if category == "front_behind":
        dz = float(cams[1][2]) - float(cams[0][2])
        return abs(s) >= 0.25 and np.sign(dz) == np.sign(s) and abs(dz) >= 0.15
    if category == "bigger_smaller":
        v = sorted((volume(sizes[0]), volume(sizes[1])))
        return v[1] >= 1.5 * v[0]
    a, b = sorted(
        (float(sizes[0][2]), float(sizes[1][2]))
        if category == "taller_shorter"
        else (width_of(sizes[0]), width_of(sizes[1]))
    )
    return b - a >= 0.08 and b >= 1.2 * a


def _choice_letter(choices: Sequence[str], option: str) -> str:
    return LETTERS[list(choices).index(option)]


def _answer(category: str, cams, sizes, row: Mapping[str, Any], labels: Sequence[str]) -> str:
    c2w, choices = row["camera_to_world"], row["choices"]
    if category in schema.NUMERIC_CATEGORIES:
        return fmt(numeric_value(category, cams, sizes, c2w))
    if category == "closest_to":
        return _choice_letter(choices, labels[1 + closest_index(cams)])
    s = signed_relation(category, cams, sizes, c2w)
    signs = WORD_SIGN[category]
    word = next(w for w in choices if signs.get(w) == (1 if s > 0 else -1))
    return _choice_letter(choices, word)


def recompute_answer(row: Mapping[str, Any]) -> str | None:
    """The answer of a question row recomputed from its stored geometry (objects, camera); a
    multi-view row's is `crossview.recompute_answer`.

    For `ground_3d` / `ground_2d` rows: the target text (the object's center / visible 2D box);
    for `caption`: None.
    """
    task, category = row["task"], row["category"]
    if task == "caption":
        return None
    if task in ("ground_3d", "ground_2d"):
        reg = row["regions"][0]
        obj = row["objects"][reg["object_index"]]
        if task == "ground_3d":
            return traces.box3d(obj["center"], obj["name"], reg["label"])
        return traces.box2d(obj["bbox_2d"], obj["name"], reg["label"])
    if category in ("count", "exists"):
        color, name = parse_target(row["question"], category)
        n = sum(matches(o, color, name) for o in row["objects"])
        option = str(n) if category == "count" else ("yes" if n else "no")
        return _choice_letter(row["choices"], option)
    idx = roles(row)
    cams = [row["objects"][i]["center"] for i in idx]
    sizes = [row["objects"][i]["size"] for i in idx]
    return _answer(category, cams, sizes, row, role_labels(row))


def answer_from_centers(
    category: str, centers_by_label: Mapping[str, Sequence[float]], row: Mapping[str, Any]
) -> str | None:
    """The answer implied by camera-frame centers {label: [x, y, z]} (e.g. a model's detections).

    Labels are the row's region labels (or descriptions for general rows). Uses the row's
    `camera_to_world` and `choices`. None when the category needs sizes (width, height,
    bigger_smaller, taller_shorter, wider_thinner), for count / exists, or when a role's center
    is missing or malformed.
    """
    if category in SIZE_CATEGORIES or category in schema.GENERAL_ONLY_CATEGORIES:
        return None
    if category not in REGION_CATEGORIES:
        raise ValueError(f"unknown question category {category!r}")
    labels = role_labels(row)
    try:
        cams = [np.asarray([float(v) for v in centers_by_label[lab]], dtype=np.float64) for lab in labels]
    except (KeyError, TypeError, ValueError):
        return None
    if any(c.shape != (3,) or not np.all(np.isfinite(c)) for c in cams):
        return None
    if (
        category
        in (
            "distance",
            "horizontal_distance",
            "vertical_distance",
            "left_right",
            "above_below",
            "front_behind",
        )
        and len(cams) < 2
    ):
        return None
    return _answer(category, cams, None, row, labels)


# ----------------------------------------------------------------------------- generation


def _ref(task: str, label: str) -> str:
    return f"the object in the {label} {schema.REGION_TOKEN}" if task == "region_qa" else f"the {label}"


def _join_or(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else items[0]


def _shuffled(rng: np.random.Generator, options: list[str]) -> list[str]:
    return [options[i] for i in rng.permutation(len(options))]


def generate(
    rng: np.random.Generator,
    geometry: Mapping[str, Any],
    scene_objects: Sequence[Mapping[str, Any]],
    vocabulary: tuple[Sequence[str], Sequence[str]],
    n_region: int,
    n_general: int,
    mark_colors: Sequence[str],
    point_fraction: float = 0.5,
    categories: Sequence[str] | None = None,
) -> list[dict]:
    """Questions on one view.

    geometry: {objects (usable ones, as stored in rows), camera_to_world, intrinsics, width}.
    scene_objects: every object of the scene as {name, color, visible (bool), row_index or -1};
      general questions only name descriptions unique among the visible objects, and count /
      exists only ask where no partly visible (unusable) object could change the answer.
    vocabulary: (shape categories, colors) of the domain, for `exists` questions that answer no.
    categories: ask only these (None = all); a task none of them belongs to gets no questions.
    Returns dicts with task, category, question, answer_type, answer, choices, path,
    regions [{label, kind, object_index}] and centers {label: center}.
    """
    out: list[dict] = []
    for task, n, cats in (
        ("region_qa", n_region, REGION_CATEGORIES),
        ("general_qa", n_general, GENERAL_CATEGORIES),
    ):
        if categories is not None:
            cats = tuple(c for c in cats if c in categories)
            if not cats:
                continue
        offset = int(rng.integers(len(cats)))
        for j in range(n):
            # Round-robin over categories from a random start keeps them balanced overall; a
            # category with no clear question on this view yields to the next one.
            for k in range(len(cats)):
                cat = cats[(offset + j + k) % len(cats)]
                q = _make(rng, task, cat, geometry, scene_objects, vocabulary, mark_colors, point_fraction)
                if q is not None:
                    out.append(q)
                    break
    return out


def _eligible(task: str, geometry, scene_objects) -> list[int]:
    n = len(geometry["objects"])
    if task == "region_qa":
        return list(range(n))
    seen: dict[str, int] = {}
    for o in scene_objects:
        if o["visible"]:
            seen[f"{o['color']} {o['name']}"] = seen.get(f"{o['color']} {o['name']}", 0) + 1
    objs = geometry["objects"]
    return [i for i in range(n) if seen.get(f"{objs[i]['color']} {objs[i]['name']}") == 1]


def _pick_roles(rng, cat: str, eligible: list[int], geometry) -> list[int] | None:
    objs, c2w, intr, width = (
        geometry["objects"],
        geometry["camera_to_world"],
        geometry["intrinsics"],
        geometry["width"],
    )
    need = N_ROLES.get(cat, 2)
    if cat == "closest_to":
        if len(eligible) < 4:
            return None
        for _ in range(12):
            k = int(rng.integers(3, min(4, len(eligible) - 1) + 1))
            pick = [eligible[i] for i in rng.permutation(len(eligible))[: k + 1]]
            if _is_clear(cat, [objs[i]["center"] for i in pick], None, c2w, intr, width):
                return pick
        return None
    if len(eligible) < need:
        return None
    if need == 1:
        cands = [[i] for i in eligible]
    else:
        cands = [[i, j] for i in eligible for j in eligible if i != j]
    for t in rng.permutation(len(cands)):
        pick = cands[t]
        cams = [objs[i]["center"] for i in pick]
        sizes = [objs[i]["size"] for i in pick]
        if not _is_clear(cat, cams, sizes, c2w, intr, width):
            continue
        if cat in schema.NUMERIC_CATEGORIES and not _trace_consistent(cat, cams, sizes, c2w):
            continue
        return pick
    return None


def _trace_consistent(cat: str, cams, sizes, c2w) -> bool:
    """The DTR trace redoes the arithmetic from 2-decimal centers: keep only questions where
    that arithmetic lands on the true (2-decimal) answer."""
    if cat in ("width", "height"):
        return True
    rounded = [[float(fmt(v)) for v in c] for c in cams]
    _, value = traces.numeric_steps(cat, rounded, c2w)
    return value == fmt(numeric_value(cat, cams, sizes, c2w))


def _make(rng, task, cat, geometry, scene_objects, vocabulary, mark_colors, point_fraction) -> dict | None:
    objs = geometry["objects"]
    if cat == "count":
        return _make_count(rng, geometry, scene_objects)
    if cat == "exists":
        return _make_exists(rng, geometry, scene_objects, vocabulary)
    pick = _pick_roles(rng, cat, _eligible(task, geometry, scene_objects), geometry)
    if pick is None:
        return None
    if task == "region_qa":
        colors = [mark_colors[i] for i in rng.permutation(len(mark_colors))[: len(pick)]]
        assert len(colors) == len(pick), f"need {len(pick)} mark colors, have {list(mark_colors)}"
        kinds = ["point" if rng.random() < point_fraction else "box" for _ in pick]
        labels = [f"{c} {k}" for c, k in zip(colors, kinds)]
    else:
        labels = [f"{objs[i]['color']} {objs[i]['name']}" for i in pick]
        colors = kinds = None
    refs = [_ref(task, lab) for lab in labels]
    if cat in schema.NUMERIC_CATEGORIES:
        template = NUMERIC_TEMPLATES[cat][int(rng.integers(len(NUMERIC_TEMPLATES[cat])))]
        question = template.format(A=refs[0], B=refs[1] if len(refs) > 1 else "")
        choices: list[str] = []
        answer_type = "number"
    elif cat == "closest_to":
        # Candidates are listed in option order, so regions follow the question's token order.
        order = rng.permutation(len(pick) - 1) + 1
        pick = [pick[0]] + [pick[i] for i in order]
        labels = [labels[0]] + [labels[i] for i in order]
        refs = [refs[0]] + [refs[i] for i in order]
        template = CLOSEST_TEMPLATES[int(rng.integers(len(CLOSEST_TEMPLATES)))]
        question = template.format(A=refs[0], C=_join_or(refs[1:]))
        choices = labels[1:]
        answer_type = "choice"
    else:
        template, pos, neg = CHOICE_TEMPLATES[cat][int(rng.integers(len(CHOICE_TEMPLATES[cat])))]
        question = template.format(A=refs[0], B=refs[1])
        choices = _shuffled(rng, [pos, neg])
        answer_type = "choice"
    question = question[0].upper() + question[1:]
    regions = []
    if task == "region_qa":
        regions = [{"label": lab, "kind": k, "object_index": i} for lab, k, i in zip(labels, kinds, pick)]
    centers = {lab: list(objs[i]["center"]) for lab, i in zip(labels, pick)}
    context = {"camera_to_world": geometry["camera_to_world"], "choices": choices}
    answer = _answer(cat, [objs[i]["center"] for i in pick], [objs[i]["size"] for i in pick], context, labels)
    return {
        "task": task,
        "category": cat,
        "question": question,
        "answer_type": answer_type,
        "answer": answer,
        "choices": choices,
        "path": "dtr" if task == "region_qa" else "lor",
        "regions": regions,
        "centers": centers,
    }


def _make_count(rng, geometry, scene_objects) -> dict | None:
    objs = geometry["objects"]
    filters = {(None, None)}
    for o in objs:
        filters |= {(o["color"], None), (None, o["name"]), (o["color"], o["name"])}
    options = []
    for color, name in sorted(filters, key=lambda f: (f[0] or "", f[1] or "")):
        visible = [o for o in scene_objects if o["visible"] and matches(o, color, name)]
        if all(o["row_index"] >= 0 for o in visible) and visible:
            options.append((color, name))
    if not options:
        return None
    color, name = options[int(rng.integers(len(options)))]
    n = sum(matches(o, color, name) for o in objs)
    noun = CATALOGUE[NAME_TO_CATEGORY[name]].plural if name else "objects"
    target = f"{color} {noun}" if color else noun
    template = COUNT_TEMPLATES[int(rng.integers(len(COUNT_TEMPLATES)))]
    start = int(rng.integers(max(0, n - 3), n + 1))
    choices = [str(v) for v in range(start, start + 4)]
    return _general_row("count", template.format(target=target), choices, _choice_letter(choices, str(n)))


def _make_exists(rng, geometry, scene_objects, vocabulary) -> dict | None:
    objs = geometry["objects"]
    shapes, colors = vocabulary
    use_color = rng.random() < 0.6
    if rng.random() < 0.5 and objs:
        o = objs[int(rng.integers(len(objs)))]
        color, name, option = (o["color"] if use_color else None), o["name"], "yes"
    else:
        absent = []
        for cat in shapes:
            name = CATALOGUE[cat].name
            for color in colors if use_color else [None]:
                if not any(matches(o, color, name) for o in scene_objects):
                    absent.append((color, name))
        if not absent:
            return None
        color, name = absent[int(rng.integers(len(absent)))]
        option = "no"
    target = f"{color} {name}" if color else name
    template = EXISTS_TEMPLATES[int(rng.integers(len(EXISTS_TEMPLATES)))]
    choices = _shuffled(rng, ["yes", "no"])
    return _general_row("exists", template.format(target=target), choices, _choice_letter(choices, option))


def _general_row(cat: str, question: str, choices: list[str], answer: str) -> dict:
    return {
        "task": "general_qa",
        "category": cat,
        "question": question,
        "answer_type": "choice",
        "answer": answer,
        "choices": choices,
        "path": "lor",
        "regions": [],
        "centers": {},
    }
