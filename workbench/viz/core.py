"""Plotly figures of scenes, detected centers, reasoning traces and results.

Pure functions: rows (the contract of `workbench/schema.py`), completions, `metrics.json` rows
or a trainer's `log_history` in, a `plotly.graph_objects.Figure` (or HTML) out. Widgets and
notebooks are thin shells over them. Taught in `notebooks/01_build_data.ipynb` (the scene in
3D), `notebooks/04_evaluate.ipynb` (charts) and `notebooks/05_traces_3d.ipynb` (traces beside
predicted centers).

Frames. A row stores centers in the camera frame (OpenCV: +x right, +y down, +z forward,
meters), which is the frame models answer in, so `frame="camera"` is the default: the view
opens from behind the camera with -y up, like the image. `frame="world"` re-expresses
everything with `camera_to_world` (z up, gravity along -z), where "above" and "horizontal"
mean what the questions mean. Axis titles name the frame and the direction of each axis.

Boxes. An object is the upright box `size` = [sx, sy, sz] (sz along world z) turned by `yaw`
about world z and centered at `center`: corner = center_w + Rz(yaw) @ (+-sx/2, +-sy/2, +-sz/2)
in the world frame (as `workbench.scenes.SceneObject.corners`), mapped back to the camera frame
when that is the frame shown.

Predicted centers are matched to the ground truth as the detect reward does (SPEC section 4,
`workbench.rewards.match_centers`): for each ground-truth label, the first predicted text that
contains it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from workbench.metrics import KEY_COLUMNS, METRIC_COLUMNS
from workbench.rewards import center_score, match_centers, parse_centers, parse_number
from workbench.schema import CHOICE_CATEGORIES, GENERAL_ONLY_CATEGORIES, NUMERIC_CATEGORIES, centers_of

FRAMES = ("camera", "world")
AXIS_TITLES = {
    "camera": ("x right (m)", "y down (m)", "z forward (m)"),
    "world": ("world x (m)", "world y (m)", "world z up (m)"),
}
METRICS = tuple(c for c in METRIC_COLUMNS if c != "n")
"""Metric columns of `metrics.json` rows (SPEC section 7); `n` counts the examples."""
METRIC_KEYS = KEY_COLUMNS
"""Columns that identify a `metrics.json` row."""

AUTO_DEPTH_MARGIN = 1.5
"""Meters of scene kept behind the farthest object center by `scene_figure(max_depth="auto")`."""
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
PRED_COLOR = "#d62728"
GT_COLOR = "#111111"
# Edges of a box whose corners are ordered as in `box_corners` (bit 2: x, bit 1: y, bit 0: z).
_BOX_EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7))


# ----------------------------------------------------------------------------- row access


def row_image(row: Mapping[str, Any]) -> Image.Image:
    """The row's image (with its marks) as an RGB PIL image, whatever `datasets` decoded it to."""
    img = row["image"]
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    if isinstance(img, Mapping):  # datasets.Image(decode=False): {"bytes": ..., "path": ...}
        if img.get("bytes"):
            return Image.open(io.BytesIO(img["bytes"])).convert("RGB")
        if img.get("path"):
            return Image.open(img["path"]).convert("RGB")
    if isinstance(img, np.ndarray):
        return Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB")
    raise ValueError(f"row {row.get('id', '?')!r}: cannot read image of type {type(img).__name__}")


def image_png(row: Mapping[str, Any]) -> bytes:
    """PNG bytes of the row's image (for `ipywidgets.Image` and HTML)."""
    buf = io.BytesIO()
    row_image(row).save(buf, format="PNG")
    return buf.getvalue()


def row_depth(row: Mapping[str, Any]) -> np.ndarray:
    """(H, W) float32 z-depth in meters; invalid pixels (0, negative, nan, inf) become 0."""
    depth = np.asarray(row["depth"], dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"row {row.get('id', '?')!r}: depth must be (H, W), got shape {depth.shape}")
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def camera_to_world(row: Mapping[str, Any]) -> np.ndarray:
    m = np.asarray(row["camera_to_world"], dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"row {row.get('id', '?')!r}: camera_to_world must be 4x4, got shape {m.shape}")
    return m


def to_frame(points_cam: Any, row: Mapping[str, Any], frame: str = "camera") -> np.ndarray:
    """Camera-frame points (..., 3) expressed in `frame` ("camera" or "world")."""
    _check_frame(frame)
    p = np.asarray(points_cam, dtype=np.float64)
    if frame == "camera":
        return p
    m = camera_to_world(row)
    return p @ m[:3, :3].T + m[:3, 3]


