"""Figures of `workbench.viz`: geometry checked against hand-computed values on a fixture row.

The fixture row follows docs/design.md: a camera 1.3 m above the floor, pitched down and turned
about gravity (so camera and world frames differ), depth ray-cast analytically onto the floor
plane z = 0 (sky pixels invalid), three upright objects with yaw. `test_real_dataset_row`
repeats the geometric checks on a row of the real smoke dataset when the data engine exists.
"""

from __future__ import annotations

import doctest
import json
import math
import zlib

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from workbench import viz
from workbench.schema import validate_row
from workbench.viz import traces as viz_traces

W, H = 40, 30
INTRINSICS = [36.0, 34.0, 19.5, 15.5]


def look_at(eye, target) -> np.ndarray:
    """(4, 4) OpenCV camera -> world (z up) of a zero-roll camera at `eye` looking at `target`."""
    f = np.asarray(target, float) - eye
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    m = np.eye(4)
    m[:3, :3] = np.stack([r, np.cross(f, r), f], axis=1)  # columns: +x right, +y down, +z forward
    m[:3, 3] = eye
    return m


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# name, color, world position (box center), size [sx, sy, sz], yaw
OBJECTS = [
    ("cube", "red", (0.3, 0.4, 0.25), (0.5, 0.3, 0.5), 0.6),
    ("ball", "blue", (-0.6, 1.0, 0.15), (0.3, 0.3, 0.3), 0.0),
    ("cylinder", "green", (0.7, 1.5, 0.4), (0.2, 0.25, 0.8), -1.0),
]


def make_row(rid: str = "s0-q0", scene_id: str = "s0", category: str = "distance", heading: float = 0.4) -> dict:
    """A contract row; `heading` turns the camera about gravity (different views of one scene)."""
    eye = np.array([2.2 * math.sin(heading), -2.2 * math.cos(heading) + 0.8, 1.3])
    c2w = look_at(eye, [0.0, 0.8, 0.6])  # the top rows see the sky (invalid depth)
    r, t = c2w[:3, :3], c2w[:3, 3]
    fx, fy, cx, cy = INTRINSICS
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)  # pixel centers
    d_world = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1) @ r.T  # rays with camera z = 1
    with np.errstate(divide="ignore"):
        depth = np.where(d_world[..., 2] < -1e-6, -t[2] / d_world[..., 2], 0.0).astype(np.float32)
    rng = np.random.default_rng(zlib.crc32(rid.encode()))
    image = Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    objects = []
    for name, color, pos, size, yaw in OBJECTS:
        center = (np.asarray(pos) - t) @ r  # world -> camera
        px = (fx * center[0] / center[2] + cx, fy * center[1] / center[2] + cy)
        objects.append(dict(name=name, category=name, color=color, center=center.round(6).tolist(), yaw=yaw,
                            size=list(size), bbox_2d=[int(px[0]) - 3, int(px[1]) - 3, int(px[0]) + 3, int(px[1]) + 3]))  # fmt: skip
    regions = [
        dict(label="red box", kind="box", object_index=0, bbox_2d=objects[0]["bbox_2d"]),
        dict(label="blue point", kind="point", object_index=1, bbox_2d=objects[1]["bbox_2d"]),
    ]
    centers = {reg["label"]: objects[reg["object_index"]]["center"] for reg in regions}
    c0, c1 = (", ".join(f"{x:.2f}" for x in centers[k]) for k in ("red box", "blue point"))
    d = float(np.linalg.norm(np.subtract(centers["red box"], centers["blue point"])))
    row = dict(
        id=rid, scene_id=scene_id, split="test", task="region_qa", image=image, depth=depth,
        intrinsics=INTRINSICS, camera_to_world=c2w.tolist(), objects=objects, regions=regions,
        question="How far is the object in the red box <region> from the one at the blue point <region>?",
        category=category, answer_type="number", answer=f"{d:.2f}", choices=[], path="dtr",
        centers=json.dumps(centers),
        lor_target=f"<think>The cube looks about {d:.2f} m from the ball.</think>\n<answer>{d:.2f}</answer>",
        dtr_target=(
            f'<detect>Find 2 relevant objects:\n<3d_box center="{c0.replace(" ", "")}">cube (red box)</3d_box>\n'
            f'<3d_box center="{c1.replace(" ", "")}">ball (blue point)</3d_box></detect>\n'
            f"<think>Distance = {d:.2f} m.</think>\n<answer>{d:.2f}</answer>"
        ),
    )  # fmt: skip
    validate_row(row)
    depth[-1, 0] = np.nan  # a corrupt floor pixel must not become a point
    return row


