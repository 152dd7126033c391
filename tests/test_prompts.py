"""`prompts.to_messages`: paths, region tokens, options, targets, blend tasks, TRL compatibility."""

from __future__ import annotations

import copy
import re

import datasets
import pytest
from PIL import Image

from workbench import model as M
from workbench.tasks import prompts as P

LOR = "<think>Left of it.</think>\n<answer>A</answer>"
DTR = '<detect>Find 1 relevant objects:\n<3d_box center="0.10,0.20,1.50">cube (red box)</3d_box></detect>\n<think>x</think>\n<answer>A</answer>'


def make_row(task="region_qa", n_regions=1, choices=("left", "right"), size=(112, 112)) -> dict:
    regions = [
        {"label": "red box", "kind": "box", "object_index": 0, "bbox_2d": [0.0, 0.0, 56.0, 112.0]},
        {"label": "blue point", "kind": "point", "object_index": 1, "bbox_2d": [60.0, 60.0, 64.0, 64.0]},
    ][:n_regions]
    question = {
        0: "Is the red cube left of the blue ball?",
        1: "Is the object in the red box <region> left of the blue ball?",
        2: "Is the object in the red box <region> left of the one at the blue point <region>?",
    }[n_regions]
    if task not in ("region_qa", "general_qa"):
        question = {
            "ground_3d": "Where is the center of the red box <region>?",
            "ground_2d": "Box of the red box <region>?",
            "caption": "Describe the scene.",
        }[task]
        regions = regions[:1] if task != "caption" else []
    return {
        "id": "q1",
        "task": task,
        "image": Image.new("RGB", size, (120, 120, 120)),
        "regions": regions,
        "question": question,
        "choices": list(choices),
        "answer": "A",
        "lor_target": LOR if task in ("region_qa", "general_qa") else "plain target",
        "dtr_target": DTR if task in ("region_qa", "general_qa") else "plain target",
    }


@pytest.mark.parametrize(
    "n_regions, path, system",
    [
        (1, "auto", P.SYSTEM_DTR),
        (0, "auto", P.SYSTEM_LOR),
        (1, "lor", P.SYSTEM_LOR),
        (0, "dtr", P.SYSTEM_DTR),
    ],
)
def test_path_picks_the_system_prompt(n_regions, path, system):
    row = make_row("region_qa" if n_regions else "general_qa", n_regions)
    messages = P.to_messages(row, path)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": system}]
    assert messages[1]["content"][0] == {"type": "image"}


@pytest.mark.parametrize("tags", [("<think>", "</think>", "<answer>", "</answer>")])
def test_system_prompts_state_the_exact_tags(tags):
    for tag in tags:
        assert tag in P.SYSTEM_LOR and tag in P.SYSTEM_DTR
    for tag in ("<detect>", "</detect>", '<3d_box center="x,y,z">', "</3d_box>", "Find N relevant objects:"):
        assert tag in P.SYSTEM_DTR and tag not in P.SYSTEM_LOR
    assert "meters" in P.SYSTEM_DTR and "camera" in P.SYSTEM_DTR


@pytest.mark.parametrize("task, path", [("region_qa", "lor"), ("region_qa", "dtr"), ("caption", "auto")])
def test_short_system_prompts_tell_the_paths_apart(task, path):
    row = make_row(task, 1)
    short = P.to_messages(row, path, system="short", with_target=True)
    full = P.to_messages(row, path, with_target=True)
    kind = path if task == "region_qa" else "plain"
    assert short[0]["content"][0]["text"] == P.SYSTEM_PROMPTS_SHORT[kind] != full[0]["content"][0]["text"]
    assert short[1:] == full[1:]  # only the system prompt changes
    assert len(set(P.SYSTEM_PROMPTS_SHORT.values())) == 3
    with pytest.raises(ValueError, match="'terse' is not one of"):
        P.to_messages(row, path, system="terse")


def test_region_tokens_carry_the_box_and_can_be_plain():
    row = make_row(n_regions=2)
    text = P.to_messages(row, "dtr", region_coords=True)[1]["content"][1]["text"]
    coded = re.findall(r"<region>((?:<\|loc_\d+\|>){4})", text)
    assert coded == ["<|loc_0|><|loc_0|><|loc_15|><|loc_31|>", "<|loc_17|><|loc_17|><|loc_18|><|loc_18|>"]
    plain = P.to_messages(row, "dtr", region_coords=False)[1]["content"][1]["text"]
    assert plain.count("<region>") == 2 and "<|loc_" not in plain
    assert plain.startswith(
        "Is the object in the red box <region> left of the one at the blue point <region>?"
    )


