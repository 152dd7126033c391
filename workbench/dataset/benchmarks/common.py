"""What every benchmark loader shares: reading a source (a local folder or file, or a hub name),
checking columns, decoding images and COCO RLE masks, option lines, region labels, and turning a
benchmark item into a row the model reads (`model_row`).

A benchmark *item* is a plain dict, the same for every benchmark:

    id, benchmark, category (the benchmark's task / type / relation), group ({key: value}: the
    benchmark's own grouping, e.g. SPAR's level and view), images [PIL], question (each region a
    label followed by `<region>`), choices [option texts], answer_type (choice | number | text),
    answer (the letter; a number in metres; or text), official_answer (the gold as the benchmark
    states it: what the official rule compares with), regions [{label, kind, bbox_2d | point} in
    pixels of images[0]]

`model_row` scales it to the model's image size, draws the region marks in as the data engine
does (`render.draw_marks`) and fills the row contract's columns, so `prompts.to_messages`,
`model.generate` and the evaluation's prediction rows take it like a synthetic row.
"""

from __future__ import annotations

import ast
import base64
import binascii
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.dataset import freeform
from workbench.schema import REGION_TOKEN
from workbench.world import render

LETTERS = "ABCDEFGH"
REGION_LABELS = tuple(f"{color} box" for color in render.MARK_COLORS)
"""Labels given to a benchmark's regions, in order: the data engine's box marks."""
TABLE_SUFFIXES = (".parquet", ".json", ".jsonl", ".arrow")
INDEX = "__index__"
"""Key `load` gives each record: its position in the whole benchmark (ids stay put under a sample)."""


class BenchmarkError(ValueError):
    """A benchmark source or item that cannot be read; the message names the file, row and value."""


# ----------------------------------------------------------------------------- sources


def read_records(source: str | os.PathLike | None, hub: str, split: str, name: str) -> list[dict[str, Any]]:
    """The records of a benchmark as dicts, from `source`: a folder saved by `datasets`
    (`save_to_disk`, a Dataset or a DatasetDict holding `split`), a folder of parquet / json / jsonl
    files, or one such file. `source` None means the hub dataset `hub`, which needs the network; a
    hub name that cannot be reached gets an error saying how to pass a local copy."""
    if source is None or str(source) == hub:
        return _from_hub(hub, split, name)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{name}: no file or folder {str(path)!r}")
    if path.is_file():
        return _from_files([path], split, name)
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        from datasets import DatasetDict, load_from_disk

        data = load_from_disk(str(path))
        if isinstance(data, DatasetDict):
            if split not in data:
                raise BenchmarkError(f"{name}: {str(path)!r} has no split {split!r}; it has {sorted(data)}")
            data = data[split]
        return [dict(r) for r in data]
    files = sorted(p for p in path.rglob("*") if p.suffix in TABLE_SUFFIXES and p.is_file())
    if not files:
        raise BenchmarkError(
            f"{name}: {str(path)!r} holds no dataset (no dataset_dict.json and no {'/'.join(TABLE_SUFFIXES)} files)"
        )
    # A hub snapshot holds the same rows twice (parquet and json lines) and sometimes other data
    # beside the benchmark (EmbSpatial's SFT set): parquet first, then the files named for the split
    # or the benchmark.
    files = [p for p in files if p.suffix == ".parquet"] or files
    named = [p for p in files if split in p.stem.lower() or "bench" in p.stem.lower()]
    return _from_files(named or files, split, name)


