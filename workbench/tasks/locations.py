"""The location-token codec: a region's 2D box as four `<|loc_i|>` tokens after its `<region>` token
(and, in a prompt with several images, a fifth naming the region's image).

Boxes are quantized to `NUM_LOC_BINS` bins of the image width / height; `encode_region_tokens` writes
the tokens a prompt carries (`prompts.to_messages(region_coords=True)`), `decode_region_tokens`
reads them back from token ids (the built-in model's region features, `workbench.model.architecture`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workbench.schema import REGION_TOKEN

NUM_LOC_BINS = 32
"""Location bins per image side; `<|loc_0|>` .. `<|loc_31|>` (3.5 px at 112 px, 7 px at 224 px)."""
LOC_TOKENS = tuple(f"<|loc_{i}|>" for i in range(NUM_LOC_BINS))


# ---------------------------------------------------------------------------------------------
# Region tokens


def encode_region_tokens(box_xyxy: Sequence[float], image_wh: Sequence[int], frame: int | None = None) -> str:
    """`<region>` followed by the four location tokens of a pixel box [x1, y1, x2, y2], and, for a
    region of a prompt with several images, a fifth that names its image: `<|loc_{frame - 1}|>`
    (frames counted from 1; the built-in model pools the region from that image).

    >>> encode_region_tokens([0, 0, 56, 112], (112, 112))
    '<region><|loc_0|><|loc_0|><|loc_15|><|loc_31|>'
    >>> encode_region_tokens([0, 0, 56, 112], (112, 112), frame=2)
    '<region><|loc_0|><|loc_0|><|loc_15|><|loc_31|><|loc_1|>'
    """
    a, b, c, d = box_to_bins(box_xyxy, image_wh)
    tokens = REGION_TOKEN + "".join(LOC_TOKENS[i] for i in (a, b, c, d))
    if frame is None:
        return tokens
    if not 1 <= int(frame) <= NUM_LOC_BINS:
        raise ValueError(f"region frame {frame!r} must be 1..{NUM_LOC_BINS}")
    return tokens + LOC_TOKENS[int(frame) - 1]


def box_to_bins(box_xyxy: Sequence[float], image_wh: Sequence[int]) -> tuple[int, int, int, int]:
    """Location bins (a, b, c, d) of a pixel box; ValueError naming the box if it leaves the image."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        width, height = (float(v) for v in image_wh)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"region box must be [x1, y1, x2, y2] and image size (W, H); got {box_xyxy!r}, {image_wh!r}"
        ) from err
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or width <= 0 or height <= 0:
        raise ValueError(
            f"region box {list(box_xyxy)} or image size {list(image_wh)} is not finite and positive"
        )
    if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
        raise ValueError(
            f"region box {list(box_xyxy)} lies outside the {width:g}x{height:g} image "
            "(need 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H)"
        )
    n = NUM_LOC_BINS

    def low(v: float, size: float) -> int:
        return min(int(math.floor(v / size * n)), n - 1)

    def high(v: float, size: float, start: int) -> int:
        return min(max(int(math.ceil(v / size * n)) - 1, start), n - 1)

    a, b = low(x1, width), low(y1, height)
    return a, b, high(x2, width, a), high(y2, height, b)


def bins_to_box(bins: Sequence[int]) -> tuple[float, float, float, float]:
    """The box (x1, y1, x2, y2), as fractions of the image size, that location bins cover.

    >>> bins_to_box([0, 0, 15, 31])
    (0.0, 0.0, 0.5, 1.0)
    """
    a, b, c, d = (int(v) for v in bins)
    n = NUM_LOC_BINS
    return a / n, b / n, (c + 1) / n, (d + 1) / n


def decode_region_tokens(ids: Sequence[int], tokenizer) -> list[tuple[float, float, float, float] | None]:
    """Boxes (image fractions) of every `<region>` in `ids`, in order; None for a `<region>` that
    is not followed by four location tokens (e.g. a prompt built with region_coords=False)."""
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    region_id = tokenizer.convert_tokens_to_ids(REGION_TOKEN)
    loc_ids = {tokenizer.convert_tokens_to_ids(t): i for i, t in enumerate(LOC_TOKENS)}
    boxes: list[tuple[float, float, float, float] | None] = []
    for t, token in enumerate(ids):
        if token != region_id:
            continue
        following = ids[t + 1 : t + 5]
        bins = [loc_ids.get(i) for i in following]
        boxes.append(bins_to_box(bins) if len(bins) == 4 and None not in bins else None)
    return boxes
