"""Cold-start SFT (SR-ReaL stage 1) with TRL's `SFTTrainer`, and `workbench sft`.

    workbench sft --data DIR --out DIR [--profile P] [--model NAME_OR_PATH] [--blend NAME]
                  [--resume] [--max-steps N]

The cold start teaches both output formats (SPEC section 2) and the region -> 3D interface
before RL. How it departs from a plain `SFTTrainer(model, train_dataset=...)` call:

1. Examples, not rows. A QA row (`region_qa`, `general_qa`) gives one training example per
   path of the blend: its LOR target on the LOR system prompt AND its DTR target on the DTR
   system prompt, so one model learns both paths on the same questions (`blend`, `cot_only`).
   Blend rows (`ground_3d`, `ground_2d`, `caption`) give one example with their plain target.
   `BLENDS` names the presets; `training_examples` builds the dataset TRL reads.
2. Messages come from `prompts.to_messages` (the one row -> chat function), with location
   tokens after each `<region>` for the built-in model, so SFT, GRPO, evaluation and `ask`
   see identical prompts. Items are made on access (`with_transform`): `messages` (image
   placeholder in the user turn) and `image`, which TRL's `DataCollatorForVisionLanguageModeling`
   renders through the processor per batch (`remove_unused_columns=False`: TRL's vision path
   never pre-tokenizes). Batches hold one path each (`group_by_path`, sequential sampling over a
   seeded order): a DTR prompt is about twice as long as a LOR one, so mixed batches are mostly
   padding.
3. Loss on the assistant reply only: `assistant_only_loss=True`; the chat template in
   `model.py` wraps the reply and its `<|im_end|>` in `{% generation %}`, so the model learns
   to stop. `make_collator` builds the collator the trainer uses; `collate` shows its labels.
4. In a run the built-in model comes from its base stage (`workbench.train.base`: copy warm-up
   and grounding; `--model RUN/base`). Without `--model` it is created here (`model.build_tiny`,
   tokenizer trained on `prompts.corpus` of the train split) and first gets the text-only copy
   warm-up (`workbench.train.copying`, `copy_warmup_steps`): without it, a fresh model does not
   learn to copy an option's letter within the SFT budget. `grounding` blends region -> 3D center
   examples of the questions' regions into the cold start. A pretrained VLM is loaded with LoRA
   (`model.load`) and merged before the final save, so `model.load(out_dir)` reads every result.
5. Checkpoints `checkpoint-*` every `save_steps`; `resume=True` continues from the last one
   after a kill (weights, optimizer, scheduler, RNG, data order). The final folder also holds
   `trainer_state.json` (`log_history`, read by the run report) and `sft_summary.json`
   (settings, wall time, losses and a quick greedy evaluation on `val`, both paths).

Taught in `notebooks/03_cold_start_sft.ipynb`.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench import compat, io, rundir
from workbench.settings import (
    PROFILES,
    add_set_argument,
    parse_set,
    trainer_bf16,
    trainer_report_to,
)
from workbench.tasks.prompts import OPTION_STYLES
from workbench.train import copying
from workbench.train.examples import BLENDS, load_splits, qa_rows, training_examples
from workbench.train.quick_eval import chance_choice_accuracy, quick_eval
from workbench.train.sft_settings import COPY_WARMUP_STEPS, SFTSettings  # noqa: F401 - re-exported

SUMMARY = "sft_summary.json"
"""Written last into the output folder: its presence marks a finished run."""

SETTINGS_FILE = "sft_settings.json"
"""Written first: the settings, model and data of the run (what `resume="auto"` compares)."""

SFT_MARKS = (SUMMARY, SETTINGS_FILE, "trainer_state.json", "config.json", "runs")
"""Files and folders that make a folder an SFT run (runs/: tensorboard logs of a run killed early)."""


@dataclass
class SFTResult:
    """What `train_sft` returns (also written, minus the trainer, to `sft_summary.json`)."""

    out_dir: str
    """Folder with the final model, processor, trainer_state.json and sft_summary.json."""
    global_step: int
    """Optimizer steps done in total (including steps before a resume)."""
    final_loss: float | None
    """Last logged training loss."""
    first_loss: float | None
    """First logged training loss (to see that it fell)."""
    wall_time_s: float
    """Seconds this call took (data, model, training, saving, quick evaluation)."""
    train_time_s: float
    """Seconds spent in `trainer.train`."""
    num_examples: int
    """Training examples (rows x paths of the blend)."""
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)
    """Quick greedy evaluation on val: {path: {n, format_rate, choice_accuracy, ...}}."""
    samples: list[dict] = field(default_factory=list)
    """The quick evaluation's completions with their scores (`quick_eval` records)."""
    trainer: Any = None
    """The `SFTTrainer` (state, log_history); None when read back from disk."""


