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
4. The built-in model is created here (`model.build_tiny`, tokenizer trained on
   `prompts.corpus` of the train split) and first gets the text-only copy warm-up
   (`workbench.copying`, `copy_warmup_steps`): without it, a fresh model does not learn to copy
   an option's letter within the SFT budget. A pretrained VLM is loaded with LoRA
   (`model.load`) and merged before the final save, so `model.load(out_dir)` reads every result.
5. Checkpoints `checkpoint-*` every `save_steps`; `resume=True` continues from the last one
   after a kill (weights, optimizer, scheduler, RNG, data order). The final folder also holds
   `trainer_state.json` (`log_history`, read by the run report) and `sft_summary.json`
   (settings, wall time, losses and a quick greedy evaluation on `val`, both paths).

Taught in `notebooks/02_cold_start_sft.ipynb`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench import copying, io, perception, schema
from workbench.prompts import OPTION_STYLES
from workbench.settings import from_preset, trainer_bf16, trainer_report_to

PROFILES = ("smoke", "default", "gpu")
SUMMARY = "sft_summary.json"
"""Written last into the output folder: its presence marks a finished run."""

BLENDS: dict[str, dict[str, tuple[str, ...]]] = {
    "blend": {"paths": ("lor", "dtr"), "tasks": ("region_qa", "general_qa", "ground_3d", "ground_2d", "caption")},
    "cot_only": {"paths": ("lor", "dtr"), "tasks": ("region_qa", "general_qa")},
    "lor_only": {"paths": ("lor",), "tasks": ("region_qa", "general_qa")},
    "dtr_only": {"paths": ("dtr",), "tasks": ("region_qa", "general_qa")},
}
"""Cold-start mixtures: `paths` each QA row is trained on (one example per path), `tasks` kept."""

COPY_WARMUP_STEPS = 2500
"""Copy warm-up of the default and gpu profiles: 5-9 minutes on 2 CPU cores (issue #3)."""

REQUIRED_COLUMNS = ("id", "task", "image", "regions", "question", "category", "answer_type", "answer",
                    "choices", "path", "centers", "lor_target", "dtr_target")
"""Columns SFT reads from the dataset (`schema.COLUMNS` is the full contract)."""


