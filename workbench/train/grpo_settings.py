"""Settings of one GRPO run (`GRPOSettings`) and its profile presets: SR-ReaL's RL recipe (SPEC
section 5) scaled per profile, the dynamic-sampling filter, the reward variant and the alarms.
Read by `grpo`, `dynamic_sampling`, `alarms` and `reward_lab`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.schema import PATHS
from workbench.settings import check_steps, from_preset
from workbench.tasks import rewards as rewards_mod

PATH_MODES = ("joint", *PATHS)


@dataclass
class GRPOSettings:
    """Settings of one GRPO run (`train_grpo`, `workbench grpo`). Profiles are presets (`from_profile`)."""

    paths: str = "joint"
    """Which prompts and paths: `joint` mixes LOR and DTR prompts (each region question once per path, a
    general question on its row's `path`: `prompt_paths`); `lor` / `dtr` force that path for every prompt."""
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
    detect_reward: bool = True
    """Reward DTR's detected centers (the paper's discrete center reward); False: accuracy and format only."""
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
    alarm_answer_collapse: float = 0.8
    """Alarm when more than this fraction of the choice answers is one letter ..."""
    alarm_answer_gap: float = 0.2
    """... and that exceeds the letter's share among the truths by at least this much."""
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
            # the real small run on 2 CPU cores: 400 steps of 4 prompt groups, ~20 minutes (issue #4).
            # 40 steps moved nothing; 300 LOR steps took a focused SFT model from 0.80 to 0.95 (val).
            # The paper's temperature 1.0 and a 2e-4 learning rate broke the 3M-parameter model's DTR
            # format in sampling and drifted away from the SFT policy (KL 0.14 after 60 steps, reward
            # falling); 0.7 and 5e-5 keep the format and stay near it (KL 0.007). `gpu` keeps 1.0.
            # Rewards scaled by the batch's deviation, not each group's: a DTR group whose answers all
            # agree differs only in its detect reward (~0.02), and per-group scaling made those gaps
            # advantages of +-1 on every token, the think's included; DTR choice fell 12.5 points
            # after GRPO with `group` and 3.5 with `batch` (docs/experiments.md, "GRPO and DTR's think")
            "default": dict(
                per_device_train_batch_size=20,
                temperature=0.7,
                learning_rate=5e-5,
                max_steps=400,
                save_steps=50,
                scale_rewards="batch",
            ),
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
        check_steps(self, ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps",
                           "save_steps", "num_generations"))
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive number of steps (GRPO has no epochs here), got {self.max_steps}")
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
            center_reward=self.center_reward, detect_denominator=self.detect_denominator,
            detect_reward=self.detect_reward,
        )