def _check_frame(frame: str) -> None:
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")


def object_label(row: Mapping[str, Any], index: int) -> str:
    """`red cube` plus the region labels that point at object `index`: `red cube [red box]`."""
    obj = row["objects"][index]
    name = f"{obj.get('color', '')} {obj.get('name', '')}".strip() or f"object {index}"
    marks = [r["label"] for r in row.get("regions") or () if int(r["object_index"]) == index]
    return f"{name} [{', '.join(marks)}]" if marks else name


# ----------------------------------------------------------------------------- geometry


def point_cloud(
    row: Mapping[str, Any],
    stride: int | None = None,
    frame: str = "camera",
    voxel_size: float | None = None,
    max_points: int = 6000,
    max_depth: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Colored point cloud back-projected from the row's depth: (points (N, 3) m, colors (N, 3) uint8).

    One point per valid depth pixel (depth > 0 and finite) on a grid of every `stride`-th pixel
    (None: the smallest stride giving at most `max_points` pixels), in row-major pixel order,
    colored by the image; with `max_depth`, only pixels at most that deep. Pixel (u, v) covers [u, u+1) x [v, v+1), so its ray passes through
    (u + 0.5, v + 0.5): x = (u + 0.5 - cx) z / fx, y = (v + 0.5 - cy) z / fy. open3d does the
    back-projection (on the strided grid, with intrinsics scaled to it), the optional voxel
    down-sampling and the move to the world frame.
    """
    import open3d as o3d

    _check_frame(frame)
    depth = row_depth(row)
    h, w = depth.shape
    if stride is None:
        stride = max(1, math.ceil(math.sqrt(h * w / max(1, max_points))))
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    img = row_image(row)
    if img.size != (w, h):  # marks may be drawn on a larger copy; colors follow the depth grid
        img = img.resize((w, h), Image.BILINEAR)
    rgb = np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[::stride, ::stride])  # (h', w', 3)
    sub = np.ascontiguousarray(depth[::stride, ::stride])  # (h', w')
    if max_depth is not None:
        sub[sub > max_depth] = 0.0  # 0 = no point, like a ray that hit nothing
    fx, fy, cx, cy = (float(v) for v in row["intrinsics"])
    # Grid index k is pixel u = stride * k, so u + 0.5 - cx = stride * (k - (cx - 0.5) / stride).
    intr = o3d.camera.PinholeCameraIntrinsic(
        sub.shape[1], sub.shape[0], fx / stride, fy / stride, (cx - 0.5) / stride, (cy - 0.5) / stride
    )
    rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
        o3d.geometry.Image(rgb),
        o3d.geometry.Image(sub),
        depth_scale=1.0,
        depth_trunc=float(np.finfo(np.float32).max),  # open3d drops depth beyond 3 m by default
        convert_rgb_to_intensity=False,
    )
    pcd = o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intr)
    if voxel_size:
        pcd = pcd.voxel_down_sample(float(voxel_size))
    if frame == "world":
        pcd.transform(camera_to_world(row))
    points = np.asarray(pcd.points, dtype=np.float64).reshape(-1, 3)
    colors = np.clip(np.round(np.asarray(pcd.colors) * 255.0), 0, 255).astype(np.uint8).reshape(-1, 3)
    return points, colors


def box_corners(row: Mapping[str, Any], index: int, frame: str = "camera") -> np.ndarray:
    """(8, 3) corners of object `index`'s upright box in `frame` (order: bits x, y, z of the local
    half-sizes, as `workbench.scenes.SceneObject.corners`)."""
    obj = row["objects"][index]
    sx, sy, sz = (float(v) for v in obj["size"])
    yaw = float(obj["yaw"])
    local = np.array(
        [[x, y, z] for x in (-sx / 2, sx / 2) for y in (-sy / 2, sy / 2) for z in (-sz / 2, sz / 2)]
    )
    rot = np.array(
        [[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]]
    )
    m = camera_to_world(row)
    center_w = m[:3, :3] @ np.asarray(obj["center"], dtype=np.float64) + m[:3, 3]
    corners_w = local @ rot.T + center_w  # upright in the world: yaw turns about gravity
    if frame == "world":
        return corners_w
    _check_frame(frame)
    return (corners_w - m[:3, 3]) @ m[:3, :3]


def frustum_lines(row: Mapping[str, Any], depth: float, frame: str = "camera") -> np.ndarray:
    """(K, 3) polyline (None-separated as nan rows) of the camera frustum cut at `depth` meters."""
    h, w = np.asarray(row["depth"]).shape[:2]
    fx, fy, cx, cy = (float(v) for v in row["intrinsics"])
    corners = np.array(
        [[(u - cx) / fx * depth, (v - cy) / fy * depth, depth] for u, v in ((0, 0), (w, 0), (w, h), (0, h))]
    )
    nan = np.full(3, np.nan)
    origin = np.zeros(3)
    pts = [corners[0], corners[1], corners[2], corners[3], corners[0], nan]
    for c in corners:
        pts += [origin, c, nan]
    # A small triangle over the top edge marks the image's up (-y) direction.
    top = 0.5 * (corners[0] + corners[1])
    pts += [
        corners[0] * 0.6 + top * 0.4,
        top + np.array([0.0, -0.15 * depth, 0.0]),
        corners[1] * 0.6 + top * 0.4,
    ]
    return to_frame(np.array(pts), row, frame)


def _polyline(segments: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[list, list, list]:
    xs: list = []
    ys: list = []
    zs: list = []
    for a, b in segments:
        xs += [a[0], b[0], None]
        ys += [a[1], b[1], None]
        zs += [a[2], b[2], None]
    return xs, ys, zs


def _xyz(points: np.ndarray) -> dict[str, list]:
    """x, y, z lists for plotly, with nan rows as None (line breaks)."""
    cols = []
    for k in range(3):
        cols.append([None if not np.isfinite(v) else float(v) for v in points[:, k]])
    return dict(x=cols[0], y=cols[1], z=cols[2])


_CSS_COLORS = {
    "red": "#e41a1c",
    "blue": "#377eb8",
    "green": "#2ca02c",
    "yellow": "#d4b000",
    "orange": "#ff7f0e",
    "purple": "#8e44ad",
    "pink": "#e377c2",
    "cyan": "#17becf",
    "magenta": "#d000d0",
    "brown": "#8c564b",
    "gray": "#7f7f7f",
    "grey": "#7f7f7f",
    "black": "#222222",
    "white": "#bbbbbb",
    "teal": "#008080",
    "olive": "#808000",
    "navy": "#000080",
    "maroon": "#800000",
    "lime": "#32cd32",
    "gold": "#daa520",
}


def _color(name: str | None, index: int) -> str:
    """A plotly color for an object color name; the palette when the name is unknown."""
    return _CSS_COLORS.get(str(name or "").lower(), PALETTE[index % len(PALETTE)])


def _hex(colors: np.ndarray) -> list[str]:
    # Hex strings validate several times faster in plotly than `rgb(r,g,b)` ones.
    return [f"#{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in colors]


def as_centers(value: Any) -> dict[str, list[float]]:
    """{text: [x, y, z]} from a dict, a JSON string, a completion (parsed like the reward) or None."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json.loads(text)
        else:
            value = parse_centers(value) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"centers must be a mapping {{text: [x, y, z]}}, got {type(value).__name__}")
    return {str(k): [float(c) for c in v] for k, v in value.items()}