@pytest.fixture(scope="module")
def row():
    return make_row()


def trace(fig: go.Figure, name: str):
    found = [t for t in fig.data if t.name == name or (t.name or "").startswith(name)]
    assert len(found) == 1, f"expected one trace named {name!r}, got {[t.name for t in fig.data]}"
    return found[0]


def points_of(t) -> np.ndarray:
    return np.array([p for p in zip(t.x, t.y, t.z) if None not in p], dtype=float)


def test_doctests_pass():
    assert doctest.testmod(viz).failed == 0


# ----------------------------------------------------------------------------- point cloud


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_point_cloud_has_one_point_per_valid_depth_pixel(row, stride):
    depth = np.asarray(row["depth"])[::stride, ::stride]
    valid = np.isfinite(depth) & (depth > 0)
    assert 0 < valid.sum() < valid.size, "the fixture must have valid and invalid pixels"
    points, colors = viz.point_cloud(row, stride=stride)
    assert points.shape == (valid.sum(), 3) and colors.shape == (valid.sum(), 3)
    assert colors.dtype == np.uint8
    np.testing.assert_allclose(points[:, 2], depth[valid], rtol=1e-6)
    # Row-major order: colors are the image's pixels at the valid grid positions.
    np.testing.assert_array_equal(colors, np.asarray(row["image"])[::stride, ::stride][valid])


def test_point_cloud_back_projects_through_pixel_centers(row):
    # Every valid pixel sees the floor, so in the world frame every point lies on z = 0; with the
    # wrong pixel convention (u instead of u + 0.5) the points would leave the plane.
    for stride in (1, 2):
        points, _ = viz.point_cloud(row, stride=stride, frame="world")
        assert np.abs(points[:, 2]).max() < 1e-4
    cam, _ = viz.point_cloud(row, stride=1)
    fx, fy, cx, cy = row["intrinsics"]
    v, u = np.nonzero(np.nan_to_num(np.asarray(row["depth"])) > 0)
    np.testing.assert_allclose(cam[:, 0], (u + 0.5 - cx) * cam[:, 2] / fx, atol=1e-5)
    np.testing.assert_allclose(cam[:, 1], (v + 0.5 - cy) * cam[:, 2] / fy, atol=1e-5)


def test_point_cloud_stride_auto_and_voxels(row):
    points, _ = viz.point_cloud(row, max_points=300)
    assert 0 < len(points) <= 300
    coarse, _ = viz.point_cloud(row, stride=1, voxel_size=0.5)
    full, _ = viz.point_cloud(row, stride=1)
    assert 0 < len(coarse) < len(full)
    with pytest.raises(ValueError, match="frame"):
        viz.point_cloud(row, frame="robot")


# ----------------------------------------------------------------------------- boxes and centers


@pytest.mark.parametrize("index", range(len(OBJECTS)))
def test_box_corners_follow_center_size_and_yaw(row, index):
    _, _, pos, (sx, sy, sz), yaw = OBJECTS[index]
    cam = viz.box_corners(row, index, "camera")
    world = viz.box_corners(row, index, "world")
    np.testing.assert_allclose(cam.mean(axis=0), row["objects"][index]["center"], atol=1e-5)
    np.testing.assert_allclose(world.mean(axis=0), pos, atol=1e-5)
    local = (world - np.asarray(pos)) @ rot_z(yaw)  # undo the yaw about gravity
    np.testing.assert_allclose(np.abs(local), np.tile([sx / 2, sy / 2, sz / 2], (8, 1)), atol=1e-5)
    assert len(np.unique(np.sign(local), axis=0)) == 8  # one corner per octant
    # The two frames show the same box.
    m = np.asarray(row["camera_to_world"])
    np.testing.assert_allclose(cam @ m[:3, :3].T + m[:3, 3], world, atol=1e-9)


def test_box_corners_match_the_scene_engine(row):
    scenes = pytest.importorskip("workbench.world.scenes")
    for i, (name, color, pos, size, yaw) in enumerate(OBJECTS):
        obj = scenes.SceneObject(name, name, color, size, yaw, pos)
        np.testing.assert_allclose(viz.box_corners(row, i, "world"), obj.corners(), atol=1e-5)


