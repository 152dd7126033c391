"""Gradio app: one question, both reasoning paths side by side (`workbench demo`, whose options
`add_arguments` and `cli` define).

A thin UI over `workbench.demo.engine.DemoEngine`. Two API endpoints for scripts (`gradio_client`):

    compare_example(split, index) -> (lor_completion, dtr_completion, lor_html, dtr_html, summary, plot, image)
    compare(image, question, regions_json) -> the same

Regions on an upload are typed as JSON (`[{"label": "red box", "bbox_2d": [x1, y1, x2, y2]},
{"label": "blue point", "point": [x, y]}]`) or clicked on the image: one click places a point,
two clicks a box. Any bad input becomes a message in the UI; the app keeps serving.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gradio as gr

from workbench import viz
from workbench.dataset import freeform
from workbench.demo.engine import Comparison, DemoEngine
from workbench.world import render

EXAMPLE_QUESTION = "How far is the object in the red box <region> from the object in the blue point <region>?"


def _outputs(c: Comparison) -> tuple:
    truth = c.truth
    lines = ["| | LOR | DTR |", "|---|---|---|"]
    lines.append(f"| answer | {c.answers['lor'] or '(none)'} | {c.answers['dtr'] or '(none)'} |")
    if c.scores:
        for key in ("accuracy", "format", "overall"):
            lines.append(f"| {key} | {c.scores['lor'][key]:.2f} | {c.scores['dtr'][key]:.2f} |")
        if "detect" in c.scores["dtr"]:
            lines.append(f"| detect | | {c.scores['dtr']['detect']:.2f} |")
    summary = (f"**Truth:** {truth}\n\n" if truth else "") + "\n".join(lines)
    if c.depth:
        summary += f"\n\n**Depth:** {c.depth.strip()}"
    centers = c.row.get("centers") or None
    return (
        c.completions["lor"],
        c.completions["dtr"],
        viz.trace_html(c.completions["lor"], centers, title="LOR: language-only reasoning"),
        viz.trace_html(c.completions["dtr"], centers, title="DTR: detect, then reason"),
        summary,
        c.figure(),
        c.row["image"],
    )


def _guard(fn):
    """Run an engine call; a ValueError / FileNotFoundError becomes a message in the UI."""

    def wrapped(*args):
        try:
            return _outputs(fn(*args))
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err), print_exception=False) from None

    wrapped.__name__ = fn.__name__
    return wrapped


def _click(regions_json: str, pending: list | None, kind: str, color: str, image, evt: gr.SelectData):
    """Add a region from a click on the image: a point at once, a box after its second corner."""
    if image is None:
        raise gr.Error("upload an image before clicking regions")
    try:
        regions = freeform.parse_regions(regions_json) if regions_json.strip() else []
    except ValueError as err:
        raise gr.Error(f"fix the regions text first: {err}", print_exception=False) from None
    x, y = evt.index
    label = f"{color} {kind}"
    spec = [{"label": r["label"], **({"bbox_2d": r["bbox_2d"]} if r["kind"] == "box" else {"point": r["point"]})} for r in regions]
    spec = [r for r in spec if r["label"] != label]
    if kind == "point":
        spec.append({"label": label, "point": [x, y]})
        pending = None
    elif not pending:
        return regions_json, [x, y], f"first corner of the {label} at ({x}, {y}); click the opposite corner"
    else:
        (x0, y0), pending = pending, None
        spec.append({"label": label, "bbox_2d": [min(x0, x), min(y0, y), max(x0, x) + 1, max(y0, y) + 1]})
    return json.dumps(spec), pending, f"{len(spec)} region(s); add `{label} <region>` to the question"


def build_app(engine: DemoEngine) -> gr.Blocks:
    sizes = engine.split_sizes()
    splits = [s for s, n in sizes.items() if n] or ["test"]
    with gr.Blocks(title="SR-ReaL: LOR vs DTR") as app:
        gr.Markdown(
            "# SR-ReaL: one model, two reasoning paths\n"
            "**LOR** thinks in words, then answers. **DTR** first writes the 3D centers of the objects "
            "the question refers to, then reasons with those numbers. Pick an example or upload your own."
        )
        with gr.Tab("Dataset example"):
            with gr.Row():
                split = gr.Dropdown(splits, value=splits[0], label="split")
                index = gr.Number(value=0, precision=0, label=f"index ({', '.join(f'{s}: {n}' for s, n in sizes.items())})")
                run_example = gr.Button("Compare LOR and DTR", variant="primary")
        with gr.Tab("Upload"):
            with gr.Row():
                upload = gr.Image(type="filepath", label="image (click: point, or two corners of a box)")
                with gr.Column():
                    question = gr.Textbox(value=EXAMPLE_QUESTION, lines=3, label="question (each region as `<label> <region>`)")
                    with gr.Row():
                        kind = gr.Radio(["box", "point"], value="box", label="click adds a")
                        color = gr.Dropdown(list(render.MARK_COLORS), value="red", label="color")
                    regions = gr.Textbox(value="[]", lines=3, label="regions (JSON)")
                    depth = gr.File(label="depth map (optional): a 16-bit PNG in mm or a .npy in m, the image's size",
                                    type="filepath", file_types=[".png", ".npy"])
                    hint = gr.Markdown()
                    run_upload = gr.Button("Compare LOR and DTR", variant="primary")
            pending = gr.State(None)
            upload.select(_click, [regions, pending, kind, color, upload], [regions, pending, hint])
        summary = gr.Markdown()
        with gr.Row():
            with gr.Column():
                lor_html = gr.HTML(label="LOR trace", elem_id="lor-trace")
                lor_raw = gr.Textbox(label="LOR completion", lines=4)
            with gr.Column():
                dtr_html = gr.HTML(label="DTR trace", elem_id="dtr-trace")
                dtr_raw = gr.Textbox(label="DTR completion", lines=4)
        with gr.Row():
            marked = gr.Image(label="what the model sees", type="pil", height=320)
            plot = gr.Plot(label="detected vs true centers (camera frame, m)")
        outputs = [lor_raw, dtr_raw, lor_html, dtr_html, summary, plot, marked]
        run_example.click(_guard(engine.compare_example), [split, index], outputs, api_name="compare_example")
        run_upload.click(_guard(engine.compare), [upload, question, regions, depth], outputs, api_name="compare")
    return app


QUEUE_SIZE = 64
"""Visitors that may wait at once; the next one is told the demo is busy instead of waiting forever."""
MAX_UPLOAD = "20mb"
"""Largest upload Gradio accepts (an image or a depth map)."""


def check_port(port: int) -> None:
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, share: bool = False, block: bool = True):
    """Serve with a bounded queue (concurrent visitors wait their turn instead of crashing the
    model), a bounded upload size, and errors shown, so a file Gradio itself cannot read as an
    image still gets its message. A warning goes to stderr when the demo is reachable from other
    machines (a public address or a share link): anyone there can run the model."""
    check_port(port)
    if share or host not in ("127.0.0.1", "localhost", "::1"):
        where = "through a public share link" if share else f"on {host}, from other machines"
        print(f"warning: the demo is reachable {where}; anyone who can reach it can run the model", file=sys.stderr)
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE).launch(
        server_name=host, server_port=port, share=share, show_error=True, prevent_thread_lock=not block,
        quiet=not block, max_file_size=MAX_UPLOAD,
    )
    return app


# ----------------------------------------------------------------------------- CLI (`workbench demo`)


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="model folder (workbench sft/grpo output) or VLM name")
    parser.add_argument("--data", default=None, help="dataset folder to browse examples from")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a workshop LAN)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--depth-model", default="",
                        help="transformers depth-estimation model that fills in the depth of an upload without one")


def cli(args) -> int:
    check_port(args.port)  # before paying for the model load
    if not Path(args.model).exists() and "/" not in args.model:
        raise FileNotFoundError(f"model {args.model!r} is neither a folder nor a hub name")
    engine = DemoEngine(args.model, args.data, max_new_tokens=args.max_new_tokens, depth_model=args.depth_model)
    launch(build_app(engine), host=args.host, port=args.port, share=args.share)
    return 0