def center_matches(
    predicted: Mapping[str, Sequence[float]], truth: Mapping[str, Sequence[float]]
) -> list[dict]:
    """One dict per matched ground-truth label: label, text (of the prediction), pred, truth,
    distance (m) and score (the detect reward's step score), in ground-truth order.

    >>> [m["distance"] for m in center_matches({"cube (red box)": [0, 0, 1]}, {"red box": [0, 0, 1.5]})]
    [0.5]
    """
    pred = {str(k): tuple(float(c) for c in v) for k, v in predicted.items()}
    matched = match_centers(pred, list(truth))
    out = []
    for label, xyz in matched.items():
        text = next(t for t in pred if label in t)  # the same first containing text as match_centers
        gt = np.asarray(truth[label], dtype=np.float64)
        d = float(np.linalg.norm(np.asarray(xyz) - gt))
        out.append(
            dict(label=label, text=text, pred=list(xyz), truth=gt.tolist(), distance=d, score=center_score(d))
        )
    return out


# ----------------------------------------------------------------------------- 3D scene


def scene_figure(
    row: Mapping[str, Any],
    predicted_centers: Mapping[str, Sequence[float]] | str | None = None,
    show_camera: bool = True,
    frame: str = "camera",
    stride: int | None = None,
    voxel_size: float | None = None,
    max_points: int = 6000,
    max_depth: float | str | None = "auto",
    point_size: float = 2.0,
    height: int = 520,
) -> go.Figure:
    """The row's scene in 3D, in `frame` ("camera": OpenCV, the frame of centers; "world": z up).

    Traces, in order: `point cloud` (if any valid depth); one wireframe per object (`box i: ...`);
    `ground-truth centers` (every object, text = description [region labels]); with
    `predicted_centers` ({text: xyz}, a JSON string or a DTR completion), `predicted centers`
    and one `error <label>: <d> m` line per matched ground-truth label (from the prediction to
    the truth, matched like the detect reward); with `show_camera`, `camera` (frustum).

    `max_depth="auto"` keeps the points up to 1.5 m beyond the farthest object center, so that
    a floor seen to the horizon does not shrink the objects to a dot; None keeps every point.
    """
    _check_frame(frame)
    traces: list[go.Scatter3d] = []
    objects = row.get("objects") or []
    if isinstance(max_depth, str) and max_depth != "auto":
        raise ValueError(f"max_depth must be a number of meters, 'auto' or None, got {max_depth!r}")
    if max_depth == "auto":
        max_depth = max((float(o["center"][2]) for o in objects), default=None)
        max_depth = None if max_depth is None else max_depth + AUTO_DEPTH_MARGIN
    points, colors = point_cloud(
        row, stride=stride, frame=frame, voxel_size=voxel_size, max_points=max_points, max_depth=max_depth
    )
    if len(points):
        traces.append(
            go.Scatter3d(
                **_xyz(points),
                mode="markers",
                name="point cloud",
                marker=dict(size=point_size, color=_hex(colors), opacity=0.8),
                hoverinfo="skip",
            )
        )

    for i, obj in enumerate(objects):
        c = box_corners(row, i, frame)
        xs, ys, zs = _polyline((c[a], c[b]) for a, b in _BOX_EDGES)
        sx, sy, sz = (float(v) for v in obj["size"])
        traces.append(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines",
                name=f"box {i}: {object_label(row, i)}",
                legendgroup=f"object {i}",
                line=dict(color=_color(obj.get("color"), i), width=4),
                hovertext=f"{object_label(row, i)}<br>size {sx:.2f} x {sy:.2f} x {sz:.2f} m, yaw {float(obj['yaw']):.2f} rad",
                hoverinfo="text",
            )
        )
    if objects:
        gt = to_frame(np.array([o["center"] for o in objects], dtype=np.float64).reshape(-1, 3), row, frame)
        cam = np.array([o["center"] for o in objects], dtype=np.float64).reshape(-1, 3)
        labels = [object_label(row, i) for i in range(len(objects))]
        traces.append(
            go.Scatter3d(
                **_xyz(gt),
                mode="markers+text",
                name="ground-truth centers",
                text=labels,
                textposition="top center",
                marker=dict(size=5, color=GT_COLOR, symbol="circle"),
                hovertext=[
                    f"{t}<br>camera center ({x:.2f}, {y:.2f}, {z:.2f}) m" for t, (x, y, z) in zip(labels, cam)
                ],
                hoverinfo="text",
            )
        )

    predicted = as_centers(predicted_centers)
    if predicted:
        matches = center_matches(predicted, centers_of(row))
        dist = {m["text"]: m for m in matches}
        texts = list(predicted)
        pts = to_frame(np.array([predicted[t] for t in texts]).reshape(-1, 3), row, frame)
        hover = []
        for t in texts:
            x, y, z = predicted[t]
            note = (
                f"<br>{dist[t]['distance']:.2f} m from {html.escape(dist[t]['label'])}"
                if t in dist
                else "<br>unmatched"
            )
            hover.append(f"{html.escape(t)}<br>predicted ({x:.2f}, {y:.2f}, {z:.2f}) m{note}")
        traces.append(
            go.Scatter3d(
                **_xyz(pts),
                mode="markers+text",
                name="predicted centers",
                text=texts,
                textposition="bottom center",
                textfont=dict(color=PRED_COLOR),
                marker=dict(size=6, color=PRED_COLOR, symbol="diamond"),
                hovertext=hover,
                hoverinfo="text",
            )
        )
        for m in matches:
            seg = to_frame(np.array([m["pred"], m["truth"]]), row, frame)
            traces.append(
                go.Scatter3d(
                    **_xyz(seg),
                    mode="lines",
                    name=f"error {m['label']}: {m['distance']:.2f} m",
                    line=dict(color=PRED_COLOR, width=5, dash="dash"),
                    hovertext=f"{html.escape(m['label'])}: {m['distance']:.2f} m (center score {m['score']:.1f})",
                    hoverinfo="text",
                )
            )

    if show_camera:
        valid = row_depth(row)
        valid = valid[valid > 0]
        depth = 0.25 * float(np.median(valid)) if valid.size else 0.5
        traces.append(
            go.Scatter3d(
                **_xyz(frustum_lines(row, depth, frame)),
                mode="lines",
                name="camera",
                line=dict(color="#555555", width=3),
                hoverinfo="name",
            )
        )

    fig = go.Figure(data=traces)
    xt, yt, zt = AXIS_TITLES[frame]
    scene = dict(xaxis_title=xt, yaxis_title=yt, zaxis_title=zt, aspectmode="data")
    if frame == "camera":  # look from behind and above the camera, image-up (-y) on screen-up
        scene["camera"] = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.0, y=-0.9, z=-1.9))
    fig.update_layout(
        scene=scene,
        height=height,
        margin=dict(l=0, r=0, t=30, b=0),
        title=dict(text=f"{row.get('id', '')} ({frame} frame)", font=dict(size=13)),
        legend=dict(itemsizing="constant", font=dict(size=10)),
    )
    return fig


