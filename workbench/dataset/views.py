"""Rendered views stored once, joined to their question rows on read.

A dataset folder keeps one record per rendered view (`VIEW_COLUMNS`: the clean image as PNG, the
z-depth as a 16-bit PNG in millimetres) under `views/`, and question rows that name their view
(`view`, an index into the split's views). `join` puts a `ViewJoin` transform on a split, so a row
reads as the data contract says (SPEC section 5): `image` (a PIL image with the row's regions
drawn, pixel for pixel what `render.draw_marks` gives) and `depth` (float32 (H, W) metres, as a
numpy array). Everything else (TRL, the evaluation, the notebooks, the demo) sees plain rows.

The joined columns are not arrow columns of the split, so code that picks columns goes through
`column_names`, `select_columns` and `remove_columns` here, which work the same on a joined split
and on an in-memory split that carries `image` and `depth` itself (a test's, an upload's).

Depth is stored in millimetres: at most `DEPTH_MAX_ERROR_M` (half a millimetre) off below
`DEPTH_MAX_M`, and 0 (no depth there) stays 0.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench import schema

JOINED = ("image", "depth")
"""Row columns that come from the row's view (its first frame in a multi-view build)."""
MULTI_JOINED = ("images", "depths")
"""Row columns that come from every frame of a multi-view row (`views`): one image (its regions'
marks drawn) and one depth map per frame; empty for a row with one frame."""
ALL_JOINED = JOINED + MULTI_JOINED
NEEDS = {"image": ("view", "regions"), "depth": ("view",), "images": ("views", "regions", "region_frames"),
         "depths": ("views",)}
"""The stored row columns each joined column is made from (`region_frames` only where stored)."""
VIEW_COLUMNS = ("scene_id", "image", "depth")
"""Columns of a split's views: the clean image (PNG bytes) and depth (16-bit PNG, millimetres)."""
DEPTH_MAX_M = 65.535
"""The deepest z a view can store (uint16 millimetres)."""
DEPTH_MAX_ERROR_M = 0.000508
"""Largest difference between a stored depth and the rendered one: half a millimetre, plus float32
rounding at `DEPTH_MAX_M`."""
CACHE_VIEWS = 64
"""Decoded views a `ViewJoin` keeps (rows of one scene are read together)."""


# ----------------------------------------------------------------------------- depth as a PNG


def encode_depth(depth: np.ndarray) -> bytes:
    """A float32 (H, W) z-depth in metres as a 16-bit grayscale PNG of millimetres.

    >>> d = np.array([[0.0, 1.2344], [2.5, 65.0]], dtype=np.float32)
    >>> float(np.abs(decode_depth(encode_depth(d)) - d).max()) <= DEPTH_MAX_ERROR_M
    True
    """
    from PIL import Image

    arr = np.asarray(depth, dtype=np.float32)
    if arr.ndim != 2 or not np.isfinite(arr).all() or (arr < 0).any() or (arr > DEPTH_MAX_M).any():
        raise ValueError(f"a stored depth must be a finite (H, W) map of z in [0, {DEPTH_MAX_M}] m, got shape "
                         f"{arr.shape}, range [{float(np.nanmin(arr)):.3g}, {float(np.nanmax(arr)):.3g}]")
    buf = io.BytesIO()
    Image.fromarray(np.rint(arr * 1000.0).astype(np.uint16)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_depth(data: bytes) -> np.ndarray:
    """The float32 (H, W) z-depth in metres of `encode_depth`'s PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img, dtype=np.float32) / np.float32(1000.0)


# ----------------------------------------------------------------------------- the join


def _in_contract_order(names) -> list[str]:
    """`names` in the order of `schema.COLUMNS` (others last, as they came)."""
    order = {c: i for i, c in enumerate(schema.COLUMNS)}
    return sorted(names, key=lambda c: order.get(c, len(order)))


class ViewJoin:
    """`datasets` transform of a split's stored rows: adds `image` and / or `depth` (`joined`)
    from each row's view and shows the stored columns in `shown` (the rest were read only to make
    the joined ones). Picklable: the decoded-view cache is not carried along."""

    def __init__(self, views: Any, joined: Sequence[str], shown: Sequence[str]):
        unknown = [c for c in joined if c not in ALL_JOINED]
        if unknown:
            raise ValueError(f"columns {unknown} do not come from views (those are {list(ALL_JOINED)})")
        self.views, self.joined, self.shown = views, tuple(joined), tuple(shown)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict()}

    def view(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(clean RGB array, depth) of view `index`, decoded once while it stays in the cache."""
        from PIL import Image

        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        record = self.views[int(index)]
        with Image.open(io.BytesIO(record["image"])) as img:
            rgb = np.asarray(img.convert("RGB"))
        out = (rgb, decode_depth(record["depth"]))
        self._cache[index] = out
        if len(self._cache) > CACHE_VIEWS:
            self._cache.popitem(last=False)
        return out

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        shown = [c for c in batch if c in self.shown]
        # a split narrowed by `datasets`' own select_columns may no longer hold its views' index:
        # then it shows what it has
        made: dict[str, list] = {c: [] for c in self.joined
                                 if ("view" in batch if c in JOINED else "views" in batch)}
        for k in range(len(next(iter(batch.values()))) if made else 0):
            frames = batch["region_frames"][k] if "region_frames" in batch else None
            if "image" in made or "depth" in made:
                rgb, depth = self.view(batch["view"][k])
                if "image" in made:
                    made["image"].append(self._marked(rgb, batch["regions"][k], frames, 1))
                if "depth" in made:
                    made["depth"].append(depth)
            several = "views" in batch and len(batch["views"][k]) > 1
            if "images" in made:
                made["images"].append([self._marked(self.view(v)[0], batch["regions"][k], frames, f)
                                       for f, v in enumerate(batch["views"][k], start=1)] if several else [])
            if "depths" in made:
                made["depths"].append([self.view(v)[1] for v in batch["views"][k]] if several else [])
        columns = {**{c: batch[c] for c in shown}, **made}
        return {c: columns[c] for c in _in_contract_order(columns)}

    @staticmethod
    def _marked(rgb, regions, frames, frame: int):
        """`rgb` with the marks of the regions in `frame` (every region when `frames` is None)."""
        from workbench.world import render

        regions = list(regions or ())
        picked = regions if frames is None else [r for r, f in zip(regions, frames) if int(f) == frame]
        return render.draw_marks(rgb, [render.region_marks(r, rgb.shape[1]) for r in picked])


