"""Copy warm-up: a short text-only stage that teaches a fresh built-in model to copy from its
prompt before cold-start SFT (`sft.train_sft` runs it; `SFTSettings.copy_warmup_steps`).

Why (issue #3). Every SFT target copies from the prompt: the region labels of the question
("the green point"), and the option letter of the conclusion ("so the answer is right (B)" must
find "right" among the options and write its letter). A randomly initialised 4-layer model
learns neither inside the default SFT budget: the letter after the conclusion matched the
conclusion's own option about half the time (`letter_agreement` in `workbench.eval.metrics`), so
choice accuracy stayed at chance even where the reasoning was right. Copying is a skill of the
language model alone, so it can be taught on short text-only sequences that cost a fraction of
an image example, with every target token a copy:

- repeat: "Repeat: w1 w2 ... wk" -> "w1 w2 ... wk" (3-8 words);
- look up: "Which option is w?" with 2-4 options listed in the model's option style ("A. w1"
  or "- w1 (A)", `prompts.OPTION_STYLES`) -> "w (L)", L the letter of w's line: the letter must
  be read off the options (the question names only w). Replies are bare: runs whose replies
  began with a fixed prefix lost most of their label copying after SFT (docs/experiments.md).

With `numbers` > 0 that share of the examples copies numbers instead (issue #19: a think
restates detected coordinates digit by digit, and after the word tasks alone the model copied
labels, signs and letters but not the digits):

- repeat numbers: "Repeat: -0.46 0.18 3.90" -> "-0.46 0.18 3.90" (3-6 numbers, 2 decimals);
- look up centers: a detect block of 2-4 `<3d_box center="x,y,z">name (label)</3d_box>` lines as
  the traces write them (`traces.box3d`), then "Look up: x of the magenta point, z of the red
  box." -> "x of magenta point = -0.46, z of red box = 3.90", 1-3 look-ups as DTR's thinks state
  them: find the label, take the number written before it on its line.

Words are whole-word tokens of the model's own tokenizer, drawn at random, so no shortcut of
the SFT data (fixed option pairs, the question's word order) can stand in for the copy.
The stage is a plain PyTorch loop (no images, no TRL), seeded, and records itself in the model
config (`workbench_copy_warmup_steps`), so a model is warmed once: `train_sft` skips it for a
warmed or pretrained model and when resuming from a checkpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from workbench.tasks import prompts, traces
from workbench.tasks import vocab as Q
from workbench.world.render import MARK_COLORS, MARK_KINDS
from workbench.world.scenes import CATALOGUE, IN_DOMAIN_SHAPES

LETTERS = prompts.LETTERS[:4]
"""Letters of a look-up's 2-4 options: the prompts' own, so option lines and replies agree."""
NUMBER_TASKS = ("numbers", "centers")
"""The number tasks (repeat numbers, look up centers), drawn with equal odds."""
CENTER_RANGES = ((-1.6, 1.6), (-0.8, 0.8), (1.0, 6.0))
"""Ranges of a look-up's x, y, z in metres: about those of the data's camera-frame centers."""
AXES = "xyz"
CONFIG_KEY = "workbench_copy_warmup_steps"
"""Config attribute recording the warm-up steps a model has had (absent = none)."""


@dataclass(frozen=True)
class CopyExample:
    """One warm-up sequence: the chat prompt (system + user, ready for the reply) and the reply."""

    task: str
    prompt: str
    reply: str


def copy_words(tokenizer, min_chars: int = 3) -> list[str]:
    """Whole-word tokens of `tokenizer` (" left", " table", ...): a leading space, then letters only.

    Raises ValueError when the vocabulary has fewer than 8 of them (too few to draw options from).
    """
    words = []
    for token in tokenizer.get_vocab():
        text = tokenizer.convert_tokens_to_string([token])
        if text.startswith(" ") and text[1:].isalpha() and len(text) > min_chars:
            words.append(text)
    if len(words) < 8:
        raise ValueError(f"the tokenizer has only {len(words)} whole-word tokens; the copy warm-up needs >= 8")
    return sorted(words)


def _number(rng: random.Random, lo: float, hi: float) -> str:
    return Q.fmt(rng.uniform(lo, hi))


def number_task(rng: random.Random) -> tuple[str, str, str]:
    """(task, question, reply) of a seeded number example (`NUMBER_TASKS`, equal odds)."""
    if rng.random() < 0.5:
        values = [_number(rng, *CENTER_RANGES[rng.randrange(3)]) for _ in range(rng.randint(3, 6))]
        return "numbers", "Repeat: " + " ".join(values), " ".join(values)
    labels = rng.sample([f"{c} {k}" for c in MARK_COLORS for k in MARK_KINDS], rng.randint(2, 4))
    centers = [[float(_number(rng, lo, hi)) for lo, hi in CENTER_RANGES] for _ in labels]
    names = [CATALOGUE[rng.choice(IN_DOMAIN_SHAPES)].name for _ in labels]
    asked = [(rng.randrange(len(labels)), rng.randrange(3)) for _ in range(rng.randint(1, 3))]
    block = "\n".join(traces.box3d(c, n, label) for c, n, label in zip(centers, names, labels))
    request = ", ".join(f"{AXES[a]} of the {labels[i]}" for i, a in asked)
    reply = ", ".join(f"{AXES[a]} of {labels[i]} = {Q.fmt(centers[i][a])}" for i, a in asked)
    return "centers", f"{block}\nLook up: {request}.", reply


def make_example(rng: random.Random, words: list[str], tokenizer, system_style: str = "short",
                 option_style: str = "letter_first", numbers: float = 0.0) -> CopyExample:
    """A seeded example rendered with the model's chat template: with probability `numbers` a
    number task (`number_task`), else a word repeat or look-up (equal odds); look-up options are
    listed in `option_style` (`prompts.OPTION_STYLES`)."""
    if numbers and rng.random() < numbers:
        task, question, reply = number_task(rng)
    elif rng.random() < 0.5:
        picked = rng.sample(words, rng.randint(3, 8))
        task, question, reply = "repeat", "Repeat:" + "".join(picked), "".join(picked).strip()
    else:
        picked = rng.sample(words, rng.randint(2, len(LETTERS)))
        k = rng.randrange(len(picked))
        options = prompts.option_lines([w.strip() for w in picked], option_style)
        task, question, reply = "lookup", f"Which option is{picked[k]}?\n{options}", f"{picked[k].strip()} ({LETTERS[k]})"
    messages = [
        {"role": "system", "content": [{"type": "text", "text": prompts.system_prompt("plain", system_style)}]},
        {"role": "user", "content": [{"type": "text", "text": question}]},
    ]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return CopyExample(task, prompt, reply)


def encode(tokenizer, examples: list[CopyExample]) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (-100 except on the reply and its
    end-of-turn token) of examples with a chat `prompt` and a `reply` (a `CopyExample`, or any
    text-only warm-up example of that shape)."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, labels = [], []
    for ex in examples:
        prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        reply = tokenizer(ex.reply, add_special_tokens=False)["input_ids"] + [eos]
        ids.append(prompt + reply)
        labels.append([-100] * len(prompt) + reply)
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        "labels": torch.tensor([y + [-100] * (width - len(y)) for y in labels]),
    }


@torch.no_grad()
def copy_accuracy(model, tokenizer, n: int = 256, seed: int = 1234, batch_size: int = 64,
                  system_style: str = "short", option_style: str = "letter_first",
                  numbers: float = 0.0) -> dict[str, float]:
    """Teacher-forced accuracy on `n` held-out warm-up examples (`numbers` of them number tasks):
    `token` (reply tokens predicted right), `exact` (replies all right), `letter` (every token of
    the " (L)" of look-up replies) and, with `numbers` > 0, `numbers` and `centers` (replies of
    those tasks all right)."""
    rng = random.Random(seed)
    words = copy_words(tokenizer)
    examples = [make_example(rng, words, tokenizer, system_style, option_style, numbers) for _ in range(n)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits = {"token": [0, 0], "exact": [0, 0], "letter": [0, 0]}
    if numbers:
        hits.update({task: [0, 0] for task in NUMBER_TASKS})
    for start in range(0, n, batch_size):
        chunk = examples[start : start + batch_size]
        batch = {k: v.to(device) for k, v in encode(tokenizer, chunk).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        pred, target = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        mask = target != -100
        right = (pred == target) & mask
        exact = (right | ~mask).all(1)
        hits["token"][0] += int(right.sum())
        hits["token"][1] += int(mask.sum())
        hits["exact"][0] += int(exact.sum())
        hits["exact"][1] += len(chunk)
        for i, ex in enumerate(chunk):
            if ex.task in NUMBER_TASKS:
                hits[ex.task][0] += int(exact[i])
                hits[ex.task][1] += 1
            if ex.task == "lookup":  # the letter: the reply's tokens after the word, before eos
                where = mask[i].nonzero().flatten()
                stem = len(tokenizer(ex.reply[: ex.reply.rindex(" (")], add_special_tokens=False)["input_ids"])
                letter_at = where[stem:-1]
                hits["letter"][0] += int(right[i, letter_at].all())
                hits["letter"][1] += 1
    if was_training:
        model.train()
    return {k: h[0] / h[1] if h[1] else float("nan") for k, h in hits.items()}


def train_text(model, tokenizer, draw: Callable[[], list[Any]], steps: int, learning_rate: float,
               max_grad_norm: float | None = None, log_every: int = 100,
               log: Callable[[dict[str, Any]], None] | None = None, name: str = "copy") -> list[float]:
    """The text-only warm-ups' loop: `steps` AdamW steps (constant `learning_rate`, no weight
    decay; gradients clipped at `max_grad_norm` when given) on the examples `draw()` returns each
    step (prompt/reply examples, `encode`d). `log` receives `{name}_step` and the mean
    `{name}_loss` every `log_every` steps. Returns every step's loss."""
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    model.train()
    losses: list[float] = []
    for step in range(1, steps + 1):
        batch = encode(tokenizer, draw())
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if log is not None and (step % log_every == 0 or step == steps):
            log({f"{name}_step": step, f"{name}_loss": sum(losses[-log_every:]) / len(losses[-log_every:])})
    return losses


