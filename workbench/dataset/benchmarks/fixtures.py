"""Small copies of each benchmark in its own schema and file format, written from a seed: what the
tests read (no download in tests or CI), and what notebook 05 runs `workbench bench` on in a
smoke run. Every field type a loader reads is there: SPAR's image lists and options inside the
question, CV-Bench's "(C)" answers, SAT's raw image bytes and answer texts, EmbSpatial's base64
JPEGs and [x, y, w, h] boxes, SpatialRGPT-Bench's image files, `<mask>` turns and COCO RLE masks.
The questions are real questions about the drawn picture (which of two squares is left, how far
apart they are in pixels / 100), so a model's answers are checkable, not noise.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from workbench import io as wio

SIZE = (96, 72)
COLORS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (30, 170, 60)}


def _scene(rng: random.Random) -> tuple[Image.Image, list[dict[str, Any]]]:
    """A gray picture with two or three colored squares; [{name, box [x1, y1, x2, y2]}]."""
    img = Image.new("RGB", SIZE, (150, 150, 150))
    draw = ImageDraw.Draw(img)
    objects = []
    names = rng.sample(sorted(COLORS), rng.choice((2, 3)))
    for k, name in enumerate(names):
        side = rng.randrange(10, 18)
        x = 4 + k * 30 + rng.randrange(0, 8)
        y = rng.randrange(2, SIZE[1] - side - 2)
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=COLORS[name])
        objects.append({"name": f"{name} square", "box": [x, y, x + side, y + side]})
    rng.shuffle(objects)
    return img, objects


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _left(objects: list[dict[str, Any]]) -> tuple[dict, dict, bool]:
    a, b = objects[0], objects[1]
    return a, b, a["box"][0] < b["box"][0]


def _gap(a: dict, b: dict) -> float:
    ca = np.array([(a["box"][0] + a["box"][2]) / 2, (a["box"][1] + a["box"][3]) / 2])
    cb = np.array([(b["box"][0] + b["box"][2]) / 2, (b["box"][1] + b["box"][3]) / 2])
    return round(float(np.linalg.norm(ca - cb)) / 100, 2)


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    """The uncompressed COCO RLE of a bool (h, w) mask (column-major runs, starting with 0)."""
    flat = mask.T.reshape(-1)
    counts, current, run = [], False, 0
    for v in flat:
        if bool(v) == current:
            run += 1
        else:
            counts.append(run)
            current, run = bool(v), 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def write_fixture(name: str, folder: str | Path, n: int = 4, seed: int = 0) -> Path:
    """Write about `n` questions per category of benchmark `name` into `folder` (created; must not
    exist) in the benchmark's format; returns what to pass to `benchmarks.load` as the source."""
    from datasets import Dataset, Features, Sequence, Value
    from datasets import Image as ImageFeature

    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"fixture folder {str(folder)!r} already exists")
    folder.mkdir(parents=True)
    rng = random.Random(f"{name}|{seed}")
    if name == "spar":
        rows: dict[str, list] = {
            k: [] for k in ("id", "img_type", "format_type", "task", "source", "image", "question", "answer")
        }
        tasks = [
            ("obj_spatial_relation_oo", "single_view", "select"),
            ("distance_prediction_oo", "single_view", "fill"),
            ("depth_prediction_oc_mv", "multi_view", "fill"),
            ("position_matching", "multi_view", "select"),
            ("view_change_infer", "multi_view", "fill"),
        ]
        for task, view, fmt in tasks:
            for _ in range(n):
                img, objs = _scene(rng)
                a, b, left = _left(objs)
                images = [img] if view == "single_view" else [img, _scene(rng)[0]]
                if fmt == "select":
                    q = f"Is the {a['name']} left or right of the {b['name']}?\nA. left\nB. right"
                    ans = "A" if left else "B"
                elif task == "view_change_infer":
                    q = "How should the camera move from the first view to the second?"
                    ans = f"move_right:{rng.randrange(1, 9) / 10},move_forward:{rng.randrange(1, 20) / 10},rotate_right:{rng.randrange(5, 60)}"
                else:
                    q = f"How far apart are the {a['name']} and the {b['name']}, in meters?"
                    ans = str(_gap(a, b))
                for key, value in zip(rows, (len(rows["id"]), view, fmt, task, "scannet", images, q, ans)):
                    rows[key].append(value)
        features = Features(
            {
                "id": Value("int64"),
                "img_type": Value("string"),
                "format_type": Value("string"),
                "task": Value("string"),
                "source": Value("string"),
                "image": Sequence(ImageFeature()),
                "question": Value("string"),
                "answer": Value("string"),
            }
        )
        (folder / "data").mkdir()
        Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / "data" / "test-00000-of-00001.parquet")
        )
        return folder
    if name == "cvbench":
        rows = {
            k: []
            for k in ("idx", "type", "task", "image", "question", "choices", "answer", "prompt", "source")
        }
        for task, kind, source in (
            ("Relation", "2D", "ADE20K"),
            ("Count", "2D", "COCO"),
            ("Depth", "3D", "Omni3D"),
        ):
            for _ in range(n):
                img, objs = _scene(rng)
                a, b, left = _left(objs)
                if task == "Count":
                    q, choices, right = (
                        "How many squares are in the image?",
                        ["1", "2", "3", "4"],
                        str(len(objs)),
                    )
                else:
                    q, choices, right = (
                        f"Which is further left, the {a['name']} or the {b['name']}?",
                        [a["name"], b["name"]],
                        (a if left else b)["name"],
                    )
                letter = "ABCD"[choices.index(right)]
                prompt = (
                    q
                    + " Select from the following choices.\n"
                    + "\n".join(f"({'ABCD'[i]}) {c}" for i, c in enumerate(choices))
                )
                for key, value in zip(
                    rows, (len(rows["idx"]), kind, task, img, q, choices, f"({letter})", prompt, source)
                ):
                    rows[key].append(value)
        Dataset.from_dict(
            rows,
            features=Features(
                {
                    "idx": Value("int64"),
                    "type": Value("string"),
                    "task": Value("string"),
                    "image": ImageFeature(),
                    "question": Value("string"),
                    "choices": Sequence(Value("string")),
                    "answer": Value("string"),
                    "prompt": Value("string"),
                    "source": Value("string"),
                }
            ),
        ).to_parquet(str(folder / "test.parquet"))
        return folder
    if name == "sat":
        rows = {k: [] for k in ("image_bytes", "question", "answers", "question_type", "correct_answer")}
        for qtype in ("ego_movement", "perspective"):
            for _ in range(n):
                img, objs = _scene(rng)
                a, b, left = _left(objs)
                images = [_png(img)] + ([_png(_scene(rng)[0])] if qtype == "ego_movement" else [])
                answers = ["left", "right"]
                for key, value in zip(
                    rows,
                    (
                        images,
                        f"Is the {a['name']} left or right of the {b['name']}?",
                        answers,
                        qtype,
                        "left" if left else "right",
                    ),
                ):
                    rows[key].append(value)
        Dataset.from_dict(
            rows,
            features=Features(
                {
                    "image_bytes": Sequence(Value("binary")),
                    "question": Value("string"),
                    "answers": Sequence(Value("string")),
                    "question_type": Value("string"),
                    "correct_answer": Value("string"),
                }
            ),
        ).to_parquet(str(folder / "SAT_test.parquet"))
        return folder / "SAT_test.parquet"
    if name == "embspatial":
        records = []
        for relation in ("left", "right", "close"):
            for _ in range(n):
                img, objs = _scene(rng)
                a, b, left = _left(objs)
                truth = a["name"] if (left == (relation == "left")) else b["name"]
                options = [o["name"] for o in objs] + ["yellow square"] * (4 - len(objs))
                options = list(dict.fromkeys(options)) + [
                    f"none {k}" for k in range(4 - len(dict.fromkeys(options)))
                ]
                records.append(
                    {
                        "question_id": f"ai2thor_{len(records)}",
                        "data_source": "ai2thor",
                        "scene_id": "FloorPlan1",
                        "question": f"Which object is further {'left' if relation != 'right' else 'right'}?"
                        if relation != "close"
                        else "Which object is closest to the camera?",
                        "relation": relation,
                        "image": base64.b64encode(_png(img, "JPEG")).decode("ascii"),
                        "answer_options": options,
                        "answer": options.index(truth),
                        "objects": [
                            {
                                "name": o["name"],
                                "bbox": [
                                    o["box"][0],
                                    o["box"][1],
                                    o["box"][2] - o["box"][0],
                                    o["box"][3] - o["box"][1],
                                ],
                            }
                            for o in objs[:2]
                        ],
                    }
                )
        wio.write_text(folder / "embspatial_bench.json", json.dumps(records))
        return folder / "embspatial_bench.json"
    if name == "spatialrgpt":
        (folder / "images").mkdir()
        records = []
        for category, kind in (("left_predicate", "qualitative"), ("distance_data", "quantitative")):
            for _ in range(n):
                img, objs = _scene(rng)
                a, b, left = _left(objs)
                path = f"images/{len(records)}.png"
                img.save(folder / path)
                masks = []
                for o in (a, b):
                    m = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
                    x1, y1, x2, y2 = o["box"]
                    m[y1:y2, x1:x2] = True
                    masks.append(rle_of(m))
                if kind == "qualitative":
                    q, gold = (
                        "Is <mask> to the left of <mask>?",
                        (
                            "Yes, Region [0] is to the left of Region [1]."
                            if left
                            else "No, Region [0] is to the right of Region [1]."
                        ),
                    )
                else:
                    gap = _gap(a, b)
                    q = "How far apart are <mask> and <mask>?"
                    gold = (
                        f"They are {round(gap * 100)} centimeters apart."
                        if gap < 1
                        else f"They are {gap} meters apart."
                    )
                records.append(
                    {
                        "id": f"rgpt_{len(records)}",
                        "image_info": {"file_path": path, "height": SIZE[1], "width": SIZE[0]},
                        "text_q": q.replace("<mask>", "Region [0]", 1).replace("<mask>", "Region [1]", 1),
                        "conversations": [
                            {"from": "human", "value": "<image>\n" + q},
                            {"from": "gpt", "value": gold},
                        ],
                        "rle": masks,
                        "bbox": [o["box"] for o in (a, b)],
                        "qa_info": {"type": kind, "category": category},
                    }
                )
        wio.write_text(folder / "SpatialRGPT-Bench_v1.json", json.dumps(records))
        return folder / "SpatialRGPT-Bench_v1.json"
    raise ValueError(f"no fixture for benchmark {name!r}")