# ----------------------------------------------------------------------------- image


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_with_marks(
    row: Mapping[str, Any], show_regions: bool = False, show_objects: bool = False, height: int = 360
) -> go.Figure:
    """The row's image (its visual prompts are already drawn in) as a figure in pixel coordinates.

    `show_regions` outlines each region's `bbox_2d` with its label (to check the marks);
    `show_objects` outlines every object's visible `bbox_2d` with its description. Hover
    gives pixel coordinates. The image itself: `row_image(row)` (PIL).
    """
    img = row_image(row)
    w, h = img.size
    fig = go.Figure(go.Image(source=_data_uri(img), x0=0, y0=0, dx=1, dy=1, hoverinfo="x+y"))
    boxes = []
    if show_objects:
        boxes += [
            (o["bbox_2d"], object_label(row, i), "#ffffff", "dot")
            for i, o in enumerate(row.get("objects") or [])
        ]
    if show_regions:
        boxes += [
            (r["bbox_2d"], r["label"], _color(str(r["label"]).split(" ")[0], k), "solid")
            for k, r in enumerate(row.get("regions") or [])
        ]
    for (x1, y1, x2, y2), text, color, dash in boxes:
        fig.add_shape(type="rect", x0=x1, y0=y1, x1=x2, y1=y2, line=dict(color=color, width=2, dash=dash))
        fig.add_annotation(
            x=x1,
            y=y1,
            text=html.escape(str(text)),
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font=dict(color=color, size=11),
            bgcolor="rgba(0,0,0,0.4)",
        )
    fig.update_layout(
        height=height,
        width=max(160, int(height * w / max(h, 1))),
        margin=dict(l=0, r=0, t=0, b=0),
        xaxis=dict(visible=False, range=[0, w]),
        yaxis=dict(visible=False, range=[h, 0], scaleanchor="x"),
    )
    return fig