# ---------------------------------------------------------------------------------------------
# Model and trainer


def build_model(train_rows, settings: SFTSettings, model_name_or_path: str = ""):
    """(model, processor): the built-in tiny model with a tokenizer trained on the train split's
    text (`prompts.corpus`), or a pretrained VLM / saved checkpoint loaded with `model.load`
    (LoRA for a pretrained VLM when `settings.use_lora`)."""
    from workbench import model as M
    from workbench.tasks import prompts
    if not model_name_or_path:
        text_rows = train_rows.select_columns(["question", "regions", "choices", "lor_target", "dtr_target"])
        extra = {k: v for k, v in (("option_style", settings.option_style),
                                   ("depth_embedding", settings.depth_embedding),
                                   ("region_pool", settings.region_pool)) if v}
        if settings.region_box:
            extra.update(M.REGION_BOXES[settings.region_box])
        model_settings = M.ModelSettings.from_profile(settings.model_profile or settings.profile or "default", seed=settings.seed,
                                                      **extra)
        return M.build_tiny(prompts.corpus(text_rows, model_settings.system_prompts, model_settings.option_style),
                            model_settings)
    if _is_builtin_checkpoint(model_name_or_path):  # fully trained; it keeps its own embedding
        return M.load(model_name_or_path)
    lora = M.LoraSettings(r=settings.lora_r, alpha=settings.lora_alpha) if settings.use_lora else None
    return M.load(model_name_or_path, lora=lora, depth_embedding=settings.depth_embedding or "auto")


def _is_builtin_checkpoint(name: str) -> bool:
    """A local folder holding a built-in model (trained fully, never through LoRA)."""
    config = Path(name) / "config.json"
    return config.is_file() and '"workbench_region_features"' in config.read_text(encoding="utf-8")


def sft_config(out_dir: str | os.PathLike, settings: SFTSettings, pretrained: bool = False):
    """The TRL `SFTConfig` of a run (assistant-only loss, no packing, HF checkpointing);
    `pretrained` picks `pretrained_learning_rate`."""
    import torch
    from trl import SFTConfig

    bf16 = trainer_bf16(settings.bf16)
    report_to = trainer_report_to(settings.report_to)
    return SFTConfig(
        output_dir=str(out_dir),
        assistant_only_loss=True,  # labels -100 outside the {% generation %} span of the template
        max_length=settings.max_length,
        packing=False,  # not supported for images
        pad_to_multiple_of=None,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.pretrained_learning_rate if pretrained else settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        adam_beta2=settings.adam_beta2,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=bf16,
        activation_checkpointing=settings.activation_checkpointing,  # HF's new name of gradient_checkpointing
        dataloader_num_workers=settings.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        report_to=report_to,
        disable_tqdm=settings.disable_tqdm,
        eval_strategy="no",
        # group_by_path fixes the order (one path per batch); otherwise the trainer shuffles.
        train_sampling_strategy="sequential" if settings.group_by_path else "random",
        remove_unused_columns=False,  # items are made on access; the collator reads messages + image
    )


def make_collator(processor, settings: SFTSettings):
    """The collator SFT trains with: TRL's `DataCollatorForVisionLanguageModeling` with
    assistant-only labels, set up as `SFTTrainer` would set it up itself (a template without
    `{% generation %}` markers, e.g. a pretrained VLM's, is swapped for TRL's training template).
    It renders `messages` + `image` through the processor per batch, right-padded; labels are
    -100 on padding and everywhere outside the assistant reply."""

    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = (None if compat.has_generation_markers(processor.chat_template)
                else compat.get_training_chat_template(processor))
    return compat.DataCollatorForVisionLanguageModeling(
        processor=processor, max_length=settings.max_length, assistant_only_loss=True, chat_template=template
    )


def build_trainer(model, processor, train_dataset, out_dir, settings: SFTSettings, callbacks=(), stage: str = "sft"):
    """The TRL `SFTTrainer` over `train_dataset` (from `training_examples`) with `make_collator`;
    it writes its progress for `workbench run` (`train.progress`, named `stage`)."""
    from trl import SFTTrainer

    from workbench import model as M
    from workbench.train.progress import ProgressCallback
    return SFTTrainer(
        model=model,
        args=sft_config(out_dir, settings, pretrained=not M.is_region_model(model)),
        data_collator=make_collator(processor, settings),
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=[ProgressCallback(stage), *callbacks],
    )