def _from_files(files: Sequence[Path], split: str, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for f in files:
        if f.suffix == ".json":
            try:
                value = json.loads(f.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise BenchmarkError(f"{name}: {str(f)!r} is not valid JSON ({err})") from None
            if isinstance(value, Mapping):  # {id: record} or {"data": [...]}
                value = value.get("data", list(value.values()))
            if not isinstance(value, list) or not all(isinstance(r, Mapping) for r in value):
                raise BenchmarkError(f"{name}: {str(f)!r} must hold a JSON list of records")
            records += [dict(r) for r in value]
        else:
            from datasets import load_dataset

            kind = {".parquet": "parquet", ".jsonl": "json", ".arrow": "arrow"}[f.suffix]
            try:
                data = load_dataset(kind, data_files=str(f), split="train")
            except Exception as err:  # datasets raises many types for an unreadable file
                raise BenchmarkError(
                    f"{name}: cannot read {str(f)!r} as {kind} ({type(err).__name__}: {err})"
                ) from None
            records += [dict(r) for r in data]
    return records


def _from_hub(hub: str, split: str, name: str) -> list[dict[str, Any]]:
    from datasets import load_dataset

    try:
        data = load_dataset(hub, split=split)
    except Exception as err:  # offline, gated, renamed: all mean "give a local copy"
        raise BenchmarkError(
            f"{name}: cannot load the hub dataset {hub!r} split {split!r} ({type(err).__name__}). Without "
            f"network, download it elsewhere (e.g. `huggingface-cli download {hub} --repo-type dataset "
            f"--local-dir DIR`) and pass the folder or file with --data DIR"
        ) from None
    return [dict(r) for r in data]


def check_columns(records: Sequence[Mapping[str, Any]], required: Iterable[str], name: str) -> None:
    """BenchmarkError naming the first record and the columns it lacks."""
    if not records:
        raise BenchmarkError(f"{name}: the source holds no records")
    required = list(required)
    for k, record in enumerate(records):
        missing = [c for c in required if c not in record]
        if missing:
            raise BenchmarkError(f"{name}: record {k} lacks the column(s) {missing}; it has {sorted(record)}")


# ----------------------------------------------------------------------------- values


def decode_image(value: Any, what: str, root: Path | None = None) -> Image.Image:
    """An RGB PIL image from a PIL image, a `datasets` image dict ({bytes, path}), raw bytes, a
    base64 string, or a path (relative to `root`); BenchmarkError names `what`."""
    if isinstance(value, Mapping):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, Image.Image):
            return value.convert("RGB")
        if isinstance(value, (bytes, bytearray)):
            return _open(io.BytesIO(value))
        if isinstance(value, str):
            path = Path(value) if root is None else root / value
            if len(value) < 1024 and path.is_file():
                return _open(path)
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise BenchmarkError(
                    f"{what}: {value[:60]!r} is neither an image file nor base64 image data"
                ) from None
            return _open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError) as err:
        raise BenchmarkError(f"{what}: not an image PIL can read ({err})") from None
    raise BenchmarkError(f"{what}: unsupported image value of type {type(value).__name__}")


def _open(f: Any) -> Image.Image:
    with Image.open(f) as img:
        img.load()
        return img.convert("RGB")


def parse_literal(value: Any) -> Any:
    """A nested field that a parquet copy stored as text (JSON, or a Python literal with single
    quotes, as SpatialRGPT-Bench's parquet copy does), parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
    return value


_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[.)]\s+(.+?)\s*$")


def split_options(question: str) -> tuple[str, list[str]]:
    """(question without its option lines, option texts) for a question that lists its options as
    lines `A. text` / `(A) text` in order from A; ([question], []) when it has no such run."""
    lines = question.split("\n")
    options: list[str] = []
    keep: list[str] = []
    for line in lines:
        m = _OPTION_LINE.match(line)
        if m and m.group(1) == LETTERS[len(options)]:
            options.append(m.group(2))
        else:
            keep.append(line)
    if len(options) < 2:
        return question, []
    return "\n".join(keep).strip(), options


def letter_of(index: int, n: int, what: str) -> str:
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= int(index) < n:
        raise BenchmarkError(f"{what}: answer {index!r} is not one of the {n} options")
    return LETTERS[int(index)]


def decode_rle(rle: Mapping[str, Any], what: str) -> np.ndarray:
    """A COCO run-length-encoded mask ({size: [h, w], counts: list of ints | compressed string}) as
    a bool (h, w) array. Runs alternate 0 and 1, starting with 0, in column-major order."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise BenchmarkError(
            f"{what}: an RLE mask needs 'size' [h, w] and 'counts', got {str(rle)[:80]!r}"
        ) from None
    if isinstance(counts, (bytes, bytearray)):
        counts = counts.decode("ascii")
    runs = _rle_string_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(runs) != h * w:
        raise BenchmarkError(
            f"{what}: the RLE counts cover {sum(runs)} pixels, the mask size {h}x{w} has {h * w}"
        )
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for k, run in enumerate(runs):
        if k % 2:
            flat[pos : pos + run] = True
        pos += run
    return flat.reshape(w, h).T


def _rle_string_counts(text: str) -> list[int]:
    """The run lengths of COCO's compressed RLE string: 5-bit groups offset by 48, bit 0x20 says
    another group follows, 0x10 in the last group is the sign; from the third run on a value is
    the difference to the run two before."""
    runs: list[int] = []
    i = 0
    while i < len(text):
        value, shift, more = 0, 0, True
        while more:
            if i >= len(text):
                raise BenchmarkError(f"RLE counts string ends inside a value: {text[:40]!r}")
            c = ord(text[i]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def mask_box(mask: np.ndarray, what: str) -> list[int]:
    """[x1, y1, x2, y2] (x2, y2 exclusive) of the pixels a mask covers."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        raise BenchmarkError(f"{what}: the region mask is empty")
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def check_box(box: Any, size: tuple[int, int], what: str) -> list[float]:
    """A pixel box [x1, y1, x2, y2] inside an image of `size` (W, H), clipped by at most one pixel."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise BenchmarkError(f"{what}: a box must be 4 numbers [x1, y1, x2, y2], got {box!r}") from None
    w, h = size
    if not (-1 <= x1 < x2 <= w + 1 and -1 <= y1 < y2 <= h + 1):
        raise BenchmarkError(f"{what}: box {box!r} is empty or outside the {w}x{h} image")
    return [max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))]


