"""Depth for the 3D positional embedding: how it travels with an image, and the per-patch points
the model embeds (SPEC section 3, "3D positional embedding").

TRL's trainers hand the processor nothing but the images and the text, so a view's depth travels
inside its image, as a region's box travels inside the token ids: `attach` returns an RGBA image
whose alpha channel holds the z-depth, log-coded in 8 bits over [`Z_MIN`, `Z_MAX`] m (a relative
step of 1.8 %, averaged away over a 14 x 14 patch), and whose first alpha row is a header: a magic
signature and the intrinsics fx, fy, cx, cy as 32-bit floats. `detach` gives back the RGB image, the
depth and the intrinsics; an image without the signature (any upload, an ordinary RGBA PNG) has
no depth. The processor (`tokenizer.WorkbenchProcessor`) detaches depth before the image
processor sees the image and appends `POINT_COLUMNS` columns to every row of `pixel_values`:

    [X, Y, Z metric | X, Y, Z relative | valid]      one row per vision patch, in patch order

- metric: the camera-frame point (OpenCV axes, m) of each pixel from z and the intrinsics;
- relative: the released model's pseudo point map without intrinsics: d = 1 - minmax(1 / z) (what
  a relative depth model stores as uint8), z' = 2d - 1, X = u_norm z', Y = v_norm z' with u, v in
  [-1, 1];
- both area-averaged over the valid pixels of each patch; `valid` = 1 where the patch has depth.

The model (`architecture.RegionQwen2_5_VLModel`) strips the columns and embeds the ones its
`depth_embedding` setting names. Appending both keeps the processor free of model settings.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from workbench.schema import check_depth

Z_MIN, Z_MAX = 0.2, 20.0
"""Range of the 8-bit log code of z (m); depths outside are clipped to it."""
MAGIC = b"SRDEPTH1"
"""Signature at the start of the alpha header row of an image that carries depth."""
POINT_COLUMNS = 7
"""Columns the processor appends to `pixel_values`: metric xyz, relative xyz, valid."""
HEADER_BYTES = len(MAGIC) + 16
"""Alpha header: the signature, then fx, fy, cx, cy as little-endian float32."""


def attach(image: Image.Image, depth: Any, intrinsics: Sequence[float]) -> Image.Image:
    """An RGBA copy of `image` that carries `depth` (z in m, (H, W)) and `intrinsics` (fx, fy, cx, cy).

    >>> img = attach(Image.new("RGB", (32, 8)), np.full((8, 32), 2.0), (5.0, 5.0, 16.0, 4.0))
    >>> rgb, z, k = detach(img)
    >>> rgb.mode, z.shape, [round(float(v), 2) for v in k], round(float(z[3, 1]), 2)
    ('RGB', (8, 32), [5.0, 5.0, 16.0, 4.0], 2.0)
    """
    rgb = image.convert("RGB")
    z = check_depth(depth, rgb.size)
    w, h = rgb.size
    valid = np.isfinite(z) & (z > 0)
    code = np.zeros(z.shape, dtype=np.uint8)  # 0 = no depth at this pixel
    logz = np.log(np.clip(z[valid], Z_MIN, Z_MAX))
    code[valid] = 1 + np.round((logz - np.log(Z_MIN)) / (np.log(Z_MAX) - np.log(Z_MIN)) * 254).astype(np.uint8)
    header = MAGIC + struct.pack("<4f", *(float(v) for v in intrinsics))
    if w < len(header):
        raise ValueError(f"image width {w} is too small to carry depth (needs {len(header)} px)")
    alpha = code.copy()
    alpha[0, :len(header)] = np.frombuffer(header, dtype=np.uint8)
    alpha[0, len(header):] = 0
    return Image.fromarray(np.dstack([np.asarray(rgb), alpha]), mode="RGBA")


def detach(image: Any) -> tuple[Any, np.ndarray | None, tuple[float, ...] | None]:
    """(RGB image, depth (H, W) or None, intrinsics or None) of an image `attach` made; any other
    image comes back unchanged with no depth."""
    if not isinstance(image, Image.Image) or image.mode != "RGBA":
        return image, None, None
    arr = np.asarray(image)
    alpha = arr[..., 3]
    header = alpha[0, :HEADER_BYTES].tobytes()
    if alpha.shape[1] < HEADER_BYTES or not header.startswith(MAGIC):
        return image, None, None
    intrinsics = struct.unpack("<4f", header[len(MAGIC):])
    code = alpha.astype(np.float32)
    z = np.exp(np.log(Z_MIN) + (code - 1) / 254 * (np.log(Z_MAX) - np.log(Z_MIN)))
    z[code == 0] = 0.0
    if z.shape[0] > 1:
        z[0] = z[1]  # the header row: its depth is that of the row below
    return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB"), z.astype(np.float32), intrinsics


def point_maps(depth: np.ndarray, intrinsics: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(metric (H, W, 3), relative (H, W, 3), valid (H, W)) point maps of a z-depth map.

    >>> m, r, v = point_maps(np.array([[1.0, 2.0]]), (1.0, 1.0, 1.0, 0.5))
    >>> m[0, 1].tolist(), r[:, :, 2].tolist(), v.tolist()
    ([1.0, 0.0, 2.0], [[-1.0, 1.0]], [[True, True]])
    """
    h, w = depth.shape
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, 0.0).astype(np.float32)
    u = np.arange(w, dtype=np.float32) + 0.5  # pixel centers: pixel (u, v) covers [u, u+1)
    v = np.arange(h, dtype=np.float32) + 0.5
    metric = np.stack([(u[None, :] - cx) / fx * z, (v[:, None] - cy) / fy * z, z], axis=-1)
    disparity = np.where(valid, 1.0 / np.maximum(z, 1e-6), 0.0)
    if valid.any():
        lo, hi = disparity[valid].min(), disparity[valid].max()
        d = 1.0 - (disparity - lo) / max(hi - lo, 1e-6)  # 0 nearest, 1 farthest
    else:
        d = np.zeros_like(z)
    zr = 2.0 * d - 1.0
    un = np.broadcast_to((2.0 * u / w - 1.0)[None, :], z.shape)
    vn = np.broadcast_to((2.0 * v / h - 1.0)[:, None], z.shape)
    relative = np.stack([un * zr, vn * zr, zr], axis=-1) * valid[..., None]
    return metric.astype(np.float32), relative.astype(np.float32), valid