# ----------------------------------------------------------------------------- traces as HTML

_TAG_STYLE = {
    "think": "color:#6a3d9a;font-weight:bold",
    "answer": "color:#b15928;font-weight:bold",
    "detect": "color:#1f78b4;font-weight:bold",
    "3d_box": "color:#33a02c;font-weight:bold",
}
_TOKEN = re.compile(
    r"(?P<tag><\s*(?P<close>/\s*)?(?P<name>think|answer|detect|3d_box)\b(?P<attrs>[^<>]*)>)"
    r"|(?P<num>(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?![\w]))"
)
# Linear: one `\s*` before the optional `/` (two adjacent ones would split a run of blanks in
# quadratically many ways), `[^<>]*` stops at the next bracket, and a number cannot start inside
# a run of digits (the look-behind), so each character is scanned a bounded number of times.
# Completions are untrusted (a policy can emit anything): every other character is html-escaped.
_CENTER_ATTR = re.compile(r'center\s*=\s*"([^"]*)"')
_SCORE_COLORS = ((0.8, "#1a9850"), (0.4, "#fdae61"), (0.0, "#d73027"))


def _span(text: str, style: str, title: str | None = None) -> str:
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<span style="{style}"{t}>{text}</span>'


def trace_html(
    completion: str | None,
    centers: Mapping[str, Sequence[float]] | str | None = None,
    title: str | None = None,
) -> str:
    """HTML of a reasoning trace: tags colored by kind, numbers highlighted, the content of
    `<answer>` boxed, each 3d_box's center highlighted; with ground-truth `centers`
    ({label: xyz} or the row's JSON string), each box whose text contains a label gets a badge
    with its distance to that center (green < 0.2 m, orange < 0.6 m, red beyond). Everything
    from the completion is HTML-escaped; the result is one self-contained `<div>` with inline
    styles (Jupyter's sanitizer keeps them), linear in the completion's length.
    """
    truth = (
        centers_of(centers) if isinstance(centers, str) else {k: list(v) for k, v in (centers or {}).items()}
    )
    text = "" if completion is None else str(completion)
    out: list[str] = []
    if title:
        out.append(f'<div style="font-weight:bold;margin-bottom:4px">{html.escape(title)}</div>')
    pos = 0
    in_answer = False
    box: dict | None = None  # the open 3d_box: its parsed center and where its text starts
    for m in _TOKEN.finditer(text):
        out.append(html.escape(text[pos : m.start()]))
        pos = m.end()
        if m.group("num") is not None:
            style = (
                "background:#fff3b0;color:#7a4f00" if not in_answer else "background:#ffd8a8;font-weight:bold"
            )
            out.append(_span(html.escape(m.group("num")), style))
            continue
        name, closing = m.group("name"), bool(m.group("close"))
        style = _TAG_STYLE[name]
        if name == "3d_box" and not closing:
            attr = _CENTER_ATTR.search(m.group("attrs"))
            if attr is None:
                out.append(_span(html.escape(m.group(0)), style))
                xyz = None
            else:
                a, b = m.start("attrs") + attr.start(1), m.start("attrs") + attr.end(1)
                parts = attr.group(1).split(",")
                xyz = [parse_number(p) for p in parts] if len(parts) == 3 else None
                xyz = None if xyz is None or None in xyz else xyz
                value_style = "font-weight:bold;" + (
                    "background:#c7e9c0;color:#00441b" if xyz else "background:#fcbba1;color:#67000d"
                )
                out.append(
                    _span(html.escape(text[m.start() : a]), style)
                    + _span(html.escape(text[a:b]), value_style, None if xyz else "does not parse as x,y,z")
                    + _span(html.escape(text[b : m.end()]), style)
                )
            box = {"xyz": xyz, "start": m.end()}
            continue
        if name == "answer" and closing and in_answer:
            out.append("</span>")
            in_answer = False
        out.append(_span(html.escape(m.group(0)), style))
        if name == "answer" and not closing and not in_answer:
            out.append('<span style="border:1px solid #b15928;border-radius:3px;padding:0 2px">')
            in_answer = True
        if name == "3d_box" and closing and box is not None:
            out.append(_box_badge(text[box["start"] : m.start()], box["xyz"], truth))
            box = None
    out.append(html.escape(text[pos:]))
    if in_answer:
        out.append("</span>")
    body = "".join(out)
    return (
        '<div style="font-family:monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;'
        f'line-height:1.5;border:1px solid #ddd;padding:6px;border-radius:4px">{body}</div>'
    )


