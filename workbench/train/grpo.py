"""GRPO, the reinforcement stage of SR-ReaL (SPEC section 5), on TRL's `GRPOTrainer`.
Taught in `notebooks/04_grpo.ipynb`. This module holds the settings, the prompt dataset, the
`GRPOConfig`, `train_grpo` and `workbench grpo`; the trainer subclass is in `dynamic_sampling`,
the alarms in `alarms` and the notebook's reward lab in `reward_lab`.

How this departs from textbook GRPO (DeepSeekMath), in the paper's recipe:
1. Group size 5, sampling at temperature 1.0 / top_p 0.99, KL to the reference model added to
   the loss with coefficient 0.01 (TRL `beta`), clip-higher (`epsilon` 0.2, `epsilon_high` 0.3)
   and a token-mean loss (TRL `loss_type="dapo"`: token losses summed over the whole generation
   batch and divided by its number of completion tokens, so long answers are not down-weighted).
2. Dynamic sampling: a prompt group whose mean overall reward is <= 0.2 or >= 0.99 teaches
   little (its advantages are ~0), so it is dropped and further prompt batches are generated
   until the batch is full again (`dynamic_sampling.DynamicSamplingGRPOTrainer`). After
   `max_refill_tries` extra batches, the remaining slots take the dropped groups with the
   largest reward spread.
3. One reward for both paths: `rewards.reward_funcs` returns per-row weighted components whose
   sum is `rewards.score(...)["overall"]`, so LOR and DTR prompts share one batch ("joint": every
   region question is asked on both paths, `prompt_paths`). The prompt's `path` column picks the
   system prompt (`prompts.to_messages`) and the reward rules.
4. Region boxes travel inside the prompt's token ids (`<region><|loc_a|>...<|loc_d|>`), so TRL's
   generation and log-prob passes give the built-in model its region features unchanged.
5. Alarms (`alarms.AlarmCallback`) watch the logs for the usual RL failure modes: format reward
   saturating while accuracy stays flat, completion length collapsing or exploding, and most
   groups having zero reward variance.

Outputs in `out_dir`: `checkpoint-*` (resume), the final model (`model.load(out_dir)`),
`grpo_settings.json`, `log_history.json`, `samples.jsonl` (a few completions per logging step),
`alarms.jsonl`, and tensorboard logs under `runs/` when tensorboard is installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from trl import GRPOConfig

from workbench import compat, io, rundir
from workbench import model as model_mod
from workbench.dataset import load_dataset_dir, views
from workbench.model import depth as depth_codec
from workbench.schema import PATHS, QA_TASKS
from workbench.settings import PROFILES, add_set_argument, parse_set, trainer_bf16, trainer_report_to
from workbench.tasks import prompts
from workbench.tasks import rewards as rewards_mod
from workbench.train.alarms import ALARMS_LOG, AlarmCallback
from workbench.train.dynamic_sampling import SAMPLES_LOG, DynamicSamplingGRPOTrainer
from workbench.train.grpo_settings import PATH_MODES, GRPOSettings
from workbench.train.progress import ProgressCallback

logger = logging.getLogger(__name__)

SETTINGS_FILE = "grpo_settings.json"
"""The settings, model and data of a run (what `resume="auto"` compares)."""

PROMPT_COLUMNS = ("id", "task", "category", "question", "image", "answer", "answer_type", "centers", "path")
"""Dataset columns kept for GRPO (plus `prompt`): what the reward functions and the samples log read."""
MULTIVIEW_PROMPT_COLUMNS = ("frame_centers", "reference_frame")
"""Kept besides those from a multi-view build (the multi-view detect reward reads them); its
prompts carry `images` (every frame of a multi-view row, the one image of another) for `image`."""


# ---------------------------------------------------------------------------------------------
# Prompts


def prompt_dataset(dataset, settings: GRPOSettings, region_coords: bool, system: str = "full",
                   option_style: str = "letter_first", depth: bool = False):
    """The RL prompts of `dataset` (a `datasets.Dataset` of workbench rows): QA rows only, a
    `prompt` column built by `prompts.to_messages` (image placeholder; TRL fills it from `image`),
    and `path` set by `prompt_paths` (under `joint`, a region question gives one prompt per path).
    `depth`: each `image` carries its row's depth (`model.depth.attach`), for a model that embeds it."""
    names = views.column_names(dataset)
    missing = [c for c in PROMPT_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"dataset lacks the columns {missing} that GRPO needs (has {names})")
    # indices from the stored columns: filtering a split would make every row's image
    tasks, row_paths = views.column(dataset, "task"), views.column(dataset, "path")
    keep = [i for i, task in enumerate(tasks) if task in QA_TASKS]
    if settings.max_prompts is not None:  # the first ones: the dataset order is already seeded-random
        keep = keep[: settings.max_prompts]
    if not keep:
        raise ValueError(f"no region_qa / general_qa rows in split {settings.split!r}: nothing to reinforce")
    pairs = [(i, path) for i in keep for path in prompt_paths(tasks[i], row_paths[i], settings.paths)]
    # keep_in_memory: never write cache files into the (shared, read-only) dataset folder
    dataset = dataset.select([i for i, _ in pairs], keep_in_memory=True)

    depth = depth and "depth" in names  # a dataset without depth runs without it
    joined = views.joined(dataset) is not None
    # numpy: python lists of a depth map's floats cost ~10 ms a row (read apart: `map` would hand
    # every column to `add_prompt` in the numpy format); a joined split reads depth as numpy already
    depths = dataset.select_columns(["depth"]).with_format("numpy") if depth and not joined else None

    multi = "view_poses" in names  # a multi-view build: every prompt gets `images`

    def add_prompt(row, index):
        path = pairs[index][1]
        out = {"path": path, "prompt": prompts.to_messages(row, path, region_coords=region_coords, system=system,
                                                           option_style=option_style)}
        if depth:
            out["image"] = depth_codec.row_image({**row, "depth": row["depth"] if joined else depths[index]["depth"]})
        elif joined:  # made from the row's view: stored with the prompt
            out["image"] = row["image"]
        if multi:
            image = out.pop("image", row["image"])
            out["images"] = depth_codec.row_images(row, with_depth=depth) or [image]
        return out

    source = dataset if depth and joined else views.remove_columns(dataset, ["depth"])
    kept = PROMPT_COLUMNS + MULTIVIEW_PROMPT_COLUMNS if multi else PROMPT_COLUMNS
    extra = [c for c in source.column_names if c not in kept or (multi and c == "image")]
    return source.map(add_prompt, with_indices=True, remove_columns=extra, keep_in_memory=True).with_format(None)


