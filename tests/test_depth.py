"""The 3D positional embedding: depth carried inside an image, per-patch points in the processor's
row order, the embedding live in forward and generate, off without depth, kept by save / load,
reaching TRL's SFT and GRPO, and the errors a bad depth map gets."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from PIL import Image
from test_model import make_row

from workbench import model as M
from workbench.model import depth as D
from workbench.tasks import prompts as P
from workbench.train.examples import training_examples

K = (100.0, 100.0, 56.0, 56.0)  # fx, fy, cx, cy of a 112 x 112 view


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def depth_row(i: int = 0, z: float = 2.0, box_z: float | None = None) -> dict:
    """`make_row` with a depth map: a wall at `z` m, the first region's box at `box_z`."""
    row = make_row(i)
    depth = np.full((112, 112), z, dtype=np.float32)
    if box_z is not None:
        x0, y0, x1, y1 = (int(v) for v in row["regions"][0]["bbox_2d"])
        depth[y0:y1, x0:x1] = box_z
    return {**row, "depth": depth, "intrinsics": list(K)}


def build(mode: str):
    rows = [make_row(i, n, numeric=bool(i % 2)) for i, n in enumerate([2, 1, 0, 2])]
    model, processor = M.build_tiny(list(P.corpus(rows)) * 10,
                                    M.ModelSettings.from_profile("smoke", depth_embedding=mode))
    model.eval()
    if model.model.depth_embed is not None:  # a trained embedding: the fresh one is near zero on purpose
        torch.nn.init.normal_(model.model.depth_embed.net[-1].weight, std=0.5)
    return model, processor


@pytest.fixture(scope="module")
def metric():
    return build("metric")


def inputs(processor, rows, depth=True):
    return M.model_inputs(processor, rows, "dtr", True, depth=depth)


# --- the codec --------------------------------------------------------------------------------


def test_attach_and_detach_round_trip_within_the_log_code_step():
    z = np.random.default_rng(0).uniform(0.3, 15.0, (40, 60)).astype(np.float32)
    z[5, 7] = 0.0  # no depth at one pixel
    carrying = D.attach(Image.new("RGB", (60, 40), (10, 20, 30)), z, K)
    rgb, back, k = D.detach(carrying)
    assert rgb.mode == "RGB" and np.asarray(rgb)[3, 3].tolist() == [10, 20, 30]
    assert k == pytest.approx(K)
    rel = np.abs(back[1:] - z[1:]) / z[1:].clip(1e-6)
    assert rel[z[1:] > 0].max() < 0.01  # half of the 1.8 % code step
    assert back[5, 7] == 0.0
    # survives a PNG round trip (datasets stores images as PNG)
    import io
    buf = io.BytesIO()
    carrying.save(buf, format="PNG")
    assert np.array_equal(D.detach(Image.open(buf))[1], back)
    # an ordinary RGBA image or an RGB image has no depth
    assert D.detach(Image.new("RGBA", (60, 40), (1, 2, 3, 255)))[1] is None
    assert D.detach(rgb)[1] is None


@pytest.mark.parametrize("bad, message", [
    (np.full((10, 60), 2.0), r"depth has shape \(10, 60\); the image needs \(40, 60\)"),
    (np.full((40, 60), np.nan), "depth contains NaN"),
    (np.full((40, 60), -1.0), r"depth contains negative values \(min -1\)"),
    (np.full((40, 60, 3), 2.0), r"shape \(40, 60, 3\)"),
])
def test_a_mismatched_depth_map_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        D.attach(Image.new("RGB", (60, 40)), bad, K)


