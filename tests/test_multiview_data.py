"""Multi-view data and targets (issue #24, items 1 and 2): several views of one scene, questions
across them, every answer and center recomputed from the stored geometry, the reference-frame
conversion, the targets against the rewards, and the builds' contract (reproducible bytes, the
single-view rows unchanged, bad settings refused)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from workbench import schema
from workbench.dataset import build as data
from workbench.dataset import views
from workbench.dataset.settings import DataSettings
from workbench.tasks import crossview, multiview, questions, rewards
from workbench.world import render, scenes

SETTINGS = dict(num_scenes=24, views_per_scene=3, multiview_questions=4, seed=5)


@pytest.fixture(scope="module")
def mv_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mv") / "data"
    settings = DataSettings.from_profile("smoke", **SETTINGS)
    return data.build_dataset(settings, out, progress=False), out, settings


def multiview_rows(dd):
    return [row for split in dd.values() for row in split if crossview.is_multiview(row)]


def test_every_category_on_every_split_and_the_card(mv_data):
    dd, out, _ = mv_data
    card = data.read_data_card(out)
    assert card["columns"][-len(data.MULTIVIEW_COLUMNS):] == list(data.MULTIVIEW_COLUMNS)
    asked = {r["category"] for r in multiview_rows(dd)}
    assert asked == set(crossview.CATEGORIES)
    for split, ds in dd.items():
        assert any(crossview.is_multiview(r) for r in ds), split
        names = views.column_names(ds)
        assert {"images", "depths", "view_poses", "region_frames", "frame_centers", "reference_frame"} <= set(names)
        assert "views" not in names  # an index into the views store, like `view`


def test_answers_recomputed_from_the_stored_geometry(mv_data):
    dd, _, _ = mv_data
    n = 0
    for row in multiview_rows(dd):
        schema.validate_row(row)
        assert crossview.recompute_answer(row) == row["answer"], row["id"]
        if row["answer_type"] == "choice":
            assert row["answer"] in "AB"[: len(row["choices"])]
        n += 1
    assert n >= 60
    for row in dd["val"]:  # the single-view rows of the same build, by their own rule
        if not crossview.is_multiview(row) and row["task"] in schema.QA_TASKS:
            assert questions.recompute_answer(row) == row["answer"]


def test_centers_in_every_frame_and_the_conversion(mv_data):
    """Each region's center in each frame (`frame_centers`) is its world point seen from that
    frame's camera; in its own frame it projects inside the region's mark, in front of the surface
    there; `to_frame` agrees with going through the world frame."""
    dd, _, _ = mv_data
    checked = 0
    for row in multiview_rows(dd):
        if not row["regions"]:
            continue
        truth = {int(k): v for k, v in json.loads(row["frame_centers"]).items()}
        assert sorted(truth) == list(range(1, len(row["view_poses"]) + 1))
        world = scenes.world_centers(row)
        for region, frame in zip(row["regions"], row["region_frames"]):
            point = world[region["object_index"]]
            for f, pose in enumerate(row["view_poses"], start=1):
                seen = scenes.camera_from_world(point, pose)
                assert np.allclose(truth[f][region["label"]], seen, atol=6e-5)
                assert np.allclose(multiview.to_frame(row["objects"][region["object_index"]]["center"],
                                                      row["camera_to_world"], pose), seen, atol=1e-9)
            u, v = scenes.project(np.asarray(truth[frame][region["label"]]), row["intrinsics"])
            x1, y1, x2, y2 = region["bbox_2d"]
            if region["kind"] == "box":
                assert x1 <= u <= x2 and y1 <= v <= y2, (row["id"], region)
            depth = row["depths"][frame - 1]
            assert 0 < depth[min(int(v), 111), min(int(u), 111)] < truth[frame][region["label"]][2]
            checked += 1
        centers = schema.centers_of(row)  # the reference frame's, as the DTR target writes them
        assert centers == {k: v for k, v in truth[crossview.reference_frame(row)].items()}
    assert checked >= 80


def test_images_show_each_frame_with_its_own_marks(mv_data):
    dd, _, _ = mv_data
    ds = dd["train"]
    row = next(r for r in ds if crossview.is_multiview(r) and len(set(r["region_frames"])) == 2)
    narrowed = views.select_columns(ds, ["id", "images"])  # made from views, regions and region_frames
    assert [im.size for im in row["images"]] == [(112, 112)] * len(row["view_poses"])
    for f, image in enumerate(row["images"], start=1):
        mine = [r for r, g in zip(row["regions"], row["region_frames"]) if g == f]
        others = [r for r, g in zip(row["regions"], row["region_frames"]) if g != f]
        clean = np.asarray(image).copy()
        redrawn = render.draw_marks(_clean(ds, row, f), [render.region_marks(r, 112) for r in mine])
        assert np.array_equal(np.asarray(redrawn), clean)
        if others and not mine:
            assert not np.array_equal(np.asarray(render.draw_marks(_clean(ds, row, f), [render.region_marks(
                r, 112) for r in others])), clean)
    assert np.array_equal(np.asarray(row["image"]), np.asarray(row["images"][0]))
    assert np.array_equal(row["depth"], row["depths"][0])
    picked = narrowed[list(views.column(ds, "id")).index(row["id"])]
    assert set(picked) == {"id", "images"}
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(picked["images"], row["images"]))


def _clean(ds, row, frame):
    """The unmarked image of `row`'s frame, from the split's stored views."""
    stored = ds.with_format(None)
    k = list(stored["id"]).index(row["id"])
    return views.joined(ds).view(stored[k]["views"][frame - 1])[0]


def test_targets_score_full_reward_and_name_their_frame(mv_data):
    dd, _, _ = mv_data
    for row in multiview_rows(dd):
        dtr, lor = row["dtr_target"], row["lor_target"]
        if row["category"] == crossview.MOTION:
            assert dtr == lor and row["path"] == "lor"
            score = rewards.score(lor, row["answer"], None, "lor", "motion")
            assert score["accuracy"] == 1.0 and score["overall"] == 1.0
            continue
        frame = crossview.reference_frame(row)
        assert rewards.reference_frame(dtr) == frame
        if row["category"] in crossview.VIEWPOINT_CATEGORIES:
            assert row["reference_frame"] == frame and f"image {frame}," in row["question"]
        score = rewards.score(dtr, row["answer"], row["centers"], "dtr", row["answer_type"],
                              frame_centers=row["frame_centers"], reference_frame=row["reference_frame"])
        assert score == {"overall": 1.0, "format": 1.0, "accuracy": 1.0, "detect": 1.0}, (row["id"], dtr)
        assert rewards.score(lor, row["answer"], None, "lor", row["answer_type"])["overall"] == 1.0
        # the same centers named as another frame's are that frame's only when it is the same
        for other in range(1, len(row["view_poses"]) + 1):
            if other != frame:
                swapped = dtr.replace(f"reference frame {frame},", f"reference frame {other},")
                value = rewards.frame_detect(swapped, json.loads(row["frame_centers"]), row["reference_frame"] or None)
                assert value < 1.0


def test_camera_motion_from_the_poses():
    a = scenes.look_at(np.array([0.0, 0.0, 1.4]), np.array([0.0, 4.0, 0.4]))
    b = scenes.look_at(np.array([-0.5, 1.0, 1.6]), np.array([-4.0, 4.5, 0.4]))
    parts = multiview.camera_motion_components(a, b)
    assert parts["right"] == pytest.approx(-0.5) and parts["forward"] == pytest.approx(1.0)
    assert parts["up"] == pytest.approx(0.2)
    assert parts["turn_right"] < -30  # it now looks to the left of where it looked
    assert multiview.camera_motion(a, b).startswith("move_left:0.5,move_forward:1.0,move_up:0.2,rotate_left:")
    back = multiview.camera_motion_components(b, a)
    assert back["turn_right"] == pytest.approx(-parts["turn_right"])
    with pytest.raises(ValueError, match="same pose"):
        multiview.camera_motion(a, a)


@pytest.mark.parametrize("domain", ["in", "ood"])
def test_further_views_orbit_by_their_domain(domain):
    """Further views turn around the scene by `VIEW_ORBITS[domain]` degrees (test_ood's wider moves
    are held out), stay on the scene's side of its walls, and keep every object in front."""
    lo, hi = scenes.VIEW_ORBITS[domain]
    for seed in range(25):
        rng = np.random.default_rng(seed)
        scene = scenes.sample_scene(rng, domain, 112)
        poses = scenes.sample_views(scene, rng, 4)
        assert np.array_equal(poses[0], scene.camera_to_world)
        centers = np.array([o.position for o in scene.objects])
        pivot = centers[:, :2].mean(axis=0)
        first = poses[0][:2, 3] - pivot
        for pose in poses[1:]:
            eye = pose[:2, 3] - pivot
            angle = math.degrees(abs(math.atan2(first[0] * eye[1] - first[1] * eye[0], first @ eye)))
            assert lo - 1e-6 <= angle <= hi + 1e-6
            corners = np.concatenate([o.corners() for o in scene.objects])
            assert (scenes.camera_from_world(corners, pose)[:, 2] > 0.3).all()
            for center, _size, yaw in scene.walls:
                normal = np.array([math.cos(yaw), math.sin(yaw)])
                side = (pivot - np.asarray(center[:2])) @ normal
                assert np.sign((pose[:2, 3] - np.asarray(center[:2])) @ normal) == np.sign(side)