def prompt_paths(task: str, row_path: str, mode: str) -> tuple[str, ...]:
    """The paths a QA row is asked on: `joint` asks a region question on both (one prompt each, as
    SFT's blend trains both) and a general one on its own path; `lor` / `dtr` force that one.

    >>> prompt_paths("region_qa", "dtr", "joint"), prompt_paths("general_qa", "lor", "joint")
    (('lor', 'dtr'), ('lor',))
    >>> prompt_paths("general_qa", "lor", "dtr")
    ('dtr',)
    """
    if mode != "joint":
        return (mode,)
    return PATHS if task == "region_qa" else (row_path,)


def load_prompts(data_dir: str | os.PathLike, settings: GRPOSettings, region_coords: bool, system: str = "full",
                 option_style: str = "letter_first", depth: bool = False):
    """`prompt_dataset` of the split `settings.split` of the dataset folder `data_dir`."""
    data = load_dataset_dir(data_dir)
    if settings.split not in data:
        raise ValueError(f"dataset {str(data_dir)!r} has no split {settings.split!r} (has {list(data)})")
    return prompt_dataset(data[settings.split], settings, region_coords, system, option_style, depth)


# ---------------------------------------------------------------------------------------------
# Training


def _vllm_usable() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def suppressed_tokens(processor) -> list[int]:
    """Ids the policy must never sample: image/video placeholders and vision start/end markers (a
    sampled one would not match the image features in the log-prob passes)."""
    tokenizer = processor.tokenizer
    names = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ids = {tokenizer.convert_tokens_to_ids(name) for name in names if name in tokenizer.get_vocab()}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def grpo_config(
    settings: GRPOSettings,
    out_dir: str | os.PathLike,
    pretrained: bool,
    use_vllm: bool,
    suppress_tokens: Sequence[int] = (),
):
    """The `trl.GRPOConfig` of a run: TRL names map one to one; CPU-friendly defaults elsewhere."""
    bf16 = trainer_bf16(settings.bf16)
    return GRPOConfig(
        output_dir=str(out_dir),
        num_generations=settings.num_generations,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        top_p=settings.top_p,
        beta=settings.beta,
        epsilon=settings.epsilon,
        epsilon_high=settings.epsilon_high,
        loss_type=settings.loss_type,
        scale_rewards=settings.scale_rewards,
        num_iterations=settings.num_iterations,
        learning_rate=settings.pretrained_learning_rate if pretrained else settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        max_steps=settings.max_steps,
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to=trainer_report_to(settings.report_to),
        bf16=bf16,
        activation_checkpointing=settings.activation_checkpointing,
        use_vllm=use_vllm,
        # TRL itself suppresses only the image placeholder; vLLM takes no suppress_tokens
        generation_kwargs=None
        if use_vllm or not suppress_tokens
        else {"suppress_tokens": list(suppress_tokens)},
        vllm_mode=settings.vllm_mode,
        seed=settings.seed,
        # On a machine without CUDA, processes started by `accelerate launch --multi_gpu` / torchrun
        # then join a gloo process group (accelerate's MULTI_CPU) instead of each running alone.
        use_cpu=not torch.cuda.is_available(),
        disable_dropout=True,  # policy and reference log-probs must agree on the same tokens
        remove_unused_columns=False,  # the reward functions read answer, centers, path, ...
        dataloader_num_workers=0,
        log_completions=False,  # samples.jsonl instead (no pandas / parquet per step)
    )