def test_scene_figure_traces_and_wireframes(row):
    fig = viz.scene_figure(row, stride=2)
    names = [t.name for t in fig.data]
    assert names[0] == "point cloud" and names[-1] == "camera"
    assert len(fig.data) == 1 + len(OBJECTS) + 1 + 1  # cloud, boxes, gt centers, camera
    for i in range(len(OBJECTS)):
        box = points_of(trace(fig, f"box {i}:"))
        np.testing.assert_allclose(np.unique(box.round(6), axis=0),
                                   np.unique(viz.box_corners(row, i).round(6), axis=0))  # fmt: skip
        assert len(box) == 24  # 12 edges, 2 ends each
    gt = trace(fig, "ground-truth centers")
    np.testing.assert_allclose(points_of(gt), [o["center"] for o in row["objects"]])
    assert list(gt.text) == ["red cube [red box]", "blue ball [blue point]", "green cylinder"]
    # By default the cloud stops 1.5 m behind the farthest object (the floor runs to the horizon).
    depth = np.nan_to_num(np.asarray(row["depth"])[::2, ::2])
    limit = max(o["center"][2] for o in row["objects"]) + viz.AUTO_DEPTH_MARGIN
    assert depth.max() > limit, "the fixture must see beyond the objects"
    cloud = trace(fig, "point cloud")
    assert len(cloud.x) == int(((depth > 0) & (depth <= limit)).sum()) and max(cloud.z) <= limit
    everything = trace(viz.scene_figure(row, stride=2, max_depth=None), "point cloud")
    assert len(everything.x) == int((depth > 0).sum())
    with pytest.raises(ValueError, match="max_depth"):
        viz.scene_figure(row, max_depth="far")
    assert fig.layout.scene.zaxis.title.text == "z forward (m)"
    assert len(viz.scene_figure(row, show_camera=False).data) == len(fig.data) - 1


def test_scene_figure_error_vectors(row):
    gt_red = np.asarray(row["objects"][0]["center"])
    gt_blue = np.asarray(row["objects"][1]["center"])
    pred = {
        "cube (red box)": (gt_red + [0.1, 0.2, -0.2]).tolist(),  # 0.3 m off
        "ball (blue point)": (gt_blue + [0.0, 0.0, 0.05]).tolist(),
        "chair (green box)": [0.0, 0.0, 2.0],  # matches no ground-truth label
    }
    for frame in ("camera", "world"):
        fig = viz.scene_figure(row, predicted_centers=pred, frame=frame)
        assert len(fig.data) == 1 + 3 + 1 + 1 + 2 + 1  # ..., predicted, 2 errors, camera
        red = trace(fig, "error red box")
        assert red.name == "error red box: 0.30 m"
        ends = points_of(red)
        assert np.linalg.norm(ends[0] - ends[1]) == pytest.approx(0.3, abs=1e-6)
        np.testing.assert_allclose(ends[1], viz.to_frame(gt_red, row, frame), atol=1e-9)
        assert trace(fig, "error blue point").name == "error blue point: 0.05 m"
        assert len(points_of(trace(fig, "predicted centers"))) == 3
    assert fig.layout.scene.zaxis.title.text == "world z up (m)"
    # A DTR completion works as the prediction too (parsed like the detect reward).
    from_text = viz.scene_figure(row, predicted_centers=row["dtr_target"])
    assert trace(from_text, "error red box").name == "error red box: 0.00 m"


def test_center_matches_follow_the_detect_reward():
    truth = {"red box": [0, 0, 1], "blue box": [1, 0, 1]}
    pred = {"big red box thing": [0, 0, 1.5], "cube (red box)": [0, 0, 1.0], "ball": [1, 0, 1]}
    [m] = viz.center_matches(pred, truth)  # first text containing the label wins; "ball" matches nothing
    assert (m["label"], m["text"], m["distance"], m["score"]) == ("red box", "big red box thing", 0.5, 0.2)


