"""The Gradio demo driven as visitors and scripts use it: gradio_client, many clients at once,
and a real headless Chromium."""

from __future__ import annotations

import html
import json
import shutil
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

GOOD_REGIONS = '[{"label": "red box", "bbox_2d": [10, 10, 100, 90]}, {"label": "blue point", "point": [250, 150]}]'
GOOD_QUESTION = "Is the object in the red box <region> left of the one in the blue point <region>?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from workbench.dataset import DataSettings, build_dataset, load_dataset_dir, views
    from workbench.demo.app import build_app, launch
    from workbench.demo.engine import DemoEngine
    from workbench.model import ModelSettings, build_tiny
    from workbench.tasks import prompts

    root = tmp_path_factory.mktemp("demo")
    build_dataset(DataSettings.from_profile("smoke", num_scenes=10, seed=1), root / "data", progress=False)
    ds = load_dataset_dir(root / "data")
    model, processor = build_tiny(prompts.corpus(views.remove_columns(ds["train"], ["image", "depth"])), ModelSettings.from_profile("smoke"))
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    engine = DemoEngine(str(root / "model"), str(root / "data"), max_new_tokens=6)
    port = _free_port()
    app = launch(build_app(engine), port=port, block=False)
    upload = root / "upload.png"
    Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 255).astype("uint8")).save(upload)
    yield {"url": f"http://127.0.0.1:{port}/", "engine": engine, "upload": upload, "root": root}
    app.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def _is_cleared(outputs) -> bool:
    """Every output but the message is empty: nothing of an earlier answer is left on the page."""
    return all(v in ("", None) for v in outputs[:-1])


def test_compare_example_shows_the_question_its_options_and_a_large_image(client, server):
    engine = server["engine"]
    index = next(i for i in range(engine.split_sizes()["val"]) if engine.example("val", i)["choices"])
    lor, dtr, lor_html, dtr_html, summary, _plot, image, message = client.predict("val", index, api_name="/compare_example")
    row = engine.example("val", index)
    assert isinstance(lor, str) and isinstance(dtr, str) and message == ""
    assert "LOR" in lor_html and "DTR" in dtr_html
    assert html.escape(row["question"]) in summary
    for letter, option in zip("ABCDEFGH", row["choices"]):
        assert f"{letter}. {html.escape(option)}" in summary
    truth = f"{row['answer']} ({row['choices'][ord(row['answer']) - 65]})"  # "B (closer)"
    assert f"truth: {html.escape(truth)}" in summary and "<td>overall</td>" in summary
    small, large = row["image"].size, Image.open(image).size
    assert max(large) == 448 and large == (small[0] * 448 // max(small), small[1] * 448 // max(small))


def test_the_api_names_its_parameters_and_hides_the_pages_own_handlers(client):
    info = client.view_api(return_format="dict", print_info=False)
    named = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in info["named_endpoints"].items()}
    assert named == {"/compare_example": ["split", "index"],
                     "/compare": ["image", "question", "regions", "depth", "choices"]}
    assert not info["unnamed_endpoints"], "an internal handler (click, preview, gallery) is public"
    assert client.predict(split="val", index=1, api_name="/compare_example")[-1] == ""


def test_compare_upload_returns_both_paths(client, server):
    from gradio_client import handle_file

    lor, dtr, *_rest, summary, _plot, _image, message = client.predict(
        handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS, None, api_name="/compare"
    )
    assert isinstance(lor, str) and isinstance(dtr, str) and message == ""
    assert "truth" not in summary  # an upload has no ground truth
    assert "<b>Depth:</b> none: the 3D positional embedding is off" in summary


def test_an_upload_with_clicked_regions_and_choices_runs(client, server):
    """Two clicks make the red box, one the blue point; the choices reach the model as options."""
    from gradio_client import handle_file

    from workbench.demo.engine import click_region, draw_upload
    from workbench.world.render import MARK_COLORS

    regions, pending, _ = click_region("[]", None, "box", "red", 100, 90)
    assert regions == "[]" and pending == [100, 90]
    regions, pending, _ = click_region(regions, pending, "box", "red", 10, 10)
    regions, pending, _ = click_region(regions, pending, "point", "blue", 250, 150)
    assert json.loads(regions) == [{"label": "red box", "bbox_2d": [10, 10, 101, 91]},
                                   {"label": "blue point", "point": [250, 150]}]
    drawn = np.asarray(draw_upload(str(server["upload"]), regions))
    assert tuple(drawn[50, 9]) == MARK_COLORS["red"] and tuple(drawn[150, 250]) == MARK_COLORS["blue"]
    question = "Is the blue point <region> left or right of the red box <region>?"
    lor, dtr, *_rest, summary, _plot, _image, message = client.predict(  # by name, the depth left out
        image=handle_file(str(server["upload"])), question=question, regions=regions, choices="left, right",
        api_name="/compare")
    assert message == "" and isinstance(lor, str) and isinstance(dtr, str)
    assert "A. left" in summary and "B. right" in summary


