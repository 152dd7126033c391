"""The base stage: a fresh built-in model becomes the base model that cold-start SFT starts from,
and `workbench base`.

    workbench base --data DIR --out DIR [--profile P] [--resume] [--overwrite] [--max-steps N]

The paper starts from a pretrained spatial VLM: a model that already names what a region holds
and where it is in 3D (SR-3D style grounding data), before the cold start teaches the two
reasoning paths. The built-in model starts from random weights, so this stage plays that part
(SPEC section 9), in two steps:

1. The copy warm-up (`workbench.train.copying`): short text-only sequences in which every target
   token is a copy from the prompt (issue #3: without it a fresh model does not learn to copy an
   option's letter within the SFT budget).
2. Grounding, through TRL's `SFTTrainer` on the plain system prompt:
   - region -> 3D center: "Where is the object in the red box <region>?" ->
     `<3d_box center="x,y,z">cube (red box)</3d_box>`, the very box DTR's `<detect>` block writes;
     this is the data from which the 3D positional embedding's metric scale is learned (SPEC
     section 3);
   - region -> 2D box (`<2d_box bbox="x1,y1,x2,y2">...`), captions and general questions: the
     dataset's own `ground_3d`, `ground_2d`, `caption` and `general_qa` rows of `train`;
   - `derived_tasks`: every region a train question marks also gives one region -> 3D center
     (and region -> 2D box) example of its own, built on access from the question row's image,
     depth, region and object geometry. The `default` data holds no grounding rows (its budget
     is the questions); this way each of its ~15,000 marked regions is a grounding example
     without a byte more on disk.

At the end the stage grounds `eval_samples` val regions greedily and reports the median center
error next to what always answering the train mean center gives (`base_summary.json`): the
number that says whether the base model localizes before any reasoning is trained.

A pretrained VLM (`--model` of `workbench run`) is its own base: `workbench run` skips the stage
for it. Resume and overwrite follow the SFT stage (`checkpoint-*`, `resume="auto"`).
Taught in `notebooks/02_base.ipynb`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench import io, rundir, schema
from workbench.dataset import views
from workbench.settings import (
    PROFILES,
    add_set_argument,
    check_profile,
    check_steps,
    from_preset,
    known_names,
    parse_set,
)
from workbench.train.examples import (
    FRAME_GROUNDING,
    GROUNDING_TASKS,
    grounding_images,
    grounding_index,
    grounding_row,
    single_view,
)
from workbench.train.sft import COPY_WARMUP_STEPS, SFTSettings

SUMMARY = "base_summary.json"
"""Written last into the output folder: its presence marks a finished run."""
SETTINGS_FILE = "base_settings.json"
"""Written first: the settings and data of the run (what `resume="auto"` compares)."""
BASE_MARKS = (SUMMARY, SETTINGS_FILE, "trainer_state.json", "config.json", "runs")
"""Files and folders that make a folder a base-stage run."""
ROW_TASKS = ("ground_3d", "ground_2d", "caption", "general_qa")
"""Dataset rows the stage trains on as they are (general questions on the LOR path)."""
DERIVED_TASKS = GROUNDING_TASKS
"""Grounding examples a marked region of a train question can give (`BaseSettings.derived_tasks`)."""
CONFIG_KEY = "workbench_base_steps"
"""Config attribute recording the grounding steps a model has had in this stage."""

_TRAINER_FIELDS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                   "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "adam_beta2",
                   "max_grad_norm", "max_length", "logging_steps", "save_steps", "save_total_limit", "seed",
                   "bf16", "activation_checkpointing", "dataloader_num_workers", "report_to", "disable_tqdm",
                   "model_profile", "option_style", "depth_embedding", "region_pool", "region_box", "depth_dropout",
                   "copy_warmup_steps",
                   "copy_warmup_batch_size", "copy_warmup_numbers")
"""Fields a `BaseSettings` shares with `SFTSettings` (same meaning): the trainer and the new model."""


@dataclass
class BaseSettings:
    """Settings of one base-stage run. Profiles are presets (`from_profile`); the fields shared with
    `SFTSettings` mean the same there."""

    profile: str = ""
    """Preset these settings started from (smoke | default | gpu); "" when built without one."""
    model_profile: str = ""
    """`ModelSettings` profile of the new built-in model; "" = same as `profile`."""
    option_style: str = ""
    """How the new model lists choice options (`prompts.OPTION_STYLES`); "" = the model profile's.
    SFT keeps the base model's style."""
    depth_embedding: str = ""
    """The 3D positional embedding of the new model (none | relative | metric); "" = the model
    profile's (`metric`)."""
    region_pool: str = ""
    """What the new model's regions pool (patch | merged); "" = the model profile's (`patch`)."""
    region_box: str = ""
    """Where the new model's language model learns a region's place (tokens | pooled; see
    `SFTSettings.region_box`); "" = the model profile's (`tokens`)."""
    derived_tasks: tuple[str, ...] = DERIVED_TASKS
    """Grounding examples each marked region of a train question gives (`DERIVED_TASKS`); () = none,
    only the dataset's own grounding rows."""
    row_tasks: tuple[str, ...] = ROW_TASKS
    """Dataset rows trained as they are (`ROW_TASKS`)."""
    max_train_examples: int = 0
    """Use at most this many examples (a seeded random subset); 0 = all."""
    num_train_epochs: float = 1.0
    """Passes over the examples; `max_steps` > 0 overrides it."""
    max_steps: int = -1
    """Optimizer steps; -1 = from `num_train_epochs`."""
    per_device_train_batch_size: int = 16
    """Examples per forward/backward pass."""
    gradient_accumulation_steps: int = 1
    """Passes accumulated into one optimizer step."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (also the copy warm-up's)."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule after warm-up (HF name)."""
    warmup_steps: float = 0.05
    """Warm-up: steps if >= 1, else a fraction of all steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    adam_beta2: float = 0.98
    """AdamW beta2."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    max_length: int | None = 1024
    """Longest tokenized example."""
    logging_steps: int = 10
    """Optimizer steps between two log entries."""
    save_steps: int = 200
    """Optimizer steps between two `checkpoint-*` saves (for resume)."""
    save_total_limit: int = 2
    """Checkpoints kept."""
    seed: int = 0
    """Seed of the model init, the example order, the subset and the derived questions' wording."""
    bf16: bool | None = None
    """bfloat16 mixed precision; None = on when a CUDA GPU supports it."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass."""
    dataloader_num_workers: int = 0
    """Processes that collate batches beside the training loop."""
    report_to: str = "auto"
    """Logger of the HF Trainer: auto = tensorboard when installed, else none."""
    disable_tqdm: bool = False
    """Hide the progress bar."""
    depth_dropout: float = 0.1
    """Share of the examples trained without depth (an upload has none)."""
    copy_warmup_steps: int = 0
    """Steps of the text-only copy warm-up before grounding; 0 = none."""
    copy_warmup_batch_size: int = 32
    """Sequences per copy warm-up step."""
    copy_warmup_numbers: float = 0.0
    """Share of the copy warm-up's examples that copy numbers (`copying.NUMBER_TASKS`)."""
    eval_samples: int = 64
    """Val regions grounded greedily at the end (median center error); 0 = skip."""
    eval_batch_size: int = 16
    """Regions per `generate` call of that evaluation."""
    eval_max_new_tokens: int = 48
    """Token budget of one grounding answer."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> BaseSettings:
        """The named preset (`smoke`, `default`, `gpu`) with field overrides."""
        presets: dict[str, dict[str, Any]] = {
            "smoke": dict(max_steps=10, max_train_examples=64, per_device_train_batch_size=4, learning_rate=3e-3,
                          warmup_steps=2, logging_steps=2, save_steps=1000, copy_warmup_steps=4,
                          copy_warmup_batch_size=8, eval_samples=4, eval_batch_size=4, eval_max_new_tokens=32),
            # 2 CPU cores: the copy warm-up (~6.5 minutes), then 2,000 steps of 16 region -> 3D center
            # examples, about two passes over the default data's 16,800 marked train regions (~15
            # minutes). 1,000 steps left the median center error at 0.41 m on 400 val regions, 2,000
            # at 0.16 m (docs/experiments.md, "The base stage's length"; issue #19)
            # A multi-view build's regions ground in a named frame (`ground_frame`, issue #24).
            "default": dict(max_steps=2000, per_device_train_batch_size=16, derived_tasks=("ground_3d", "ground_frame"),
                            logging_steps=25, save_steps=300, copy_warmup_steps=COPY_WARMUP_STEPS,
                            option_style="letter_after", eval_samples=200),
            "gpu": dict(num_train_epochs=1.0, per_device_train_batch_size=32, logging_steps=20, save_steps=500,
                        copy_warmup_steps=COPY_WARMUP_STEPS, dataloader_num_workers=4, eval_samples=256,
                        eval_batch_size=64),
        }
        return from_preset(cls, presets, name, overrides)

    def __post_init__(self):
        check_profile(self.profile)
        self.derived_tasks = known_names(self.derived_tasks, DERIVED_TASKS, "derived_tasks")
        self.row_tasks = known_names(self.row_tasks, ROW_TASKS, "row_tasks")
        if not self.derived_tasks and not self.row_tasks:
            raise ValueError("derived_tasks and row_tasks are both empty: the base stage has nothing to train on")
        if self.max_train_examples < 0 or self.eval_samples < 0:
            raise ValueError("max_train_examples and eval_samples must be >= 0")
        check_steps(self, ("eval_batch_size", "eval_max_new_tokens"))
        self.trainer_settings()  # the shared fields, checked where SFT checks them

    def trainer_settings(self) -> SFTSettings:
        """The `SFTSettings` the trainer and the new model are built from (the shared fields)."""
        return SFTSettings(profile=self.profile, group_by_path=False, eval_samples=0,
                           **{name: getattr(self, name) for name in _TRAINER_FIELDS})


# ---------------------------------------------------------------------------------------------
# Examples


def example_index(split, settings: BaseSettings) -> list[tuple[int, str, int]]:
    """(row, task, region) of every example: a single-view dataset row of `row_tasks` as it is
    (region -1), and each region of each QA row once per `derived_tasks` that fits it
    (`examples.grounding_index`: `ground_frame` from multi-view rows, the others from single-view ones)."""
    tasks, single = views.column(split, "task"), single_view(split)
    out = [(i, task, -1) for i, task in enumerate(tasks) if task in settings.row_tasks and single[i]]
    out += [(i, kind, k) for i, k, kind in grounding_index(split, settings.derived_tasks)]
    return sorted(out, key=lambda entry: entry[0])  # stable: a row, then its regions, as before


def training_examples(split, settings: BaseSettings, depth: bool = False, region_coords: bool = True,
                      system: str = "full", option_style: str = "letter_first"):
    """The `datasets.Dataset` TRL trains on: one item per `example_index` entry, shuffled with the
    seed (`max_train_examples` > 0 keeps the first ones), made on access like the SFT examples
    (`messages`, `images`, `id`, `task`; a multi-view row's `ground_frame` example shows every frame).
    `depth`: images carry their row's depth, except a seeded `depth_dropout` share."""
    import datasets as hf
    import numpy as np

    from workbench.tasks import prompts
    index = example_index(split, settings)
    if not index:
        raise ValueError(f"the training split has no rows for the base stage (row tasks {settings.row_tasks}, "
                         f"regions of QA rows for {settings.derived_tasks})")
    order = np.random.default_rng(settings.seed).permutation(len(index))
    if settings.max_train_examples:
        order = order[: settings.max_train_examples]
    picked = [index[i] for i in order]
    columns = ("id", "task", "image", "regions", "objects", "question", "choices", "lor_target", "dtr_target")
    if FRAME_GROUNDING in settings.derived_tasks:
        columns += ("images", "region_frames", "frame_centers")
    columns += ("depth", "intrinsics", "depths") if depth else ()
    source = views.numpy_depth(views.select_columns(split, [c for c in columns if c in views.column_names(split)]))

    def make(batch: dict[str, list]) -> dict[str, list]:
        src = source[list(batch["row"])]
        out: dict[str, list] = {"messages": [], "images": [], "id": [], "task": []}
        for k, (task, region) in enumerate(zip(batch["task"], batch["region"])):
            row = {c: src[c][k] for c in src}
            if region >= 0:
                row = grounding_row(row, task, region, settings.seed)
            kept = not depth or np.random.default_rng([settings.seed, int(batch["row"][k]), region + 1]).random() \
                >= settings.depth_dropout
            images = grounding_images(row, with_depth=depth and kept)
            row["image"] = images[0]
            if len(images) > 1:
                row["images"] = images
            out["messages"].append(prompts.to_messages(row, "lor", region_coords=region_coords, with_target=True,
                                                       system=system, option_style=option_style))
            out["images"].append(images)
            out["id"].append(row["id"])
            out["task"].append(row["task"])
        return out

    raw = hf.Dataset.from_dict({"row": [i for i, _, _ in picked], "task": [t for _, t, _ in picked],
                                "region": [k for _, _, k in picked]})
    return raw.with_transform(make)


# ---------------------------------------------------------------------------------------------
# Evaluation


def grounding_rows(split, n: int, seed: int = 0, task: str = "ground_3d") -> list[dict]:
    """`n` grounding rows of a split (the first region of a seeded sample of its QA rows):
    region -> 3D center rows of single-view rows, or with `task="ground_frame"` region -> center
    in a named frame rows of multi-view ones ([] for a build without)."""
    import numpy as np

    regions, single = views.column(split, "regions"), single_view(split)
    idx = [i for i, t in enumerate(views.column(split, "task")) if t in schema.QA_TASKS and regions[i]
           and single[i] == (task != FRAME_GROUNDING)]
    if n and n < len(idx):
        idx = sorted(np.random.default_rng(seed).choice(idx, size=n, replace=False).tolist())
    return [grounding_row(split[int(i)], task, 0, seed) for i in idx]


def mean_center(split) -> list[float]:
    """The mean camera-frame center of the objects the split's questions mark (the constant guess)."""
    import numpy as np

    centers = [c for task, by_label in zip(views.column(split, "task"), views.column(split, "centers"))
               if task in schema.QA_TASKS
               for c in schema.centers_of(by_label).values()]
    return np.mean(np.asarray(centers, dtype=float), axis=0).round(4).tolist() if centers else [0.0, 0.0, 0.0]


def grounding_eval(model, processor, rows: list[dict], guess: list[float] | None = None, batch_size: int = 16,
                   max_new_tokens: int = 48) -> tuple[dict[str, Any], list[dict]]:
    """Greedy region -> 3D center answers of `rows` (`grounding_rows`; a `ground_frame` answer counts
    only when it names the frame asked for): ({n, parsed, center_error_m
    (median over parsed answers), center_error_p90_m, within_0_15m (share of all rows),
    mean_guess_error_m (the median error of always answering `guess`)}, per-row records)."""
    import numpy as np

    from workbench import model as M
    from workbench.tasks import rewards
    completions = M.generate(model, processor, rows, "auto", max_new_tokens=max_new_tokens, batch_size=batch_size)
    records, errors = [], []
    for row, completion in zip(rows, completions):
        (label, truth), = schema.centers_of(row).items()
        text = completion if completion.lstrip().startswith("<detect>") else f"<detect>{completion}</detect>"
        found = rewards.match_centers(rewards.parse_centers(text) or {}, [label])
        if row.get("reference_frame") and rewards.reference_frame(completion) != int(row["reference_frame"]):
            found = {}  # a center in another frame than the one asked for
        error = float(np.linalg.norm(np.subtract(found[label], truth))) if label in found else None
        if error is not None:
            errors.append(error)
        records.append({"id": row["id"], "completion": completion, "truth": truth,
                        "predicted": list(found[label]) if label in found else None, "error_m": error})
    truths = np.asarray([next(iter(schema.centers_of(r).values())) for r in rows], dtype=float)
    metrics: dict[str, Any] = {"n": len(rows), "parsed": len(errors)}
    if errors:
        metrics.update(center_error_m=round(statistics.median(errors), 4),
                       center_error_p90_m=round(float(np.percentile(errors, 90)), 4),
                       within_0_15m=round(sum(e < 0.15 for e in errors) / len(rows), 4))
    if guess is not None and len(rows):
        metrics["mean_guess_error_m"] = round(float(np.median(np.linalg.norm(truths - np.asarray(guess), axis=1))), 4)
    return metrics, records


# ---------------------------------------------------------------------------------------------
# Training


def train_base(data_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: BaseSettings | None = None,
               resume: bool | str = False, overwrite: bool = False, callbacks=()) -> dict[str, Any]:
    """The base stage on the train split of `data_dir`: a new built-in model, its copy warm-up and
    grounding; the model goes to `out_dir` (read it with `model.load`, train it further with
    `workbench sft --model OUT`). Returns the summary written to `base_summary.json`.
    `resume` / `overwrite` as in `sft.train_sft` ("auto": continue an interrupted run of the same
    settings and data, else start over)."""
    import torch

    from workbench import model as M
    from workbench.train import sft
    from workbench.train.examples import load_splits
    start = time.perf_counter()
    settings = settings or BaseSettings()
    out = Path(out_dir)
    run_info = {**asdict(settings), "data": str(Path(data_dir).resolve())}
    resume, overwrite = rundir.resolve_resume(resume, overwrite, out, SETTINGS_FILE, run_info)
    rundir.check_output_dir(out, "base-stage run", lambda o: rundir.looks_like_training_run(o, BASE_MARKS),
                            resume=resume, overwrite=overwrite)
    dd = load_splits(data_dir)
    if not resume or not (out / SETTINGS_FILE).exists():
        io.write_json(out / SETTINGS_FILE, run_info)
    checkpoint = rundir.last_checkpoint(out) if resume else None
    trainer_settings = settings.trainer_settings()
    if checkpoint is not None:
        model, processor = M.load(checkpoint)
    else:
        model, processor = sft.build_model(dd["train"], trainer_settings)
    warmup = sft.copy_warmup(model, processor, trainer_settings) if checkpoint is None else None
    train = training_examples(dd["train"], settings, depth=M.uses_depth(model), **M.prompt_options(model))
    trainer = sft.build_trainer(model, processor, train, out, trainer_settings, callbacks, stage="base")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    train_time = time.perf_counter() - t0
    setattr(model.config, CONFIG_KEY, int(trainer.state.global_step))
    sft.save_final(model, processor, trainer, out)

    evaluation: dict[str, Any] = {}
    framed: dict[str, Any] = {}  # the same for regions grounded in a named frame, on a multi-view build
    if settings.eval_samples:
        guess = mean_center(dd["train"])
        tasks = ("ground_3d", FRAME_GROUNDING) if FRAME_GROUNDING in settings.derived_tasks else ("ground_3d",)
        for task, into in zip(tasks, (evaluation, framed)):
            rows = grounding_rows(dd["val"], settings.eval_samples, settings.seed, task)
            extra = 16 if task == FRAME_GROUNDING else 0  # the frame's detect opening
            if rows:
                into.update(grounding_eval(model, processor, rows, guess, batch_size=settings.eval_batch_size,
                                           max_new_tokens=settings.eval_max_new_tokens + extra)[0])
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    raw = train.with_format(None)
    summary = {
        "out_dir": str(out), "global_step": int(trainer.state.global_step),
        "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
        "wall_time_s": round(time.perf_counter() - start, 2), "train_time_s": round(train_time, 2),
        "num_examples": len(train), "examples": dict(Counter(raw["task"])), "grounding": evaluation,
        **({"frame_grounding": framed} if framed else {}),
        "settings": asdict(settings), "data": str(Path(data_dir).resolve()),
        "resumed_from": str(checkpoint) if checkpoint is not None else None, "copy_warmup": warmup,
        "num_parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
    }
    io.write_json(out / SUMMARY, summary)
    return summary


def read_summary(out_dir: str | os.PathLike) -> dict:
    """The `base_summary.json` of a finished run."""

    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: the base stage in {str(out_dir)!r} has not finished")
    return json.loads(path.read_text(encoding="utf-8"))



# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--out", required=True, help="output folder: the base model, checkpoints, summary")
    parser.add_argument("--profile", default="smoke", choices=PROFILES, help="preset of BaseSettings")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint-* in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    parser.add_argument("--max-steps", type=int, default=None, help="grounding steps (overrides the profile)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    add_set_argument(parser, BaseSettings)


def cli(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = parse_set(BaseSettings, args.set)
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.seed is not None:
        overrides["seed"] = args.seed
    settings = BaseSettings.from_profile(args.profile, **overrides)
    summary = train_base(args.data, args.out, settings, resume=args.resume, overwrite=args.overwrite)
    loss = "n/a" if summary["final_loss"] is None else f"{summary['first_loss']:.3f} -> {summary['final_loss']:.3f}"
    print(f"wrote {summary['out_dir']}: {summary['global_step']} steps, loss {loss}, {summary['wall_time_s']:.0f} s")
    for kind, g in (("", summary["grounding"]), (" in a named frame", summary.get("frame_grounding") or {})):
        if g.get("center_error_m") is not None:
            print(f"  val grounding{kind}: median center error {g['center_error_m']:.2f} m over {g['parsed']}/{g['n']} "
                  f"regions (always the train mean center: {g['mean_guess_error_m']:.2f} m)")
    return 0

