"""Free-form input -> a workbench row: an image, a question and regions typed or clicked by a
person (`workbench ask --image`, the demo's upload tab).

Everything a person can get wrong is checked here, with a message that names the bad value:
no image, a file that is not an image, a huge image, an empty or overlong question, malformed
regions, regions outside the image, a count of regions that does not match the question's
`<region>` tokens, and a depth map of the wrong size or with NaN or negative values. The image is scaled to the model's training size (regions with it) and the
visual prompts are drawn in, exactly as the data engine draws them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.schema import REGION_TOKEN, check_depth
from workbench.world import render

MAX_SIDE = 4096
"""Larger uploads are refused rather than silently eating memory."""
UPLOAD_FOV_DEG = 60.0
"""Horizontal field of view assumed for an upload with depth but no intrinsics (the middle of the
data engine's usual 55-70 degrees)."""
MAX_QUESTION_CHARS = 600
POINT_HALF_SIZE = 4
"""Half side (px, at the model's image size) of the square a point region pools over."""


def load_image(image: Any) -> Image.Image:
    """An RGB PIL image from a PIL image, an (H, W, 3) array or a file path."""
    if image is None:
        raise ValueError("no image given: upload or pick an image first")
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image file {str(image)!r} does not exist")
        name = os.path.basename(str(image))
        try:
            with Image.open(image) as f:
                _check_size(f.size, repr(name))  # before decoding: the header says how large it is
                f.load()
                image = f.copy()
        except Image.DecompressionBombError:
            raise ValueError(f"{name!r} is too large to open; the largest side may be {MAX_SIDE} px") from None
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{name!r} is not an image file PIL can read ({err})") from None
    elif isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"image array must be (H, W) or (H, W, 3), got shape {image.shape}")
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if not isinstance(image, Image.Image):
        raise ValueError(f"unsupported image value of type {type(image).__name__}")
    _check_size(image.size, "image")
    return image.convert("RGB")


def _check_size(size: tuple[int, int], name: str) -> None:
    w, h = size
    if max(size) > MAX_SIDE:
        raise ValueError(f"{name} is {w}x{h} px; the largest side may be {MAX_SIDE} px")
    if min(size) < 8:
        raise ValueError(f"{name} is {w}x{h} px; too small to read")


def load_depth(depth: Any, size: tuple[int, int]) -> np.ndarray:
    """A depth map for an image of `size` (W, H): z in meters as float32 (H, W), from an array (m),
    a .npy file (m) or a 16-bit PNG (mm, 0 = no depth). ValueError / FileNotFoundError name the bad
    file or value (wrong size, NaN, negative values, an 8-bit PNG)."""
    name = "depth"
    if isinstance(depth, (str, os.PathLike)):
        path, name = str(depth), f"depth map {os.path.basename(str(depth))!r}"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"depth file {path!r} does not exist")
        if path.lower().endswith(".npy"):
            try:
                depth = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as err:
                raise ValueError(f"{name} is not a .npy array ({err})") from None
        else:
            try:
                with Image.open(path) as f:
                    mode, arr = f.mode, np.asarray(f)
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"{name} is neither a .npy array nor an image PIL can read ({err})") from None
            if arr.dtype != np.uint16 and mode not in ("I;16", "I;16B", "I"):
                raise ValueError(f"{name} is a {mode} image; a depth PNG is 16-bit, in millimeters")
            depth = arr.astype(np.float32) / 1000.0
    elif isinstance(depth, Image.Image):
        raise ValueError("give depth as an array in meters or a file (.npy in m, 16-bit PNG in mm), not a PIL image")
    return check_depth(depth, size, name)


def upload_intrinsics(width: int, height: int, fov_deg: float = UPLOAD_FOV_DEG) -> list[float]:
    """fx, fy, cx, cy of a centered pinhole camera with a horizontal field of view of `fov_deg`.

    >>> upload_intrinsics(112, 84)
    [97.0, 97.0, 56.0, 42.0]
    """
    f = round((width / 2) / np.tan(np.radians(fov_deg) / 2), 1)
    return [float(f), float(f), width / 2, height / 2]


