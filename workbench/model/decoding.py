"""A fast decode loop for the built-in model's `generate` (issue #21, item 2).

Hugging Face's `generate` spends a small model's decode step on per-module overhead: 29 linear
layers a token for four decoder layers, the key/value cache grown by `torch.cat`, rotary tables
built from 3D position ids, masks rebuilt every step. For the built-in model (a few million
parameters, a CPU) that overhead, not arithmetic, sets the pace of GRPO's rollouts. This loop
keeps Hugging Face's prefill (images, region features, 3D positions and the cache all come from
the model's own forward) and then decodes with:
- the query/key/value projections of a layer fused into one matrix, and the gate/up projections
  into another (weights concatenated once per call), so a decode step runs 17 matrix products;
- keys and values written into buffers allocated once for the whole completion;
- rotary angles of the text positions computed directly: after the prompt every token has the
  same position on Qwen2.5-VL's three rotary axes, and then the multimodal rotary equals the 1D one;
- the same logits processors as `generate` (built from the generation config by transformers
  itself), so greedy decoding gives the same tokens, except that top-p looks for the nucleus
  among the 64 highest scores first (`FastTopP`: the same tokens kept, without sorting the whole
  vocabulary when the nucleus lies there), and sampling draws by an exponential race (the
  argmax of probability / Exp(1) noise, distributed as `torch.multinomial`'s draw; on a CPU
  sorting and `multinomial` cost as much as a decoder layer at this size). Sampled completions
  follow the same distribution as Hugging Face's, not the same random stream.

`supports(model, generation_config, kwargs)` says when the loop applies (the built-in model,
greedy or sampled decoding without beams, streamers, assistants or extra outputs); anything else
goes to Hugging Face's `generate` unchanged. `RegionQwen2_5_VLForConditionalGeneration.generate`
dispatches, so TRL, the evaluation, `workbench ask` and the demo use it without knowing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from transformers.generation.configuration_utils import GenerationMode
from transformers.generation.logits_process import TopPLogitsWarper

ENABLED = True
"""Module switch: False sends every call to Hugging Face's `generate` (a benchmark's baseline)."""

_MODEL_INPUTS = {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"}
"""Keyword arguments the loop passes to the prefill forward."""
_IGNORED = {"disable_compile", "use_cache", "generation_config"}
"""Keyword arguments the loop accepts and has no use for."""


def supports(model, generation_config, kwargs: dict[str, Any]) -> bool:
    """Whether `decode` can stand in for `generate` on this call."""
    if not ENABLED or (model.training and _has_dropout(model)):
        return False
    text = model.config.get_text_config()
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", False):
        return False
    if set(kwargs) - _MODEL_INPUTS - _IGNORED or "input_ids" not in kwargs:
        return False
    if kwargs.get("pixel_values") is not None and kwargs["pixel_values"].shape[0] == 0:
        return False
    g = generation_config
    return (g.num_beams == 1 and (g.num_return_sequences or 1) == 1 and not g.output_scores
            and not g.output_logits and not g.return_dict_in_generate and not g.output_attentions
            and not g.output_hidden_states and not g.stop_strings
            and g.max_time is None and getattr(g, "assistant_model", None) is None
            and getattr(g, "prompt_lookup_num_tokens", None) is None
            and g.get_generation_mode() in (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE))


NUCLEUS_CANDIDATES = 64
"""Highest scores `FastTopP` looks among before sorting the whole vocabulary."""


class FastTopP(TopPLogitsWarper):
    """Top-p filtering with the semantics of transformers' `TopPLogitsWarper` (a token goes when
    the probability of it and of every token below it is at most 1 - top_p; the best
    `min_tokens_to_keep` always stay), found among the `NUCLEUS_CANDIDATES` highest scores when the
    mass beyond them is already at most 1 - top_p, else by the parent's full sort."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(NUCLEUS_CANDIDATES, scores.shape[-1])
        probs = scores.softmax(dim=-1)
        top, index = torch.topk(probs, k, dim=-1)  # descending
        beyond = (1.0 - top.sum(dim=-1, keepdim=True)).clamp(min=0.0)
        if not bool((beyond <= 1 - self.top_p).all()):
            return super().__call__(input_ids, scores)
        below = top.flip(-1).cumsum(-1).flip(-1) + beyond  # each candidate and everything under it
        remove = below <= 1 - self.top_p
        remove[:, : self.min_tokens_to_keep] = False
        keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, index, ~remove)
        return scores.masked_fill(~keep, self.filter_value)


