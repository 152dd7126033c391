"""Seeded procedural indoor scenes: upright objects on a floor (some stacked), walls, a camera.

World frame: meters, z up (gravity along -z), the floor is the plane z = 0. Every object is
upright: its extent is the box `size` = [sx, sy, sz] (sz along gravity) turned by `yaw` about
world z and centered at `position`. The camera is a pinhole with zero roll; `camera_to_world`
(4x4) maps OpenCV camera coordinates (+x right, +y down, +z forward) to world coordinates.

Two domains: `in` (train / val / test) and `ood` (test_ood): the OOD generator adds held-out
shapes and colors, other camera heights and fields of view, and other layouts (objects in a
row or a ring instead of scattered). Taught in `notebooks/01_build_data.ipynb`.

Geometry helpers other modules use: `camera_from_world`, `world_from_camera`, `project`,
`world_centers(row)`, `camera_pitch(camera_to_world)`. `sample_views` moves the scene's camera
around the objects for further views of one scene (multi-view data, issue #24).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Shape:
    """One catalogue entry: how to size an object and which primitive parts make it."""

    category: str
    """Catalogue name stored in `objects[i].category`."""
    name: str
    """Noun used in questions (`objects[i].name`)."""
    plural: str
    """Plural noun, for counting questions."""
    sizes: tuple[tuple[float, float], ...]
    """Ranges (lo, hi) in meters: (side,) cube-like, (diameter, height), or (sx, sy, sz)."""
    supports: bool = False
    """Has a flat top another object can stand on."""
    stackable: bool = True
    """Small enough to stand on top of another object."""


CATALOGUE: dict[str, Shape] = {
    s.category: s
    for s in (
        Shape("cube", "cube", "cubes", ((0.22, 0.45),), supports=True),
        Shape("box", "block", "blocks", ((0.2, 0.55), (0.2, 0.55), (0.12, 0.45)), supports=True),
        Shape("sphere", "ball", "balls", ((0.2, 0.45),)),
        Shape("cylinder", "cylinder", "cylinders", ((0.18, 0.4), (0.22, 0.6)), supports=True),
        Shape("cone", "cone", "cones", ((0.22, 0.42), (0.28, 0.6))),
        Shape("table", "table", "tables", ((0.7, 1.05), (0.5, 0.8), (0.45, 0.75)), True, False),
        Shape("chair", "chair", "chairs", ((0.4, 0.52), (0.4, 0.5), (0.8, 1.0)), stackable=False),
        # Held out: only the OOD generator uses these.
        Shape("torus", "torus", "toruses", ((0.28, 0.5),)),
        Shape("pyramid", "pyramid", "pyramids", ((0.25, 0.45), (0.25, 0.5))),
    )
}
IN_DOMAIN_SHAPES = ("cube", "box", "sphere", "cylinder", "cone", "table", "chair")
HELD_OUT_SHAPES = ("torus", "pyramid")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 35),
    "green": (50, 160, 60),
    "blue": (40, 80, 200),
    "yellow": (225, 200, 40),
    "white": (235, 235, 230),
    "purple": (120, 60, 160),
    # Held out: only the OOD generator uses these.
    "orange": (235, 125, 30),
    "pink": (240, 140, 180),
    "cyan": (50, 200, 210),
    "brown": (120, 80, 45),
}
IN_DOMAIN_COLORS = ("red", "green", "blue", "yellow", "white", "purple")
HELD_OUT_COLORS = ("orange", "pink", "cyan", "brown")

TORUS_TUBE = 0.45
"""Tube radius / ring radius of every torus: fat, so a ray through the center hits the tube."""

NAME_TO_CATEGORY = {s.name: s.category for s in CATALOGUE.values()}
PLURAL_TO_NAME = {s.plural: s.name for s in CATALOGUE.values()}


def domain_vocabulary(domain: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(shape categories, colors) a generator of `domain` ('in' | 'ood') draws from."""
    if domain == "in":
        return IN_DOMAIN_SHAPES, IN_DOMAIN_COLORS
    if domain == "ood":
        return IN_DOMAIN_SHAPES + HELD_OUT_SHAPES, IN_DOMAIN_COLORS + HELD_OUT_COLORS
    raise ValueError(f"domain must be 'in' or 'ood', got {domain!r}")


# ----------------------------------------------------------------------------- scene records


