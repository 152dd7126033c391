"""The model: tokenizer, processor, region features (forward and generate), save/load, the
generic pretrained-VLM path, LoRA and the errors a user can cause."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil

import pytest
import torch
from PIL import Image, ImageDraw
from tiny_vlm import plain_checkpoint

from workbench import model as M
from workbench.model import inference as generate_mod
from workbench.tasks import prompts as P

LOR = "<think>The red box is left of the blue box, so the answer is A.</think>\n<answer>A</answer>"
DTR = (
    "<detect>Find 2 relevant objects:\n"
    '<3d_box center="0.31,-0.27,1.3">cube (red box)</3d_box>\n'
    '<3d_box center="0.02,0.26,0.84">ball (blue box)</3d_box></detect>\n'
    "<think>The distance is 0.76 m.</think>\n<answer>0.76</answer>"
)
QUESTIONS = {
    0: "Is the red cube left of the blue ball?",
    1: "Is the object in the red box <region> left of the blue ball?",
    2: "Is the object in the red box <region> left of the one in the blue box <region>?",
}


def make_image(shade: int = 0) -> Image.Image:
    img = Image.new("RGB", (112, 112), ((90 + 60 * shade) % 256, 90, 100))
    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 20, 40, 60], fill=(200, 30, 30))
    draw.ellipse([60, 50, 100, 95], fill=(30, 30, 200))
    draw.rectangle([5 + 7 * shade, 70, 25 + 7 * shade, 100], fill=(240, 240, 40))  # differs per image
    return img


def make_row(i: int = 0, n_regions: int = 2, numeric: bool = False) -> dict:
    regions = [
        {"label": "red box", "kind": "box", "object_index": 0, "bbox_2d": [8.0, 18.0, 42.0, 62.0]},
        {"label": "blue box", "kind": "box", "object_index": 1, "bbox_2d": [58.0, 48.0, 102.0, 97.0]},
    ][:n_regions]
    return {
        "id": f"r{i}",
        "task": "region_qa" if n_regions else "general_qa",
        "image": make_image(i),
        "regions": regions,
        "question": QUESTIONS[n_regions],
        "answer_type": "number" if numeric else "choice",
        "answer": "0.76" if numeric else "A",
        "choices": [] if numeric else ["left", "right"],
        "path": "dtr" if n_regions else "lor",
        "lor_target": LOR,
        "dtr_target": DTR,
    }


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are too small to gain from threads, and on a busy machine OpenMP
    threads waiting for each other make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    rows = [make_row(i, n, numeric=bool(i % 2)) for i, n in enumerate([2, 1, 0, 2])]
    return M.build_tiny(list(P.corpus(rows)) * 10, M.ModelSettings.from_profile("smoke"))


def moved(row: dict, k: int = 0, box=(60.0, 10.0, 110.0, 40.0)) -> dict:
    row = copy.deepcopy(row)
    row["regions"][k]["bbox_2d"] = list(box)
    return row


# --- tokenizer and processor ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        LOR,
        DTR,
        "<think>a</think>\n<answer>(C)</answer>",
        '<3d_box center="-1.05,0.00,12.34">chair (red cube)</3d_box>',
        "How far is the object in the red box <region><|loc_2|><|loc_5|><|loc_11|><|loc_17|> from it?",
        "0123456789 -0.5 3.14159",
        "Is it above?\nA. above\nB. below\nC. (none)",
    ],
)
def test_tokenizer_round_trips_spec_strings(tiny, text):
    tok = tiny[1].tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == text  # format tags are not "special"


def test_tags_region_and_location_are_single_tokens_and_digits_split(tiny):
    tok = tiny[1].tokenizer
    for token in (*M.FORMAT_TOKENS, "<region>", *M.LOC_TOKENS, *M.CONTROL_TOKENS):
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1, token
    pieces = tok.convert_ids_to_tokens(tok("x 2048.75", add_special_tokens=False)["input_ids"])
    assert [p for p in pieces if p.strip("Ġ").isdigit()] == ["2", "0", "4", "8", "7", "5"]
    start = tok.convert_tokens_to_ids(M.LOC_TOKENS[0])
    assert tok.convert_tokens_to_ids(list(M.LOC_TOKENS)) == list(range(start, start + M.NUM_LOC_BINS))


def test_processor_works_without_torchvision_and_gives_an_8x8_grid(tiny):
    model, processor = tiny
    assert importlib.util.find_spec("torchvision") is None or processor.video_processor is None
    assert not hasattr(processor, "video_processor")
    batch = M.model_inputs(processor, [make_row()], "dtr", region_coords=True)
    assert batch["image_grid_thw"].tolist() == [[1, 16, 16]]  # 112 px / patch 7
    assert int((batch["input_ids"] == model.config.image_token_id).sum()) == 64  # merged 2x2 -> 8x8
    assert batch["pixel_values"].shape == (256, 3 * 7 * 7)


@pytest.mark.parametrize(
    "box, wh, bins",
    [
        ([0, 0, 112, 112], (112, 112), (0, 0, 31, 31)),
        ([0, 0, 56, 112], (112, 112), (0, 0, 15, 31)),
        ([50, 50, 50, 50], (112, 112), (14, 14, 14, 14)),  # a point keeps one bin
        ([10.5, 0, 20, 7], (224, 112), (1, 0, 2, 1)),
    ],
)
def test_box_bins_cover_the_box(box, wh, bins):
    assert M.box_to_bins(box, wh) == bins
    x1, y1, x2, y2 = M.bins_to_box(bins)
    assert x1 * wh[0] <= box[0] and y1 * wh[1] <= box[1] and x2 * wh[0] >= box[2] and y2 * wh[1] >= box[3]


@pytest.mark.parametrize(
    "box",
    [[-1, 0, 10, 10], [0, 0, 113, 10], [20, 0, 10, 10], [0, 0, 10, 200], [0, 0, float("nan"), 1], [1, 2, 3]],
)
def test_region_outside_the_image_is_a_clear_error(box):
    with pytest.raises(ValueError, match="region box"):
        M.encode_region_tokens(box, (112, 112))


def test_decode_region_tokens_reads_boxes_back(tiny):
    tok = tiny[1].tokenizer
    text = P.user_text(make_row(), region_coords=True) + " plain <region>"
    boxes = M.decode_region_tokens(tok(text)["input_ids"], tok)
    assert boxes[0] == M.bins_to_box(M.box_to_bins([8, 18, 42, 62], (112, 112)))
    assert len(boxes) == 3 and boxes[2] is None


# --- region features --------------------------------------------------------------------------


def _region_position(model, batch) -> int:
    return int((batch["input_ids"][0] == model.config.workbench_region_token_id).nonzero()[0])


@torch.no_grad()
def test_moving_a_box_changes_the_region_logits_in_forward(tiny):
    model, processor = tiny
    model.eval()
    a = M.model_inputs(processor, [make_row()], "dtr", True)
    b = M.model_inputs(processor, [moved(make_row())], "dtr", True)
    t = _region_position(model, a)
    la, lb = model(**a).logits, model(**b).logits
    assert torch.equal(la[0, :t], lb[0, :t])
    # At the <region> position itself only its (pooled) embedding differs: the loc tokens come later.
    assert (la[0, t] - lb[0, t]).abs().max() > 1e-4
    # Control: without region features the <region> embedding is the same token for both boxes.
    model.config.workbench_region_features = False
    try:
        assert torch.allclose(model(**a).logits[0, t], model(**b).logits[0, t])
    finally:
        model.config.workbench_region_features = True


@torch.no_grad()
def test_box_geometry_alone_tells_regions_apart(tiny):
    """With the pooled vision features silenced (region_proj outputs 0), the box encoding still
    makes the <region> embedding depend on where the box is; with it off too, nothing does."""
    model, processor = tiny
    model.eval()
    last = model.model.region_proj[-1]
    saved = last.weight.clone(), last.bias.clone()
    a = M.model_inputs(processor, [make_row()], "dtr", True)
    b = M.model_inputs(processor, [moved(make_row())], "dtr", True)
    t = _region_position(model, a)
    try:
        last.weight.zero_()
        last.bias.zero_()
        assert (model(**a).logits[0, t] - model(**b).logits[0, t]).abs().max() > 1e-4
        geometry = model.model.region_geometry
        del model.model.region_geometry
        try:
            assert torch.allclose(model(**a).logits[0, t], model(**b).logits[0, t])
        finally:
            model.model.region_geometry = geometry
    finally:
        last.weight.copy_(saved[0])
        last.bias.copy_(saved[1])


def test_box_encoding_separates_positions_and_sizes():
    boxes = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.8, 0.1, 0.9, 0.2], [0.1, 0.1, 0.5, 0.6]])
    enc = M.box_encoding(boxes)
    assert enc.shape == (3, M.GEOMETRY_DIM) and bool(torch.isfinite(enc).all())
    assert torch.allclose(enc[:, :4], boxes)  # the raw edges come first
    assert (enc[0] - enc[1]).abs().max() > 0.5 and (enc[0] - enc[2]).abs().max() > 0.5


def test_location_embeddings_start_ordered(tiny):
    model, _ = tiny
    start = model.config.workbench_loc_token_start
    rows = model.get_input_embeddings().weight[start : start + M.NUM_LOC_BINS].detach()
    rows = torch.nn.functional.normalize(rows, dim=-1)
    near = (rows[:-1] * rows[1:]).sum(-1).mean()  # neighbouring bins
    far = (rows[:8] * rows[-8:]).sum(-1).mean()  # bins ~24 apart
    assert near > 0.7 and far < near - 0.5, (near, far)
    # without the geometry option the rows are the plain random init (unrelated neighbours)
    plain, _ = M.build_tiny(
        list(P.corpus([make_row()])) * 10, M.ModelSettings.from_profile("smoke", region_geometry=False)
    )
    assert not hasattr(plain.model, "region_geometry")
    rows = plain.get_input_embeddings().weight[start : start + M.NUM_LOC_BINS].detach()
    rows = torch.nn.functional.normalize(rows, dim=-1)
    assert (rows[:-1] * rows[1:]).sum(-1).mean().abs() < 0.3


def _resized(row: dict, size: tuple[int, int]) -> dict:
    """The row on an image of another size, boxes scaled with it."""
    row = copy.deepcopy(row)
    sx, sy = size[0] / row["image"].width, size[1] / row["image"].height
    row["image"] = row["image"].resize(size)
    for region in row["regions"]:
        x1, y1, x2, y2 = region["bbox_2d"]
        region["bbox_2d"] = [x1 * sx, y1 * sy, x2 * sx, y2 * sy]
    return row


def test_generate_prompts_the_model_as_it_was_built(tiny, monkeypatch):
    """The built-in model is trained on the short system prompts: `generate` asks it the same way."""
    model, processor = tiny
    seen = []
    real = M.model_inputs
    monkeypatch.setattr(generate_mod, "model_inputs", lambda *a, **kw: seen.append(kw["system"]) or real(*a, **kw))
    M.generate(model, processor, [make_row()], "dtr", max_new_tokens=1)
    M.generate(model, processor, [make_row()], "dtr", max_new_tokens=1, system="full")
    assert seen == ["short", "full"]
    prompt = processor.apply_chat_template(
        P.to_messages(make_row(), "dtr", **M.prompt_options(model)), add_generation_prompt=True, tokenize=False
    )
    assert "system\n" + P.SYSTEM_PROMPTS_SHORT["dtr"] + "<|im_end|>" in prompt


def test_a_model_is_asked_in_the_option_style_it_was_built_with(tiny):
    model = copy.deepcopy(tiny[0])
    del model.config.workbench_option_style  # a built-in model saved before option styles existed
    assert M.prompt_options(model)["option_style"] == "letter_first"
    model.config.workbench_option_style = "letter_after"
    row = make_row()
    row["choices"] = ["left", "right"]
    options = M.prompt_options(model)
    batch = M.model_inputs(tiny[1], [row], "lor", options["region_coords"], system=options["system"],
                           option_style=options["option_style"])
    text = tiny[1].tokenizer.decode(batch["input_ids"][0])
    assert text.endswith("- left (A)\n- right (B)<|im_end|>\n<|im_start|>assistant\n"), text


def test_option_letters_are_single_tokens_that_decode_back():
    """With option_tokens (option_style letter_after) a trace's "right (B)" and the option line
    "- right (B)" share the tokens " right", " (B)"."""
    corpus = ["so the answer is right (B).", "- left (A)\n- right (B)", "<answer>B</answer>"] * 20
    tokenizer = M.train_tokenizer(corpus, vocab_size=300, option_tokens=True)
    for text in ["so the answer is right (B).</think>", "- left (A)\n- right (B)", "<answer>(C)</answer>"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    ids = tokenizer("is right (B)", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == " (B)"
    plain = M.train_tokenizer(corpus, vocab_size=300)  # letter_first: the letter is " (", "B", ")"
    assert len(plain(" (B)", add_special_tokens=False)["input_ids"]) == 3
    with pytest.raises(ValueError, match="option_style 'after' is not one of"):
        M.ModelSettings(option_style="after")


@pytest.mark.parametrize("size", [(112, 112), (112, 56)])
@torch.no_grad()
def test_region_features_are_live_in_generate_and_match_forward(tiny, size):
    """`generate` pre-encodes the image and passes no image_grid_thw: the merged grid then comes
    from the rotary positions, which a non-square image checks."""
    model, processor = tiny
    model.eval()

    def first_scores(row):
        row = _resized(row, size)
        batch = M.model_inputs(processor, [row], "dtr", True)
        out = model.generate(
            **batch, max_new_tokens=3, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
        return batch, out.scores[0][0]

    batch, on = first_scores(make_row())
    assert torch.allclose(on, model(**batch).logits[0, -1], atol=1e-5)
    model.config.workbench_region_features = False
    try:
        _, off = first_scores(make_row())
    finally:
        model.config.workbench_region_features = True
    assert (on - off).abs().max() > 1e-4  # the pooled features reach generation
    _, moved_scores = first_scores(moved(make_row()))
    assert (on - moved_scores).abs().max() > 1e-4


@torch.no_grad()
def test_batches_mix_region_counts_left_padding_and_missing_images(tiny):
    model, processor = tiny
    model.eval()
    no_image = make_row(5, 0)
    no_image["image"] = None
    rows = [make_row(0, 2), make_row(1, 0), make_row(2, 1), no_image]
    batch = M.model_inputs(processor, rows, "auto", True)
    assert (batch["attention_mask"][:, 0] == 0).any()  # left padded
    together = model(**batch).logits[:, -1]
    for i, row in enumerate(rows):
        alone = model(**M.model_inputs(processor, [row], "auto", True)).logits[0, -1]
        assert torch.allclose(together[i], alone, atol=1e-4), f"row {i} differs when batched"
    texts = M.generate(model, processor, rows, "auto", max_new_tokens=4, batch_size=4)
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)


def test_region_projection_gets_gradients(tiny):
    model, processor = tiny
    batch = M.model_inputs(processor, [make_row()], "dtr", True)
    model.zero_grad()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    grad = model.model.region_proj[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    model.zero_grad()


# --- save / load ------------------------------------------------------------------------------


@torch.no_grad()
def test_pooling_on_patches_weights_each_patch_by_the_share_the_box_covers():
    """`pool_box_patches` reads patches in Qwen2.5-VL's order (each image token's 2 x 2 patches
    together) on the patch grid, twice as fine as the image tokens."""
    grid, merge = (2, 3), 2  # 4 x 6 patches
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    image_order = torch.stack([rows, cols], -1).float()  # (4, 6, 2): a patch's own (row, col)
    patches = image_order.reshape(2, 2, 3, 2, 2).permute(0, 2, 1, 3, 4).reshape(-1, 2)  # the processor's order
    assert M.pool_box_patches(patches, grid, merge, torch.tensor([0.0, 0.0, 1.0, 1.0])).tolist() == [1.5, 2.5]
    one = torch.tensor([3 / 6, 1 / 4, 4 / 6, 2 / 4])  # exactly the patch at row 1, column 3
    assert M.pool_box_patches(patches, grid, merge, one).tolist() == [1.0, 3.0]
    half = torch.tensor([3 / 6, 1 / 4, 4.5 / 6, 2 / 4])  # all of column 3, half of column 4
    assert torch.allclose(M.pool_box_patches(patches, grid, merge, half), torch.tensor([1.0, 3 + 1 / 3]))


def test_a_model_saved_before_the_pooling_setting_pools_merged_features(tmp_path):
    rows = [make_row(i, n) for i, n in enumerate([2, 1, 0, 2])]
    model, processor = M.build_tiny(list(P.corpus(rows)) * 10,
                                    M.ModelSettings.from_profile("smoke", region_pool="merged", vision_hidden_size=32))
    assert model.model.region_proj[0].in_features == model.config.vision_config.out_hidden_size == 64
    del model.config.workbench_region_pool  # as in a config written before the setting existed
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, _ = M.load(tmp_path)
    assert loaded.model.region_pool == "merged" and loaded.model.region_proj[0].in_features == 64
    batch = M.model_inputs(processor, rows[:1], "dtr", True)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, loaded(**batch).logits, atol=1e-6)
    patch, _ = M.build_tiny(list(P.corpus(rows)) * 10, M.ModelSettings.from_profile("smoke", vision_hidden_size=32))
    assert patch.model.region_proj[0].in_features == 32  # the vision tower's width
    with pytest.raises(ValueError, match="region_pool must be one of .* got 'roi'"):
        M.ModelSettings(region_pool="roi")


def test_save_and_load_give_equal_logits(tiny, tmp_path):
    model, processor = tiny
    model.eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "qwen2_5_vl"
    loaded, loaded_processor = M.load(tmp_path)
    assert type(loaded) is M.RegionQwen2_5_VLForConditionalGeneration and M.uses_region_coords(loaded)
    assert M.prompt_options(loaded) == M.prompt_options(model) == {
        "region_coords": True, "system": "short", "option_style": "letter_first"}
    rows = [make_row(0, 2), make_row(1, 1)]
    a = M.model_inputs(processor, rows, "auto", True)
    b = M.model_inputs(loaded_processor, rows, "auto", True)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    assert torch.allclose(model(**a).logits, loaded(**b).logits, atol=1e-6)


def _plain_checkpoint(path, vocab_extra: int = 0):
    """A tiny plain Qwen2.5-VL and a tokenizer without <region>, saved like a hub checkpoint."""
    return plain_checkpoint(path, [LOR, DTR, QUESTIONS[2]], vocab_extra)


@pytest.mark.parametrize("vocab_extra", [0, 8])
def test_load_a_plain_pretrained_vlm_adds_the_region_token(tmp_path, vocab_extra):
    n_tokens = _plain_checkpoint(tmp_path, vocab_extra)
    model, processor = M.load(tmp_path)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration" and not M.uses_region_coords(model)
    # instructions and the usual "A. left" options for a real VLM
    assert M.prompt_options(model) == {"region_coords": False, "system": "full", "option_style": "letter_first"}
    tok = processor.tokenizer
    assert len(tok) == n_tokens + 1 and len(tok("<region>", add_special_tokens=False)["input_ids"]) == 1
    rows_in_embedding = model.get_input_embeddings().weight.shape[0]
    assert rows_in_embedding == max(n_tokens + 1, n_tokens + vocab_extra)  # grown only when needed
    texts = M.generate(model, processor, [make_row(0, 2), make_row(1, 0)], "auto", max_new_tokens=3)
    assert len(texts) == 2
    batch = M.model_inputs(processor, [make_row(0, 2)], "dtr", region_coords=False)
    assert "<|loc_" not in tok.decode(batch["input_ids"][0])


def test_lora_on_a_pretrained_vlm_trains_the_region_row_and_merges(tmp_path):
    _plain_checkpoint(tmp_path / "plain")
    peft_model, processor = M.load(tmp_path / "plain", lora=M.LoraSettings(r=4, alpha=8))
    extra = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert extra and all("trainable_tokens" in n for n in extra)  # only the <region> row, not the embedding
    batch = M.model_inputs(processor, [make_row()], "dtr", region_coords=False)
    with torch.no_grad():
        logits = peft_model(**batch).logits
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(tmp_path / "merged")
        processor.save_pretrained(tmp_path / "merged")
        reloaded, reloaded_processor = M.load(tmp_path / "merged")
        again = reloaded(
            **M.model_inputs(reloaded_processor, [make_row()], "dtr", region_coords=False)
        ).logits
    assert torch.allclose(logits, again, atol=1e-5)


def test_lora_wraps_the_built_in_model_and_trains_the_region_projection(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    peft_model, _ = M.load(tmp_path, lora=M.LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("region_proj" in n for n in trainable)
    assert any("region_geometry" in n for n in trainable)
    assert any("region_index" in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)
    batch = M.model_inputs(processor, [make_row()], "dtr", True)
    assert peft_model(**batch).logits.shape[:2] == batch["input_ids"].shape


# --- errors -----------------------------------------------------------------------------------


def test_missing_or_corrupt_checkpoints_name_the_path(tiny, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        M.load(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*config.json"):
        M.load(empty)
    model, processor = tiny
    good = tmp_path / "good"
    model.save_pretrained(good)
    processor.save_pretrained(good)
    corrupt_config = tmp_path / "corrupt_config"
    shutil.copytree(good, corrupt_config)
    (corrupt_config / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt_config.*corrupt"):
        M.load(corrupt_config)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(good, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no_weights"):
        M.load(no_weights)
    bad_weights = tmp_path / "bad_weights"
    shutil.copytree(good, bad_weights)
    (bad_weights / "model.safetensors").write_bytes(b"not a safetensors file" * 4)
    with pytest.raises(ValueError, match="bad_weights.*corrupt"):
        M.load(bad_weights)


def test_settings_profiles_and_bad_values():
    assert M.ModelSettings.from_profile("gpu").image_size == 224
    assert M.ModelSettings.from_profile("smoke", hidden_size=128).hidden_size == 128
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        M.ModelSettings.from_profile("huge")
    with pytest.raises(ValueError, match="image_size 100"):
        M.ModelSettings(image_size=100)
    with pytest.raises(ValueError, match="unknown ModelSettings fields"):
        M.ModelSettings.from_profile("smoke", hiden_size=3)


# --- TRL, unpatched -----------------------------------------------------------------------------


@pytest.mark.slow
def test_trl_sft_and_grpo_run_with_region_features(tiny, tmp_path, monkeypatch):
    """SFTTrainer and GRPOTrainer take the built-in model as is: region features are computed inside
    TRL's fused-LM-head forward and in generation, and GRPO's reference model (built from the
    checkpoint by `getattr(transformers, architectures[0])`) is our class too."""
    import datasets
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    model, processor = tiny
    model.save_pretrained(tmp_path / "init")
    processor.save_pretrained(tmp_path / "init")
    rows = [make_row(i, n, numeric=bool(i % 2)) for i, n in enumerate([2, 1, 0, 2])]
    calls = []
    original = M.RegionQwen2_5_VLModel._with_region_features

    def spy(self, input_ids, *args):
        calls.append(int((input_ids == self.config.workbench_region_token_id).sum()))
        return original(self, input_ids, *args)

    monkeypatch.setattr(M.RegionQwen2_5_VLModel, "_with_region_features", spy)
    common = dict(
        report_to="none", save_strategy="no", bf16=False, gradient_checkpointing=False, use_cpu=True
    )

    sft_data = datasets.Dataset.from_list(
        [{"messages": P.to_messages(r, "auto", with_target=True), "image": r["image"]} for r in rows]
    )
    policy, _ = M.load(tmp_path / "init")
    before = policy.model.region_proj[0].weight.detach().clone()
    sft_args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=4,
        assistant_only_loss=True,
        learning_rate=1e-2,
        **common,
    )
    SFTTrainer(model=policy, args=sft_args, train_dataset=sft_data, processing_class=processor).train()
    assert not torch.equal(before, policy.model.region_proj[0].weight) and calls, (
        "SFT did not train region features"
    )

    calls.clear()
    grpo_data = datasets.Dataset.from_list(
        [{"prompt": P.to_messages(r, "auto"), "image": r["image"]} for r in rows]
    )
    policy, _ = M.load(tmp_path / "init")
    grpo_args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=6,
        beta=0.01,
        learning_rate=1e-2,
        **common,
    )
    trainer = GRPOTrainer(
        model=policy,
        # alternate 0/1 inside every group (TRL repeats each prompt num_generations times in a row),
        # so every group has a non-zero advantage whatever the sampled text is
        reward_funcs=[lambda completions, **kw: [float(i % 2) for i in range(len(completions))]],
        args=grpo_args,
        train_dataset=grpo_data,
        processing_class=processor,
    )
    assert (
        type(trainer.accelerator.unwrap_model(trainer.ref_model))
        is M.RegionQwen2_5_VLForConditionalGeneration
    )
    before = policy.model.region_proj[0].weight.detach().clone()
    trainer.train()
    assert len(calls) >= 3 and all(calls), calls  # generation prefill, policy and reference forwards
    assert not torch.equal(before, policy.model.region_proj[0].weight)


# --- workbench ask --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    """The tiny model saved, an image file, a small built dataset and one lacking columns."""
    import datasets

    from workbench.dataset import DataSettings, build_dataset

    root = tmp_path_factory.mktemp("ask")
    model, processor = tiny
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    make_image().save(root / "view.png")
    build_dataset(DataSettings.from_profile("smoke", num_scenes=6, seed=2), root / "data", progress=False)
    thin = datasets.Dataset.from_list([{"question": "q?", "regions": []}])
    datasets.DatasetDict({"val": thin}).save_to_disk(str(root / "thin"))
    return root


REGIONS = json.dumps(
    [
        {"label": "red box", "kind": "box", "bbox_2d": [8, 18, 42, 62]},
        {"label": "blue box", "kind": "box", "bbox_2d": [58, 48, 102, 97]},
    ]
)


@pytest.mark.parametrize("path", ["lor", "dtr"])
def test_ask_prints_a_completion_for_an_image_and_for_a_dataset_row(saved, capsys, path):
    from workbench.cli import main

    own = [
        "--image",
        str(saved / "view.png"),
        "--question",
        QUESTIONS[2],
        "--regions",
        REGIONS,
        "--choices",
        '["yes", "no"]',
    ]
    for source in (own, ["--data", str(saved / "data"), "--split", "val", "--index", "1"]):
        code = main(
            [
                "ask",
                "--model",
                str(saved / "model"),
                "--path",
                path,
                "--max-new-tokens",
                "3",
                "--show-prompt",
                *source,
            ]
        )
        captured = capsys.readouterr()
        assert code == 0 and captured.out.endswith("\n")
        style = json.loads((saved / "model" / "config.json").read_text())["workbench_system_prompts"]
        assert ("<|im_start|>system\n" + P.system_prompt(path, style) + "<|im_end|>") in captured.err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image", "missing.png", "--question", "q?"], "image file 'missing.png' does not exist"),
        (
            ["--image", "{png}", "--question", QUESTIONS[2], "--regions", "[]"],
            "2 <region> tokens but 0 regions were given",
        ),
        (
            [
                "--image",
                "{png}",
                "--question",
                QUESTIONS[1],
                "--regions",
                '[{"label": "red box", "bbox_2d": [0, 0, 500, 5]}]',
            ],
            "outside the 112x112 image",
        ),
        (
            ["--image", "{png}", "--question", QUESTIONS[1], "--regions", "[{nope"],
            "--regions is not valid JSON",
        ),
        (
            ["--image", "{png}", "--question", QUESTIONS[1], "--regions", '[{"label": "red box", "bbox_2d": [1, 2]}]'],
            r"region 0 \(red box\) bbox_2d must be a list of 4 numbers",
        ),
        (
            ["--image", "{png}", "--question", QUESTIONS[1], "--regions", '[{"label": "a", "bbox_2d": [1, 2, 3, 4]}]'],
            "region label must be",
        ),
        (["--data", "{data}", "--split", "nosuch"], "split 'nosuch' not in"),
        (["--data", "{data}", "--index", "10000"], "index 10000 out of range"),
        (["--data", "nowhere"], "no dataset folder at nowhere"),
        (["--data", "{thin}"], r"split 'val' lacks columns \['id', 'scene_id'"),
        ([], "give --data DIR"),
    ],
)
def test_ask_bad_input_is_a_clear_error(saved, capsys, args, message):
    from workbench.cli import main

    args = [
        a.replace("{png}", str(saved / "view.png"))
        .replace("{data}", str(saved / "data"))
        .replace("{thin}", str(saved / "thin"))
        for a in args
    ]
    assert main(["ask", "--model", str(saved / "model"), *args]) == 2
    assert re.search(message, capsys.readouterr().err)


@torch.no_grad()
def test_region_order_tells_regions_with_the_same_box_apart(tiny):
    """Two regions on the same box get different features (first vs second region) only through
    the region-index embedding."""
    model, processor = tiny
    model.eval()
    row = make_row()
    row["regions"][1]["bbox_2d"] = list(row["regions"][0]["bbox_2d"])
    batch = M.model_inputs(processor, [row], "dtr", True)
    ids = batch["input_ids"][0]
    first, second = (ids == model.config.workbench_region_token_id).nonzero().flatten().tolist()
    seen = {}
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        model(**batch)
        with_index = seen["embeds"][0]
        assert (with_index[first] - with_index[second]).abs().max() > 1e-3
        index = model.model.region_index
        del model.model.region_index
        try:
            model(**batch)
            assert torch.allclose(seen["embeds"][0, first], seen["embeds"][0, second])
        finally:
            model.model.region_index = index
    finally:
        hook.remove()


def test_a_hub_name_that_cannot_be_downloaded_is_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="model 'nosuch/model' is not a local folder, and it cannot be downloaded"):
        M.load("nosuch/model")


@torch.no_grad()
def test_forward_and_generate_raise_no_deprecation_warnings(tiny):
    """The backbone's forward takes transformers' current argument names: no FutureWarning boxes in
    every notebook cell that runs the model."""
    import warnings

    model, processor = tiny
    batch = M.model_inputs(processor, [make_row()], "dtr", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model(**batch)
        model.generate(**batch, max_new_tokens=2, do_sample=False)


def test_ask_without_a_question_fails_before_loading_the_model(tmp_path, capsys):
    from workbench.cli import main

    assert main(["ask", "--model", str(tmp_path / "not-loaded")]) == 2
    assert "give --data DIR, or both --image PNG and --question TEXT" in capsys.readouterr().err


def test_ask_says_so_when_the_model_writes_nothing(saved, capsys, monkeypatch):
    import workbench.ask as ask_mod
    from workbench.cli import main

    monkeypatch.setattr(ask_mod, "ask", lambda *a, **k: "")
    code = main(["ask", "--model", str(saved / "model"), "--data", str(saved / "data"), "--split", "val", "--index", "0"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out == "\n" and "the model wrote nothing" in captured.err


def test_a_loaded_processor_pads_without_the_max_length_warning(saved, tmp_path):
    """A tokenizer saved after training keeps the collator's truncation; loading forgets it, so
    TRL's GRPO prompts (`padding=True`) do not warn on every batch."""
    import warnings

    from PIL import Image

    model, processor = M.load(saved / "model")
    processor.tokenizer._tokenizer.enable_truncation(1024)  # what TRL's collator leaves behind
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert '"max_length": 1024' in (tmp_path / "tokenizer.json").read_text()
    _, processor = M.load(tmp_path)
    text = "<|vision_start|><|image_pad|><|vision_end|>a"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        processor(images=[Image.new("RGB", (112, 112))] * 2, text=[text, text + " b"], padding=True, return_tensors="pt")


