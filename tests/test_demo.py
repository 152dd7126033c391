"""The Gradio demo driven as visitors and scripts use it: gradio_client, many clients at once,
and a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
import subprocess
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


def test_compare_example_returns_both_paths(client, server):
    lor, dtr, lor_html, dtr_html, summary, _plot, _image = client.predict("val", 0, api_name="/compare_example")
    assert isinstance(lor, str) and isinstance(dtr, str)
    assert "LOR" in lor_html and "DTR" in dtr_html
    truth = server["engine"].example("val", 0)["answer"]
    assert f"**Truth:** {truth}" in summary and "| overall |" in summary


def test_compare_upload_returns_both_paths(client, server):
    from gradio_client import handle_file

    lor, dtr, *_rest, summary, _plot, image = client.predict(
        handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS, None, api_name="/compare"
    )
    assert isinstance(lor, str) and isinstance(dtr, str)
    assert "Truth" not in summary  # an upload has no ground truth
    assert "**Depth:** none: the 3D positional embedding is off" in summary


def test_compare_upload_with_a_depth_map(client, server):
    """A 16-bit PNG in millimeters of the upload's size reaches the model's depth embedding."""
    from gradio_client import handle_file

    depth_png = server["root"] / "upload_depth.png"
    Image.fromarray(np.full((200, 300), 2500, dtype=np.uint16)).save(depth_png)
    *_rest, summary, _plot, _image = client.predict(
        handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS, handle_file(str(depth_png)),
        api_name="/compare")
    assert "**Depth:** the uploaded depth map" in summary


@pytest.mark.parametrize(
    "args, message",
    [
        (("test", 10_000), "out of range"),
        (("nosuch", 0), "nosuch is not in the list of choices"),
    ],
)
def test_bad_example_input_gives_a_message_and_the_app_keeps_serving(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/compare_example")
    assert isinstance(client.predict("val", 1, api_name="/compare_example")[0], str)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no_image", "no image"),
        ("not_an_image", "cannot identify image file"),
        ("huge_image", "the largest side may be"),
        ("outside", "outside the 300x200 image"),
        ("malformed", "not valid JSON"),
        ("empty_question", "the question is empty"),
        ("long_question", "at most 600"),
        ("token_mismatch", "has 2 <region> tokens but 1 regions"),
        ("depth_size", r"depth map 'small_depth.npy' has shape \(20, 30\); the image needs \(200, 300\)"),
        ("depth_8bit", "depth map 'gray_depth.png' is a L image; a depth PNG is 16-bit"),
        ("depth_nan", "depth map 'nan_depth.npy' contains NaN"),
    ],
)
def test_bad_upload_gives_a_message_and_the_app_keeps_serving(client, server, case, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    root = server["root"]
    image, question, regions = handle_file(str(server["upload"])), GOOD_QUESTION, GOOD_REGIONS
    depth = None
    if case == "no_image":
        image = None
    elif case == "not_an_image":
        (root / "notes.txt").write_text("not pixels")
        image = handle_file(str(root / "notes.txt"))
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
    elif case == "depth_size":
        np.save(root / "small_depth.npy", np.ones((20, 30), dtype=np.float32))
        depth = handle_file(str(root / "small_depth.npy"))
    elif case == "depth_8bit":
        Image.new("L", (300, 200), 40).save(root / "gray_depth.png")
        depth = handle_file(str(root / "gray_depth.png"))
    elif case == "depth_nan":
        np.save(root / "nan_depth.npy", np.full((200, 300), np.nan, dtype=np.float32))
        depth = handle_file(str(root / "nan_depth.npy"))
    with pytest.raises(AppError, match=message):
        client.predict(image, question, regions, depth, api_name="/compare")
    assert isinstance(client.predict("val", 0, api_name="/compare_example")[0], str)


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


def test_examples_offer_held_out_splits_first():
    from workbench.demo.engine import DemoEngine

    engine = object.__new__(DemoEngine)  # no model needed to order splits
    engine.dataset = {"train": [1, 2, 3], "test_ood": [1], "val": [1, 2], "test": []}
    assert list(engine.split_sizes().items()) == [("val", 2), ("test", 0), ("test_ood", 1), ("train", 3)]