@dataclass
class SceneObject:
    category: str
    name: str
    color: str
    size: tuple[float, float, float]
    """[sx, sy, sz] of the upright box, meters (sz along gravity)."""
    yaw: float
    """Rotation about world z, radians."""
    position: tuple[float, float, float]
    """Center of the upright box, world frame."""
    support: int = -1
    """Index of the object this one stands on; -1 = the floor."""

    @property
    def description(self) -> str:
        """`red cube`: how general (no-region) questions name the object."""
        return f"{self.color} {self.name}"

    def footprint_radius(self) -> float:
        return 0.5 * math.hypot(self.size[0], self.size[1])

    def corners(self) -> np.ndarray:
        """(8, 3) world corners of the upright box."""
        sx, sy, sz = self.size
        local = np.array(
            [[x, y, z] for x in (-sx / 2, sx / 2) for y in (-sy / 2, sy / 2) for z in (-sz / 2, sz / 2)]
        )
        return local @ _rot_z(self.yaw).T + np.asarray(self.position)


@dataclass
class Scene:
    objects: list[SceneObject]
    camera_to_world: np.ndarray
    """(4, 4) OpenCV camera -> world."""
    intrinsics: tuple[float, float, float, float]
    """fx, fy, cx, cy in pixels (pixel (u, v) covers [u, u+1) x [v, v+1))."""
    width: int
    height: int
    domain: str
    layout: str
    walls: list[tuple[tuple[float, float, float], tuple[float, float, float], float]] = field(
        default_factory=list
    )
    """Wall boxes (center, size, yaw): context only, never objects of questions."""
    light: tuple[float, float, float] = (0.4, -0.3, 0.87)
    """Unit direction towards the light, world frame."""
    floor_colors: tuple[tuple[int, int, int], tuple[int, int, int]] = ((150, 140, 125), (120, 112, 100))

    def camera_centers(self) -> np.ndarray:
        """(N, 3) object centers in the camera frame."""
        return camera_from_world(
            np.array([o.position for o in self.objects]).reshape(-1, 3), self.camera_to_world
        )


# ----------------------------------------------------------------------------- geometry helpers


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _as_matrix(camera_to_world: Any) -> np.ndarray:
    m = np.asarray(camera_to_world, dtype=np.float64)
    assert m.shape == (4, 4), f"camera_to_world must be 4x4, got shape {m.shape}"
    return m


def world_from_camera(points: Any, camera_to_world: Any) -> np.ndarray:
    """Map camera-frame points (..., 3) to the world frame (z up)."""
    m = _as_matrix(camera_to_world)
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def camera_from_world(points: Any, camera_to_world: Any) -> np.ndarray:
    """Map world points (..., 3) to the camera frame (OpenCV: +x right, +y down, +z forward)."""
    m = _as_matrix(camera_to_world)
    return (np.asarray(points, dtype=np.float64) - m[:3, 3]) @ m[:3, :3]


def project(points_cam: Any, intrinsics: Any) -> np.ndarray:
    """Pixel coordinates (..., 2) of camera-frame points; pixel (u, v) covers [u, u+1)."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    p = np.asarray(points_cam, dtype=np.float64)
    return np.stack([fx * p[..., 0] / p[..., 2] + cx, fy * p[..., 1] / p[..., 2] + cy], axis=-1)


def world_centers(row: Mapping[str, Any]) -> np.ndarray:
    """(N, 3) world-frame centers of a row's objects (from their camera-frame `center`)."""
    centers = np.array([o["center"] for o in row["objects"]], dtype=np.float64).reshape(-1, 3)
    return world_from_camera(centers, row["camera_to_world"])