@pytest.fixture(scope="module")
def pooled_only():
    """A tiny model whose language model learns a region's place only from what its box pools
    (`region_box="pooled"`: location tokens zeroed, no box encoding), as the paper's model."""
    rows = [make_row(i, n, numeric=bool(i % 2)) for i, n in enumerate([2, 1, 0, 2])]
    settings = M.ModelSettings.from_profile("smoke", **M.REGION_BOXES["pooled"])
    return M.build_tiny(list(P.corpus(rows)) * 10, settings)


def test_hide_box_tokens_zeroes_only_a_regions_location_tokens(tiny):
    model, processor = tiny
    cfg = model.config
    loc, region = cfg.workbench_loc_token_start, cfg.workbench_region_token_id
    ids = torch.tensor([[5, region, loc + 1, loc + 2, loc + 3, loc + 4, loc, 7, loc + 9, region, 8, loc + 3]])
    embeds = torch.ones(1, ids.shape[1], 3)
    out = M.hide_box_tokens(ids, embeds, cfg)
    zeroed = (out == 0).all(-1)[0].tolist()
    # the four bins and the fifth (frame) token after the first region; a loc token after text,
    # a region without bins and a loc token after a word keep their embeddings
    assert zeroed == [False, False, True, True, True, True, True, False, False, False, False, False]