def patch_points(depth: np.ndarray | None, intrinsics: Sequence[float] | None, grid_h: int, grid_w: int,
                 merge: int) -> torch.Tensor:
    """(grid_h * grid_w, POINT_COLUMNS) per-patch points of one image, in the row order of the
    Qwen2-VL image processor's `pixel_values` (merge windows first); zeros without depth."""
    if depth is None:
        return torch.zeros(grid_h * grid_w, POINT_COLUMNS)
    metric, relative, valid = point_maps(depth, intrinsics)
    maps = torch.from_numpy(np.concatenate([metric, relative], axis=-1)).permute(2, 0, 1)  # (6, H, W)
    mask = torch.from_numpy(valid.astype(np.float32))[None]  # (1, H, W)
    pool = torch.nn.functional.adaptive_avg_pool2d
    weight = pool(mask[None], (grid_h, grid_w))[0]  # (1, gh, gw): share of valid pixels
    mean = pool((maps * mask)[None], (grid_h, grid_w))[0] / weight.clamp_min(1e-6)  # (6, gh, gw)
    cols = torch.cat([mean * (weight > 0), (weight > 0).float()], dim=0)  # (7, gh, gw)
    cols = cols.reshape(POINT_COLUMNS, grid_h // merge, merge, grid_w // merge, merge)
    return cols.permute(1, 3, 2, 4, 0).reshape(grid_h * grid_w, POINT_COLUMNS)


def flatten_images(images: Any) -> list:
    """The images of a processor call in the order the image processor concatenates them."""
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return [im for item in images for im in flatten_images(item)]
    return [images]


def detach_all(images: Any) -> tuple[Any, list[tuple[np.ndarray | None, tuple[float, ...] | None]]]:
    """`images` (a processor's argument, nested lists allowed) with depth detached, and the
    (depth, intrinsics) of each image in flat order."""
    found: list[tuple[np.ndarray | None, tuple[float, ...] | None]] = []

    def walk(item):
        if isinstance(item, (list, tuple)):
            return type(item)(walk(x) for x in item)
        rgb, depth, intrinsics = detach(item)
        found.append((depth, intrinsics))
        return rgb

    return (None if images is None else walk(images)), found


def append_points(pixel_values: torch.Tensor, image_grid_thw: torch.Tensor, found: Sequence[tuple], merge: int
                  ) -> torch.Tensor:
    """`pixel_values` (N, C) with the `POINT_COLUMNS` per-patch point columns appended: (N, C + 7)."""
    rows = []
    for (t, gh, gw), (depth, intrinsics) in zip(image_grid_thw.tolist(), found, strict=True):
        rows.append(patch_points(depth, intrinsics, gh, gw, merge).repeat(t, 1))
    points = torch.cat(rows).to(pixel_values.dtype)
    assert points.shape[0] == pixel_values.shape[0], (points.shape, pixel_values.shape)
    return torch.cat([pixel_values, points], dim=1)


def row_image(row: Any, image: Any = None, with_depth: bool = True) -> Any:
    """The image of a dataset row for the model: with its depth attached when the row has depth and
    intrinsics and `with_depth`, else as it is."""
    image = row["image"] if image is None else image
    if not with_depth or row.get("depth") is None or row.get("intrinsics") is None:
        return image
    return attach(image, row["depth"], row["intrinsics"])


def row_images(row: Any, with_depth: bool = True) -> list[Any]:
    """The images of a row that shows several (`images`, one per frame: a multi-view row), each with
    its frame's depth (`depths`) attached when the row has them and `with_depth`; [] for a row with
    one image (`row_image` gives it)."""
    images = list(row.get("images") or ())
    if len(images) < 2:
        return []
    depths = list(row.get("depths") or ())
    if not with_depth or len(depths) != len(images) or row.get("intrinsics") is None:
        return images
    return [attach(image, depth, row["intrinsics"]) for image, depth in zip(images, depths)]


# ---------------------------------------------------------------------------------------------
# Depth for an image that has none: a depth-estimation model


@functools.lru_cache(maxsize=2)
def _depth_pipeline(name: str):
    from transformers import pipeline

    try:
        return pipeline("depth-estimation", model=name)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"cannot load the depth-estimation model {name!r}: {err}") from None


