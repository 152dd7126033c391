"""`workbench bench`: a model on a public spatial benchmark, scored by the benchmark's own rules and
by the workbench's metrics (issue #25).

    workbench bench --model DIR --benchmark cvbench --data PATH/TO/CV-Bench --out runs/bench/cvbench
    workbench bench --model Qwen/Qwen2.5-VL-3B-Instruct --benchmark embspatial --variant regions \\
                    --data embspatial_bench.json --limit 600 --out runs/bench/embspatial_regions
    workbench bench --rescore runs/bench/cvbench --out runs/bench/cvbench_again      # offline

How it works:
1. Items: `workbench.dataset.benchmarks.load` reads the benchmark (a local copy, or the hub with
   the network) into the row contract; `--limit` samples round-robin over its categories.
2. Rows: each item scaled to the model's image size with its regions' marks drawn in
   (`benchmarks.model_row`); the path follows the paper's rule (regions -> DTR, else LOR) unless
   `--paths` says otherwise. Prompts are the workbench's (`prompts.to_messages`): a model is asked
   the way it was trained.
3. Completions: `evaluate.completions`, greedy and batched, as `workbench eval` makes them.
4. Files, as `workbench eval` writes them, so the trace browser, the report and `workbench eval
   --rescore` read them: `predictions.jsonl` (each row with the benchmark's name, grouping, gold
   and `official_scores`), `metrics.json` (the workbench's strict metrics, split = benchmark), and
   `benchmark.json` (`official.summarize`: the benchmark's own tables, per scheme).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench import io
from workbench.dataset import benchmarks
from workbench.eval import evaluate, metrics, official
from workbench.settings import as_names

SETTINGS_FILE = evaluate.SETTINGS_FILE


@dataclass
class BenchSettings:
    """Settings of one benchmark evaluation (`workbench bench`)."""

    benchmark: str = "cvbench"
    """Which benchmark: spar | cvbench | sat | embspatial | spatialrgpt."""
    data: str = ""
    """Local copy: a `save_to_disk` folder, a folder of parquet / json files, or the file; "" = the hub."""
    variant: str = "plain"
    """plain, or regions: EmbSpatial's objects (and SPAR's `regions_file` boxes) as regions, on DTR."""
    regions_file: str = ""
    """SPAR-Bench's region prompt file (the paper's unpublished `sparbench_region_prompts.json`)."""
    image_root: str = ""
    """SpatialRGPT-Bench's image folder ("" = the folder of `data`)."""
    circular: bool = False
    """SAT: ask each question a second time with its options reversed."""
    seed: int = 42
    """SAT: seed of the option shuffle (the paper's script uses 42)."""
    limit: int = 0
    """Items to ask (0 = all), round-robin over the benchmark's categories."""
    paths: tuple[str, ...] = ("auto",)
    """lor / dtr force one path; auto = the paper's rule (regions -> dtr, else lor)."""
    batch_size: int = 16
    """Prompts per `generate` call."""
    max_new_tokens: int = 256
    """Generation budget per completion."""
    image_size: int = 0
    """Longer image side the model sees (0 = the model's: the built-in model's training size)."""
    device: str = ""
    """cpu, cuda, ... ("" = cuda when available)."""
    num_threads: int = 0
    """torch CPU threads while generating (0 = torch's default)."""

    def __post_init__(self):
        self.paths = as_names(self.paths)
        if self.benchmark not in benchmarks.NAMES:
            raise ValueError(f"unknown benchmark {self.benchmark!r}; choose from {benchmarks.NAMES}")
        if self.variant not in benchmarks.VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose from {benchmarks.VARIANTS}")
        for path in self.paths:
            if path not in metrics.PATH_ORDER:
                raise ValueError(f"unknown path {path!r}; choose from {metrics.PATH_ORDER}")
        for name in ("limit", "batch_size", "max_new_tokens", "image_size", "num_threads"):
            value, low = getattr(self, name), 1 if name in ("batch_size", "max_new_tokens") else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def run_benchmark(
    model: Any,
    settings: BenchSettings,
    out: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Ask `model` (a folder, a hub name, or (model, processor)) the benchmark's questions and score
    them; write the three files into `out` when given. Returns {"predictions", "metrics", "summary",
    "rows"} (rows: what the model was asked, images included, for `widgets.trace_browser`)."""
    from workbench import model as M

    if out is not None:
        evaluate.check_eval_dir(out, overwrite)
    items = benchmarks.load(
        settings.benchmark,
        settings.data or None,
        settings.limit,
        settings.variant,
        regions_file=settings.regions_file or None,
        image_root=settings.image_root or None,
        circular=settings.circular,
        seed=settings.seed,
    )
    t0 = time.time()
    loaded, processor = evaluate._load(model, settings)
    label = "model" if isinstance(model, tuple) else evaluate.model_label(model)
    size = settings.image_size or M.image_size_of(processor)
    rows = [benchmarks.model_row(item, size) for item in items]
    paths = [p for p in metrics.PATH_ORDER if p in settings.paths]
    texts = evaluate.completions(loaded, processor, rows, paths, settings, None, label, progress)
    predictions = evaluate._predictions(label, rows, paths, texts.get)
    scored = official.score_all(metrics.score_predictions(predictions))
    table = metrics.aggregate(scored)
    summary = official.summarize(scored)
    if out is not None:
        write(out, scored, table, summary)
        counts: dict[str, int] = {}
        for item in items:
            counts[item["category"]] = counts.get(item["category"], 0) + 1
        io.write_json(
            Path(out) / SETTINGS_FILE,
            {
                "settings": asdict(settings),
                "categories": counts,
                "models": {label: str(model) if not isinstance(model, tuple) else "in memory"},
                "seconds": {label: round(time.time() - t0, 2)},
                "rows": len(rows),
            },
        )
    return {"predictions": scored, "metrics": table, "summary": summary, "rows": rows}


def write(out: str | Path, scored: list[dict], table: list[dict], summary: list[dict]) -> None:
    metrics.write_results(out, scored, table)
    io.write_json(Path(out) / official.SUMMARY_FILE, summary)


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--model",
        default=None,
        help="model folder, a pretrained VLM name, or `shipped` (the checkpoint in the package)",
    )
    add("--benchmark", default=None, choices=benchmarks.NAMES, help="which benchmark")
    add(
        "--data",
        default="",
        help="local copy of the benchmark (folder or file); default: the hub (needs the network)",
    )
    add("--out", required=True, help="output folder for predictions.jsonl, metrics.json and benchmark.json")
    add("--overwrite", action="store_true", help="replace the evaluation already in --out")
    add(
        "--variant",
        default="plain",
        choices=benchmarks.VARIANTS,
        help="regions: EmbSpatial's objects (SPAR's --regions-file) as regions, on DTR",
    )
    add(
        "--regions-file",
        default="",
        help="SPAR-Bench: the region prompt file (JSON of id, question_region, bbox)",
    )
    add(
        "--image-root",
        default="",
        help="SpatialRGPT-Bench: the folder its image_info.file_path is relative to",
    )
    add("--circular", action="store_true", help="SAT: ask each question again with its options reversed")
    add("--limit", type=int, default=0, help="questions to ask, round-robin over categories (0 = all)")
    add("--paths", default="auto", help="comma-separated among lor,dtr,auto (auto: regions -> dtr, else lor)")
    add("--batch-size", type=int, default=16, help="prompts per generate call")
    add("--max-new-tokens", type=int, default=256, help="generation budget per completion")
    add("--image-size", type=int, default=0, help="longer image side the model sees (0 = the model's)")
    add("--device", default="", help="cpu, cuda, ... (default: cuda when available)")
    add(
        "--rescore",
        default=None,
        metavar="PREDICTIONS",
        help="re-score a predictions.jsonl (or its folder) offline",
    )
    add("--no-progress", action="store_true", help="no progress bars")


def cli(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.rescore:
        evaluate.check_eval_dir(out, args.overwrite)
        rows = metrics.read_predictions(args.rescore)
        if not any(r.get("benchmark") for r in rows):
            raise ValueError(f"{args.rescore}: no benchmark predictions (rows without a 'benchmark' field)")
        scored = official.score_all(metrics.score_predictions(rows))
        table, summary = metrics.aggregate(scored), official.summarize(scored)
        write(out, scored, table, summary)
    else:
        if not args.model or not args.benchmark:
            raise ValueError("give --model and --benchmark (or --rescore PREDICTIONS)")
        from workbench.model.shipped import SHIPPED

        settings = BenchSettings(
            benchmark=args.benchmark,
            data=args.data,
            variant=args.variant,
            regions_file=args.regions_file,
            image_root=args.image_root,
            circular=args.circular,
            limit=args.limit,
            paths=args.paths,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            image_size=args.image_size,
            device=args.device,
        )
        model = SHIPPED if args.model == "shipped" else args.model
        result = run_benchmark(model, settings, out, progress=not args.no_progress, overwrite=args.overwrite)
        scored, summary = result["predictions"], result["summary"]
    print(official.format_summary(summary))
    print(
        f"wrote {out / official.SUMMARY_FILE}, {out / metrics.METRICS_FILE} and {out / metrics.PREDICTIONS_FILE} "
        f"({len(scored)} predictions)"
    )
    return 0
