"""Cold-start SFT: blends, the assistant-only loss mask, one step moving every weight, save and
reload with equal logits, resume after a kill continuing the same run, and clear errors.

Everything trains the smoke-sized built-in model on the session's smoke dataset for 1-4 steps."""

from __future__ import annotations

import json

import pytest
import torch

from workbench import model as M
from workbench import rundir
from workbench.cli import main
from workbench.train import examples as sft_examples
from workbench.train import sft
from workbench.viz.tokens import describe_tokens

FAST = dict(per_device_train_batch_size=2, max_train_examples=16, eval_samples=0, report_to="none",
            disable_tqdm=True, logging_steps=1)
"""Smoke overrides that keep a training test to a few seconds."""


def fast(**overrides) -> sft.SFTSettings:
    return sft.SFTSettings.from_profile("smoke", **{**FAST, **overrides})


def kill_after_save(step: int):
    """A trainer callback that dies (KeyboardInterrupt) right after checkpoint-`step` is saved."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt(f"killed after checkpoint-{step}")

    return Kill()


@pytest.fixture(scope="module")
def splits(smoke_data):
    return sft_examples.load_splits(smoke_data)


@pytest.fixture(scope="module")
def tiny(splits):
    """(model, processor) of a fresh smoke-sized built-in model; tests copy it before training."""
    return sft.build_model(splits["train"], fast())


def fresh(tiny):
    model, processor = tiny
    copy = M.RegionQwen2_5_VLForConditionalGeneration(model.config)
    copy.load_state_dict(model.state_dict())
    copy.generation_config = model.generation_config
    return copy, processor


# ----------------------------------------------------------------------------- settings and blends


@pytest.mark.parametrize(
    "blend, expected",
    [
        ("blend", {("region_qa", "lor"), ("region_qa", "dtr"), ("general_qa", "lor"), ("general_qa", "dtr"),
                   ("ground_3d", "plain"), ("ground_2d", "plain"), ("caption", "plain")}),
        ("cot_only", {("region_qa", "lor"), ("region_qa", "dtr"), ("general_qa", "lor"), ("general_qa", "dtr")}),
        ("lor_only", {("region_qa", "lor"), ("general_qa", "lor")}),
        ("dtr_only", {("region_qa", "dtr"), ("general_qa", "dtr")}),
    ],
)
def test_blends_give_each_qa_row_one_example_per_path(blend, expected):
    tasks = ["region_qa", "general_qa", "ground_3d", "ground_2d", "caption", "region_qa"]
    index = sft_examples.example_index(tasks, blend)
    assert {(tasks[i], p) for i, p in index} == expected
    n_paths = len(sft_examples.BLENDS[blend]["paths"])
    assert sum(1 for i, _ in index if i == 0) == n_paths  # the same QA row once per path
    assert len(index) == len(set(index))


@pytest.mark.parametrize("size", [1, 3, 8])
def test_group_by_path_keeps_every_batch_on_one_path(size):
    items = [(i, ("lor", "dtr", "plain")[i % 3 if i < 30 else 0]) for i in range(47)]
    grouped = sft_examples.group_by_path(items, size, seed=3)
    assert sorted(grouped) == sorted(items)
    batches = [grouped[i : i + size] for i in range(0, len(grouped), size)]
    mixed = [b for b in batches if len({p for _, p in b}) > 1]
    assert len(mixed) <= 2, "only the leftovers at the end may mix paths"
    assert all(b is batches[-1] or b is batches[-2] for b in mixed)
    assert sft_examples.group_by_path(items, size, seed=3) == grouped


def test_training_examples_carry_the_target_of_their_path(splits):
    train = sft_examples.training_examples(splits["train"], "blend", region_coords=True, max_examples=40, seed=1)
    raw = train.with_format(None)
    assert len(train) == 40 and set(raw["path"]) <= {"lor", "dtr", "plain"}
    rows = splits["train"]
    for k in range(len(train)):
        ex, row = train[k], rows[raw[k]["row"]]
        assert ex["id"] == row["id"] and ex["images"][0].size == row["image"].size
        system, user, assistant = ex["messages"]
        target = assistant["content"][0]["text"]
        if ex["path"] == "dtr":
            assert target == row["dtr_target"] and target.startswith("<detect>") and "<detect>" in system["content"][0]["text"]
        elif ex["path"] == "lor":
            assert target == row["lor_target"] and target.startswith("<think>")
        else:
            assert row["task"] not in ("region_qa", "general_qa") and target == row["lor_target"]
        assert user["content"][0]["type"] == "image"
        assert user["content"][1]["text"].count("<region>") == len(row["regions"])
        assert user["content"][1]["text"].count("<|loc_") == 4 * len(row["regions"])
    # the order is seeded
    again = sft_examples.training_examples(splits["train"], "blend", True, 40, seed=1).with_format(None)
    assert again["row"] == raw["row"]
    assert sft_examples.training_examples(splits["train"], "blend", True, 40, seed=2).with_format(None)["row"] != raw["row"]


def test_settings_profiles_and_bad_values():
    assert sft.SFTSettings.from_profile("smoke").profile == "smoke"
    assert sft.SFTSettings.from_profile("default", blend="lor_only").blend == "lor_only"
    for name in sft.PROFILES:
        s = sft.SFTSettings.from_profile(name)
        assert s.learning_rate > 0 and s.blend == "blend"
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        sft.SFTSettings.from_profile("huge")
    with pytest.raises(ValueError, match="unknown blend 'all'"):
        sft.SFTSettings.from_profile("smoke", blend="all")
    with pytest.raises(ValueError, match="unknown SFTSettings fields"):
        sft.SFTSettings.from_profile("smoke", lr=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        sft.SFTSettings(max_steps=0)
    with pytest.raises(ValueError, match="unknown option_style 'after'"):
        sft.SFTSettings(option_style="after")


# ----------------------------------------------------------------------------- the loss mask


def test_loss_is_on_the_assistant_reply_and_its_end_token_only(splits, tiny, tmp_path):
    model, processor = fresh(tiny)
    train = sft_examples.training_examples(splits["train"], "blend", True, max_examples=60, seed=0)
    raw = train.with_format(None)
    picks = [next(k for k in range(len(train)) if raw[k]["path"] == p) for p in ("lor", "dtr", "plain")]
    examples = [train[k] for k in picks]
    trainer = sft.build_trainer(model, processor, train, tmp_path, fast())
    batch = trainer.data_collator([{"messages": ex["messages"], "images": ex["images"]} for ex in examples])
    again = sft.collate(processor, examples, fast())
    assert all(torch.equal(batch[k], again[k]) for k in ("input_ids", "labels", "pixel_values"))
    tok = processor.tokenizer
    assert (batch["attention_mask"][:, 0] == 1).all(), "SFT batches are right-padded"
    for i, ex in enumerate(examples):
        labels, ids = batch["labels"][i], batch["input_ids"][i]
        on = (labels != -100).nonzero().flatten()
        assert on.numel() > 0
        assert torch.equal(on, torch.arange(int(on[0]), int(on[-1]) + 1)), "loss tokens are one contiguous span"
        assert torch.equal(labels[on], ids[on])
        target = ex["messages"][2]["content"][0]["text"]
        assert tok.decode(ids[on]) == target + "<|im_end|>"
        # everything before the reply (system prompt, image placeholders, regions, question) carries no loss
        prompt = tok.decode(ids[: int(on[0])])
        assert prompt.endswith("<|im_start|>assistant\n") and "<|image_pad|>" in prompt
        assert (labels[batch["attention_mask"][i] == 0] == -100).all()
    kinds = describe_tokens(processor, batch, index=1)
    assert {t["kind"] for t in kinds if t["loss"]} <= {"text", "format"}
    assert sum(t["kind"] == "image" for t in kinds) == int((batch["input_ids"][1] == model.config.image_token_id).sum())
    assert any(t["kind"] == "region" for t in kinds) == ("<region>" in examples[1]["messages"][1]["content"][1]["text"])


# ----------------------------------------------------------------------------- training


def test_one_sft_step_changes_every_trainable_parameter(splits, tiny, tmp_path):
    model, processor = fresh(tiny)
    assert M.uses_depth(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train = sft_examples.training_examples(splits["train"], "blend", True, max_examples=8, seed=0,
                                           depth=M.uses_depth(model))  # the 3D positional embedding trains too
    trainer = sft.build_trainer(model, processor, train, tmp_path, fast(max_steps=1, warmup_steps=0, per_device_train_batch_size=8))
    trainer.train()
    assert trainer.state.global_step == 1
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]
    assert not unchanged, f"parameters not updated by one step: {unchanged[:5]}"


@pytest.mark.slow
def test_train_sft_saves_a_folder_that_load_reads_with_equal_logits(smoke_data, splits, tmp_path):
    out = tmp_path / "sft"
    result = sft.train_sft(smoke_data, out, fast(max_steps=2, eval_samples=2, eval_max_new_tokens=8))
    assert result.global_step == 2 and result.final_loss is not None
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    state = json.loads((out / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2]
    summary = sft.read_summary(out)
    assert summary["global_step"] == 2 and summary["settings"]["profile"] == "smoke"
    assert set(summary["evaluation"]) == {"lor", "dtr", "chance"}
    assert summary["evaluation"]["dtr"]["n"] == 2
    trained = result.trainer.model.eval()
    loaded, processor = M.load(out)
    rows = sft_examples.qa_rows(splits["val"], 2)
    batch = M.model_inputs(processor, rows, "dtr", region_coords=True)
    with torch.no_grad():
        assert torch.allclose(trained(**batch).logits, loaded(**batch).logits, atol=1e-5)
    with pytest.raises(FileExistsError, match="already holds a run"):
        sft.train_sft(smoke_data, out, fast(max_steps=1))


@pytest.mark.slow
def test_resume_after_a_kill_continues_the_same_run(smoke_data, tmp_path):
    settings = fast(max_steps=4, save_steps=1, save_total_limit=3)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(smoke_data, killed, settings, callbacks=[kill_after_save(2)])
    assert rundir.last_checkpoint(killed).name == "checkpoint-2"
    assert not (killed / sft.SUMMARY).exists()
    resumed = sft.train_sft(smoke_data, killed, settings, resume=True)
    assert resumed.global_step == 4
    state = json.loads((killed / "trainer_state.json").read_text())
    losses = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    assert sorted(losses) == [1, 2, 3, 4]

    straight = sft.train_sft(smoke_data, tmp_path / "straight", settings)
    expected = {e["step"]: e["loss"] for e in straight.trainer.state.log_history if "loss" in e}
    assert losses == pytest.approx(expected, rel=1e-4), "the resumed run must continue exactly where it stopped"
    a, _ = M.load(killed)
    b, _ = M.load(tmp_path / "straight")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name


# ----------------------------------------------------------------------------- errors and CLI


def test_missing_or_incomplete_datasets_are_clear_errors(smoke_data, tmp_path):
    import datasets

    with pytest.raises(FileNotFoundError, match="nowhere"):
        sft.train_sft(tmp_path / "nowhere", tmp_path / "out", fast())
    dd = datasets.load_from_disk(str(smoke_data))
    broken = tmp_path / "broken"
    datasets.DatasetDict({k: v.remove_columns(["dtr_target"]) for k, v in dd.items()}).save_to_disk(str(broken))
    (broken / "data_card.json").write_text((smoke_data / "data_card.json").read_text())
    with pytest.raises(ValueError, match="dtr_target"):
        sft.train_sft(broken, tmp_path / "out", fast())
    assert not (tmp_path / "out").exists()


def test_cli_trains_and_reports_or_fails_clearly(smoke_data, tmp_path, capsys):
    out = tmp_path / "m"
    code = main(["sft", "--data", str(smoke_data), "--out", str(out), "--profile", "smoke", "--max-steps", "1",
                 "--no-eval", "--blend", "lor_only", "--option-style", "letter_after"])
    assert code == 0 and "1 steps" in capsys.readouterr().out
    summary = sft.read_summary(out)
    assert summary["settings"]["blend"] == "lor_only" and set(summary["examples"]) <= {"region_qa/lor", "general_qa/lor"}
    model, processor = M.load(out)  # the model keeps its option style, and its letters are single tokens
    assert M.prompt_options(model)["option_style"] == "letter_after"
    assert " (B)" in processor.tokenizer.get_vocab()
    assert main(["sft", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2
    assert "dataset folder" in capsys.readouterr().err
    assert main(["sft", "--data", str(smoke_data), "--out", str(out), "--max-steps", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
    mine = tmp_path / "u"  # a folder of the user's: --resume must not write a model card over it
    mine.mkdir()
    (mine / "README.md").write_text("mine")
    assert main(["sft", "--data", str(smoke_data), "--out", str(mine), "--resume", "--max-steps", "1", "--no-eval"]) == 2
    assert "is not a SFT run; refusing" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["README.md"] and (mine / "README.md").read_text() == "mine"


def test_auto_resume_continues_an_interrupted_run_of_the_same_settings_only(smoke_data, tmp_path):
    """What a notebook stage run again does (`workbench run --from sft`): continue the killed run,
    but start over when the settings changed or the run had finished."""
    settings = fast(max_steps=3, save_steps=1, save_total_limit=3)
    out = tmp_path / "sft"
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(smoke_data, out, settings, callbacks=[kill_after_save(2)])
    resumed = sft.train_sft(smoke_data, out, settings, resume="auto")
    assert sft.read_summary(out)["resumed_from"].endswith("checkpoint-2") and resumed.global_step == 3
    again = sft.train_sft(smoke_data, out, settings, resume="auto")  # finished: start over
    assert sft.read_summary(out)["resumed_from"] is None and again.global_step == 3
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(smoke_data, out, settings, callbacks=[kill_after_save(2)], overwrite=True)
    changed = sft.train_sft(smoke_data, out, fast(max_steps=3, save_steps=1, seed=5), resume="auto")
    assert sft.read_summary(out)["resumed_from"] is None and changed.global_step == 3