def test_patch_points_follow_the_processors_row_order(metric):
    """Each patch gets its own gray level and its own depth, both rising with the patch
    index in raster order; every row of `pixel_values` must pair the gray of a patch with its depth."""
    _, processor = metric
    p = processor.image_processor.patch_size
    gh, gw = 8, 6  # an image of whole merge windows, so the processor does not resize it
    level = np.arange(gh * gw, dtype=np.float32).reshape(gh, gw)
    pixels = np.kron(level, np.ones((p, p)))
    image = Image.fromarray((40 + 4 * pixels).astype(np.uint8)).convert("RGB")
    z = (1.0 + 0.1 * pixels).astype(np.float32)
    plain = processor.image_processor(images=[image], return_tensors="pt")
    out = processor(images=[D.attach(image, z, (50.0, 50.0, 21.0, 28.0))], text=["<|image_pad|>"],
                    return_tensors="pt")
    width = plain["pixel_values"].shape[1]
    assert out["pixel_values"].shape == (gh * gw, width + D.POINT_COLUMNS)
    assert torch.equal(out["pixel_values"][:, :width], plain["pixel_values"])  # RGB untouched
    gray = plain["pixel_values"].mean(dim=1)
    zcol = out["pixel_values"][:, width + 2]
    assert torch.equal(gray.argsort(), zcol.argsort())
    assert zcol.min().item() == pytest.approx(1.0, rel=0.01) and zcol.max().item() == pytest.approx(5.7, rel=0.01)
    assert out["pixel_values"][:, -1].eq(1).all()  # every patch has depth


def test_relative_points_ignore_the_scale_of_depth_and_metric_ones_do_not():
    z = np.random.default_rng(1).uniform(1.0, 4.0, (28, 28)).astype(np.float32)
    m1, r1, _ = D.point_maps(z, K)
    m2, r2, _ = D.point_maps(3 * z, K)
    assert np.allclose(r1, r2, atol=1e-5) and not np.allclose(m1, m2)
    assert r1[..., 2].min() == pytest.approx(-1.0) and r1[..., 2].max() == pytest.approx(1.0)
    assert np.allclose(m1[..., 2], z)


# --- the model --------------------------------------------------------------------------------


def _region_position(model, batch) -> int:
    return int((batch["input_ids"][0] == model.config.workbench_region_token_id).nonzero()[0])


@torch.no_grad()
def test_depth_inside_a_region_changes_the_logits_in_forward(metric):
    model, processor = metric
    near, far = inputs(processor, [depth_row(box_z=1.0)]), inputs(processor, [depth_row(box_z=4.0)])
    assert torch.equal(near["input_ids"], far["input_ids"])
    t = _region_position(model, near)
    ln, lf = model(**near).logits, model(**far).logits
    assert (ln[0, t] - lf[0, t]).abs().max() > 1e-3  # the pooled region feature carries the depth


