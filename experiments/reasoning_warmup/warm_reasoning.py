"""Warm-start a fresh built-in model with the copy and reasoning warm-ups, then save it.

    python experiments/reasoning_warmup/warm_reasoning.py --data runs/full/data --out runs/reason \\
        --copy-steps 2500 --reason-steps 1600
    workbench sft --data runs/full/data --out runs/reason-sft --model runs/reason --profile default \\
        --set grounding=ground_3d

The model is built as the base stage builds it (`BaseSettings` of `--profile`: tokenizer, depth
embedding, region pooling, option style). The saved folder is an ordinary workbench model; the
copy warm-up is recorded in its config, so SFT does not run it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reasoning  # noqa: E402 - the study module beside this script

from workbench import model as M  # noqa: E402
from workbench.train import base, copying, sft  # noqa: E402
from workbench.train import examples as sft_examples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--out", required=True, help="folder for the warmed model (must not exist)")
    parser.add_argument("--profile", default="default", help="BaseSettings preset for the model and learning rate")
    parser.add_argument("--copy-steps", type=int, default=sft.COPY_WARMUP_STEPS)
    parser.add_argument("--copy-numbers", type=float, default=None,
                        help="share of copy warm-up examples that copy numbers (default: the profile's)")
    parser.add_argument("--copy-out", default=None,
                        help="also save the model after the copy warm-up here (to try reasoning variants from it)")
    parser.add_argument("--start", default=None,
                        help="a saved model to go on from (e.g. a --copy-out folder) instead of a fresh one")
    parser.add_argument("--reason-steps", type=int, default=1600)
    parser.add_argument("--batch-size", type=int, default=16, help="questions per reasoning step")
    parser.add_argument("--held-out", type=int, default=192, help="val questions scored before and after")
    parser.add_argument("--think-order", default="label_first", choices=reasoning.THINK_ORDERS,
                        help="how a left/right think states the detected x values")
    args = parser.parse_args(argv)
    out = Path(args.out)
    for folder in (out, Path(args.copy_out) if args.copy_out else None):
        if folder is not None and folder.exists():
            print(f"warm_reasoning: {folder} exists; choose a new folder", file=sys.stderr)
            return 2
    settings = base.BaseSettings.from_profile(args.profile).trainer_settings()
    splits = sft_examples.load_splits(args.data)
    if args.start:
        model, processor = M.load(args.start)
    else:
        model, processor = sft.build_model(splits["train"], settings)
    options = M.prompt_options(model)
    if args.copy_steps:
        result = copying.warm_up(model, processor.tokenizer, args.copy_steps, batch_size=settings.copy_warmup_batch_size,
                                 learning_rate=settings.learning_rate, seed=settings.seed,
                                 system_style=options["system"], option_style=options["option_style"],
                                 numbers=settings.copy_warmup_numbers if args.copy_numbers is None else args.copy_numbers)
        print(f"copy warm-up: {result['wall_time_s']:.0f} s,", json.dumps(result["accuracy_after"]), flush=True)
        if args.copy_out:
            model.save_pretrained(args.copy_out)
            processor.save_pretrained(args.copy_out)
    if args.reason_steps:
        held_out = reasoning.question_rows(splits["val"], args.held_out, settings.seed) if args.held_out else []
        result = reasoning.warm_up(model, processor.tokenizer, reasoning.question_rows(splits["train"]),
                                   args.reason_steps, batch_size=args.batch_size, learning_rate=settings.learning_rate,
                                   seed=settings.seed, held_out=held_out, system_style=options["system"],
                                   option_style=options["option_style"], think_order=args.think_order)
        print(f"reasoning warm-up: {result['steps']} steps in {result['wall_time_s']:.0f} s, loss "
              f"{result['first_loss']:.3f} -> {result['final_loss']:.3f}; val thinks from true centers:",
              json.dumps(result["accuracy_after"]))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