def test_compare_upload_with_a_depth_map(client, server):
    """A 16-bit PNG in millimeters of the upload's size reaches the model's depth embedding."""
    from gradio_client import handle_file

    depth_png = server["root"] / "upload_depth.png"
    Image.fromarray(np.full((200, 300), 2500, dtype=np.uint16)).save(depth_png)
    *_rest, summary, _plot, _image, message = client.predict(
        handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS, handle_file(str(depth_png)),
        api_name="/compare")
    assert message == "" and "<b>Depth:</b> the uploaded depth map" in summary


@pytest.mark.parametrize(
    "args, message",
    [
        (("test", 10_000), "out of range"),
        (("nosuch", 0), "split 'nosuch' is not in the dataset"),
    ],
)
def test_bad_example_input_gives_a_message_and_the_app_keeps_serving(client, args, message):
    outputs = client.predict(*args, api_name="/compare_example")
    assert message in outputs[-1] and _is_cleared(outputs)
    assert client.predict("val", 1, api_name="/compare_example")[-1] == ""


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_image", "no image"),
        ("not_an_image", "'notes.txt' is not an image file"),
        ("text_renamed_png", "'renamed.png' is not an image file"),
        ("huge_image", "the largest side may be"),
        ("outside", "outside the 300x200 image"),
        ("malformed", "not valid JSON"),
        ("empty_question", "the question is empty"),
        ("long_question", "at most 600"),
        ("token_mismatch", "has 2 &lt;region&gt; tokens but 1 regions"),
        ("unknown_label", "the question names 'green point &lt;region&gt;', but no region is labelled 'green point'"),
        ("unnamed_region", "region 'blue point' is not named in the question"),
        ("empty_choice", "have an empty option"),
        ("depth_size", "depth map 'small_depth.npy' has shape (20, 30); the image needs (200, 300)"),
        ("depth_8bit", "depth map 'gray_depth.png' is a L image; a depth PNG is 16-bit"),
        ("depth_nan", "depth map 'nan_depth.npy' contains NaN"),
    ],
)
def test_bad_upload_gives_a_message_and_the_app_keeps_serving(client, server, case, message):
    from gradio_client import handle_file

    root = server["root"]
    image, question, regions = handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS
    depth, choices = None, ""
    if case == "no_image":
        image = None
    elif case == "not_an_image":
        (root / "notes.txt").write_text("not pixels")
        image = handle_file(str(root / "notes.txt"))
    elif case == "text_renamed_png":
        (root / "renamed.png").write_text("a text file, renamed")
        image = handle_file(str(root / "renamed.png"))
    elif case == "huge_image":
        Image.new("RGB", (5000, 20)).save(root / "huge.png")
        image = handle_file(str(root / "huge.png"))
    elif case == "outside":
        regions = '[{"label": "red box", "bbox_2d": [10, 10, 400, 90]}, {"label": "blue point", "point": [5, 5]}]'
    elif case == "malformed":
        regions = "[{label: red}"
    elif case == "empty_question":
        question = "   "
    elif case == "long_question":
        question = GOOD_QUESTION + " x" * 400
    elif case == "token_mismatch":
        regions = '[{"label": "red box", "bbox_2d": [10, 10, 100, 90]}]'
    elif case == "unknown_label":
        question = GOOD_QUESTION.replace("blue point", "green point")
    elif case == "unnamed_region":
        question = GOOD_QUESTION.replace("blue point", "thing")
    elif case == "empty_choice":
        choices = "left,,right"
    elif case == "depth_size":
        np.save(root / "small_depth.npy", np.ones((20, 30), dtype=np.float32))
        depth = handle_file(str(root / "small_depth.npy"))
    elif case == "depth_8bit":
        Image.new("L", (300, 200), 40).save(root / "gray_depth.png")
        depth = handle_file(str(root / "gray_depth.png"))
    elif case == "depth_nan":
        np.save(root / "nan_depth.npy", np.full((200, 300), np.nan, dtype=np.float32))
        depth = handle_file(str(root / "nan_depth.npy"))
    outputs = client.predict(image, question, regions, depth, choices, api_name="/compare")
    assert message in outputs[-1], outputs[-1]
    assert tempfile.gettempdir() not in outputs[-1], "the message shows a server path"
    assert "preprocess" not in outputs[-1]
    assert _is_cleared(outputs)
    assert client.predict("val", 0, api_name="/compare_example")[-1] == ""


def test_an_error_clears_the_previous_answer(client, server):
    """The page shows one answer at a time: an error after a good answer empties every output."""
    from gradio_client import handle_file

    good = client.predict(handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS, None, api_name="/compare")
    assert not _is_cleared(good) and good[-1] == ""
    bad = client.predict(handle_file(str(server["upload"])), GOOD_QUESTION, "[", None, api_name="/compare")
    assert _is_cleared(bad) and "not valid JSON" in bad[-1]


def test_twenty_concurrent_clients_are_all_answered(server):
    from gradio_client import Client

    def ask(i):
        # Queued visitors wait their turn: the timeout is generous because the point is that every
        # call is answered, not how fast (a loaded 2-core machine serves 20 in sequence).
        client = Client(server["url"], verbose=False, httpx_kwargs={"timeout": 600})
        return client.predict("val", i % 5, api_name="/compare_example")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, range(20)))
    assert len(results) == 20 and all(isinstance(r[0], str) and isinstance(r[1], str) for r in results)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it as root)")