def estimate_depth(image: Image.Image, model_name: str) -> tuple[np.ndarray, str]:
    """(depth (H, W) of `image`, kind) from a transformers `depth-estimation` model (e.g. a Depth
    Anything V2 name or folder). kind "metric": z in meters, as the model gives it; kind
    "relative": the model gives relative inverse depth (disparity up to scale and shift), returned
    as z = 1 / disparity scaled into [1, 100], which only the "relative" embedding reads correctly
    (it uses `1 - minmax(1 / z)`, blind to the scale). Pixels the model gives no disparity are 0."""
    estimator = _depth_pipeline(model_name)
    kind = getattr(estimator.model.config, "depth_estimation_type", None) or "relative"
    predicted = estimator(image.convert("RGB"))["predicted_depth"]
    arr = predicted.detach().float().squeeze().cpu().numpy()
    if arr.shape != (image.height, image.width):
        arr = np.asarray(Image.fromarray(arr, mode="F").resize(image.size, Image.BILINEAR), dtype=np.float32)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "metric":
        return np.clip(arr, 0.0, None).astype(np.float32), kind
    top = float(arr.max())
    if top <= 0:
        return np.zeros_like(arr, dtype=np.float32), "relative"
    disparity = np.clip(arr / top, 0.0, 1.0)  # 1 nearest
    z = np.where(disparity > 0.01, 1.0 / np.maximum(disparity, 0.01), 0.0)
    return z.astype(np.float32), "relative"


def mismatch_note(model: Any, kind: str | None) -> str:
    """A warning when a model that embeds metric points is given relative depth (its 3D positions
    are then off by an unknown scale); "" otherwise."""
    embedding = getattr(getattr(model, "config", None), "workbench_depth_embedding", "none")
    if kind == "relative" and embedding == "metric":
        return ("this model embeds metric depth, but the depth model gives relative depth: its 3D "
                "positions are off by an unknown scale (use a metric depth model or a depth file)")
    return ""
