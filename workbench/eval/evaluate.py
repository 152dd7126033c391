"""Evaluation (SPEC section 7): batched greedy generation, baselines, run folders, `workbench eval`.

    workbench eval --model DIR [--model DIR2 ...] --data DIR --out DIR [--splits test,test_ood]
                   [--paths lor,dtr,auto] [--profile P] [--baselines chance,oracle,language_prior]
    workbench eval --rescore DIR/predictions.jsonl --out DIR2 [--center-reward exp]   # offline
    workbench eval --rescore BENCH_DIR --out DIR2 --scorer benchmark   # + each benchmark's official rules

How it works:
1. Rows. The QA rows (`schema.QA_TASKS`) of each chosen split; with `max_examples`, a
   round-robin over categories in dataset order, so a small budget still covers every category.
2. Completions. Greedy, batched with left padding, one `model.generate` per batch
   (`workbench.model.inference`); rows of one path are sorted by question length so a batch
   pads little, and images are decoded a batch at a time (`ImageReader`). `auto` asks each row on `dtr` if it has regions, else on `lor`; since greedy
   decoding is deterministic, an `auto` completion is the `lor` / `dtr` completion of the
   same row when that path is evaluated too (generated once, reported under both paths).
3. Prediction rows (`predictions.jsonl`, one per model x path x row): the completion plus the
   ground truth needed to score it (`baselines.truth_fields`), so re-scoring needs neither the
   model nor the dataset.
4. Metrics: `workbench.eval.metrics`, where each one is defined. `evaluate` computes its table with
   `metrics.rescore(predictions)`, the very function a reader re-scores the saved rows with. The
   reward variant and agreement tolerances are `EvalSettings` fields, for `workbench eval --rescore`.
5. Baselines are pseudo-models that produce completions like a model: `chance` and `oracle`
   (`workbench.eval.metrics`: no model needed), and `language_prior`: the last `--model` on the same
   prompts with a blank gray image (`ImageReader(blank=True)`), what the text alone gives.

Taught in `notebooks/05_evaluate.ipynb`; `notebooks/06_traces_3d.ipynb` calls `workbench.run.run_evaluation`
when its inputs are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench import io, rundir, schema
from workbench.dataset import views
from workbench.eval import baselines, metrics
from workbench.settings import PROFILES, add_set_argument, as_names, check_profile, from_preset, parse_set
from workbench.tasks import rewards

BASELINES = ("chance", "language_prior", "oracle")
SETTINGS_FILE = "eval_settings.json"
BLANK_GRAY = (127, 127, 127)
"""Color of the blank image the language-prior baseline sees."""


@dataclass
class EvalSettings:
    """Settings of one evaluation (`workbench eval`). Profiles are presets (`from_profile`)."""

    profile: str = ""
    """Preset these settings started from (smoke | default | gpu); "" when built without one."""
    splits: tuple[str, ...] = ("val", "test", "test_ood")
    """Dataset splits to evaluate."""
    paths: tuple[str, ...] = ("lor", "dtr", "auto")
    """Reasoning paths: lor / dtr force one for every question; auto = dtr when the question has regions."""
    max_examples: int = 200
    """QA rows per split (0 = all), taken round-robin over categories in dataset order."""
    batch_size: int = 32
    """Prompts per `generate` call (left padded)."""
    max_new_tokens: int = 256
    """Generation budget per completion (DTR targets of the built-in data are up to ~200 tokens)."""
    baselines: tuple[str, ...] = ()
    """Pseudo-models to add: chance, language_prior, oracle."""
    seed: int = 0
    """Seed of the chance baseline."""
    device: str = ""
    """Device for the models: "" = cuda when available, else cpu."""
    num_threads: int = 0
    """torch CPU threads while generating (0 = torch's default)."""
    center_reward: str = "step"
    """Re-scoring variant of the detect reward: `step` (SPEC) or `exp` (`rewards.RewardSettings`)."""
    center_scale: float = 0.3
    """Length scale in m of the `exp` center reward."""
    detect_denominator: str = "predicted"
    """Detect reward denominator: `predicted` (SPEC) or `max` (recall-aware)."""
    agreement_abs: float = metrics.AGREEMENT_ABS
    """Implied-answer agreement of numbers: |stated - implied| within this many meters ..."""
    agreement_rel: float = metrics.AGREEMENT_REL
    """... or within this share of the implied value (the larger tolerance applies)."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> EvalSettings:
        """The named preset with `overrides` applied (unknown names raise ValueError)."""
        presets: dict[str, dict[str, Any]] = {
            # Smoke data has 16 rows per split; 160 tokens is the 90th percentile of DTR targets in
            # built-in tokens, enough for a model that learned the format to reach its answer.
            # One thread: the smoke model is so small that per-op overhead dominates, and a second
            # OpenMP thread spin-waits (5x slower measured) when other processes share the cores.
            "smoke": dict(
                splits=("test", "test_ood"), max_examples=16, batch_size=32, max_new_tokens=160, num_threads=1
            ),
            "default": {},
            "gpu": dict(max_examples=0, batch_size=64, max_new_tokens=384),
        }
        return from_preset(cls, presets, name, overrides)

    def __post_init__(self):
        self.splits = as_names(self.splits)
        self.paths = as_names(self.paths)
        self.baselines = as_names(self.baselines)
        check_profile(self.profile)
        for split in self.splits:
            if split not in schema.SPLITS:
                raise ValueError(f"unknown split {split!r}; choose from {schema.SPLITS}")
        for path in self.paths:
            if path not in metrics.PATH_ORDER:
                raise ValueError(f"unknown path {path!r}; choose from {metrics.PATH_ORDER}")
        for name in self.baselines:
            if name not in BASELINES:
                raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
        if not self.splits or not self.paths:
            raise ValueError("need at least one split and one path")
        for name in ("max_examples", "batch_size", "max_new_tokens", "num_threads"):
            value, low = getattr(self, name), 0 if name in ("max_examples", "num_threads") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (self.agreement_abs >= 0 and self.agreement_rel >= 0):
            raise ValueError(
                f"agreement tolerances must be >= 0, got {self.agreement_abs!r}, {self.agreement_rel!r}"
            )
        self.reward_settings()  # validates the reward variant

    def reward_settings(self) -> rewards.RewardSettings:
        return rewards.RewardSettings(
            center_reward=self.center_reward,
            center_scale=self.center_scale,
            detect_denominator=self.detect_denominator,
        )


@dataclass
class EvalResult:
    """What `evaluate` returns (and writes to `out`)."""

    metrics: list[dict]
    """`metrics.json` rows."""
    predictions: list[dict]
    """`predictions.jsonl` rows (scored)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each model's (and baseline's) completions; filled at runtime."""


# ----------------------------------------------------------------------------- rows


def select_rows(ds, max_examples: int = 0) -> list[int]:
    """Indices of the QA rows of a split; with `max_examples`, round-robin over categories
    (each category's rows in dataset order) until that many are taken, then sorted."""
    tasks, categories = views.column(ds, "task"), views.column(ds, "category")
    by_cat: dict[str, list[int]] = {}
    for i, (task, cat) in enumerate(zip(tasks, categories)):
        if task in schema.QA_TASKS:
            by_cat.setdefault(cat, []).append(i)
    total = sum(len(v) for v in by_cat.values())
    if not max_examples or max_examples >= total:
        return sorted(i for v in by_cat.values() for i in v)
    picked: list[int] = []
    queues = [list(v) for _, v in sorted(by_cat.items())]
    while len(picked) < max_examples:
        for q in queues:
            if q and len(picked) < max_examples:
                picked.append(q.pop(0))
    return sorted(picked)


def load_rows(data: Any, split: str, max_examples: int = 0, images: bool = False) -> list[dict]:
    """The chosen QA rows of `split` as dicts, each with its position in the split as `row_index`.

    Without `images` the rows carry neither image nor depth (`ImageReader` decodes images a
    batch at a time, so a large split never sits decoded in memory); with it, the image too."""
    if split not in data:
        raise ValueError(f"the dataset has no split {split!r}; it has {sorted(data)}")
    ds = data[split]
    indices = select_rows(ds, max_examples)
    dropped = ("depth", "depths") if images else ("depth", "image", "depths", "images")
    ds = views.remove_columns(ds, dropped).select(indices)
    rows = []
    for i, row in zip(indices, ds):
        row["row_index"] = int(i)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- images


class ImageReader:
    """`reader(rows) -> images` of rows from `load_rows` (found by `split` and `row_index`),
    decoded one batch at a time, each carrying its row's depth (`model.depth.attach`: used by a
    model that embeds depth, ignored by any other). `blank=True` gives uniformly gray images of the
    same sizes without depth: no scene, no marks, no geometry, the language-prior baseline's input."""

    def __init__(self, data: Any, blank: bool = False):
        self.data, self.blank = data, blank
        self._columns: dict[str, Any] = {}

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list:
        return [image for image, _ in self.read(rows)]

    def read(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, list]]:
        """(image, frames) of each row: its image, and the images of every frame of a multi-view
        row, each with its own depth (blank: gray), [] for a row with one view."""
        from workbench.model import depth as depth_codec  # torch: only when images are read

        out: list = [None] * len(rows)
        by_split: dict[str, list[int]] = {}
        for k, row in enumerate(rows):
            by_split.setdefault(row["split"], []).append(k)
        for split, ks in by_split.items():
            if split not in self._columns:
                names = views.column_names(self.data[split])
                wanted = ("image", "images") if self.blank else ("image", "depth", "intrinsics", "images", "depths")
                chosen = views.select_columns(self.data[split], [c for c in wanted if c in names])
                self._columns[split] = views.numpy_depth(chosen)  # numpy: far cheaper than lists of floats
            batch = self._columns[split][[int(rows[k]["row_index"]) for k in ks]]
            for j, k in enumerate(ks):
                row = {c: batch[c][j] for c in batch}
                if self.blank:
                    out[k] = blank_image(row["image"]), [blank_image(im) for im in row.get("images") or ()]
                else:
                    out[k] = depth_codec.row_image(row), depth_codec.row_images(row)
        return out


