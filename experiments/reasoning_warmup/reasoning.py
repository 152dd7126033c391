"""Reasoning warm-up: text-only practice of DTR's `<think>` from centers already written, for a
fresh built-in model (a study: no profile runs it; `warm_reasoning.py` beside this module).

Why (issue #19). On the full task set the cold-start model's DTR answers followed from its own
detected centers only 26-30% of the time (70-81% when it knew three relations): its think did
not copy the detected numbers, compare them, or pick the option's letter. These are operations
of the language model alone, which the paper's model brings from its language pretraining and
the built-in model has to learn from thirteen think templates inside the SFT budget, where every
example also pays for a vision forward pass.

So they can be practised without images. An example is a train question of the dataset with its
`<region>` tokens taken out (the labels stay: "the blue box"), asked on the DTR path, followed by
its own `<detect>` block with the true centers as part of the prompt; the reply is the rest of its
DTR target (`<think>..</think>\n<answer>..</answer>`), computed from the numbers in that block (and,
for the size categories, from sizes the block does not hold). No loss falls on the `<detect>`
block: from text alone it could only teach a guess of where objects usually are. SFT then has the
same think to write after a `<detect>` the model produced itself.

A plain PyTorch loop like the library's copy warm-up (`workbench.train.copying`), seeded; it
records its steps in the model config (`workbench_reason_warmup_steps`). `reasoning_accuracy`
scores greedy thinks on held-out questions: the answer a model reaches when its centers are
exact, the ceiling of its DTR accuracy.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workbench import schema
from workbench.dataset import views
from workbench.tasks import prompts
from workbench.train import copying

CONFIG_KEY = "workbench_reason_warmup_steps"
"""Config attribute recording the reasoning warm-up steps a model has had (absent = none)."""
COLUMNS = ("id", "task", "category", "question", "choices", "regions", "answer", "answer_type", "dtr_target")
"""Columns an example is made from (no image, no depth)."""
THINK = "<think>"
"""Where the loss starts in a DTR target: everything before it is given."""


@dataclass(frozen=True)
class ReasonExample:
    """One warm-up sequence: `prompt` (chat prompt and the `<detect>` block, no loss) and `reply`
    (encoded by the copy warm-up's `copying.encode`: labels on the reply and its end token only)."""

    id: str
    category: str
    prompt: str
    reply: str
    answer: str
    answer_type: str


def question_rows(split, limit: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """The QA rows of `split` that mark regions, as plain dicts of `COLUMNS` (no image is made);
    `limit` > 0 keeps a seeded sample of that many."""
    names = views.column_names(split)
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(f"the split has no columns {missing}: the reasoning warm-up needs DTR targets")
    table = {c: views.column(split, c) for c in COLUMNS}
    keep = [i for i, (task, regions, target) in enumerate(zip(table["task"], table["regions"], table["dtr_target"]))
            if task in schema.QA_TASKS and regions and target and THINK in target]
    if limit and limit < len(keep):
        keep = sorted(random.Random(seed).sample(keep, limit))
    return [{c: table[c][i] for c in COLUMNS} for i in keep]


THINK_ORDERS = ("label_first", "center_first")
"""How a left/right think states the detected x values: the traces' "x of red point = -0.62"
(`label_first`: find the label, copy the number written before it) or "x = -0.62 (red point)"
(`center_first`: copy the number, then the label written after it, the detect line's order)."""
_LEFT_RIGHT = re.compile(r"<think>x of (.+?) = (\S+), x of (.+?) = (\S+)\. (.*)</think>", re.S)


def reorder_think(target: str, think_order: str) -> str:
    """`target` with a left/right think restated in `think_order` (`THINK_ORDERS`); other thinks
    as they are."""
    if think_order not in THINK_ORDERS:
        raise ValueError(f"think_order {think_order!r} is not one of {THINK_ORDERS}")
    found = _LEFT_RIGHT.search(target)
    if think_order == "label_first" or found is None:
        return target
    a, xa, b, xb, rest = found.groups()
    return target[: found.start()] + f"<think>x = {xa} ({a}), x = {xb} ({b}). {rest}</think>" + target[found.end():]


def make_example(row: Mapping[str, Any], tokenizer, system_style: str = "short",
                 option_style: str = "letter_first", think_order: str = "label_first") -> ReasonExample:
    """The text-only DTR example of a question row (`question_rows`); `think_order` restates a
    left/right think (`reorder_think`)."""
    question = re.sub(r" ?" + re.escape(prompts.REGION_TOKEN), "", str(row["question"]))
    user = prompts.user_text({"id": row["id"], "question": question, "choices": row.get("choices") or []},
                             region_coords=False, option_style=option_style)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": prompts.system_prompt("dtr", system_style)}]},
        {"role": "user", "content": [{"type": "text", "text": user}]},
    ]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    target = reorder_think(str(row["dtr_target"]), think_order)
    cut = target.index(THINK)
    return ReasonExample(str(row["id"]), str(row["category"]), chat + target[:cut], target[cut:],
                         str(row["answer"]), str(row["answer_type"]))


@torch.no_grad()
def greedy_replies(model, tokenizer, examples: Sequence[ReasonExample], max_new_tokens: int = 160,
                   batch_size: int = 32) -> list[str]:
    """Greedy replies to the examples' prompts (left-padded, text only)."""
    device = next(model.parameters()).device
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    out: list[str] = []
    was_training = model.training
    model.eval()
    for start in range(0, len(examples), batch_size):
        chunk = [tokenizer(ex.prompt, add_special_tokens=False)["input_ids"] for ex in examples[start:start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in chunk], device=device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk], device=device)
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                   eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
    if was_training:
        model.train()
    return out