def collate(processor, examples: Sequence[Mapping[str, Any]], settings: SFTSettings | None = None) -> dict[str, Any]:
    """The training batch `make_collator` makes of `examples` (items of `training_examples`):
    input_ids, attention_mask, labels (-100 where there is no loss), pixel_values, image_grid_thw."""
    collator = make_collator(processor, settings or SFTSettings())
    return collator([{"messages": ex["messages"], "images": ex["images"]} for ex in examples])


# ---------------------------------------------------------------------------------------------
# Training


def train_sft(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: SFTSettings | None = None,
    model_name_or_path: str = "",
    resume: bool | str = False,
    callbacks: Sequence[Any] = (),
    overwrite: bool = False,
    initial: tuple[Any, Any] | None = None,
) -> SFTResult:
    """Cold-start SFT on the train split of `data_dir`; the final model goes to `out_dir`.

    model_name_or_path: "" = a fresh built-in tiny model (tokenizer trained on the data), else a
    pretrained VLM name/path (LoRA, merged at the end) or a saved workbench model (fully trained).
    resume: continue from the last `checkpoint-*` in `out_dir` (a fresh start if there is none);
    "auto" (a notebook stage run again): continue an interrupted run of the same settings, model
    and data, else start over, replacing a run in `out_dir`.
    overwrite: replace a finished or interrupted run in `out_dir` instead of refusing.
    callbacks: extra `transformers.TrainerCallback`s (e.g. a live loss plot).
    initial: an already built (model, processor) to train, e.g. from `build_model` (notebook 03);
    ignored when resuming from a checkpoint.
    """
    import torch

    from workbench import model as M
    start = time.perf_counter()
    settings = settings or SFTSettings()
    out = Path(out_dir)
    run_info = {**asdict(settings), "model": model_name_or_path, "data": str(Path(data_dir).resolve())}
    resume, overwrite = rundir.resolve_resume(resume, overwrite, out, SETTINGS_FILE, run_info)
    rundir.check_output_dir(out, "SFT run", lambda o: rundir.looks_like_training_run(o, SFT_MARKS),
                            resume=resume, overwrite=overwrite)
    dd = load_splits(data_dir)
    if not resume or not (out / SETTINGS_FILE).exists():
        io.write_json(out / SETTINGS_FILE, run_info)
    checkpoint = rundir.last_checkpoint(out) if resume else None

    if checkpoint is not None and not model_name_or_path:
        model, processor = M.load(checkpoint)  # same tokenizer and config as the interrupted run
    elif checkpoint is not None and _is_builtin_checkpoint(model_name_or_path):
        model, processor = M.load(checkpoint)
    elif initial is not None:
        model, processor = initial
    else:
        model, processor = build_model(dd["train"], settings, model_name_or_path)
    prompting = M.prompt_options(model)
    warmup = copy_warmup(model, processor, settings) if checkpoint is None else None
    train = training_examples(dd["train"], settings.blend, max_examples=settings.max_train_examples, seed=settings.seed,
                              group_size=settings.per_device_train_batch_size if settings.group_by_path else 1,
                              depth=M.uses_depth(model), depth_dropout=settings.depth_dropout,
                              grounding=settings.grounding, single_view_first=settings.single_view_first,
                              length=settings.max_steps * settings.per_device_train_batch_size
                              * settings.gradient_accumulation_steps if settings.single_view_first else 0,
                              **prompting)
    raw = train.with_format(None)
    trainer = build_trainer(model, processor, train, out, settings, callbacks)

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    train_time = time.perf_counter() - t0

    final = _merged(trainer.model)
    save_final(final, processor, trainer, out)

    evaluation: dict[str, dict[str, float]] = {}
    samples: list[dict] = []
    if settings.eval_samples:
        rows = qa_rows(dd["val"], settings.eval_samples, settings.seed)
        evaluation, samples = quick_eval(final, processor, rows, max_new_tokens=settings.eval_max_new_tokens,
                                         batch_size=settings.eval_batch_size)
        evaluation["chance"] = {"choice_accuracy": chance_choice_accuracy(rows)}
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    result = SFTResult(
        out_dir=str(out),
        global_step=int(trainer.state.global_step),
        final_loss=losses[-1] if losses else None,
        first_loss=losses[0] if losses else None,
        wall_time_s=round(time.perf_counter() - start, 2),
        train_time_s=round(train_time, 2),
        num_examples=len(train),
        evaluation=evaluation,
        samples=samples,
        trainer=trainer,
    )
    summary = {k: v for k, v in asdict(result).items() if k not in ("trainer", "samples")}
    summary.update(
        settings=asdict(settings),
        model=model_name_or_path or "built-in tiny model",
        resumed_from=str(checkpoint) if checkpoint is not None else None,
        data=str(Path(data_dir).resolve()),
        examples=dict(Counter(f"{t}/{p}" for t, p in zip(raw["task"], raw["path"]))),
        num_parameters=sum(p.numel() for p in final.parameters()),
        copy_warmup=warmup,
        threads=torch.get_num_threads(),
    )
    io.write_json(out / SUMMARY, summary)
    return result