def test_headless_chromium_shows_both_trace_panels(server, tmp_path):
    flags = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600", "--virtual-time-budget=15000",
    ]
    dom = subprocess.run(flags + ["--dump-dom", server["url"]], capture_output=True, text=True, timeout=120).stdout
    assert 'id="lor-trace"' in dom and 'id="dtr-trace"' in dom, "the page lacks the two trace panels"
    assert "SR-ReaL: one model, two reasoning paths" in dom
    shot = tmp_path / "demo.png"
    subprocess.run(flags + [f"--screenshot={shot}", server["url"]], capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (1600, 1280) and image.std() > 5, "the screenshot is blank"


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_a_bad_port_is_named_before_the_model_loads(tmp_path, capsys, port):
    from workbench.cli import main

    code = main(["demo", "--model", str(tmp_path / "nowhere-but-a-folder"), "--port", port])
    assert code == 2 and f"--port must be between 1 and 65535, got {port}" in capsys.readouterr().err


def test_serving_a_dataset_leaves_its_folder_as_it_was(server):
    root = server["root"] / "data"
    assert not list(root.rglob("cache-*.arrow")), "the demo wrote cache files into the dataset it serves"


def test_a_public_address_warns(monkeypatch, capsys):
    from workbench.demo import app as demo_app

    launched = []

    class FakeQueue:
        def launch(self, **kwargs):
            launched.append(kwargs)

    class FakeApp:
        def queue(self, **kwargs):
            launched.append(kwargs)
            return FakeQueue()

    demo_app.launch(FakeApp(), host="0.0.0.0", port=7861, block=False)
    assert "reachable on 0.0.0.0, from other machines" in capsys.readouterr().err
    assert launched[0]["max_size"] == demo_app.QUEUE_SIZE and launched[1]["max_file_size"] == demo_app.MAX_UPLOAD
    demo_app.launch(FakeApp(), host="127.0.0.1", port=7861, block=False)
    assert "warning" not in capsys.readouterr().err


def test_an_upload_with_depth_shows_its_point_cloud(server):
    engine = server["engine"]
    regions = '[{"label": "red box", "bbox_2d": [10, 10, 100, 90]}, {"label": "blue point", "point": [250, 150]}]'
    with_depth = engine.compare(str(server["upload"]), GOOD_QUESTION, regions, depth=np.full((200, 300), 2.0))
    names = [t.name for t in with_depth.figure().data]
    assert "point cloud" in names and "ground-truth centers" not in names
    assert with_depth.depth == "the uploaded depth map"
    without = engine.compare(str(server["upload"]), GOOD_QUESTION, regions)
    assert "point cloud" not in [t.name for t in without.figure().data]


def test_the_3d_panel_says_why_it_shows_nothing(server):
    """An upload's 3D panel: DTR's centers when it writes them, else a sentence saying why not."""
    from workbench.dataset import freeform
    from workbench.demo.engine import Comparison
    from workbench.tasks import rewards

    flat = freeform.make_row(str(server["upload"]), GOOD_QUESTION, GOOD_REGIONS)
    deep = freeform.make_row(str(server["upload"]), GOOD_QUESTION, GOOD_REGIONS, depth=np.full((200, 300), 2.0))
    detect = '<detect><3d_box center="0.1,0.2,1.5">cube (red box)</3d_box></detect><answer>A</answer>'
    cases = [
        (flat, "<answer>A</answer>", "Nothing to show in 3D: DTR wrote no <detect> block", False),
        (flat, "<detect></detect><answer>A</answer>", "Nothing to show in 3D: DTR's <detect> block has no 3d_box", False),
        (flat, detect, "No depth map: DTR's centers are shown without a point cloud", True),
        (deep, "<answer>A</answer>", "DTR wrote no <detect> block, so it placed no object in 3D; the scene is shown alone", False),
        (deep, detect, "", True),
    ]
    for row, dtr, note, has_centers in cases:
        c = Comparison(row=row, completions={"lor": "", "dtr": dtr}, answers={"lor": None, "dtr": "A"},
                       centers={"lor": {}, "dtr": rewards.parse_centers(dtr)})
        fig = c.figure()
        assert c.figure_note().startswith(note) and (note == "") == (c.figure_note() == "")
        names = [t.name for t in fig.data]
        assert ("DTR centers" in names or "predicted centers" in names) == has_centers
        assert ("point cloud" in names) == (row is deep)
        assert not note or note in " ".join(a.text for a in fig.layout.annotations)


def test_examples_offer_held_out_splits_first():
    from workbench.demo.engine import DemoEngine

    engine = object.__new__(DemoEngine)  # no model needed to order splits
    engine.dataset = {"train": [1, 2, 3], "test_ood": [1], "val": [1, 2], "test": []}
    assert list(engine.split_sizes().items()) == [("val", 2), ("test", 0), ("test_ood", 1), ("train", 3)]