def test_single_view_rows_are_those_of_a_single_view_build(tmp_path):
    """More views change nothing of a build's single-view rows and first views (a fourth seed
    stream draws the further views and their questions)."""
    base = dict(num_scenes=8, seed=2)
    one = DataSettings.from_profile("smoke", **base)
    three = DataSettings.from_profile("smoke", **base, views_per_scene=3, multiview_questions=2)
    for split, index in (("train", 0), ("test_ood", 7)):
        records1, rows1 = data.scene_records(one, split, index)
        records3, rows3 = data.scene_records(three, split, index)
        assert len(records1) == 1 and len(records3) == 3 and records3[0] == records1[0]
        single = [r for r in rows3 if len(r["view_poses"]) == 1]
        assert len(single) == len(rows1)
        for r1, r3 in zip(rows1, single):
            extra = {k: r3.pop(k) for k in data.MULTIVIEW_COLUMNS}
            assert r3 == {**r1, "view": r1["view"] * 3}
            assert extra["views"] == [r3["view"]] and extra["reference_frame"] == 0
        assert len(rows3) > len(single)


def test_multiview_build_is_byte_reproducible_with_any_workers(tmp_path):
    settings = DataSettings.from_profile("smoke", num_scenes=10, views_per_scene=2, multiview_questions=2)
    data.build_dataset(settings, tmp_path / "a", progress=False)
    data.build_dataset(settings, tmp_path / "b", workers=2, progress=False)

    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file() and p.name != data.DATA_CARD}

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    dd = data.load_dataset_dir(tmp_path / "a")
    assert sum(len(ds) for ds in dd.values()) > 0