def region_phrases(
    question: str, marker: str, labels: Sequence[str] = REGION_LABELS
) -> tuple[str, list[str]]:
    """`question` with its k-th `marker` (e.g. `<mask>`) replaced by `labels[k] <region>`, and those labels."""
    parts = question.split(marker)
    if len(parts) - 1 > len(labels):
        raise BenchmarkError(f"{len(parts) - 1} regions in one question; at most {len(labels)} can be marked")
    used = list(labels[: len(parts) - 1])
    text = parts[0] + "".join(f"{lab} {REGION_TOKEN}{piece}" for lab, piece in zip(used, parts[1:]))
    return text, used


# ----------------------------------------------------------------------------- model rows


def model_row(item: Mapping[str, Any], image_size: int | None) -> dict[str, Any]:
    """The row the model is asked (the data contract's columns): images scaled so their longer side
    is `image_size` (None keeps them), the regions scaled with the first image and their marks drawn
    in, path `dtr` when there are regions, else `lor` (the paper's rule)."""
    if not item["images"]:
        raise BenchmarkError(f"{item['id']}: no image")
    scaled = [freeform.scale_image(img.convert("RGB"), image_size) for img in item["images"]]
    images, scale = [img for img, _ in scaled], scaled[0][1]
    regions = [dict(r) for r in item.get("regions") or []]
    if regions:
        if len(images) > 1:
            raise BenchmarkError(f"{item['id']}: regions on a multi-image item are not supported")
        freeform.place_regions(regions, scale, *images[0].size)
        images[0] = render.draw_marks(np.asarray(images[0]), regions)
    n_tokens = str(item["question"]).count(REGION_TOKEN)
    if n_tokens != len(regions):
        raise BenchmarkError(
            f"{item['id']}: the question has {n_tokens} {REGION_TOKEN} tokens and {len(regions)} regions"
        )
    return {
        "id": str(item["id"]),
        "scene_id": None,
        "split": item["benchmark"],
        "task": "region_qa" if regions else "general_qa",
        "category": str(item["category"]),
        "image": images[0],
        "images": images if len(images) > 1 else None,
        "question": str(item["question"]),
        "regions": [{**r, "object_index": -1} for r in regions],
        "choices": list(item.get("choices") or []),
        "answer_type": item["answer_type"],
        "answer": str(item["answer"]),
        "path": "dtr" if regions else "lor",
        "centers": "{}",
        "objects": [],
        "depth": None,
        "intrinsics": None,
        "benchmark": item["benchmark"],
        "group": dict(item.get("group") or {}),
        "official_answer": item["official_answer"],
    }


# ----------------------------------------------------------------------------- lengths in text

UNITS_M = {
    "mm": 0.001,
    "millimeter": 0.001,
    "millimeters": 0.001,
    "millimetre": 0.001,
    "millimetres": 0.001,
    "cm": 0.01,
    "centimeter": 0.01,
    "centimeters": 0.01,
    "centimetre": 0.01,
    "centimetres": 0.01,
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "in": 0.0254,
    "inch": 0.0254,
    "inches": 0.0254,
    '"': 0.0254,
    "ft": 0.3048,
    "foot": 0.3048,
    "feet": 0.3048,
    "'": 0.3048,
}
"""Metres per unit; inch, foot and centimetre as SpatialRGPT-Bench's judge prompt states them."""
_LENGTH = re.compile(
    r"(?<![\w.\[])(-?\d+(?:\.\d+)?|-?\.\d+)\s*("
    + "|".join(sorted(map(re.escape, UNITS_M), key=len, reverse=True))
    + r")?(?![a-z])",
    re.I,
)


def metres_in(text: str) -> float | None:
    """The first length stated in `text`, in metres: the first number with a unit, parts written in
    a row added ("5 feet 3 inches"); without any unit, the first number, taken as metres (numbers in
    brackets, "Region [0]", are names); None if there is no number.

    >>> [metres_in(s) for s in ("1.5 meters", "about 20 cm", "5 feet 3 inches", "0.72", "1 m and 2 m", "no idea")]
    [1.5, 0.2, 1.6002, 0.72, 1.0, None]
    """
    found = list(_LENGTH.finditer(text))
    with_unit = [k for k, m in enumerate(found) if m.group(2)]
    if not with_unit:
        return float(found[0].group(1)) if found else None
    start = with_unit[0]
    total, last_unit = 0.0, math.inf
    for k, m in enumerate(found[start:], start):
        unit = UNITS_M[m.group(2).lower()] if m.group(2) else None
        # a compound length goes down in units ("5 feet 3 inches"); "1 m and 2 m" is a range, not a sum
        if k > start and (unit is None or unit >= last_unit or text[found[k - 1].end() : m.start()].strip(" ,and")):
            break
        total += float(m.group(1)) * unit
        last_unit = unit
    return round(total, 6)
