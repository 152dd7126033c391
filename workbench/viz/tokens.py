"""What the model reads: one collated SFT example as tokens colored by kind (image, region,
location, format, text), loss tokens marked (`describe_tokens`, `tokens_html`). Taught in
`notebooks/03_cold_start_sft.ipynb`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench import schema


def describe_tokens(processor, batch: Mapping[str, Any], index: int = 0) -> list[dict[str, Any]]:
    """One sample of a collated batch as a list of {token, id, loss, kind}; kind is image |
    region | loc | format | pad | text. Used by notebook 03 to show what the model reads."""
    from workbench import model as M
    tok = processor.tokenizer
    ids = batch["input_ids"][index].tolist()
    labels = batch["labels"][index].tolist()
    mask = batch["attention_mask"][index].tolist()
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    region_id = tok.convert_tokens_to_ids(schema.REGION_TOKEN)
    loc_ids = set(tok.convert_tokens_to_ids(list(M.LOC_TOKENS)))
    format_ids = set(tok.convert_tokens_to_ids(list(M.FORMAT_TOKENS)))
    out = []
    for i, (t, label, m) in enumerate(zip(ids, labels, mask)):
        kind = ("pad" if not m else "image" if t == image_id else "region" if t == region_id
                else "loc" if t in loc_ids else "format" if t in format_ids else "text")
        out.append({"position": i, "id": t, "token": tok.decode([t]), "loss": label != -100, "kind": kind})
    return out


TOKEN_COLORS = {"image": "#d9e8fb", "region": "#ffd6a5", "loc": "#ffeacc", "format": "#d8f3dc", "text": "#ffffff",
                "pad": "#eeeeee"}


def tokens_html(tokens: Sequence[Mapping[str, Any]]) -> str:
    """HTML of `describe_tokens` output: one chip per token colored by kind, loss tokens bold
    and underlined, a run of image placeholders shown as one chip with its length."""
    import html

    chips, i = [], 0
    while i < len(tokens):
        t = tokens[i]
        j = i + 1
        if t["kind"] in ("image", "pad"):
            while j < len(tokens) and tokens[j]["kind"] == t["kind"]:
                j += 1
        text = t["token"] if j == i + 1 else f"{t['token']} x{j - i}"
        style = f"background:{TOKEN_COLORS[t['kind']]};border:1px solid #ccc;margin:1px;padding:0 2px;white-space:pre"
        if t["loss"]:
            style += ";font-weight:bold;text-decoration:underline"
        chips.append(f'<span style="{style}" title="{t["kind"]}, id {t["id"]}">{html.escape(text)}</span>')
        i = j
    legend = " ".join(f'<span style="background:{c};border:1px solid #ccc;padding:0 4px">{k}</span>'
                      for k, c in TOKEN_COLORS.items())
    return f'<div style="font-family:monospace;font-size:12px;line-height:1.9">{legend}<br>{"".join(chips)}</div>'