def test_frustum_corners_project_to_image_corners(row):
    pts = np.array([p for p in viz.frustum_lines(row, 0.5) if np.all(np.isfinite(p))])
    fx, fy, cx, cy = row["intrinsics"]
    far = pts[np.isclose(pts[:, 2], 0.5)][:4]
    uv = np.stack([fx * far[:, 0] / far[:, 2] + cx, fy * far[:, 1] / far[:, 2] + cy], 1)
    np.testing.assert_allclose(uv, [[0, 0], [W, 0], [W, H], [0, H]], atol=1e-9)
    assert any(np.allclose(p, 0) for p in pts)  # the camera center


def test_image_with_marks(row):
    fig = viz.image_with_marks(row)
    assert fig.data[0].type == "image" and fig.data[0].source.startswith("data:image/png;base64,")
    assert len(fig.layout.shapes) == 0
    fig = viz.image_with_marks(row, show_regions=True)
    assert [a.text for a in fig.layout.annotations] == ["red box", "blue point"]
    assert [s.x0 for s in fig.layout.shapes] == [r["bbox_2d"][0] for r in row["regions"]]
    assert len(viz.image_with_marks(row, show_regions=True, show_objects=True).layout.shapes) == 5
    assert viz.image_png(row).startswith(b"\x89PNG")


# ----------------------------------------------------------------------------- traces as HTML


def test_trace_html_escapes_untrusted_text():
    evil = ('<think><script>alert(1)</script> & <img src=x onerror=alert(2)></think>'
            '<detect><3d_box center="1,2,3" onmouseover="alert(3)">cube (red box)</3d_box></detect>'
            '<answer></div><b>B</b></answer>')  # fmt: skip
    out = viz.trace_html(evil, {"red box": [1, 2, 3]}, title="<i>t</i>")
    for bad in ("<script", "<img", 'onmouseover="', "<b>B", "</div><b>", "<i>t"):
        assert bad not in out
    assert "&lt;script&gt;" in out and "&amp;" in out and "&lt;i&gt;t" in out
    assert out.count("<div") == out.count("</div>")
    assert out.count("<span") == out.count("</span>")


def test_trace_html_highlights_tags_numbers_and_centers(row):
    out = viz.trace_html(row["dtr_target"], row["centers"])
    for tag in ("detect", "think", "answer"):
        style = viz_traces._TAG_STYLE[tag]
        assert f'<span style="{style}">&lt;{tag}&gt;</span>' in out
        assert f'<span style="{style}">&lt;/{tag}&gt;</span>' in out
    assert out.count(viz_traces._TAG_STYLE["3d_box"]) == 3 * 2  # per box: the open tag around its center, the close tag
    c0 = row["dtr_target"].split('center="')[1].split('"')[0]
    assert f">{c0}</span>" in out  # the detected center is its own highlighted span
    assert out.count("\u0394 0.0") == 2  # a badge per box: distance to its true center (2-decimal centers)
    assert 'background:#fff3b0;color:#7a4f00">2</span>' in out  # "Find 2": a number
    plain = viz.trace_html(row["dtr_target"])
    assert "\u0394" not in plain and "&lt;detect&gt;" in plain


def test_trace_html_badges_wrong_and_unparsable_centers():
    text = ('<detect><3d_box center="0,0,1.5">cube (red box)</3d_box>'
            '<3d_box center="0,oops">ball (blue box)</3d_box><3d_box center="0,0,1">lamp</3d_box></detect>')  # fmt: skip
    out = viz.trace_html(text, {"red box": [0, 0, 1], "blue box": [0, 0, 1]})
    assert "\u0394 0.50 m" in out and "center score 0.2" in out
    assert "blue box: center does not parse" in out
    assert "no ground-truth label" in out


def test_trace_html_answer_is_boxed_once():
    out = viz.trace_html("<answer>1<answer>2</answer>3</answer>")
    assert out.count("border:1px solid #b15928") == 1
    assert out.count("<span") == out.count("</span>")
    assert viz.trace_html(None).startswith("<div")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    ["<" + " " * 100_000, "<" * 100_000, "<answer>" * 12_500, '<3d_box center="' * 6_000, "1" * 100_000 + "x",
     "< / " * 25_000, '<3d_box center="1,2,3">a' * 4_000, "1." * 50_000],
    ids=["blanks", "brackets", "answers", "boxes", "digits", "slashes", "open-boxes", "dots"],
)  # fmt: skip
def test_trace_html_stays_linear_on_adversarial_text(text):
    # A quadratic scan would take minutes on 100 kB; the timeout makes that a failure.
    out = viz.trace_html(text, {"a": [0, 0, 0]})
    assert len(out) >= len(text)