def joined_columns(row_or_columns: Any) -> tuple[str, ...]:
    """The joined columns of rows with these stored columns: `JOINED`, plus `MULTI_JOINED` where
    the rows name their frames (`views`, a multi-view build)."""
    return ALL_JOINED if "views" in row_or_columns else JOINED


def joined(ds: Any) -> ViewJoin | None:
    """The `ViewJoin` on split `ds`, or None for a split that stores its images itself."""
    transform = (getattr(ds, "format", None) or {}).get("format_kwargs", {}).get("transform")
    return transform if isinstance(transform, ViewJoin) else None


def join(rows: Any, views: Any) -> Any:
    """Split `rows` (stored rows with `view`) reading as full rows: image and depth joined."""
    shown = [c for c in rows.column_names if c not in ("view", "views")]
    return rows.with_transform(ViewJoin(views, joined_columns(rows.column_names), shown))


def column_names(ds: Any) -> list[str]:
    """The columns a row of `ds` shows (joined ones included), in the contract's order."""
    join_ = joined(ds)
    if join_ is None:
        return list(ds.column_names)
    shown = [c for c in ds.column_names if c in join_.shown]  # `datasets`' own remove_columns may narrow it
    made = [c for c in join_.joined if ("view" if c in JOINED else "views") in ds.column_names]
    return _in_contract_order([*shown, *made])


def select_columns(ds: Any, columns: Sequence[str]) -> Any:
    """`ds` showing only `columns` (no copy). Joined columns are made only when asked for, and the
    stored ones they need are read but not shown."""
    names = column_names(ds)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"the split has no columns {missing} (it has {names})")
    join_ = joined(ds)
    if join_ is None:
        return ds.select_columns(list(columns))
    wanted = tuple(c for c in columns if c in ALL_JOINED)
    stored = [c for c in columns if c not in ALL_JOINED]
    plain = ds.with_format(None)
    needed = stored + [c for j in wanted for c in NEEDS[j] if c not in stored and c in plain.column_names]
    plain = plain.select_columns(list(dict.fromkeys(needed)))
    return plain.with_transform(ViewJoin(join_.views, wanted, stored))


def remove_columns(ds: Any, columns: Sequence[str]) -> Any:
    """`ds` without `columns` (those it has; the others are ignored)."""
    names = column_names(ds)
    return select_columns(ds, [c for c in names if c not in columns])


def numpy_depth(ds: Any) -> Any:
    """`ds` whose `depth` reads as a numpy array (python lists of a depth map's floats are slow):
    already so for a joined split, the numpy format on that column otherwise."""
    if joined(ds) is not None or "depth" not in ds.column_names:
        return ds
    return ds.with_format("numpy", columns=["depth"], output_all_columns=True)


def column(ds: Any, name: str) -> list:
    """The values of stored column `name` of `ds` as a list, without making any image or depth
    (a `datasets` Column of a transformed split runs the transform on every row)."""
    if name in ALL_JOINED:
        raise ValueError(f"{name!r} is made from the views; read it through select_columns")
    return list((ds.with_format(None) if joined(ds) is not None else ds)[name])
