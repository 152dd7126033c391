"""The GRPO stage's wall time with Hugging Face's decode loop and with the workbench's, side by side.

    python benchmarks/grpo_stage.py --model RUN/sft --data RUN/data [--steps 100] [--rounds 1]

Runs the `default` profile's GRPO stage (`train.grpo.train_grpo`, every setting of the profile but
`max_steps`) from the same SFT model on the same data once per decode loop, each in a fresh
process, alternating the order round by round so that both see the same machine: Hugging Face's
`generate` (the stage before issue #21, `workbench.model.decoding.ENABLED = False`) and the
workbench's loop (`workbench.model.decoding`). Prints the wall time of each stage, seconds a step,
the completions' mean length (the work generation did), and the ratio. Sampling draws differ between the loops (same
distribution, another draw), so the completions are not the same tokens; greedy identity is what
`benchmarks/grpo_generate.py` and `tests/test_decoding.py` check.

Use a trained SFT model (completions have their real lengths) and a quiet machine: another process
on the same cores changes both figures several times over.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPS = ("hf", "workbench")


def one_stage(model: str, data: str, steps: int, loop: str, threads: int) -> dict:
    """Run the stage in this process and return its timings (the child's side)."""
    import torch

    from workbench.model import decoding
    from workbench.train import grpo
    from workbench.train.grpo_settings import GRPOSettings

    if threads:
        torch.set_num_threads(threads)
    decoding.ENABLED = loop == "workbench"
    settings = GRPOSettings.from_profile("default", max_steps=steps, save_steps=10**6,
                                         report_to="none")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = grpo.train_grpo(model, data, Path(out) / "grpo", settings)
        wall = time.perf_counter() - start
    lengths = [e["completions/mean_length"] for e in result["log_history"] if "completions/mean_length" in e]
    return {"loop": loop, "steps": steps, "wall_s": wall, "s_per_step": wall / steps,
            "mean_completion_length": statistics.fmean(lengths) if lengths else None,
            "threads": torch.get_num_threads()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="an SFT folder (the built-in model), or `shipped`")
    p.add_argument("--data", required=True, help="a dataset folder")
    p.add_argument("--steps", type=int, default=100, help="GRPO steps per stage (the default profile runs 400)")
    p.add_argument("--rounds", type=int, default=1, help="stages per loop, alternating which goes first")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--one", choices=LOOPS, help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one_stage(args.model, args.data, args.steps, args.one, args.threads)))
        return
    results: dict[str, list[dict]] = {loop: [] for loop in LOOPS}
    for r in range(args.rounds):
        for loop in (LOOPS if r % 2 == 0 else LOOPS[::-1]):
            cmd = [sys.executable, __file__, "--model", args.model, "--data", args.data, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--one", loop]
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            if done.returncode:
                sys.exit(f"the {loop} stage failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[loop].append(result)
            print(f"round {r + 1}, {loop:>9} loop: {result['wall_s']:7.1f} s, {result['s_per_step']:.2f} s a step, "
                  f"completions {result['mean_completion_length'] or 0:.0f} tokens on average", flush=True)
    hf, wb = (statistics.median(x["wall_s"] for x in results[loop]) for loop in LOOPS)
    print(f"GRPO stage, {args.steps} steps of the default profile (median of {args.rounds}): Hugging Face "
          f"generate {hf:.0f} s, workbench loop {wb:.0f} s: {hf / wb:.2f}x; 400 steps (the profile's) "
          f"~{hf * 400 / args.steps / 60:.0f} vs ~{wb * 400 / args.steps / 60:.0f} min")


if __name__ == "__main__":
    main()
