"""The reasoning warm-up study (`reasoning.py`, `warm_reasoning.py`): text-only DTR examples whose
prompt holds the question and its true `<detect>` block, labels on the think and answer only, a
warm-up that learns them, and the warm-started model saved for `workbench sft --model`."""

from __future__ import annotations

import copy
import json

import lookup_probe
import pytest
import reasoning
import score
import torch
import warm_reasoning

from workbench import model as M
from workbench.tasks import prompts, rewards
from workbench.train import copying, sft
from workbench.train import examples as sft_examples


@pytest.fixture(scope="module")
def splits(smoke_data):
    return sft_examples.load_splits(smoke_data)


@pytest.fixture(scope="module")
def tiny(splits):
    return sft.build_model(splits["train"], sft.SFTSettings.from_profile("smoke"))


@pytest.fixture(scope="module")
def rows(splits):
    return reasoning.question_rows(splits["train"])


def test_question_rows_are_the_marked_questions_with_dtr_targets(splits, rows):
    assert rows and all(r["regions"] and "<think>" in r["dtr_target"] for r in rows)
    tasks = [t for t, marked in zip(splits["train"]["task"], splits["train"]["regions"]) if marked and t == "region_qa"]
    assert len(rows) == len(tasks)
    sample = reasoning.question_rows(splits["train"], limit=3, seed=1)
    assert len(sample) == 3 and sample == reasoning.question_rows(splits["train"], limit=3, seed=1)
    with pytest.raises(ValueError, match="dtr_target"):
        reasoning.question_rows(splits["train"].remove_columns("dtr_target"))


@pytest.mark.parametrize("style", ["letter_first", "letter_after"])
def test_the_prompt_gives_question_and_true_detect_block_and_the_reply_is_the_rest(tiny, rows, style):
    tokenizer = tiny[1].tokenizer
    for row in rows[:20]:
        ex = reasoning.make_example(row, tokenizer, "short", style)
        assert prompts.REGION_TOKEN not in ex.prompt and "  " not in ex.prompt.split("<|im_start|>user\n")[1]
        assert ex.prompt.split("<|im_start|>system\n")[1].startswith(prompts.system_prompt("dtr", "short"))
        assert ex.prompt.endswith(row["dtr_target"][: row["dtr_target"].index("<think>")])
        assert "<detect>" in ex.prompt and ex.reply.startswith("<think>") and "<detect>" not in ex.reply
        assert ex.prompt.split("<|im_start|>assistant\n")[1] + ex.reply == row["dtr_target"]
        if row["choices"]:
            assert prompts.option_lines(list(row["choices"]), style) in ex.prompt
        assert rewards.score(ex.reply, row["answer"], None, "lor", row["answer_type"])["accuracy"] == 1.0


def test_labels_cover_the_think_answer_and_end_token_only(tiny, rows):
    tokenizer = tiny[1].tokenizer
    examples = [reasoning.make_example(r, tokenizer) for r in rows[:5]]
    batch = copying.encode(tokenizer, examples)
    for i, ex in enumerate(examples):
        labelled = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tokenizer.decode(labelled) == ex.reply + "<|im_end|>"
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        assert tokenizer.decode(ids) == ex.prompt + ex.reply + "<|im_end|>"


def test_warm_up_learns_the_thinks_it_practises_and_marks_the_model(tiny, rows):
    model, processor = copy.deepcopy(tiny[0]), tiny[1]
    torch.manual_seed(0)
    practised = rows[:2]
    result = reasoning.warm_up(model, processor.tokenizer, practised, steps=80, batch_size=4, learning_rate=3e-3,
                               held_out=practised, log_every=20)
    before, after = result["accuracy_before"], result["accuracy_after"]
    assert before["format"] == 0.0 and after["format"] == 1.0, result
    scored = [a for a in (after["choice"], after["number"]) if a is not None]
    assert scored and min(scored) == 1.0, result  # two thinks, practised 160 times: written back exactly
    assert result["final_loss"] < result["first_loss"] / 10
    assert reasoning.warmed_steps(model) == 80 and reasoning.warmed_steps(tiny[0]) == 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        reasoning.warm_up(model, processor.tokenizer, practised, steps=0)
    with pytest.raises(ValueError, match="no question rows"):
        reasoning.warm_up(model, processor.tokenizer, [], steps=1)


