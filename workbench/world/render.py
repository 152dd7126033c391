"""Headless CPU rendering of a scene with open3d ray casting, and drawing of visual prompts.

`render(scene)` casts one ray per pixel through `o3d.t.geometry.RaycastingScene` and returns a
`View`: RGB (Lambert shading from the surface normals, one directional light, cast shadows),
z-depth in meters (the z coordinate in the camera frame, not the ray length; 0 where a ray
hits nothing), per-object instance masks, visible 2D boxes, and which objects are `usable`
for questions (visible enough, not too small, center inside its box and behind the visible
surface). `draw_marks(rgb, regions)` draws colored box outlines or filled points with their
labels (`red box`, `blue point`) into a copy of the image. Taught in
`notebooks/01_build_data.ipynb`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from workbench.world.scenes import Scene, box_mesh, camera_from_world, object_mesh, project

MARK_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 25, 25),
    "blue": (25, 105, 255),
    "green": (0, 215, 60),
    "yellow": (255, 230, 0),
    "magenta": (255, 0, 255),
}
"""Colors of visual prompts: saturated and far apart in hue, so every mark is told apart."""
MARK_KINDS = ("box", "point")

BACKGROUND = np.array([200.0, 210.0, 222.0], dtype=np.float32)
WALL_COLOR = np.array([215.0, 205.0, 190.0], dtype=np.float32)


@dataclass
class View:
    rgb: np.ndarray
    """(H, W, 3) uint8 image without marks."""
    depth: np.ndarray
    """(H, W) float32 z-depth in meters; 0 where the ray hits nothing."""
    instance: np.ndarray
    """(H, W) int16 index of the object seen at each pixel; -1 for floor, walls and sky."""
    visible_px: np.ndarray
    """(N,) pixels where each object is the first hit."""
    full_px: np.ndarray
    """(N,) pixels whose ray meets the object at all (its unoccluded area in the frame)."""
    bbox_2d: np.ndarray
    """(N, 4) int [x1, y1, x2, y2] of the visible mask, x2/y2 exclusive; zeros if unseen."""
    center_px: np.ndarray
    """(N, 2) projected object centers (u, v), pixels."""
    usable: np.ndarray
    """(N,) bool: the object may be the subject of a question."""


def _rays(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(H*W, 6) float32 rays [origin, direction] whose camera-frame direction has z = 1,
    so the hit distance along the ray is the z-depth; and the directions (H*W, 3) world."""
    fx, fy, cx, cy = scene.intrinsics
    x = (np.arange(scene.width, dtype=np.float32) + 0.5 - cx) / fx
    y = (np.arange(scene.height, dtype=np.float32) + 0.5 - cy) / fy
    m = scene.camera_to_world.astype(np.float32)
    # world direction = R @ (x, y, 1): a sum of the camera axes, built without an (H*W, 3) matmul
    d = (x[None, :, None] * m[:3, 0] + y[:, None, None] * m[:3, 1] + m[:3, 2]).reshape(-1, 3)
    rays = np.empty((len(d), 6), dtype=np.float32)
    rays[:, :3] = m[:3, 3]
    rays[:, 3:] = d
    return rays, d


def build_raycasting_scene(scene: Scene):
    """open3d RaycastingScene with geometry id i = object i, then the floor, then the walls."""
    import open3d as o3d

    rc = o3d.t.geometry.RaycastingScene()
    for obj in scene.objects:
        v, t = object_mesh(obj)
        rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(t))
    floor_v = np.array([[-30, -30, 0], [30, -30, 0], [30, 30, 0], [-30, 30, 0]], dtype=np.float32)
    floor_t = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)
    rc.add_triangles(o3d.core.Tensor(floor_v), o3d.core.Tensor(floor_t))
    for center, size, yaw in scene.walls:
        v, t = box_mesh(center, size, yaw)
        rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(t))
    return rc