def test_choices_render_as_lettered_lines_and_numbers_have_none():
    text = P.to_messages(make_row(choices=("left", "right", "same")), "lor")[1]["content"][1]["text"]
    assert text.endswith("?\nA. left\nB. right\nC. same")
    assert P.to_messages(make_row(choices=()), "lor")[1]["content"][1]["text"].endswith("?")


def test_letter_after_options_end_as_a_choice_trace_ends():
    row = make_row(choices=("left", "in front", "same"))
    text = P.to_messages(row, "lor", option_style="letter_after")[1]["content"][1]["text"]
    assert text.endswith("?\n- left (A)\n- in front (B)\n- same (C)")
    assert "so the answer is in front (B)" .endswith(text.splitlines()[2].removeprefix("-"))
    assert P.to_messages(make_row(choices=()), "lor", option_style="letter_after")[1]["content"][1]["text"].endswith("?")
    with pytest.raises(ValueError, match="option style 'letters' is not one of"):
        P.to_messages(row, "lor", option_style="letters")


@pytest.mark.parametrize(
    "task, path, target",
    [
        ("region_qa", "dtr", DTR),
        ("region_qa", "lor", LOR),
        ("general_qa", "auto", LOR),
        ("ground_3d", "dtr", "plain target"),
        ("caption", "lor", "plain target"),
    ],
)
def test_with_target_appends_the_path_target(task, path, target):
    row = make_row(task, 0 if task in ("general_qa", "caption") else 1)
    messages = P.to_messages(row, path, with_target=True)
    assert messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": target}]}
    if task in ("ground_3d", "caption"):
        assert messages[0]["content"][0]["text"] == P.SYSTEM_PLAIN


def test_embed_image_puts_the_pil_image_in_the_part():
    row = make_row()
    part = P.to_messages(row, "dtr", embed_image=True)[1]["content"][0]
    assert part["type"] == "image" and part["image"] is row["image"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(question="no token here"), "0 <region> tokens but 1 regions"),
        (lambda r: r["regions"][0].update(bbox_2d=[0, 0, 200, 10]), "region 0 .*outside"),
        (lambda r: r.update(image=None), "need the row's image"),
        (lambda r: r.update(task="vqa"), "task 'vqa'"),
    ],
)
def test_bad_rows_are_clear_errors(change, message):
    row = make_row()
    change(row)
    with pytest.raises(ValueError, match=message):
        P.to_messages(row, "dtr")


def test_bad_path_is_a_clear_error():
    with pytest.raises(ValueError, match="path 'both'"):
        P.to_messages(make_row(), "both")


def test_messages_survive_arrow_and_render_through_the_processor():
    """A `datasets` column of messages (TRL's format) and the chat template give one image block,
    location tokens, and an assistant mask covering exactly the target and <|im_end|>."""
    rows = [make_row(n_regions=1), make_row("general_qa", 0)]
    ds = datasets.Dataset.from_list(
        [{"messages": P.to_messages(r, "auto", with_target=True), "image": r["image"]} for r in rows]
    )
    from trl.data_utils import prepare_multimodal_messages

    tokenizer = M.train_tokenizer(P.corpus(copy.deepcopy(rows)), vocab_size=300)
    processor = M.make_processor(tokenizer, M.ModelSettings.from_profile("smoke"))
    examples = [prepare_multimodal_messages(ex["messages"], images=[ex["image"]]) for ex in ds]
    out = processor.apply_chat_template(
        examples,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=True,
        processor_kwargs={"padding": True, "padding_side": "right"},
    )
    text = tokenizer.decode(out["input_ids"][0])
    assert text.count("<|vision_start|>") == 1 and text.count("<|image_pad|>") == 64
    assert "<region><|loc_0|><|loc_0|><|loc_15|><|loc_31|>" in text
    for i, row in enumerate(rows):
        target = tokenizer.decode(out["input_ids"][i][out["assistant_masks"][i].bool()])
        assert target == P.target_of(row, "auto") + "<|im_end|>"


def test_corpus_has_system_prompts_questions_and_targets():
    texts = list(P.corpus([make_row(n_regions=2)]))
    assert texts[:3] == [P.SYSTEM_LOR, P.SYSTEM_DTR, P.SYSTEM_PLAIN]
    assert texts[3:6] == [P.SYSTEM_PROMPTS_SHORT[k] for k in ("lor", "dtr", "plain")]
    assert texts[6:8] == [P.SYSTEM_LOR, P.SYSTEM_DTR]  # the row's own prompts, in the style asked for
    assert list(P.corpus([make_row(n_regions=2)], system="short"))[6:8] == [
        P.SYSTEM_PROMPTS_SHORT["lor"], P.SYSTEM_PROMPTS_SHORT["dtr"]]
    assert any("<region>" in t and "A. left" in t for t in texts) and LOR in texts and DTR in texts