def camera_pitch(camera_to_world: Any) -> float:
    """Downward tilt of the optical axis below the horizon, radians (positive = looking down)."""
    forward = _as_matrix(camera_to_world)[:3, 2]
    return math.asin(max(-1.0, min(1.0, -forward[2])))


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) camera_to_world of a zero-roll camera at `eye` looking at `target`."""
    f = target - eye
    f = f / np.linalg.norm(f)
    r = np.array([f[1], -f[0], 0.0])  # f x (0, 0, 1)
    assert np.linalg.norm(r) > 1e-6, "camera must not look straight up or down"
    r = r / np.linalg.norm(r)
    d = np.array(
        [f[1] * r[2] - f[2] * r[1], f[2] * r[0] - f[0] * r[2], f[0] * r[1] - f[1] * r[0]]
    )  # f x r = +y (down)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = r, d, f, eye
    return m


# ----------------------------------------------------------------------------- meshes


@cache
def _unit_mesh(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, triangles (T, 3) uint32) filling the box [-0.5, 0.5]^3."""
    import open3d as o3d

    g = o3d.geometry.TriangleMesh
    if kind == "box":
        m = g.create_box(1.0, 1.0, 1.0)
        v = np.asarray(m.vertices) - 0.5
    elif kind == "sphere":
        m = g.create_sphere(0.5, resolution=10)
        v = np.asarray(m.vertices)
    elif kind == "cylinder":
        m = g.create_cylinder(0.5, 1.0, resolution=20, split=1)
        v = np.asarray(m.vertices)
    elif kind == "cone":
        m = g.create_cone(0.5, 1.0, resolution=20, split=1)
        v = np.asarray(m.vertices) - [0.0, 0.0, 0.5]
    elif kind == "torus":
        ring = 1.0
        m = g.create_torus(ring, ring * TORUS_TUBE, radial_resolution=20, tubular_resolution=10)
        v = np.asarray(m.vertices) / (2 * ring * (1 + TORUS_TUBE))  # xy extent 1, z extent tube/(1+tube)
        v[:, 2] /= TORUS_TUBE / (1 + TORUS_TUBE)
    elif kind == "pyramid":
        v = np.array(
            [[-0.5, -0.5, -0.5], [0.5, -0.5, -0.5], [0.5, 0.5, -0.5], [-0.5, 0.5, -0.5], [0, 0, 0.5]]
        )
        t = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]], dtype=np.uint32)
        return v, t
    else:
        raise ValueError(f"no unit mesh {kind!r}")
    return v.astype(np.float64), np.asarray(m.triangles, dtype=np.uint32)


def _parts(obj: SceneObject) -> list[tuple[str, tuple[float, float, float], tuple[float, float, float]]]:
    """Primitive parts (unit mesh, center, scale) in the object frame (box centered at 0)."""
    sx, sy, sz = obj.size
    if obj.category in ("cube", "box"):
        return [("box", (0, 0, 0), (sx, sy, sz))]
    if obj.category in ("sphere", "cylinder", "cone", "torus", "pyramid"):
        return [(obj.category, (0, 0, 0), (sx, sy, sz))]
    # Composites keep their box center inside a solid part (the pedestal, the seat cushion), so
    # the surface seen at the center's pixel always lies in front of the center.
    if obj.category == "table":  # pedestal table: top, central column, foot plate
        top, foot = 0.05, 0.03
        col = 0.3 * min(sx, sy)
        return [
            ("box", (0, 0, sz / 2 - top / 2), (sx, sy, top)),
            ("box", (0, 0, 0), (col, col, sz - top - foot + 0.002)),
            ("box", (0, 0, -sz / 2 + foot / 2), (0.7 * sx, 0.7 * sy, foot)),
        ]
    if obj.category == "chair":
        leg, seat_lo, seat_hi, back_t = 0.045, 0.44 * sz, 0.53 * sz, 0.05
        parts = [("box", (0, 0, -sz / 2 + (seat_lo + seat_hi) / 2), (sx, sy, seat_hi - seat_lo))]
        for px in (-1, 1):
            for py in (-1, 1):
                c = (px * (sx / 2 - leg / 2), py * (sy / 2 - leg / 2), -sz / 2 + seat_lo / 2)
                parts.append(("box", c, (leg, leg, seat_lo)))
        back_h = sz - seat_hi
        parts.append(("box", (0, -sy / 2 + back_t / 2, sz / 2 - back_h / 2), (sx, back_t, back_h)))
        return parts
    raise ValueError(f"unknown object category {obj.category!r}")


def object_mesh(obj: SceneObject) -> tuple[np.ndarray, np.ndarray]:
    """World-frame triangle mesh of one object: (vertices (V, 3) float32, triangles (T, 3) uint32)."""
    verts, tris, offset = [], [], 0
    for kind, center, scale in _parts(obj):
        v, t = _unit_mesh(kind)
        verts.append(v * scale + center)
        tris.append(t + offset)
        offset += len(v)
    v = np.concatenate(verts) @ _rot_z(obj.yaw).T + obj.position
    return v.astype(np.float32), np.concatenate(tris).astype(np.uint32)