def warm_up(model, tokenizer, steps: int, batch_size: int = 32, learning_rate: float = 1e-3, seed: int = 0,
            system_style: str = "short", option_style: str = "letter_first", numbers: float = 0.0,
            log_every: int = 100, log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `model` in place for `steps` AdamW steps of `batch_size` warm-up examples, `numbers`
    of them number tasks (constant `learning_rate`, no weight decay, no clipping: the recipe
    measured in issue #3) and record the steps in its config. Returns the copy accuracy before and after, the first
    and last loss and the wall time; `log` receives a dict every `log_every` steps."""
    if steps < 1:
        raise ValueError(f"copy warm-up steps must be >= 1, got {steps}")
    if not 0.0 <= numbers <= 1.0:
        raise ValueError(f"the copy warm-up's share of number tasks must be in [0, 1], got {numbers}")
    start = time.perf_counter()
    rng = random.Random(seed)
    words = copy_words(tokenizer)
    before = copy_accuracy(model, tokenizer, system_style=system_style, option_style=option_style, numbers=numbers)
    losses = train_text(model, tokenizer, lambda: [make_example(rng, words, tokenizer, system_style, option_style, numbers)
                                                   for _ in range(batch_size)],
                        steps, learning_rate, log_every=log_every, log=log, name="copy")
    after = copy_accuracy(model, tokenizer, system_style=system_style, option_style=option_style, numbers=numbers)
    setattr(model.config, CONFIG_KEY, getattr(model.config, CONFIG_KEY, 0) + steps)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "numbers": numbers,
        "first_loss": losses[0],
        "final_loss": sum(losses[-log_every:]) / len(losses[-log_every:]),
        "accuracy_before": before,
        "accuracy_after": after,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def warmed_steps(model) -> int:
    """Copy warm-up steps `model` has had (0 for a fresh or pretrained model)."""
    return int(getattr(model.config, CONFIG_KEY, 0) or 0)
