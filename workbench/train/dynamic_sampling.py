"""Dynamic sampling for GRPO (SPEC section 5), as a subclass of TRL's `GRPOTrainer`.
Taught in `notebooks/04_grpo.ipynb` (threshold sweep); wired up by `grpo.train_grpo`.

How this departs from plain TRL:
1. A prompt group whose mean overall reward is <= `keep_low` (0.2) or >= `keep_high` (0.99)
   teaches little (its advantages are ~0), so it is dropped (`group_kept`) and further prompt
   batches are generated until every process holds enough kept groups again. After
   `max_refill_tries` extra batches, the remaining slots take the dropped groups with the
   largest reward spread (`choose_groups`).
2. The kept rows of several generation batches are merged into one output of the size TRL
   expects (`merge_rows`: prompts re-padded on the left, completions on the right, images kept).
3. The unweighted reward components are logged as `rewards/<name>/all`, the kept share, refills
   and fallbacks as `dynamic_sampling/*`, how much the choice answers pile onto one letter as
   `answers/*` (`letter_skew`), and a few completions per logging step are appended to
   `{output_dir}/samples.jsonl` (read them with `io.read_jsonl`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer

from workbench import compat, io
from workbench.tasks import rewards as rewards_mod
from workbench.train.grpo_settings import GRPOSettings

SAMPLES_LOG = "samples.jsonl"
"""Completions logged during GRPO, one JSON object per line, in the run's output folder."""

logger = logging.getLogger(__name__)
compat.require_hooks(GRPOTrainer)  # the hooks DynamicSamplingGRPOTrainer overrides


def group_kept(mean: float, low: float = 0.2, high: float = 0.99) -> bool:
    """Whether a prompt group with this mean overall reward is trained on (SPEC 5: mean in (low, high)).

    >>> [group_kept(m) for m in (0.0, 0.2, 0.5, 0.99, 1.0, float("nan"))]
    [False, False, True, False, False, False]
    """
    return low < mean < high  # nan compares False: an unscorable group is dropped


def letter_skew(predicted: Sequence[str | None], truths: Sequence[str]) -> tuple[float, float] | None:
    """(share of the most common predicted letter, share of that letter among the truths) over the
    choice rows whose completion has an answer; None without any. A policy that learned the
    common answer letter instead of the question shows a top share far above its truth share.

    >>> letter_skew(["A", "A", "A", None, "B"], ["A", "B", "B", "A", "B"])
    (0.75, 0.25)
    """
    pairs = [(p, t) for p, t in zip(predicted, truths) if p is not None]
    if not pairs:
        return None
    counts: dict[str, int] = {}
    for p, _ in pairs:
        counts[p] = counts.get(p, 0) + 1
    top = max(sorted(counts), key=counts.__getitem__)
    return counts[top] / len(pairs), sum(t == top for _, t in pairs) / len(pairs)


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
    return compat.unsplit_pixel_values_by_grid(out)


def _answer_letter(completion: Any) -> str | None:
    """The option letter a completion answers, None when its `<answer>` names none (as in
    `metrics.top_letter_share`)."""
    text = rewards_mod.completion_text(completion)
    return None if text is None else rewards_mod.choice_letter(rewards_mod.parse_answer(text))


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
        choice = [(row, c) for row, c in zip(inputs, completions) if row.get("answer_type") == "choice"]
        skew = letter_skew(
            [_answer_letter(c) for _, c in choice],
            [rewards_mod.normalize_choice(str(row["answer"])) for row, _ in choice],
        )
        if skew is not None:
            self._log_metric("answers/top_letter_share", skew[0])
            self._log_metric("answers/top_letter_truth_share", skew[1])
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
            stds = compat.nanstd(grouped, dim=1).cpu()
            keep = torch.tensor([group_kept(float(m), settings.keep_low, settings.keep_high) for m in means])
            assert keep.numel() == n_proc * need, f"{keep.numel()} groups for {n_proc} x {need}"
            counts += keep.view(n_proc, need).sum(dim=1)
            generated += keep.numel()
            kept_total += int(keep.sum())
            mine = slice(rank * need, (rank + 1) * need)
            parts.append(compat.split_pixel_values_by_grid(out))
            cand_means += means[mine].tolist()
            cand_stds += stds[mine].tolist()
            cand_ref += [(attempt, k) for k in range(need)]
            if bool((counts >= need).all()) or attempt == settings.max_refill_tries:
                break  # the same decision on every process: counts come from gathered rewards
            batch = self._next_refill_batch(len(inputs))
        chosen, n_fallback = choose_groups(cand_means, cand_stds, need, settings.keep_low, settings.keep_high)
        picks = [(cand_ref[c][0], cand_ref[c][1] * g + j) for c in chosen for j in range(g)]
        merged = merge_rows(parts, picks, compat.grpo_pad_token_id(self), self.pad_to_multiple_of)
        mask = (
            merged["completion_mask"]
            if "tool_mask" not in merged
            else merged["completion_mask"] * merged["tool_mask"]
        )
        merged["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        fallback_total = int(self.accelerator.gather(torch.tensor([n_fallback], device=mask.device)).sum())
        metrics = compat.grpo_metrics(self, "train")
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
            sampler = compat.RepeatSampler(self.train_dataset, g, batch_size=n_global // g, shuffle=True, seed=seed)
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
            io.append_jsonl(
                Path(self.args.output_dir) / SAMPLES_LOG, self._samples, step=self.state.global_step
            )
            self._samples = []
