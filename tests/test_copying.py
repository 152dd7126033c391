"""The copy warm-up: examples whose replies can only come from the prompt, labels on the reply
only, a warm-up that raises copy accuracy, and `train_sft` running it once per model."""

from __future__ import annotations

import copy
import random
import re

import pytest
import torch

from workbench import model as M
from workbench.train import copying, sft
from workbench.train import examples as sft_examples


@pytest.fixture(scope="module")
def tiny(smoke_data):
    return sft.build_model(sft_examples.load_splits(smoke_data)["train"], sft.SFTSettings.from_profile("smoke"))


def fresh(tiny):
    """A copy of the fresh model with its own config (the warm-up writes into the config)."""
    model, processor = tiny
    return copy.deepcopy(model), processor


OPTION_LINE = {"letter_first": r"^([A-D])\. (.+)$", "letter_after": r"^- (.+) \(([A-D])\)$"}


@pytest.mark.parametrize("style", ["letter_first", "letter_after"])
def test_replies_can_only_be_copied_from_the_prompt(tiny, style):
    tokenizer = tiny[1].tokenizer
    words = copying.copy_words(tokenizer)
    rng = random.Random(0)
    examples = [copying.make_example(rng, words, tokenizer, option_style=style) for _ in range(200)]
    assert {ex.task for ex in examples} == {"repeat", "lookup"}
    letters = set()
    for ex in examples:
        user = ex.prompt.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        if ex.task == "repeat":
            assert ex.reply == user.removeprefix("Repeat:").strip()
            continue
        asked = re.fullmatch(r"(.+) \(([A-D])\)", ex.reply)
        lines = re.findall(OPTION_LINE[style], user, flags=re.M)
        options = dict(lines if style == "letter_first" else [(k, w) for w, k in lines])
        assert asked and options[asked.group(2)] == asked.group(1), (user, ex.reply)
        assert list(options) == list("ABCD"[: len(options)]) and 2 <= len(options) <= 4
        question = user.split("\n")[0]
        assert not any(w in question for k, w in options.items() if k != asked.group(2))  # no order cue
        letters.add(asked.group(2))
    assert letters == set("ABCD")


@pytest.mark.parametrize("style", ["letter_first", "letter_after"])
def test_labels_cover_the_reply_and_its_end_token_only(tiny, style):
    tokenizer = tiny[1].tokenizer
    rng = random.Random(1)
    words = copying.copy_words(tokenizer)
    examples = [copying.make_example(rng, words, tokenizer, option_style=style) for _ in range(6)]
    batch = copying.encode(tokenizer, examples)
    for i, ex in enumerate(examples):
        labelled = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tokenizer.decode(labelled) == ex.reply + "<|im_end|>"
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        assert tokenizer.decode(ids) == ex.prompt + ex.reply + "<|im_end|>"
        if ex.task == "lookup":  # the letter " (L)" ends the reply (three tokens: " (", "L", ")")
            assert tokenizer.decode(labelled[-4:-1]) == ex.reply[-4:]


def test_warm_up_teaches_copying_and_marks_the_model(tiny):
    model, processor = fresh(tiny)
    torch.manual_seed(0)
    result = copying.warm_up(model, processor.tokenizer, steps=60, batch_size=16, learning_rate=3e-3)
    before, after = result["accuracy_before"], result["accuracy_after"]
    assert after["token"] > before["token"] + 0.2, result
    assert result["final_loss"] < result["first_loss"]
    assert copying.warmed_steps(model) == 60 and copying.warmed_steps(tiny[0]) == 0
    with pytest.raises(ValueError, match="steps must be >= 1"):
        copying.warm_up(model, processor.tokenizer, steps=0)