def _box_badge(box_text: str, xyz: list[float] | None, truth: Mapping[str, Sequence[float]]) -> str:
    if not truth:
        return ""
    label = next((lab for lab in truth if lab in box_text), None)
    if label is None:
        return _span(" [no ground-truth label]", "color:#888;font-size:11px")
    if xyz is None:
        return _span(f" [{html.escape(label)}: center does not parse]", "color:#d73027;font-size:11px")
    d = float(np.linalg.norm(np.asarray(xyz) - np.asarray(truth[label], dtype=np.float64)))
    color = next(c for bound, c in _SCORE_COLORS if center_score(d) >= bound)
    return _span(
        f" \u0394 {d:.2f} m",
        f"background:{color};color:white;border-radius:3px;padding:0 3px;font-size:11px;white-space:nowrap",
        f"{label}: true center {', '.join(f'{float(v):.2f}' for v in truth[label])}; center score {center_score(d):.1f}",
    )


# ----------------------------------------------------------------------------- charts of metrics


def _category_order(categories: Iterable[str]) -> list[str]:
    known = ("all", *NUMERIC_CATEGORIES, *CHOICE_CATEGORIES, *GENERAL_ONLY_CATEGORIES)
    cats = list(dict.fromkeys(categories))
    return [c for c in known if c in cats] + sorted(c for c in cats if c not in known)