def _has_dropout(model) -> bool:
    """Whether training mode changes the model's forward (GRPO generates with the policy in training
    mode; the built-in model has no dropout, so the loop serves it there too)."""
    text = model.config.get_text_config()
    if float(getattr(text, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


class _Layer:
    """One decoder layer's weights, fused for a single-token step."""

    def __init__(self, layer):
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv_w = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        self.qkv_b = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
        self.o_w = attn.o_proj.weight
        self.gate_up_w = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        self.down_w = mlp.down_proj.weight
        self.norm1 = layer.input_layernorm
        self.norm2 = layer.post_attention_layernorm
        self.act = mlp.act_fn


def _rms(norm, x: torch.Tensor) -> torch.Tensor:
    # Qwen2RMSNorm, inlined: the module call is most of its cost at this size
    if x.dtype != torch.float32:
        return norm.weight * (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True)
                                                      + norm.variance_epsilon)).to(x.dtype)
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def decode(model, generation_config, **inputs) -> torch.Tensor:
    """(batch, prompt + new) token ids, as `generate` returns them: the prompt, then the new
    tokens, finished rows padded with the pad token after their end-of-sequence token."""
    with torch.inference_mode():  # lighter than no_grad per operation; nothing made here is trained
        sequences, deltas = _decode(model, generation_config, **inputs)
    model.model.rope_deltas = deltas.clone()  # normal tensors for whatever runs next
    return sequences.clone()


def _decode(model, generation_config, **inputs) -> tuple[torch.Tensor, torch.Tensor]:
    g = generation_config
    input_ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(input_ids)
    batch, prompt_len = input_ids.shape
    device = input_ids.device
    text = model.config.get_text_config()
    backbone = model.model
    lm = backbone.language_model

    processors = model._get_logits_processor(
        generation_config=g, input_ids_seq_length=prompt_len, encoder_input_ids=input_ids,
        prefix_allowed_tokens_fn=None, logits_processor=None, device=device, model_kwargs={})
    for i, proc in enumerate(processors):
        if type(proc) is TopPLogitsWarper:
            processors[i] = FastTopP(proc.top_p, proc.filter_value, proc.min_tokens_to_keep)
    eos = g.eos_token_id
    eos = torch.tensor([eos] if isinstance(eos, int) else list(eos or []), device=device)
    pad = g.pad_token_id if g.pad_token_id is not None else (int(eos[0]) if len(eos) else 0)
    steps = int(g.max_new_tokens) if g.max_new_tokens is not None else max(int(g.max_length or 20) - prompt_len, 0)
    if steps == 0:
        return input_ids, torch.zeros(batch, 1, dtype=torch.long, device=device)

    prefill = {k: v for k, v in inputs.items() if k in _MODEL_INPUTS}
    unique, expand = _distinct_rows(prefill, model.config.image_token_id,
                                    model.config.vision_config.spatial_merge_size ** 2)
    backbone.rope_deltas = None
    if unique.get("pixel_values") is None and unique.get("attention_mask") is not None:
        # text only: positions count the tokens after the left padding, as `generate` counts them
        # (with images the model's `get_rope_index` does, from the mask)
        m = unique["attention_mask"].long()
        unique = {**unique, "position_ids": (m.cumsum(-1) - 1).masked_fill(m == 0, 1)}
    out = model(**unique, use_cache=True, return_dict=True)
    logits = out.logits[:, -1, :].float()[expand]
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    unique_deltas = backbone.rope_deltas
    if unique_deltas is None:
        unique_deltas = torch.zeros(len(unique["input_ids"]), 1, dtype=torch.long, device=device)
    deltas = unique_deltas.to(device)[expand]

    layers = [_Layer(layer) for layer in lm.layers]
    heads, kv_heads = text.num_attention_heads, text.num_key_value_heads
    head_dim = text.hidden_size // heads
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    keys, values = [], []
    for i in range(len(layers)):
        k, v = cache.layers[i].keys[expand], cache.layers[i].values[expand]  # (B, kv_heads, prompt_len, head_dim)
        kb = k.new_empty(batch, kv_heads, prompt_len + steps, head_dim)
        vb = v.new_empty(batch, kv_heads, prompt_len + steps, head_dim)
        kb[:, :, :prompt_len] = k
        vb[:, :, :prompt_len] = v
        keys.append(kb)
        values.append(vb)
    del cache, out
    embed, norm, head = lm.embed_tokens, lm.norm, model.lm_head
    dtype = embed.weight.dtype
    # additive attention bias over every slot of the buffers: 0 where a key is attended
    bias = torch.full((batch, 1, prompt_len + steps), float("-inf"), dtype=dtype, device=device)
    bias[:, 0, :prompt_len] = torch.where(mask.bool(), 0.0, float("-inf"))
    inv_freq = lm.rotary_emb.inv_freq.to(device=device, dtype=torch.float)
    scaling = float(getattr(lm.rotary_emb, "attention_scaling", 1.0))
    position = mask.long().sum(-1) + deltas.view(-1)  # the first new token's rotary position
    groups, scale = heads // kv_heads, head_dim ** -0.5
    flat_keys = [k.view(batch * kv_heads, -1, head_dim) for k in keys]  # (B * kv_heads, slots, head_dim)
    flat_values = [v.view(batch * kv_heads, -1, head_dim) for v in values]

    sequences = torch.full((batch, prompt_len + steps), pad, dtype=input_ids.dtype, device=device)
    sequences[:, :prompt_len] = input_ids
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    eos_row = eos[None, :]
    for t in range(steps):
        scores = logits
        for proc in processors:  # what LogitsProcessorList does, without its per-call signature check
            scores = proc(sequences[:, :prompt_len + t], scores)
        if g.do_sample:
            probs = F.softmax(scores, dim=-1)
            noise = torch.rand_like(probs).clamp_(min=torch.finfo(probs.dtype).tiny).log_().neg_()  # Exp(1)
            token = (probs / noise).argmax(dim=-1)
        else:
            token = torch.argmax(scores, dim=-1)
        token = token.masked_fill(finished, pad)
        sequences[:, prompt_len + t] = token
        if len(eos):
            finished = finished | (token[:, None] == eos_row).any(dim=-1)
        if bool(finished.all()) or t == steps - 1:
            sequences = sequences[:, :prompt_len + t + 1]
            break
        # one decoder step for the new token, on (batch, width) rows
        slot = prompt_len + t
        bias[:, 0, slot] = 0.0
        angles = (position + t).float()[:, None] * inv_freq  # (B, head_dim / 2)
        angles = torch.cat([angles, angles], dim=-1)
        cos = (angles.cos() * scaling).to(dtype)[:, None, :]  # (B, 1, head_dim)
        sin = (angles.sin() * scaling).to(dtype)[:, None, :]
        x = embed(token)  # (B, hidden)
        for i, w in enumerate(layers):
            qkv = F.linear(_rms(w.norm1, x), w.qkv_w, w.qkv_b)
            qk = qkv[:, :q_width + kv_width].view(batch, heads + kv_heads, head_dim)
            qk = qk * cos + _rotate_half(qk) * sin  # queries and keys rotated together
            keys[i][:, :, slot] = qk[:, heads:]
            values[i][:, :, slot] = qkv[:, q_width + kv_width:].view(batch, kv_heads, head_dim)
            q = qk[:, :heads] * scale
            # grouped-query attention as two batched products: head h reads key/value head h // groups
            weights = torch.bmm(q.reshape(batch * kv_heads, groups, head_dim),
                                flat_keys[i][:, :slot + 1].transpose(1, 2))  # (B * kv, groups, slots)
            weights = (weights.view(batch, heads, slot + 1) + bias[:, :, :slot + 1]).softmax(dim=-1)
            o = torch.bmm(weights.view(batch * kv_heads, groups, slot + 1), flat_values[i][:, :slot + 1])
            x = x + F.linear(o.view(batch, q_width), w.o_w)
            gate, up = F.linear(_rms(w.norm2, x), w.gate_up_w).chunk(2, dim=-1)
            x = x + F.linear(w.act(gate) * up, w.down_w)
        logits = head(_rms(norm, x)).float()
    return sequences, deltas


