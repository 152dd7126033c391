"""The synthetic spatial dataset: a `datasets.DatasetDict` of rendered views and questions.

    workbench data --out DIR [--profile smoke|default|gpu] [--num-scenes N] [--seed S] [--workers W]

One scene gives one rendered view (or `views_per_scene`) and several rows (`records.scene_records`;
`schema.COLUMNS` when read, plus `records.MULTIVIEW_COLUMNS` in a multi-view build). Splits are made of whole scenes: `train`, `val`, `test` from the in-domain generator,
`test_ood` from the held-out one (shapes, colors, camera ranges, layouts). Each view is stored
once (`views/`) and the rows name it; `load_dataset_dir` joins them back on read (`views`).

Every scene draws its randomness from `SeedSequence([seed, scene_index])`, so the same seed
and settings give byte-identical folders with any number of workers. The scenes are built in
chunks, each written once into a staging folder (a killed build resumes after its last finished
chunk, to the same bytes); the folder is published through `io.atomic_dir` (a killed build
leaves nothing loadable) with a `data_card.json`. Taught in `notebooks/01_build_data.ipynb`.
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

from workbench import io, rundir, schema
from workbench.dataset import views
from workbench.dataset.records import MULTIVIEW_COLUMNS, scene_records, scene_rows, split_ranges  # noqa: F401 - scene_rows: public here too
from workbench.dataset.settings import DataSettings
from workbench.settings import PROFILES, add_set_argument, parse_set

DATA_CARD = "data_card.json"
FORMAT = "srreal-workbench-dataset-2"
"""Written into the data card. Format 2 stores each view once (`views/`); `load_dataset_dir` also
reads format 1 (image and depth in every row)."""


# ----------------------------------------------------------------------------- the dataset


STORED_COLUMNS = tuple(c for c in schema.COLUMNS if c not in views.JOINED)[:4] + ("view",) + tuple(
    c for c in schema.COLUMNS if c not in views.JOINED)[4:]
"""Columns of a stored row: the contract's, with `view` in place of image and depth."""
VIEWS_DIR = "views"
"""Sub-folder of a dataset folder holding the views (a DatasetDict with the same splits)."""
CHUNK_SCENES = 200
"""Scenes per chunk of a build: each chunk is written once, atomically, and a build that was
killed starts again after its last finished chunk. Part of the bytes' recipe (arrow record
batches follow the chunks), so fixed rather than a setting."""


