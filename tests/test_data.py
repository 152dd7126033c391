"""`workbench data`: determinism, the row contract, exact labels, splits, errors, atomic writes."""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from spec_formats import BOX, DTR, LOR

from workbench import cli, schema
from workbench.dataset import DEFAULT_CATEGORIES, views
from workbench.dataset import build as data
from workbench.tasks import questions as Q
from workbench.world.render import MARK_COLORS
from workbench.world.scenes import HELD_OUT_COLORS, HELD_OUT_SHAPES, project


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The issue's command, run twice: (first folder, second folder)."""
    root = tmp_path_factory.mktemp("data")
    outs = []
    for name in ("a", "b"):
        out = root / name
        assert (
            cli.main(["data", "--out", str(out), "--num-scenes", "24", "--seed", "3", "--no-progress"]) == 0
        )
        outs.append(out)
    return outs


@pytest.fixture(scope="module")
def rows(built):
    dd = data.load_dataset_dir(built[0])
    out = []
    for split in schema.SPLITS:
        ds = dd[split]
        for r in ds.select_columns([c for c in schema.COLUMNS if c not in ("image", "depth")]):
            out.append(r)
    return dd, out


def test_same_seed_same_bytes(built):
    a, b = (_files(p) for p in built)
    assert a.keys() == b.keys() and "data_card.json" in a
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"files differ between identical builds: {different}"


def test_splits_columns_and_tasks(rows):
    dd, all_rows = rows
    assert set(dd) == set(schema.SPLITS)
    for split, ds in dd.items():
        assert tuple(views.column_names(ds)) == schema.COLUMNS == tuple(ds[0])
        assert "image" not in ds.column_names and "view" in ds.column_names, "views are stored once"
        tasks = set(views.column(ds, "task"))
        assert tasks <= set(schema.TASKS)
        if split == "train":
            assert {"ground_3d", "ground_2d", "caption", "region_qa", "general_qa"} <= tasks
        else:
            assert tasks <= set(schema.QA_TASKS), f"blend rows leaked into {split}"
    for r in all_rows:
        schema.validate_row({**r, "image": None, "depth": None})
        assert r["path"] == ("dtr" if r["task"] in ("region_qa", "ground_3d", "ground_2d") else "lor")
        assert r["id"].startswith(r["split"])


def test_every_category_occurs(rows):
    _, all_rows = rows
    cats = Counter((r["task"], r["category"]) for r in all_rows)
    assert {c for t, c in cats if t == "region_qa"} == set(
        schema.NUMERIC_CATEGORIES + schema.CHOICE_CATEGORIES
    )
    general = {c for t, c in cats if t == "general_qa"}
    assert set(schema.GENERAL_ONLY_CATEGORIES) <= general and len(general) >= 10
    everything = set(schema.NUMERIC_CATEGORIES + schema.CHOICE_CATEGORIES + schema.GENERAL_ONLY_CATEGORIES)
    assert everything <= {c for _, c in cats}


def test_answers_recompute_from_stored_geometry(rows):
    _, all_rows = rows
    checked = 0
    for r in all_rows:
        if r["task"] == "caption":
            continue
        assert Q.recompute_answer(r) == r["answer"], r["id"]
        if r["answer_type"] == "number":
            assert re.fullmatch(r"\d+\.\d\d", r["answer"])
            checked += 1
        elif r["answer_type"] == "choice":
            assert r["answer"] in Q.LETTERS[: len(r["choices"])]
        implied = (
            Q.answer_from_centers(r["category"], schema.centers_of(r), r)
            if r["task"] in schema.QA_TASKS
            else None
        )
        if (
            r["task"] in schema.QA_TASKS
            and r["category"] not in Q.SIZE_CATEGORIES + schema.GENERAL_ONLY_CATEGORIES
        ):
            assert implied == r["answer"], r["id"]
    assert checked >= 50


def test_a_wrong_answer_is_caught(rows):
    _, all_rows = rows
    r = dict(next(r for r in all_rows if r["category"] == "distance"))
    r["objects"] = [dict(o) for o in r["objects"]]
    i = Q.roles(r)[0]
    r["objects"][i]["center"] = [v + 0.3 for v in r["objects"][i]["center"]]
    assert Q.recompute_answer(r) != r["answer"]


