"""The base stage (`workbench.train.base`): its settings, the grounding examples it makes from the
questions' regions, its training run (summary, resume, refusal) and SFT starting from it."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest

from workbench import model as M
from workbench import rundir, schema
from workbench.cli import main as cli_main
from workbench.tasks import prompts, questions
from workbench.train import base, copying, sft
from workbench.train import examples as sft_examples


@pytest.fixture(scope="module")
def splits(smoke_data):
    return sft_examples.load_splits(smoke_data)


@pytest.fixture(scope="module")
def base_dir(smoke_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base"
    summary = base.train_base(smoke_data, out, base.BaseSettings.from_profile("smoke", disable_tqdm=True))
    return out, summary


def test_settings_share_the_trainer_fields_of_sft_and_refuse_bad_tasks():
    names = {f.name for f in fields(base.BaseSettings)}
    assert set(base._TRAINER_FIELDS) <= names <= {f.name for f in fields(sft.SFTSettings)} | {
        "derived_tasks", "row_tasks"}
    settings = base.BaseSettings.from_profile("default")
    trainer = settings.trainer_settings()
    assert trainer.max_steps == settings.max_steps and trainer.copy_warmup_steps == sft.COPY_WARMUP_STEPS
    assert not trainer.group_by_path and trainer.eval_samples == 0
    with pytest.raises(ValueError, match="unknown derived_tasks \\['ground_4d'\\]"):
        base.BaseSettings(derived_tasks="ground_3d,ground_4d")
    with pytest.raises(ValueError, match="nothing to train on"):
        base.BaseSettings(derived_tasks=(), row_tasks=())
    with pytest.raises(ValueError, match="max_steps"):
        base.BaseSettings(max_steps=0)


def test_every_marked_region_of_a_question_gives_a_grounding_example(splits):
    train = splits["train"]
    settings = base.BaseSettings(derived_tasks=("ground_3d",), row_tasks=("ground_2d",))
    index = base.example_index(train, settings)
    qa = [r for r in train.select_columns(["task", "regions"]) if r["task"] in schema.QA_TASKS]
    assert sum(t == "ground_3d" for _, t, _ in index) == sum(len(r["regions"]) for r in qa) > 0
    assert sum(t == "ground_2d" for _, t, _ in index) == sum(t == "ground_2d" for t in train["task"])
    for i, task, k in index[:40]:
        if k < 0:
            continue
        row = base.grounding_row(train[i], task, k)
        # the target is what the dataset's own ground_3d rows hold for this object and label
        assert questions.recompute_answer(row) == row["lor_target"] == row["answer"]
        (label, center), = schema.centers_of(row).items()
        region = train[i]["regions"][k]
        assert label == region["label"] and center == pytest.approx(train[i]["objects"][region["object_index"]]["center"])
        assert prompts.user_text(row, region_coords=False).count(schema.REGION_TOKEN) == 1


def test_examples_use_the_plain_prompt_and_carry_depth_except_the_dropped_share(splits):
    settings = base.BaseSettings(max_train_examples=60, depth_dropout=0.5, seed=3)
    items = base.training_examples(splits["train"], settings, depth=True)
    assert len(items) == 60
    batch = items[:60]
    systems = {task: {m[0]["content"][0]["text"]} for task, m in zip(batch["task"], batch["messages"])}
    assert systems["ground_3d"] == {prompts.system_prompt("plain", "full")}
    assert systems.get("general_qa", {prompts.system_prompt("lor", "full")}) == {prompts.system_prompt("lor", "full")}
    with_depth = sum(M.depth.detach(image)[1] is not None for (image,) in batch["images"])
    assert 10 < with_depth < 50  # about half kept, seeded
    again = base.training_examples(splits["train"], settings, depth=True)[:60]
    assert again["id"] == batch["id"] and [m[-1] for m in again["messages"]] == [m[-1] for m in batch["messages"]]


def test_grounding_eval_scores_the_written_centers(splits, monkeypatch):
    rows = base.grounding_rows(splits["val"], 6, seed=0)
    assert len(rows) == 6 and all(r["task"] == "ground_3d" for r in rows)
    answers = [r["lor_target"] for r in rows]
    answers[0] = "no idea"
    answers[1] = re.sub('center="[^"]*"', 'center="9,9,20"', answers[1])  # metres off
    monkeypatch.setattr(M, "generate", lambda model, processor, rows, path, **kw: answers[: len(rows)])
    metrics, records = base.grounding_eval(None, None, rows, guess=[0.0, 0.0, 0.0])
    assert metrics["n"] == 6 and metrics["parsed"] == 5
    assert records[0]["error_m"] is None and records[0]["predicted"] is None
    assert records[1]["predicted"] == [9.0, 9.0, 20.0]
    assert metrics["center_error_m"] < 0.01 and records[1]["error_m"] >= 1.0  # targets are rounded to 1 cm
    assert metrics["within_0_15m"] == round(4 / 6, 4) and metrics["mean_guess_error_m"] > 0.5


def test_base_stage_trains_records_itself_and_sft_starts_from_it(base_dir, smoke_data, tmp_path):
    out, summary = base_dir
    assert summary["global_step"] == 10 and summary["copy_warmup"]["steps"] == 4
    assert summary["examples"]["ground_3d"] > 0 and summary["grounding"]["n"] == 4
    assert json.loads((out / base.SUMMARY).read_text())["global_step"] == 10
    progress = rundir.read_progress(out)  # what `workbench run` shows while the stage trains
    assert progress["stage"] == "base" and progress["step"] == progress["steps"] == 10 and progress["done"]
    assert progress["loss"] == pytest.approx(summary["final_loss"])
    model, _ = M.load(out)
    assert getattr(model.config, base.CONFIG_KEY) == 10 and copying.warmed_steps(model) == 4
    assert M.uses_depth(model)
    # cold-start SFT from the base model: its weights, tokenizer and warm-up; no second warm-up
    settings = sft.SFTSettings.from_profile("smoke", max_steps=2, eval_samples=0, disable_tqdm=True)
    result = sft.train_sft(smoke_data, tmp_path / "sft", settings, model_name_or_path=str(out))
    assert sft.read_summary(result.out_dir)["copy_warmup"] is None
    trained, _ = M.load(result.out_dir)
    assert copying.warmed_steps(trained) == 4 and getattr(trained.config, base.CONFIG_KEY) == 10


def test_an_interrupted_base_stage_resumes_and_a_foreign_folder_is_refused(smoke_data, tmp_path, capsys):
    from test_sft import kill_after_save

    settings = base.BaseSettings.from_profile("smoke", max_steps=4, save_steps=2, eval_samples=0, disable_tqdm=True)
    out = tmp_path / "base"
    with pytest.raises(KeyboardInterrupt):
        base.train_base(smoke_data, out, settings, callbacks=[kill_after_save(2)])
    assert (out / "checkpoint-2").is_dir() and not (out / base.SUMMARY).exists()
    summary = base.train_base(smoke_data, out, settings, resume="auto")
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["global_step"] == 4
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code = cli_main(["base", "--data", str(smoke_data), "--out", str(foreign), "--max-steps", "1"])
    assert code == 2 and "is not a base-stage run" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_sft_blends_grounding_of_the_marked_regions_when_asked(splits):
    train = splits["train"]
    plain = sft_examples.training_examples(train, "cot_only", seed=1)
    blended = sft_examples.training_examples(train, "cot_only", seed=1, grounding=("ground_3d",))
    regions = sum(len(r["regions"]) for r in train.select_columns(["task", "regions"]) if r["task"] in schema.QA_TASKS)
    assert len(blended) == len(plain) + regions
    items = blended[: len(blended)]
    grounded = [(i, m) for i, t, m in zip(items["id"], items["task"], items["messages"]) if t == "ground_3d"]
    assert len(grounded) == regions
    for row_id, messages in grounded[:10]:
        source, k = row_id.rsplit("/ground_3d", 1)
        row = base.grounding_row(train[[r for r in train["id"]].index(source)], "ground_3d", int(k), seed=1)
        assert messages[-1]["content"][0]["text"] == row["lor_target"] == questions.recompute_answer(row)
        assert messages[0]["content"][0]["text"] == prompts.system_prompt("plain", "full")
    with pytest.raises(ValueError, match="unknown grounding tasks"):
        sft.SFTSettings(grounding="ground_5d")