def test_number_replies_are_copies_of_the_prompts_numbers(tiny):
    tokenizer = tiny[1].tokenizer
    words = copying.copy_words(tokenizer)
    rng = random.Random(2)
    examples = [copying.make_example(rng, words, tokenizer, numbers=0.5) for _ in range(300)]
    tasks = [ex.task for ex in examples]
    assert set(tasks) == {"repeat", "lookup", "numbers", "centers"}
    assert 0.4 < sum(t in copying.NUMBER_TASKS for t in tasks) / len(tasks) < 0.6
    for ex in examples:
        user = ex.prompt.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        if ex.task == "numbers":
            assert ex.reply == user.removeprefix("Repeat: ")
            assert all(re.fullmatch(r"-?\d+\.\d\d", v) for v in ex.reply.split())
        elif ex.task == "centers":
            # the block parses as DTR's detect lines do; every stated value is its label's coordinate
            boxes = dict((label, center) for center, _, label in re.findall(
                r'<3d_box center="([^"]+)">(\w+) \(([a-z]+ (?:box|point))\)</3d_box>', user))
            assert 2 <= len(boxes) <= 4 and len(boxes) == user.count("<3d_box")
            stated = re.findall(r"([xyz]) of ([a-z]+ (?:box|point)) = (-?\d+\.\d\d)", ex.reply)
            assert stated and ", ".join(f"{a} of {lab} = {v}" for a, lab, v in stated) == ex.reply
            for axis, label, value in stated:
                assert boxes[label].split(",")["xyz".index(axis)] == value, (user, ex.reply)
                assert f"{axis} of the {label}" in user.split("Look up: ")[1]
    # words only (the default) draws exactly the examples it drew before number tasks existed
    rng_a, rng_b = random.Random(3), random.Random(3)
    assert [copying.make_example(rng_a, words, tokenizer) for _ in range(20)] == \
        [copying.make_example(rng_b, words, tokenizer, numbers=0.0) for _ in range(20)]


def test_number_tasks_are_learned_and_scored_apart(tiny):
    model, processor = fresh(tiny)
    torch.manual_seed(0)
    result = copying.warm_up(model, processor.tokenizer, steps=60, batch_size=16, learning_rate=3e-3, numbers=0.5)
    before, after = result["accuracy_before"], result["accuracy_after"]
    assert set(copying.NUMBER_TASKS) <= set(after) and result["numbers"] == 0.5
    assert after["token"] > before["token"] + 0.2, result
    assert "numbers" not in copying.copy_accuracy(model, processor.tokenizer, n=8)
    with pytest.raises(ValueError, match="share of number tasks must be in \\[0, 1\\], got 1.5"):
        copying.warm_up(model, processor.tokenizer, steps=1, numbers=1.5)
    with pytest.raises(ValueError, match="copy_warmup_numbers must be in"):
        sft.SFTSettings(copy_warmup_numbers=-0.1)


def test_a_vocabulary_without_words_is_a_clear_error():
    class Letters:
        def get_vocab(self):
            return {c: i for i, c in enumerate("abc")}

        def convert_tokens_to_string(self, tokens):
            return "".join(tokens)

    with pytest.raises(ValueError, match="only 0 whole-word tokens"):
        copying.copy_words(Letters())


@pytest.mark.slow
def test_train_sft_warms_a_fresh_model_once(smoke_data, tmp_path):
    settings = sft.SFTSettings.from_profile("smoke", max_steps=1, eval_samples=0, report_to="none",
                                            disable_tqdm=True, per_device_train_batch_size=2)
    first = sft.train_sft(smoke_data, tmp_path / "a", settings)
    summary = sft.read_summary(first.out_dir)
    assert summary["copy_warmup"]["steps"] == settings.copy_warmup_steps > 0
    loaded, _ = M.load(first.out_dir)
    assert copying.warmed_steps(loaded) == settings.copy_warmup_steps  # saved in the config
    again = sft.train_sft(smoke_data, tmp_path / "b", settings, model_name_or_path=first.out_dir)
    assert sft.read_summary(again.out_dir)["copy_warmup"] is None
    off = sft.train_sft(smoke_data, tmp_path / "c", sft.SFTSettings.from_profile(
        "smoke", max_steps=1, eval_samples=0, report_to="none", disable_tqdm=True, copy_warmup_steps=0))
    assert sft.read_summary(off.out_dir)["copy_warmup"] is None
    with pytest.raises(ValueError, match="copy_warmup_steps must be >= 0"):
        sft.SFTSettings(copy_warmup_steps=-1)
