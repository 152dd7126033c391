"""GRPO, the reinforcement stage of SR-ReaL (SPEC section 5), on TRL's `GRPOTrainer`.
Taught in `notebooks/03_grpo.ipynb`.

How this departs from textbook GRPO (DeepSeekMath), in the paper's recipe:
1. Group size 5, sampling at temperature 1.0 / top_p 0.99, KL to the reference model added to
   the loss with coefficient 0.01 (TRL `beta`), clip-higher (`epsilon` 0.2, `epsilon_high` 0.3)
   and a token-mean loss (TRL `loss_type="dapo"`: token losses summed over the whole generation
   batch and divided by its number of completion tokens, so long answers are not down-weighted).
2. Dynamic sampling: a prompt group whose mean overall reward is <= 0.2 or >= 0.99 teaches
   little (its advantages are ~0), so it is dropped and further prompt batches are generated
   until the batch is full again (`DynamicSamplingGRPOTrainer`). After `max_refill_tries`
   extra batches, the remaining slots take the dropped groups with the largest reward spread.
3. One reward for both paths: `rewards.reward_funcs` returns per-row weighted components whose
   sum is `rewards.score(...)["overall"]`, so LOR and DTR prompts share one batch ("joint"). The
   row's `path` column picks the system prompt (`prompts.to_messages`) and the reward rules.
4. Region boxes travel inside the prompt's token ids (`<region><|loc_a|>...<|loc_d|>`), so TRL's
   generation and log-prob passes give the built-in model its region features unchanged.
5. Alarms (`AlarmCallback`) watch the logs for the usual RL failure modes: format reward
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
import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler, nanstd, split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from workbench import io, prompts
from workbench import model as model_mod
from workbench import rewards as rewards_mod
from workbench.data import load_dataset_dir
from workbench.schema import PATHS, QA_TASKS
from workbench.settings import from_preset
from workbench.sft import last_checkpoint

logger = logging.getLogger(__name__)

PROFILES = ("smoke", "default", "gpu")
PATH_MODES = ("joint", *PATHS)
PROMPT_COLUMNS = ("id", "task", "category", "question", "image", "answer", "answer_type", "centers", "path")
"""Dataset columns kept for GRPO (plus `prompt`): what the reward functions and the samples log read."""


@dataclass
class GRPOSettings:
    """Settings of one GRPO run (`train_grpo`, `workbench grpo`). Profiles are presets (`from_profile`)."""

    paths: str = "joint"
    """Which prompts and paths: `joint` mixes LOR and DTR prompts (the row's `path` decides); `lor` / `dtr` force
    that path for every prompt."""
    split: str = "train"
    """Dataset split the RL prompts come from (rows whose task is region_qa or general_qa)."""
    max_prompts: int | None = None
    """Use at most this many prompts of the split (None: all)."""
    num_generations: int = 5
    """Completions per prompt (the GRPO group size; paper: 5)."""
    per_device_train_batch_size: int = 10
    """Completions per process per step (TRL counts completions, not prompts); a multiple of num_generations."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per optimizer step (TRL generates for all of them at once)."""
    max_completion_length: int = 256
    """Longest completion in tokens; longer samples are cut (and count as `clipped`)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (paper: 1.0)."""
    top_p: float = 0.99
    """Nucleus sampling of the rollouts (paper: 0.99)."""
    beta: float = 0.01
    """Coefficient of the KL-to-reference term in the loss (paper: 0.01)."""
    epsilon: float = 0.2
    """Lower PPO clip range (paper: 0.2)."""
    epsilon_high: float = 0.3
    """Upper PPO clip range, clip-higher (paper: 0.3)."""
    loss_type: str = "dapo"
    """TRL loss aggregation; `dapo` is the token-mean over the generation batch (paper: token-mean)."""
    scale_rewards: str = "group"
    """Advantage scaling: `group` (divide by the group's reward std), `batch` or `none`."""
    num_iterations: int = 1
    """Policy updates per generated batch (mu in the GRPO paper)."""
    learning_rate: float = 2e-4
    """AdamW learning rate for the built-in tiny model (trained from scratch, it needs a large one)."""
    pretrained_learning_rate: float = 1e-6
    """Learning rate used instead when the model is a real pretrained VLM (paper: 1e-6 for a 7B)."""
    lr_scheduler_type: str = "constant_with_warmup"
    """Learning-rate schedule (transformers name)."""
    warmup_steps: int = 0
    """Linear warm-up steps of the learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    max_steps: int = 60
    """Optimizer steps of the run."""
    dynamic_sampling: bool = True
    """Drop prompt groups whose mean overall reward is outside (keep_low, keep_high) and refill the batch."""
    keep_low: float = 0.2
    """A group is kept only if its mean overall reward is above this (paper: 0.2)."""
    keep_high: float = 0.99
    """... and below this (paper: 0.99)."""
    max_refill_tries: int = 2
    """Extra prompt batches generated per step at most to refill dropped groups; then the fallback."""
    center_reward: str = "step"
    """Detection reward variant (`rewards.RewardSettings`): `step` (SPEC) or `exp`."""
    detect_denominator: str = "predicted"
    """Detection reward denominator (`rewards.RewardSettings`): `predicted` (SPEC) or `max` (recall-aware)."""
    use_lora: bool | None = None
    """Train LoRA adapters (PEFT). None: LoRA for real pretrained VLMs, full fine-tuning for the built-in model."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scale numerator."""
    use_vllm: bool = False
    """Generate with vLLM (colocated). Used only when vllm imports, a GPU exists and the model is a real VLM."""
    vllm_mode: str = "colocate"
    """TRL vLLM mode: `colocate` (same processes) or `server` (`trl vllm-serve` on other GPUs)."""
    bf16: bool | None = None
    """bfloat16 mixed precision. None: on when a CUDA GPU supports it."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass (saves memory on big models, costs time)."""
    logging_steps: int = 1
    """Log every this many steps."""
    save_steps: int = 20
    """Write a checkpoint every this many steps."""
    save_total_limit: int = 2
    """Keep at most this many checkpoints."""
    num_sample_completions: int = 4
    """Completions written to samples.jsonl per logging step."""
    report_to: str = "auto"
    """Loggers (transformers names, comma separated); `auto`: tensorboard when installed, else none."""
    alarm_window: int = 10
    """Logging steps the alarms look back over."""
    alarm_format_saturated: float = 0.95
    """Alarm when the format reward exceeds this ..."""
    alarm_accuracy_flat: float = 0.02
    """... while accuracy moved less than this over the window."""
    alarm_length_collapse: float = 0.3
    """Alarm when the mean completion length falls below this fraction of its first logged value."""
    alarm_length_explode: float = 0.8
    """Alarm when more than this fraction of completions hits max_completion_length."""
    alarm_zero_std: float = 0.8
    """Alarm when more than this fraction of groups has zero reward variance."""
    seed: int = 0
    """Seed of sampling, shuffling and (for LoRA) adapter initialisation."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> GRPOSettings:
        """A named preset (`smoke`, `default`, `gpu`) with field overrides.

        >>> GRPOSettings.from_profile("smoke", max_steps=3).max_steps
        3
        """
        presets: dict[str, dict[str, Any]] = {
            # seconds on a laptop CPU: plumbing only (completions are cut at 32 tokens)
            "smoke": dict(
                per_device_train_batch_size=10,
                max_completion_length=32,
                learning_rate=5e-4,
                max_steps=2,
                max_refill_tries=1,
                save_steps=2,
                num_sample_completions=2,
                alarm_window=3,
            ),
            # the real small run on 2 CPU cores: 60 steps of 2 prompt groups (see the class defaults)
            "default": {},
            # one GPU: bigger batches and budgets; a pretrained VLM gets LoRA, vLLM and lr 1e-6
            "gpu": dict(
                per_device_train_batch_size=40,
                max_completion_length=512,
                learning_rate=1e-4,
                max_steps=500,
                max_refill_tries=3,
                save_steps=50,
                activation_checkpointing=True,
                use_vllm=True,
                alarm_window=20,
            ),
        }
        return from_preset(cls, presets, name, overrides)

    def __post_init__(self):
        if self.paths not in PATH_MODES:
            raise ValueError(f"paths must be one of {PATH_MODES}, got {self.paths!r}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be at least 2 (GRPO compares a group), got {self.num_generations}"
            )
        local = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if local % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size * gradient_accumulation_steps ({local}) must be a multiple of "
                f"num_generations ({self.num_generations}) so every process holds whole prompt groups"
            )
        if not 0.0 <= self.keep_low < self.keep_high <= 1.0:
            raise ValueError(f"need 0 <= keep_low < keep_high <= 1, got {self.keep_low}, {self.keep_high}")
        if self.max_refill_tries < 0:
            raise ValueError(f"max_refill_tries must be >= 0, got {self.max_refill_tries}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def reward_settings(self):
        return rewards_mod.RewardSettings(
            center_reward=self.center_reward, detect_denominator=self.detect_denominator
        )


# ---------------------------------------------------------------------------------------------
# Prompts


def prompt_dataset(dataset, settings: GRPOSettings, region_coords: bool):
    """The RL prompts of `dataset` (a `datasets.Dataset` of workbench rows): QA rows only, a
    `prompt` column built by `prompts.to_messages` (image placeholder; TRL fills it from `image`),
    and `path` forced to `settings.paths` unless it is `joint`."""
    missing = [c for c in PROMPT_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset lacks the columns {missing} that GRPO needs (has {dataset.column_names})")
    # keep_in_memory: never write cache files into the (shared, read-only) dataset folder
    dataset = dataset.filter(lambda task: task in QA_TASKS, input_columns="task", keep_in_memory=True)
    if settings.max_prompts is not None:  # the first ones: the dataset order is already seeded-random
        dataset = dataset.select(range(min(settings.max_prompts, len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"no region_qa / general_qa rows in split {settings.split!r}: nothing to reinforce")

    def add_prompt(row):
        path = row["path"] if settings.paths == "joint" else settings.paths
        return {"path": path, "prompt": prompts.to_messages(row, path, region_coords=region_coords)}

    extra = [c for c in dataset.column_names if c not in PROMPT_COLUMNS]
    return dataset.map(add_prompt, remove_columns=extra, keep_in_memory=True)


def load_prompts(data_dir: str | os.PathLike, settings: GRPOSettings, region_coords: bool):
    """`prompt_dataset` of the split `settings.split` of the dataset folder `data_dir`."""
    data = load_dataset_dir(data_dir)
    if settings.split not in data:
        raise ValueError(f"dataset {str(data_dir)!r} has no split {settings.split!r} (has {list(data)})")
    return prompt_dataset(data[settings.split], settings, region_coords)


# ---------------------------------------------------------------------------------------------
# Dynamic sampling


def group_kept(mean: float, low: float = 0.2, high: float = 0.99) -> bool:
    """Whether a prompt group with this mean overall reward is trained on (SPEC 5: mean in (low, high)).

    >>> [group_kept(m) for m in (0.0, 0.2, 0.5, 0.99, 1.0, float("nan"))]
    [False, False, True, False, False, False]
    """
    return low < mean < high  # nan compares False: an unscorable group is dropped


def choose_groups(
    means: Sequence[float], stds: Sequence[float], need: int, low: float = 0.2, high: float = 0.99
) -> tuple[list[int], int]:
    """(indices of `need` groups to train on, how many of them are fallbacks).

    The first groups (in generation order) whose mean reward lies in (low, high); if there are
    fewer than `need`, the slots left take the dropped groups with the largest reward std (a group
    with std 0 has zero advantages and only adds the KL term).

    >>> choose_groups([0.0, 1.0, 0.5], [0.0, 0.0, 0.3], need=1)
    ([2], 0)
    >>> choose_groups([0.0, 1.0, 0.5, 0.1], [0.0, 0.0, 0.3, 0.2], need=2)
    ([2, 3], 1)
    """
    if len(means) != len(stds):
        raise ValueError(f"{len(means)} group means but {len(stds)} stds")
    if need > len(means):
        raise ValueError(f"need {need} groups but only {len(means)} were generated")
    kept = [i for i, m in enumerate(means) if group_kept(m, low, high)][:need]
    if len(kept) == need:
        return kept, 0
    rest = [i for i in range(len(means)) if i not in set(kept)]
    rest.sort(key=lambda i: -stds[i] if math.isfinite(stds[i]) else math.inf)  # stable: earlier first on ties
    fallback = rest[: need - len(kept)]
    return sorted(kept + fallback), len(fallback)


_LEFT_PADDED = {"prompt_ids", "prompt_mask"}
"""(B, P) tensors padded on the left (prompts)."""
_RIGHT_PADDED = {
    "completion_ids": None,  # the tokenizer's pad id
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 1.0,
    "tool_mask": 1,
    "advantages": 0.0,
}
"""(B, C) tensors padded on the right (completions) and their fill values."""
_PROMPT_COMPLETION = {"token_type_ids", "mm_token_type_ids"}
"""(B, P + C) tensors: a left-padded prompt part, then a right-padded completion part."""


def merge_rows(
    parts: Sequence[dict[str, Any]],
    picks: Sequence[tuple[int, int]],
    pad_token_id: int,
    multiple: int | None = None,
) -> dict[str, Any]:
    """One TRL generation output made of rows of several: row `r` of part `p` for each (p, r) in `picks`.

    `parts` are outputs of `GRPOTrainer._generate_and_score_completions` passed through TRL's
    `split_pixel_values_by_grid` (image tensors as one entry per sample). Prompts are re-padded on
    the left and completions on the right to the widest part (rounded up to `multiple`); image
    tensors are merged back with `unsplit_pixel_values_by_grid`. `num_items_in_batch` is not set:
    it counts tokens over all processes, so the caller recomputes it.
    """

    def width(w: int) -> int:
        return w if not multiple else -(-w // multiple) * multiple

    def pad(t: torch.Tensor, to: int, value, left: bool) -> torch.Tensor:
        if t.shape[1] == to:
            return t
        fill = t.new_full((t.shape[0], to - t.shape[1], *t.shape[2:]), value)
        return torch.cat([fill, t] if left else [t, fill], dim=1)

    def take(key: str, i: int, rows: list[int]):
        value = parts[i][key]
        return [value[r] for r in rows] if isinstance(value, list) else value[rows]

    by_part: dict[int, list[int]] = {}
    order = []  # (part, position in that part's selection) in pick order
    for p, r in picks:
        by_part.setdefault(p, []).append(r)
        order.append((p, len(by_part[p]) - 1))
    used = sorted(by_part)
    n_rows = [len(parts[p]["prompt_ids"]) for p in range(len(parts))]
    prompt_w = width(max(parts[p]["prompt_ids"].shape[1] for p in used))
    completion_w = width(max(parts[p]["completion_ids"].shape[1] for p in used))

    out: dict[str, Any] = {}
    for key, value in parts[used[0]].items():
        if key == "num_items_in_batch":
            continue
        if isinstance(value, list):  # per-sample lists: num_images, num_tiles, split image tensors
            for p in used:
                assert len(parts[p][key]) == n_rows[p], (
                    f"{key}: {len(parts[p][key])} entries for {n_rows[p]} rows"
                )
            chosen = {p: take(key, p, by_part[p]) for p in used}
            out[key] = [chosen[p][j] for p, j in order]
            continue
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"dynamic sampling cannot merge the generation output {key!r} ({type(value).__name__})"
            )
        if value.ndim == 0:
            out[key] = value
            continue
        if value.shape[0] != n_rows[used[0]]:
            raise ValueError(
                f"dynamic sampling cannot merge {key!r}: shape {tuple(value.shape)} is not one row per sample"
            )
        pieces = {}
        for p in used:
            t = take(key, p, by_part[p])
            if key in _LEFT_PADDED:
                t = pad(t, prompt_w, pad_token_id if key == "prompt_ids" else 0, left=True)
            elif key in _PROMPT_COMPLETION:
                split = parts[p]["prompt_ids"].shape[1]
                t = torch.cat(
                    [pad(t[:, :split], prompt_w, 0, True), pad(t[:, split:], completion_w, 0, False)], 1
                )
            elif key in _RIGHT_PADDED and t.ndim > 1 and any(parts[q][key].shape[1] > 1 for q in used):
                # (B, C) per-token values; a (B, 1) sequence-level importance ratio is left as is
                fill = _RIGHT_PADDED[key]
                t = pad(t, completion_w, pad_token_id if fill is None else fill, left=False)
            elif t.ndim > 1 and any(parts[q][key].shape[1:] != value.shape[1:] for q in used):
                raise ValueError(f"dynamic sampling cannot merge {key!r}: its width differs between batches")
            pieces[p] = t
        out[key] = torch.stack([pieces[p][j] for p, j in order])
    return unsplit_pixel_values_by_grid(out)


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with SR-ReaL's dynamic sampling and a samples log.

    Extension points used (no copy of TRL's loop):
    - `_calculate_rewards`: keeps the gathered overall reward of every completion (for the group
      filter), logs the unweighted components as `rewards/<name>/all` and buffers sample rows.
    - `_generate_and_score_completions`: calls TRL's version, filters the groups, pulls further
      prompt batches (`_refill_batches`) until every process has enough kept groups, and merges
      the kept rows into one output of the size TRL expects (`merge_rows`).
    - `log`: writes the buffered samples to `samples.jsonl`.
    """

    def __init__(self, *args, ds_settings: GRPOSettings, **kwargs):
        self.ds_settings = ds_settings
        self._last_overall = None
        self._samples: list[dict] = []
        self._refill_iter = None
        super().__init__(*args, **kwargs)

    # -- rewards --------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # (N, F): every completion of every process, gathered, one column per reward function
        per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weights = self.reward_weights.to(per_func.device)
        overall = (per_func * weights).nansum(dim=1)
        overall[torch.isnan(per_func).all(dim=1)] = torch.nan
        self._last_overall = overall
        self._score_local(inputs, completions)
        return per_func

    def _score_local(self, inputs, completions):
        """Unweighted reward components of this process's rows: metrics and sample buffer."""
        settings = self.ds_settings.reward_settings()
        scores = [
            rewards_mod.score(
                completion, row["answer"], row.get("centers"), row["path"], row.get("answer_type"), settings
            )
            for row, completion in zip(inputs, completions)
        ]
        for name in ("accuracy", "format", "detect"):  # TRL's `reward` is the overall one
            values = [s[name] for s in scores if name in s]
            if values:
                self._log_metric(f"rewards/{name}/all", sum(values) / len(values))
        n, g = self.ds_settings.num_sample_completions, self.num_generations
        order = list(range(0, len(inputs), g)) + [i for i in range(len(inputs)) if i % g]
        self._samples = [
            {
                "id": inputs[i].get("id"),
                "path": inputs[i]["path"],
                "question": inputs[i].get("question"),
                "answer": inputs[i]["answer"],
                "completion": rewards_mod.completion_text(completions[i]),
                **scores[i],
            }
            for i in order[:n]
        ]

    # -- dynamic sampling -------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        settings = self.ds_settings
        if not self.model.training or not settings.dynamic_sampling:
            return super()._generate_and_score_completions(inputs)
        g = self.num_generations
        n_proc, rank = self.accelerator.num_processes, self.accelerator.process_index
        assert len(inputs) % g == 0, f"{len(inputs)} local rows do not hold whole groups of {g}"
        need = len(inputs) // g  # groups this process must deliver
        parts, cand_means, cand_stds, cand_ref = [], [], [], []
        counts = torch.zeros(n_proc, dtype=torch.long)
        generated = kept_total = 0
        batch = inputs
        for attempt in range(settings.max_refill_tries + 1):
            out = super()._generate_and_score_completions(batch)
            grouped = self._last_overall.view(-1, g)  # (groups of all processes, G), same on every process
            means = torch.nanmean(grouped, dim=1).cpu()
            stds = nanstd(grouped, dim=1).cpu()
            keep = torch.tensor([group_kept(float(m), settings.keep_low, settings.keep_high) for m in means])
            assert keep.numel() == n_proc * need, f"{keep.numel()} groups for {n_proc} x {need}"
            counts += keep.view(n_proc, need).sum(dim=1)
            generated += keep.numel()
            kept_total += int(keep.sum())
            mine = slice(rank * need, (rank + 1) * need)
            parts.append(split_pixel_values_by_grid(out))
            cand_means += means[mine].tolist()
            cand_stds += stds[mine].tolist()
            cand_ref += [(attempt, k) for k in range(need)]
            if bool((counts >= need).all()) or attempt == settings.max_refill_tries:
                break  # the same decision on every process: counts come from gathered rewards
            batch = self._next_refill_batch(len(inputs))
        chosen, n_fallback = choose_groups(cand_means, cand_stds, need, settings.keep_low, settings.keep_high)
        picks = [(cand_ref[c][0], cand_ref[c][1] * g + j) for c in chosen for j in range(g)]
        merged = merge_rows(parts, picks, self._tokenizer.pad_token_id, self.pad_to_multiple_of)
        mask = (
            merged["completion_mask"]
            if "tool_mask" not in merged
            else merged["completion_mask"] * merged["tool_mask"]
        )
        merged["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        fallback_total = int(self.accelerator.gather(torch.tensor([n_fallback], device=mask.device)).sum())
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/kept_group_fraction"].append(kept_total / generated)
        metrics["dynamic_sampling/tries"].append(float(len(parts)))
        metrics["dynamic_sampling/fallback_groups"].append(float(fallback_total))
        if fallback_total:
            logger.warning(
                "dynamic sampling: after %d extra batches only %d of %d groups had a mean reward in (%g, %g); "
                "%d slots were filled with the dropped groups of largest reward spread",
                len(parts) - 1,
                kept_total,
                generated,
                settings.keep_low,
                settings.keep_high,
                fallback_total,
            )
        return merged

    def _next_refill_batch(self, n_local: int) -> list[dict]:
        """This process's share of a fresh generation batch (whole groups, same prompts order on
        every process), from a sampler of its own so the main dataloader is left untouched."""
        if self._refill_iter is None:
            self._refill_iter = self._refill_batches(n_local)
        return next(self._refill_iter)

    def _refill_batches(self, n_local: int):
        g = self.num_generations
        n_proc, rank = self.accelerator.num_processes, self.accelerator.process_index
        n_global = n_local * n_proc
        epoch = 0
        while True:
            # Seeded by the step the stream starts at, so a resumed run does not replay the same prompts.
            seed = self.args.seed + 1 + 7919 * (self.state.global_step + 1) + epoch
            sampler = RepeatSampler(self.train_dataset, g, batch_size=n_global // g, shuffle=True, seed=seed)
            indices = list(sampler)
            if len(indices) < n_global:
                raise ValueError(
                    f"{len(self.train_dataset)} prompts cannot fill a batch of {n_global // g} groups"
                )
            for start in range(0, len(indices) - n_global + 1, n_global):
                mine = indices[start + rank * n_local : start + (rank + 1) * n_local]
                yield [self.train_dataset[i] for i in mine]
            epoch += 1

    # -- logging ----------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        if self._samples and self.model.training and self.accelerator.is_main_process:
            _append_jsonl(
                Path(self.args.output_dir) / "samples.jsonl", self._samples, step=self.state.global_step
            )
            self._samples = []


def _append_jsonl(path: Path, rows: Sequence[dict], **extra: Any) -> None:
    """Append rows to a growing log. Not `io.write_jsonl`: rewriting the whole log every step is
    quadratic; a kill can at worst cut the last line, which `read_jsonl` skips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({**extra, **row}, sort_keys=True, default=str) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a jsonl log (samples.jsonl, alarms.jsonl); [] if it does not exist; a cut last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# ---------------------------------------------------------------------------------------------
# Alarms


class AlarmCallback(TrainerCallback):
    """Watches the training logs for RL failure modes; warns in the log, appends to
    `{output_dir}/alarms.jsonl` and keeps `self.alarms` (a list of dicts) for the notebook.

    Alarms (each fires at most once per `window` logging steps):
    - `format_saturated`: format reward > `format_saturated` while accuracy moved less than
      `accuracy_flat` over the last `window` logs (the policy games the format);
    - `length_collapse`: mean completion length < `length_collapse` x its first logged value;
    - `length_explode`: more than `length_explode` of the completions hit max_completion_length;
    - `zero_variance`: more than `zero_std` of the groups have zero reward variance (no signal).

    `check(logs, step)` takes one log dict and returns the alarms it raised (testable without a trainer).
    """

    FORMAT_KEYS = ("rewards/format/all", "rewards/format/mean")
    ACCURACY_KEYS = ("rewards/accuracy/all", "rewards/accuracy/mean")
    LENGTH_KEY = "completions/mean_length"
    CLIPPED_KEY = "completions/clipped_ratio"
    ZERO_STD_KEY = "frac_reward_zero_std"

    def __init__(
        self,
        window: int = 10,
        format_saturated: float = 0.95,
        accuracy_flat: float = 0.02,
        length_collapse: float = 0.3,
        length_explode: float = 0.8,
        zero_std: float = 0.8,
        output_dir: str | os.PathLike | None = None,
    ):
        self.window, self.format_saturated, self.accuracy_flat = window, format_saturated, accuracy_flat
        self.length_collapse, self.length_explode, self.zero_std = length_collapse, length_explode, zero_std
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []
        self.alarms: list[dict[str, Any]] = []
        self._last_fired: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: GRPOSettings, output_dir=None) -> AlarmCallback:
        return cls(
            window=settings.alarm_window,
            format_saturated=settings.alarm_format_saturated,
            accuracy_flat=settings.alarm_accuracy_flat,
            length_collapse=settings.alarm_length_collapse,
            length_explode=settings.alarm_length_explode,
            zero_std=settings.alarm_zero_std,
            output_dir=output_dir,
        )

    @staticmethod
    def _first(logs: dict, keys: Sequence[str]) -> float | None:
        for key in keys:
            value = logs.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                return float(value)
        return None

    def _is_metrics(self, logs: dict[str, Any]) -> bool:
        """False for logs without training metrics (e.g. the final train_runtime summary)."""
        return any(k in logs for k in (self.LENGTH_KEY, self.ZERO_STD_KEY, *self.FORMAT_KEYS))

    def check(self, logs: dict[str, Any], step: int | None = None) -> list[dict[str, Any]]:
        """Record one log dict; return the alarms it raised."""
        if not self._is_metrics(logs):
            return []
        step = len(self.history) if step is None else step
        self.history.append(dict(logs))
        raised = []

        def fire(kind: str, message: str, **values):
            last = self._last_fired.get(kind)
            if last is not None and len(self.history) - last < self.window:
                return
            self._last_fired[kind] = len(self.history)
            raised.append({"step": step, "kind": kind, "message": message, **values})

        recent = self.history[-self.window :]
        fmt = self._first(logs, self.FORMAT_KEYS)
        accs = [a for a in (self._first(h, self.ACCURACY_KEYS) for h in recent) if a is not None]
        if len(recent) >= self.window and fmt is not None and fmt > self.format_saturated and len(accs) >= 2:
            moved = max(accs) - min(accs)
            if moved < self.accuracy_flat:
                fire(
                    "format_saturated",
                    f"format reward {fmt:.2f} is saturated but accuracy moved only {moved:.3f} over the last "
                    f"{len(recent)} logs: the policy may be optimising the format, not the answers",
                    format=fmt,
                    accuracy_range=moved,
                )
        lengths = [
            h[self.LENGTH_KEY] for h in self.history if isinstance(h.get(self.LENGTH_KEY), (int, float))
        ]
        if len(lengths) >= 2 and lengths[0] > 0 and lengths[-1] < self.length_collapse * lengths[0]:
            fire(
                "length_collapse",
                f"mean completion length fell to {lengths[-1]:.1f} tokens from {lengths[0]:.1f} at the start",
                length=lengths[-1],
                start_length=lengths[0],
            )
        clipped = self._first(logs, (self.CLIPPED_KEY,))
        if clipped is not None and clipped > self.length_explode:
            fire(
                "length_explode",
                f"{clipped:.0%} of completions hit max_completion_length: lengths are exploding or the limit is too low",
                clipped_ratio=clipped,
            )
        zero = self._first(logs, (self.ZERO_STD_KEY,))
        if zero is not None and zero > self.zero_std:
            fire(
                "zero_variance",
                f"{zero:.0%} of prompt groups have zero reward variance: no learning signal "
                "(prompts too easy or too hard for the policy)",
                frac_reward_zero_std=zero,
            )
        for alarm in raised:
            logger.warning("GRPO alarm at step %s [%s]: %s", step, alarm["kind"], alarm["message"])
            if self.output_dir is not None:
                _append_jsonl(Path(self.output_dir) / "alarms.jsonl", [alarm])
        self.alarms += raised
        return raised

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.history:  # a resumed run: judge the new steps against the whole run so far
            self.history = [dict(h) for h in state.log_history if self._is_metrics(h)]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            if self.output_dir is None:
                self.output_dir = args.output_dir
            self.check(logs, step=state.global_step)


# ---------------------------------------------------------------------------------------------
# Training


def _vllm_usable() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def _report_to(value: str) -> str | list[str]:
    if value == "auto":
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else "none"
    return [v.strip() for v in value.split(",") if v.strip()] or "none"


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
    bf16 = settings.bf16
    if bf16 is None:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
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
        report_to=_report_to(settings.report_to),
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
    resume: bool = False,
    reward_funcs: tuple[list[Callable], list[float]] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run GRPO from the model in `model_dir` (an SFT folder, or a pretrained VLM name/path) on the
    prompts of `data_dir`; write checkpoints and the final model into `out_dir`.

    `resume=True` continues from the last `checkpoint-*` in `out_dir`; `overwrite=True` deletes an
    earlier GRPO run there and starts over (a folder that is not a GRPO run is never deleted).
    `reward_funcs` replaces the
    SPEC rewards with (functions, weights), e.g. for research variants or tests. `callbacks` are
    extra `TrainerCallback`s (e.g. `widgets.dashboard.TrainingDashboard().callback()`). Returns
    {"log_history", "metrics", "alarms", "out_dir", "global_step", "main_process"}.
    """
    settings = settings or GRPOSettings()
    out = Path(out_dir)
    _check_out_dir(out, resume, overwrite)
    last = last_checkpoint(out)  # only a checkpoint whose save finished (it holds trainer_state.json)
    if resume and last is None:
        raise FileNotFoundError(f"--resume: no checkpoint-* folder in {str(out)!r} to resume from")
    if not resume and last is not None:
        raise FileExistsError(
            f"{str(out)!r} already holds {Path(last).name}; pass --resume to continue it or --overwrite to start over"
        )

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
    train = load_prompts(data_dir, settings, region_coords=model_mod.uses_region_coords(model))
    funcs, weights = reward_funcs or rewards_mod.reward_funcs(settings.paths, settings.reward_settings())
    args = grpo_config(settings, out, pretrained, use_vllm, suppressed_tokens(processor))
    args.reward_weights = list(weights)
    alarms = AlarmCallback.from_settings(settings, output_dir=out)
    model_mod.publish_model_class()  # TRL may have been imported first: name the class for its reference model
    trainer = DynamicSamplingGRPOTrainer(
        model=model,
        reward_funcs=list(funcs),
        args=args,
        train_dataset=train,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[alarms, *callbacks],
        ds_settings=settings,
    )
    if trainer.is_world_process_zero():
        run = {
            "model": str(model_dir),
            "data": str(data_dir),
            "num_processes": trainer.accelerator.num_processes,
        }
        io.write_json(out / "grpo_settings.json", {**asdict(settings), **run})
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


def _check_out_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"GRPO output {str(out)!r} exists and is not a folder")
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    ours = (out / "grpo_settings.json").exists() or any(out.glob("checkpoint-*"))
    if not ours:
        raise FileExistsError(
            f"GRPO output folder {str(out)!r} exists and is not a GRPO run; refusing to write into it"
        )
    if overwrite:
        shutil.rmtree(out)
    elif last_checkpoint(out) is None and (out / "config.json").exists():
        raise FileExistsError(
            f"{str(out)!r} already holds a finished GRPO run; pass --overwrite to replace it"
        )


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
    out = Path(out_dir)
    tmp = out / f".final-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    names = sorted(p.name for p in tmp.iterdir())
    for name in [n for n in names if n != "config.json"] + ["config.json"]:
        os.replace(tmp / name, out / name)
    tmp.rmdir()


# ---------------------------------------------------------------------------------------------
# Reward lab and before / after (notebook 03)


def score_row(completion: str | None, row: dict, path: str | None = None, settings=None) -> dict[str, float]:
    """`rewards.score` of a completion against a dataset row, on `path` (default: the row's)."""
    return rewards_mod.score(
        completion, row["answer"], row.get("centers"), path or row["path"], row.get("answer_type"), settings
    )


def lab_rows(split) -> list[dict]:
    """Rows of a split for the reward lab: one DTR question (numeric if there is one) and one LOR question."""
    meta = split.select_columns(["task", "path", "answer_type"]).to_list()  # no image decoding
    qa = [i for i, r in enumerate(meta) if r["task"] in QA_TASKS]
    dtr = sorted(
        (i for i in qa if meta[i]["path"] == "dtr"), key=lambda i: meta[i]["answer_type"] != "number"
    )
    lor = [i for i in qa if meta[i]["path"] == "lor"]
    return [split[i] for i in dtr[:1] + lor[:1]]


def example_completions(row: dict) -> dict[str, str]:
    """Hand-written completions of one QA row for the reward lab: its own target on its path and
    variants that each break one thing (answer, centers, tags, white space, units).

    >>> row = {"path": "lor", "answer": "B", "answer_type": "choice",
    ...        "lor_target": "<think>t</think>\\n<answer>B</answer>", "dtr_target": ""}
    >>> {k: score_row(c, row)["overall"] for k, c in example_completions(row).items()}["wrong answer"]
    0.2
    """
    target = row["dtr_target"] if row["path"] == "dtr" else row["lor_target"]
    answer = str(row["answer"])

    def answer_as(text: str) -> str:
        head, sep, tail = target.rpartition("<answer>")
        return head + sep + text + "</answer>" + tail.partition("</answer>")[2]

    if row.get("answer_type") == "number":
        wrong, loose = f"{float(answer) * 1.5 + 0.5:.2f}", f"{answer} m"
        near = f"{float(answer) * 1.1:.2f}"
        cases = {"number 10% off": answer_as(near), "answer with a unit": answer_as(loose)}
    else:
        wrong = "A" if answer.upper() != "A" else "B"
        cases = {"(b) for B: case and parentheses": answer_as(f"({answer.lower()})")}
    out = {"target": target, "wrong answer": answer_as(wrong), **cases}
    out["spaces around tags"] = target.replace("<answer>", "< answer >").replace("</think>", "</ think >")
    out["no </think>"] = target.replace("</think>", "", 1)
    out["answer only"] = f"<answer>{answer}</answer>"
    if row["path"] == "dtr":

        def shifted(match, dx: float) -> str:
            x, y, z = (float(v) for v in match.group(1).split(","))
            return f'center="{x + dx:.2f},{y:.2f},{z:.2f}"'

        for dx in (0.15, 0.35, 0.8):
            out[f"centers {dx:.2f} m off"] = re.sub(
                r'center="([^"]*)"', lambda m, dx=dx: shifted(m, dx), target
            )
        out["LOR format on the DTR path"] = row["lor_target"]
    return out


def sample_groups(model, processor, rows: Sequence[dict], settings: GRPOSettings) -> list[dict]:
    """What GRPO would see at its first step: `settings.num_generations` sampled completions of each
    row on its path (temperature / top_p / max_completion_length of `settings`), scored.

    Returns one dict per row: {"id", "path", "completions", "scores" (overall each), "mean", "std"}.
    """
    out = []
    for path in PATHS:
        subset = [r for r in rows if r["path"] == path]
        if not subset:
            continue
        repeated = [r for r in subset for _ in range(settings.num_generations)]
        texts = model_mod.generate(
            model,
            processor,
            repeated,
            path=path,
            max_new_tokens=settings.max_completion_length,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
        )
        g = settings.num_generations
        for i, row in enumerate(subset):
            group = texts[i * g : (i + 1) * g]
            scores = [score_row(t, row, path, settings.reward_settings())["overall"] for t in group]
            mean = sum(scores) / g
            std = math.sqrt(sum((x - mean) ** 2 for x in scores) / (g - 1))
            out.append(
                {
                    "id": row["id"],
                    "path": path,
                    "completions": group,
                    "scores": scores,
                    "mean": mean,
                    "std": std,
                }
            )
    return out


def kept_fraction(means: Sequence[float], low: float, high: float) -> float:
    """Share of groups with these mean rewards that dynamic sampling keeps for (low, high).

    >>> kept_fraction([0.0, 0.5, 1.0, 0.3], 0.2, 0.99)
    0.5
    """
    return sum(group_kept(m, low, high) for m in means) / len(means) if means else float("nan")


def compare_completions(
    models: dict[str, str | os.PathLike], rows: Sequence[dict], max_new_tokens: int = 256
) -> list[dict]:
    """Greedy completions of `rows` (each on its own path) by each model folder, scored: one dict per
    (model, row) with the completion and its reward components (before / after RL in notebook 03)."""
    out = []
    for name, folder in models.items():
        net, processor = model_mod.load(folder)
        for path in PATHS:
            subset = [r for r in rows if r["path"] == path]
            if not subset:
                continue
            texts = model_mod.generate(net, processor, subset, path=path, max_new_tokens=max_new_tokens)
            for row, text in zip(subset, texts):
                out.append(
                    {
                        "model": name,
                        "id": row["id"],
                        "path": path,
                        "completion": text,
                        **score_row(text, row, path),
                    }
                )
    return out


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
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any GRPOSettings field (repeatable)",
    )


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """{field: value} from `FIELD=VALUE` strings, typed by GRPOSettings' field types.

    >>> parse_overrides(["beta=0.02", "use_lora=true", "max_prompts=none", "paths=dtr"])
    {'beta': 0.02, 'use_lora': True, 'max_prompts': None, 'paths': 'dtr'}
    """
    types = {f.name: str(f.type) for f in fields(GRPOSettings)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in types:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(types)}")
        kind = types[name]
        if text.lower() in ("none", "null") and "None" in kind:
            out[name] = None
        elif kind.startswith("bool"):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"--set {pair!r}: {name} is a boolean (true/false)")
            out[name] = text.lower() in ("true", "1", "yes")
        elif kind.startswith("int"):
            out[name] = int(text)
        elif kind.startswith("float"):
            out[name] = float(text)
        else:
            out[name] = text
    return out


def cli(args) -> int:
    overrides = parse_overrides(args.set)
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