# ----------------------------------------------------------------------------- charts

METRICS_ROWS = [
    dict(model="rl", path=p, split=s, category=c, n=10, choice_accuracy=acc if c != "distance" else None,
         number_mra=mra if c in ("distance", "all") else None, success_25=None, center_error_m=0.2 if p == "dtr" else None,
         detect_reward=None, format_rate=1.0, implied_answer_agreement=None)
    for p, s, c, acc, mra in [
        ("lor", "test", "left_right", 0.6, None), ("dtr", "test", "left_right", 0.8, None),
        ("lor", "test", "distance", None, 0.3), ("dtr", "test", "distance", None, 0.7),
        ("lor", "test", "all", 0.6, 0.3), ("dtr", "test", "all", 0.8, 0.7),
        ("lor", "test_ood", "left_right", 0.5, None), ("dtr", "test_ood", "left_right", 0.55, None),
    ]
]  # fmt: skip


def test_category_bars():
    fig = viz.category_bars(METRICS_ROWS, "choice_accuracy", by="path", split="test")
    assert [t.name for t in fig.data] == ["lor", "dtr"]
    assert list(fig.data[0].x) == ["all", "left_right"]  # distance has no choice accuracy
    assert list(fig.data[1].y) == [0.8, 0.8]
    fig = viz.category_bars(METRICS_ROWS, "number_mra", by="split", path="lor")
    assert [t.name for t in fig.data] == ["test"] and list(fig.data[0].x) == ["all", "distance"]
    with pytest.raises(ValueError, match="split"):
        viz.category_bars(METRICS_ROWS, "choice_accuracy")  # two splits per (path, category)
    with pytest.raises(ValueError, match="metric"):
        viz.category_bars(METRICS_ROWS, "accuracy", split="test")


def test_path_comparison():
    fig = viz.path_comparison(METRICS_ROWS, "choice_accuracy", split="test_ood")
    bars = {t.name: t for t in fig.data}
    assert list(bars["lor"].y) == [0.5] and list(bars["dtr"].y) == [0.55]
    assert list(bars["dtr - lor"].y) == pytest.approx([0.05])
    assert bars["dtr - lor"].yaxis == "y2"


LOG_HISTORY = [
    {"loss": 2.0, "reward": 0.3, "rewards/accuracy/mean": 0.2, "rewards/accuracy/std": 0.1,
     "dynamic_sampling/kept_group_fraction": 0.5, "completions/mean_length": 40.0, "step": 1},
    {"loss": 1.5, "reward": 0.5, "rewards/accuracy/mean": 0.4, "rewards/accuracy/std": 0.1,
     "dynamic_sampling/kept_group_fraction": 0.75, "completions/mean_length": 35.0, "step": 2},
    {"eval_loss": 1.7, "step": 2},
    {"train_runtime": 3.0, "train_loss": 1.75, "step": 2},
]  # fmt: skip


def test_loss_curve_and_reward_dashboard():
    fig = viz.loss_curve(LOG_HISTORY)
    assert {t.name: list(t.y) for t in fig.data} == {"loss": [2.0, 1.5], "eval_loss": [1.7]}
    fig = viz.reward_dashboard(LOG_HISTORY)
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"loss", "eval_loss", "reward", "rewards/accuracy/mean",
                            "dynamic_sampling/kept_group_fraction", "completions/mean_length"}  # fmt: skip
    assert list(by_name["dynamic_sampling/kept_group_fraction"].y) == [0.5, 0.75]
    axes = {name: t.xaxis for name, t in by_name.items()}
    assert (axes["loss"], axes["reward"], axes["dynamic_sampling/kept_group_fraction"],
            axes["completions/mean_length"]) == ("x", "x2", "x3", "x4")  # fmt: skip


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="session")
def real_data(smoke_data):
    """The smoke-profile DatasetDict built by the data engine (conftest's `smoke_data`)."""
    from workbench.dataset import load_dataset_dir

    return load_dataset_dir(smoke_data)


