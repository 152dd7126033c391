"""Training-health alarms for GRPO: a `transformers.TrainerCallback` that reads the logged metrics.
Taught in `notebooks/04_grpo.ipynb` (the alarms table after training); wired up by `grpo.train_grpo`.

Plain TRL logs these metrics but judges none of them. `AlarmCallback` watches the logs for the
usual RL failure modes: the format reward saturating while accuracy stays flat, completion length
collapsing or exploding, most groups having zero reward variance, and the choice answers piling
onto one letter. Each alarm is logged as a
warning, appended to `{output_dir}/alarms.jsonl` and kept in `AlarmCallback.alarms`; thresholds
are the `alarm_*` fields of `grpo_settings.GRPOSettings`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from workbench import io
from workbench.train.grpo_settings import GRPOSettings

ALARMS_LOG = "alarms.jsonl"
"""The alarms of a run, one JSON object per line, in its output folder."""

logger = logging.getLogger(__name__)


class AlarmCallback(TrainerCallback):
    """Watches the training logs for RL failure modes; warns in the log, appends to
    `{output_dir}/alarms.jsonl` and keeps `self.alarms` (a list of dicts) for the notebook.

    Alarms (each fires at most once per `window` logging steps):
    - `format_saturated`: format reward > `format_saturated` while accuracy moved less than
      `accuracy_flat` over the last `window` logs (the policy games the format);
    - `length_collapse`: mean completion length < `length_collapse` x its first logged value;
    - `length_explode`: more than `length_explode` of the completions hit max_completion_length;
    - `zero_variance`: more than `zero_std` of the groups have zero reward variance (no signal);
    - `answer_collapse`: averaged over the last `window` logs, more than `answer_collapse` of the
      choice answers are one letter, at least `answer_gap` more than that letter's share among the
      truths (the policy learned the common letter, not the question: issue #4).

    `check(logs, step)` takes one log dict and returns the alarms it raised (testable without a trainer).
    """

    FORMAT_KEYS = ("rewards/format/all", "rewards/format/mean")
    ACCURACY_KEYS = ("rewards/accuracy/all", "rewards/accuracy/mean")
    LENGTH_KEY = "completions/mean_length"
    CLIPPED_KEY = "completions/clipped_ratio"
    ZERO_STD_KEY = "frac_reward_zero_std"
    TOP_LETTER_KEY = "answers/top_letter_share"
    TOP_LETTER_TRUTH_KEY = "answers/top_letter_truth_share"

    def __init__(
        self,
        window: int = 10,
        format_saturated: float = 0.95,
        accuracy_flat: float = 0.02,
        length_collapse: float = 0.3,
        length_explode: float = 0.8,
        zero_std: float = 0.8,
        answer_collapse: float = 0.8,
        answer_gap: float = 0.2,
        output_dir: str | os.PathLike | None = None,
    ):
        self.window, self.format_saturated, self.accuracy_flat = window, format_saturated, accuracy_flat
        self.length_collapse, self.length_explode, self.zero_std = length_collapse, length_explode, zero_std
        self.answer_collapse, self.answer_gap = answer_collapse, answer_gap
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
            answer_collapse=settings.alarm_answer_collapse,
            answer_gap=settings.alarm_answer_gap,
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
        # A step sees a few choice questions, five completions each: judge the mean over the window.
        shares = [
            (self._first(h, (self.TOP_LETTER_KEY,)), self._first(h, (self.TOP_LETTER_TRUTH_KEY,))) for h in recent
        ]
        shares = [(a, b) for a, b in shares if a is not None and b is not None]
        if len(shares) >= self.window and self._first(logs, (self.TOP_LETTER_KEY,)) is not None:
            top = sum(a for a, _ in shares) / len(shares)
            truth = sum(b for _, b in shares) / len(shares)
            if top > self.answer_collapse and top - truth >= self.answer_gap:
                fire(
                    "answer_collapse",
                    f"over the last {len(shares)} logs, {top:.0%} of the choice answers were the step's most "
                    f"common letter, which was right for only {truth:.0%} of those questions: the policy may "
                    "be learning the common letter, not the question",
                    top_letter_share=top,
                    top_letter_truth_share=truth,
                )
        for alarm in raised:
            logger.warning("GRPO alarm at step %s [%s]: %s", step, alarm["kind"], alarm["message"])
            if self.output_dir is not None:
                io.append_jsonl(Path(self.output_dir) / ALARMS_LOG, [alarm])
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
