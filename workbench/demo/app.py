"""Gradio app: one question, both reasoning paths side by side (`workbench demo`, whose options
`add_arguments` and `cli` define).

A thin UI over `workbench.demo.engine.DemoEngine`. Two API endpoints for scripts (`gradio_client`),
with named parameters:

    compare_example(split, index) -> OUTPUTS
    compare(image, question, regions, depth=None, choices="") -> OUTPUTS

OUTPUTS = (lor_completion, dtr_completion, lor_html, dtr_html, summary, plot, image, message):
`summary` is HTML of the question, its lettered options, the truth ("B (closer)") and both paths'
answers and scores; `image` is what the model sees, enlarged without blending so its marks can be
read; `message` is "" or, for bad input, HTML that names what to fix, and then every other output
is empty (a visitor never reads the last example's results under a new error). Every other event
(previews, clicks, the gallery) is private: not in the API.

An upload is taken as a file, not decoded by Gradio, so a file that is not an image gets the
engine's message. Regions on an upload are typed as JSON (`[{"label": "red box", "bbox_2d":
[x1, y1, x2, y2]}, {"label": "blue point", "point": [x, y]}]`) or clicked on the image: one click
places a point, two clicks a box; they are drawn on the image as they come.
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from workbench import viz
from workbench.demo import engine as demo_engine
from workbench.demo.engine import Comparison, DemoEngine
from workbench.model.shipped import SHIPPED
from workbench.world import render

EXAMPLE_QUESTION = "How far is the object in the red box <region> from the object in the blue point <region>?"
DISPLAY_SIDE = 448
"""Longer side (px) the model's image is enlarged to, by a whole factor and without blending."""
EMPTY = ("", "", "", "", "", None, None, "")
"""OUTPUTS with nothing in them."""


