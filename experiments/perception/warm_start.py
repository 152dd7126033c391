"""Warm-start a fresh built-in model with the perception and/or describe warm-up, then save it.

    python experiments/perception/warm_start.py --data runs/default/data --out runs/warm \\
        --perception-steps 800 --describe-steps 600
    workbench sft --data runs/default/data --out runs/warm-sft --model runs/warm --profile default

The saved folder is an ordinary workbench model: `workbench sft --model` trains it in full (the copy
warm-up then runs after these warm-ups, where the library used to run it between them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perception  # noqa: E402 - the study module beside this script

from workbench import model as M  # noqa: E402
from workbench.train import examples as sft_examples
from workbench.train import sft  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--out", required=True, help="folder for the warmed model (must not exist)")
    parser.add_argument("--profile", default="default", help="SFTSettings preset for the model and learning rate")
    parser.add_argument("--perception-steps", type=int, default=800)
    parser.add_argument("--perception-images", type=int, default=16)
    parser.add_argument("--describe-steps", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"warm_start: {out} exists; choose a new folder", file=sys.stderr)
        return 2
    settings = sft.SFTSettings.from_profile(args.profile)
    splits = sft_examples.load_splits(args.data)
    model, processor = sft.build_model(splits["train"], settings)
    if args.perception_steps:
        result = perception.warm_up(model, processor, splits["train"], args.perception_steps,
                                    val_rows=splits["val"], batch_images=args.perception_images,
                                    learning_rate=settings.learning_rate, seed=settings.seed)
        print("perception warm-up:", result.get("held_out"))
    if args.describe_steps:
        prompting = M.prompt_options(model)
        result = perception.describe_warm_up(model, processor, splits["train"], args.describe_steps,
                                             val_rows=splits["val"], batch_size=settings.per_device_train_batch_size,
                                             learning_rate=settings.learning_rate, system=prompting["system"],
                                             seed=settings.seed)
        print("describe warm-up:", result.get("accuracy_after"))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