@pytest.mark.slow
def test_warm_reasoning_saves_a_model_sft_can_start_from(smoke_data, tmp_path, capsys):
    out, copied = tmp_path / "warm", tmp_path / "copied"
    assert warm_reasoning.main(["--data", str(smoke_data), "--out", str(out), "--profile", "smoke", "--copy-steps", "2",
                                "--copy-numbers", "0.5", "--copy-out", str(copied), "--reason-steps", "3",
                                "--batch-size", "2", "--held-out", "2"]) == 0
    assert "val thinks from true centers" in capsys.readouterr().out
    model, _ = M.load(out)
    assert reasoning.warmed_steps(model) == 3 and copying.warmed_steps(model) == 2
    again = tmp_path / "again"  # a reasoning variant from the saved copy warm-up
    assert warm_reasoning.main(["--data", str(smoke_data), "--out", str(again), "--start", str(copied),
                                "--copy-steps", "0", "--reason-steps", "2", "--batch-size", "2", "--held-out", "0"]) == 0
    model, _ = M.load(again)
    assert reasoning.warmed_steps(model) == 2 and copying.warmed_steps(model) == 2
    settings = sft.SFTSettings.from_profile("smoke", max_steps=1, eval_samples=0, disable_tqdm=True)
    result = sft.train_sft(smoke_data, tmp_path / "sft", settings, model_name_or_path=str(out))
    assert sft.read_summary(result.out_dir)["copy_warmup"] is None  # warmed once, in warm_reasoning
    assert warm_reasoning.main(["--data", str(smoke_data), "--out", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert warm_reasoning.main(["--data", str(smoke_data), "--out", str(tmp_path / "new"), "--copy-out", str(copied)]) == 2
    assert str(copied) in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_score_counts_every_question_once_next_to_chance_and_the_median(tiny, splits, tmp_path):
    held = reasoning.question_rows(splits["val"], 6, 0)
    result = score.score(tiny[0], tiny[1], reasoning.question_rows(splits["train"]), held, str(tmp_path / "r.json"))
    overall = result.pop("all")
    assert overall["n_choice"] + overall["n_number"] == len(held) == len(json.loads((tmp_path / "r.json").read_text()))
    assert sum(c["n_choice"] + c["n_number"] for c in result.values()) == len(held)
    assert set(result) == {r["category"] for r in held}
    if overall["n_choice"]:
        assert overall["choice"] == 0.0 and 0 < overall["chance"] < 1  # a fresh model writes no answer
    if overall["n_number"]:
        assert overall["mra"] == 0.0 and overall["median_mra"] is not None


def test_left_right_thinks_restate_x_in_either_order_and_copies_are_counted(tiny, rows):
    lr = next(r for r in rows if r["category"] == "left_right")
    label_first = reasoning.make_example(lr, tiny[1].tokenizer)
    center_first = reasoning.make_example(lr, tiny[1].tokenizer, think_order="center_first")
    assert label_first.prompt == center_first.prompt and label_first.reply != center_first.reply
    assert "x = " in center_first.reply and " of " not in center_first.reply.split(".")[0]
    assert score.written_x(label_first.reply) == score.written_x(center_first.reply) and len(score.written_x(label_first.reply)) == 2
    labels = [region["label"] for region in lr["regions"]]
    assert score.x_copied(label_first.prompt, label_first.reply, labels) == [1.0, 1.0]
    assert score.x_copied(center_first.prompt, center_first.reply.replace("x = ", "x = 9", 1), labels) == [0.0, 1.0]
    other = next(r for r in rows if r["category"] != "left_right")
    assert reasoning.make_example(other, tiny[1].tokenizer, think_order="center_first") == reasoning.make_example(other, tiny[1].tokenizer)
    with pytest.raises(ValueError, match="think_order"):
        reasoning.reorder_think(lr["dtr_target"], "numbers_last")


def test_coords_copied_counts_the_detected_numbers_a_think_restates_in_place(tiny, rows):
    counted = 0
    for row in rows:
        ex = reasoning.make_example(row, tiny[1].tokenizer)
        copied = score.coords_copied(ex.prompt, ex.reply, ex.reply)
        assert all(copied)  # the true think copies all of them
        block = set(score._NUMBER.findall(ex.prompt[ex.prompt.index("<detect>"):]))
        first = next((m for m in score._NUMBER.finditer(ex.reply) if m.group() in block and m.group() != "9.99"), None)
        if copied and first is not None:  # the first restated coordinate changed: only it is wrong
            wrong = ex.reply[:first.start()] + "9.99" + ex.reply[first.end():]
            assert score.coords_copied(ex.prompt, ex.reply, wrong) == [0.0] + copied[1:]
            counted += 1
    assert counted >= 3
    lr = reasoning.make_example(next(r for r in rows if r["category"] == "left_right"), tiny[1].tokenizer)
    assert score.coords_copied(lr.prompt, lr.reply, "<think>no numbers</think>") == [0.0] * 4


def test_lookup_probe_trains_a_model_of_the_asked_depth_on_number_tasks(smoke_data, capsys):
    assert lookup_probe.main(["--data", str(smoke_data), "--layers", "2", "--steps", "2", "--batch-size", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["layers"] == 2 and line["steps"] == 2 and set(copying.NUMBER_TASKS) <= set(line["after"])
    assert lookup_probe.main(["--data", str(smoke_data), "--hidden", "100"]) == 2
    assert "hidden_size 100" in capsys.readouterr().err