def features(settings: DataSettings | None = None):
    """`datasets.Features` of stored rows (`STORED_COLUMNS`, then `MULTIVIEW_COLUMNS` when `settings`
    render several views of a scene)."""
    import datasets as hf

    f64, i32, s = hf.Value("float64"), hf.Value("int32"), hf.Value("string")
    spec = {
        "id": s,
        "scene_id": s,
        "split": s,
        "task": s,
        "view": i32,
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
    assert tuple(spec) == STORED_COLUMNS, "features must list STORED_COLUMNS in order"
    if settings is not None and settings.views_per_scene > 1:
        spec |= {"views": hf.List(i32), "view_poses": hf.List(hf.List(hf.List(f64))), "region_frames": hf.List(i32),
                 "frame_centers": s, "reference_frame": i32}
        assert tuple(spec)[len(STORED_COLUMNS):] == MULTIVIEW_COLUMNS
    return hf.Features(spec)


def view_features():
    """`datasets.Features` of stored views (`views.VIEW_COLUMNS`)."""
    import datasets as hf

    return hf.Features({"scene_id": hf.Value("string"), "image": hf.Value("binary"), "depth": hf.Value("binary")})


def _scene_job(job: tuple[DataSettings, str, int]) -> tuple[dict, list[dict]]:
    return scene_records(*job)


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


# ----------------------------------------------------------------------------- chunks


def chunks(settings: DataSettings) -> list[tuple[str, int, int]]:
    """(split, first scene, end) of every chunk of a build, in build order."""
    return [(split, a, min(a + CHUNK_SCENES, r.stop))
            for split, r in split_ranges(settings).items() for a in range(r.start, r.stop, CHUNK_SCENES)]


def staging_dir(out: str | os.PathLike) -> Path:
    """Where a build of `out` keeps its finished chunks until it publishes `out` (a hidden sibling;
    kept after a kill, so that the next build of the same settings resumes from it)."""
    out = Path(out)
    return out.with_name(f".{out.name}.building")


def _open_stage(stage: Path, settings: DataSettings, progress: bool) -> None:
    """Make `stage` ready for this build: resume a killed build of the same settings, start over
    from one of other settings, refuse one that a live process is writing."""
    recipe = {"format": FORMAT, "chunk_scenes": CHUNK_SCENES, "settings": asdict(settings)}
    plan = stage / "build.json"
    if stage.is_dir():
        owner = (stage / "owner").read_text().strip() if (stage / "owner").is_file() else ""
        if owner.isdigit() and int(owner) != os.getpid() and io.alive(int(owner)):
            raise ValueError(f"another build (process {owner}) is writing {stage}; wait for it or stop it")
        same = plan.is_file() and json.loads(plan.read_text()) == json.loads(json.dumps(recipe))
        if not same:
            shutil.rmtree(stage)
        elif progress:
            done = settings.num_scenes - sum(b - a for _, a, b in _unfinished(stage, settings))
            print(f"resuming the build of these settings: {done} of {settings.num_scenes} scenes already built")
    stage.mkdir(parents=True, exist_ok=True)
    for leftover in stage.glob("*.tmp-*"):  # a chunk a killed build was writing
        shutil.rmtree(leftover, ignore_errors=True)
    io.write_text(stage / "owner", f"{os.getpid()}\n")
    if not plan.is_file():
        io.write_json(plan, recipe)


def _unfinished(stage: Path, settings: DataSettings) -> list[tuple[str, int, int]]:
    """The chunks of a build that `stage` does not hold yet."""
    return [c for c in chunks(settings) if not (stage / _chunk_name(c)).is_dir()]


def _chunk_name(chunk: tuple[str, int, int]) -> str:
    split, a, b = chunk
    return f"{split}-{a:06d}-{b:06d}"


def _write_arrow(path: Path, rows: list[dict], feats) -> None:
    import datasets as hf
    import pyarrow as pa

    table = hf.Dataset.from_list(rows, features=feats).data.table
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _build_chunk(settings: DataSettings, stage: Path, chunk: tuple[str, int, int], pool, bar) -> None:
    """Render the scenes of `chunk` and write its rows and views as one folder, atomically."""
    split, a, b = chunk
    jobs = [(settings, split, i) for i in range(a, b)]
    results = pool.imap(_scene_job, jobs, chunksize=2) if pool is not None else map(_scene_job, jobs)
    records, rows = [], []
    for scene_views, scene in results:
        records.extend(scene_views)
        rows.extend(scene)
        bar.update(1)
    tmp = Path(tempfile.mkdtemp(dir=stage, prefix=f"{_chunk_name(chunk)}.tmp-"))
    _write_arrow(tmp / "rows.arrow", rows, features(settings))
    _write_arrow(tmp / "views.arrow", records, view_features())
    os.replace(tmp, stage / _chunk_name(chunk))


def _assemble(settings: DataSettings, stage: Path, out: Path) -> None:
    """Save the chunks of `stage` as one dataset folder at `out`: rows, views and data card."""
    import datasets as hf
    from datasets.table import MemoryMappedTable, concat_tables

    def concatenated(kind: str, feats):
        splits = {}
        for split in split_ranges(settings):
            tables = [MemoryMappedTable.from_file(str(stage / _chunk_name(c) / f"{kind}.arrow"))
                      for c in chunks(settings) if c[0] == split]
            splits[split] = hf.Dataset(concat_tables(tables), info=hf.DatasetInfo(features=feats),
                                       split=hf.NamedSplit(split), fingerprint=_fingerprint(settings, f"{split}/{kind}"))
        return hf.DatasetDict(splits)

    rows = concatenated("rows", features(settings))
    rows.save_to_disk(str(out))
    concatenated("views", view_features()).save_to_disk(str(out / VIEWS_DIR))
    storage = _storage(out, list(rows), sum(len(ds) for ds in rows.values()), settings.num_scenes)
    io.write_json(out / DATA_CARD, data_card(settings, rows, split_ranges(settings), storage))


def _storage(out: Path, splits: list[str], n_rows: int, n_views: int) -> dict:
    """Bytes on disk of the rows and of the views (one a scene), in all and per row / per view."""
    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    views_bytes = size(out / VIEWS_DIR)
    rows_bytes = sum(size(out / split) for split in splits)
    return {"rows_bytes": rows_bytes, "views_bytes": views_bytes,
            "bytes_per_row": round(rows_bytes / max(n_rows, 1)), "bytes_per_view": round(views_bytes / max(n_views, 1)),
            "depth": f"16-bit PNG of millimetres (at most {views.DEPTH_MAX_ERROR_M * 1000:g} mm off, "
                     f"up to {views.DEPTH_MAX_M:g} m)"}


def build_dataset(
    settings: DataSettings,
    out_dir: str | os.PathLike,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
):
    """Build every split, save it to `out_dir` atomically with a data card; return the DatasetDict.

    The scenes are built in chunks of `CHUNK_SCENES`, each written atomically to `staging_dir(
    out_dir)`; a build that was killed resumes after its last finished chunk and ends with the
    same bytes as one that ran through. workers: processes rendering scenes (1 = in this process,
    0 = all cores); the result is the same for any number. overwrite: replace an existing dataset
    folder (never another folder).
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
    stage = staging_dir(out)
    _open_stage(stage, settings, progress)
    todo = _unfinished(stage, settings)
    was_enabled = hf.is_progress_bar_enabled()
    hf.disable_progress_bars()
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 and todo else None
    bar = tqdm(total=settings.num_scenes, initial=settings.num_scenes - sum(b - a for _, a, b in todo),
               desc="scenes", unit="scene", disable=not progress)
    try:
        for chunk in todo:
            _build_chunk(settings, stage, chunk, pool, bar)
        with io.atomic_dir(out, overwrite=True) as tmp:
            _assemble(settings, stage, tmp)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        if was_enabled:
            hf.enable_progress_bars()
    shutil.rmtree(stage, ignore_errors=True)
    return load_dataset_dir(out)


def data_card(settings: DataSettings, dd, ranges: dict[str, range], storage: dict | None = None) -> dict:
    """Counts per split / task / category, bytes on disk, settings, seed and package versions."""
    counts = {}
    for split, ds in dd.items():
        stored = ds.with_format(None)
        tasks, cats = list(stored["task"]), list(stored["category"])
        counts[split] = {
            "scenes": len(ranges[split]),
            "rows": len(ds),
            "tasks": dict(sorted(Counter(tasks).items())),
            "categories": {
                t: dict(sorted(Counter(c for tt, c in zip(tasks, cats) if tt == t).items()))
                for t in sorted(set(tasks))
            },
            "answers": dict(
                sorted(Counter(a for a, t in zip(stored["answer"], stored["answer_type"]) if t == "choice").items())
            ),
        }
    card = {
        "format": FORMAT,
        "seed": settings.seed,
        "profile": settings.profile,
        "settings": asdict(settings),
        "columns": list(schema.COLUMNS) + (list(MULTIVIEW_COLUMNS) if settings.views_per_scene > 1 else []),
        "splits": counts,
        "versions": _versions(),
    }
    if storage is not None:
        card["storage"] = storage
    return card


def load_dataset_dir(path: str | os.PathLike):
    """Load a dataset folder written by `build_dataset`, checking that it carries every column.
    Each split reads as full rows (`views.join`: image and depth from the row's view)."""
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
        stored_views = hf.load_from_disk(str(p / VIEWS_DIR)) if (p / VIEWS_DIR).is_dir() else None
    except Exception as err:  # json, arrow and datasets errors of a damaged folder
        broken = _first_unreadable_file(p)
        where = f"{broken} is damaged" if broken else f"it cannot be read ({type(err).__name__}: {err})"
        raise ValueError(f"dataset folder {str(p)!r}: {where}; rebuild it with `workbench data --out {p} --overwrite`"
                         ) from None
    if not isinstance(dd, hf.DatasetDict):
        raise ValueError(f"{p} holds a single Dataset, expected a DatasetDict with splits {schema.SPLITS}")
    if stored_views is not None:  # rows name their views (format 2); format 1 stores them in the rows
        missing = [s for s in dd if s not in stored_views]
        if missing:
            raise ValueError(f"dataset folder {str(p)!r}: {VIEWS_DIR}/ lacks the splits {missing}; rebuild it "
                             f"with `workbench data --out {p} --overwrite`")
        dd = hf.DatasetDict({split: views.join(ds, stored_views[split]) for split, ds in dd.items()})
    for split, ds in dd.items():
        missing = [c for c in schema.COLUMNS if c not in views.column_names(ds)]
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
    parser.add_argument("--views-per-scene", type=int, default=None,
                        help="views rendered of each scene, 1-4 (default 1); more give multi-view questions")
    parser.add_argument("--multiview-questions", type=int, default=None,
                        help="questions per scene across its views (needs --views-per-scene >= 2; default 0)")
    parser.add_argument("--workers", type=int, default=1, help="rendering processes; 0 = all cores")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_set_argument(parser, DataSettings)


def cli(args: argparse.Namespace) -> int:
    overrides = parse_set(DataSettings, args.set)
    overrides |= {
        k: getattr(args, k)
        for k in ("num_scenes", "seed", "image_size", "questions_per_scene", "trace_style", "categories",
                  "general_fraction", "blend_per_scene", "views_per_scene", "multiview_questions")
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
