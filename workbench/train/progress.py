"""Where a training stage is, for whoever watches from outside its process: `ProgressCallback`
writes `{output_dir}/progress.json` (step, steps, loss, seconds, ETA) as the trainer logs, and
`workbench run`, which runs the stage's notebook in a kernel it cannot see into, reads it to show
the inner progress of a long stage (`rundir.read_progress`). SFT, the base stage and GRPO all
add it to their trainers.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from workbench import rundir


class ProgressCallback(TrainerCallback):
    """Writes `rundir.PROGRESS` into the trainer's output folder at the start, at every log
    entry and at the end (atomic writes; a reader never sees half a file)."""

    def __init__(self, stage: str):
        self.stage = stage
        self._start = time.monotonic()
        self._first_step = 0
        self._loss: float | None = None

    def _write(self, args, state, done: bool = False) -> None:
        if not state.is_world_process_zero:
            return
        elapsed = time.monotonic() - self._start
        step, total = int(state.global_step), int(state.max_steps or 0)
        rate = (step - self._first_step) / elapsed if elapsed > 0 and step > self._first_step else None
        eta = (total - step) / rate if rate and total >= step else None
        rundir.write_progress(args.output_dir, {
            "stage": self.stage, "step": step, "steps": total, "loss": self._loss,
            "seconds": round(elapsed, 1), "eta_seconds": None if eta is None else round(eta, 1), "done": done})

    def on_train_begin(self, args, state, control, **kwargs):
        self._start, self._first_step = time.monotonic(), int(state.global_step)  # a resumed run counts from here
        self._write(args, state)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        loss = (logs or {}).get("loss")
        if isinstance(loss, (int, float)):
            self._loss = float(loss)
        self._write(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._write(args, state, done=True)