def metric_value(v: Any) -> float | None:
    """`v` as a finite float, or None (a metric that does not apply is None or nan in `metrics.json`)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def filter_rows(metrics_rows: Iterable[Mapping[str, Any]], **where: Any) -> list[Mapping[str, Any]]:
    """Rows whose column equals each `where` value (a list / tuple / set value: any of them)."""
    out = []
    for r in metrics_rows:
        ok = True
        for k, v in where.items():
            if v is None:
                continue
            allowed = v if isinstance(v, (list, tuple, set, frozenset)) else (v,)
            if r.get(k) not in allowed:
                ok = False
                break
        if ok:
            out.append(r)
    return out


def metric_table(
    metrics_rows: Iterable[Mapping[str, Any]], metric: str, by: str, **where: Any
) -> dict[str, dict[str, tuple[float, Any]]]:
    """{by value: {category: (metric value, n)}} of the rows matching `where`; rows where the
    metric does not apply (None / nan) are left out. Two rows for one (by, category) raise
    ValueError naming the columns to filter on."""
    if metric not in (*METRICS, "n"):
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if by not in METRIC_KEYS:
        raise ValueError(f"by must be one of {METRIC_KEYS}, got {by!r}")
    table: dict[str, dict[str, tuple[float, Any]]] = {}
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in filter_rows(metrics_rows, **where):
        value = metric_value(r.get(metric))
        if value is None:
            continue
        key = (str(r.get(by)), str(r.get("category")))
        if key in seen:
            varying = [k for k in METRIC_KEYS if k not in (by, "category") and seen[key].get(k) != r.get(k)]
            raise ValueError(
                f"several rows for {by}={key[0]!r}, category={key[1]!r}: they differ in {varying}; "
                f"filter them, e.g. {varying[0] if varying else 'split'}={r.get(varying[0] if varying else 'split')!r}"
            )
        seen[key] = r
        table.setdefault(key[0], {})[key[1]] = (value, r.get("n"))
    return table


def _where_text(where: Mapping[str, Any]) -> str:
    items = [f"{k}={v}" for k, v in where.items() if v is not None]
    return f" ({', '.join(items)})" if items else ""


def category_bars(
    metrics_rows: Iterable[Mapping[str, Any]], metric: str = "choice_accuracy", by: str = "path", **where: Any
) -> go.Figure:
    """Grouped bars of `metric` per category, one bar group member per value of `by` (path,
    model, split). Filter with keyword columns, e.g. `split="test", model="rl"`."""
    table = metric_table(metrics_rows, metric, by, **where)
    cats = _category_order(c for series in table.values() for c in series)
    fig = go.Figure()
    for i, (name, series) in enumerate(table.items()):
        xs = [c for c in cats if c in series]
        ys = [series[c][0] for c in xs]
        fig.add_bar(
            x=xs,
            y=ys,
            name=name,
            marker_color=PALETTE[i % len(PALETTE)],
            text=[f"{y:.2f}" for y in ys],
            textposition="outside",
            customdata=[series[c][1] for c in xs],
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<br>n=%{{customdata}}<extra></extra>",
        )
    fig.update_layout(
        barmode="group",
        title=f"{metric} by category and {by}{_where_text(where)}",
        yaxis_title=metric,
        xaxis_title="category",
        legend_title=by,
        margin=dict(t=50),
    )
    if metric != "center_error_m":
        fig.update_yaxes(range=[0, 1.1])
    return fig


def path_comparison(
    metrics_rows: Iterable[Mapping[str, Any]],
    metric: str = "choice_accuracy",
    paths: tuple[str, str] = ("lor", "dtr"),
    **where: Any,
) -> go.Figure:
    """`paths[0]` vs `paths[1]` per category: grouped bars (top) and the difference
    `paths[1] - paths[0]` (bottom; green where the second path is better, for center error
    where it is lower). Filter with keyword columns, e.g. `split="test", model="rl"`."""
    from plotly.subplots import make_subplots

    a, b = paths
    table = metric_table(metrics_rows, metric, "path", path=list(paths), **where)
    cats = _category_order(c for series in table.values() for c in series)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    for i, p in enumerate(paths):
        series = table.get(p, {})
        xs = [c for c in cats if c in series]
        fig.add_bar(
            x=xs,
            y=[series[c][0] for c in xs],
            name=p,
            marker_color=PALETTE[i],
            row=1,
            col=1,
            customdata=[series[c][1] for c in xs],
            hovertemplate=f"{p}<br>%{{x}}: %{{y:.3f}}<br>n=%{{customdata}}<extra></extra>",
        )
    both = [c for c in cats if c in table.get(a, {}) and c in table.get(b, {})]
    delta = [table[b][c][0] - table[a][c][0] for c in both]
    lower_better = metric == "center_error_m"
    colors = ["#1a9850" if (d < 0 if lower_better else d > 0) else "#d73027" for d in delta]
    fig.add_bar(
        x=both,
        y=delta,
        name=f"{b} - {a}",
        marker_color=colors,
        row=2,
        col=1,
        text=[f"{d:+.2f}" for d in delta],
        textposition="outside",
        showlegend=False,
    )
    fig.update_layout(
        barmode="group", title=f"{a.upper()} vs {b.upper()}: {metric}{_where_text(where)}", margin=dict(t=50)
    )
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_yaxes(title_text=f"{b} - {a}", zeroline=True, row=2, col=1)
    return fig


# ----------------------------------------------------------------------------- training logs

PANELS = ("loss", "rewards", "groups", "lengths")
"""Panels of `reward_dashboard` and the live `widgets.dashboard.TrainingDashboard`."""
PANEL_TITLES = {
    "loss": "loss",
    "rewards": "reward and its components",
    "groups": "groups: kept / zero-std; clipped",
    "lengths": "completion length (tokens)",
}


def panel_of(key: str) -> str | None:
    """Which panel a logged key belongs to, or None for keys not drawn.

    Losses: `loss`, `*_loss`, `*/loss` (not the end-of-training summary `train_loss`);
    rewards: TRL's `reward` and `rewards/<func>/mean` (and the per-path means that
    `workbench.rewards.RewardFunc` logs, `rewards/<func>/<path>`), never `*/std`; groups: any
    key containing `kept` (dynamic sampling), `frac_reward_zero_std`,
    `completions/clipped_ratio`; lengths: `completions/*length*`.

    >>> [panel_of(k) for k in ("loss", "rewards/accuracy/mean", "rewards/accuracy/std", "dynamic_sampling/kept_fraction")]
    ['loss', 'rewards', None, 'groups']
    """
    if key in ("train_loss", "total_flos") or key.startswith(("train_", "eval_runtime")):
        return None
    if key == "loss" or key.endswith(("_loss", "/loss")):
        return "loss"
    if key == "reward" or (key.startswith("rewards/") and not key.endswith("/std")):
        return "rewards"
    if "kept" in key or key in ("frac_reward_zero_std", "completions/clipped_ratio"):
        return "groups"
    if key.startswith("completions/") and "length" in key and "terminated" not in key:
        return "lengths"
    return None


def log_series(log_history: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, tuple[list, list]]]:
    """{panel: {key: (steps, values)}} from a trainer's `state.log_history` (a list of dicts
    with `step`; an entry without it counts as the next step)."""
    out: dict[str, dict[str, tuple[list, list]]] = {p: {} for p in PANELS}
    for i, entry in enumerate(log_history):
        step = entry.get("step", i + 1)
        for key, value in entry.items():
            panel = panel_of(str(key))
            v = metric_value(value)
            if panel is None or v is None:
                continue
            xs, ys = out[panel].setdefault(str(key), ([], []))
            xs.append(step)
            ys.append(v)
    return out


def loss_curve(log_history: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Every loss in `log_history` (`loss`, `eval_loss`, ...) against the step."""
    fig = go.Figure()
    for i, (key, (xs, ys)) in enumerate(log_series(log_history)["loss"].items()):
        fig.add_scatter(
            x=xs, y=ys, mode="lines+markers", name=key, line=dict(color=PALETTE[i % len(PALETTE)])
        )
    fig.update_layout(title="loss", xaxis_title="step", yaxis_title="loss", margin=dict(t=50))
    return fig


