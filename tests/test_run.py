"""The runner (`workbench run`): parameters, resume, failure reporting, and the smoke run."""

from __future__ import annotations

import json
import os
import re

import nbformat
import pytest

from workbench import run as run_mod
from workbench.cli import main
from workbench.run import RunSettings, StageFailed, stage_parameters


def test_stage_parameters_merge_common_and_per_stage_overrides(tmp_path):
    settings = RunSettings(out=str(tmp_path), params={"seed_data": 5, "stages": {"sft": {"max_steps": 3}}})
    sft = stage_parameters(settings, "sft")
    data = stage_parameters(settings, "data")
    assert sft["max_steps"] == 3 and "max_steps" not in data
    assert sft["seed_data"] == data["seed_data"] == 5
    assert sft["run_dir"] == str(tmp_path.resolve()) and sft["profile"] == "smoke"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"profile": "huge"}, "unknown profile 'huge'"),
        ({"from_stage": "train"}, "unknown stage 'train'"),
        ({"params": {"stages": {"nope": {}}}}, "unknown stages ['nope']"),
    ],
)
def test_bad_settings_name_the_bad_value(kwargs, message):
    with pytest.raises(ValueError) as err:
        RunSettings(**kwargs)
    assert message in str(err.value)


def test_resume_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run_mod.run(RunSettings(out=str(tmp_path / "r"), from_stage="sft"), progress=False)


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a workbench run folder"):
        run_mod.run(RunSettings(out=str(tmp_path)), progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_bad_params_file_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("- just\n- a list\n")
    assert main(["run", "--out", str(tmp_path / "r"), "--params", str(bad)]) == 2
    assert "must hold a mapping" in capsys.readouterr().err


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_failed_cell_names_stage_notebook_and_error_then_resume(tmp_path, monkeypatch):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    marker = tmp_path / "ok"
    _notebook(nb_dir / "a.ipynb", 'profile = "smoke"\nrun_dir = ""', "print('first stage ok')")
    _notebook(
        nb_dir / "b.ipynb",
        'profile = "smoke"\nrun_dir = ""',
        f"import os\nif not os.path.exists({str(marker)!r}): raise ValueError('bad row 7')",
    )
    monkeypatch.setattr(run_mod, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setattr(run_mod, "STAGES", (("data", "a.ipynb"), ("sft", "b.ipynb")))
    monkeypatch.setattr(run_mod, "STAGE_NAMES", ("data", "sft"))
    out = tmp_path / "run"
    with pytest.raises(StageFailed) as err:
        run_mod.run(RunSettings(out=str(out)), progress=False)
    message = str(err.value)
    assert "stage 'sft'" in message and "b.ipynb" in message and "ValueError: bad row 7" in message
    assert "--from sft" in message
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "done"
    assert manifest["stages"]["sft"]["status"] == "failed"

    first_stage_copy = out / "notebooks" / "a.ipynb"
    mtime = os.path.getmtime(first_stage_copy)
    marker.write_text("fixed")
    manifest = run_mod.run(RunSettings(out=str(out), from_stage="sft"), progress=False)
    assert manifest["stages"]["sft"]["status"] == "done"
    assert os.path.getmtime(first_stage_copy) == mtime, "--from redid a finished stage"
    assert (out / "report.html").exists()


@pytest.mark.slow
def test_a_run_folder_is_never_reused_with_other_settings(tmp_path, monkeypatch):
    """The second run of `run --out R` with another seed (or profile, or a changed parameter of a
    stage it would reuse) stops and says what differs, instead of training on the first run's data."""
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    for name in ("a", "b"):
        _notebook(nb_dir / f"{name}.ipynb", 'profile = "smoke"\nrun_dir = ""\nseed = 0\nmodel = ""\nsize = 1', "print('ok')")
    monkeypatch.setattr(run_mod, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setattr(run_mod, "STAGES", (("data", "a.ipynb"), ("sft", "b.ipynb")))
    monkeypatch.setattr(run_mod, "STAGE_NAMES", ("data", "sft"))
    out = str(tmp_path / "run")
    run_mod.run(RunSettings(out=out), progress=False)
    run_mod.run(RunSettings(out=out), progress=False)  # the same settings again: fine
    with pytest.raises(FileExistsError, match=r"other settings \(seed: 0 -> 1\).*--overwrite"):
        run_mod.run(RunSettings(out=out, seed=1), progress=False)
    with pytest.raises(FileExistsError, match=r"profile: 'smoke' -> 'default'"):
        run_mod.run(RunSettings(out=out, profile="default", from_stage="sft"), progress=False)
    data_size = {"stages": {"data": {"size": 2}}}
    with pytest.raises(FileExistsError, match=r"data parameter size: None -> 2"):
        run_mod.run(RunSettings(out=out, params=data_size, from_stage="sft"), progress=False)
    # a stage run again may change its own parameters
    run_mod.run(RunSettings(out=out, params={"stages": {"sft": {"size": 3}}}, from_stage="sft"), progress=False)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["seed"] == 0
    with pytest.raises(ValueError, match="does not go with --from"):
        run_mod.run(RunSettings(out=out, seed=1, overwrite=True, from_stage="sft"), progress=False)
    manifest = run_mod.run(RunSettings(out=out, seed=1, overwrite=True), progress=False)
    assert manifest["seed"] == 1 and manifest["stages"]["data"]["parameters"]["seed"] == 1


@pytest.mark.slow
def test_smoke_run_writes_manifest_metrics_and_report(smoke_run):
    out, manifest = smoke_run
    assert all(s["status"] == "done" for s in manifest["stages"].values())
    assert list(manifest["stages"]) == list(run_mod.STAGE_NAMES)
    assert manifest["data_fingerprint"] and manifest["versions"]["torch"] != "not installed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics and {"model", "path", "split", "category", "n"} <= set(metrics[0])
    report = (out / "report.html").read_text()
    assert "<table>" in report and "plotly" in report.lower()
    summary = report.split("<h2>Run</h2>")[0]  # the report opens with what smoke shows and the headline table
    assert "A smoke run checks that the whole pipeline runs" in summary and "Headline numbers" in summary
    assert "blank image" in summary and "Base stage: on" in summary
    assert "<details><summary>Full table" in report and "optimizer step" in report
    assert "The shipped model's training data asked" in summary and "<td class='l'>shipped</td>" in summary
    examples = report.split("Example traces")[1].split("<h2>Run</h2>")[0]  # traces beside the 3D view
    assert "Example traces (shipped, test)" in report
    assert "DTR · test-" in examples and "LOR · test-" in examples and "scatter3d" in examples
    assert "truth: " in examples and "&lt;region&gt;" in examples


def test_report_examples_are_the_last_models_closest_and_farthest_dtr_centers_then_lor():
    from workbench import report

    def pred(model, path, error=None, split="test", i=0):
        return {"model": model, "path": path, "split": split, "id": f"{model}-{path}-{i}", "center_error_m": error}

    preds = [pred("oracle", "dtr", 0.0), pred("sft", "dtr", 0.1), pred("grpo", "dtr", 0.5, i=1),
             pred("grpo", "dtr", 0.2, i=2), pred("grpo", "dtr", 0.9, split="val", i=3), pred("grpo", "lor", i=4),
             pred("grpo", "dtr", 0.3, i=5)]
    assert [p["id"] for p in report.pick_examples(preds)] == ["grpo-dtr-2", "grpo-dtr-1", "grpo-lor-4"]
    no_centers = [pred("sft", "lor", i=0), pred("sft", "dtr", i=1), pred("chance", "dtr", 0.5)]
    assert [p["id"] for p in report.pick_examples(no_centers)] == ["sft-dtr-1", "sft-lor-0"]
    assert report.pick_examples([pred("chance", "dtr", 0.5)]) == []
    # a smoke run evaluates the shipped model beside its own: its traces are the ones worth showing
    with_shipped = [*preds, pred("shipped", "dtr", 0.4, i=6), pred("shipped", "lor", i=7)]
    assert [p["id"] for p in report.pick_examples(with_shipped)] == ["shipped-dtr-6", "shipped-lor-7"]


def test_headline_table_orders_baselines_then_stages_and_skips_other_rows():
    from workbench import report

    def row(model, path, split="val", category="all", acc=0.5):
        return {"model": model, "path": path, "split": split, "category": category, "choice_accuracy": acc, "n": 10}

    metrics = [row("grpo", "dtr", acc=0.9), row("sft", "lor"), row("language_prior", "lor", acc=0.7),
               row("chance", "lor"), row("sft", "auto"), row("sft", "lor", category="left_right", acc=0.1),
               row("sft", "lor", split="test_ood", acc=0.3)]
    page = report.headline_table(metrics)
    names = re.findall(r"<tr[^>]*><td class='l'>([^<]+)</td><td class='l'>(\w+)</td>", page)
    assert names == [("chance", "lor"), ("blank image", "lor"), ("sft", "lor"), ("grpo", "dtr")]
    assert "0.100" not in page and "auto" not in page and page.index(">val<") < page.index(">test_ood<")


@pytest.mark.slow
def test_from_skips_finished_stages(smoke_run):
    out, _ = smoke_run
    data_copy = out / "notebooks" / "01_build_data.ipynb"
    mtime = os.path.getmtime(data_copy)
    manifest = run_mod.run(RunSettings(out=str(out), from_stage="traces"), progress=False)
    assert os.path.getmtime(data_copy) == mtime
    assert manifest["stages"]["traces"]["status"] == "done"


def test_notebooks_run_on_the_default_profile_data_shape(tmp_path):
    """The `default` profile's data (three relations, region questions only, no blend rows, no numeric
    questions) at smoke size: every notebook copes with what such a build lacks."""
    from workbench.dataset import DEFAULT_CATEGORIES, DataSettings, load_dataset_dir

    default = DataSettings.from_profile("default")
    shape = {k: getattr(default, k) for k in ("general_fraction", "blend_per_scene")}
    shape["categories"] = ",".join(default.categories)
    out = tmp_path / "run"
    manifest = run_mod.run(RunSettings(profile="smoke", out=str(out), params={"stages": {"data": shape}}),
                           progress=False)
    assert all(s["status"] == "done" for s in manifest["stages"].values())
    train = load_dataset_dir(out / "data")["train"]
    assert set(train["task"]) == {"region_qa"} and set(train["category"]) == set(DEFAULT_CATEGORIES)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {m["category"] for m in metrics} == {"all", *DEFAULT_CATEGORIES}
    assert all(m["number_mra"] is None for m in metrics)


def test_stage_progress_reads_what_the_stage_writes_and_ignores_an_older_file(tmp_path):
    import time

    from workbench import rundir

    folder = tmp_path / "sft"
    rundir.write_progress(folder, {"stage": "sft", "step": 1, "steps": 9, "loss": 2.0})
    old = time.time() - 3600
    os.utime(folder / rundir.PROGRESS, (old, old))
    with run_mod.StageProgress(folder, "sft", every=0.01) as watch:
        assert watch.latest() is None  # a previous run's file
        rundir.write_progress(folder, {"stage": "sft", "step": 4, "steps": 9, "loss": 0.5})
        deadline = time.time() + 10  # the watcher polls every 0.01 s; a loaded machine may be slow
        while (watch._bar is None or watch._bar.n != 4) and time.time() < deadline:
            time.sleep(0.05)
        assert watch.latest()["step"] == 4
        assert watch._bar is not None and watch._bar.n == 4 and watch._bar.total == 9
    assert run_mod.StageProgress(None, "sft").latest() is None
    (folder / rundir.PROGRESS).write_text("{half")
    assert rundir.read_progress(folder) is None
