"""`workbench ask`: one completion from a model, on a chosen path.

    workbench ask --data DIR --split val --index 3 --path dtr          # the shipped model
    workbench ask --model DIR --data DIR --split val --index 3 --path dtr
    workbench ask --model DIR --image view.png --question "How far is the red box <region> from the blue box <region>?" \\
        --regions '[{"label": "red box", "kind": "box", "bbox_2d": [10, 20, 40, 60]}, ...]' --path dtr \\
        [--depth view_depth.png [--intrinsics fx,fy,cx,cy] | --depth-model DEPTH_ANYTHING_NAME_OR_DIR]

The prompt is built by `prompts.to_messages` and the completion by `model.generate`, exactly as in
evaluation. A model that embeds depth gets a dataset row's depth, or the depth of `--depth` (a
16-bit PNG in millimeters or a .npy in meters, the size of --image) or of `--depth-model` (a
transformers depth-estimation model); without depth its embedding is off. The completion goes to stdout; with `--show-prompt` the prompt text and, for a dataset
row, the ground-truth answer go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.dataset import freeform
from workbench.model.shipped import SHIPPED
from workbench.schema import REGION_TOKEN


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=SHIPPED,
        help="model folder (built-in or saved), a pretrained VLM name, or `shipped` (the default: the "
             "checkpoint in the package, workbench.model.shipped)",
    )
    parser.add_argument("--path", default="auto", choices=("lor", "dtr", "auto"), help="reasoning path")
    source = parser.add_argument_group("a dataset row")
    source.add_argument("--data", help="dataset folder written by `workbench data`")
    source.add_argument("--split", default="val", help="split of --data")
    source.add_argument("--index", type=int, default=0, help="row index in --split")
    own = parser.add_argument_group("your own question")
    own.add_argument("--image", help="image file (PNG/JPEG); the regions' marks are drawn in for you")
    own.add_argument("--question", help=f"question; each {REGION_TOKEN} names the next region")
    own.add_argument(
        "--regions",
        default="[]",
        help='JSON list (or a .json file) of {"label": "red box", "bbox_2d": [x1, y1, x2, y2]} or '
        '{"label": "blue point", "point": [x, y]} in pixels of --image',
    )
    own.add_argument("--choices", default="[]", help='JSON list of option texts, e.g. \'["left", "right"]\'')
    own.add_argument("--depth", help="depth map of --image: a 16-bit PNG in millimeters or a .npy in meters")
    own.add_argument("--intrinsics", help="fx,fy,cx,cy of --image in pixels (default: a centered 60 degree camera)")
    own.add_argument("--depth-model", default="",
                     help="estimate the depth of --image with this transformers depth-estimation model")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="completion length limit")
    parser.add_argument(
        "--sample", action="store_true", help="sample (temperature 1) instead of greedy decoding"
    )
    parser.add_argument(
        "--show-prompt", action="store_true", help="print the prompt (and the truth) to stderr"
    )


def cli(args: argparse.Namespace) -> int:
    from workbench import model as model_mod
    from workbench.tasks import prompts
    if args.data and (args.image or args.question):  # fail before paying for the model load
        raise ValueError("give either --data/--split/--index or --image/--question/--regions, not both")
    if not args.data and not (args.image and args.question):
        raise ValueError("give --data DIR, or both --image PNG and --question TEXT")
    if args.depth and args.depth_model:
        raise ValueError("give --depth FILE or --depth-model NAME, not both")
    if (args.depth or args.depth_model or args.intrinsics) and not args.image:
        raise ValueError("--depth, --intrinsics and --depth-model go with --image (a dataset row has its own depth)")
    model, processor = model_mod.load(args.model)
    depth = args.depth
    if args.depth_model:
        from workbench.model import depth as depth_codec

        depth, kind = depth_codec.estimate_depth(freeform.load_image(args.image), args.depth_model)
        note = depth_codec.mismatch_note(model, kind)
        if note:
            print(f"note: {note}", file=sys.stderr)
    row = row_from_args(args, image_size=model_mod.image_size_of(processor), depth=depth)
    if row.get("depth") is not None and not model_mod.uses_depth(model):
        print("note: this model has no depth embedding; the depth is not used", file=sys.stderr)
    if args.show_prompt:
        messages = prompts.to_messages(row, args.path, **model_mod.prompt_options(model))
        print(
            processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
            file=sys.stderr,
        )
        if row.get("answer") not in (None, ""):
            print(f"[truth] {row['answer']}", file=sys.stderr)
    completion = ask(
        model, processor, row, args.path, max_new_tokens=args.max_new_tokens, do_sample=args.sample
    )
    print(completion)
    if not completion.strip():
        print("note: the model wrote nothing (it ended its turn at once; an untrained or smoke-sized model "
              "often does)", file=sys.stderr)
    return 0


def ask(
    model,
    processor,
    row: dict[str, Any],
    path: str = "auto",
    max_new_tokens: int = 256,
    do_sample: bool = False,
) -> str:
    """One completion for one row (a dataset row or `freeform.make_row(...)`)."""
    from workbench import model as model_mod
    return model_mod.generate(
        model, processor, [row], path, max_new_tokens=max_new_tokens, do_sample=do_sample
    )[0]


def row_from_args(args: argparse.Namespace, image_size: int = 112, depth: Any = None) -> dict[str, Any]:
    """The row `ask` answers: a dataset row (--data) or one built from --image/--question/--regions
    (checked, scaled to `image_size` and with the marks drawn in by `freeform.make_row`), with
    `depth` (an array or file; else --depth) and --intrinsics."""
    if args.data and (args.image or args.question):
        raise ValueError("give either --data/--split/--index or --image/--question/--regions, not both")
    if args.data:
        return dataset_row(args.data, args.split, args.index)
    if not (args.image and args.question):
        raise ValueError("give --data DIR, or both --image PNG and --question TEXT")
    return freeform.make_row(
        args.image,
        args.question,
        _json_arg(args.regions, "--regions"),
        image_size=image_size,
        choices=_json_arg(args.choices, "--choices"),
        depth=depth if depth is not None else getattr(args, "depth", None),
        intrinsics=getattr(args, "intrinsics", None),
    )


def dataset_row(data_dir: str, split: str, index: int) -> dict[str, Any]:
    """Row `index` of `split` in a dataset folder, with a clear error for each way it can be wrong."""
    from workbench.dataset import load_dataset_dir

    data = load_dataset_dir(data_dir)
    if split not in data:
        raise ValueError(f"split {split!r} not in {data_dir!r}; it has {sorted(data)}")
    if not 0 <= index < len(data[split]):
        raise ValueError(f"index {index} out of range: split {split!r} has {len(data[split])} rows")
    return dict(data[split][index])


def _json_arg(value: str, name: str) -> Any:
    text = value
    if value and not value.lstrip().startswith(("[", "{")) and Path(value).is_file():
        text = Path(value).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON ({err}): {value!r}") from err