def train_grpo(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: GRPOSettings | None = None,
    callbacks: Sequence[Any] = (),
    resume: bool | str = False,
    reward_funcs: tuple[list[Callable], list[float]] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run GRPO from the model in `model_dir` (an SFT folder, or a pretrained VLM name/path) on the
    prompts of `data_dir`; write checkpoints and the final model into `out_dir`.

    `resume=True` continues from the last `checkpoint-*` in `out_dir`; `overwrite=True` deletes an
    earlier GRPO run there and starts over (a folder that is not a GRPO run is never deleted);
    `resume="auto"` (a notebook stage run again) continues an interrupted run of the same settings,
    model and data, and otherwise starts over.
    `reward_funcs` replaces the
    SPEC rewards with (functions, weights), e.g. for research variants or tests. `callbacks` are
    extra `TrainerCallback`s (e.g. `workbench.widgets.dashboard.TrainingDashboard().callback()`). Returns
    {"log_history", "metrics", "alarms", "out_dir", "global_step", "main_process"}.
    """
    settings = settings or GRPOSettings()
    out = Path(out_dir)
    resume, overwrite = rundir.resolve_resume(resume, overwrite, out, SETTINGS_FILE,
                                              {**asdict(settings), "model": str(model_dir), "data": str(data_dir)})
    rundir.check_output_dir(out, "GRPO run", lambda o: rundir.looks_like_training_run(o, (SETTINGS_FILE,)),
                            resume=resume, overwrite=overwrite)
    last = rundir.last_checkpoint(out)  # only a checkpoint whose save finished (it holds trainer_state.json)
    if resume and last is None:
        raise FileNotFoundError(f"--resume: no checkpoint-* folder in {str(out)!r} to resume from")
    if not resume and last is not None:
        raise FileExistsError(
            f"{str(out)!r} already holds {Path(last).name}; pass --resume to continue it or --overwrite to start over"
        )

    # the growing logs follow the checkpoint: rows of steps after it (or of a run that never
    # checkpointed) would appear twice once the steps are trained again
    resumed_step = rundir.checkpoint_step(last) if resume else None
    for log in (SAMPLES_LOG, ALARMS_LOG):
        io.truncate_jsonl(out / log, resumed_step)

    # "auto" keeps a pretrained VLM in its stored precision (bf16) on a GPU; CPUs train in float32
    model, processor = model_mod.load(model_dir, dtype="auto" if torch.cuda.is_available() else "float32")
    pretrained = not model_mod.is_region_model(model)
    lora = pretrained if settings.use_lora is None else settings.use_lora
    peft_config = None
    if lora:
        peft_config = model_mod.LoraSettings(r=settings.lora_r, alpha=settings.lora_alpha).to_peft_config(
            model
        )
    use_vllm = settings.use_vllm and pretrained and _vllm_usable()
    if settings.use_vllm and not use_vllm:
        logger.warning(
            "use_vllm ignored: vLLM generation needs vllm installed, a CUDA GPU and a real pretrained VLM "
            "(the built-in model's region features are not in vLLM)"
        )
    train = load_prompts(data_dir, settings, **model_mod.prompt_options(model), depth=model_mod.uses_depth(model))
    funcs, weights = reward_funcs or rewards_mod.reward_funcs(settings.paths, settings.reward_settings())
    args = grpo_config(settings, out, pretrained, use_vllm, suppressed_tokens(processor))
    args.reward_weights = list(weights)
    alarms = AlarmCallback.from_settings(settings, output_dir=out)
    compat.quiet_known_warnings()
    model_mod.publish_model_class()  # TRL may have been imported first: name the class for its reference model
    trainer = DynamicSamplingGRPOTrainer(
        model=model,
        reward_funcs=list(funcs),
        args=args,
        train_dataset=train,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[alarms, ProgressCallback("grpo"), *callbacks],
        ds_settings=settings,
    )
    if trainer.is_world_process_zero():
        run = {
            "model": str(model_dir),
            "data": str(data_dir),
            "num_processes": trainer.accelerator.num_processes,
        }
        io.write_json(out / SETTINGS_FILE, {**asdict(settings), **run})
    result = trainer.train(resume_from_checkpoint=str(last) if resume else None)
    save_final(trainer, processor, out)
    history = trainer.state.log_history
    if trainer.is_world_process_zero():
        io.write_json(out / "log_history.json", history)
    return {
        "main_process": trainer.is_world_process_zero(),
        "log_history": history,
        "metrics": dict(result.metrics),
        "alarms": list(alarms.alarms),
        "out_dir": str(out),
        "global_step": trainer.state.global_step,
    }


def save_final(trainer, processor, out_dir: str | os.PathLike) -> None:
    """The trained model (LoRA merged), tokenizer and processor into `out_dir` as safetensors, readable
    by `model.load(out_dir)`. Written in a temporary folder, then moved in with config.json last, so a
    kill never leaves a folder that looks complete but is not."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    rundir.save_model(model, processor, out_dir)


# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser) -> None:
    parser.add_argument(
        "--model", required=True, help="SFT folder (or a pretrained VLM name/path) to start from"
    )
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--out", required=True, help="output folder: checkpoints, final model, logs")
    parser.add_argument("--profile", default="smoke", choices=PROFILES)
    parser.add_argument(
        "--paths", default=None, choices=PATH_MODES, help="joint (default), or force lor / dtr"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint-* in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier GRPO run in --out")
    parser.add_argument("--max-steps", type=int, default=None, help="override the profile's max_steps")
    parser.add_argument("--seed", type=int, default=None)
    add_set_argument(parser, GRPOSettings)


def cli(args) -> int:
    overrides = parse_set(GRPOSettings, args.set)
    for name, value in (("paths", args.paths), ("max_steps", args.max_steps), ("seed", args.seed)):
        if value is not None:
            overrides[name] = value
    settings = GRPOSettings.from_profile(args.profile, **overrides)
    result = train_grpo(
        args.model, args.data, args.out, settings, resume=args.resume, overwrite=args.overwrite
    )
    if not result["main_process"]:
        return 0
    final = {k: v for k, v in result["metrics"].items()}
    print(f"GRPO done at step {result['global_step']}: {json.dumps(final, sort_keys=True)}")
    for alarm in result["alarms"]:
        print(f"alarm at step {alarm['step']} [{alarm['kind']}]: {alarm['message']}")
    print(f"model: {args.out}")
    return 0