def _bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(torch.uint8).cpu().numpy().tobytes()


def _distinct_rows(inputs: dict[str, Any], image_token_id: int, tokens_per_patch_group: int):
    """(inputs of the distinct rows, index of each row's distinct row): GRPO asks for several
    completions of each prompt, and the prompt's forward need only run once. Rows are the same
    when their tokens, mask and images are."""
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    grid = inputs.get("image_grid_thw")
    pixels = inputs.get("pixel_values")
    images_of: list[list[int]] = [[] for _ in range(len(ids))]
    spans: list[tuple[int, int]] = []
    if grid is not None and pixels is not None:
        patches = grid.prod(-1).tolist()
        starts = [0]
        for n in patches:
            starts.append(starts[-1] + n)
        spans = list(zip(starts[:-1], starts[1:]))
        image = 0
        for b, count in enumerate((ids == image_token_id).sum(-1).tolist()):
            while count > 0 and image < len(patches):
                images_of[b].append(image)
                count -= patches[image] // tokens_per_patch_group
                image += 1
        if image != len(patches):
            return inputs, torch.arange(len(ids), device=ids.device)  # not the usual layout: no dedup
    seen: dict[tuple, int] = {}
    first: list[int] = []
    expand: list[int] = []
    for b in range(len(ids)):
        key = (tuple(ids[b].tolist()), None if mask is None else tuple(mask[b].tolist()),
               tuple(_bytes(pixels[slice(*spans[i])]) for i in images_of[b]))
        if key not in seen:
            seen[key] = len(first)
            first.append(b)
        expand.append(seen[key])
    expand_t = torch.tensor(expand, device=ids.device)
    if len(first) == len(ids):
        return inputs, expand_t
    rows = torch.tensor(first, device=ids.device)
    unique = {k: v[rows] for k, v in inputs.items() if k in ("input_ids", "attention_mask", "mm_token_type_ids")}
    if pixels is not None and grid is not None:
        kept = [i for b in first for i in images_of[b]]
        unique["pixel_values"] = torch.cat([pixels[slice(*spans[i])] for i in kept])
        unique["image_grid_thw"] = grid[kept]
    return unique, expand_t

