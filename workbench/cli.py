"""`workbench ...`: one command line over the library.

Each sub-command lives in the module that owns its stage and exposes two functions:
`add_arguments(parser)` and `cli(args) -> int | None`. Only the chosen module is imported, so
`workbench data --help` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "data": ("workbench.dataset.build", "build the synthetic spatial dataset (notebook 01)"),
    "base": ("workbench.train.base", "base stage of the built-in model: copying and grounding (notebook 02)"),
    "sft": ("workbench.train.sft", "cold-start SFT of the spatial VLM (notebook 03)"),
    "ask": ("workbench.ask", "ask a trained model one question on one path"),
    "grpo": ("workbench.train.grpo", "GRPO reinforcement learning (notebook 04)"),
    "eval": ("workbench.eval.evaluate", "evaluate models per path, split and category (notebook 05)"),
    "bench": ("workbench.eval.bench", "evaluate a model on a public spatial benchmark with its official scoring"),
    "study": ("workbench.study", "the claims study over seeds (resumable) and its results page (notebook 07)"),
    "run": ("workbench.run", "run notebooks 01-06 headlessly with papermill (the main job)"),
    "demo": ("workbench.demo.app", "serve the Gradio LOR-vs-DTR demo"),
    "ship": ("workbench.model.shipped", "copy a trained built-in model into the package as the shipped model"),
}


def _usage() -> str:
    lines = ["usage: workbench COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<6} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`workbench COMMAND --help` lists a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"workbench: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"workbench {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        code = module.cli(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # Errors a user can cause carry a message naming the bad value; no traceback for them.
        print(f"workbench {name}: error: {err}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
