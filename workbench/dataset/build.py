"""The synthetic spatial dataset: a `datasets.DatasetDict` of rendered views and questions.

    workbench data --out DIR [--profile smoke|default|gpu] [--num-scenes N] [--seed S] [--workers W]

One scene gives one rendered view and several rows (`schema.COLUMNS`): region questions (DTR
path), general questions (LOR path) and, in `train` only, cold-start blend rows (`ground_3d`:
region -> 3D center, `ground_2d`: region -> 2D box, `caption`: counting, colors, what is
where). Splits are made of whole scenes: `train`, `val`, `test` from the in-domain generator,
`test_ood` from the held-out one (shapes, colors, camera ranges, layouts).

Every scene draws its randomness from `SeedSequence([seed, scene_index])`, so the same seed
and settings give byte-identical folders with any number of workers. The folder is written
through `io.atomic_dir` (a killed build leaves nothing loadable) with a `data_card.json`.
Taught in `notebooks/01_build_data.ipynb`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from workbench import io, rundir, schema
from workbench.dataset.settings import DataSettings
from workbench.settings import PROFILES, add_set_argument, parse_set

DATA_CARD = "data_card.json"
FORMAT = "srreal-workbench-dataset-1"
"""Written into the data card; `load_dataset_dir` checks it."""


def split_ranges(settings: DataSettings) -> dict[str, range]:
    """Scene indices of each split: train first, then val, test, test_ood (at least 1 each)."""
    n = settings.num_scenes
    sizes = {
        s: max(1, round(n * f))
        for s, f in (
            ("val", settings.val_fraction),
            ("test", settings.test_fraction),
            ("test_ood", settings.ood_fraction),
        )
    }
    n_train = n - sum(sizes.values())
    if n_train < 1:
        raise ValueError(f"num_scenes={n} leaves no training scene with these split fractions")
    out, start = {}, 0
    for split, size in (("train", n_train), *sizes.items()):
        out[split] = range(start, start + size)
        start += size
    return out


# ----------------------------------------------------------------------------- one scene -> rows


def _geometry_round(x: float, digits: int) -> float:
    v = round(float(x), digits)
    return 0.0 if v == 0 else v  # no -0.0: bytes must not depend on the sign of zero


def scene_rows(settings: DataSettings, split: str, index: int) -> list[dict]:
    """All rows of scene `index` in `split` (image as PNG bytes, depth as float32 (H, W))."""
    from workbench.tasks import questions, traces
    from workbench.world import render, scenes
    seq = np.random.SeedSequence([settings.seed, index])
    scene_rng, question_rng, text_rng = (np.random.default_rng(s) for s in seq.spawn(3))
    domain = "ood" if split == "test_ood" else "in"
    for _ in range(8):  # a view where fewer than 2 objects are clearly seen is re-drawn
        scene = scenes.sample_scene(
            scene_rng,
            domain,
            settings.image_size,
            settings.min_objects,
            settings.max_objects,
            settings.stack_probability,
            settings.walls_probability,
        )
        view = render.render(scene, settings.min_object_area, settings.min_visible_fraction)
        if view.usable.sum() >= 2:
            break

    # Stored geometry (rounded once); every label below is computed from these stored values.
    c2w = [[_geometry_round(v, 6) for v in r] for r in scene.camera_to_world.tolist()]
    intr = [_geometry_round(v, 4) for v in scene.intrinsics]
    centers = scenes.camera_from_world(np.array([o.position for o in scene.objects]), scene.camera_to_world)
    objects, scene_of_row, row_of_scene = [], [], {}
    for i, obj in enumerate(scene.objects):
        center = [_geometry_round(v, 4) for v in centers[i]]
        if not (view.usable[i] and _center_checks(center, intr, view.bbox_2d[i], view.depth)):
            continue
        row_of_scene[i] = len(objects)
        scene_of_row.append(i)
        objects.append(
            {
                "name": obj.name,
                "category": obj.category,
                "color": obj.color,
                "center": center,
                "yaw": _geometry_round(obj.yaw, 4),
                "size": [float(v) for v in obj.size],
                "bbox_2d": [int(v) for v in view.bbox_2d[i]],
            }
        )
    scene_objects = [
        {
            "name": o.name,
            "color": o.color,
            "visible": bool(view.visible_px[i] > 0),
            "row_index": row_of_scene.get(i, -1),
        }
        for i, o in enumerate(scene.objects)
    ]
    geometry = {"objects": objects, "camera_to_world": c2w, "intrinsics": intr, "width": settings.image_size}
    n_general = settings.general_questions
    items = questions.generate(
        question_rng,
        geometry,
        scene_objects,
        scenes.domain_vocabulary(domain),
        settings.questions_per_scene - n_general,
        n_general,
        list(render.MARK_COLORS),
        settings.point_fraction,
        categories=settings.categories or None,
    )
    if split == "train":
        items += _blend_items(
            question_rng, settings.blend_per_scene, geometry, scene, scene_of_row, scene_objects
        )

    depth = view.depth
    plain_png = None
    rows = []
    for k, item in enumerate(items):
        regions = [
            render.region_for(view, scene_of_row[r["object_index"]], r["label"]) for r in item["regions"]
        ]
        if regions:
            png = render.png_bytes(render.draw_marks(view.rgb, regions))
        else:
            plain_png = plain_png or render.png_bytes(render.draw_marks(view.rgb, []))
            png = plain_png
        row = {
            "id": f"{split}-{index:06d}-{k:02d}",
            "scene_id": f"scene-{index:06d}",
            "split": split,
            "task": item["task"],
            "image": {"bytes": png, "path": None},
            "depth": depth,
            "intrinsics": intr,
            "camera_to_world": c2w,
            "objects": objects,
            "regions": [
                {
                    "label": r["label"],
                    "kind": r["kind"],
                    "object_index": int(q["object_index"]),
                    "bbox_2d": [int(v) for v in r["bbox_2d"]],
                }
                for r, q in zip(regions, item["regions"])
            ],
            "question": item["question"],
            "category": item["category"],
            "answer_type": item["answer_type"],
            "answer": item["answer"],
            "choices": list(item["choices"]),
            "path": item["path"],
            "centers": json.dumps(item["centers"]),
            "lor_target": item.get("target", ""),
            "dtr_target": item.get("target", ""),
        }
        if item["task"] in schema.QA_TASKS:
            row["lor_target"] = traces.lor_target(row, text_rng, settings.trace_style)
            row["dtr_target"] = traces.dtr_target(row, text_rng, settings.trace_style)
        rows.append(row)
    return rows


def _center_checks(center, intr, bbox, depth) -> bool:
    """The stored (rounded) center projects inside the visible box, behind the seen surface."""
    fx, fy, cx, cy = intr
    u, v = fx * center[0] / center[2] + cx, fy * center[1] / center[2] + cy
    x1, y1, x2, y2 = (int(b) for b in bbox)
    if not (x1 <= u <= x2 and y1 <= v <= y2):
        return False
    h, w = depth.shape
    d = depth[min(int(v), h - 1), min(int(u), w - 1)]
    return bool(0 < d < center[2])


GROUND_3D_TEMPLATES = (
    "Where is the object in the {label} <region>?",
    "Give the 3D center of the object in the {label} <region>.",
    "Locate the object in the {label} <region> in 3D.",
)
GROUND_2D_TEMPLATES = (
    "Give the 2D box of the object in the {label} <region>.",
    "Where in the image is the object in the {label} <region>?",
    "Outline the object in the {label} <region> with a 2D box.",
)


def _blend_items(rng, n: int, geometry, scene, scene_of_row, scene_objects) -> list[dict]:
    """Cold-start blend rows for one train scene: grounding (3D, 2D) and captions."""
    from workbench.tasks import traces
    from workbench.world import render
    objs = geometry["objects"]
    if not objs:
        return []
    kinds = ("ground_3d", "ground_2d", "caption")
    start = int(rng.integers(len(kinds)))
    out = []
    for j in range(n):
        task = kinds[(start + j) % len(kinds)]
        if task == "caption":
            question, target = _caption(rng, geometry, scene, scene_of_row, scene_objects)
            out.append(
                {
                    "task": task,
                    "category": task,
                    "question": question,
                    "answer_type": "text",
                    "answer": target,
                    "choices": [],
                    "path": "lor",
                    "regions": [],
                    "centers": {},
                    "target": target,
                }
            )
            continue
        i = int(rng.integers(len(objs)))
        color = list(render.MARK_COLORS)[int(rng.integers(len(render.MARK_COLORS)))]
        label = f"{color} {'point' if rng.random() < 0.5 else 'box'}"
        if task == "ground_3d":
            question = GROUND_3D_TEMPLATES[int(rng.integers(len(GROUND_3D_TEMPLATES)))]
            target = traces.box3d(objs[i]["center"], objs[i]["name"], label)
        else:
            question = GROUND_2D_TEMPLATES[int(rng.integers(len(GROUND_2D_TEMPLATES)))]
            target = traces.box2d(objs[i]["bbox_2d"], objs[i]["name"], label)
        out.append(
            {
                "task": task,
                "category": task,
                "question": question.format(label=label),
                "answer_type": "text",
                "answer": target,
                "choices": [],
                "path": "dtr",
                "regions": [{"label": label, "kind": label.split()[1], "object_index": i}],
                "centers": {label: list(objs[i]["center"])},
                "target": target,
            }
        )
    return out


def _caption(rng, geometry, scene, scene_of_row, scene_objects) -> tuple[str, str]:
    """A general question about the whole view and its plain-text answer."""
    from workbench.tasks import traces
    objs = geometry["objects"]
    all_clear = all(o["row_index"] >= 0 for o in scene_objects if o["visible"])
    descs = Counter(f"{o['color']} {o['name']}" for o in scene_objects if o["visible"])
    names = Counter(o["name"] for o in scene_objects if o["visible"])
    options = ["describe"]
    if all_clear:
        options.append("count")
    unique_names = [o for o in objs if names[o["name"]] == 1]
    if unique_names:
        options.append("color")
    stacked = []
    for r, o in enumerate(objs):
        sup = scene.objects[scene_of_row[r]].support
        if sup >= 0 and scene_objects[sup]["row_index"] >= 0:
            base = objs[scene_objects[sup]["row_index"]]
            if descs[f"{base['color']} {base['name']}"] == 1:
                stacked.append((o, base))
    if stacked:
        options.append("on_top")
    kind = options[int(rng.integers(len(options)))]
    if kind == "count":
        n = len(objs)
        return (
            "How many objects are there?",
            f"There {'is' if n == 1 else 'are'} {n} object{'' if n == 1 else 's'}.",
        )
    if kind == "color":
        o = unique_names[int(rng.integers(len(unique_names)))]
        return f"What color is the {o['name']}?", f"The {o['name']} is {o['color']}."
    if kind == "on_top":
        o, base = stacked[int(rng.integers(len(stacked)))]
        return f"What is on top of the {base['color']} {base['name']}?", f"A {o['color']} {o['name']}."
    order = sorted(range(len(objs)), key=lambda r: objs[r]["center"][2])[:5]  # nearest first
    parts = [
        f"a {objs[r]['color']} {objs[r]['name']} {traces.where(objs[r], geometry['intrinsics'])}"
        for r in order
    ]
    question = ("Describe the scene.", "What do you see?", "List the objects you can see.")[
        int(rng.integers(3))
    ]
    return question, "I see " + ", ".join(parts) + "."


# ----------------------------------------------------------------------------- the dataset


def features(image_size: int):
    """`datasets.Features` of a dataset whose images are image_size x image_size."""
    import datasets as hf

    f64, i32, s = hf.Value("float64"), hf.Value("int32"), hf.Value("string")
    spec = {
        "id": s,
        "scene_id": s,
        "split": s,
        "task": s,
        "image": hf.Image(),
        "depth": hf.Array2D(shape=(image_size, image_size), dtype="float32"),
        "intrinsics": hf.List(f64),
        "camera_to_world": hf.List(hf.List(f64)),
        "objects": hf.List(
            {
                "name": s,
                "category": s,
                "color": s,
                "center": hf.List(f64),
                "yaw": f64,
                "size": hf.List(f64),
                "bbox_2d": hf.List(i32),
            }
        ),
        "regions": hf.List({"label": s, "kind": s, "object_index": i32, "bbox_2d": hf.List(i32)}),
        "question": s,
        "category": s,
        "answer_type": s,
        "answer": s,
        "choices": hf.List(s),
        "path": s,
        "centers": s,
        "lor_target": s,
        "dtr_target": s,
    }
    assert tuple(spec) == schema.COLUMNS, "features must list schema.COLUMNS in order"
    return hf.Features(spec)


_RUNTIME: dict[str, Any] = {}
"""The worker pool and progress bar of the build in progress. They live here, not in the
generator's arguments, because `datasets` hashes those arguments."""


