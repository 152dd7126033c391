"""Batched generation with any loaded model: `model_inputs` (prompts to tensors, the way TRL's trainers
build them) and `generate` (greedy or sampled completions on a chosen path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from workbench.model import depth as depth_codec
from workbench.model.architecture import prompt_options, uses_depth

# ---------------------------------------------------------------------------------------------
# Batched generation


def model_inputs(
    processor,
    rows: Sequence[dict],
    path: str,
    region_coords: bool,
    add_generation_prompt: bool = True,
    system: str = "full",
    option_style: str = "letter_first",
    depth: bool = False,
):
    """Left-padded tensors (input_ids, attention_mask, pixel_values, image_grid_thw, mm_token_type_ids)
    of the prompts of `rows` on `path`, through `prompts.to_messages` (`system`: its prompt style,
    `option_style`: how options are listed; `depth`: images carry the rows' depth, for a model
    that embeds it, `uses_depth(model)`)."""
    from workbench.tasks import prompts
    if depth:
        rows = [{**row, "image": depth_codec.row_image(row), "images": depth_codec.row_images(row)} for row in rows]
    conversations = [
        prompts.to_messages(row, path, region_coords=region_coords, embed_image=True, system=system,
                            option_style=option_style)
        for row in rows
    ]
    # Pad to the longest prompt and never truncate (a cut prompt loses image tokens or the question).
    # `max_length=None` says so explicitly: a tokenizer saved after SFT keeps the backend's
    # truncation state in tokenizer.json, loading turns it into an init default `max_length`, and the
    # processor passes that default on with `padding=True`, where transformers ignores it with a warning.
    return processor.apply_chat_template(
        conversations,
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left", "truncation": False, "max_length": None},
    )


@torch.no_grad()
def generate(
    model,
    processor,
    rows: Sequence[dict],
    path: str = "auto",
    max_new_tokens: int = 256,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    region_coords: bool | None = None,
    system: str | None = None,
    option_style: str | None = None,
    depth: bool | None = None,
) -> list[str]:
    """Completions (special tokens removed) of `rows` on `path` (lor | dtr | auto), batched with
    left padding, one `model.generate` per batch. Used by evaluation, `workbench ask` and the demo.
    The prompt follows `prompt_options(model)` unless `region_coords`, `system` or `option_style`
    say otherwise; the rows' depth goes with their images when the model embeds depth (`depth`
    None) or when `depth` says so (a row without depth runs with the embedding off)."""
    options_of_model = prompt_options(model)
    if region_coords is None:
        region_coords = options_of_model["region_coords"]
    if system is None:
        system = options_of_model["system"]
    if option_style is None:
        option_style = options_of_model["option_style"]
    if depth is None:
        depth = uses_depth(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tokenizer = processor.tokenizer
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        options.update(temperature=temperature, top_p=top_p, top_k=None)
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    out: list[str] = []
    try:
        for start in range(0, len(rows), batch_size):
            batch = model_inputs(processor, rows[start : start + batch_size], path, region_coords, system=system,
                                 option_style=option_style, depth=depth)
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            ids = model.generate(
                **batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **options
            )
            new = ids[:, batch["input_ids"].shape[1] :]
            out += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out
