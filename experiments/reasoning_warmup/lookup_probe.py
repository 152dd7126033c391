"""Can a fresh built-in model of a given depth learn the copy warm-up's number tasks, the label
look-up above all? (A probe of this study: the four-layer model stays at ~0.02 exact.)

    python experiments/reasoning_warmup/lookup_probe.py --data runs/full/data --layers 8 --steps 1000

Builds the built-in model as the base stage does (`default` model settings, tokenizer trained on
the train split's text) with `--layers` decoder layers (and `--hidden` width), trains it on number
tasks only (`copying.warm_up(numbers=1.0)`: half repeats, half look-ups), and prints the held-out
copy accuracy (`numbers`, `centers`: replies all right), the loss and the wall time as one JSON line.
Nothing is saved.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench import model as M
from workbench.tasks import prompts
from workbench.train import copying
from workbench.train import examples as sft_examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder written by `workbench data`")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of the language model")
    parser.add_argument("--hidden", type=int, default=0, help="width of the language model (0 = the default's)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="the base stage's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    overrides = {"num_layers": args.layers, "seed": args.seed} | ({"hidden_size": args.hidden} if args.hidden else {})
    try:
        settings = M.ModelSettings.from_profile("default", **overrides)
    except ValueError as err:
        print(f"lookup_probe: {err}", file=sys.stderr)
        return 2
    train = sft_examples.load_splits(args.data)["train"]
    text = train.select_columns(["question", "regions", "choices", "lor_target", "dtr_target"])
    model, processor = M.build_tiny(prompts.corpus(text, settings.system_prompts, settings.option_style), settings)
    options = M.prompt_options(model)
    result = copying.warm_up(model, processor.tokenizer, args.steps, batch_size=args.batch_size,
                             learning_rate=args.learning_rate, seed=args.seed, system_style=options["system"],
                             option_style=options["option_style"], numbers=1.0)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"layers": args.layers, "hidden": settings.hidden_size, "params": params, "steps": args.steps,
                      "after": result["accuracy_after"], "final_loss": round(result["final_loss"], 4),
                      "wall_time_s": result["wall_time_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