def needs_copy_warmup(model, settings: SFTSettings) -> bool:
    """True for a built-in model that has not had its copy warm-up, when `settings` asks for one."""
    from workbench import model as M
    return bool(settings.copy_warmup_steps) and M.is_region_model(model) and not copying.warmed_steps(model)


def copy_warmup(model, processor, settings: SFTSettings) -> dict[str, Any] | None:
    """The copy warm-up `settings` ask for, run in place when `model` needs it (`needs_copy_warmup`),
    in the model's own prompt style; its record (`copying.warm_up`), or None when it did not run.
    The base stage calls it too (with its `trainer_settings`)."""
    from workbench import model as M
    if not needs_copy_warmup(model, settings):
        return None
    prompting = M.prompt_options(model)
    return copying.warm_up(model, processor.tokenizer, settings.copy_warmup_steps,
                           batch_size=settings.copy_warmup_batch_size,
                           learning_rate=settings.copy_warmup_learning_rate or settings.learning_rate,
                           seed=settings.seed, system_style=prompting["system"], option_style=prompting["option_style"],
                           numbers=settings.copy_warmup_numbers, log=None if settings.disable_tqdm else _print_copy_log)


def _print_copy_log(entry: Mapping[str, Any]) -> None:
    print(f"copy warm-up step {entry['copy_step']}: loss {entry['copy_loss']:.3f}", flush=True)


def _merged(model):
    """The plain model to save: a PEFT model's adapters merged into the base weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def save_final(model, processor, trainer, out: Path) -> None:
    """trainer_state.json (log_history, read by the run report), then the model (`rundir.save_model`:
    atomic, config.json last, so the folder looks finished only when it is)."""
    trainer.save_state()
    rundir.save_model(model, processor, out)


def read_summary(out_dir: str | os.PathLike) -> dict:
    """The `sft_summary.json` of a finished run."""
    import json

    path = Path(out_dir) / SUMMARY
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: the SFT run in {str(out_dir)!r} has not finished")
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--out", required=True, help="output folder: final model, checkpoints, summary")
    parser.add_argument("--profile", default="smoke", choices=PROFILES, help="preset of SFTSettings")
    parser.add_argument("--model", default="", help="pretrained VLM name or path (default: the built-in tiny model)")
    parser.add_argument("--blend", default=None, choices=tuple(BLENDS), help="training mixture (default: blend)")
    parser.add_argument("--option-style", default=None, choices=OPTION_STYLES,
                        help="how a new built-in model lists choice options (default: letter_first)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint-* in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides the profile)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--no-eval", action="store_true", help="skip the quick greedy evaluation on val")
    add_set_argument(parser, SFTSettings)


def cli(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = parse_set(SFTSettings, args.set)
    if args.blend is not None:
        overrides["blend"] = args.blend
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.option_style is not None:
        overrides["option_style"] = args.option_style
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.no_eval:
        overrides["eval_samples"] = 0
    settings = SFTSettings.from_profile(args.profile, **overrides)
    result = train_sft(args.data, args.out, settings, model_name_or_path=args.model, resume=args.resume,
                       overwrite=args.overwrite)
    loss = "n/a" if result.final_loss is None else f"{result.first_loss:.3f} -> {result.final_loss:.3f}"
    print(f"wrote {result.out_dir}: {result.global_step} steps, loss {loss}, {result.wall_time_s:.0f} s")
    for path, m in result.evaluation.items():
        print(f"  {path}: " + ", ".join(f"{k} {_number(v)}" for k, v in m.items()))
    return 0


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)