def _scene_job(job: tuple[DataSettings, str, int]) -> list[dict]:
    return scene_rows(*job)


def _generate(settings_json: str, split: str, start: int, stop: int):
    settings = DataSettings(**json.loads(settings_json))
    jobs = [(settings, split, i) for i in range(start, stop)]
    pool, bar = _RUNTIME.get("pool"), _RUNTIME.get("bar")
    results = pool.imap(_scene_job, jobs, chunksize=2) if pool is not None else map(_scene_job, jobs)
    for rows in results:
        yield from rows
        if bar is not None:
            bar.update(1)


def _fingerprint(settings: DataSettings, split: str) -> str:
    text = json.dumps({"settings": asdict(settings), "split": split, "format": FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "open3d", "datasets", "pyarrow", "pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """True when `path` holds a dataset this module wrote (dataset_dict.json + data card)."""
    p = Path(path)
    return (p / "dataset_dict.json").is_file() and (p / DATA_CARD).is_file()


def build_dataset(
    settings: DataSettings,
    out_dir: str | os.PathLike,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
):
    """Build every split, save it to `out_dir` atomically with a data card; return the DatasetDict.

    workers: processes rendering scenes (1 = in this process, 0 = all cores); the result is the
    same for any number. overwrite: replace an existing dataset folder (never another folder).
    """
    import datasets as hf
    from tqdm.auto import tqdm

    settings.validate()
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer (0 = all cores), got {workers!r}")
    workers = workers or (os.cpu_count() or 1)
    out = Path(out_dir)
    rundir.check_output_dir(out, "workbench dataset", is_dataset_dir, overwrite=overwrite, noun="dataset",
                            clear=False)
    ranges = split_ranges(settings)
    feats = features(settings.image_size)
    settings_json = json.dumps(asdict(settings), sort_keys=True)
    was_enabled = hf.is_progress_bar_enabled()
    hf.disable_progress_bars()
    with io.atomic_dir(out, overwrite=True) as tmp:
        cache = Path(tempfile.mkdtemp(dir=out.parent, prefix=io.temp_prefix(out, "cache")))
        pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
        bar = tqdm(total=settings.num_scenes, desc="scenes", unit="scene", disable=not progress)
        _RUNTIME.update(pool=pool, bar=bar)
        try:
            splits = {}
            for split, r in ranges.items():
                splits[split] = hf.Dataset.from_generator(
                    _generate,
                    features=feats,
                    cache_dir=str(cache),
                    split=hf.NamedSplit(split),
                    gen_kwargs={
                        "settings_json": settings_json,
                        "split": split,
                        "start": r.start,
                        "stop": r.stop,
                    },
                    fingerprint=_fingerprint(settings, split),
                )
            dd = hf.DatasetDict(splits)
            dd.save_to_disk(str(tmp))
            io.write_json(tmp / DATA_CARD, data_card(settings, dd, ranges))
        finally:
            _RUNTIME.clear()
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
            shutil.rmtree(cache, ignore_errors=True)
            if was_enabled:
                hf.enable_progress_bars()
    return load_dataset_dir(out)


def data_card(settings: DataSettings, dd, ranges: dict[str, range]) -> dict:
    """Counts per split / task / category, settings, seed and package versions."""
    counts = {}
    for split, ds in dd.items():
        tasks, cats = ds["task"], ds["category"]
        counts[split] = {
            "scenes": len(ranges[split]),
            "rows": len(ds),
            "tasks": dict(sorted(Counter(tasks).items())),
            "categories": {
                t: dict(sorted(Counter(c for tt, c in zip(tasks, cats) if tt == t).items()))
                for t in sorted(set(tasks))
            },
            "answers": dict(
                sorted(Counter(a for a, t in zip(ds["answer"], ds["answer_type"]) if t == "choice").items())
            ),
        }
    return {
        "format": FORMAT,
        "seed": settings.seed,
        "profile": settings.profile,
        "settings": asdict(settings),
        "columns": list(schema.COLUMNS),
        "splits": counts,
        "versions": _versions(),
    }


def load_dataset_dir(path: str | os.PathLike):
    """Load a dataset folder written by `build_dataset`, checking that it carries every column."""
    import datasets as hf

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no dataset folder at {p}")
    if not (p / "dataset_dict.json").is_file():
        raise ValueError(
            f"{p} is not a dataset folder (no dataset_dict.json); build one with `workbench data --out {p}`"
        )
    try:
        dd = hf.load_from_disk(str(p))
    except Exception as err:  # json, arrow and datasets errors of a damaged folder
        broken = _first_unreadable_file(p)
        where = f"{broken} is damaged" if broken else f"it cannot be read ({type(err).__name__}: {err})"
        raise ValueError(f"dataset folder {str(p)!r}: {where}; rebuild it with `workbench data --out {p} --overwrite`"
                         ) from None
    if not isinstance(dd, hf.DatasetDict):
        raise ValueError(f"{p} holds a single Dataset, expected a DatasetDict with splits {schema.SPLITS}")
    for split, ds in dd.items():
        missing = [c for c in schema.COLUMNS if c not in ds.column_names]
        if missing:
            raise ValueError(f"{p}: split {split!r} lacks columns {missing}")
    return dd


def _first_unreadable_file(folder: Path) -> str | None:
    """The first .json or .arrow file under `folder` that does not parse, relative to it; None."""
    import pyarrow as pa

    for path in sorted(folder.rglob("*")):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".arrow":
                with pa.memory_map(str(path)) as source:
                    pa.ipc.open_stream(source).read_all()
        except Exception:  # noqa: BLE001 - any failure to parse is what we are looking for
            return str(path.relative_to(folder))
    return None


def read_data_card(path: str | os.PathLike) -> dict:
    return json.loads((Path(path) / DATA_CARD).read_text())


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--profile", default="smoke", choices=PROFILES, help="preset of DataSettings")
    parser.add_argument(
        "--num-scenes", type=int, default=None, help="scenes over all splits (profile default)"
    )
    parser.add_argument("--seed", type=int, default=None, help="master seed (default 0)")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels (profile default)")
    parser.add_argument("--questions-per-scene", type=int, default=None, help="question rows per scene")
    parser.add_argument("--trace-style", default=None, choices=("numbers_first", "verdict_first"),
                        help="order of the reasoning in comparison targets (profile default)")
    parser.add_argument("--categories", default=None,
                        help="comma-separated question categories to ask, or `all` (profile default), e.g. left_right,front_behind")
    parser.add_argument("--general-fraction", type=float, default=None,
                        help="share of a scene's questions that are general, without regions (profile default)")
    parser.add_argument("--blend-per-scene", type=int, default=None,
                        help="grounding and caption rows per train scene (profile default)")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes; 0 = all cores")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_set_argument(parser, DataSettings)


def cli(args: argparse.Namespace) -> int:
    overrides = parse_set(DataSettings, args.set)
    overrides |= {
        k: getattr(args, k)
        for k in ("num_scenes", "seed", "image_size", "questions_per_scene", "trace_style", "categories",
                  "general_fraction", "blend_per_scene")
        if getattr(args, k) is not None
    }
    settings = DataSettings.from_profile(args.profile, **overrides)
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0 (0 = all cores), got {args.workers}")
    dd = build_dataset(
        settings, args.out, workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite
    )
    sizes = ", ".join(f"{k} {len(v)}" for k, v in dd.items())
    print(f"wrote {args.out}: {sizes} rows ({settings.num_scenes} scenes, seed {settings.seed})")
    return 0
