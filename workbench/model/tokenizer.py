"""The built-in model's vocabulary: special tokens, the ChatML template, a byte-level BPE tokenizer
trained on the data's text, and the processor (Qwen2.5-VL's, with the PIL image processor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from transformers import (
    Qwen2_5_VLProcessor,
)

from workbench import compat
from workbench.model import depth
from workbench.model.settings import ModelSettings
from workbench.schema import REGION_TOKEN
from workbench.tasks.locations import LOC_TOKENS, NUM_LOC_BINS
from workbench.tasks.prompts import LETTERS

# Chat markers and image placeholders, named as Qwen2.5-VL's processor and template expect.
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
CONTROL_TOKENS = (
    PAD_TOKEN,
    "<|im_start|>",
    EOS_TOKEN,
    "<|vision_start|>",
    "<|image_pad|>",
    "<|vision_end|>",
    "<|video_pad|>",
)
FORMAT_TOKENS = (
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "<detect>",
    "</detect>",
    "<3d_box",
    "</3d_box>",
)
"""SPEC section 2 tags, one token each (not "special": decoding keeps them)."""
OPTION_TOKENS = tuple(f" ({letter})" for letter in LETTERS)
"""An option letter as a trace writes it after its option ("right (B)"), one token each, so the
letter is a single copy (`prompts.OPTION_STYLES`)."""

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}{%- generation -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>' -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""Qwen-style ChatML: images render as vision_start, one image_pad (the processor expands it to
one per merged patch), vision_end; assistant turns are wrapped in `{% generation %}` so TRL's
`assistant_only_loss` works."""


# ---------------------------------------------------------------------------------------------
# Tokenizer and processor


ROLE_NAMES = ("system", "user", "assistant")
"""Words the chat template writes after `<|im_start|>`."""


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024, option_tokens: bool = False):
    """A byte-level BPE fast tokenizer trained on `corpus`, digits split one per token.

    Control tokens get ids 0..6; the format tags, `<region>`, the location tokens and, with
    `option_tokens`, the option letters " (A)".. are added after training as whole tokens
    (location ids are contiguous, `<|loc_0|>` first).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    added = (*FORMAT_TOKENS, REGION_TOKEN, *LOC_TOKENS, *(OPTION_TOKENS if option_tokens else ()))
    # Remove the added strings from the training text: they are single tokens, so BPE merges of
    # their pieces would waste vocabulary.
    splitter = re.compile(
        "|".join(re.escape(t) for t in sorted(added + CONTROL_TOKENS, key=len, reverse=True))
    )

    def texts() -> Iterable[str]:
        for text in corpus:
            # A whole token ends a word where it stands, so the text after it starts without a
            # space ("<think>In" is "In", not " In"): a line break splits the same way here.
            yield splitter.sub("\n", str(text))
            # The chat template's role names precede every turn: as often as the texts, so
            # each becomes one token instead of 4-7 letters.
            yield "\n".join(ROLE_NAMES)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(CONTROL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in added])
    tokenizer = compat.TokenizersBackend(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",  # generation and TRL's GRPO prompt side; SFT collators pass their own side
        chat_template=CHAT_TEMPLATE,
    )
    loc_ids = tokenizer.convert_tokens_to_ids(list(LOC_TOKENS))
    assert loc_ids == list(range(loc_ids[0], loc_ids[0] + NUM_LOC_BINS)), "location ids must be contiguous"
    return tokenizer


class WorkbenchProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor without a video processor (which needs torchvision).

    Images, chat template and placeholder expansion are Qwen2.5-VL's own; `__init__` differs, so
    `save_pretrained`/`from_pretrained` store and read just the image processor and tokenizer, and
    `__call__` detaches the depth an image carries (`depth.attach`) and appends the per-patch points
    to `pixel_values` (`depth.append_points`; a call without depth is Qwen2.5-VL's unchanged).
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        compat.init_processor_mixin(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        images, found = depth.detach_all(images)
        out = super().__call__(images=images, text=text, videos=videos, **kwargs)
        if any(d is not None for d, _ in found) and out.get("pixel_values") is not None:
            pixel_values = torch.as_tensor(out["pixel_values"])
            grid = torch.as_tensor(out["image_grid_thw"])
            out["pixel_values"] = depth.append_points(pixel_values, grid, found, self.image_processor.merge_size)
        return out


def make_processor(tokenizer, settings: ModelSettings) -> WorkbenchProcessor:
    """The PIL image processor sized for `settings` + `tokenizer`, with the chat template."""
    factor = settings.patch_size * settings.merge_size
    image_processor = compat.Qwen2VLImageProcessorPil(
        patch_size=settings.patch_size,
        merge_size=settings.merge_size,
        temporal_patch_size=1,  # still images only: no need to duplicate each frame
        size={"shortest_edge": factor * factor, "longest_edge": settings.image_size**2},
    )
    return WorkbenchProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )


def image_size_of(processor) -> int:
    """Largest image side the processor was set up for (images are capped at its square)."""
    longest = processor.image_processor.size.get("longest_edge") or processor.image_processor.max_pixels
    return int(round(float(longest) ** 0.5))