def test_centers_project_into_boxes_in_front_of_depth(rows):
    dd, _ = rows
    for _split, ds in dd.items():
        seen = set()
        for r in ds:
            if r["scene_id"] in seen:
                continue
            seen.add(r["scene_id"])
            depth = r["depth"]
            assert depth.dtype == np.float32 and depth.shape == (112, 112)
            for o in r["objects"]:
                u, v = project(o["center"], r["intrinsics"])
                x1, y1, x2, y2 = o["bbox_2d"]
                assert x1 <= u <= x2 and y1 <= v <= y2, (r["id"], o)
                assert 0 < depth[int(v), int(u)] < o["center"][2], (r["id"], o)
            cam = np.asarray(r["camera_to_world"])
            assert np.allclose(cam[:3, :3].T @ cam[:3, :3], np.eye(3), atol=1e-5)




def test_targets_parse_and_end_in_the_answer(rows):
    _, all_rows = rows
    for r in all_rows:
        if r["task"] in schema.QA_TASKS:
            lor, dtr = LOR.fullmatch(r["lor_target"]), DTR.fullmatch(r["dtr_target"])
            assert lor and dtr, r["id"]
            assert lor.group(2) == r["answer"] == dtr.group(4)
            boxes = BOX.findall(dtr.group(2))
            assert len(boxes) == int(dtr.group(1))
            centers = schema.centers_of(r)
            for *xyz, _name, label in boxes:
                if centers:
                    assert [float(v) for v in xyz] == pytest.approx(centers[label], abs=0.0051)
        elif r["task"] == "ground_3d":
            (box,) = BOX.findall(r["dtr_target"])
            assert box[4] == r["regions"][0]["label"]
            assert [float(v) for v in box[:3]] == pytest.approx(
                r["objects"][r["regions"][0]["object_index"]]["center"], abs=0.0051
            )
        else:
            assert r["lor_target"] == r["dtr_target"] == r["answer"] and r["answer_type"] == "text"


def test_images_carry_their_marks(rows):
    dd, _ = rows
    ds = dd["val"]
    for r in ds.select(range(min(8, len(ds)))):
        img = np.asarray(r["image"].convert("RGB"))
        assert img.shape == (112, 112, 3)
        for reg in r["regions"]:
            color = MARK_COLORS[reg["label"].split()[0]]
            assert np.any(np.all(img == color, axis=-1)), f"{r['id']}: no {reg['label']} drawn"
            if reg["kind"] == "box":
                assert reg["bbox_2d"] == r["objects"][reg["object_index"]]["bbox_2d"]


def test_ood_split_differs(rows):
    _, all_rows = rows
    by_split: dict[str, set] = {}
    for r in all_rows:
        by_split.setdefault(r["split"], set()).update((o["category"], o["color"]) for o in r["objects"])
    held = set(HELD_OUT_SHAPES) | set(HELD_OUT_COLORS)
    for split in ("train", "val", "test"):
        assert not {x for pair in by_split[split] for x in pair} & held, split
    ood = {x for pair in by_split["test_ood"] for x in pair}
    assert ood & set(HELD_OUT_SHAPES) and ood & set(HELD_OUT_COLORS)


def test_data_card(built, rows):
    dd, _ = rows
    card = data.read_data_card(built[0])
    assert card["seed"] == 3 and card["settings"]["num_scenes"] == 24
    assert sum(s["scenes"] for s in card["splits"].values()) == 24
    for split, ds in dd.items():
        assert card["splits"][split]["rows"] == len(ds) == sum(card["splits"][split]["tasks"].values())
    assert {"datasets", "open3d", "numpy"} <= set(card["versions"])


