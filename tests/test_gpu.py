"""The GPU tier (marked `gpu`; skipped where torch sees no CUDA GPU, see conftest.py): what only a
GPU exercises, on the same smoke-sized models and data as the CPU tests. `scripts/gpu_check.sh`
runs it on a GPU machine.

- the built-in model in bf16 on CUDA: forward close to float32, `generate`;
- one SFT step and one GRPO step on CUDA in bf16 mixed precision: finite loss, weights moved;
- LoRA on a tiny random Qwen2.5-VL (the stand-in for a real one) in bf16 with the depth add-on;
- vLLM colocated generation inside GRPO, where vllm imports.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny_vlm import plain_checkpoint
from transformers import TrainerCallback

from workbench import model as M
from workbench.dataset import load_dataset_dir
from workbench.train import examples as sft_examples
from workbench.train import grpo, sft
from workbench.train.grpo_settings import GRPOSettings

pytestmark = pytest.mark.gpu

SFT_FAST = dict(max_steps=1, warmup_steps=0, per_device_train_batch_size=8, eval_samples=0, report_to="none",
                disable_tqdm=True, logging_steps=1)
GRPO_FAST = dict(max_steps=1, max_completion_length=12, per_device_train_batch_size=5, report_to="none",
                 max_refill_tries=0, max_prompts=12)
"""Smoke overrides: one optimizer step of a few examples (GRPO: one prompt group)."""


@pytest.fixture(scope="module")
def splits(smoke_data):
    return load_dataset_dir(smoke_data)


@pytest.fixture(scope="module")
def tiny(splits):
    """(model, processor): a fresh built-in model of the smoke profile, float32 on the CPU; tests copy it."""
    return sft.build_model(splits["train"], sft.SFTSettings.from_profile("smoke", **SFT_FAST))


@pytest.fixture(scope="module")
def rows(splits):
    """Four val questions, with depth (what SFT's closing check asks)."""
    return sft_examples.qa_rows(splits["val"], 4)


def to_cuda(batch: dict) -> dict:
    return {k: v.to("cuda") if hasattr(v, "to") else v for k, v in batch.items()}


def alternating(completions, **columns) -> list[float]:
    """0, 1, 0, ... in every group (TRL repeats a prompt `num_generations` times in a row): a group
    mean of 0.4 or 0.6, kept by dynamic sampling, and non-zero advantages whatever the model writes."""
    return [float(i % 2) for i in range(len(completions))]


class PolicyPlacement(TrainerCallback):
    """Records where the policy's weights are and whether bf16 is on, at every step."""

    def __init__(self):
        self.devices: set[str] = set()
        self.bf16: bool | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.devices.add(next(model.parameters()).device.type)
        self.bf16 = args.bf16


# --------------------------------------------------------------------------- the built-in model


@torch.no_grad()
def test_bf16_forward_and_generate_of_the_built_in_model_on_cuda(tiny, rows):
    model, processor = tiny
    net = copy.deepcopy(model).to("cuda").eval()
    assert M.uses_depth(net)
    batch = to_cuda(M.model_inputs(processor, rows, "dtr", **M.prompt_options(net), depth=True))
    reference = net(**batch).logits  # (B, T, V) float32
    net.to(torch.bfloat16)
    logits = net(**batch).logits
    assert logits.device.type == "cuda" and logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
    similarity = torch.nn.functional.cosine_similarity(logits.float().flatten(), reference.flatten(), dim=0)
    assert similarity > 0.99, f"bf16 logits drift from float32 ones (cosine {similarity:.4f})"

    new = 8
    ids = net.generate(**batch, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       pad_token_id=processor.tokenizer.pad_token_id)
    assert ids.device.type == "cuda" and ids.shape == (len(rows), batch["input_ids"].shape[1] + new)
    texts = M.generate(net, processor, rows, "dtr", max_new_tokens=new)  # the path evaluation takes
    assert len(texts) == len(rows) and all(isinstance(t, str) for t in texts)


# --------------------------------------------------------------------------- training on CUDA


def test_one_sft_step_on_cuda_moves_every_trainable_parameter(tiny, splits, tmp_path):
    model, processor = copy.deepcopy(tiny[0]), tiny[1]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    settings = sft.SFTSettings.from_profile("smoke", **SFT_FAST)
    train = sft_examples.training_examples(splits["train"], settings.blend, max_examples=8, seed=0,
                                           depth=M.uses_depth(model), **M.prompt_options(model))
    trainer = sft.build_trainer(model, processor, train, tmp_path, settings)
    trainer.train()
    assert trainer.args.bf16, "bf16 mixed precision is off on a GPU that supports it"
    assert next(model.parameters()).device.type == "cuda"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach().cpu())]
    assert not unchanged, f"parameters not updated by one step: {unchanged[:5]}"