def dashboard_layout(fig: go.Figure) -> go.Figure:
    """Titles and axes of the 2 x 2 training dashboard (made with `make_subplots(2, 2)`)."""
    fig.update_layout(height=560, margin=dict(t=60, l=40, r=10, b=40), legend=dict(font=dict(size=10)))
    for k in range(1, 5):
        fig.update_xaxes(title_text="step", row=(k - 1) // 2 + 1, col=(k - 1) % 2 + 1)
    return fig


def empty_dashboard() -> go.Figure:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[PANEL_TITLES[p] for p in PANELS])
    return dashboard_layout(fig)


def panel_cell(panel: str) -> tuple[int, int]:
    k = PANELS.index(panel)
    return k // 2 + 1, k % 2 + 1


def reward_dashboard(log_history: Iterable[Mapping[str, Any]]) -> go.Figure:
    """2 x 2 panels over the steps of a GRPO run: loss; mean reward and its components;
    group statistics (kept-group fraction of dynamic sampling, share of zero-std groups, share
    of clipped completions); completion lengths. Which keys go where: `panel_of`."""
    fig = empty_dashboard()
    series = log_series(log_history)
    for panel in PANELS:
        row, col = panel_cell(panel)
        for i, (key, (xs, ys)) in enumerate(series[panel].items()):
            fig.add_scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=key,
                row=row,
                col=col,
                line=dict(color=PALETTE[i % len(PALETTE)]),
                marker=dict(size=4),
            )
    fig.update_layout(title="training")
    return fig