@pytest.mark.parametrize("overrides, message", [
    (dict(views_per_scene=5), "views_per_scene must be an integer from 1 to 4, got 5"),
    (dict(views_per_scene=0), "views_per_scene must be an integer from 1 to 4, got 0"),
    (dict(multiview_questions=2), "multiview_questions=2 needs views_per_scene >= 2, got 1"),
    (dict(views_per_scene=2, multiview_questions=-1), "multiview_questions must be a non-negative integer, got -1"),
    (dict(views_per_scene=2, multiview_categories="cross_size"), r"unknown multi-view categories \['cross_size'\]"),
])
def test_bad_view_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        DataSettings.from_profile("smoke", **overrides)


def test_cli_builds_multiview_data_and_refuses_bad_settings(tmp_path):
    import subprocess
    import sys

    exe = [sys.executable, "-m", "workbench.cli", "data"]
    bad = subprocess.run([*exe, "--out", str(tmp_path / "x"), "--multiview-questions", "2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "needs views_per_scene >= 2" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    ok = subprocess.run([*exe, "--out", str(tmp_path / "d"), "--num-scenes", "6", "--views-per-scene", "2",
                         "--multiview-questions", "2", "--set", "multiview_categories=camera_motion",
                         "--no-progress"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    dd = data.load_dataset_dir(tmp_path / "d")
    motion = [r for ds in dd.values() for r in ds if r["category"] == "camera_motion"]
    assert motion and all(r["answer"] == crossview.recompute_answer(r) for r in motion)


def test_multiview_rows_through_the_trl_reward_functions(mv_data):
    dd, _, _ = mv_data
    rows = [r for r in multiview_rows(dd) if r["regions"]][:6]
    columns = {k: [r[k] for r in rows] for k in ("answer", "answer_type", "centers", "path", "frame_centers",
                                                  "reference_frame")}
    funcs, _ = rewards.reward_funcs("joint")
    total = np.sum([f([r["dtr_target"] for r in rows], **columns) for f in funcs], axis=0)
    assert np.allclose(total, 1.0)
    wrong = [r["dtr_target"].replace("reference frame ", "reference frame 9") for r in rows]
    detect = rewards.RewardFunc("detect")(wrong, **columns)
    assert detect == [0.0] * len(rows)


def test_stored_features_hold_the_multiview_columns():
    settings = DataSettings.from_profile("smoke", views_per_scene=2)
    names = tuple(data.features(settings))
    assert names == data.STORED_COLUMNS + data.MULTIVIEW_COLUMNS
    assert tuple(data.features(DataSettings.from_profile("smoke"))) == data.STORED_COLUMNS
    assert dataclasses.asdict(settings)["views_per_scene"] == 2


# ----------------------------------------------------------------------------- the model (item 4)


@pytest.fixture(scope="module")
def tiny(mv_data):
    import torch

    from workbench import model as M
    from workbench.tasks import prompts

    dd, _, _ = mv_data
    rows = [r for r in dd["train"].select(range(40))]
    model, processor = M.build_tiny(list(prompts.corpus(rows)) * 4, M.ModelSettings.from_profile("smoke"))
    model.eval()
    torch.nn.init.normal_(model.model.depth_embed.net[-1].weight, std=0.5)  # the fresh one is near zero
    return model, processor


def _two_frame_row(mv_data, frames=(1, 2)):
    dd, _, _ = mv_data
    return next(r for r in dd["train"] if crossview.is_multiview(r) and r["region_frames"][:2] == list(frames))


def _with_patch(row, frame: int, region: int, value: int = 255, depth: float | None = None) -> dict:
    """`row` with frame `frame`'s image (and depth) painted inside region `region`'s box."""
    from PIL import Image

    x1, y1, x2, y2 = row["regions"][region]["bbox_2d"]
    images = [im.copy() for im in row["images"]]
    pixels = np.asarray(images[frame - 1]).copy()
    if value is not None:
        pixels[y1:y2, x1:x2] = value
    images[frame - 1] = Image.fromarray(pixels)
    depths = [d.copy() for d in row["depths"]]
    if depth is not None:
        depths[frame - 1][y1:y2, x1:x2] = depth
    return {**row, "images": images, "depths": depths}


def test_regions_stay_in_the_question_and_name_their_image(mv_data):
    """Every image first, then the question with its regions inline in question order, as in a single
    view (the order the traces and the region-order embedding follow); each region's tokens end with
    one more location token naming its image."""
    from workbench.tasks import prompts
    from workbench.tasks.locations import LOC_TOKENS, encode_region_tokens

    row = _two_frame_row(mv_data)
    messages = prompts.to_messages(row, "dtr")
    kinds = [part["type"] for part in messages[1]["content"]]
    assert kinds == ["image"] * len(row["view_poses"]) + ["text"]
    question = messages[1]["content"][-1]["text"]
    for region, frame in zip(row["regions"], row["region_frames"]):
        tokens = encode_region_tokens(region["bbox_2d"], row["image"].size, frame)
        assert tokens.endswith(LOC_TOKENS[frame - 1]) and tokens.count("<|loc_") == 5
        assert f"{region['label']} {tokens} in image {frame}" in question
    assert question.index(row["regions"][0]["label"]) < question.index(row["regions"][1]["label"])
    # a pretrained VLM reads the marks: every image first, the question with plain <region> words
    plain = prompts.to_messages(row, "dtr", region_coords=False)
    assert [p["type"] for p in plain[1]["content"]] == ["image"] * len(row["view_poses"]) + ["text"]
    assert "<|loc_" not in plain[1]["content"][-1]["text"]
    with pytest.raises(ValueError, match="region frame 0"):
        encode_region_tokens([0, 0, 5, 5], (112, 112), 0)


@pytest.mark.parametrize("frames", [(1, 2), (2, 1)])
def test_regions_pool_from_their_own_frame(mv_data, tiny, frames):
    """The feature that replaces the second region (marked in image `frames[1]`) changes with that
    image (and its depth) inside the region's box and not with the other image; the first region's
    does not change. Both regions sit after every image, so only the image-naming token can send
    them to their own (with (2, 1) the first region's image is not the last one)."""
    import torch

    from workbench import model as M

    model, processor = tiny
    row = _two_frame_row(mv_data, frames)
    own, other = frames[1], frames[0]
    seen = {}
    hook = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True)

    def features(r):
        batch = M.model_inputs(processor, [r], "dtr", True, depth=True)
        positions = (batch["input_ids"][0] == model.config.workbench_region_token_id).nonzero()[:, 0].tolist()
        with torch.no_grad():
            model(**batch)
        return seen["embeds"][0, positions[0]].clone(), seen["embeds"][0, positions[1]].clone()

    try:
        first, second = features(row)
        in_two = features(_with_patch(row, own, 1, value=255))
        in_one = features(_with_patch(row, other, 1, value=255))  # the other image, where region 2's box would be
        deeper = features(_with_patch(row, own, 1, value=None, depth=9.0))
    finally:
        hook.remove()
    assert (in_two[1] - second).abs().max() > 1e-3 and torch.equal(in_two[0], first)
    assert torch.equal(in_one[1], second)
    assert (deeper[1] - second).abs().max() > 1e-3


def test_sft_examples_and_generate_take_multiview_rows(mv_data, tiny):
    from workbench import model as M
    from workbench.train import sft
    from workbench.train.examples import training_examples

    dd, _, _ = mv_data
    model, processor = tiny
    rows = dd["train"].select([i for i, r in enumerate(dd["train"]) if crossview.is_multiview(r)][:4]
                              + [0, 1])
    examples = training_examples(rows, "dtr_only", depth=True, **M.prompt_options(model))
    frames = [len(ex["images"]) for ex in examples]
    assert max(frames) == len(rows[0]["view_poses"]) and min(frames) == 1
    batch = sft.collate(processor, [examples[i] for i in range(len(examples))])
    n_images = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert batch["image_grid_thw"].shape[0] == sum(frames) and n_images > 0
    loss = model(**{k: v for k, v in batch.items() if k != "mm_token_type_ids"}).loss
    assert loss.isfinite()
    texts = M.generate(model, processor, [rows[0], rows[4]], "dtr", max_new_tokens=3)
    assert len(texts) == 2
    # grounding is derived from single-view rows only (a multi-view region is not in frame 1's image),
    # and every example's images match its image placeholders (a real SFT run found the mismatch)
    grounded = training_examples(rows, "blend", depth=True, grounding=("ground_3d",), **M.prompt_options(model))
    derived = [ex for ex in grounded if ex["task"] == "ground_3d"]
    assert len(derived) == sum(len(r["regions"]) for r in rows if len(r["view_poses"]) == 1) > 0
    for ex in grounded:
        placeholders = sum(part["type"] == "image" for m in ex["messages"] for part in m["content"])
        assert placeholders == len(ex["images"]), ex["id"]
    assert sft.collate(processor, list(grounded))["image_grid_thw"].shape[0] == sum(len(ex["images"]) for ex in grounded)
    from workbench.train import base
    views_of = [len(r["view_poses"]) for r in rows]
    assert {views_of[i] for i, _, _ in base.example_index(rows, base.BaseSettings(derived_tasks=("ground_3d",)))} == {1}
    # ground_frame: each region of a multi-view row, every frame shown, the center in a named frame
    framed = training_examples(rows, "dtr_only", depth=True, grounding=("ground_3d", "ground_frame"),
                               **M.prompt_options(model))
    frame_examples = [ex for ex in framed if "/ground_frame" in ex["id"]]
    assert len(frame_examples) == sum(len(r["regions"]) for r in rows if len(r["view_poses"]) > 1) > 0
    assert {len(ex["images"]) for ex in frame_examples} == {len(rows[0]["view_poses"])}
    for ex in framed:
        placeholders = sum(part["type"] == "image" for m in ex["messages"] for part in m["content"])
        assert placeholders == len(ex["images"]), ex["id"]
    assert sft.collate(processor, frame_examples)["image_grid_thw"].shape[0] == sum(len(ex["images"]) for ex in frame_examples)
    settings = base.BaseSettings(derived_tasks=("ground_3d", "ground_frame"), depth_dropout=0.0)
    index = base.example_index(rows, settings)
    assert {(views_of[i] > 1) == (task == "ground_frame") for i, task, k in index if k >= 0} == {True}
    items = base.training_examples(rows, settings, depth=True, **M.prompt_options(model))
    base_frames = [ex for ex in items if ex["task"] == "ground_3d" and "/ground_frame" in ex["id"]]
    assert base_frames and {len(ex["images"]) for ex in base_frames} == {len(rows[0]["view_poses"])}
    assert all(M.depth.detach(im)[1] is not None for ex in base_frames for im in ex["images"])


def test_frame_grounding_rows_recomputed_from_the_geometry(mv_data):
    """A `ground_frame` row's target is the detect block of its one region in the frame it names,
    and that center is the region's object converted from frame 1 into that frame; both frames
    (its own and the other) are drawn."""
    from workbench.train.examples import grounding_row

    dd, _, _ = mv_data
    named_own = named_other = 0
    for row in multiview_rows(dd):
        for k, region in enumerate(row["regions"]):
            g = grounding_row(row, "ground_frame", k, seed=0)
            frame = g["reference_frame"]
            (label, center), = schema.centers_of(g).items()
            truth = crossview.frame_centers(row)[frame][label]
            assert label == region["label"] and center == pytest.approx(truth, abs=1e-4)
            assert rewards.reference_frame(g["dtr_target"]) == frame
            found = rewards.match_centers(rewards.parse_centers(g["dtr_target"]), [label])
            assert found[label] == pytest.approx(truth, abs=0.006)
            assert rewards.frame_detect(g["dtr_target"], rewards.frame_truths(g["frame_centers"])) == 1.0
            assert g["region_frames"] == [row["region_frames"][k]] and g["images"] == row["images"]
            named_own += frame == row["region_frames"][k]
            named_other += frame != row["region_frames"][k]
    assert named_own > 10 and named_other > 10
    single = next(r for r in dd["train"] if not crossview.is_multiview(r) and r["regions"])
    with pytest.raises(ValueError, match="multi-view row with frame_centers"):
        grounding_row(single, "ground_frame", 0)


def test_grpo_steps_on_multiview_prompts(mv_data, tiny, tmp_path):
    """GRPO's prompts of a multi-view build carry every frame (`images`, depth attached) and the
    multi-view reward columns; one step runs and moves the weights."""
    import torch

    from workbench import model as M
    from workbench.train import grpo
    from workbench.train.grpo_settings import GRPOSettings

    dd, out, _ = mv_data
    model, processor = tiny
    settings = GRPOSettings.from_profile("smoke", max_completion_length=12, per_device_train_batch_size=5,
                                         report_to="none", max_refill_tries=0, max_steps=1, paths="dtr")
    multi = [i for i, r in enumerate(dd["train"]) if crossview.is_multiview(r) and r["regions"]]
    prompts_ = grpo.prompt_dataset(dd["train"].select(multi[:3] + [0]), settings, True, depth=True)
    assert [len(p["images"]) for p in prompts_] == [3, 3, 3, 1] and "image" not in prompts_.column_names
    assert all(M.depth.detach(im)[1] is not None for im in prompts_[0]["images"])
    assert {"frame_centers", "reference_frame"} <= set(prompts_.column_names)
    sft_dir = tmp_path / "sft"
    model.save_pretrained(sft_dir)
    processor.save_pretrained(sft_dir)
    # the multi-view rows first: the smoke settings take the first prompts of the split
    ds = dd["train"].select(multi + [i for i in range(len(dd["train"])) if i not in set(multi)])
    data_dir = tmp_path / "data"
    _save_like(ds, out, data_dir)
    from test_grpo import _ToyReward  # reward spread whatever the untrained model writes

    funcs, weights = rewards.reward_funcs("dtr")  # and the SPEC rewards, reading the multi-view columns
    settings = dataclasses.replace(settings, max_refill_tries=1)
    result = grpo.train_grpo(sft_dir, data_dir, tmp_path / "grpo", settings,
                             reward_funcs=([_ToyReward(settings.num_generations), *funcs], [1.0, *weights]))
    assert result["global_step"] == 1
    logged = next(h for h in result["log_history"] if "rewards/detect/dtr" in h)
    assert logged["dynamic_sampling/kept_group_fraction"] > 0
    before, after = M.load(sft_dir)[0], M.load(tmp_path / "grpo")[0]
    moved = [n for n, p in after.named_parameters() if not torch.equal(p, before.get_parameter(n))]
    assert moved


def _save_like(train, source: Path, target: Path) -> None:
    """A dataset folder like `source` whose train split is `train` (rows reordered, views shared)."""
    import shutil

    shutil.copytree(source, target)
    stored = train.with_format(None)
    shutil.rmtree(target / "train")
    stored.flatten_indices().save_to_disk(str(target / "train"))


def test_evaluation_reports_single_and_multiview_apart(mv_data, tiny, tmp_path):
    """`workbench eval` on a multi-view build: every frame reaches the model with its own depth,
    the table has `single_view` and `multi_view` rows and camera-motion accuracy, and the oracle
    scores 1 on every multi-view row, detect included (against the frame its block names)."""
    from workbench.eval import evaluate
    from workbench.eval.evaluate import EvalSettings, ImageReader, load_rows
    from workbench.model import depth as D

    dd, out, _ = mv_data
    rows = load_rows(dd, "test_ood")
    assert all("images" not in r and "depths" not in r for r in rows)  # decoded a batch at a time
    read = ImageReader(dd).read(rows)
    multi = [(r, frames) for r, (_, frames) in zip(rows, read) if len(r["view_poses"]) > 1]
    assert multi and all(len(frames) == len(r["view_poses"]) for r, frames in multi)
    assert all(D.detach(im)[1] is not None for _, frames in multi for im in frames)
    model, processor = tiny
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    settings = EvalSettings.from_profile("smoke", splits=("test_ood",), max_examples=0, max_new_tokens=8,
                                         paths=("dtr", "lor"), baselines=("oracle",))
    evaluate.evaluate({"tiny": str(model_dir)}, out, tmp_path / "eval", settings, progress=False)
    table = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    oracle = {(r["path"], r["category"]): r for r in table if r["model"] == "oracle"}
    assert {("dtr", "multi_view"), ("dtr", "single_view"), ("lor", "camera_motion")} <= set(oracle)
    assert oracle[("dtr", "multi_view")]["choice_accuracy"] == 1.0
    assert oracle[("dtr", "multi_view")]["detect_reward"] == 1.0
    assert oracle[("dtr", "multi_view")]["implied_answer_agreement"] == 1.0  # in the frame it names
    assert oracle[("lor", "camera_motion")]["motion_accuracy"] == 1.0


def test_the_3d_view_shows_every_camera_and_moves_predictions_to_frame_1(mv_data):
    from workbench.viz import scenes as V

    dd, _, _ = mv_data
    row = next(r for r in multiview_rows(dd) if r["regions"] and crossview.reference_frame(r) != 1)
    fig = V.scene_figure(row, row["dtr_target"], frame="world")
    names = [t.name for t in fig.data]
    assert [n for n in names if n.startswith("camera")] == [f"camera {f} (image {f})"
                                                           for f in range(1, len(row["view_poses"]) + 1)]
    errors = [n for n in names if n.startswith("error ")]  # the target's own centers: 2-decimal rounding off
    assert len(errors) == len(row["regions"]) and all(float(n.split(": ")[1][:-2]) <= 0.01 for n in errors)
    eye = next(t for t in fig.data if t.name == "camera 2 (image 2)")
    assert np.allclose([eye.x[6], eye.y[6], eye.z[6]], np.asarray(row["view_poses"][1])[:3, 3], atol=1e-9)


def test_implied_answer_in_the_frame_a_completion_names(mv_data):
    """A cross-view DTR completion's centers imply an answer in the frame its detect block names
    (issue #24: perception and reasoning errors told apart across views, as for one view): the
    true centers of any frame imply the question's answer when it does not depend on the viewpoint
    (distances, heights), and that frame's own answer when it does; a wrong stated letter is then a
    reasoning error."""
    from workbench.eval.baselines import truth_fields
    from workbench.eval.metrics import score_prediction
    from workbench.tasks import traces

    dd, _, _ = mv_data
    checked = {"same": 0, "other": 0}
    for row in multiview_rows(dd):
        if row["category"] not in crossview.AS_SINGLE:
            continue
        truth = {int(k): v for k, v in json.loads(row["frame_centers"]).items()}
        for frame in sorted(truth):
            seen = crossview.in_frame(row, frame)
            boxes = [traces.box3d(truth[frame][r["label"]], "thing", r["label"]) for r in row["regions"]]
            completion = crossview.aligned(traces.dtr(boxes, "Compare.", row["answer"]), frame)
            pred = {**truth_fields(row), "model": "m", "path": "dtr", "resolved_path": "dtr", "completion": completion}
            p = score_prediction(pred)
            expected = questions.recompute_answer(seen)  # the single-view rule in the named frame
            if row["answer_type"] == "number":  # from centers written to 2 decimals
                assert float(p["implied_answer"]) == pytest.approx(float(expected), abs=0.02), (row["id"], frame)
                assert p["implied_correct"], (row["id"], frame)
                continue
            assert p["implied_answer"] == expected, (row["id"], frame)
            if row["category"] not in crossview.VIEWPOINT_CATEGORIES:
                assert expected == row["answer"] and p["implied_correct"], (row["id"], frame)
            assert p["implied_correct"] == (expected == row["answer"])
            checked["same" if frame == crossview.reference_frame(row) else "other"] += 1
            if frame == crossview.reference_frame(row) and row["answer_type"] == "choice":
                wrong = "AB"[1 - "AB".index(row["answer"])]
                q = score_prediction({**pred, "completion": completion.replace(f"<answer>{row['answer']}<",
                                                                               f"<answer>{wrong}<")})
                assert q["implied_correct"] and not q["correct"] and q["implied_agrees"] is False
    assert checked["same"] >= 30 and checked["other"] >= 30


def test_diagnose_tells_perception_from_reasoning_per_view_count():
    """`diagnose` counts each DTR row once, by whether its own centers imply the truth and whether
    its answer is right, single- and multi-view questions apart."""
    from workbench.eval.diagnostics import diagnose

    def row(correct, implied, views=1, path="dtr"):
        return {"model": "m", "path": path, "resolved_path": path, "split": "val", "views": views,
                "correct": correct, "implied_correct": implied, "implied_agrees": correct == implied}

    rows = [row(True, True), row(False, True), row(False, True), row(False, False), row(True, None),
            row(True, True, 2), row(False, False, 2), row(True, True, path="lor")]
    out = {d["views"]: d for d in diagnose(rows)}
    assert set(out) == {"single_view", "multi_view"}
    one, two = out["single_view"], out["multi_view"]
    assert (one["n_dtr"], one["n_implied"]) == (5, 4)
    assert one["right_right_geometry"] == 0.25 and one["reasoning_error"] == 0.5
    assert one["perception_error"] == 0.25 and one["right_wrong_geometry"] == 0.0
    assert (two["n_dtr"], two["right_right_geometry"], two["perception_error"]) == (2, 0.5, 0.5)


def test_single_view_first_schedules_a_curriculum(mv_data):
    """`single_view_first`: the first share of the schedule holds single-view examples only (no
    cross-view question, no `ground_frame`), the rest mixes them in; exactly `length` items, every
    batch one path, the same order for the same seed; bad combinations are refused by name."""
    from workbench.train.examples import single_view, training_examples
    from workbench.train.sft import SFTSettings

    dd, _, _ = mv_data
    rows = dd["train"]
    single = single_view(rows)
    kw = dict(group_size=4, grounding=("ground_3d", "ground_frame"), length=2400, single_view_first=0.06)
    raw = training_examples(rows, "blend", seed=3, **kw).with_format(None)
    assert len(raw) == 2400
    first, rest = slice(0, 144), slice(144, 2400)
    assert all(single[r] for r in raw["row"][first]) and "ground_frame" not in raw["task"][first]
    assert not all(single[r] for r in raw["row"][rest]) and "ground_frame" in raw["task"][rest]
    paths = raw["path"]
    assert all(len(set(paths[i:i + 4])) == 1 for i in range(0, 2400, 4))  # across passes too
    assert training_examples(rows, "blend", seed=3, **kw).with_format(None)["row"] == raw["row"]
    with pytest.raises(ValueError, match="max_examples"):
        training_examples(rows, "blend", max_examples=10, **kw)
    with pytest.raises(ValueError, match="positive length"):
        training_examples(rows, "blend", **{**kw, "length": 0})
    with pytest.raises(ValueError, match="single-view rows"):
        multi = [i for i, one in enumerate(single) if not one]
        training_examples(rows.select(multi), "blend", **kw)
    with pytest.raises(ValueError, match=r"single_view_first must be a share in \[0, 1\), got 1.0"):
        SFTSettings(single_view_first=1.0, max_steps=10)
    with pytest.raises(ValueError, match="max_steps=-1"):
        SFTSettings(single_view_first=0.5)
    with pytest.raises(ValueError, match="group_by_path=False"):
        SFTSettings(single_view_first=0.5, max_steps=10, group_by_path=False)


def test_sft_runs_the_curriculum_step_for_step(mv_data, tmp_path):
    """Through TRL's trainer the curriculum is the data order: exactly steps x batch examples,
    single-view ones first, and the run ends at `max_steps`."""
    from workbench.train import sft

    _, out, _ = mv_data
    settings = sft.SFTSettings.from_profile("smoke", max_steps=6, per_device_train_batch_size=2, eval_samples=0,
                                            copy_warmup_steps=0, report_to="none", disable_tqdm=True, max_train_examples=0,
                                            grounding=("ground_3d", "ground_frame"), single_view_first=0.5)
    result = sft.train_sft(out, tmp_path / "sft", settings)
    assert result.global_step == 6 and result.num_examples == 12
    summary = json.loads((tmp_path / "sft" / sft.SUMMARY).read_text())
    assert sum(summary["examples"].values()) == 12 and summary["settings"]["single_view_first"] == 0.5
