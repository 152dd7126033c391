"""Scenes in 3D and 2D: point clouds from depth, object boxes, the camera frustum, predicted vs
true centers (`scene_figure`, plotly), and images with their region marks (`image_with_marks`).
Taught in `notebooks/06_traces_3d.ipynb`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from workbench.schema import centers_of
from workbench.tasks import crossview, multiview
from workbench.tasks.rewards import center_score, frame_truths, match_centers, parse_centers, reference_frame

FRAMES = ("camera", "world")
AXIS_TITLES = {
    "camera": ("x right (m)", "y down (m)", "z forward (m)"),
    "world": ("world x (m)", "world y (m)", "world z up (m)"),
}

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
    """PNG bytes of the row's image, or of every image of a multi-view row side by side
    (`frames_image`), for `ipywidgets.Image` and HTML."""
    buf = io.BytesIO()
    frames_image(row).save(buf, format="PNG")
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
    half-sizes, as `workbench.world.scenes.SceneObject.corners`)."""
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


VIEW_COLORS = ("#1f77b4", "#2ca02c", "#9467bd")
"""Frustum colors of the further cameras of a multi-view row (frame 1's is gray)."""


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
    the truth, matched like the detect reward); with `show_camera`, `camera` (frustum). A
    multi-view row is drawn in frame 1's camera coordinates (its objects' frame) with one frustum
    per frame (`camera K (image K)`), and its predicted centers are moved there from the frame
    their detect block names (or the row's reference frame).

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
    truth = centers_of(row)
    poses = list(row.get("view_poses") or ())
    if len(poses) > 1:  # multi-view: everything drawn in frame 1's camera coordinates
        truth = frame_truths(row.get("frame_centers")).get(1, truth)
        named = (reference_frame(predicted_centers) if isinstance(predicted_centers, str) else None) \
            or crossview.reference_frame(row)
        if predicted and 1 <= named <= len(poses):
            predicted = {t: [float(v) for v in multiview.to_frame(xyz, poses[named - 1], poses[0])]
                         for t, xyz in predicted.items()}
    if predicted:
        matches = center_matches(predicted, truth)
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
                name="camera" if len(poses) < 2 else "camera 1 (image 1)",
                line=dict(color="#555555", width=3),
                hoverinfo="name",
            )
        )
        for f, pose in enumerate(poses[1:], start=2):  # the other frames' cameras, seen from frame 1
            lines = multiview.to_frame(frustum_lines(row, depth, "camera"), pose, poses[0])
            traces.append(
                go.Scatter3d(
                    **_xyz(to_frame(lines, row, frame)),
                    mode="lines",
                    name=f"camera {f} (image {f})",
                    line=dict(color=VIEW_COLORS[(f - 2) % len(VIEW_COLORS)], width=3),
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


def frames_image(row: Mapping[str, Any], gap: int = 6) -> Image.Image:
    """Every image of a multi-view row side by side, each with its own regions' marks (`images`),
    `image K` written under frame K; a single-view row's image as it is."""
    from PIL import ImageDraw

    images = list(row.get("images") or ()) or [row_image(row)]
    if len(images) == 1:
        return images[0]
    w, h = max(im.width for im in images), max(im.height for im in images)
    caption = 14
    canvas = Image.new("RGB", (len(images) * w + (len(images) - 1) * gap, h + caption), "white")
    draw = ImageDraw.Draw(canvas)
    for k, im in enumerate(images):
        canvas.paste(im.convert("RGB"), (k * (w + gap), 0))
        draw.text((k * (w + gap) + 2, h + 1), f"image {k + 1}", fill=(40, 40, 40))
    return canvas


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