def blank_image(image):
    """A uniformly gray RGB image of the size of `image`."""
    from PIL import Image

    return Image.new("RGB", image.size, BLANK_GRAY)


# ----------------------------------------------------------------------------- generation


def completions(
    model,
    processor,
    rows: Sequence[Mapping[str, Any]],
    paths: Sequence[str],
    settings: EvalSettings,
    images: ImageReader | None = None,
    desc: str = "",
    progress: bool = True,
) -> dict[tuple[int, str], str]:
    """{(index into rows, resolved path): completion} for every row on every path in `paths`,
    each distinct (row, resolved path) generated once, greedily, in batches of `batch_size`.
    `images` (an `ImageReader`) supplies the images of a batch, every frame's of a multi-view row
    too; None = the rows carry their own `image`."""
    from tqdm.auto import tqdm

    from workbench import model as M
    from workbench.tasks import prompts
    jobs: dict[str, dict[int, None]] = {}  # resolved path -> row indices (an ordered set)
    for path in paths:
        for i, row in enumerate(rows):
            jobs.setdefault(prompts.resolve_path(row, path), {})[i] = None
    out: dict[tuple[int, str], str] = {}
    total = sum(len(v) for v in jobs.values())
    with (
        _threads(settings.num_threads),
        tqdm(total=total, desc=desc or "generate", unit="ex", disable=not progress, leave=False) as bar,
    ):
        for resolved, indices in jobs.items():
            # Similar prompt lengths per batch: less padding to run through every decode step.
            indices = sorted(
                indices, key=lambda i: (len(str(rows[i]["question"])), len(rows[i].get("choices") or []))
            )
            for start in range(0, len(indices), settings.batch_size):
                chunk = indices[start : start + settings.batch_size]
                batch = [rows[i] for i in chunk]
                if images is not None:
                    batch = [{**row, "image": image, "images": frames}
                             for row, (image, frames) in zip(batch, images.read(batch))]
                texts = M.generate(
                    model,
                    processor,
                    batch,
                    resolved,
                    max_new_tokens=settings.max_new_tokens,
                    batch_size=len(chunk),
                )
                out.update({(i, resolved): t for i, t in zip(chunk, texts)})
                bar.update(len(chunk))
    return out