def parse_intrinsics(intrinsics: Any) -> list[float]:
    """fx, fy, cx, cy (pixels) from a list or "fx,fy,cx,cy" text; fx and fy must be positive."""
    if isinstance(intrinsics, str):
        intrinsics = [v for v in intrinsics.replace(",", " ").split()]
    values = _numbers(intrinsics, 4, "intrinsics (fx, fy, cx, cy)")
    if values[0] <= 0 or values[1] <= 0:
        raise ValueError(f"intrinsics fx, fy must be positive, got {values}")
    return values


def parse_regions(regions: Any) -> list[dict[str, Any]]:
    """Regions from JSON text or a list: [{label, bbox_2d: [x1, y1, x2, y2]} | {label, point: [x, y]}].

    `label` is `<color> box` or `<color> point` (colors: the data engine's mark colors); the kind
    follows from the label.
    """
    if regions is None or (isinstance(regions, str) and not regions.strip()):
        return []
    if isinstance(regions, str):
        try:
            regions = json.loads(regions)
        except json.JSONDecodeError as err:
            raise ValueError(f"regions are not valid JSON ({err.msg} at char {err.pos}): {regions[:80]!r}") from None
    if isinstance(regions, Mapping):
        regions = [regions]
    if not isinstance(regions, Sequence) or isinstance(regions, str):
        raise ValueError(f"regions must be a list of {{label, bbox_2d | point}}, got {type(regions).__name__}")
    out = []
    for k, reg in enumerate(regions):
        if not isinstance(reg, Mapping) or "label" not in reg:
            raise ValueError(f"region {k} must be an object with a 'label', got {reg!r}")
        label = str(reg["label"]).strip().lower()
        color, kind = render.parse_label(label)
        if kind == "box":
            box = _numbers(reg.get("bbox_2d"), 4, f"region {k} ({label}) bbox_2d")
            out.append({"label": label, "kind": kind, "bbox_2d": box, "point": None})
        else:
            point = reg.get("point")
            if point is None and reg.get("bbox_2d") is not None:
                x1, y1, x2, y2 = _numbers(reg["bbox_2d"], 4, f"region {k} ({label}) bbox_2d")
                point = [(x1 + x2) / 2, (y1 + y2) / 2]
            out.append({"label": label, "kind": kind, "bbox_2d": None, "point": _numbers(point, 2, f"region {k} ({label}) point")})
    labels = [r["label"] for r in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"region labels must be distinct, got {labels}")
    return out


def _numbers(value: Any, n: int, what: str) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        raise ValueError(f"{what} must be a list of {n} numbers, got {value!r}")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a list of {n} numbers, got {value!r}") from None
    if not all(np.isfinite(numbers)):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return numbers


def parse_choices(choices: Any) -> list[str]:
    """Option texts from a list or its JSON text; [] for none."""
    if choices is None or (isinstance(choices, str) and not choices.strip()):
        return []
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError as err:
            raise ValueError(f"choices are not valid JSON ({err.msg}): {choices[:80]!r}") from None
    if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ValueError(f"choices must be a list of non-empty strings, got {choices!r}")
    if len(choices) > 8:
        raise ValueError(f"at most 8 choices (A-H), got {len(choices)}")
    return [c.strip() for c in choices]


def check_inside(regions: list[dict[str, Any]], width: int, height: int) -> None:
    for reg in regions:
        if reg["kind"] == "box":
            x1, y1, x2, y2 = reg["bbox_2d"]
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise ValueError(
                    f"region {reg['label']!r} box {reg['bbox_2d']} is outside the {width}x{height} image "
                    "or empty (need 0 <= x1 < x2 <= width, 0 <= y1 < y2 <= height)"
                )
        else:
            x, y = reg["point"]
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(f"region {reg['label']!r} point {reg['point']} is outside the {width}x{height} image")


def scale_image(image: Image.Image, image_size: int | None) -> tuple[Image.Image, float]:
    """(`image` scaled so its longer side is `image_size`, the scale); None or the size it has keeps it."""
    if not image_size or max(image.size) == image_size:
        return image, 1.0
    scale = image_size / max(image.size)
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    return image.resize(size, Image.BICUBIC), scale