def enlarge(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """`image` scaled by the largest whole factor that keeps its longer side within `side`, each
    pixel a square block (nearest neighbour), so a 112 px image's marks can be read at 448 px.

    >>> enlarge(Image.new("RGB", (112, 84))).size
    (448, 336)
    """
    k = max(1, side // max(image.size))
    return image.resize((image.width * k, image.height * k), Image.NEAREST)


def _option(row: dict[str, Any], answer: str | None) -> str:
    """An answer as a visitor reads it: "B (closer)" for an option letter, else as written."""
    if not answer:
        return "(none)"
    choices = row.get("choices") or []
    k = ord(answer) - 65 if len(answer) == 1 and answer.isupper() else -1
    return f"{answer} ({choices[k]})" if 0 <= k < len(choices) else answer


def _question(row: dict[str, Any]) -> str:
    if row.get("id") == "freeform":
        return viz.question_html(row, title="your question", truth=False)
    return viz.question_html(row, title=f"{row.get('split', '')} example: {row.get('category', '')} ({row.get('task', '')})",
                             truth=bool(row.get("answer")))


def _summary(c: Comparison) -> str:
    """The question, then a table of both paths' answers and scores, then the depth and 3D notes."""
    def cells(values):
        return "".join(f"<td>{html.escape(str(v), quote=False)}</td>" for v in values)

    answers = cells(_option(c.row, c.answers[p]) for p in ("lor", "dtr"))
    rows = [f"<tr><th></th><th>LOR</th><th>DTR</th></tr><tr><td>answer</td>{answers}</tr>"]
    if c.scores:
        for key in ("accuracy", "format", "overall"):
            rows.append(f"<tr><td>{key}</td>{cells(f'{c.scores[p][key]:.2f}' for p in ('lor', 'dtr'))}</tr>")
        if "detect" in c.scores["dtr"]:
            detect = f"{c.scores['dtr']['detect']:.2f}"
            rows.append(f"<tr><td>detect</td>{cells(['', detect])}</tr>")
    notes = [("Depth", c.depth.strip()), ("3D panel", c.figure_note())]
    return (_question(c.row) + f"<table>{''.join(rows)}</table>"
            + "".join(f"<p><b>{k}:</b> {html.escape(v, quote=False)}</p>" for k, v in notes if v))


def _outputs(c: Comparison) -> tuple:
    centers = c.row.get("centers") or None
    return (
        c.completions["lor"],
        c.completions["dtr"],
        viz.trace_html(c.completions["lor"], centers, title="LOR: language-only reasoning"),
        viz.trace_html(c.completions["dtr"], centers, title="DTR: detect, then reason"),
        _summary(c),
        c.figure(),
        enlarge(viz.frames_image(c.row)),
        "",
    )


def _message(err: Exception, files: tuple = ()) -> str:
    """The error as a message in the page; the server's paths of uploaded `files` become their names."""
    text = str(err)
    for f in files:
        if f:
            text = text.replace(str(f), os.path.basename(str(f)))
    return ('<div style="border:1px solid #d73027;background:#fff1f0;color:#a50026;padding:8px;border-radius:4px">'
            f"&#9888; {html.escape(text, quote=False)}</div>")


def _hint(text: str) -> str:
    return f"<p>{html.escape(text, quote=False)}</p>"


def _answered(call, files: tuple = ()) -> tuple:
    """OUTPUTS of `call()`; for bad input (ValueError / FileNotFoundError), every output empty and
    the message saying what to fix."""
    try:
        return call()
    except (ValueError, FileNotFoundError) as err:
        return (*EMPTY[:-1], _message(err, files))


def build_app(engine: DemoEngine) -> gr.Blocks:
    sizes = engine.split_sizes()
    splits = [s for s, n in sizes.items() if n] or ["test"]

    # API endpoints: their parameter names are what gradio_client shows
    def compare_example(split: str, index: float) -> tuple:
        """Both paths on example `index` of dataset split `split`."""
        return _answered(lambda: _outputs(engine.compare_example(split, index)))

    def compare(image: str | None, question: str, regions: str = "[]", depth: str | None = None, choices: str = "") -> tuple:
        """Both paths on an uploaded image (a file), a question, regions (JSON), an optional depth
        map (a file) and optional choices (comma-separated)."""
        return _answered(lambda: _outputs(engine.compare(image, question, regions, depth, choices)),
                         files=(image, depth))

    # private events of the page
    def preview(split: str, index: float) -> tuple:
        def show():
            row = engine.example(split, index)
            return ("", "", "", "", _question(row), None, enlarge(viz.frames_image(row)), "")
        return _answered(show)

    def browse(split: str) -> tuple:
        try:
            gallery = engine.gallery(split)
        except ValueError:
            gallery = []
        return (gallery, 0, *preview(split, 0))

    def pick(evt: gr.SelectData) -> int:
        return evt.index

    def show_upload(image: str | None) -> tuple:
        """A new upload: drawn without regions, and the last answer (of another image) cleared."""
        if image is None:
            return None, "[]", None, "", *EMPTY
        try:
            return demo_engine.draw_upload(image), "[]", None, _hint(demo_engine.regions_hint("[]")), *EMPTY
        except (ValueError, FileNotFoundError) as err:
            return None, "[]", None, _message(err, (image,)), *EMPTY

    def redraw(image: str | None, regions: str) -> tuple:
        if image is None:
            return gr.update(), ""
        try:
            return demo_engine.draw_upload(image, regions), _hint(demo_engine.regions_hint(regions))
        except (ValueError, FileNotFoundError) as err:
            return gr.update(), _message(err, (image,))

    def click(regions: str, pending: list | None, kind: str, color: str, image: str | None, evt: gr.SelectData) -> tuple:
        if image is None:
            return regions, None, _message(ValueError("upload an image before clicking regions"))
        x, y = evt.index
        try:
            regions, pending, hint = demo_engine.click_region(regions, pending, kind, color, int(x), int(y))
            return regions, pending, _hint(hint)
        except ValueError as err:
            return regions, None, _message(ValueError(f"fix the regions text first: {err}"))

    private = dict(api_visibility="private")
    with gr.Blocks(title="SR-ReaL: LOR vs DTR") as app:
        gr.Markdown(
            "# SR-ReaL: one model, two reasoning paths\n"
            "**LOR** thinks in words, then answers. **DTR** first writes the 3D centers of the objects "
            "the question refers to, then reasons with those numbers. Pick an example (held-out splits "
            "first) or upload your own image, then compare the two paths."
        )
        with gr.Tab("Dataset example"):
            with gr.Row():
                split = gr.Dropdown(splits, value=splits[0], label="split", allow_custom_value=True)
                index = gr.Number(value=0, precision=0, label=f"index ({', '.join(f'{s}: {n}' for s, n in sizes.items())})")
                run_example = gr.Button("Compare LOR and DTR", variant="primary")
            gallery = gr.Gallery(label="examples (click one)", columns=6, height=220, format="png",
                                 allow_preview=False)
        with gr.Tab("Upload"):
            with gr.Row():
                with gr.Column():
                    image = gr.File(label="image (PNG or JPEG)", type="filepath")
                    canvas = gr.Image(label="click: a point, or two corners of a box", type="pil", format="png",
                                      interactive=False, height=DISPLAY_SIDE)
                with gr.Column():
                    question = gr.Textbox(value=EXAMPLE_QUESTION, lines=3, label="question (each region as `<label> <region>`)")
                    choices = gr.Textbox(value="", label="choices (optional, comma-separated, e.g. `left, right`: "
                                         "the model answers with a letter)")
                    with gr.Row():
                        kind = gr.Radio(["box", "point"], value="box", label="click adds a")
                        color = gr.Dropdown(list(render.MARK_COLORS), value="red", label="color")
                    regions = gr.Textbox(value="[]", lines=3, label="regions (JSON)")
                    depth = gr.File(label="depth map (optional): a 16-bit PNG in mm or a .npy in m, the image's size",
                                    type="filepath")
                    hint = gr.HTML()
                    run_upload = gr.Button("Compare LOR and DTR", variant="primary")
            pending = gr.State(None)
        message = gr.HTML(elem_id="message")
        with gr.Row():
            marked = gr.Image(label="what the model sees (enlarged, pixels kept sharp)", type="pil", format="png",
                              height=DISPLAY_SIDE, interactive=False)
            summary = gr.HTML(elem_id="summary")
        with gr.Row():
            lor_html = gr.HTML(elem_id="lor-trace")
            dtr_html = gr.HTML(elem_id="dtr-trace")
        with gr.Accordion("raw completions", open=False), gr.Row():
            lor_raw = gr.Textbox(label="LOR completion", lines=4)
            dtr_raw = gr.Textbox(label="DTR completion", lines=4)
        plot = gr.Plot(label="detected vs true centers (camera frame, m)")
        outputs = [lor_raw, dtr_raw, lor_html, dtr_html, summary, plot, marked, message]

        run_example.click(compare_example, [split, index], outputs, api_name="compare_example")
        run_upload.click(compare, [image, question, regions, depth, choices], outputs, api_name="compare")
        app.load(browse, [split], [gallery, index, *outputs], **private)
        split.change(browse, [split], [gallery, index, *outputs], **private)
        index.change(preview, [split, index], outputs, **private)
        gallery.select(pick, None, index, **private)
        image.change(show_upload, [image], [canvas, regions, pending, hint, *outputs], **private)
        regions.change(redraw, [image, regions], [canvas, hint], **private)
        canvas.select(click, [regions, pending, kind, color, image], [regions, pending, hint], **private)
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
    model), a bounded upload size, and errors shown (bad input is answered in the page; this is
    for anything else). A warning goes to stderr when the demo is reachable from other machines
    (a public address or a share link): anyone there can run the model."""
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
    parser.add_argument("--model", default=SHIPPED,
                        help="model folder (workbench sft/grpo output), VLM name, or `shipped` (default: the package's checkpoint)")
    parser.add_argument("--data", default=None, help="dataset folder to browse examples from")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a workshop LAN)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public share link")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--depth-model", default="",
                        help="transformers depth-estimation model that fills in the depth of an upload without one")


def cli(args) -> int:
    check_port(args.port)  # before paying for the model load
    if args.model != SHIPPED and not Path(args.model).exists() and "/" not in args.model:
        raise FileNotFoundError(f"model {args.model!r} is neither a folder nor a hub name")
    engine = DemoEngine(args.model, args.data, max_new_tokens=args.max_new_tokens, depth_model=args.depth_model)
    launch(build_app(engine), host=args.host, port=args.port, share=args.share)
    return 0