@dataclass
class SFTSettings:
    """Settings of one cold-start SFT run. Profiles are presets (`from_profile`)."""

    profile: str = "default"
    """Preset these settings started from (smoke | default | gpu)."""
    blend: str = "blend"
    """Training mixture, a key of `BLENDS`: blend | cot_only | lor_only | dtr_only."""
    model_profile: str = ""
    """`ModelSettings` profile of the built-in model; "" = same as `profile`."""
    option_style: str = ""
    """How a new built-in model lists choice options (`prompts.OPTION_STYLES`); "" = the model
    profile's (`letter_first`). A loaded checkpoint keeps the style it was built with."""
    max_train_examples: int = 0
    """Use at most this many training examples (a seeded random subset); 0 = all."""
    group_by_path: bool = True
    """Batches of one path each (less padding), in a seeded order fixed for every epoch; False =
    examples reshuffled by the trainer every epoch."""
    num_train_epochs: float = 1.0
    """Passes over the training examples (TRL/HF name); `max_steps` > 0 overrides it."""
    max_steps: int = -1
    """Optimizer steps to train for; -1 = from `num_train_epochs`."""
    per_device_train_batch_size: int = 16
    """Examples per forward/backward pass."""
    gradient_accumulation_steps: int = 1
    """Passes accumulated into one optimizer step."""
    learning_rate: float = 2e-3
    """Peak AdamW learning rate of the built-in model (from scratch: ~1e-3 .. 3e-3)."""
    pretrained_learning_rate: float = 1e-4
    """Peak learning rate used instead when a pretrained VLM is trained through LoRA."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule after warm-up (HF name)."""
    warmup_steps: float = 0.05
    """Warm-up: steps if >= 1, else a fraction of all steps (HF semantics)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    adam_beta2: float = 0.98
    """AdamW beta2 (a little below the 0.999 default: steadier for short from-scratch runs)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    max_length: int | None = 1024
    """Longest tokenized example (prompt with image tokens + reply); longer ones are cut at the end."""
    logging_steps: int = 10
    """Optimizer steps between two log entries (loss, lr, grad norm, token accuracy)."""
    save_steps: int = 200
    """Optimizer steps between two `checkpoint-*` saves (for resume)."""
    save_total_limit: int = 2
    """Checkpoints kept in the output folder (older ones are deleted)."""
    seed: int = 0
    """Seed of the model init, the data order and the example subset."""
    bf16: bool | None = None
    """bfloat16 mixed precision; None = on when a CUDA GPU supports it."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass (saves memory, costs time; for large models)."""
    dataloader_num_workers: int = 0
    """Processes that collate batches (image processing) beside the training loop."""
    report_to: str = "auto"
    """Logger of the HF Trainer: auto = tensorboard when installed, else none."""
    disable_tqdm: bool = False
    """Hide the progress bar."""
    use_lora: bool = True
    """Train a pretrained VLM through LoRA adapters (the built-in model is always fully trained)."""
    lora_r: int = 16
    """LoRA rank (pretrained VLMs)."""
    lora_alpha: int = 32
    """LoRA scale numerator (pretrained VLMs)."""
    eval_samples: int = 32
    """Val QA rows to answer greedily on each path after training (0 = skip the quick evaluation)."""
    eval_max_new_tokens: int = 200
    """Token budget of one quick-evaluation completion."""
    eval_batch_size: int = 16
    """Rows per `generate` call in the quick evaluation."""
    copy_warmup_steps: int = 0
    """Steps of the text-only copy warm-up (`workbench.copying`) a fresh built-in model gets before
    SFT; 0 = none. Skipped for pretrained VLMs, already warmed models and resumed runs."""
    copy_warmup_batch_size: int = 32
    """Sequences per copy warm-up step (short and text-only: about a fifth of an image example)."""
    perception_warmup_steps: int = 0
    """Steps of the region perception warm-up (`workbench.perception`) a fresh built-in model gets
    before SFT (and before the copy warm-up); 0 = none (every profile: an opt-in, measured in
    docs/design.md; 800 took 3.5 minutes on 2 cores). Skipped like the copy warm-up."""
    perception_warmup_images: int = 16
    """Training images per perception warm-up step (every object of each is a region)."""
    describe_warmup_steps: int = 0
    """Steps of the describe warm-up (`perception.describe_warm_up`: write the numbers of marked
    regions in the traces' words) after the copy warm-up; 0 = none (every profile: an opt-in;
    600 took 6.5 minutes on 2 cores). Skipped like the copy warm-up."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> SFTSettings:
        """The named preset (`smoke`, `default`, `gpu`) with field overrides."""
        presets: dict[str, dict[str, Any]] = {
            # seconds on a laptop CPU: a few steps on the smoke model, loss visibly falling
            "smoke": dict(
                max_steps=20,
                max_train_examples=80,
                per_device_train_batch_size=4,
                learning_rate=3e-3,
                warmup_steps=2,
                logging_steps=2,
                save_steps=1000,
                eval_samples=4,
                eval_max_new_tokens=48,
                eval_batch_size=8,
                copy_warmup_steps=4,
                copy_warmup_batch_size=8,
            ),
            # the real small run on 2 CPU cores, on the default data (three relations, region
            # questions, both paths): 3,600 steps of 8 are 1.7 passes over its 16,800 examples,
            # ~4,800 per relation and path, 18 minutes after the 5-minute copy warm-up (measured:
            # issue #3). `letter_after` options make the answer letter a copy of the trace's
            # conclusion. lr 1e-3, not 2e-3: on a left/right probe set it halved the loss gap and
            # learned the tens digits of positions (teacher-forced 0.54 vs 0.24)
            "default": dict(
                max_steps=3600,
                per_device_train_batch_size=8,
                learning_rate=1e-3,
                logging_steps=25,
                save_steps=600,
                eval_samples=96,
                copy_warmup_steps=COPY_WARMUP_STEPS,
                option_style="letter_after",
            ),
            # one GPU: more data and steps, or a pretrained VLM with LoRA
            "gpu": dict(
                num_train_epochs=2.0,
                per_device_train_batch_size=32,
                learning_rate=1e-3,
                logging_steps=20,
                save_steps=500,
                eval_samples=256,
                eval_max_new_tokens=256,
                eval_batch_size=64,
                dataloader_num_workers=4,
                copy_warmup_steps=COPY_WARMUP_STEPS,
            ),
        }
        return from_preset(cls, presets, name, overrides)

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {PROFILES}")
        if self.blend not in BLENDS:
            raise ValueError(f"unknown blend {self.blend!r}; choose one of {tuple(BLENDS)}")
        if self.model_profile not in ("", *PROFILES):
            raise ValueError(f"unknown model_profile {self.model_profile!r}; choose one of {PROFILES} or ''")
        if self.option_style not in ("", *OPTION_STYLES):
            raise ValueError(f"unknown option_style {self.option_style!r}; choose one of {OPTION_STYLES} or ''")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be a positive number of steps or -1, got {self.max_steps!r}")
        if self.describe_warmup_steps < 0:
            raise ValueError(f"describe_warmup_steps must be >= 0, got {self.describe_warmup_steps!r}")
        if self.perception_warmup_steps < 0 or self.perception_warmup_images < 1:
            raise ValueError("perception_warmup_steps must be >= 0 and perception_warmup_images >= 1, got "
                             f"{self.perception_warmup_steps!r} and {self.perception_warmup_images!r}")
        if self.copy_warmup_steps < 0 or self.copy_warmup_batch_size < 1:
            raise ValueError("copy_warmup_steps must be >= 0 and copy_warmup_batch_size >= 1, got "
                             f"{self.copy_warmup_steps!r} and {self.copy_warmup_batch_size!r}")
        if self.max_train_examples < 0 or self.eval_samples < 0:
            raise ValueError("max_train_examples and eval_samples must be >= 0")
        if self.max_length is not None and self.max_length < 64:
            raise ValueError(f"max_length {self.max_length} is too short for an image and a reply (>= 64)")


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
# Data


def load_splits(data_dir: str | os.PathLike, splits: Sequence[str] = ("train", "val")):
    """The DatasetDict at `data_dir`, checked for the splits and columns SFT needs."""
    from workbench import data

    path = Path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"dataset folder {str(path)!r} does not exist (build one with `workbench data --out {path}`)")
    dd = data.load_dataset_dir(path)
    for split in splits:
        if split not in dd:
            raise ValueError(f"dataset {str(path)!r} has no {split!r} split (it has {sorted(dd)})")
        missing = [c for c in REQUIRED_COLUMNS if c not in dd[split].column_names]
        if missing:
            raise ValueError(f"dataset {str(path)!r}, split {split!r} lacks required columns {missing}")
    return dd


def example_index(tasks: Sequence[str], blend: str) -> list[tuple[int, str]]:
    """(row index, path) of every training example of `blend`: one per path for QA rows, one
    (path "plain") for blend rows.

    >>> example_index(["region_qa", "caption", "general_qa"], "blend")
    [(0, 'lor'), (0, 'dtr'), (1, 'plain'), (2, 'lor'), (2, 'dtr')]
    >>> example_index(["region_qa", "caption"], "dtr_only")
    [(0, 'dtr')]
    """
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose one of {tuple(BLENDS)}")
    preset = BLENDS[blend]
    out: list[tuple[int, str]] = []
    for i, task in enumerate(tasks):
        if task not in preset["tasks"]:
            continue
        if task in schema.QA_TASKS:
            out += [(i, path) for path in preset["paths"]]
        else:
            out.append((i, "plain"))
    return out


def training_examples(rows, blend: str = "blend", region_coords: bool = True, max_examples: int = 0, seed: int = 0,
                      group_size: int = 1, system: str = "full", option_style: str = "letter_first"):
    """The `datasets.Dataset` TRL trains on, one item per (row, path) of `blend`, shuffled with
    `seed` (`max_examples` > 0 keeps the first ones). `group_size` > 1 orders the items so that
    each consecutive group of that many shares one path (see `group_by_path`), with the groups in
    seeded random order. Items are made on access (a `with_transform`,
    so an epoch never pays for examples it does not reach): `messages` (system, user with an image
    placeholder, assistant target), `image`, and `id` / `task` / `path` for inspection (TRL's
    collator reads only the first two). `.with_format(None)` shows the raw index: row, task, path.
    `region_coords`, `system` and `option_style` shape the prompts (`model.prompt_options(model)`
    gives all three).
    """
    import datasets as hf
    import numpy as np

    from workbench import prompts

    tasks = list(rows["task"])  # a plain list: indexing a datasets Column reads the table each time
    index = example_index(tasks, blend)
    if not index:
        raise ValueError(f"the training split has no rows for blend {blend!r} (tasks {BLENDS[blend]['tasks']})")
    order = np.random.default_rng(seed).permutation(len(index))
    if max_examples:
        order = order[:max_examples]
    picked = [index[i] for i in order]
    if group_size > 1:
        picked = group_by_path(picked, group_size, seed)
    kept = [c for c in ("id", "task", "image", "regions", "question", "choices", "lor_target", "dtr_target")
            if c in rows.column_names]
    source = rows.select_columns(kept)  # no copy; depth and geometry are never read

    def make(batch: dict[str, list]) -> dict[str, list]:
        src = source[list(batch["row"])]  # dict of columns, images decoded
        out: dict[str, list] = {"messages": [], "image": src["image"], "id": src["id"], "task": src["task"],
                                "path": list(batch["path"])}
        for k, path in enumerate(batch["path"]):
            row = {c: src[c][k] for c in kept}
            out["messages"].append(prompts.to_messages(row, "auto" if path == "plain" else path,
                                                       region_coords=region_coords, with_target=True,
                                                       system=system, option_style=option_style))
        return out

    raw = hf.Dataset.from_dict({"row": [i for i, _ in picked], "task": [tasks[i] for i, _ in picked],
                                "path": [p for _, p in picked]})
    return raw.with_transform(make)


def group_by_path(items: Sequence[tuple[int, str]], size: int, seed: int = 0) -> list[tuple[int, str]]:
    """`items` (row, path) reordered into consecutive groups of `size` with one path each (DTR
    prompts are about twice as long as LOR ones, so a mixed batch is mostly padding), the groups
    in seeded random order; what is left of each path (fewer than `size`) goes last, so that
    every batch boundary stays on a group boundary.

    >>> group_by_path([(0, "lor"), (1, "dtr"), (2, "lor"), (3, "dtr"), (4, "lor")], 2, seed=0)
    [(1, 'dtr'), (3, 'dtr'), (0, 'lor'), (2, 'lor'), (4, 'lor')]
    """
    import numpy as np

    groups, rest = [], []
    for path in sorted({p for _, p in items}):
        same = [item for item in items if item[1] == path]
        full = len(same) - len(same) % size
        groups += [same[i : i + size] for i in range(0, full, size)]
        rest += same[full:]
    order = np.random.default_rng(seed).permutation(len(groups))
    return [item for g in order for item in groups[g]] + rest


def qa_rows(split, n: int, seed: int = 0) -> list[dict]:
    """`n` QA rows (region_qa, general_qa) of a split, a seeded random sample in a fixed order."""
    import numpy as np

    idx = [i for i, t in enumerate(split["task"]) if t in schema.QA_TASKS]
    if n and n < len(idx):
        idx = sorted(np.random.default_rng(seed).choice(idx, size=n, replace=False).tolist())
    return [split[int(i)] for i in idx]


# ---------------------------------------------------------------------------------------------
# Model and trainer


def build_model(train_rows, settings: SFTSettings, model_name_or_path: str = ""):
    """(model, processor): the built-in tiny model with a tokenizer trained on the train split's
    text (`prompts.corpus`), or a pretrained VLM / saved checkpoint loaded with `model.load`
    (LoRA for a pretrained VLM when `settings.use_lora`)."""
    from workbench import model as M
    from workbench import prompts

    if not model_name_or_path:
        text_rows = train_rows.select_columns(["question", "regions", "choices", "lor_target", "dtr_target"])
        extra = {"option_style": settings.option_style} if settings.option_style else {}
        model_settings = M.ModelSettings.from_profile(settings.model_profile or settings.profile, seed=settings.seed,
                                                      **extra)
        return M.build_tiny(prompts.corpus(text_rows, model_settings.system_prompts, model_settings.option_style),
                            model_settings)
    lora = None
    if settings.use_lora and not _is_builtin_checkpoint(model_name_or_path):
        lora = M.LoraSettings(r=settings.lora_r, alpha=settings.lora_alpha)
    return M.load(model_name_or_path, lora=lora)


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
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = None if has_generation_markers(processor.chat_template) else get_training_chat_template(processor)
    return DataCollatorForVisionLanguageModeling(
        processor=processor, max_length=settings.max_length, assistant_only_loss=True, chat_template=template
    )


def build_trainer(model, processor, train_dataset, out_dir, settings: SFTSettings, callbacks=()):
    """The TRL `SFTTrainer` over `train_dataset` (from `training_examples`) with `make_collator`."""
    from trl import SFTTrainer

    from workbench import model as M

    return SFTTrainer(
        model=model,
        args=sft_config(out_dir, settings, pretrained=not M.is_region_model(model)),
        data_collator=make_collator(processor, settings),
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=list(callbacks),
    )


def collate(processor, examples: Sequence[Mapping[str, Any]], settings: SFTSettings | None = None) -> dict[str, Any]:
    """The training batch `make_collator` makes of `examples` (items of `training_examples`):
    input_ids, attention_mask, labels (-100 where there is no loss), pixel_values, image_grid_thw."""
    collator = make_collator(processor, settings or SFTSettings())
    return collator([{"messages": ex["messages"], "image": ex["image"]} for ex in examples])


def describe_tokens(processor, batch: Mapping[str, Any], index: int = 0) -> list[dict[str, Any]]:
    """One sample of a collated batch as a list of {token, id, loss, kind}; kind is image |
    region | loc | format | pad | text. Used by notebook 02 to show what the model reads."""
    from workbench import model as M

    tok = processor.tokenizer
    ids = batch["input_ids"][index].tolist()
    labels = batch["labels"][index].tolist()
    mask = batch["attention_mask"][index].tolist()
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    region_id = tok.convert_tokens_to_ids(schema.REGION_TOKEN)
    loc_ids = set(tok.convert_tokens_to_ids(list(M.LOC_TOKENS)))
    format_ids = set(tok.convert_tokens_to_ids(list(M.FORMAT_TOKENS)))
    out = []
    for i, (t, label, m) in enumerate(zip(ids, labels, mask)):
        kind = ("pad" if not m else "image" if t == image_id else "region" if t == region_id
                else "loc" if t in loc_ids else "format" if t in format_ids else "text")
        out.append({"position": i, "id": t, "token": tok.decode([t]), "loss": label != -100, "kind": kind})
    return out


TOKEN_COLORS = {"image": "#d9e8fb", "region": "#ffd6a5", "loc": "#ffeacc", "format": "#d8f3dc", "text": "#ffffff",
                "pad": "#eeeeee"}


def tokens_html(tokens: Sequence[Mapping[str, Any]]) -> str:
    """HTML of `describe_tokens` output: one chip per token colored by kind, loss tokens bold
    and underlined, a run of image placeholders shown as one chip with its length."""
    import html

    chips, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        j = i + 1
        if t["kind"] in ("image", "pad"):
            while j < len(tokens) and tokens[j]["kind"] == t["kind"]:
                j += 1
        text = t["token"] if j == i + 1 else f"{t['token']} x{j - i}"
        style = f"background:{TOKEN_COLORS[t['kind']]};border:1px solid #ccc;margin:1px;padding:0 2px;white-space:pre"
        if t["loss"]:
            style += ";font-weight:bold;text-decoration:underline"
        chips.append(f'<span style="{style}" title="{t["kind"]}, id {t["id"]}">{html.escape(text)}</span>')
        i = j
    legend = " ".join(f'<span style="background:{c};border:1px solid #ccc;padding:0 4px">{k}</span>'
                      for k, c in TOKEN_COLORS.items())
    return f'<div style="font-family:monospace;font-size:12px;line-height:1.9">{legend}<br>{"".join(chips)}</div>'


# ---------------------------------------------------------------------------------------------
# Quick evaluation


def quick_eval(model, processor, rows: Sequence[Mapping[str, Any]], paths: Sequence[str] = ("lor", "dtr"),
               max_new_tokens: int = 200, batch_size: int = 16) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Greedy completions of QA `rows` on each path, scored with `rewards.score`.

    Returns ({path: {n, format_rate, choice_accuracy, n_choice, number_accuracy, n_number,
    detect, overall}}, per-completion records). `number_accuracy` is the mean SPEC accuracy
    reward of numeric answers; `workbench eval` reports the full metric table.
    """
    from workbench import model as M
    from workbench import rewards

    metrics: dict[str, dict[str, float]] = {}
    records: list[dict] = []
    for path in paths:
        completions = M.generate(model, processor, list(rows), path, max_new_tokens=max_new_tokens, batch_size=batch_size)
        scores = []
        for row, completion in zip(rows, completions):
            s = rewards.score(completion, row["answer"], row.get("centers"), path, row.get("answer_type"))
            scores.append(s)
            records.append({"id": row["id"], "path": path, "category": row["category"], "answer_type": row["answer_type"],
                            "answer": row["answer"], "predicted": rewards.parse_answer(completion),
                            "completion": completion, **s})
        metrics[path] = _summarise(rows, scores)
    return metrics, records