def place_regions(regions: list[dict[str, Any]], scale: float, width: int, height: int) -> None:
    """Regions given in pixels of an image, moved in place onto that image scaled by `scale` to
    `width` x `height`: boxes to whole pixels (never empty), points to a pixel with the square of
    side 2 * POINT_HALF_SIZE + 1 around it as their `bbox_2d` (what pooling reads)."""
    w, h = width, height
    for reg in regions:
        if reg["kind"] == "box":
            x1, y1, x2, y2 = (v * scale for v in reg["bbox_2d"])
            reg["bbox_2d"] = [int(np.floor(x1)), int(np.floor(y1)), max(int(np.ceil(x2)), int(np.floor(x1)) + 1),
                              max(int(np.ceil(y2)), int(np.floor(y1)) + 1)]
            reg["bbox_2d"] = [min(max(v, 0), lim) for v, lim in zip(reg["bbox_2d"], (w - 1, h - 1, w, h))]
        else:
            px, py = (min(int(v * scale), lim - 1) for v, lim in zip(reg["point"], (w, h)))
            reg["point"] = [px, py]
            s = POINT_HALF_SIZE
            reg["bbox_2d"] = [max(px - s, 0), max(py - s, 0), min(px + s + 1, w), min(py + s + 1, h)]


def make_row(
    image: Any, question: str, regions: Any = None, image_size: int | None = 112, choices: Any = None,
    depth: Any = None, intrinsics: Any = None,
) -> dict[str, Any]:
    """A row (schema columns the model needs) from free-form input; raises ValueError naming the bad value.

    `choices` (a list of option texts, or JSON of one) are shown to the model as `A. ...` lines.
    Regions are in the pixel coordinates of the given image; the image is scaled so its longer
    side is `image_size` (None keeps it) and the marks are drawn after scaling. `depth` (optional,
    `load_depth`: same size as the image) and `intrinsics` (fx, fy, cx, cy in pixels of the given
    image; without them a centered camera with a `UPLOAD_FOV_DEG` field of view) are scaled with
    the image and become the row's `depth` and `intrinsics`, for a model that embeds depth.
    """
    image = load_image(image)
    z = None if depth is None else load_depth(depth, image.size)
    if z is not None:
        intrinsics = upload_intrinsics(*image.size) if intrinsics is None else parse_intrinsics(intrinsics)
    question = (question or "").strip()
    if not question:
        raise ValueError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"the question has {len(question)} characters; at most {MAX_QUESTION_CHARS}")
    regs = parse_regions(regions)
    options = parse_choices(choices)
    check_inside(regs, image.width, image.height)
    n_tokens = question.count(REGION_TOKEN)
    if n_tokens != len(regs):
        raise ValueError(
            f"the question has {n_tokens} {REGION_TOKEN} tokens but {len(regs)} regions were given; "
            f"write each region as its label followed by {REGION_TOKEN}, e.g. 'the red box {REGION_TOKEN}'"
        )

    image, scale = scale_image(image, image_size)
    w, h = image.size
    if z is not None and z.shape != (h, w):  # nearest: never blends a depth edge into a false surface
        sx, sy = w / z.shape[1], h / z.shape[0]
        z = np.asarray(Image.fromarray(z, mode="F").resize((w, h), Image.NEAREST), dtype=np.float32)
        intrinsics = [intrinsics[0] * sx, intrinsics[1] * sy, intrinsics[2] * sx, intrinsics[3] * sy]
    place_regions(regs, scale, w, h)
    marked = render.draw_marks(np.asarray(image), regs)
    return {
        "id": "freeform",
        "scene_id": "freeform",
        "split": "test",
        "task": "region_qa" if regs else "general_qa",
        "image": marked,
        "question": question,
        "regions": [{**r, "object_index": -1} for r in regs],
        "category": "freeform",
        "answer_type": None,
        "answer": None,
        "choices": options,
        "path": "dtr" if regs else "lor",
        "centers": "{}",
        "objects": [],
        "depth": z,
        "intrinsics": None if z is None else [float(v) for v in intrinsics],
    }
