"""Questions and traces: relations on hand-made geometry, recomputation, implied answers, formats."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from spec_formats import BOX, DTR, LOR

from workbench.tasks import questions as Q
from workbench.tasks import traces
from workbench.world import render
from workbench.world.scenes import camera_from_world, domain_vocabulary, look_at, sample_scene

C2W = look_at(np.array([0.0, -3.0, 1.5]), np.array([0.0, 0.0, 0.3]))
INTR = [100.0, 100.0, 56.0, 56.0]


def _cam(p):
    return camera_from_world(np.asarray(p, dtype=float), C2W).tolist()


def _obj(world, size=(0.3, 0.3, 0.3), name="cube", color="red"):
    return {
        "name": name,
        "category": name,
        "color": color,
        "center": _cam(world),
        "yaw": 0.0,
        "size": list(size),
        "bbox_2d": [0, 0, 1, 1],
    }


def _row(category, objs, labels, choices=(), task="region_qa"):
    regions = (
        [
            {"label": lab, "kind": lab.split()[1], "object_index": i, "bbox_2d": [0, 0, 1, 1]}
            for i, lab in enumerate(labels)
        ]
        if task == "region_qa"
        else []
    )
    centers = {lab: o["center"] for lab, o in zip(labels, objs)}
    return {
        "id": "t",
        "task": task,
        "category": category,
        "objects": objs,
        "regions": regions,
        "centers": json.dumps(centers),
        "camera_to_world": C2W.tolist(),
        "intrinsics": INTR,
        "choices": list(choices),
        "question": "",
    }


# (category, world center A, world center B, expected value)
NUMERIC_CASES = [
    ("distance", (0, 0, 0.2), (3, 4, 0.2), 5.0),
    ("horizontal_distance", (0, 0, 0.2), (1, 0, 1.2), 1.0),
    ("vertical_distance", (0, 0, 0.2), (1, 0, 1.2), 1.0),
    ("vertical_distance", (0.5, 0.5, 0.9), (-1, 2, 0.2), 0.7),
]


@pytest.mark.parametrize("category,a,b,expected", NUMERIC_CASES)
def test_numeric_values_use_gravity_not_the_camera_tilt(category, a, b, expected):
    assert Q.numeric_value(category, [_cam(a), _cam(b)], None, C2W) == pytest.approx(expected)


def test_single_object_values():
    o = _obj((0, 0, 0.2), size=(0.4, 0.6, 0.25))
    assert Q.numeric_value("width", [o["center"]], [o["size"]], C2W) == 0.6
    assert Q.numeric_value("height", [o["center"]], [o["size"]], C2W) == 0.25
    assert Q.numeric_value("camera_distance", [[0.3, 0.4, 1.2]], None, C2W) == pytest.approx(1.3)


# (category, A world, B world, sizes A, B, expected sign: +1 = the positive word is true of A)
SIGN_CASES = [
    ("left_right", (1, 0, 0.2), (-1, 0, 0.2), None, None, 1),
    ("left_right", (-1, 0, 0.2), (1, 0, 0.2), None, None, -1),
    ("above_below", (0, 0, 1.0), (0, 0.5, 0.2), None, None, 1),
    ("front_behind", (0, -1, 0.2), (0, 1, 0.2), None, None, 1),
    ("front_behind", (0, 2, 0.2), (0, 1, 0.2), None, None, -1),
    ("bigger_smaller", (0, 0, 0.2), (1, 0, 0.2), (0.5, 0.5, 0.5), (0.3, 0.3, 0.3), 1),
    ("taller_shorter", (0, 0, 0.2), (1, 0, 0.2), (0.5, 0.5, 0.2), (0.3, 0.3, 0.3), -1),
    ("wider_thinner", (0, 0, 0.2), (1, 0, 0.2), (0.2, 0.6, 0.2), (0.3, 0.3, 0.3), 1),
]


@pytest.mark.parametrize("category,a,b,sa,sb,sign", SIGN_CASES)
def test_choice_relations(category, a, b, sa, sb, sign):
    sizes = [sa, sb] if sa else None
    assert np.sign(Q.signed_relation(category, [_cam(a), _cam(b)], sizes, C2W)) == sign


def test_closest_index():
    assert Q.closest_index([[0, 0, 2], [1, 0, 2], [0.2, 0, 2.1], [0, 3, 2]]) == 1


@pytest.mark.parametrize("value,text", [(-0.001, "0.00"), (1.005, "1.00"), (0.456, "0.46"), (2, "2.00")])
def test_fmt(value, text):
    assert Q.fmt(value) == text


def test_recompute_and_implied_answers_on_a_hand_made_row():
    objs = [_obj((1, 0, 0.2)), _obj((-1, 0, 0.8), size=(0.2, 0.2, 0.6))]
    row = _row("left_right", objs, ["red box", "blue point"], choices=["left", "right"])
    row["answer"] = Q.recompute_answer(row)
    assert row["answer"] == "B"  # A is to the right
    centers = {"red box": objs[0]["center"], "blue point": objs[1]["center"]}
    assert Q.answer_from_centers("left_right", centers, row) == "B"
    swapped = {"red box": objs[1]["center"], "blue point": objs[0]["center"]}
    assert Q.answer_from_centers("left_right", swapped, row) == "A"
    assert Q.answer_from_centers("left_right", {"red box": objs[0]["center"]}, row) is None
    assert Q.answer_from_centers("left_right", {"red box": [1, 2], "blue point": [0, 0, 1]}, row) is None
    above = _row("above_below", objs, ["red box", "blue point"], choices=["higher", "lower"])
    assert Q.recompute_answer(above) == "B"
    assert Q.answer_from_centers("taller_shorter", centers, above) is None
    dist = _row("vertical_distance", objs, ["red box", "blue point"])
    assert Q.recompute_answer(dist) == "0.60" == Q.answer_from_centers("vertical_distance", centers, dist)
    general = _row("distance", objs, ["red cube", "blue cube"], task="general_qa")
    general["objects"][1]["color"] = "blue"
    assert Q.recompute_answer(general) == Q.fmt(math.dist(objs[0]["center"], objs[1]["center"]))
    with pytest.raises(ValueError, match="unknown question category"):
        Q.answer_from_centers("colour", centers, row)


@pytest.mark.parametrize(
    "question,category,target",
    [
        ("How many cubes are there?", "count", (None, "cube")),
        ("How many red objects can you see?", "count", ("red", None)),
        ("Count the blue balls in the image.", "count", ("blue", "ball")),
        ("How many objects are there?", "count", (None, None)),
        ("Is there a green cone in the image?", "exists", ("green", "cone")),
        ("Can you see a table?", "exists", (None, "table")),
    ],
)
def test_parse_target(question, category, target):
    assert Q.parse_target(question, category) == target


def test_parse_target_rejects_unknown_words():
    with pytest.raises(ValueError, match="cannot read"):
        Q.parse_target("How many dragons are there?", "count")


def _geometry(seed, domain="in"):
    """Question geometry straight from a sampled scene (every object counted as usable)."""
    scene = sample_scene(np.random.default_rng(seed), domain)
    centers = scene.camera_centers()
    objs = [
        {
            "name": o.name,
            "category": o.category,
            "color": o.color,
            "center": [round(v, 4) for v in centers[i]],
            "yaw": o.yaw,
            "size": list(o.size),
            "bbox_2d": [0, 0, 1, 1],
        }
        for i, o in enumerate(scene.objects)
    ]
    scene_objects = [
        {"name": o.name, "color": o.color, "visible": True, "row_index": i}
        for i, o in enumerate(scene.objects)
    ]
    geometry = {
        "objects": objs,
        "camera_to_world": scene.camera_to_world.round(6).tolist(),
        "intrinsics": list(scene.intrinsics),
        "width": 112,
    }
    return geometry, scene_objects, domain_vocabulary(domain)


def _rows(n_scenes=40):
    rows = []
    for seed in range(n_scenes):
        geometry, scene_objects, vocab = _geometry(seed)
        rng = np.random.default_rng(seed)
        for q in Q.generate(rng, geometry, scene_objects, vocab, 6, 3, list(render.MARK_COLORS)):
            q = dict(
                q,
                id=f"{seed}",
                objects=geometry["objects"],
                camera_to_world=geometry["camera_to_world"],
                intrinsics=geometry["intrinsics"],
                centers=json.dumps(q["centers"]),
            )
            q["lor_target"], q["dtr_target"] = traces.lor_target(q, rng), traces.dtr_target(q, rng)
            rows.append(q)
    return rows


@pytest.fixture(scope="module")
def rows():
    return _rows()


def test_generated_answers_recompute_and_letters_are_balanced(rows):
    cats = Counter((r["task"], r["category"]) for r in rows)
    assert {c for t, c in cats if t == "region_qa"} == set(Q.REGION_CATEGORIES)
    for r in rows:
        assert Q.recompute_answer(r) == r["answer"], r["question"]
        assert r["question"].count("<region>") == len(r["regions"])
        if r["answer_type"] == "number":
            assert re.fullmatch(r"\d+\.\d\d", r["answer"])
        implied = Q.answer_from_centers(r["category"], {k: v for k, v in json.loads(r["centers"]).items()}, r)
        if r["category"] not in Q.SIZE_CATEGORIES + ("count", "exists"):
            assert implied == r["answer"]
    two = Counter(r["answer"] for r in rows if len(r["choices"]) == 2)
    assert 0.35 < two["A"] / (two["A"] + two["B"]) < 0.65, two


def test_choices_respect_margins(rows):
    for r in rows:
        if r["category"] == "left_right":
            a, b = (r["objects"][i]["center"] for i in Q.roles(r))
            assert abs(a[0] - b[0]) >= 0.15
        if r["category"] == "bigger_smaller":
            va, vb = (Q.volume(r["objects"][i]["size"]) for i in Q.roles(r))
            assert max(va, vb) >= 1.5 * min(va, vb)


NUM = r"-?\d+\.\d+"


def _check_written_arithmetic(text):
    """Every `a - b = c`, `sqrt(s) = v` and `sqrt(a^2 + b^2 ...) = v` written in a trace holds."""
    for a, b, c in re.findall(rf"({NUM}) - \(?({NUM})\)? = ({NUM})", text):
        assert float(a) - float(b) == pytest.approx(float(c), abs=1e-9), text
    for s, v in re.findall(rf"sqrt\(({NUM})\) = ({NUM})", text):
        assert f"{math.sqrt(float(s)):.2f}" == v, text
    for terms, v in re.findall(rf"sqrt\(((?:{NUM}\^2(?: \+ )?)+)\) = ({NUM})\.", text):
        total = sum(float(t) ** 2 for t in re.findall(rf"({NUM})\^2", terms))
        assert abs(math.sqrt(total) - float(v)) <= 0.005 + 1e-9, text
    for terms, total in re.findall(rf"sqrt\(((?:{NUM}\^2(?: \+ )?)+)\) = sqrt\(({NUM})\)", text):
        squares = sum(float(t) ** 2 for t in re.findall(rf"({NUM})\^2", terms))
        assert squares == pytest.approx(float(total), abs=1e-9), text
    p = r"\(?(-?\d+\.\d+)\)?"
    for c, x, s, y, f in re.findall(rf"({NUM})\*{p} - ({NUM})\*{p} = ({NUM})", text):
        assert abs(float(c) * float(x) - float(s) * float(y) - float(f)) <= 0.0005 + 1e-9, text
    for c, x, s, y, u in re.findall(rf"-\(({NUM})\*{p} \+ ({NUM})\*{p}\) = ({NUM})", text):
        assert abs(-(float(c) * float(x) + float(s) * float(y)) - float(u)) <= 0.0005 + 1e-9, text
        m = re.search(rf"Vertical distance = ({NUM})", text)
        if m:
            assert abs(abs(float(u)) - float(m.group(1))) <= 0.005 + 1e-9, text




def test_targets_follow_the_spec_formats(rows):
    for r in rows:
        lor = LOR.fullmatch(r["lor_target"])
        dtr = DTR.fullmatch(r["dtr_target"])
        assert lor and dtr, (r["lor_target"], r["dtr_target"])
        assert lor.group(2) == dtr.group(4) == r["answer"]
        assert len(lor.group(1).split()) <= 70 and len(dtr.group(3).split()) <= 70
        boxes = BOX.findall(dtr.group(2))
        assert len(boxes) == int(dtr.group(1))
        if r["category"] not in ("count", "exists"):
            centers = json.loads(r["centers"])
            assert [b[4] for b in boxes] == list(centers)
            for *xyz, name, label in boxes:
                assert [float(v) for v in xyz] == pytest.approx(centers[label], abs=0.005 + 1e-9)
                assert name == r["objects"][Q.roles(r)[list(centers).index(label)]]["name"]
        _check_written_arithmetic(dtr.group(3))
        if r["answer_type"] == "choice":
            assert f"({r['answer']})" in dtr.group(3) and f"({r['answer']})" in lor.group(1)


def test_arithmetic_checker_can_fail():
    with pytest.raises(AssertionError):
        _check_written_arithmetic("dx = 0.50 - 0.20 = 0.40.")
    with pytest.raises(AssertionError):
        _check_written_arithmetic("Distance = sqrt(0.30^2 + 0.40^2) = 0.60.")
    with pytest.raises(AssertionError):
        _check_written_arithmetic("Distance = sqrt(0.30^2 + 0.40^2) = sqrt(0.2600) = 0.51.")
    with pytest.raises(AssertionError):
        _check_written_arithmetic("Along the floor: 0.900*0.50 - 0.400*(-0.20) = 0.370.")
    with pytest.raises(AssertionError):
        _check_written_arithmetic(
            "Height change = -(0.900*0.50 + 0.400*(-0.20)) = -0.370. Vertical distance = 0.40."
        )


def test_numeric_steps_by_hand():
    text, value = traces.numeric_steps("distance", [[0.0, 0.0, 1.0], [0.3, -0.4, 1.0]], C2W)
    assert value == "0.50" and "sqrt(0.2500) = 0.50" in text
    text, value = traces.numeric_steps("camera_distance", [[0.3, 0.4, 1.2]], C2W)
    assert value == "1.30"


def test_verdict_first_opens_comparisons_with_the_chosen_word_and_keeps_the_evidence(rows):
    seen = Counter()
    for r in rows:
        lor, dtr = traces.lor_target(r, None, "verdict_first"), traces.dtr_target(r, None, "verdict_first")
        plain_lor, plain_dtr = traces.lor_target(r, None), traces.dtr_target(r, None)
        head = traces.verdict(r)
        if head is None:  # counts, existence, numbers: unchanged
            assert (lor, dtr) == (plain_lor, plain_dtr)
            assert r["category"] not in (*traces.COMPARISONS, "closest_to")
            continue
        seen[r["task"], r["category"]] += 1
        word = r["choices"][Q.LETTERS.index(r["answer"])]
        labels = Q.role_labels(r)
        assert head.endswith(f": {'the ' if r['category'] == 'closest_to' else ''}{word}.")
        assert labels[0] in head and (r["category"] == "closest_to" or labels[1] in head)
        # the verdict opens <think> on both paths, and the rest is the numbers-first trace verbatim
        assert lor == plain_lor.replace("<think>", f"<think>{head} ", 1)
        assert dtr == plain_dtr.replace("</detect>\n<think>", f"</detect>\n<think>{head} ", 1)
        assert LOR.fullmatch(lor) and DTR.fullmatch(dtr)
    assert {c for t, c in seen if t == "region_qa"} == {*traces.COMPARISONS, "closest_to"}
    assert {t for t, c in seen} == {"region_qa", "general_qa"}


def test_verdict_of_a_hand_made_row_and_a_bad_style():
    a, b = _obj((-1, 0, 0.2)), _obj((1, 0, 0.2))
    row = dict(_row("left_right", [a, b], ["red box", "blue point"], ("left", "right")),
               answer="A", answer_type="choice")
    assert traces.verdict(row) == "The red box versus the blue point: left."
    assert traces.lor_target(row, None, "verdict_first").startswith("<think>The red box versus the blue point: left. ")
    with pytest.raises(ValueError, match="unknown trace style 'verdict'"):
        traces.lor_target(row, None, "verdict")
