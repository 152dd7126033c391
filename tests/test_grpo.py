"""GRPO (`workbench.train.grpo`, `dynamic_sampling`, `alarms`): settings, the dynamic-sampling filter and
batch merge, alarms, prompts, and smoke training on the tiny model (weights move, refill, resume
after a kill, two processes)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trl.trainer.utils import split_pixel_values_by_grid

from workbench import model as model_mod
from workbench import rundir
from workbench.cli import main
from workbench.io import read_jsonl
from workbench.settings import parse_set
from workbench.tasks import prompts
from workbench.train import grpo
from workbench.train.alarms import AlarmCallback
from workbench.train.dynamic_sampling import choose_groups, merge_rows
from workbench.train.grpo_settings import GRPOSettings

FAST = dict(
    max_completion_length=12,
    per_device_train_batch_size=5,
    report_to="none",
    max_refill_tries=0,
    max_prompts=12,
)
"""Smoke overrides that keep a training test to seconds: one prompt group per step, no refill
(an untrained model scores 0 on every group, so the fallback fills the batch at once)."""


@pytest.fixture(scope="module")
def sft_dir(smoke_data, tmp_path_factory):
    """A freshly initialised built-in model (smoke sizes) saved like an SFT folder."""
    from workbench.dataset import load_dataset_dir

    train = load_dataset_dir(smoke_data)["train"]
    model, processor = model_mod.build_tiny(
        prompts.corpus(train), model_mod.ModelSettings.from_profile("smoke")
    )
    out = tmp_path_factory.mktemp("grpo") / "sft"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------- settings


def test_default_shape_is_the_papers_recipe():
    s = GRPOSettings()
    assert (s.num_generations, s.temperature, s.top_p, s.beta) == (5, 1.0, 0.99, 0.01)
    assert (s.epsilon, s.epsilon_high, s.loss_type) == (0.2, 0.3, "dapo")
    assert (s.keep_low, s.keep_high, s.paths) == (0.2, 0.99, "joint")
    assert s.pretrained_learning_rate == 1e-6 and s.learning_rate > 1e-5
    for name in grpo.PROFILES:
        p = GRPOSettings.from_profile(name)
        assert p.num_generations == 5 and p.beta == 0.01 and p.loss_type == "dapo", name


def test_grpo_config_maps_trl_names_and_learning_rates(tmp_path):
    s = GRPOSettings.from_profile("smoke", report_to="none")
    tiny = grpo.grpo_config(s, tmp_path, pretrained=False, use_vllm=False, suppress_tokens=[4, 5])
    big = grpo.grpo_config(s, tmp_path, pretrained=True, use_vllm=False)
    assert (tiny.num_generations, tiny.beta, tiny.epsilon, tiny.epsilon_high) == (5, 0.01, 0.2, 0.3)
    assert (tiny.loss_type, tiny.top_p, tiny.temperature) == ("dapo", 0.99, 1.0)
    assert tiny.learning_rate == s.learning_rate and big.learning_rate == s.pretrained_learning_rate
    assert tiny.generation_kwargs == {"suppress_tokens": [4, 5]} and big.generation_kwargs is None
    assert tiny.generation_batch_size == s.per_device_train_batch_size  # one process, no accumulation
    assert not tiny.activation_checkpointing and not tiny.use_vllm


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"paths": "both"}, "paths must be one of"),
        ({"num_generations": 1}, "at least 2"),
        ({"per_device_train_batch_size": 7}, "multiple of num_generations"),
        ({"keep_low": 0.9, "keep_high": 0.5}, "keep_low < keep_high"),
        ({"top_p": 0.0}, "top_p"),
        ({"not_a_field": 1}, "unknown GRPOSettings fields"),
        ({"max_steps": -3}, "max_steps must be a positive number of steps or -1, got -3"),
        ({"max_steps": 0}, "max_steps must be a positive number of steps or -1, got 0"),
        ({"max_steps": -1}, "GRPO has no epochs here"),
        ({"save_steps": 0}, "save_steps must be a whole number >= 1, got 0"),
        ({"logging_steps": -2}, "logging_steps must be a whole number >= 1"),
    ],
)
def test_bad_settings_name_the_bad_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        GRPOSettings.from_profile("smoke", **overrides)
    with pytest.raises(ValueError, match="unknown profile"):
        GRPOSettings.from_profile("huge")


def test_parse_overrides_types_and_errors():
    assert parse_set(GRPOSettings, ["num_generations=4", "keep_low=0.1", "use_lora=no", "bf16=none"]) == {
        "num_generations": 4,
        "keep_low": 0.1,
        "use_lora": False,
        "bf16": None,
    }
    for bad in ("beta", "nope=1", "use_lora=maybe"):
        with pytest.raises(ValueError, match="--set"):
            parse_set(GRPOSettings, [bad])


# ----------------------------------------------------------------------------- dynamic sampling


@pytest.mark.parametrize(
    "means, stds, need, chosen, fallback",
    [
        ([0.0, 1.0, 0.5], [0.0, 0.0, 0.3], 1, [2], 0),  # degenerate groups dropped, 0.5 kept
        ([0.2, 0.99, 0.21, 0.98], [0.1] * 4, 2, [2, 3], 0),  # the interval is open at both ends
        ([0.5, 0.6, 0.7], [0.1] * 3, 2, [0, 1], 0),  # first kept groups in generation order
        ([0.0, 1.0, 0.1, 0.5], [0.0, 0.0, 0.2, 0.4], 2, [2, 3], 1),  # fallback: largest spread
        ([0.0, float("nan"), 0.05], [0.0, float("nan"), 0.1], 2, [0, 2], 2),  # nan never kept nor preferred
    ],
)
def test_choose_groups(means, stds, need, chosen, fallback):
    assert choose_groups(means, stds, need) == (chosen, fallback)


def test_choose_groups_needs_enough_groups():
    with pytest.raises(ValueError, match="need 3 groups"):
        choose_groups([0.5, 0.5], [0.1, 0.1], need=3)


def _generation_output(n: int, prompt_w: int, completion_w: int, seed: int) -> dict:
    """A fake TRL generation output of a Qwen-style VLM: one 2x2-patch image per row."""
    g = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(10, 99, (n, prompt_w), generator=g)
    completion_ids = torch.randint(10, 99, (n, completion_w), generator=g)
    grid = torch.tensor([[1, 2, 2]] * n)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones(n, prompt_w, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": torch.ones(n, completion_w, dtype=torch.long),
        "advantages": torch.randn(n, generator=g),
        "ref_per_token_logps": torch.randn(n, completion_w, generator=g),
        "mm_token_type_ids": torch.cat([torch.ones(n, prompt_w), torch.zeros(n, completion_w)], 1).long(),
        "pixel_values": torch.randn(4 * n, 3, generator=g),  # 4 patches per image
        "image_grid_thw": grid,
        "num_images": [1] * n,
        "num_items_in_batch": torch.tensor(123),
    }


def test_merge_rows_repads_prompts_left_completions_right_and_keeps_images():
    a, b = _generation_output(2, 3, 2, seed=0), _generation_output(2, 4, 3, seed=1)
    parts = [split_pixel_values_by_grid(a), split_pixel_values_by_grid(b)]
    out = merge_rows(parts, [(1, 0), (0, 1)], pad_token_id=0)
    assert out["prompt_ids"].shape == (2, 4) and out["completion_ids"].shape == (2, 3)
    assert torch.equal(out["prompt_ids"][0], b["prompt_ids"][0])
    assert torch.equal(out["prompt_ids"][1], torch.cat([torch.tensor([0]), a["prompt_ids"][1]]))
    assert out["prompt_mask"][1].tolist() == [0, 1, 1, 1]
    assert torch.equal(out["completion_ids"][1], torch.cat([a["completion_ids"][1], torch.tensor([0])]))
    assert out["completion_mask"][1].tolist() == [1, 1, 0]
    assert (
        out["ref_per_token_logps"][1, 2] == 0
        and out["ref_per_token_logps"][1, 0] == a["ref_per_token_logps"][1, 0]
    )
    # (B, P + C): prompt part padded on the left, completion part on the right
    assert out["mm_token_type_ids"][1].tolist() == [0, 1, 1, 1, 0, 0, 0]
    assert out["mm_token_type_ids"].shape == (2, 7)
    assert torch.equal(out["advantages"], torch.stack([b["advantages"][0], a["advantages"][1]]))
    assert torch.equal(out["pixel_values"], torch.cat([b["pixel_values"][0:4], a["pixel_values"][4:8]]))
    assert out["image_grid_thw"].shape == (2, 3) and out["num_images"] == [1, 1]
    assert "num_items_in_batch" not in out  # counted over all processes by the trainer


def test_merge_rows_refuses_what_it_cannot_rebatch():
    a = _generation_output(2, 3, 2, seed=0)
    a["mystery"] = torch.zeros(7, 2)
    with pytest.raises(ValueError, match="mystery"):
        merge_rows([split_pixel_values_by_grid(a)], [(0, 0)], pad_token_id=0)


# ----------------------------------------------------------------------------- alarms


def _logs(**values):
    return {
        "completions/mean_length": 50.0,
        "frac_reward_zero_std": 0.1,
        "completions/clipped_ratio": 0.0,
        **values,
    }


def test_alarms_fire_on_crafted_log_sequences(tmp_path):
    alarms = AlarmCallback(window=3, output_dir=tmp_path)
    kinds = lambda raised: [a["kind"] for a in raised]  # noqa: E731
    # format saturated while accuracy is flat: fires once the window is full, not before
    flat = [_logs(**{"rewards/format/all": 0.97, "rewards/accuracy/all": a}) for a in (0.30, 0.305, 0.30)]
    assert kinds(alarms.check(flat[0])) == [] and kinds(alarms.check(flat[1])) == []
    assert kinds(alarms.check(flat[2])) == ["format_saturated"]
    assert kinds(alarms.check(flat[2])) == []  # at most once per window
    # length collapse and explosion, zero-variance groups
    assert kinds(alarms.check(_logs(**{"completions/mean_length": 10.0}))) == ["length_collapse"]
    assert "length_explode" in kinds(alarms.check(_logs(**{"completions/clipped_ratio": 0.9})))
    assert "zero_variance" in kinds(alarms.check(_logs(frac_reward_zero_std=0.95)))
    # most answers are one letter that the truths do not favour (the g3 run: 97% A, truth 52% A),
    # judged over a full window
    skewed = {"answers/top_letter_share": 0.97, "answers/top_letter_truth_share": 0.52}
    assert kinds(alarms.check(_logs(**skewed))) == kinds(alarms.check(_logs(**skewed))) == []
    assert kinds(alarms.check(_logs(**skewed))) == ["answer_collapse"]
    written = read_jsonl(tmp_path / "alarms.jsonl")
    assert [a["kind"] for a in written] == [a["kind"] for a in alarms.alarms]
    assert {"format_saturated", "length_collapse", "length_explode", "zero_variance", "answer_collapse"} <= set(
        kinds(written)
    )


@pytest.mark.parametrize(
    "top, truth, fires",
    [(0.97, 0.52, True), (0.85, 0.80, False), (0.70, 0.30, False), (0.81, 0.61, True), (0.81, 0.62, False)],
)
def test_answer_collapse_needs_a_skew_the_truths_do_not_have(top, truth, fires):
    alarms = AlarmCallback(window=3, answer_collapse=0.8, answer_gap=0.2)
    logs = _logs(**{"answers/top_letter_share": top, "answers/top_letter_truth_share": truth})
    raised = [a["kind"] for n in range(3) for a in alarms.check(logs)]
    assert raised == (["answer_collapse"] if fires else [])


def test_answer_collapse_ignores_one_noisy_step():
    """One step of the default profile has two or three choice questions: 100% one letter that
    is wrong happens by chance and must not raise the alarm on its own."""
    alarms = AlarmCallback(window=3)
    steps = [(1.0, 0.0), (0.6, 0.5), (0.5, 0.5), (0.8, 0.8), (1.0, 0.0)]
    for top, truth in steps:
        logs = _logs(**{"answers/top_letter_share": top, "answers/top_letter_truth_share": truth})
        assert alarms.check(logs) == []


def test_letter_skew_counts_the_answers_of_choice_completions():
    from workbench.train.dynamic_sampling import _answer_letter, letter_skew

    completions = ["<think>t</think><answer>(a)</answer>", "<answer>A</answer>", "no answer", "<answer>B</answer>"]
    letters = [_answer_letter(c) for c in completions]
    assert letters == ["A", "A", None, "B"]
    assert letter_skew(letters, ["B", "A", "A", "B"]) == (2 / 3, 1 / 3)
    assert letter_skew([None, None], ["A", "B"]) is None


def test_scoring_logs_the_letter_skew_of_choice_rows():
    from types import SimpleNamespace

    from workbench.train.dynamic_sampling import DynamicSamplingGRPOTrainer

    logged = {}
    trainer = SimpleNamespace(ds_settings=GRPOSettings(), num_generations=2,
                              _log_metric=lambda name, value: logged.__setitem__(name, value))
    rows = [{"answer": a, "answer_type": t, "path": "lor", "centers": None}
            for a, t in (("B", "choice"), ("B", "choice"), ("A", "choice"), ("1.50", "number"))]
    completions = ["<think>x</think>\n<answer>A</answer>"] * 3 + ["<think>x</think>\n<answer>A</answer>"]
    DynamicSamplingGRPOTrainer._score_local(trainer, rows, completions)
    assert logged["answers/top_letter_share"] == 1.0  # the numeric row is not a letter answer
    assert logged["answers/top_letter_truth_share"] == pytest.approx(1 / 3)


def test_alarms_stay_quiet_on_a_healthy_run():
    alarms = AlarmCallback(window=3)
    for step, acc in enumerate((0.2, 0.3, 0.4, 0.5, 0.6)):
        logs = _logs(
            **{"rewards/format/all": 0.98, "rewards/accuracy/all": acc, "completions/mean_length": 50 - step,
               "answers/top_letter_share": 0.6, "answers/top_letter_truth_share": 0.55}
        )
        assert alarms.check(logs, step) == []
    summary = {"train_runtime": 3.0, "train_loss": 0.1}  # the end-of-run summary is no metric log
    assert alarms.check(summary) == [] and alarms.alarms == []


def test_alarms_of_a_resumed_run_remember_its_start():
    from types import SimpleNamespace

    alarms = AlarmCallback(window=3)
    state = SimpleNamespace(log_history=[_logs(**{"completions/mean_length": 100.0}), {"train_runtime": 1.0}])
    alarms.on_train_begin(None, state, None)
    assert [a["kind"] for a in alarms.check(_logs(**{"completions/mean_length": 20.0}))] == [
        "length_collapse"
    ]


# ----------------------------------------------------------------------------- prompts


def test_doctests():
    import doctest

    assert doctest.testmod(grpo).failed == 0


def test_prompt_dataset_keeps_qa_rows_and_sets_paths(smoke_data):
    from workbench.dataset import load_dataset_dir

    train = load_dataset_dir(smoke_data)["train"]
    qa = [r for r in train.select_columns(["task", "path"]) if r["task"] in ("region_qa", "general_qa")]
    joint = grpo.prompt_dataset(train, GRPOSettings(), region_coords=True)
    # joint: a region question once per path, a general one on its own path
    expected = [(r["task"], p) for r in qa for p in (("lor", "dtr") if r["task"] == "region_qa" else (r["path"],))]
    assert list(zip(joint["task"], joint["path"])) == expected
    assert {"lor", "dtr"} <= set(joint["path"]) and set(joint["task"]) == {"region_qa", "general_qa"}
    first = joint["task"].index("region_qa")
    pair = list(joint.select([first, first + 1]))
    assert pair[0]["id"] == pair[1]["id"] and [p["path"] for p in pair] == ["lor", "dtr"]
    assert pair[0]["prompt"][0]["content"][0]["text"] == prompts.SYSTEM_LOR
    assert "prompt" in joint.column_names and "depth" not in joint.column_names
    row = next(r for r in joint if r["task"] == "region_qa" and r["path"] == "dtr")
    system, user = row["prompt"][0]["content"][0]["text"], row["prompt"][1]["content"]
    assert system == prompts.SYSTEM_DTR and user[0]["type"] == "image" and "<|loc_" in user[1]["text"]
    forced = grpo.prompt_dataset(train, GRPOSettings(paths="lor", max_prompts=5), region_coords=False)
    assert len(forced) == 5 and set(forced["path"]) == {"lor"}
    assert all(r["prompt"][0]["content"][0]["text"] == prompts.SYSTEM_LOR for r in forced)
    assert not any("<|loc_" in r["prompt"][1]["content"][1]["text"] for r in forced)
    with pytest.raises(ValueError, match="lacks the columns"):
        grpo.prompt_dataset(train.remove_columns("answer"), GRPOSettings(), region_coords=True)


# ----------------------------------------------------------------------------- training


class _ToyReward:
    """Zero for every completion of the first generation batch (so dynamic sampling must refill),
    then 0, 0.25, ..., 1 by position in the group: mean 0.5, so the group is kept and its
    advantages are non-zero whatever the untrained model writes."""

    __name__ = "toy"

    def __init__(self, group_size: int):
        self.calls, self.group_size = 0, group_size

    def __call__(self, completions, **columns):
        self.calls += 1
        if self.calls == 1:
            return [0.0] * len(completions)
        return [(i % self.group_size) / (self.group_size - 1) for i in range(len(completions))]


@pytest.mark.slow
def test_smoke_grpo_moves_weights_refills_and_saves_a_loadable_model(sft_dir, smoke_data, tmp_path):
    settings = GRPOSettings.from_profile("smoke", **{**FAST, "max_steps": 1, "max_refill_tries": 1})
    out = tmp_path / "grpo"
    toy = _ToyReward(settings.num_generations)
    result = grpo.train_grpo(sft_dir, smoke_data, out, settings, reward_funcs=([toy], [1.0]))
    assert result["global_step"] == settings.max_steps
    first = next(h for h in result["log_history"] if "dynamic_sampling/tries" in h)
    assert first["dynamic_sampling/tries"] == 2, (
        "the all-zero first batch must be refilled from another batch"
    )
    assert first["dynamic_sampling/kept_group_fraction"] == pytest.approx(0.5)
    assert toy.calls == 2
    for key in ("rewards/toy/mean", "rewards/accuracy/all", "rewards/format/all", "completions/mean_length"):
        assert key in first, key
    before, _ = model_mod.load(sft_dir)
    after, _ = model_mod.load(out)  # the final folder reads back with the workbench loader
    assert model_mod.is_region_model(after)
    changed = [
        n
        for (n, p), (_, q) in zip(before.named_parameters(), after.named_parameters())
        if not torch.equal(p, q)
    ]
    assert "lm_head.weight" in changed, f"GRPO did not move the LM head (changed: {changed[:5]})"
    assert any(n.startswith("model.depth_embed.") for n in changed), "depth did not reach GRPO's forward passes"
    samples = read_jsonl(out / "samples.jsonl")
    assert samples and {"step", "completion", "overall", "accuracy", "format", "path"} <= set(samples[0])
    assert (out / "model.safetensors").exists() and json.loads((out / "log_history.json").read_text())


@pytest.mark.slow
def test_cli_resumes_after_a_kill_and_continues_the_step_count(sft_dir, smoke_data, tmp_path, capsys):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):  # step 2 ends, its checkpoint is not written yet: the process dies
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt("simulated kill")

    out = tmp_path / "grpo"
    fast = {**FAST, "save_steps": 1}
    with pytest.raises(KeyboardInterrupt):
        grpo.train_grpo(
            sft_dir, smoke_data, out, GRPOSettings.from_profile("smoke", **fast), callbacks=[Kill()]
        )
    assert (out / "checkpoint-1").is_dir() and not (out / "checkpoint-2").exists()
    assert not (out / "config.json").exists(), "a killed run must not look finished"

    base = [
        "grpo",
        "--model",
        str(sft_dir),
        "--data",
        str(smoke_data),
        "--out",
        str(out),
        "--profile",
        "smoke",
    ]
    base += [f"--set={k}={v}" for k, v in fast.items()]
    assert main(base + ["--max-steps", "2"]) == 2, "a folder with checkpoints needs --resume"
    assert "pass --resume" in capsys.readouterr().err
    assert main(base + ["--max-steps", "2", "--resume"]) == 0
    assert "GRPO done at step 2" in capsys.readouterr().out
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    history = json.loads((out / "log_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2], "the resumed run continues at step 2"
    # SPEC rewards on an untrained model: every group is degenerate and the fallback fills the batch
    assert all(h["dynamic_sampling/fallback_groups"] == 1 for h in history if "loss" in h)
    assert model_mod.is_region_model(model_mod.load(out)[0])


def test_cli_errors_are_clear(sft_dir, smoke_data, tmp_path, capsys):
    base = ["grpo", "--model", str(sft_dir), "--data", str(smoke_data), "--out", str(tmp_path / "new")]
    assert main(base + ["--resume"]) == 2
    assert "no checkpoint-* folder" in capsys.readouterr().err
    assert main(base + ["--set", "beta"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_two_cpu_processes_train_together_over_gloo(sft_dir, smoke_data, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on a machine without GPUs: torchrun starts two
    processes that join one gloo group (accelerate's MULTI_CPU), as the README documents."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    out = tmp_path / "grpo2"
    with socket.socket() as sock:  # a free port: other test sessions may be using torchrun's default
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    command = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
        "-m", "workbench.cli", "grpo", "--model", str(sft_dir), "--data", str(smoke_data), "--out", str(out),
        "--profile", "smoke", *[f"--set={k}={v}" for k, v in {**FAST, "max_refill_tries": 1}.items()],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "grpo_settings.json").read_text())["num_processes"] == 2
    history = json.loads((out / "log_history.json").read_text())
    steps = [h for h in history if "loss" in h]
    assert len(steps) == 2
    # untrained model, SPEC rewards: each process fills its one group slot by the fallback, and the
    # gathered count sees both processes
    assert all(h["dynamic_sampling/fallback_groups"] == 2 for h in steps)
    assert all(h["dynamic_sampling/tries"] == 2 for h in steps), "both processes refill in lockstep"
    assert model_mod.load(out)[0] is not None
    assert proc.stdout.count("GRPO done at step 2") == 1, "only the main process reports"


@pytest.mark.slow
def test_resumed_logs_hold_each_step_once(sft_dir, smoke_data, tmp_path):
    """Checkpoints every 2 steps; a kill in step 4 after step 3 logged its samples. The resumed run
    trains step 3 again from checkpoint-2, and samples.jsonl must not hold step 3 twice."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise KeyboardInterrupt("killed in step 4")

    out = tmp_path / "grpo"
    settings = GRPOSettings.from_profile("smoke", **{**FAST, "save_steps": 2, "max_steps": 4})
    with pytest.raises(KeyboardInterrupt):
        grpo.train_grpo(sft_dir, smoke_data, out, settings, callbacks=[Kill()])
    assert rundir.last_checkpoint(out).name == "checkpoint-2"
    assert {r["step"] for r in read_jsonl(out / "samples.jsonl")} == {1, 2, 3}
    grpo.train_grpo(sft_dir, smoke_data, out, settings, resume=True)
    steps = [r["step"] for r in read_jsonl(out / "samples.jsonl")]
    per_step = steps.count(1)
    assert per_step and steps == [1] * per_step + [2] * per_step + [3] * per_step + [4] * per_step


def test_truncate_jsonl_keeps_the_steps_up_to_the_checkpoint(tmp_path):
    from workbench import io

    log = tmp_path / "alarms.jsonl"
    io.append_jsonl(log, [{"step": s, "kind": "x"} for s in (1, 2, 3, 3, 4)])
    with open(log, "a") as f:
        f.write('{"step": 5, "kin')  # a line cut by a kill
    io.truncate_jsonl(log, 3)
    assert [r["step"] for r in read_jsonl(log)] == [1, 2, 3, 3] and log.read_text().endswith("}\n")
    io.truncate_jsonl(log, None)  # a fresh start
    assert not log.exists()
