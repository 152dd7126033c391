"""Settings of one cold-start SFT run (`SFTSettings`) and its profile presets (the base stage shares
its trainer fields: `base.BaseSettings.trainer_settings`). Read by `sft`, `base` and the notebooks;
`workbench.train.sft` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.settings import PROFILES, check_profile, check_steps, from_preset, known_names
from workbench.tasks.prompts import OPTION_STYLES
from workbench.train.examples import BLENDS

COPY_WARMUP_STEPS = 2500
"""Copy warm-up of the default and gpu profiles: 5-9 minutes on 2 CPU cores (issue #3)."""


@dataclass
class SFTSettings:
    """Settings of one cold-start SFT run. Profiles are presets (`from_profile`)."""

    profile: str = ""
    """Preset these settings started from (smoke | default | gpu); "" when built without one."""
    blend: str = "blend"
    """Training mixture, a key of `BLENDS`: blend | cot_only | lor_only | dtr_only."""
    model_profile: str = ""
    """`ModelSettings` profile of the built-in model; "" = same as `profile`."""
    option_style: str = ""
    """How a new built-in model lists choice options (`prompts.OPTION_STYLES`); "" = the model
    profile's (`letter_first`). A loaded checkpoint keeps the style it was built with."""
    depth_embedding: str = ""
    """The 3D positional embedding (`model.DEPTH_MODES`: none | relative | metric) of a new built-in
    model, or added to a pretrained Qwen2.5-VL; "" = the built-in model profile's (`metric`), the
    paper's (`relative`) for a Qwen2.5-VL. A saved built-in model keeps its own."""
    region_pool: str = ""
    """What a new built-in model's regions pool (`model.REGION_POOLS`: patch | merged); "" = the
    model profile's (`patch`). A saved built-in model keeps its own."""
    region_box: str = ""
    """Where a new built-in model's language model learns a region's place (`model.REGION_BOXES`):
    "tokens" (its box as location tokens and a box encoding) or "pooled" (only what the box pools,
    as the paper's model); "" = the model profile's ("tokens"). A saved built-in model keeps its own."""
    grounding: tuple[str, ...] = ()
    """Grounding blended in from the question rows (`examples.GROUNDING_TASKS`): each region a train
    question marks also gives one region -> 3D center (`ground_3d`) or region -> 2D box example, on
    the plain prompt. The paper's cold start blends grounding data with the traces; this gives it to
    data without grounding rows (the `default` profile's). () = none."""
    max_train_examples: int = 0
    """Use at most this many training examples (a seeded random subset); 0 = all."""
    single_view_first: float = 0.0
    """A curriculum for data with multi-view questions: this share of the `max_steps` trains on the
    single-view examples only, the rest on the whole blend (multi-view questions and their
    `ground_frame` grounding mixed in). Mixed from the first step, the two-view default run's
    think stopped following its detect block (docs/experiments.md, "The default profile across two
    views"). 0 = mixed throughout; needs `max_steps` and `group_by_path` (a fixed order)."""
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
    """Steps of the text-only copy warm-up (`workbench.train.copying`) a fresh built-in model gets before
    SFT; 0 = none. Skipped for pretrained VLMs, already warmed models and resumed runs."""
    copy_warmup_batch_size: int = 32
    """Sequences per copy warm-up step (short and text-only: about a fifth of an image example)."""
    copy_warmup_numbers: float = 0.0
    """Share of the copy warm-up's examples that copy numbers (`copying.NUMBER_TASKS`); 0 = words only."""
    copy_warmup_learning_rate: float = 0.0
    """The copy warm-up's learning rate; 0 = `learning_rate`."""
    depth_dropout: float = 0.1
    """Share of the examples trained without depth when the model embeds depth (seeded per example),
    so that an image without depth (an upload) still gets answers."""

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
            # questions, both paths), from the run's base model: 7,200 steps of 8 are 1.7 passes over
            # 33,600 examples, the 16,800 questions (each row on both paths) and a region -> 3D center
            # example for each region they mark (the grounding blended, as the paper's cold start
            # keeps it), ~41 minutes. At lr 1e-3 without grounding SFT overwrote the base model's
            # grounding; lr 3e-4 with it blended kept it
            # (median center error 0.17 / 0.15 / 0.37 m on val / test / test_ood; docs/experiments.md,
            # "The base stage's length"; issue #19). A fresh model's copy warm-up keeps the rate it was
            # measured at. `letter_after` options make the answer letter a copy of the trace's conclusion
            "default": dict(
                max_steps=7200,
                per_device_train_batch_size=8,
                learning_rate=3e-4,
                grounding=("ground_3d", "ground_frame"),
                logging_steps=25,
                save_steps=600,
                eval_samples=96,
                copy_warmup_steps=COPY_WARMUP_STEPS,
                copy_warmup_learning_rate=1e-3,
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
        check_profile(self.profile)
        from workbench.train.examples import GROUNDING_TASKS
        self.grounding = known_names(self.grounding, GROUNDING_TASKS, "grounding tasks")
        if self.blend not in BLENDS:
            raise ValueError(f"unknown blend {self.blend!r}; choose one of {tuple(BLENDS)}")
        if self.model_profile not in ("", *PROFILES):
            raise ValueError(f"unknown model_profile {self.model_profile!r}; choose one of {PROFILES} or ''")
        if self.option_style not in ("", *OPTION_STYLES):
            raise ValueError(f"unknown option_style {self.option_style!r}; choose one of {OPTION_STYLES} or ''")
        from workbench.model.settings import DEPTH_MODES
        if self.depth_embedding not in ("", *DEPTH_MODES):
            raise ValueError(f"unknown depth_embedding {self.depth_embedding!r}; choose one of {DEPTH_MODES} or ''")
        from workbench.model.architecture import REGION_POOLS
        if self.region_pool not in ("", *REGION_POOLS):
            raise ValueError(f"unknown region_pool {self.region_pool!r}; choose one of {REGION_POOLS} or ''")
        from workbench.model.settings import REGION_BOXES
        if self.region_box not in ("", *REGION_BOXES):
            raise ValueError(f"unknown region_box {self.region_box!r}; choose one of {tuple(REGION_BOXES)} or ''")
        check_steps(self, ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"))
        if not 0.0 <= self.single_view_first < 1.0:
            raise ValueError(f"single_view_first must be a share in [0, 1), got {self.single_view_first!r}")
        if self.single_view_first and (self.max_steps < 1 or not self.group_by_path or self.max_train_examples):
            raise ValueError("single_view_first needs max_steps > 0 and group_by_path, without max_train_examples "
                             f"(got max_steps={self.max_steps}, group_by_path={self.group_by_path}, "
                             f"max_train_examples={self.max_train_examples})")
        if self.copy_warmup_learning_rate < 0:
            raise ValueError(f"copy_warmup_learning_rate must be >= 0, got {self.copy_warmup_learning_rate!r}")
        if not 0.0 <= self.copy_warmup_numbers <= 1.0:
            raise ValueError(f"copy_warmup_numbers must be in [0, 1], got {self.copy_warmup_numbers!r}")
        if self.copy_warmup_steps < 0 or self.copy_warmup_batch_size < 1:
            raise ValueError("copy_warmup_steps must be >= 0 and copy_warmup_batch_size >= 1, got "
                             f"{self.copy_warmup_steps!r} and {self.copy_warmup_batch_size!r}")
        if not 0.0 <= self.depth_dropout <= 1.0:
            raise ValueError(f"depth_dropout must be in [0, 1], got {self.depth_dropout!r}")
        if self.max_train_examples < 0 or self.eval_samples < 0:
            raise ValueError("max_train_examples and eval_samples must be >= 0")
        if self.max_length is not None and self.max_length < 64:
            raise ValueError(f"max_length {self.max_length} is too short for an image and a reply (>= 64)")