def test_real_dataset_row(real_data):
    row = next(r for r in real_data["test"] if r["task"] == "region_qa")
    depth = np.asarray(row["depth"])
    pts, colors = viz.point_cloud(row, stride=1)
    assert len(pts) == int((depth > 0).sum()) and len(colors) == len(pts)
    fig = viz.scene_figure(row, predicted_centers=row["dtr_target"])
    truth = viz.as_centers(row["centers"])
    assert truth
    for label in truth:  # the target's centers are the truth to 2 decimals
        assert float(trace(fig, f"error {label}").name.split(": ")[-1].removesuffix(" m")) <= 0.01
    # Boxes agree with the engine's own corners, and each object's center projects into its 2D box.
    scenes = pytest.importorskip("workbench.world.scenes")
    m = np.asarray(row["camera_to_world"])
    for i, o in enumerate(row["objects"]):
        pos = np.asarray(o["center"]) @ m[:3, :3].T + m[:3, 3]
        obj = scenes.SceneObject(o["category"], o["name"], o["color"], tuple(o["size"]), o["yaw"], tuple(pos))
        np.testing.assert_allclose(viz.box_corners(row, i, "world"), obj.corners(), atol=1e-4)
    html_ = viz.trace_html(row["dtr_target"], row["centers"])
    assert html_.count("\u0394 0.0") == len(truth)


def test_question_html_escapes_region_tokens_and_names_the_true_option():
    from workbench.viz import question_html
    row = {"category": "left_right", "task": "region_qa", "question": "Is <b>this</b> red box <region> left?",
           "choices": ["left", "right"], "answer": "B"}
    page = question_html(row)
    assert "&lt;region&gt;" in page and "<b>this</b>" not in page and "truth: B (right)" in page
    assert "truth" not in question_html(row, truth=False)
    assert "truth: 0.42" in question_html({**row, "choices": [], "answer": "0.42"})


def test_an_empty_completion_is_said_to_be_empty():
    from workbench.viz import trace_html
    assert "empty completion" in trace_html("") and "empty completion" in trace_html(None)
    assert "empty completion" not in trace_html("<think>x</think>")


SFT_LOG = [
    {"loss": 3.0, "grad_norm": 2.5, "learning_rate": 1e-3, "mean_token_accuracy": 0.2, "entropy": 4.0,
     "num_tokens": 900.0, "step": 10},
    {"loss": 2.0, "grad_norm": 1.5, "learning_rate": 5e-4, "mean_token_accuracy": 0.5, "entropy": 3.0,
     "num_tokens": 1800.0, "step": 20},
    {"eval_loss": 2.2, "eval_mean_token_accuracy": 0.45, "step": 20},
]  # fmt: skip


@pytest.mark.parametrize("stage", ["sft", "base"])
def test_supervised_stages_get_their_own_dashboard(stage):
    fig = viz.training_dashboard(SFT_LOG, stage)
    assert [a.text for a in fig.layout.annotations] == [viz.PANEL_TITLES[p] for p in viz.STAGE_PANELS[stage]]
    axes = {t.name: (t.xaxis, list(t.y)) for t in fig.data}
    assert axes == {"loss": ("x", [3.0, 2.0]), "eval_loss": ("x", [2.2]),
                    "mean_token_accuracy": ("x2", [0.2, 0.5]), "eval_mean_token_accuracy": ("x2", [0.45]),
                    "learning_rate": ("x3", [1e-3, 5e-4]), "grad_norm": ("x4", [2.5, 1.5])}  # fmt: skip
    # each panel has its own legend, in its own corner, listing only its curves
    legends = {t.name: t.legend for t in fig.data}
    assert legends["loss"] == legends["eval_loss"] == "legend" and legends["grad_norm"] == "legend4"
    assert legends["mean_token_accuracy"] == "legend2" and legends["learning_rate"] == "legend3"
    corners = [(fig.layout[k].x, fig.layout[k].y) for k in ("legend", "legend2", "legend3", "legend4")]
    assert len(set(corners)) == 4 and corners[0][0] < corners[1][0] and corners[0][1] > corners[2][1]
    # GRPO keys are not drawn on a supervised stage's panels, nor SFT's on GRPO's
    assert {t.name for t in viz.training_dashboard(LOG_HISTORY, stage).data} == {"loss", "eval_loss"}
    assert {t.name for t in viz.training_dashboard(SFT_LOG, "grpo").data} == {"loss", "eval_loss"}
    with pytest.raises(ValueError, match="'dpo' is not one of"):
        viz.training_dashboard(SFT_LOG, "dpo")
