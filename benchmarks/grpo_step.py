"""Where a GRPO step of the `default` shape spends its time, and what generation could reach.

    python benchmarks/grpo_step.py --model RUN/sft --data RUN/data [--steps 3] [--threads 2]

Runs `train.grpo.train_grpo` with the `default` GRPO settings for a few steps on the given SFT
model and data (a trained model, so that completions have their real lengths) and times, per
step, inside TRL's own methods:
- generation (`_generate_single_turn`: `model.generate` of the step's completions), with its
  completion tokens per second;
- reward scoring (`_calculate_rewards`);
- log-probabilities without gradients (`_get_per_token_logps_and_entropies` under no_grad: the
  reference model's, and the old policy's when TRL needs them);
- the policy's forward with gradients (the same method with gradients), and the rest of the
  training step (backward, optimizer, dynamic sampling's bookkeeping).
Then, as the bound for this model on this machine: one batched forward, without gradients, over
the last step's prompts and completions, in completion tokens per second. The two rates side by
side say how far generation is from the arithmetic of the same tokens.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an SFT folder (the built-in model)")
    p.add_argument("--data", required=True, help="a dataset folder")
    p.add_argument("--steps", type=int, default=3, help="GRPO steps to time (the first one is a warm-up)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--max-prompts", type=int, default=400, help="prompts prepared (the steps use the first ones)")
    p.add_argument("--verbose", action="store_true", help="one line per generate call")
    p.add_argument("--hf-generate", action="store_true",
                   help="Hugging Face's decode loop instead of the workbench's (workbench.model.decoding)")
    args = p.parse_args(argv)

    import torch
    from trl import GRPOTrainer

    from workbench.train import grpo
    from workbench.train.grpo_settings import GRPOSettings

    if args.threads:
        torch.set_num_threads(args.threads)
    from workbench.model import decoding
    decoding.ENABLED = not args.hf_generate
    print(f"decode loop: {'Hugging Face generate' if args.hf_generate else 'workbench.model.decoding'}")
    seconds: dict[str, list[tuple[int, float]]] = defaultdict(list)  # (step, seconds)
    tokens: list[tuple[int, int]] = []  # (step, completion tokens)
    last: dict = {}
    steps_done = [0]

    def timed(name, fn):
        def wrapper(self, *a, **k):
            key = name
            if name == "logps":
                key = "logps (no grad)" if not torch.is_grad_enabled() else "policy forward (grad)"
            step = steps_done[0]  # TRL generates and scores inside training_step
            t0 = time.perf_counter()
            out = fn(self, *a, **k)
            seconds[key].append((step, time.perf_counter() - t0))
            if name == "generation":
                completion_ids = out[0]
                if args.verbose:
                    lengths = [len(c) for c in completion_ids]
                    print(f"generate: {len(lengths)} completions, longest {max(lengths)}, mean "
                          f"{sum(lengths) / len(lengths):.0f} tokens, {seconds[key][-1][1]:.2f} s")
                tokens.append((step, sum(len(c) for c in completion_ids)))
                last.update(prompt_ids=a[0], completion_ids=completion_ids, multimodal=a[2])
            if name == "step":
                steps_done[0] += 1
            return out
        return wrapper

    patches = {"_generate_single_turn": "generation", "_calculate_rewards": "rewards",
               "_get_per_token_logps_and_entropies": "logps", "training_step": "step"}
    originals = {m: getattr(GRPOTrainer, m) for m in patches}
    for method, name in patches.items():
        setattr(GRPOTrainer, method, timed(name, originals[method]))
    settings = GRPOSettings.from_profile("default", max_steps=args.steps, save_steps=10**6, logging_steps=1,
                                         max_prompts=args.max_prompts)
    with tempfile.TemporaryDirectory() as out:
        try:
            grpo.train_grpo(args.model, args.data, f"{out}/grpo", settings)
        finally:
            for method, fn in originals.items():
                setattr(GRPOTrainer, method, fn)
        report(seconds, tokens, steps_done[0], settings, torch.get_num_threads())
        bound = _batched_forward(f"{out}/grpo", last)
    generated = sum(t for step, t in tokens if step >= 1)
    rate = generated / sum(dt for step, dt in seconds["generation"] if step >= 1)
    print(f"one batched forward over the last step's tokens: {bound:.0f} completion tokens/s "
          f"(generation is {bound / rate:.1f}x slower)")


def report(seconds, tokens, steps_done: int, settings, threads: int) -> None:
    skip = 1  # the first step warms caches and allocators

    def total(key: str) -> float:
        return sum(dt for step, dt in seconds[key] if step >= skip)

    n = max(steps_done - skip, 1)
    step_time = total("step")
    print(f"{n} GRPO steps of the default shape (batch {settings.per_device_train_batch_size}, "
          f"{settings.num_generations} completions a prompt) after one warm-up step, {threads} threads")
    parts = ("generation", "rewards", "logps (no grad)", "policy forward (grad)")
    for key in parts:
        print(f"  {key:<26} {total(key) / n:7.2f} s a step  ({100 * total(key) / step_time:4.1f}%)")
    rest = step_time - sum(total(key) for key in parts)
    print(f"  {'backward, optimizer, rest':<26} {rest / n:7.2f} s a step  ({100 * rest / step_time:4.1f}%)")
    print(f"  {'the whole step':<26} {step_time / n:7.2f} s")
    generated = sum(t for step, t in tokens if step >= skip)
    rate = generated / total("generation")
    print(f"generation: {rate:.0f} completion tokens/s ({generated / n:.0f} tokens a step)")


def _batched_forward(model_dir: str, last: dict) -> float:
    """Completion tokens per second of one no-grad forward over the last step's prompts and
    completions (the arithmetic generation has to do, without its token-by-token loop)."""
    import numpy as np
    import torch

    from workbench import model as model_mod

    model, processor = model_mod.load(model_dir)
    model.eval()
    pad = processor.tokenizer.pad_token_id
    rows = [list(p) + list(c) for p, c in zip(last["prompt_ids"], last["completion_ids"])]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    inputs = {"input_ids": ids, "attention_mask": mask}
    for key, value in last["multimodal"].items():
        if key == "mm_token_type_ids":
            value = [[0] * (width - len(r)) + list(v) + [0] * (len(r) - len(v)) for r, v in zip(rows, value)]
            inputs[key] = torch.tensor(value)
        elif isinstance(value, torch.Tensor):
            inputs[key] = value
        else:
            inputs[key] = torch.tensor(np.array(value))
    completion_tokens = sum(len(c) for c in last["completion_ids"])
    with torch.no_grad():
        model(**inputs)  # warm-up
    with torch.no_grad():
        t0 = time.perf_counter()
        model(**inputs)
        return completion_tokens / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