@torch.no_grad()
@pytest.mark.parametrize("depth", [False, True])
def test_pooled_only_regions_know_their_place_from_the_image_alone(pooled_only, tiny, depth):
    """With `region_box="pooled"` a uniform gray image (no depth) gives the same logits wherever
    the box is, so a blank-image baseline cannot read the answer off the box; the real image (and
    its depth) still moves them, and so does the gray image's depth alone (the 3D positional
    embedding says where the box is). The default model reads the box whatever the image."""
    import numpy as np

    gray = Image.new("RGB", (112, 112), (128, 128, 128))
    blank = {**make_row(), "image": gray}

    def logits(model, processor, row):
        if depth:
            row = {**row, "depth": np.full((112, 112), 2.0, np.float32) + np.linspace(0, 1, 112, dtype=np.float32),
                   "intrinsics": [90.0, 90.0, 56.0, 56.0]}
        inputs = M.model_inputs(processor, [row], "dtr", True, depth=depth and M.uses_depth(model))
        return model(**inputs).logits[0, -1]

    model, processor = pooled_only
    model.eval()
    torch.nn.init.normal_(model.model.depth_embed.net[-1].weight, std=0.5)  # the fresh one is near zero
    still, there = logits(model, processor, blank), logits(model, processor, moved(blank))
    if depth:  # the gray image's depth says where the box is: the 3D positional embedding
        assert (still - there).abs().max() > 1e-4
    else:
        assert torch.allclose(still, there, atol=1e-5)
    assert (logits(model, processor, make_row()) - logits(model, processor, moved(make_row()))).abs().max() > 1e-4
    default, default_processor = tiny
    default.eval()
    assert (logits(default, default_processor, blank) - logits(default, default_processor, moved(blank))).abs().max() > 1e-4


def test_region_box_setting_builds_saves_and_loads(tmp_path):
    """`region_box` of SFT and the base stage picks the new model's `REGION_BOXES` entry; the model
    keeps it through save and load; a bad name is refused by name."""
    import datasets

    from workbench.train import base, sft

    rows = datasets.Dataset.from_list([{k: v for k, v in make_row(i).items() if k != "image"} for i in range(4)])
    settings = sft.SFTSettings.from_profile("smoke", region_box="pooled")
    model, processor = sft.build_model(rows, settings)
    assert not model.config.workbench_region_box_text and not hasattr(model.model, "region_geometry")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert M.load(tmp_path)[0].config.workbench_region_box_text is False
    assert base.BaseSettings.from_profile("smoke", region_box="pooled").trainer_settings().region_box == "pooled"
    with pytest.raises(ValueError, match="unknown region_box 'boxes'"):
        sft.SFTSettings(region_box="boxes")