def _summarise(rows, scores) -> dict[str, float | None]:
    def mean(values):
        values = list(values)
        return round(sum(values) / len(values), 4) if values else None

    choice = [s["accuracy"] for r, s in zip(rows, scores) if r["answer_type"] == "choice"]
    number = [s["accuracy"] for r, s in zip(rows, scores) if r["answer_type"] == "number"]
    detect = [s["detect"] for s in scores if "detect" in s]
    out = {"n": len(scores), "format_rate": mean(s["format"] for s in scores),
           "choice_accuracy": mean(choice), "n_choice": len(choice),
           "number_accuracy": mean(number), "n_number": len(number),
           "overall": mean(s["overall"] for s in scores)}
    if detect:
        out["detect"] = mean(detect)
    return out


def chance_choice_accuracy(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Expected accuracy of guessing a letter uniformly among each choice row's options."""
    per_row = [1.0 / len(r["choices"]) for r in rows if r["answer_type"] == "choice" and r["choices"]]
    return round(sum(per_row) / len(per_row), 4) if per_row else None


# ---------------------------------------------------------------------------------------------
# Training


def last_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The `checkpoint-N` folder with the largest N in `out_dir` that holds a trainer state, or None."""
    out = Path(out_dir)
    if not out.is_dir():
        return None
    found = []
    for child in out.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").is_file():
            return path
    return None


def _check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"SFT output {str(out)!r} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()) or resume:
        return
    marks = (SUMMARY, "trainer_state.json", "config.json", "runs")  # runs/: tensorboard logs of a run killed early
    ours = any((out / m).exists() for m in marks) or any(out.glob("checkpoint-*"))
    if not ours:
        raise FileExistsError(f"SFT output folder {str(out)!r} exists and is not an SFT run; refusing to write into it")
    if not overwrite:
        raise FileExistsError(f"SFT output folder {str(out)!r} already holds a run (pass --resume to continue it "
                              "or --overwrite to start over)")
    shutil.rmtree(out)


def train_sft(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: SFTSettings | None = None,
    model_name_or_path: str = "",
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    overwrite: bool = False,
    initial: tuple[Any, Any] | None = None,
) -> SFTResult:
    """Cold-start SFT on the train split of `data_dir`; the final model goes to `out_dir`.

    model_name_or_path: "" = a fresh built-in tiny model (tokenizer trained on the data), else a
    pretrained VLM name/path (LoRA, merged at the end) or a saved workbench model (fully trained).
    resume: continue from the last `checkpoint-*` in `out_dir` (a fresh start if there is none).
    overwrite: replace a finished or interrupted run in `out_dir` instead of refusing.
    callbacks: extra `transformers.TrainerCallback`s (e.g. a live loss plot).
    initial: an already built (model, processor) to train, e.g. from `build_model` (notebook 02);
    ignored when resuming from a checkpoint.
    """
    import torch

    from workbench import model as M

    start = time.perf_counter()
    settings = settings or SFTSettings()
    out = Path(out_dir)
    _check_out_dir(out, resume, overwrite)
    dd = load_splits(data_dir)
    checkpoint = last_checkpoint(out) if resume else None

    if checkpoint is not None and not model_name_or_path:
        model, processor = M.load(checkpoint)  # same tokenizer and config as the interrupted run
    elif checkpoint is not None and _is_builtin_checkpoint(model_name_or_path):
        model, processor = M.load(checkpoint)
    elif initial is not None:
        model, processor = initial
    else:
        model, processor = build_model(dd["train"], settings, model_name_or_path)
    prompting = M.prompt_options(model)
    seen = None
    if checkpoint is None and needs_perception_warmup(model, settings):
        seen = perception.warm_up(model, processor, dd["train"], settings.perception_warmup_steps,
                                  val_rows=dd["val"] if settings.eval_samples else None,
                                  batch_images=settings.perception_warmup_images,
                                  learning_rate=settings.learning_rate, seed=settings.seed,
                                  log=None if settings.disable_tqdm else _print_perception_log)
    warmup = None
    if checkpoint is None and needs_copy_warmup(model, settings):
        warmup = copying.warm_up(model, processor.tokenizer, settings.copy_warmup_steps,
                                 batch_size=settings.copy_warmup_batch_size, learning_rate=settings.learning_rate,
                                 seed=settings.seed, system_style=prompting["system"],
                                 option_style=prompting["option_style"],
                                 log=None if settings.disable_tqdm else _print_copy_log)
    described = None
    if checkpoint is None and needs_describe_warmup(model, settings):
        described = perception.describe_warm_up(
            model, processor, dd["train"], settings.describe_warmup_steps,
            val_rows=dd["val"] if settings.eval_samples else None, eval_views=min(settings.eval_samples, 64) or 1,
            batch_size=settings.per_device_train_batch_size, learning_rate=settings.learning_rate,
            system=prompting["system"], seed=settings.seed,
            log=None if settings.disable_tqdm else _print_describe_log)
    train = training_examples(dd["train"], settings.blend, max_examples=settings.max_train_examples, seed=settings.seed,
                              group_size=settings.per_device_train_batch_size if settings.group_by_path else 1,
                              **prompting)
    raw = train.with_format(None)
    trainer = build_trainer(model, processor, train, out, settings, callbacks)

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    train_time = time.perf_counter() - t0

    final = _merged(trainer.model)
    _save_final(final, processor, trainer, out)

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
        perception_warmup=seen,
        describe_warmup=described,
        threads=torch.get_num_threads(),
    )
    io.write_json(out / SUMMARY, summary)
    return result


def needs_copy_warmup(model, settings: SFTSettings) -> bool:
    """True for a built-in model that has not had its copy warm-up, when `settings` asks for one."""
    from workbench import model as M

    return bool(settings.copy_warmup_steps) and M.is_region_model(model) and not copying.warmed_steps(model)


def needs_perception_warmup(model, settings: SFTSettings) -> bool:
    """True for a built-in model that has not had its perception warm-up, when `settings` asks for one."""
    from workbench import model as M

    return (bool(settings.perception_warmup_steps) and M.is_region_model(model)
            and not perception.warmed_steps(model))


def needs_describe_warmup(model, settings: SFTSettings) -> bool:
    """True for a built-in model that has not had its describe warm-up, when `settings` asks for one."""
    from workbench import model as M

    return (bool(settings.describe_warmup_steps) and M.is_region_model(model)
            and not perception.described_steps(model))


def _print_describe_log(entry: Mapping[str, Any]) -> None:
    print(f"describe warm-up step {entry['describe_step']}: loss {entry['describe_loss']:.3f}", flush=True)


def _print_perception_log(entry: Mapping[str, Any]) -> None:
    print(f"perception warm-up step {entry['perception_step']}: loss {entry['perception_loss']:.3f}", flush=True)


def _print_copy_log(entry: Mapping[str, Any]) -> None:
    print(f"copy warm-up step {entry['copy_step']}: loss {entry['copy_loss']:.3f}", flush=True)


def _merged(model):
    """The plain model to save: a PEFT model's adapters merged into the base weights."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _save_final(model, processor, trainer, out: Path) -> None:
    """Model + processor (safetensors) and trainer_state.json into `out`; each file is written to
    a temporary sibling folder first and moved in, so a kill never leaves a half-written weight file."""
    tmp = out / ".final-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    for item in tmp.iterdir():
        os.replace(item, out / item.name)
    tmp.rmdir()
    trainer.save_state()  # trainer_state.json with log_history, read by the run report


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
    parser.add_argument("--perception-warmup-steps", type=int, default=None,
                        help="steps of the region perception warm-up of a new built-in model (default 0: off)")
    parser.add_argument("--describe-warmup-steps", type=int, default=None,
                        help="steps of the describe warm-up of a new built-in model (default 0: off)")
    parser.add_argument("--no-eval", action="store_true", help="skip the quick greedy evaluation on val")


def cli(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.blend is not None:
        overrides["blend"] = args.blend
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    if args.option_style is not None:
        overrides["option_style"] = args.option_style
    for name in ("perception_warmup_steps", "describe_warmup_steps"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
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