def test_one_grpo_step_on_cuda_moves_the_policy(tiny, smoke_data, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path / "sft")
    processor.save_pretrained(tmp_path / "sft")
    placement = PolicyPlacement()
    settings = GRPOSettings.from_profile("smoke", **GRPO_FAST)
    result = grpo.train_grpo(tmp_path / "sft", smoke_data, tmp_path / "grpo", settings, callbacks=[placement],
                             reward_funcs=([alternating], [1.0]))
    assert result["global_step"] == 1
    assert placement.devices == {"cuda"} and placement.bf16
    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    before, _ = M.load(tmp_path / "sft")
    after, _ = M.load(tmp_path / "grpo")
    changed = [n for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters())
               if not torch.equal(p, q)]
    assert "lm_head.weight" in changed, f"GRPO did not move the LM head (changed: {changed[:5]})"


# --------------------------------------------------------------------------- a pretrained VLM


def _vocabulary(rows) -> list[str]:
    return [text for row in rows for text in (row["question"], row["lor_target"], row["dtr_target"])]


def test_lora_on_a_tiny_qwen2_5_vl_trains_in_bf16_on_cuda(rows, tmp_path):
    """What SFT of a real Qwen2.5-VL does on a GPU: weights in bf16, LoRA adapters, the depth add-on
    trained fully next to them."""
    plain_checkpoint(tmp_path, _vocabulary(rows), vocab_extra=8)
    model, processor = M.load(tmp_path, lora=M.LoraSettings(r=4, alpha=8), dtype=torch.bfloat16, device="cuda",
                              depth_embedding="relative")
    assert M.uses_depth(model)
    weight = model.get_input_embeddings().weight
    assert weight.device.type == "cuda" and weight.dtype == torch.bfloat16
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    adapters = [n for n in trainable if "lora_B" in n]
    depth = [n for n in trainable if "depth_embed" in n]
    assert adapters and depth, sorted(trainable)[:10]
    before = {n: trainable[n].detach().clone() for n in adapters}

    batch = to_cuda(M.model_inputs(processor, rows, "dtr", **M.prompt_options(model), depth=True))
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    out.loss.backward()
    for name in adapters + depth:
        grad = trainable[name].grad
        assert grad is not None and torch.isfinite(grad).all(), f"{name}: no finite gradient"
    assert any(trainable[n].grad.abs().sum() > 0 for n in adapters), "the LoRA adapters got zero gradients"
    assert any(trainable[n].grad.abs().sum() > 0 for n in depth), "the depth add-on got zero gradients"
    torch.optim.AdamW(trainable.values(), lr=1e-3).step()
    assert any(not torch.equal(before[n], trainable[n]) for n in adapters), "one step left every adapter as it was"


def test_vllm_colocated_generation_drives_a_grpo_step(rows, smoke_data, tmp_path, monkeypatch):
    """GRPO of a pretrained VLM with `use_vllm` (the `gpu` profile): completions come from vLLM in
    the training process (colocate), the LoRA policy is trained and saved merged. Last in this file:
    vLLM keeps its share of GPU memory for the rest of the process."""
    try:
        from vllm import LLM
    except Exception as err:  # not installed (it is not in requirements/lock.txt), or broken
        pytest.skip(f"vllm does not import here: {type(err).__name__}: {err}")
    # head size 64 for vLLM's attention kernels; spare vocabulary rows, so that vLLM (reading the
    # checkpoint) and the policy (with <region> added) have embeddings of one size, as for a hub Qwen2.5-VL
    plain_checkpoint(tmp_path / "qwen", _vocabulary(rows), vocab_extra=8, head_dim=64)
    calls = []
    original = LLM.generate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LLM, "generate", counted)
    settings = GRPOSettings.from_profile("smoke", **GRPO_FAST, use_vllm=True, vllm_mode="colocate")
    result = grpo.train_grpo(tmp_path / "qwen", smoke_data, tmp_path / "grpo", settings,
                             reward_funcs=([alternating], [1.0]))
    assert calls, "GRPO did not generate with vLLM"
    assert result["global_step"] == 1
    losses = [entry["loss"] for entry in result["log_history"] if "loss" in entry]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    merged, _ = M.load(tmp_path / "grpo")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