def reasoning_accuracy(model, tokenizer, examples: Sequence[ReasonExample], max_new_tokens: int = 160,
                       batch_size: int = 32) -> dict[str, Any]:
    """Greedy thinks of `examples` scored with the SPEC accuracy reward: `choice` and `number`
    (mean accuracy of each answer type), `format` (share with a parsable answer), `n`, and
    `by_category`."""
    from workbench.tasks import rewards
    replies = greedy_replies(model, tokenizer, examples, max_new_tokens, batch_size)
    by_type: dict[str, list[float]] = {"choice": [], "number": []}
    by_cat: dict[str, list[float]] = {}
    parsed = 0
    for ex, reply in zip(examples, replies):
        answer = rewards.parse_answer(reply)
        parsed += answer is not None
        acc = rewards.score(reply, ex.answer, None, "lor", ex.answer_type)["accuracy"] if answer is not None else 0.0
        by_type.setdefault(ex.answer_type, []).append(acc)
        by_cat.setdefault(ex.category, []).append(acc)

    def mean(values):
        return round(sum(values) / len(values), 4) if values else None

    return {"n": len(examples), "format": mean([1.0] * parsed + [0.0] * (len(examples) - parsed)),
            "choice": mean(by_type["choice"]), "number": mean(by_type["number"]),
            "by_category": {c: mean(v) for c, v in sorted(by_cat.items())}}


def warm_up(model, tokenizer, rows: Sequence[Mapping[str, Any]], steps: int, batch_size: int = 16,
            learning_rate: float = 1e-3, seed: int = 0, system_style: str = "short",
            option_style: str = "letter_first", held_out: Sequence[Mapping[str, Any]] = (),
            think_order: str = "label_first", log_every: int = 100, log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train `model` in place for `steps` AdamW steps of `batch_size` examples drawn (seeded, with
    replacement) from the question `rows` (constant `learning_rate`, no weight decay, as the copy
    warm-up; gradients clipped at norm 1, as SFT: the number tokens' loss spikes early) and record the steps in its config. With `held_out` rows, the reasoning
    accuracy before and after. Returns those, the first and last loss and the wall time."""
    if steps < 1:
        raise ValueError(f"reasoning warm-up steps must be >= 1, got {steps}")
    if not rows:
        raise ValueError("the reasoning warm-up has no question rows with DTR targets to practise on")
    start = time.perf_counter()
    rng = random.Random(seed)
    examples = [make_example(r, tokenizer, system_style, option_style, think_order) for r in rows]
    check = [make_example(r, tokenizer, system_style, option_style, think_order) for r in held_out]
    before = reasoning_accuracy(model, tokenizer, check) if check else None
    losses = copying.train_text(model, tokenizer, lambda: [examples[rng.randrange(len(examples))] for _ in range(batch_size)],
                                steps, learning_rate, max_grad_norm=1.0, log_every=log_every, log=log, name="reason")
    after = reasoning_accuracy(model, tokenizer, check) if check else None
    setattr(model.config, CONFIG_KEY, warmed_steps(model) + steps)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "examples": len(examples),
        "first_loss": losses[0],
        "final_loss": sum(losses[-log_every:]) / len(losses[-log_every:]),
        "accuracy_before": before,
        "accuracy_after": after,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def warmed_steps(model) -> int:
    """Reasoning warm-up steps `model` has had (0 for a fresh or pretrained model)."""
    return int(getattr(model.config, CONFIG_KEY, 0) or 0)