@contextlib.contextmanager
def _threads(n: int):
    """torch's CPU thread count set to `n` inside the block (unchanged for n = 0)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _predictions(label: str, rows: Sequence[Mapping[str, Any]], paths: Sequence[str], complete) -> list[dict]:
    """Prediction rows of one model: `complete((index into rows, resolved path)) -> completion`."""
    from workbench.tasks import prompts
    preds = []
    for path in paths:
        for i, row in enumerate(rows):
            resolved = prompts.resolve_path(row, path)
            preds.append(
                {
                    "model": label,
                    "path": path,
                    "resolved_path": resolved,
                    **baselines.truth_fields(row),
                    "completion": complete((i, resolved)),
                }
            )
    return preds


def model_label(spec: Any, taken: Iterable[str] = ()) -> str:
    """The `model` column of a checkpoint folder: its name (`sft`), or `parent/name` when the
    name is already taken."""
    p = Path(str(spec)).expanduser()
    name = p.name or str(spec)
    if name in set(taken) and p.parent.name:
        name = f"{p.parent.name}/{p.name}"
    return name


def _model_specs(models: Any) -> list[tuple[str, Any]]:
    """[(label, path or (model, processor))] from a path, a list of paths / `label=path` strings /
    (label, spec) pairs, or a {label: spec} mapping."""
    if isinstance(models, (str, Path)):
        models = [models]
    if isinstance(models, Mapping):
        return [(str(k), v) for k, v in models.items()]
    specs: list[tuple[str, Any]] = []
    for m in models:
        if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and not hasattr(m[0], "generate"):
            specs.append(m)
            continue
        text = str(m)
        label, sep, path = text.partition("=")
        if sep and label and "/" not in label:
            specs.append((label, path))
        else:
            specs.append((model_label(text, [s[0] for s in specs]), text))
    labels = [s[0] for s in specs]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"two models share the label(s) {dupes}; name them with LABEL=DIR")
    return specs


def _device(settings: EvalSettings) -> str:
    if settings.device:
        return settings.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate(
    models: Any,
    data: Any,
    out: str | Path | None = None,
    settings: EvalSettings | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> EvalResult:
    """Evaluate `models` (checkpoint folders, `LABEL=DIR` strings, or {label: folder or
    (model, processor)}) and the chosen baselines on `data` (a dataset folder or DatasetDict).

    Writes `metrics.json`, `predictions.jsonl` and `eval_settings.json` into `out` (atomically,
    each) when given. The metrics are `metrics.rescore(predictions)`. An `out` that already holds
    an evaluation is replaced only with `overwrite`; one holding anything else is refused (both
    checked before any model is loaded).
    """
    from workbench.dataset import build as data_mod
    if out is not None:
        check_eval_dir(out, overwrite)
    settings = settings or EvalSettings()
    specs = _model_specs(models) if models else []
    if not specs and not settings.baselines:
        raise ValueError("nothing to evaluate: give at least one model or one baseline")
    if "language_prior" in settings.baselines and not specs:
        raise ValueError("the language_prior baseline needs a model (it is that model with a blank image)")
    data_dir = None
    if isinstance(data, (str, Path)):
        data_dir = str(data)
        data = data_mod.load_dataset_dir(data)
    rows = [r for split in settings.splits for r in load_rows(data, split, settings.max_examples)]
    if not rows:
        raise ValueError(f"no question rows in splits {settings.splits}")
    paths = [p for p in metrics.PATH_ORDER if p in settings.paths]
    predictions: list[dict] = []
    seconds: dict[str, float] = {}
    loaded = None
    for k, (label, spec) in enumerate(specs):
        t0 = time.time()
        model, processor = _load(spec, settings)
        texts = completions(model, processor, rows, paths, settings, ImageReader(data), label, progress)
        predictions += _predictions(label, rows, paths, texts.get)
        seconds[label] = round(time.time() - t0, 2)
        if k == len(specs) - 1:
            loaded = (model, processor)
        else:
            del model
    for name in BASELINES:
        if name not in settings.baselines:
            continue
        t0 = time.time()
        if name == "chance":
            priors = baselines.number_priors(data, rows)
            texts = {
                (i, p): baselines.chance_completion(row, p, priors.get(row["category"], 1.0), settings.seed)
                for p in ("lor", "dtr")
                for i, row in enumerate(rows)
            }
        elif name == "oracle":
            texts = {
                (i, p): baselines.oracle_completion(row, p)
                for p in ("lor", "dtr")
                for i, row in enumerate(rows)
            }
        else:
            blank = ImageReader(data, blank=True)
            texts = completions(*loaded, rows, paths, settings, blank, name, progress)
        predictions += _predictions(name, rows, paths, texts.get)
        seconds[name] = round(time.time() - t0, 2)

    scored = metrics.score_predictions(predictions, settings)
    table = metrics.rescore(scored, settings)  # the very function a reader re-scores the saved rows with
    if out is not None:
        out = Path(out)
        metrics.write_results(out, scored, table)
        io.write_json(
            out / SETTINGS_FILE,
            {
                "settings": asdict(settings),
                "models": {
                    label: str(spec) if isinstance(spec, (str, Path)) else "in memory"
                    for label, spec in specs
                },
                "data": data_dir,
                "seconds": seconds,
                "rows": len(rows),
            },
        )
    return EvalResult(metrics=table, predictions=scored, seconds=seconds)


def check_eval_dir(out: str | Path, overwrite: bool = False) -> None:
    """Refuse an evaluation output folder that holds an evaluation (unless `overwrite`) or anything
    else (always); FileExistsError names the folder and the flag that helps."""
    def is_ours(folder: Path) -> bool:
        return any((folder / name).exists() for name in (metrics.METRICS_FILE, metrics.PREDICTIONS_FILE, SETTINGS_FILE))

    rundir.check_output_dir(out, "evaluation", is_ours, overwrite=overwrite, noun="evaluation", clear=False)


def _load(spec: Any, settings: EvalSettings):
    if isinstance(spec, tuple):
        return spec
    from workbench import model as M
    return M.load(spec, device=_device(settings))


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--model",
        action="append",
        default=[],
        metavar="DIR",
        help="checkpoint folder (repeat for several; LABEL=DIR names the model column)",
    )
    add("--data", default=None, help="dataset folder (`workbench data`); required unless --rescore")
    add("--out", required=True, help="output folder for metrics.json and predictions.jsonl")
    add("--overwrite", action="store_true", help="replace the evaluation already in --out")
    add("--profile", default="default", choices=PROFILES, help="preset of EvalSettings")
    add("--splits", default=None, help="comma-separated splits (profile default)")
    add("--paths", default=None, help="comma-separated paths among lor,dtr,auto (default all)")
    add("--baselines", default=None, help="comma-separated among chance,language_prior,oracle")
    add("--max-examples", type=int, default=None, help="QA rows per split, 0 = all (profile default)")
    add("--batch-size", type=int, default=None, help="prompts per generate call")
    add("--max-new-tokens", type=int, default=None, help="generation budget per completion")
    add("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    add(
        "--rescore",
        default=None,
        metavar="PREDICTIONS",
        help="re-score a predictions.jsonl (or its folder) offline instead: no model, no dataset",
    )
    add("--center-reward", default=None, choices=("step", "exp"), help="detect reward variant (default step)")
    add(
        "--detect-denominator",
        default=None,
        choices=("predicted", "max"),
        help="detect reward denominator (default predicted)",
    )
    add("--scorer", default="spec", choices=("spec", "benchmark"),
        help="with --rescore: `benchmark` also scores benchmark predictions (`workbench bench`) by each "
             "benchmark's official rules into benchmark.json")
    add("--no-progress", action="store_true", help="no progress bars")  # fmt: skip
    add_set_argument(parser, EvalSettings)


def cli(args: argparse.Namespace) -> int:
    keys = ("splits", "paths", "baselines", "max_examples", "batch_size", "max_new_tokens", "device",
            "center_reward", "detect_denominator")  # fmt: skip
    overrides = parse_set(EvalSettings, args.set) | {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    settings = EvalSettings.from_profile(args.profile, **overrides)
    out = Path(args.out)
    check_eval_dir(out, args.overwrite)
    if args.scorer == "benchmark" and not args.rescore:
        raise ValueError("--scorer benchmark re-scores saved predictions: give --rescore PREDICTIONS "
                         "(`workbench bench` scores a benchmark as it runs)")
    if args.rescore:
        scored = metrics.score_predictions(metrics.read_predictions(args.rescore), settings)
        table = metrics.rescore(scored, settings)
        if args.scorer == "benchmark":
            from workbench.eval import official

            scored = official.score_all(scored)
            summary = official.summarize(scored)
            if not summary:
                raise ValueError(f"{args.rescore}: no benchmark predictions to score (`workbench bench` writes them)")
            print(official.format_summary(summary))
        metrics.write_results(out, scored, table)
        if args.scorer == "benchmark":
            io.write_json(out / official.SUMMARY_FILE, summary)
        n = len(scored)
    else:
        if not args.data:
            raise ValueError(
                "--data DIR is required (or --rescore PREDICTIONS to re-score saved predictions)"
            )
        result = evaluate(args.model, args.data, out, settings, progress=not args.no_progress, overwrite=args.overwrite)
        table, n = result.metrics, len(result.predictions)
    print(metrics.format_table(table))
    print(
        f"wrote {out / metrics.METRICS_FILE} ({len(table)} rows) and {out / metrics.PREDICTIONS_FILE} ({n} predictions)"
    )
    return 0