def box_mesh(center, size, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """World-frame mesh of an upright box (walls)."""
    v, t = _unit_mesh("box")
    v = (v * size) @ _rot_z(yaw).T + center
    return v.astype(np.float32), t


# ----------------------------------------------------------------------------- sampling


def _r(x: float) -> float:
    """Geometry is stored in millimeters: round once at creation so every label is exact."""
    return round(float(x), 3)


def _up(x: float) -> float:
    """Round up to the millimeter (resting heights: never sink into the support)."""
    return math.ceil(float(x) * 1000 - 1e-6) / 1000


def _sample_size(shape: Shape, rng: np.random.Generator) -> tuple[float, float, float]:
    ranges = [rng.uniform(lo, hi) for lo, hi in shape.sizes]
    if shape.category in ("cube", "sphere"):
        s = ranges[0]
        return (_r(s), _r(s), _r(s))
    if shape.category == "torus":
        d = ranges[0]
        return (_r(d), _r(d), _r(d * TORUS_TUBE / (1 + TORUS_TUBE)))
    if len(ranges) == 2:  # (diameter, height)
        return (_r(ranges[0]), _r(ranges[0]), _r(ranges[1]))
    return (_r(ranges[0]), _r(ranges[1]), _r(ranges[2]))


def _support_radius(obj: SceneObject) -> float:
    """Radius of the largest circle inside the object's flat top."""
    return 0.5 * min(obj.size[0], obj.size[1])


def _layout_point(layout: str, half: float, rng: np.random.Generator) -> np.ndarray:
    if layout == "scatter":
        return rng.uniform(-half, half, size=2)
    if layout == "row":
        return np.array([rng.uniform(-1.4 * half, 1.4 * half), rng.normal(0.0, 0.12)])
    if layout == "ring":
        a = rng.uniform(0, 2 * math.pi)
        r = half * rng.uniform(0.8, 1.1)
        return np.array([r * math.cos(a), r * math.sin(a)])
    raise ValueError(f"unknown layout {layout!r}")


def _place_objects(
    rng: np.random.Generator,
    domain: str,
    min_objects: int,
    max_objects: int,
    stack_probability: float,
    layout: str,
) -> list[SceneObject]:
    shapes, colors = domain_vocabulary(domain)
    n = int(rng.integers(min_objects, max_objects + 1))
    half = 0.45 + 0.09 * n
    objects: list[SceneObject] = []
    carrying: set[int] = set()  # supports that already carry an object
    for k in range(n):
        category = str(rng.choice(shapes))
        color = str(rng.choice(colors))
        if domain == "ood" and k == 0:
            # Every OOD scene shows something held out, so the split really differs.
            category, color = str(rng.choice(HELD_OUT_SHAPES)), str(rng.choice(HELD_OUT_COLORS))
        shape = CATALOGUE[category]
        size = _sample_size(shape, rng)
        yaw = _r(rng.uniform(-math.pi, math.pi))
        obj = SceneObject(category, shape.name, color, size, yaw, (0.0, 0.0, 0.0))
        supports = [
            i
            for i, o in enumerate(objects)
            if CATALOGUE[o.category].supports and o.support < 0 and i not in carrying
        ]
        if shape.stackable and supports and rng.random() < stack_probability:
            i = int(rng.choice(supports))
            base = objects[i]
            room = _support_radius(base) - 0.02
            scale = min(1.0, room / obj.footprint_radius())
            if scale * min(size) >= 0.1:  # shrink to fit the top; skip if it gets too small
                size = tuple(_r(s * scale) for s in size)
                obj.size = size
                slack = max(0.0, room - obj.footprint_radius())
                off = rng.uniform(-1, 1, size=2) * slack / math.sqrt(2)
                top = base.position[2] + base.size[2] / 2
                obj.position = (
                    _r(base.position[0] + off[0]),
                    _r(base.position[1] + off[1]),
                    _up(top + size[2] / 2),
                )
                obj.support = i
                carrying.add(i)
                objects.append(obj)
                continue
        for _ in range(40):
            xy = _layout_point(layout, half, rng)
            ok = all(
                math.dist(xy, o.position[:2]) >= obj.footprint_radius() + o.footprint_radius() + 0.05
                for o in objects
                if o.support < 0
            )
            if ok:
                obj.position = (_r(xy[0]), _r(xy[1]), _up(size[2] / 2))
                objects.append(obj)
                break
    return objects


def _fits(corners: np.ndarray, c2w: np.ndarray, intr, width: int, height: int, margin: float) -> bool:
    cam = camera_from_world(corners, c2w)
    if np.any(cam[:, 2] < 0.3):
        return False
    uv = project(cam, intr)
    return bool(
        np.all(uv[:, 0] >= margin * width)
        and np.all(uv[:, 0] <= (1 - margin) * width)
        and np.all(uv[:, 1] >= margin * height)
        and np.all(uv[:, 1] <= (1 - margin) * height)
    )


def _place_camera(objects: list[SceneObject], rng: np.random.Generator, domain: str, size: int):
    corners = np.concatenate([o.corners() for o in objects])
    centers = np.array([o.position for o in objects])
    if domain == "in":
        cam_h = rng.uniform(1.0, 1.7)
        fov = math.radians(rng.uniform(55, 70))
    else:  # other camera ranges: very low or very high, narrow or wide lenses
        cam_h = rng.uniform(0.55, 0.8) if rng.random() < 0.5 else rng.uniform(2.0, 2.5)
        fov = math.radians(rng.uniform(38, 48) if rng.random() < 0.5 else rng.uniform(76, 86))
    focal = (size / 2) / math.tan(fov / 2)
    intr = (focal, focal, size / 2, size / 2)
    target = centers.mean(axis=0)
    target = np.array(
        [target[0] + rng.normal(0, 0.12), target[1] + rng.normal(0, 0.12), rng.uniform(0.1, 0.4)]
    )
    heading = rng.uniform(-math.pi, math.pi)
    back = np.array([-math.cos(heading), -math.sin(heading)])
    reach = float(np.max(np.linalg.norm(corners[:, :2] - target[:2], axis=1)))
    # Start a little inside the distance at which the scene's footprint fills the lens, then back off.
    dist = max(1.0, reach + 0.3, 0.7 * reach / math.tan(fov / 2))
    c2w = None
    for _ in range(60):  # back off until every object's box is inside the frame
        eye = np.array([target[0] + back[0] * dist, target[1] + back[1] * dist, cam_h])
        c2w = look_at(eye, target)
        if _fits(corners, c2w, intr, size, size, margin=0.05):
            break
        dist *= 1.06
    dist *= rng.uniform(1.0, 1.12)
    eye = np.array([target[0] + back[0] * dist, target[1] + back[1] * dist, cam_h])
    return look_at(eye, target), intr, heading, target


def sample_scene(
    rng: np.random.Generator,
    domain: str = "in",
    image_size: int = 112,
    min_objects: int = 3,
    max_objects: int = 8,
    stack_probability: float = 0.3,
    walls_probability: float = 0.5,
) -> Scene:
    """One random scene of `domain` ('in' | 'ood'); all randomness comes from `rng`."""
    domain_vocabulary(domain)  # validates the name
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    layout = "scatter" if domain == "in" else str(rng.choice(["row", "ring"]))
    for _ in range(20):
        objects = _place_objects(rng, domain, min_objects, max_objects, stack_probability, layout)
        if len(objects) >= min_objects:
            break
    assert len(objects) >= min_objects, f"could not place {min_objects} objects"
    c2w, intr, heading, target = _place_camera(objects, rng, domain, image_size)
    walls = []
    if rng.random() < walls_probability:
        # A back wall behind everything (as seen from the camera), sometimes a side wall.
        fwd = np.array([math.cos(heading), math.sin(heading)])
        far = max(float(np.dot(c[:2] - target[:2], fwd)) for o in objects for c in o.corners())
        d = far + rng.uniform(0.3, 1.0)
        c = target[:2] + fwd * d
        walls.append(((float(c[0]), float(c[1]), 1.3), (0.05, 12.0, 2.6), float(heading)))
        if rng.random() < 0.5:
            side = np.array([-fwd[1], fwd[0]]) * (1 if rng.random() < 0.5 else -1)
            wide = max(float(np.dot(c[:2] - target[:2], side)) for o in objects for c in o.corners())
            c = target[:2] + side * (wide + rng.uniform(0.4, 1.0))
            walls.append(((float(c[0]), float(c[1]), 1.3), (0.05, 12.0, 2.6), float(heading + math.pi / 2)))
    az, el = rng.uniform(-math.pi, math.pi), rng.uniform(0.6, 1.2)
    light = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    tone = rng.uniform(0.8, 1.15)
    base = np.array([150, 140, 125]) if domain == "in" else np.array([125, 135, 150])
    floor = (
        tuple(int(v) for v in np.clip(base * tone, 0, 255)),
        tuple(int(v) for v in np.clip(base * tone * 0.82, 0, 255)),
    )
    return Scene(objects, c2w, intr, image_size, image_size, domain, layout, walls, light, floor)


VIEW_ORBITS = {"in": (12.0, 35.0), "ood": (40.0, 65.0)}
"""Degrees a further view of a scene turns around the scene's look-at point from the first view,
per domain: `test_ood` holds out the wider camera baselines (disjoint ranges)."""
VIEW_HEIGHT_CHANGE = {"in": 0.2, "ood": 0.4}
"""Largest change of camera height (m) between the first view and a further one, per domain."""
WALL_CLEARANCE = 0.3
"""A further view's camera stays this far (m) on the scene's side of every wall."""


def sample_views(scene: Scene, rng: np.random.Generator, n_views: int) -> list[np.ndarray]:
    """camera_to_world (4, 4) of `n_views` views of one scene, the scene's own camera first: the same
    camera (intrinsics) moved around the objects, as in a scan. Each further view orbits the first
    view's eye around the vertical axis through the scene's center by `VIEW_ORBITS[domain]` degrees
    (either way), changes its distance by up to 15% and its height by up to `VIEW_HEIGHT_CHANGE`, and
    looks at the scene's center, jittered; its eye stays on the scene's side of every wall and every
    object's box stays in front of it. All randomness comes from `rng`.
    """
    if not isinstance(n_views, int) or n_views < 1:
        raise ValueError(f"n_views must be a positive integer, got {n_views!r}")
    first = _as_matrix(scene.camera_to_world)
    eye0 = first[:3, 3]
    centers = np.array([o.position for o in scene.objects])
    corners = np.concatenate([o.corners() for o in scene.objects])
    pivot = np.array([centers[:, 0].mean(), centers[:, 1].mean(), 0.0])
    lo, hi = VIEW_ORBITS[scene.domain]
    views = [first]
    for _ in range(n_views - 1):
        for _attempt in range(50):
            turn = math.radians(rng.uniform(lo, hi)) * (1 if rng.random() < 0.5 else -1)
            offset = (eye0 - pivot)[:2] * rng.uniform(0.85, 1.15)
            c, s = math.cos(turn), math.sin(turn)
            xy = pivot[:2] + np.array([c * offset[0] - s * offset[1], s * offset[0] + c * offset[1]])
            height = max(0.4, eye0[2] + rng.uniform(-1, 1) * VIEW_HEIGHT_CHANGE[scene.domain])
            target = np.array([pivot[0] + rng.normal(0, 0.1), pivot[1] + rng.normal(0, 0.1), rng.uniform(0.1, 0.4)])
            c2w = look_at(np.array([xy[0], xy[1], height]), target)
            if _inside_walls(c2w[:3, 3], pivot, scene.walls) and bool(
                    np.all(camera_from_world(corners, c2w)[:, 2] > 0.3)):
                break
        else:  # no clear spot: the first view again would add nothing, so refuse loudly
            raise ValueError("no further view of this scene clears its walls; draw another scene")
        views.append(c2w)
    return views


def _inside_walls(eye: np.ndarray, pivot: np.ndarray, walls) -> bool:
    """True when `eye` is on `pivot`'s side of every wall, at least `WALL_CLEARANCE` from its plane."""
    for center, _size, yaw in walls:
        normal = np.array([math.cos(yaw), math.sin(yaw)])  # the wall's thin axis
        side = float(np.dot(pivot[:2] - np.asarray(center[:2]), normal))
        eye_side = float(np.dot(eye[:2] - np.asarray(center[:2]), normal))
        if side * eye_side <= 0 or abs(eye_side) < WALL_CLEARANCE:
            return False
    return True


def check_no_interpenetration(scene: Scene) -> None:
    """Assert that floor objects' footprints are disjoint and stacked ones rest inside their support."""
    objs = scene.objects
    for i, a in enumerate(objs):
        assert a.position[2] - a.size[2] / 2 >= -1e-6, f"object {i} sinks into the floor"
        if a.support >= 0:
            b = objs[a.support]
            top = b.position[2] + b.size[2] / 2
            assert abs(a.position[2] - a.size[2] / 2 - top) < 2e-3, f"object {i} does not rest on {a.support}"
            assert (
                math.dist(a.position[:2], b.position[:2]) + a.footprint_radius() <= _support_radius(b) + 1e-3
            ), f"object {i} overhangs its support {a.support}"
        for j in range(i + 1, len(objs)):
            b = objs[j]
            if a.support < 0 and b.support < 0:
                gap = math.dist(a.position[:2], b.position[:2]) - a.footprint_radius() - b.footprint_radius()
                assert gap > 0, f"objects {i} and {j} overlap"
