"""The shipped checkpoint (`workbench.model.shipped`): it loads with the current code, its files match
its manifest, it answers fresh questions of its categories better than chance, and `workbench ship`
writes a checkpoint with its manifest without overwriting one unasked."""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.model import shipped


@pytest.fixture(scope="module")
def shipped_eval(tmp_path_factory):
    """The shipped model evaluated greedily on a fresh smoke-sized build of its own categories
    (another seed than its training data): the metric rows."""
    from workbench.dataset import DataSettings, build_dataset
    from workbench.eval import evaluate as E

    record = shipped.check()
    root = tmp_path_factory.mktemp("shipped")
    data = root / "data"
    build_dataset(DataSettings.from_profile("smoke", seed=11, num_scenes=40, categories=tuple(record["categories"]),
                                            general_fraction=0.0, blend_per_scene=0),
                  data, progress=False)
    settings = E.EvalSettings.from_profile("smoke", splits=("val", "test"), paths=("lor", "dtr"),
                                           baselines=("chance",), max_examples=40, max_new_tokens=256)
    result = E.evaluate({shipped.SHIPPED: shipped.shipped_dir()}, data, root / "eval", settings, progress=False)
    return result.metrics


@pytest.mark.slow
def test_shipped_model_beats_chance_on_fresh_questions(shipped_eval):
    rows = {(r["model"], r["path"], r["split"]): r for r in shipped_eval if r["category"] == "all"}
    for path in ("lor", "dtr"):
        right = sum(rows[(shipped.SHIPPED, path, s)]["choice_accuracy"] * rows[(shipped.SHIPPED, path, s)]["n"]
                    for s in ("val", "test"))
        n = sum(rows[(shipped.SHIPPED, path, s)]["n"] for s in ("val", "test"))
        # two-option relations: chance is 0.5; 0.65 on 80 questions is 2.7 sigma above it
        assert n >= 60 and right / n >= 0.65, (path, right, n)
        assert min(rows[(shipped.SHIPPED, path, s)]["format_rate"] for s in ("val", "test")) >= 0.9
    centers = [rows[(shipped.SHIPPED, "dtr", s)]["center_error_m"] for s in ("val", "test")]
    assert max(centers) < 0.45, centers  # writing the mean center misses by ~0.9 m


def test_shipped_model_loads_by_name_and_matches_its_manifest():
    from workbench.model import is_region_model, load, uses_depth

    record = shipped.check()
    assert set(record["files"]) == set(shipped.MODEL_FILES)
    assert record["categories"] and record["metrics"]["model"]
    model, processor = load(shipped.SHIPPED)
    assert is_region_model(model) and uses_depth(model)
    assert processor.tokenizer.pad_token_id is not None


def test_a_damaged_weight_file_is_named(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(shipped.shipped_dir(), copy)
    (copy / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    with pytest.raises(ValueError, match="model.safetensors does not match"):
        shipped.check(copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        shipped.check(copy)
    with pytest.raises(FileNotFoundError, match="no shipped model"):
        shipped.check(tmp_path)


def _eval_folder(folder, models=("grpo",)):
    folder.mkdir()
    rows = [{"model": m, "path": p, "split": s, "category": c, "choice_accuracy": 0.75, "n": 8,
             "number_mra": None, "center_error_m": 0.3 if p == "dtr" else None, "format_rate": 1.0}
            for m in (*models, "chance", "oracle") for p in ("lor", "dtr") for s in ("val", "test")
            for c in ("all", "left_right")]
    (folder / "metrics.json").write_text(json.dumps(rows))
    return folder


def test_ship_writes_the_model_and_its_manifest_and_never_overwrites_unasked(tmp_path):
    out = tmp_path / "shipped"
    shipped.ship(shipped.shipped_dir(), _eval_folder(tmp_path / "eval"), out, note="made by a test")
    record = shipped.check(out)
    assert record["note"] == "made by a test" and record["categories"] == ["left_right"]
    assert set(record["metrics"]) == {"model", "chance"}  # the oracle is not a reference worth keeping
    assert record["metrics"]["model"]["dtr/test"]["center_error_m"] == 0.3
    assert any("DTR model: choice 0.75 / 0.75 / -; center 0.30 / 0.30 / - m" == line
               for line in shipped.headline(record))
    before = (out / shipped.MANIFEST).read_text()
    with pytest.raises(FileExistsError):
        shipped.ship(shipped.shipped_dir(), None, out)
    assert (out / shipped.MANIFEST).read_text() == before
    shipped.ship(shipped.shipped_dir(), None, out, overwrite=True)
    assert shipped.check(out)["metrics"] == {}


def test_ship_refuses_what_it_cannot_ship(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished built-in model folder"):
        shipped.ship(tmp_path, None, tmp_path / "out")
    with pytest.raises(ValueError, match="several models"):
        shipped.ship(shipped.shipped_dir(), _eval_folder(tmp_path / "eval", ("a", "b")), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no evaluation metrics"):
        shipped.ship(shipped.shipped_dir(), tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_ship_command_line(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "shipped"
    assert main(["ship", "--model", str(shipped.shipped_dir()), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["ship", "--model", str(shipped.shipped_dir()), "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_a_run_without_models_evaluates_the_shipped_one(smoke_data, tmp_path):
    from workbench import run as R

    run = tmp_path / "run"
    shutil.copytree(smoke_data, run / "data")
    data_dir, models = R.prepare_run(run, "smoke")
    assert models == {shipped.SHIPPED: shipped.shipped_dir()} and not (run / "sft").exists()
    with pytest.raises(ValueError, match="shipped must be"):
        R.prepare_run(run, "smoke", shipped="yes")


def test_ask_answers_with_the_shipped_model_when_no_model_is_given(smoke_data, capsys):
    from workbench.cli import main

    assert main(["ask", "--data", str(smoke_data), "--split", "test", "--index", "0", "--path", "dtr"]) == 0
    completion = capsys.readouterr().out
    assert completion.startswith("<detect>") and "<answer>" in completion, completion