def test_workers_do_not_change_the_result(tmp_path):
    settings = data.DataSettings.from_profile("smoke", num_scenes=6, questions_per_scene=3, seed=11)
    data.build_dataset(settings, tmp_path / "one", workers=1, progress=False)
    data.build_dataset(settings, tmp_path / "two", workers=2, progress=False)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--num-scenes", "-5"], "num_scenes must be a non-negative integer, got -5"),
        (["--num-scenes", "2"], "num_scenes must be at least 4"),
        (["--questions-per-scene", "-1"], "questions_per_scene must be a non-negative integer, got -1"),
        (["--questions-per-scene", "0"], "questions_per_scene must be at least 1"),
        (["--image-size", "100000"], "image_size must be between 32 and 1024 pixels, got 100000"),
        (["--workers", "-2"], "--workers must be >= 0"),
        (["--categories", "up_down"], "unknown question categories ['up_down']"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "d"
    assert cli.main(["data", "--out", str(out), "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_profile(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "--out", str(tmp_path / "d"), "--profile", "huge"])
    assert e.value.code == 2 and "huge" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown data profile 'huge'"):
        data.DataSettings.from_profile("huge")
    with pytest.raises(ValueError, match="unknown DataSettings fields"):
        data.DataSettings.from_profile("smoke", num_scene=3)


def test_existing_output_folders(tmp_path, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert cli.main(["data", "--out", str(other), "--num-scenes", "4", "--no-progress", "--overwrite"]) == 2
    assert "not a workbench dataset" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
    out = tmp_path / "d"
    args = ["data", "--out", str(out), "--num-scenes", "4", "--questions-per-scene", "2", "--no-progress"]
    assert cli.main(args) == 0
    before = _files(out)
    assert cli.main([*args, "--seed", "9"]) == 2
    assert "--overwrite" in capsys.readouterr().err and _files(out) == before
    assert cli.main([*args, "--seed", "9", "--overwrite"]) == 0
    assert data.read_data_card(out)["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "notes"], "no temporary folders left"


def test_killed_build_resumes_to_the_same_bytes(tmp_path, monkeypatch, capsys):
    """Killed in its third chunk, a build leaves nothing loadable, only its finished chunks; run
    again, it renders only the rest and ends byte-identical to a build that ran through."""
    monkeypatch.setattr(data, "CHUNK_SCENES", 2)
    settings = data.DataSettings.from_profile("smoke", num_scenes=9, questions_per_scene=2)
    data.build_dataset(settings, tmp_path / "through", progress=False)
    real, rendered, kills = data.scene_records, [], []

    def dies(settings, split, index):
        if index == 5 and not kills:
            kills.append(index)
            raise KeyboardInterrupt("killed")
        rendered.append(index)
        return real(settings, split, index)

    monkeypatch.setattr(data, "scene_records", dies)
    out = tmp_path / "d"
    with pytest.raises(KeyboardInterrupt):
        data.build_dataset(settings, out, progress=False)
    assert not out.exists() and not data.is_dataset_dir(out)
    stage = data.staging_dir(out)
    assert sorted(p.name for p in stage.iterdir() if p.is_dir()) == ["train-000000-000002", "train-000002-000004"]
    rendered.clear()
    data.build_dataset(settings, out, progress=True)
    assert "resuming the build of these settings: 4 of 9 scenes already built" in capsys.readouterr().out
    assert rendered == [4, 5, 6, 7, 8], "only the unfinished chunks are rendered again"
    assert _files(out) == _files(tmp_path / "through")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "through"], "the staging folder is gone"


def test_a_stage_of_other_settings_is_started_over(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_SCENES", 2)
    out = tmp_path / "d"
    stage = data.staging_dir(out)
    stage.mkdir()
    (stage / "build.json").write_text(json.dumps({"format": data.FORMAT, "settings": {"seed": 99}}))
    (stage / "train-000000-000002").mkdir()
    settings = data.DataSettings.from_profile("smoke", num_scenes=5, questions_per_scene=2)
    data.build_dataset(settings, out, progress=False)
    assert data.read_data_card(out)["seed"] == 0 and not stage.exists()


def test_a_build_another_process_is_writing_is_refused(tmp_path, capsys):
    out = tmp_path / "d"
    stage = data.staging_dir(out)
    stage.mkdir()
    (stage / "owner").write_text("1\n")  # pid 1 is always alive
    assert cli.main(["data", "--out", str(out), "--num-scenes", "4", "--no-progress"]) == 2
    assert "another build (process 1) is writing" in capsys.readouterr().err
    assert not out.exists()


def test_load_dataset_dir_errors(tmp_path, built):
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        data.load_dataset_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a dataset folder"):
        data.load_dataset_dir(tmp_path / "empty")
    stored = datasets.load_from_disk(str(built[0]))  # as stored: rows that name their views
    stored["val"] = stored["val"].remove_columns(["dtr_target"])
    stored.save_to_disk(str(tmp_path / "partial"))
    with pytest.raises(ValueError, match=r"split 'train' lacks columns \['image', 'depth'\]"):
        data.load_dataset_dir(tmp_path / "partial")  # no views/ folder either
    shutil.copytree(built[0] / data.VIEWS_DIR, tmp_path / "partial" / data.VIEWS_DIR)
    with pytest.raises(ValueError, match=r"split 'val' lacks columns \['dtr_target'\]"):
        data.load_dataset_dir(tmp_path / "partial")
    shutil.rmtree(tmp_path / "partial" / data.VIEWS_DIR / "test_ood")
    (tmp_path / "partial" / data.VIEWS_DIR / "dataset_dict.json").write_text('{"splits": ["train", "val", "test"]}')
    with pytest.raises(ValueError, match=r"views/ lacks the splits \['test_ood'\]"):
        data.load_dataset_dir(tmp_path / "partial")


def test_profiles():
    assert data.DataSettings.from_profile("smoke").num_scenes == 24
    default = data.DataSettings.from_profile("default")
    gpu = data.DataSettings.from_profile("gpu", seed=5)
    assert (default.num_scenes, default.image_size) == (1500, 112)
    assert (default.categories, default.general_fraction, default.blend_per_scene) == (DEFAULT_CATEGORIES, 0, 0)
    every = data.DataSettings.from_profile("default", categories="all")
    assert every.categories == () and data.DataSettings.from_profile("smoke").categories == ()
    assert (gpu.num_scenes, gpu.image_size, gpu.seed, gpu.profile) == (20000, 224, 5, "gpu")
    with pytest.raises(ValueError, match="general_fraction"):
        data.DataSettings.from_profile("smoke", general_fraction=1.5)
    with pytest.raises(ValueError, match="trace_style must be one of .* got 'words'"):
        data.DataSettings.from_profile("smoke", trace_style="words")


def test_trace_style_reaches_the_targets(tmp_path):
    """`--trace-style verdict_first` changes only comparison targets, by their opening verdict."""
    argv = ["data", "--num-scenes", "4", "--questions-per-scene", "6", "--seed", "2", "--no-progress"]
    assert cli.main([*argv, "--out", str(tmp_path / "n")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "v"), "--trace-style", "verdict_first"]) == 0
    plain, verdict = (data.load_dataset_dir(tmp_path / k)["train"] for k in ("n", "v"))
    assert data.read_data_card(tmp_path / "v")["settings"]["trace_style"] == "verdict_first"
    changed = 0
    for a, b in zip(plain.select_columns(["category", "lor_target", "dtr_target"]),
                    verdict.select_columns(["category", "lor_target", "dtr_target"])):
        if a["lor_target"] != b["lor_target"]:
            changed += 1
            assert re.match(r"<think>(The .+ versus the .+|Closest to the .+): [a-z ]+\. ", b["lor_target"])
            assert b["lor_target"].endswith(a["lor_target"].removeprefix("<think>").split("</think>")[1])
        else:
            assert a["dtr_target"] == b["dtr_target"]
    assert changed > 0


def test_categories_focus_a_build(tmp_path):
    """`--categories` asks only the named relations, on every split and for both tasks."""
    out = tmp_path / "focus"
    assert cli.main(["data", "--out", str(out), "--num-scenes", "6", "--questions-per-scene", "6", "--seed", "1",
                     "--categories", "left_right, count", "--general-fraction", "0.5", "--blend-per-scene", "0",
                     "--no-progress"]) == 0
    dd = data.load_dataset_dir(out)
    seen = {(t, c) for split in dd.values() for t, c in zip(split["task"], split["category"])}
    assert seen == {("region_qa", "left_right"), ("general_qa", "left_right"), ("general_qa", "count")}
    assert data.read_data_card(out)["settings"]["categories"] == ["left_right", "count"]
    with pytest.raises(ValueError, match=r"unknown question categories \['left_rigth'\]"):
        data.DataSettings.from_profile("smoke", categories="left_rigth")
    with pytest.raises(ValueError, match=r"categories \['count'\] have no region questions"):
        data.DataSettings.from_profile("smoke", categories=("count",))
    assert data.DataSettings.from_profile("smoke", categories=("count",), general_fraction=1.0).categories == ("count",)


def test_views_are_stored_once_as_png(built, rows):
    dd, _ = rows
    stored = datasets.load_from_disk(str(built[0] / data.VIEWS_DIR))
    for split, ds in dd.items():
        scenes = views.column(ds, "scene_id")
        assert len(stored[split]) == len(set(scenes)), "one view per scene"
        assert all(stored[split][v]["scene_id"] == s for v, s in zip(views.column(ds, "view"), scenes))
    record = stored["train"][0]
    assert Image.open(io.BytesIO(record["image"])).format == "PNG"
    with Image.open(io.BytesIO(record["depth"])) as depth:
        assert depth.format == "PNG" and depth.mode == "I;16"
    assert json.loads(dd["train"][0]["centers"]) is not None
    card = data.read_data_card(built[0])
    assert card["format"] == data.FORMAT and card["storage"]["bytes_per_view"] > 0
    assert card["storage"]["views_bytes"] + card["storage"]["rows_bytes"] < sum(
        p.stat().st_size for p in built[0].rglob("*") if p.is_file())


def test_joined_rows_match_a_fresh_render(rows):
    """Image and depth made on read from the stored view are the scene's render: marks drawn on the
    same pixels as `draw_marks` with `region_for`'s regions, depth within half a millimetre."""
    from workbench.world import render, scenes

    dd, _ = rows
    settings = data.DataSettings.from_profile("smoke", num_scenes=24, seed=3)
    ds = dd["test_ood"]
    first = {}
    for i, sid in enumerate(views.column(ds, "scene_id")):
        first.setdefault(sid, i)
    checked_points = 0
    for sid, i in list(first.items())[:3]:
        index = int(sid.split("-")[1])
        record, stored_rows = data.scene_records(settings, "test_ood", index)
        joined = data.scene_rows(settings, "test_ood", index)
        for r, full in zip(stored_rows, joined):
            assert ds[i + stored_rows.index(r)]["id"] == r["id"]
            assert np.array_equal(np.asarray(ds[i + stored_rows.index(r)]["image"]), np.asarray(full["image"]))
        # the depth as rendered, against what a reader gets
        rng = np.random.default_rng(np.random.SeedSequence([3, index]).spawn(3)[0])
        for _ in range(8):
            scene = scenes.sample_scene(rng, "ood", settings.image_size, settings.min_objects,
                                        settings.max_objects, settings.stack_probability, settings.walls_probability)
            view = render.render(scene, settings.min_object_area, settings.min_visible_fraction)
            if view.usable.sum() >= 2:
                break
        row = ds[i]
        assert row["depth"].dtype == np.float32
        assert np.abs(row["depth"] - view.depth).max() <= views.DEPTH_MAX_ERROR_M
        assert np.array_equal(row["depth"] == 0, view.depth == 0)
        for full in joined:
            for reg in full["regions"]:
                checked_points += reg["kind"] == "point"
    assert checked_points > 0


def test_point_marks_come_back_from_their_boxes():
    from workbench.world import render

    for width in (32, 64, 112, 224):
        s = render.point_half_width(width)
        for pu in range(width):
            box = [max(pu - s, 0), max(pu - s, 0), min(pu + s + 1, width), min(pu + s + 1, width)]
            marks = render.region_marks({"label": "red point", "kind": "point", "bbox_2d": box}, width)
            assert marks["point"] == [pu, pu], (width, pu, box)


def test_narrowed_splits_make_only_what_is_asked(rows):
    dd, _ = rows
    ds = dd["val"]
    only_depth = views.select_columns(ds, ["id", "depth"])
    assert list(only_depth[0]) == ["id", "depth"] and views.column_names(only_depth) == ["id", "depth"]
    assert list(views.remove_columns(ds, ["image", "depth"])[0]) == [c for c in schema.COLUMNS
                                                                      if c not in ("image", "depth")]
    assert list(ds.select_columns(["id", "task"])[0]) == ["id", "task"]  # datasets' own: no join
    with pytest.raises(ValueError, match=r"no columns \['colour'\]"):
        views.select_columns(ds, ["colour"])
    with pytest.raises(ValueError, match="made from the views"):
        views.column(ds, "image")
    assert pickle.loads(pickle.dumps(ds))[0]["id"] == ds[0]["id"]


@pytest.mark.parametrize("damage, named", [("dataset_dict.json", "dataset_dict.json"), ("arrow", "val/data-")])
def test_a_damaged_dataset_folder_names_the_file(smoke_data, tmp_path, damage, named):
    import shutil

    broken = tmp_path / "d"
    shutil.copytree(smoke_data, broken)
    if damage == "arrow":
        target = sorted((broken / "val").glob("*.arrow"))[0]
        target.write_bytes(target.read_bytes()[:1000])  # cut by a full disk or a kill
    else:
        (broken / damage).write_text("{broken")
    with pytest.raises(ValueError, match=rf"dataset folder '{broken}': {named}.* is damaged; rebuild it"):
        data.load_dataset_dir(broken)
