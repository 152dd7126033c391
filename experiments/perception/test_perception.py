"""The perception and describe warm-ups: targets that follow the scene, region features identical
to the ones the model puts in place of `<region>`, a vision-only stage that leaves the language
model alone, describe replies in the traces' words, and the warm-started model saved for `workbench sft --model`."""

from __future__ import annotations

import copy
import random
import re

import numpy as np
import perception
import pytest
import torch

from workbench import model as M
from workbench.tasks import prompts
from workbench.tasks.questions import world_from_camera
from workbench.train import examples as sft_examples
from workbench.train import sft


@pytest.fixture(scope="module")
def splits(smoke_data):
    return sft_examples.load_splits(smoke_data)


@pytest.fixture(scope="module")
def tiny(splits):
    return sft.build_model(splits["train"], sft.SFTSettings.from_profile("smoke"))


def fresh(tiny):
    model, processor = tiny
    return copy.deepcopy(model), processor


def test_targets_and_point_regions_follow_the_scene(splits):
    images, targets = perception.collect(splits["train"], max_images=6)
    assert len(images) == 6 and len({t.image for t in targets}) == 6
    rows = {}
    for row in splits["train"]:
        rows.setdefault(row["scene_id"], row)
    for t in targets:
        x1, y1, x2, y2 = t.box
        assert x2 > x1 and y2 > y1
        px1, py1, px2, py2 = t.point
        w, h = images[t.image].size
        assert 0 <= px1 < px2 <= w and 0 <= py1 < py2 <= h
        # the point's center lies inside the object's box
        assert x1 - 1 <= (px1 + px2) / 2 <= x2 + 1 and y1 - 1 <= (py1 + py2) / 2 <= y2 + 1
        assert len(t.values) == len(perception.TARGETS) and all(np.isfinite(t.values))
    row = splits["train"][0]
    obj = row["objects"][0]
    values = dict(zip(perception.TARGETS, perception.object_targets(row, obj)))
    assert values["z"] == pytest.approx(obj["center"][2])
    assert values["floor_height"] == pytest.approx(
        world_from_camera(np.asarray([obj["center"]]), row["camera_to_world"])[0, 2])
    assert values["width"] == pytest.approx(max(obj["size"][:2])) and values["height"] == pytest.approx(obj["size"][2])


def test_region_features_are_the_ones_that_replace_region_tokens(tiny, splits):
    """The warm-up trains read-outs on exactly the vector the model writes over `<region>`."""
    model, processor = tiny
    model.eval()
    row = next(r for r in splits["val"] if r["task"] == "region_qa")
    inputs = M.model_inputs(processor, [row], "dtr", region_coords=True, system="short")
    backbone = M.region_backbone(model)
    captured = {}
    def grab(module, args, kwargs):
        captured.setdefault("embeds", kwargs["inputs_embeds"])

    hook = backbone.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        hook.remove()
    ids = inputs["input_ids"][0]
    where = (ids == model.config.workbench_region_token_id).nonzero().flatten().tolist()
    assert len(where) == len(row["regions"]) >= 1
    targets = [perception.RegionTarget(0, tuple(r["bbox_2d"]), tuple(r["bbox_2d"]), "", "", ())
               for r in row["regions"]]
    with torch.no_grad():
        ours = perception.region_features(model, processor, [row["image"]], targets,
                                          orders=list(range(len(targets))))
    torch.testing.assert_close(ours, captured["embeds"][0, where], rtol=1e-4, atol=1e-5)


def test_perception_warm_up_trains_the_vision_side_only(tiny, splits):
    model, processor = fresh(tiny)
    language = {n: p.detach().clone() for n, p in model.named_parameters() if "language_model" in n or "lm_head" in n}
    vision = {n: p.detach().clone() for n, p in model.named_parameters() if ".visual." in n or "region_" in n}
    torch.manual_seed(0)
    result = perception.warm_up(model, processor, splits["train"], steps=40, val_rows=splits["val"],
                                batch_images=4, learning_rate=3e-3, log_every=10)
    assert result["final_loss"] < result["first_loss"], result
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in language.items())
    assert any(not torch.equal(params[n], v) for n, v in vision.items())
    for kind in ("box", "point"):
        held = result["held_out"][kind]
        assert 0.0 <= held["color_accuracy"] <= 1.0 and held["regions"] > 0
        assert set(held) >= {f"{t}_corr" for t in perception.TARGETS}
    # the box geometry alone makes the image x position easy: the read-out must find it
    assert result["held_out"]["box"]["x_corr"] > 0.5, result["held_out"]
    assert perception.warmed_steps(model) == 40 and perception.warmed_steps(tiny[0]) == 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        perception.warm_up(model, processor, splits["train"], steps=0)


def test_perception_warm_up_refuses_a_model_without_region_features():
    with pytest.raises(ValueError, match="built-in model"):
        perception.warm_up(torch.nn.Linear(2, 2), None, [], steps=1)


def test_describe_examples_state_each_region_in_the_traces_words(tiny, splits):
    _, processor = tiny
    rng = random.Random(0)
    views = perception.clean_views(splits["train"], 8)
    assert views and all(v["task"] in ("general_qa", "caption") for v in views)
    for view in views:
        row, reply = perception.describe_example(view, rng)
        labels = [r["label"] for r in row["regions"]]
        assert row["question"].count(prompts.REGION_TOKEN) == len(labels) >= 1
        # the reply names every region in question order, and states its numbers
        assert re.findall(r"in the (\w+ (?:box|point)) is at", reply) == labels
        assert reply.count("m from the camera") == reply.count("m above the floor") == len(labels)
        assert row["image"].size == view["image"].size and row["image"] != view["image"]  # marks drawn
        messages = prompts.to_messages(row, "auto", region_coords=True, embed_image=True, system="short")
        assert "<|loc_" in messages[1]["content"][1]["text"]
    batch = perception.describe_batch(processor, [perception.describe_example(views[0], rng)])
    labelled = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert processor.tokenizer.decode(labelled).endswith("m.<|im_end|>")
    with pytest.raises(ValueError, match="no object"):
        perception.describe_example({**views[0], "objects": []}, rng)


def test_describe_warm_up_teaches_the_numbers(tiny, splits):
    model, processor = fresh(tiny)
    torch.manual_seed(0)
    result = perception.describe_warm_up(model, processor, splits["train"], steps=30, val_rows=splits["val"],
                                         batch_size=4, learning_rate=3e-3, eval_views=8, log_every=10)
    assert result["final_loss"] < result["first_loss"]
    assert result["accuracy_after"]["token"] > result["accuracy_before"]["token"] + 0.2, result
    assert getattr(model.config, perception.DESCRIBE_KEY) == 30
