"""The built-in model's decode loop (`workbench.model.decoding`): `generate` gives the same tokens
as Hugging Face's loop for greedy decoding (regions, depth, left padding, repeated prompts, an
image-free batch), sampling is seeded, and calls the loop does not support go to Hugging Face."""

from __future__ import annotations

import copy

import pytest
import torch
from test_depth import depth_row
from test_model import make_row

from workbench import model as M
from workbench.model import decoding
from workbench.tasks import prompts as P


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = [make_row(i, n, numeric=bool(i % 2)) for i, n in enumerate([2, 1, 0, 2])]
    model, processor = M.build_tiny(list(P.corpus(rows)) * 10, M.ModelSettings.from_profile("smoke"))
    model.eval()
    torch.nn.init.normal_(model.model.depth_embed.net[-1].weight, std=0.5)  # a live embedding
    with torch.no_grad():  # sharp attention and logits: a wrong position or cache entry changes tokens
        for layer in model.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(6.0)
            layer.self_attn.k_proj.weight.mul_(6.0)
        model.lm_head.weight.mul_(4.0)
    yield model, processor
    torch.set_num_threads(threads)


def both(model, batch, **gen):
    """(Hugging Face's tokens, the loop's tokens) for one call."""
    with torch.no_grad():
        decoding.ENABLED = False
        try:
            torch.manual_seed(0)
            reference = model.generate(**batch, **gen)
        finally:
            decoding.ENABLED = True
        torch.manual_seed(0)
        return reference, model.generate(**batch, **gen)


def test_greedy_tokens_match_hugging_face_with_regions_depth_padding_and_repeats(tiny):
    model, processor = tiny
    rows = [depth_row(0, box_z=1.5), make_row(1, 1), depth_row(2, box_z=3.0), make_row(3, 2, numeric=True)]
    rows = [r for r in rows for _ in range(3)]  # GRPO's repeated prompts: one prefill each
    for path in ("dtr", "lor"):
        batch = M.model_inputs(processor, rows, path, True, depth=True)
        reference, fast = both(model, batch, max_new_tokens=24, do_sample=False)
        assert reference.shape == fast.shape and torch.equal(reference, fast), path


def test_a_batch_without_images_and_max_length_match(tiny):
    model, processor = tiny
    text = processor.tokenizer(["hello there", "a longer prompt than the other"], return_tensors="pt",
                               padding=True, padding_side="left")
    batch = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}
    reference, fast = both(model, batch, max_length=batch["input_ids"].shape[1] + 9, do_sample=False)
    assert torch.equal(reference, fast)


def test_sampling_is_seeded_and_stops_at_the_end_token(tiny):
    model, processor = tiny
    batch = M.model_inputs(processor, [make_row(0), make_row(0)], "dtr", True)
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=True, temperature=0.7, top_p=0.99, max_new_tokens=30)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        with torch.no_grad():
            outs.append(model.generate(**batch, generation_config=config))
    assert torch.equal(outs[0], outs[1])
    eos, pad = config.eos_token_id, config.pad_token_id
    for row in outs[0][:, batch["input_ids"].shape[1]:].tolist():
        if eos in row:  # everything after the first end token is padding
            assert set(row[row.index(eos) + 1:]) <= {pad}


def test_calls_the_loop_does_not_support_go_to_hugging_face(tiny, monkeypatch):
    model, processor = tiny
    batch = M.model_inputs(processor, [make_row(0)], "dtr", True)
    called = []
    monkeypatch.setattr(decoding, "decode", lambda *a, **k: called.append(1))
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
        assert out.scores and not called
        model.generate(**batch, max_new_tokens=4, num_beams=2)
        assert not called
        model.generate(**batch, max_new_tokens=4)
    assert called == [1]


def test_fast_top_p_keeps_the_tokens_transformers_keeps():
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(0)
    for top_p, scale in ((0.99, 4.0), (0.9, 2.0), (0.5, 1.0), (0.999, 0.1)):  # the last one sorts everything
        scores = torch.randn(12, 700) * scale
        scores[:, :5] = float("-inf")  # suppressed tokens
        reference = TopPLogitsWarper(top_p)(None, scores.clone())
        fast = decoding.FastTopP(top_p)(None, scores.clone())
        assert torch.equal(torch.isinf(reference), torch.isinf(fast)), top_p