@torch.no_grad()
def test_depth_reaches_generate_and_matches_forward(metric):
    model, processor = metric

    def first_scores(row):
        batch = inputs(processor, [row])
        out = model.generate(**batch, max_new_tokens=2, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
        return batch, out.scores[0][0]

    batch, near = first_scores(depth_row(box_z=1.0))
    assert torch.allclose(near, model(**batch).logits[0, -1], atol=1e-5)
    _, far = first_scores(depth_row(box_z=4.0))
    assert (near - far).abs().max() > 1e-3
    texts = M.generate(model, processor, [depth_row(box_z=1.0), make_row(1)], "dtr", max_new_tokens=3)
    assert len(texts) == 2  # a batch mixing an image with depth and one without


@torch.no_grad()
def test_a_bfloat16_model_embeds_depth_like_the_float32_one(metric):
    """A model in bf16 (a pretrained Qwen2.5-VL loaded on a GPU, the GPU check's forward) embeds
    depth: the Fourier features stay float32, the layers take the model's dtype."""
    model, processor = metric
    rows = [depth_row(0, box_z=1.0), depth_row(1, box_z=3.0)]
    half = copy.deepcopy(model).to(torch.bfloat16)
    full, flat = model(**inputs(processor, rows)).logits, model(**inputs(processor, rows, depth=False)).logits
    logits = half(**inputs(processor, rows)).logits
    assert logits.dtype == torch.bfloat16
    # bf16 rounding is far smaller than what depth changes
    assert (logits.float() - full).abs().max() < 0.1 * (full - flat).abs().max()


@torch.no_grad()
def test_an_image_without_depth_runs_with_the_embedding_off(metric):
    model, processor = metric
    plain = inputs(processor, [make_row()], depth=False)
    empty = inputs(processor, [depth_row(z=0.0)])  # depth attached, but no pixel has any
    assert plain["pixel_values"].shape[1] + D.POINT_COLUMNS == empty["pixel_values"].shape[1]
    assert torch.allclose(model(**plain).logits, model(**empty).logits, atol=1e-6)
    with_depth = inputs(processor, [depth_row(box_z=1.0)])
    assert not torch.allclose(model(**plain).logits, model(**with_depth).logits, atol=1e-4)


@torch.no_grad()
def test_mode_none_ignores_depth_and_a_wrong_width_is_a_clear_error():
    model, processor = build("none")
    assert model.model.depth_embed is None and not M.uses_depth(model)
    plain, carrying = inputs(processor, [make_row()], depth=False), inputs(processor, [depth_row(box_z=1.0)])
    assert torch.allclose(model(**plain).logits, model(**carrying).logits, atol=1e-6)
    bad = dict(plain, pixel_values=plain["pixel_values"][:, :-1])
    with pytest.raises(ValueError, match="pixel_values rows have 146 values; this model reads 147"):
        model(**bad)


@torch.no_grad()
def test_relative_mode_reads_the_relative_points():
    model, processor = build("relative")
    assert M.uses_depth(model) and model.config.workbench_depth_embedding == "relative"
    a = inputs(processor, [depth_row(z=2.0, box_z=1.0)])
    b = inputs(processor, [depth_row(z=6.0, box_z=3.0)])  # the same scene three times as deep
    c = inputs(processor, [depth_row(z=2.0, box_z=3.0)])  # the box now behind the wall
    assert torch.allclose(model(**a).logits, model(**b).logits, atol=1e-4)
    assert not torch.allclose(model(**a).logits, model(**c).logits, atol=1e-4)


@torch.no_grad()
def test_the_setting_and_the_embedding_survive_save_and_load(metric, tmp_path):
    model, processor = metric
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = M.load(tmp_path)
    assert loaded.config.workbench_depth_embedding == "metric" and M.uses_depth(loaded)
    a, b = inputs(processor, [depth_row(box_z=1.0)]), inputs(loaded_processor, [depth_row(box_z=1.0)])
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert torch.allclose(model(**a).logits, loaded(**b).logits, atol=1e-6)


@torch.no_grad()
def test_regions_pool_the_patches_with_the_embedding_in_the_images_own_order(metric):
    """Region pooling on patches (`region_pool="patch"`, the default): a region averages the vision
    tower's patch features with the 3D embedding added, on the patch grid, in the image's own
    order even when the tower holds the patches in attention windows. Depth changed inside the
    second region's box (and nowhere near the first) changes the second region's pooled feature
    and leaves the first one's bit for bit."""
    model, processor = metric
    backbone = model.model
    assert backbone.region_pool == "patch" and model.config.workbench_region_pool == "patch"
    visual = backbone.visual
    saved = visual.window_size
    visual.window_size = 28  # windows of 2 x 2 image tokens: the tower's order is not the image's
    pooled = []
    hook = backbone.region_proj.register_forward_hook(lambda m, i, o: pooled.append(i[0].clone()))
    try:
        grid = torch.tensor([[1, 16, 16]])
        order = M.architecture.compat.vision_window_index(visual, grid)
        assert not torch.equal(order, torch.arange(len(order)))
        for z in (2.0, 4.0):
            row = depth_row()  # a wall at 2 m; regions at x 8-42 px and 58-102 px
            row["depth"][49:98, 63:98] = z  # whole patches inside the second box only
            model(**inputs(processor, [row]))
    finally:
        hook.remove()
        visual.window_size = saved
    (first, second), (first_far, second_far) = pooled
    assert torch.equal(first, first_far)
    assert (second - second_far).abs().max() > 1e-3


def test_bad_depth_settings_name_the_value():
    with pytest.raises(ValueError, match="depth_embedding must be one of .* got 'lidar'"):
        M.ModelSettings(depth_embedding="lidar")
    with pytest.raises(ValueError, match="depth_dropout must be in"):
        training_examples(_rows_with_depth(), depth=True, depth_dropout=1.5)
    from workbench.train.sft import SFTSettings

    with pytest.raises(ValueError, match=r"depth_dropout must be in \[0, 1\], got -0.1"):
        SFTSettings.from_profile("smoke", depth_dropout=-0.1)
    with pytest.raises(ValueError, match="unknown depth_embedding 'lidar'"):
        SFTSettings.from_profile("smoke", depth_embedding="lidar")


# --- training data ----------------------------------------------------------------------------


def _rows_with_depth():
    import datasets

    rows = [depth_row(i, box_z=1.0 + i) for i in range(6)]
    for r in rows:
        r["depth"] = r["depth"].tolist()
    return datasets.Dataset.from_list(rows)


def test_training_examples_carry_depth_except_a_seeded_dropout_share():
    rows = _rows_with_depth()
    carried = lambda ex: [D.detach(ims[0])[1] is not None for ims in ex[:len(ex)]["images"]]  # noqa: E731
    assert not any(carried(training_examples(rows, "dtr_only")))
    assert all(carried(training_examples(rows, "dtr_only", depth=True)))
    half = carried(training_examples(rows, "blend", depth=True, depth_dropout=0.5))
    assert 0 < sum(half) < len(half)
    assert half == carried(training_examples(rows, "blend", depth=True, depth_dropout=0.5))


@pytest.fixture(scope="module")
def smoke(smoke_data):
    from workbench.dataset import load_dataset_dir

    return load_dataset_dir(smoke_data)


def test_evaluation_images_carry_depth_and_the_blank_baseline_does_not(smoke):
    from workbench.eval.evaluate import ImageReader, load_rows

    rows = load_rows(smoke, "val", max_examples=3)
    assert all(D.detach(im)[1] is not None for im in ImageReader(smoke)(rows))
    assert all(D.detach(im)[1] is None for im in ImageReader(smoke, blank=True)(rows))


def test_dataset_depth_lands_near_the_object_centers(smoke):
    """The premise of the embedding: the metric points inside a region's box, as the model gets
    them (through the 8-bit code), lie near the object's 3D center."""
    from workbench.schema import centers_of

    ds = smoke["train"]
    errors = []
    for row in ds.select(range(min(100, len(ds)))):
        _, z, k = D.detach(D.row_image(row))
        metric, _, valid = D.point_maps(z, k)
        centers = centers_of(row)
        for region in row["regions"]:
            if region["label"] not in centers:
                continue
            x0, y0, x1, y1 = (int(round(v)) for v in region["bbox_2d"])
            inside = metric[y0:y1, x0:x1][valid[y0:y1, x0:x1]]
            if len(inside):
                errors.append(float(np.linalg.norm(np.median(inside, axis=0) - np.asarray(centers[region["label"]]))))
    assert len(errors) >= 30, len(errors)
    assert float(np.median(errors)) < 0.2, np.median(errors)


# --- the add-on for a real pretrained Qwen2.5-VL ------------------------------------------------


def test_a_pretrained_qwen_gets_the_embedding_as_an_add_on_trained_with_lora(tmp_path):
    from test_model import _plain_checkpoint

    _plain_checkpoint(tmp_path / "plain")
    assert not M.uses_depth(M.load(tmp_path / "plain")[0])  # nothing unless asked
    peft_model, processor = M.load(tmp_path / "plain", lora=M.LoraSettings(r=4, alpha=8),
                                   depth_embedding="auto")
    assert M.uses_depth(peft_model) and peft_model.config.workbench_depth_embedding == "relative"
    assert not M.uses_region_coords(peft_model)  # still prompted as a real VLM
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("depth_embed" in n for n in trainable) and any("lora_A" in n for n in trainable)
    assert not any("region_proj" in n for n in trainable)
    backbone = M.region_backbone(peft_model)
    assert backbone.depth_embed.net[-1].weight.abs().max() < 1e-2  # starts near zero
    rows = [depth_row(box_z=1.0)]
    batch = M.model_inputs(processor, rows, "dtr", region_coords=False, depth=True)
    out = peft_model(**batch, labels=batch["input_ids"])
    out.loss.backward()
    assert backbone.depth_embed.modules_to_save["default"].net[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        torch.nn.init.normal_(backbone.depth_embed.modules_to_save["default"].net[-1].weight, std=0.5)
        near = peft_model(**batch).logits
        far = peft_model(**M.model_inputs(processor, [depth_row(z=2.0, box_z=3.0)], "dtr", region_coords=False,
                                          depth=True)).logits
        assert (near - far).abs().max() > 1e-3
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(tmp_path / "merged")
        processor.save_pretrained(tmp_path / "merged")
        reloaded, reloaded_processor = M.load(tmp_path / "merged")
        assert M.uses_depth(reloaded) and reloaded.config.workbench_depth_embedding == "relative"
        again = reloaded(**M.model_inputs(reloaded_processor, rows, "dtr", region_coords=False, depth=True)).logits
    assert torch.allclose(near, again, atol=1e-5)
    assert len(M.generate(reloaded, reloaded_processor, rows + [make_row(1)], "dtr", max_new_tokens=2)) == 2


def test_the_add_on_refuses_what_it_cannot_do(tmp_path):
    from test_model import _plain_checkpoint

    _plain_checkpoint(tmp_path / "plain")
    with pytest.raises(ValueError, match="depth_embedding must be one of .* got 'sonar'"):
        M.load(tmp_path / "plain", depth_embedding="sonar")
    model, processor = M.load(tmp_path / "plain", depth_embedding="metric")
    model.save_pretrained(tmp_path / "metric")
    processor.save_pretrained(tmp_path / "metric")
    with pytest.raises(ValueError, match="already embeds depth as 'metric'.*'relative'"):
        M.load(tmp_path / "metric", depth_embedding="relative")


# --- depth for an upload: `workbench ask --depth / --depth-model` -------------------------------


def tiny_depth_anything(path) -> None:
    """A tiny random Depth Anything (relative) saved like a hub checkpoint: no download."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                                 fusion_hidden_size=8, head_hidden_size=8, reassemble_factors=[2, 1],
                                 depth_estimation_type="relative")
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True,
                         ensure_multiple_of=14).save_pretrained(path)


@pytest.fixture(scope="module")
def asked(metric, tmp_path_factory):
    root = tmp_path_factory.mktemp("ask_depth")
    model, processor = metric
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    row = make_row()
    row["image"].resize((224, 168)).save(root / "view.png")
    Image.fromarray(np.full((168, 224), 2000, dtype=np.uint16)).save(root / "depth.png")
    np.save(root / "depth.npy", np.full((168, 224), 2.0, dtype=np.float32))
    tiny_depth_anything(root / "depth_anything")
    return root


ASK = ["--question", "Is the object in the red box <region> left of the one in the blue box <region>?",
       "--regions", '[{"label": "red box", "bbox_2d": [16, 30, 84, 90]}, {"label": "blue box", "bbox_2d": [116, 70, 200, 140]}]',
       "--max-new-tokens", "3", "--path", "dtr"]


def test_ask_reads_a_depth_png_or_npy_and_scales_it_with_the_image(asked, capsys, monkeypatch):
    from workbench import ask
    from workbench.cli import main

    seen = []
    original = ask.freeform.make_row
    monkeypatch.setattr(ask.freeform, "make_row", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    for depth in ("depth.png", "depth.npy"):
        code = main(["ask", "--model", str(asked / "model"), "--image", str(asked / "view.png"),
                     "--depth", str(asked / depth), *ASK])
        assert code == 0, capsys.readouterr().err
        row = seen[-1]
        assert row["depth"].shape == (84, 112) and np.allclose(row["depth"], 2.0)  # scaled to the model's 112 px
        fx, fy, cx, cy = row["intrinsics"]
        assert (cx, cy) == (56.0, 42.0) and fx == pytest.approx(194.0 / 2, abs=0.1)  # the 60 degree camera
    code = main(["ask", "--model", str(asked / "model"), "--image", str(asked / "view.png"),
                 "--depth", str(asked / "depth.npy"), "--intrinsics", "300,300,112,84", *ASK])
    assert code == 0 and seen[-1]["intrinsics"] == [150.0, 150.0, 56.0, 42.0]


def test_ask_estimates_depth_with_a_depth_model(asked, capsys, monkeypatch):
    from workbench import ask
    from workbench.cli import main

    seen = []
    original = ask.freeform.make_row
    monkeypatch.setattr(ask.freeform, "make_row", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    code = main(["ask", "--model", str(asked / "model"), "--image", str(asked / "view.png"),
                 "--depth-model", str(asked / "depth_anything"), *ASK])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "relative depth" in err and "unknown scale" in err  # a metric model given relative depth
    z = seen[-1]["depth"]
    assert z.shape == (84, 112) and (z >= 0).all() and (z > 0).any()


@pytest.mark.parametrize("args, message", [
    (["--depth", "{root}/nowhere.npy"], "depth file '.*nowhere.npy' does not exist"),
    (["--depth", "{root}/view.png"], "depth map 'view.png' is a RGB image; a depth PNG is 16-bit"),
    (["--depth", "{root}/wrong.npy"], r"depth map 'wrong.npy' has shape \(10, 10\); the image needs \(168, 224\)"),
    (["--depth", "{root}/negative.npy"], "depth map 'negative.npy' contains negative values"),
    (["--depth", "{root}/depth.npy", "--intrinsics", "0,1,2"], r"intrinsics \(fx, fy, cx, cy\) must be a list of 4"),
    (["--depth", "{root}/depth.npy", "--depth-model", "x"], "not both"),
    (["--depth-model", "{root}/nowhere"], "cannot load the depth-estimation model"),
])
def test_ask_bad_depth_is_a_clear_error(asked, capsys, args, message):
    from workbench.cli import main

    np.save(asked / "wrong.npy", np.ones((10, 10), dtype=np.float32))
    np.save(asked / "negative.npy", np.full((168, 224), -1.0, dtype=np.float32))
    args = [a.replace("{root}", str(asked)) for a in args]
    code = main(["ask", "--model", str(asked / "model"), "--image", str(asked / "view.png"), *args, *ASK])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_grpo_prompts_carry_depth_for_two_region_questions():
    """GRPO's prompt images carry depth, and the other columns reach the prompt builder as plain
    values (a numpy-formatted `regions` of two boxes broke `to_messages` once)."""
    from workbench.train import grpo
    from workbench.train.grpo_settings import GRPOSettings

    rows = _rows_with_depth()
    rows = rows.add_column("category", ["left_right"] * len(rows)).add_column("centers", ["{}"] * len(rows))
    assert all(len(r) == 2 for r in rows["regions"][:3])
    prompts_ = grpo.prompt_dataset(rows, GRPOSettings.from_profile("smoke", paths="dtr"), True, depth=True)
    assert len(prompts_) == len(rows)
    assert all(D.detach(prompts_[i]["image"])[1] is not None for i in range(len(prompts_)))
    plain = grpo.prompt_dataset(rows, GRPOSettings.from_profile("smoke", paths="dtr"), True)
    assert D.detach(plain[0]["image"])[1] is None and "depth" not in plain.column_names