def render(scene: Scene, min_object_area: float = 0.0025, min_visible_fraction: float = 0.5) -> View:
    """Ray-cast `scene`. An object is `usable` when it covers at least `min_object_area` of the
    image, at least `min_visible_fraction` of it is unoccluded, its whole box projects inside
    the frame, its center projects inside its visible 2D box and the surface seen at the
    center's pixel lies in front of the center."""
    import open3d as o3d

    n, h, w = len(scene.objects), scene.height, scene.width
    rc = build_raycasting_scene(scene)
    rays, dirs = _rays(scene)
    hit = rc.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy()  # (H*W,) z-depth, inf on a miss
    gid = hit["geometry_ids"].numpy().astype(np.int64)
    hits = np.flatnonzero(np.isfinite(t))
    missed = ~np.isfinite(t)

    # Shading of the hit pixels: albedo * (ambient + diffuse), the diffuse part dimmed where a
    # shadow ray towards the light is blocked. Sky pixels keep the background color.
    g = gid[hits]
    normal = hit["primitive_normals"].numpy()[hits]  # (K, 3) world frame
    d = dirs[hits]
    points = rays[hits, :3] + d * t[hits, None]
    albedo = np.empty((len(hits), 3), dtype=np.float32)
    colors = np.array([_object_rgb(o.color) for o in scene.objects], dtype=np.float32).reshape(-1, 3)
    on_obj, on_floor = g < n, g == n
    albedo[on_obj] = colors[g[on_obj]]
    checker = (np.floor(points[on_floor, 0] * 2) + np.floor(points[on_floor, 1] * 2)).astype(np.int64) % 2
    floor = np.array(scene.floor_colors, dtype=np.float32)  # (2, 3): the two checker tiles
    albedo[on_floor] = floor[checker]
    albedo[g > n] = WALL_COLOR
    normal = np.where(np.sum(normal * d, axis=1, keepdims=True) > 0, -normal, normal)  # face the camera
    light = np.asarray(scene.light, dtype=np.float32)
    lambert = np.clip(normal @ light, 0.0, 1.0)
    lit = np.flatnonzero(lambert > 0)  # only surfaces facing the light can be shadowed
    shadow_rays = np.empty((len(lit), 6), dtype=np.float32)
    shadow_rays[:, :3] = points[lit] + normal[lit] * 2e-3
    shadow_rays[:, 3:] = light
    blocked = np.isfinite(rc.cast_rays(o3d.core.Tensor(shadow_rays))["t_hit"].numpy())
    lambert[lit[blocked]] *= 0.25
    flat = np.tile(BACKGROUND.astype(np.float32), (h * w, 1))
    flat[hits] = albedo * (0.38 + 0.62 * lambert)[:, None]
    rgb = np.clip(flat, 0, 255).astype(np.uint8).reshape(h, w, 3)
    is_obj = np.zeros(h * w, dtype=bool)
    is_obj[hits[on_obj]] = True

    depth = np.where(missed, 0.0, t).astype(np.float32).reshape(h, w)
    instance = np.where(is_obj, gid, -1).astype(np.int16).reshape(h, w)
    visible_px = np.bincount(instance[instance >= 0].ravel(), minlength=n)[:n]

    # Unoccluded area: rays that meet object i anywhere along their length. Only rays inside
    # some object's projected box can, so only those are listed (most of the frame is floor).
    corners_world = np.stack([o.corners() for o in scene.objects])  # (N, 8, 3)
    corners_px = project(camera_from_world(corners_world, scene.camera_to_world), scene.intrinsics)  # (N, 8, 2)
    near = np.zeros((h, w), dtype=bool)
    for c in corners_px:
        x1, y1 = np.clip(np.floor(c.min(axis=0)).astype(int), 0, [w, h])
        x2, y2 = np.clip(np.ceil(c.max(axis=0)).astype(int), 0, [w, h])
        near[y1:y2, x1:x2] = True
    near_ids = np.flatnonzero(near)
    li = rc.list_intersections(o3d.core.Tensor(rays[near_ids]))
    splits = li["ray_splits"].numpy()
    ray_of = np.repeat(near_ids, np.diff(splits))
    geo = li["geometry_ids"].numpy().astype(np.int64)
    keep = geo < n
    met = np.zeros((n, h * w), dtype=bool)  # met[i, ray]: the ray meets object i (entry and exit hits collapse)
    met[geo[keep], ray_of[keep]] = True
    full_px = met.sum(axis=1)

    bbox = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        if visible_px[i]:
            ys, xs = np.nonzero(instance == i)
            bbox[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    centers = scene.camera_centers()
    center_px = project(centers, scene.intrinsics)
    usable = np.zeros(n, dtype=bool)
    for i, _obj in enumerate(scene.objects):
        u, v = center_px[i]
        inside_frame = bool(np.all((corners_px[i] >= 0) & (corners_px[i] <= [w, h])))
        if not (
            inside_frame
            and visible_px[i] >= min_object_area * h * w
            and visible_px[i] >= min_visible_fraction * max(full_px[i], 1)
        ):
            continue
        x1, y1, x2, y2 = bbox[i]
        if not (x1 <= u <= x2 and y1 <= v <= y2):
            continue
        pu, pv = min(int(u), w - 1), min(int(v), h - 1)
        if not (0 < depth[pv, pu] < centers[i, 2]):
            continue
        usable[i] = True
    return View(rgb, depth, instance, visible_px, full_px, bbox, center_px, usable)


@cache
def _object_rgb(color: str) -> tuple[int, int, int]:
    from workbench.world.scenes import COLORS

    if color not in COLORS:
        raise ValueError(f"unknown object color {color!r}; known: {sorted(COLORS)}")
    return COLORS[color]


# ----------------------------------------------------------------------------- visual prompts


def region_for(view: View, index: int, label: str) -> dict:
    """A region on object `index` of the view: {label, kind, bbox_2d, point}.

    `label` is `<mark color> <kind>` (`red box`, `blue point`). A box region's `bbox_2d` is
    the object's visible box; a point sits on the visible mask (at the projected center when
    that pixel shows the object) and its `bbox_2d` is a small square around it.
    """
    color, kind = parse_label(label)
    h, w = view.instance.shape
    if kind == "box":
        return {"label": label, "kind": kind, "bbox_2d": [int(v) for v in view.bbox_2d[index]], "point": None}
    u, v = view.center_px[index]
    pu, pv = min(max(int(u), 0), w - 1), min(max(int(v), 0), h - 1)
    if view.instance[pv, pu] != index:
        ys, xs = np.nonzero(view.instance == index)
        assert len(xs), f"object {index} is not visible"
        k = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
        pu, pv = int(xs[k]), int(ys[k])
    s = point_half_width(w)
    box = [max(pu - s, 0), max(pv - s, 0), min(pu + s + 1, w), min(pv + s + 1, h)]
    return {"label": label, "kind": kind, "bbox_2d": box, "point": [pu, pv]}


def point_half_width(width: int) -> int:
    """Half the side of a point region's box, for an image `width` pixels wide."""
    return max(2, width // 28)


def region_marks(region: dict, width: int) -> dict:
    """The mark `draw_marks` draws for a stored region {label, kind, bbox_2d} of an image `width`
    pixels wide: a point's pixel comes back from its box (`region_for` centres the box on it and
    clips it at the image edge, never on both sides).

    >>> region_marks({"label": "red point", "kind": "point", "bbox_2d": [0, 5, 7, 14]}, 112)["point"]
    [2, 9]
    """
    x1, y1, x2, y2 = (int(v) for v in region["bbox_2d"])
    point = None
    if region["kind"] == "point":
        s = point_half_width(width)
        point = [x1 + s if x1 > 0 else x2 - s - 1, y1 + s if y1 > 0 else y2 - s - 1]
    return {"label": region["label"], "kind": region["kind"], "bbox_2d": [x1, y1, x2, y2], "point": point}


def parse_label(label: str) -> tuple[str, str]:
    """(mark color, kind) of a region label such as `red box`; ValueError for anything else."""
    parts = label.split()
    if len(parts) != 2 or parts[0] not in MARK_COLORS or parts[1] not in MARK_KINDS:
        raise ValueError(f"region label must be '<{'|'.join(MARK_COLORS)}> <box|point>', got {label!r}")
    return parts[0], parts[1]




@lru_cache(maxsize=64)
def _label_sprite(label: str, size: int) -> Image.Image:
    """The label text in its mark color with a black outline, as an RGBA sprite (rendered once)."""
    font = ImageFont.load_default(size=size)
    color = MARK_COLORS[parse_label(label)[0]]
    x0, y0, x1, y1 = font.getbbox(label, stroke_width=1)
    sprite = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    ImageDraw.Draw(sprite).text(
        (-x0, -y0), label, fill=color, font=font, stroke_width=1, stroke_fill=(0, 0, 0)
    )
    return sprite


def draw_marks(rgb: np.ndarray, regions: list[dict]) -> Image.Image:
    """A copy of `rgb` (H, W, 3) with each region drawn in its color and labelled."""
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    w, h = img.size
    draw = ImageDraw.Draw(img)
    line = max(1, round(w / 112))
    for reg in regions:
        color = MARK_COLORS[parse_label(reg["label"])[0]]
        sprite = _label_sprite(reg["label"], max(8, round(w / 12)))
        x1, y1, x2, y2 = reg["bbox_2d"]
        if reg["kind"] == "box":
            draw.rectangle([x1 - line, y1 - line, x2 - 1 + line, y2 - 1 + line], outline=color, width=line)
            top = y1 - line - sprite.height  # above the box, or below it at the top edge
            pos = (x1 - line, top if top >= 0 else y2 + line)
        else:
            pu, pv = reg["point"]
            r = max(2, round(w / 45))
            draw.ellipse([pu - r, pv - r, pu + r, pv + r], fill=color, outline=(0, 0, 0), width=1)
            right = pu + r + 1
            pos = (right if right + sprite.width <= w else pu - r - 1 - sprite.width, pv - sprite.height // 2)
        img.paste(sprite, (int(min(max(pos[0], 0), w - sprite.width)), int(pos[1])), sprite)
    return img


def png_bytes(img: Image.Image) -> bytes:
    """Deterministic PNG encoding (no metadata, fixed compression)."""
    buf = io.BytesIO()
    img.save(
        buf, format="PNG", compress_level=1, compress_type=3
    )  # zlib RLE: fast, ~1.5x the bytes of level 6
    return buf.getvalue()
