"""The spatial VLM: the tiny built-in Qwen2.5-VL, its tokenizer and processor, region features,
loading of checkpoints (built-in or a real pretrained VLM, optionally with LoRA) and batched
generation. Taught in `notebooks/02_cold_start_sft.ipynb`.

Region features (SPEC section 3, docs/design.md "Regions inside the model"). TRL passes only
`input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw` (and `mm_token_type_ids`) to the
model, so each region's box travels inside the token ids:

    <region><|loc_a|><|loc_b|><|loc_c|><|loc_d|>

a..d are x1, y1, x2, y2 quantized to `NUM_LOC_BINS` bins of the image width / height: the box
covers bins a..c horizontally and b..d vertically, i.e. [a/N, (c+1)/N] x [b/N, (d+1)/N] of the image.
`RegionQwen2_5_VLModel` (the backbone) reads the four location ids after every `<region>` id,
averages the merged vision features of its sample's image weighted by how much of each merged
patch the box covers, projects them (`region_proj`) and puts the result in place of the
`<region>` token embedding. The work happens in the backbone, not in the LM-head wrapper,
because TRL's fused LM head (SFT and GRPO) calls the backbone directly.

Identification on disk: `model_type` stays `qwen2_5_vl` (AutoConfig and processors work), the
config carries `workbench_region_features` plus the token ids, and `architectures` names
`RegionQwen2_5_VLForConditionalGeneration`. `load` dispatches on the config flag. The class is
also published as an attribute of the `transformers` module on import, because TRL's GRPO builds
its reference model with `getattr(transformers, config.architectures[0])`.
"""

from __future__ import annotations

import json
import math
import re
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
    Qwen2_5_VLProcessor,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPreTrainedModel
from transformers.processing_utils import ProcessorMixin

from workbench.prompts import LETTERS, OPTION_STYLES, SYSTEM_STYLES
from workbench.schema import REGION_TOKEN
from workbench.settings import from_preset

NUM_LOC_BINS = 32
"""Location bins per image side; `<|loc_0|>` .. `<|loc_31|>` (3.5 px at 112 px, 7 px at 224 px)."""
LOC_TOKENS = tuple(f"<|loc_{i}|>" for i in range(NUM_LOC_BINS))

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

PROFILES = ("smoke", "default", "gpu")


@dataclass
class ModelSettings:
    """Sizes of the tiny built-in model (`build_tiny`). Profiles are presets (`from_profile`)."""

    vocab_size: int = 1024
    """BPE vocabulary trained on the corpus (control, format, region and location tokens come on top)."""
    hidden_size: int = 192
    """Width of the language model."""
    num_layers: int = 4
    """Decoder layers of the language model."""
    num_heads: int = 6
    """Attention heads of the language model (head dim = hidden_size / num_heads, a multiple of 8)."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention)."""
    intermediate_size: int = 512
    """MLP width of the language model."""
    vision_hidden_size: int = 128
    """Width of the vision transformer."""
    vision_layers: int = 2
    """Blocks of the vision transformer (all with full attention over the image)."""
    vision_heads: int = 4
    """Attention heads of the vision transformer."""
    vision_intermediate_size: int = 256
    """MLP width of the vision transformer."""
    patch_size: int = 7
    """Pixels per patch side: 112 px / 7 = 16 patches, merged 2x2 into an 8x8 grid of image tokens."""
    merge_size: int = 2
    """Patches merged per side into one image token (Qwen2.5-VL's spatial merge)."""
    image_size: int = 112
    """Largest image side fed to the model (the processor caps images at image_size**2 pixels)."""
    max_position_embeddings: int = 2048
    """Longest sequence the rotary embedding is set up for."""
    rope_theta: float = 10000.0
    """Rotary base of the language model."""
    region_features: bool = True
    """Replace each `<region>` embedding by the projected, box-pooled vision features."""
    region_geometry: bool = True
    """Add a Fourier encoding of the region's box (edges, center, size) to its region feature, and start
    the location-token embeddings ordered (sinusoids of the bin index): where a region is becomes a
    smooth input instead of 32 unrelated embeddings to learn."""
    region_index: bool = True
    """Add a learned embedding of the region's order in its sample (first, second, ...) to its
    region feature. Traces name the regions in question order, and without it the k-th region can
    only be told apart by counting; with it, a trace finds "its" region by content (issue #3: on a
    two-category set with a one-line system prompt, teacher-forced label copying after 300 steps
    rose from 0.35 to 0.59)."""
    system_prompts: str = "short"
    """System prompts the model is trained and asked with: "short" (one line per path) or "full"
    (`prompts.SYSTEM_STYLES`). Saved in the config; `prompt_options(model)` reads it back."""
    option_style: str = "letter_first"
    """How choice options are listed in the prompt (`prompts.OPTION_STYLES`): "letter_first"
    ("A. left") or "letter_after" ("- left (A)", with the letters " (A)".. as single tokens), which
    makes the letter of a trace's conclusion one induction copy. Saved in the config;
    `prompt_options(model)` reads it back. An ablation, not the default: measured in
    docs/design.md ("Option styles")."""
    tie_word_embeddings: bool = False
    """Share the input embedding and LM-head matrices."""
    seed: int = 0
    """Seed of the random initialisation."""

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> ModelSettings:
        """A named preset (`smoke`, `default`, `gpu`) with field overrides."""
        presets: dict[str, dict[str, Any]] = {
            "smoke": dict(
                vocab_size=512,
                hidden_size=64,
                num_layers=2,
                num_heads=4,
                num_kv_heads=2,
                intermediate_size=128,
                vision_hidden_size=64,
                vision_layers=1,
                vision_heads=4,
                vision_intermediate_size=128,
            ),
            "default": {},
            "gpu": dict(
                vocab_size=2048,
                hidden_size=384,
                num_layers=8,
                num_heads=6,
                num_kv_heads=2,
                intermediate_size=1024,
                vision_hidden_size=256,
                vision_layers=4,
                vision_heads=4,
                vision_intermediate_size=512,
                image_size=224,
            ),
        }
        return from_preset(cls, presets, name, overrides)

    def __post_init__(self):
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 8:
            raise ValueError(
                f"hidden_size {self.hidden_size} / num_heads {self.num_heads} must be a whole head dim divisible by 8"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.system_prompts not in SYSTEM_STYLES:
            raise ValueError(f"system_prompts {self.system_prompts!r} is not one of {SYSTEM_STYLES}")
        if self.option_style not in OPTION_STYLES:
            raise ValueError(f"option_style {self.option_style!r} is not one of {OPTION_STYLES}")
        if self.image_size % (self.patch_size * self.merge_size):
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size * merge_size "
                f"({self.patch_size} * {self.merge_size})"
            )


@dataclass
class LoraSettings:
    """LoRA adapters through PEFT (`load(..., lora=LoraSettings())`)."""

    r: int = 16
    """Rank of the adapters."""
    alpha: int = 32
    """Scale numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Linear layers that get adapters (module-name suffixes)."""

    def to_peft_config(self, model: nn.Module):
        """A `peft.LoraConfig` for `model`: region projection fully trained, `<region>` row trainable."""
        from peft import LoraConfig

        config = model.config
        extra: dict[str, Any] = {}
        if is_region_model(model):
            extra["modules_to_save"] = [
                name for name in ("region_proj", "region_geometry", "region_index")
                if hasattr(model.model, name)
            ]
        elif getattr(config, "workbench_region_token_id", None) is not None:
            # The `<region>` row was added by `load`: train it without unfreezing the whole embedding.
            extra["trainable_token_indices"] = {"embed_tokens": [int(config.workbench_region_token_id)]}
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
            **extra,
        )


# ---------------------------------------------------------------------------------------------
# Region tokens


def encode_region_tokens(box_xyxy: Sequence[float], image_wh: Sequence[int]) -> str:
    """`<region>` followed by the four location tokens of a pixel box [x1, y1, x2, y2].

    >>> encode_region_tokens([0, 0, 56, 112], (112, 112))
    '<region><|loc_0|><|loc_0|><|loc_15|><|loc_31|>'
    """
    a, b, c, d = box_to_bins(box_xyxy, image_wh)
    return REGION_TOKEN + "".join(LOC_TOKENS[i] for i in (a, b, c, d))


def box_to_bins(box_xyxy: Sequence[float], image_wh: Sequence[int]) -> tuple[int, int, int, int]:
    """Location bins (a, b, c, d) of a pixel box; ValueError naming the box if it leaves the image."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        width, height = (float(v) for v in image_wh)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"region box must be [x1, y1, x2, y2] and image size (W, H); got {box_xyxy!r}, {image_wh!r}"
        ) from err
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or width <= 0 or height <= 0:
        raise ValueError(
            f"region box {list(box_xyxy)} or image size {list(image_wh)} is not finite and positive"
        )
    if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
        raise ValueError(
            f"region box {list(box_xyxy)} lies outside the {width:g}x{height:g} image "
            "(need 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H)"
        )
    n = NUM_LOC_BINS

    def low(v: float, size: float) -> int:
        return min(int(math.floor(v / size * n)), n - 1)

    def high(v: float, size: float, start: int) -> int:
        return min(max(int(math.ceil(v / size * n)) - 1, start), n - 1)

    a, b = low(x1, width), low(y1, height)
    return a, b, high(x2, width, a), high(y2, height, b)


def bins_to_box(bins: Sequence[int]) -> tuple[float, float, float, float]:
    """The box (x1, y1, x2, y2), as fractions of the image size, that location bins cover.

    >>> bins_to_box([0, 0, 15, 31])
    (0.0, 0.0, 0.5, 1.0)
    """
    a, b, c, d = (int(v) for v in bins)
    n = NUM_LOC_BINS
    return a / n, b / n, (c + 1) / n, (d + 1) / n


def decode_region_tokens(ids: Sequence[int], tokenizer) -> list[tuple[float, float, float, float] | None]:
    """Boxes (image fractions) of every `<region>` in `ids`, in order; None for a `<region>` that
    is not followed by four location tokens (e.g. a prompt built with region_coords=False)."""
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    region_id = tokenizer.convert_tokens_to_ids(REGION_TOKEN)
    loc_ids = {tokenizer.convert_tokens_to_ids(t): i for i, t in enumerate(LOC_TOKENS)}
    boxes: list[tuple[float, float, float, float] | None] = []
    for t, token in enumerate(ids):
        if token != region_id:
            continue
        following = ids[t + 1 : t + 5]
        bins = [loc_ids.get(i) for i in following]
        boxes.append(bins_to_box(bins) if len(bins) == 4 and None not in bins else None)
    return boxes


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
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

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
    tokenizer = TokenizersBackend(
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

    Images, chat template and placeholder expansion are Qwen2.5-VL's own; only `__init__` differs,
    so `save_pretrained`/`from_pretrained` store and read just the image processor and tokenizer.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)


def make_processor(tokenizer, settings: ModelSettings) -> WorkbenchProcessor:
    """The PIL image processor sized for `settings` + `tokenizer`, with the chat template."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = settings.patch_size * settings.merge_size
    image_processor = Qwen2VLImageProcessorPil(
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


# ---------------------------------------------------------------------------------------------
# The region-feature model


class RegionQwen2_5_VLModel(Qwen2_5_VLModel):
    """Qwen2.5-VL backbone whose `<region>` embeddings carry box-pooled vision features."""

    def __init__(self, config: Qwen2_5_VLConfig):
        super().__init__(config)
        vision_dim = config.vision_config.out_hidden_size
        hidden = config.text_config.hidden_size
        self.region_proj = nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        if getattr(config, "workbench_region_geometry", False):
            self.region_geometry = nn.Linear(GEOMETRY_DIM, hidden)
        if getattr(config, "workbench_region_index", False):
            self.region_index = nn.Embedding(MAX_REGIONS, hidden)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.IntTensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        mm_encoder_outputs: dict | None = None,
        **kwargs,
    ):
        cfg = self.config
        has_image = pixel_values is not None or (mm_encoder_outputs or {}).get("image") is not None
        if (
            getattr(cfg, "workbench_region_features", False)
            and input_ids is not None
            and inputs_embeds is None
            and has_image
            and bool((input_ids == cfg.workbench_region_token_id).any())
        ):
            # Encode the images once here; the parent reuses the features through mm_encoder_outputs.
            mm_encoder_outputs = dict(mm_encoder_outputs or {})
            if mm_encoder_outputs.get("image") is None:
                mm_encoder_outputs["image"] = self.get_image_features(
                    pixel_values, image_grid_thw, **{**kwargs, "return_dict": True}
                )
                pixel_values = None
            inputs_embeds = self.get_input_embeddings()(input_ids)
            inputs_embeds = self._with_region_features(
                input_ids,
                inputs_embeds,
                mm_encoder_outputs["image"].pooler_output,
                image_grid_thw,
                position_ids,
            )
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            image_grid_thw=image_grid_thw,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            second_per_grid_ts=second_per_grid_ts,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )

    def _with_region_features(self, input_ids, inputs_embeds, image_features, image_grid_thw, position_ids):
        """Replace each `<region>` embedding (with 4 location ids after it) by its pooled features.

        image_features: one (h*w, D) tensor per image in batch order (rows of the merged grid).
        Images are matched to the runs of image placeholder tokens, in order (as Qwen2.5-VL does);
        a region uses the last image of its sample that starts before it, else the sample's first.
        Regions in samples without an image, or without location ids, keep the token embedding.
        """
        cfg = self.config
        n_bins = cfg.workbench_num_loc_bins
        length = input_ids.shape[1]
        image_features = list(image_features)
        runs = _placeholder_runs(input_ids, cfg.image_token_id)  # [(sample, start, length)] in batch order
        assert [n for _, _, n in runs] == [f.shape[0] for f in image_features], (
            f"image placeholder runs {[n for _, _, n in runs]} do not match the encoded images "
            f"{[f.shape[0] for f in image_features]}"
        )
        grids = self._merged_grids(image_features, image_grid_thw, position_ids, runs)
        images_of: dict[int, list[tuple[int, int]]] = {}
        for image, (b, start, _) in enumerate(runs):
            images_of.setdefault(b, []).append((start, image))

        targets, pooled, boxes = [], [], []
        for b, t in (input_ids == cfg.workbench_region_token_id).nonzero().tolist():
            if b not in images_of or t + 4 >= length:
                continue
            bins = input_ids[b, t + 1 : t + 5] - cfg.workbench_loc_token_start
            if not bool(((bins >= 0) & (bins < n_bins)).all()):
                continue  # plain `<region>` (no coordinates): keep the token embedding
            before = [image for start, image in images_of[b] if start < t]
            image = before[-1] if before else images_of[b][0][1]
            box = box_fractions(bins, n_bins)
            pooled.append(pool_box(image_features[image], grids[image], box))
            boxes.append(box)
            targets.append((b, t))
        if not targets:
            return inputs_embeds
        samples = [b for b, _ in targets]
        order = torch.tensor([samples[:i].count(b) for i, b in enumerate(samples)], device=inputs_embeds.device)
        features = self.region_embeddings(torch.stack(pooled), torch.stack(boxes), order)
        features = features.to(inputs_embeds.dtype)
        rows = torch.tensor(samples, device=inputs_embeds.device)
        cols = torch.tensor([t for _, t in targets], device=inputs_embeds.device)
        inputs_embeds = inputs_embeds.clone()
        inputs_embeds[rows, cols] = features
        return inputs_embeds

    def region_embeddings(self, pooled: torch.Tensor, boxes: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """(R, hidden) region features from (R, D) box-pooled vision features, (R, 4) boxes as
        fractions and (R,) region orders: the projection, plus the geometry and order terms the
        config turns on. The vector that replaces a `<region>` embedding (and that the perception
        warm-up, `workbench.perception`, trains read-outs on)."""
        proj_dtype = next(self.region_proj.parameters()).dtype
        features = self.region_proj(pooled.to(proj_dtype))
        if hasattr(self, "region_geometry"):
            features = features + self.region_geometry(box_encoding(boxes).to(proj_dtype))
        if hasattr(self, "region_index"):
            features = features + self.region_index(order.clamp(max=MAX_REGIONS - 1))
        return features

    def _merged_grids(self, image_features, image_grid_thw, position_ids, runs) -> list[tuple[int, int]]:
        """(rows, cols) of merged image tokens per image: from image_grid_thw in training and plain
        forward; in `generate` (which pre-encodes images and keeps only the 3D position ids) from
        the height/width rotary positions of each image's placeholder run."""
        m = self.config.vision_config.spatial_merge_size
        if image_grid_thw is not None:
            grids = [(int(g[1]) // m, int(g[2]) // m) for g in image_grid_thw]
        elif position_ids is not None and position_ids.ndim == 3:
            grids = []
            for b, start, n in runs:
                hs, ws = position_ids[-2, b, start : start + n], position_ids[-1, b, start : start + n]
                grids.append((int(hs.max() - hs.min()) + 1, int(ws.max() - ws.min()) + 1))
        else:
            raise ValueError("region features need image_grid_thw (or 3D position_ids) with the images")
        for (h, w), feats in zip(grids, image_features):
            assert h * w == feats.shape[0], (
                f"merged grid {h}x{w} does not match {feats.shape[0]} image features"
            )
        return grids


def _placeholder_runs(input_ids: torch.Tensor, token_id: int) -> list[tuple[int, int, int]]:
    """(sample, start, length) of every run of consecutive `token_id`s, in batch order."""
    runs = []
    for b, row in enumerate((input_ids == token_id).tolist()):
        t = 0
        while t < len(row):
            if row[t]:
                start = t
                while t < len(row) and row[t]:
                    t += 1
                runs.append((b, start, t - start))
            else:
                t += 1
    return runs


MAX_REGIONS = 8
"""Region orders `region_index` tells apart (later regions share the last embedding)."""

GEOMETRY_FREQUENCIES = 4
"""Octaves of the box encoding: sin/cos of 2^k * pi * value, k = 0..3."""
GEOMETRY_DIM = 8 * (1 + 2 * GEOMETRY_FREQUENCIES)
"""Width of `box_encoding`: 8 box values, each raw and as sin/cos at every octave."""


def box_encoding(boxes: torch.Tensor) -> torch.Tensor:
    """(R, GEOMETRY_DIM) Fourier features of (R, 4) boxes given as fractions (x1, y1, x2, y2).

    The values encoded are the four edges, the center and the size (width, height), each in [0, 1]
    (size scaled up by 2 so that small boxes still spread). The bottom edge y2 carries most of the
    depth cue for objects standing on the floor; the size, with the object's kind, the rest.

    >>> box_encoding(torch.tensor([[0.1, 0.2, 0.3, 0.6]])).shape
    torch.Size([1, 72])
    """
    x1, y1, x2, y2 = boxes.to(torch.float32).unbind(-1)
    values = torch.stack([x1, y1, x2, y2, (x1 + x2) / 2, (y1 + y2) / 2, 2 * (x2 - x1), 2 * (y2 - y1)], -1)
    scales = math.pi * 2.0 ** torch.arange(GEOMETRY_FREQUENCIES, device=boxes.device, dtype=torch.float32)
    angles = values[..., None] * scales  # (R, 8, F)
    return torch.cat([values, angles.sin().flatten(-2), angles.cos().flatten(-2)], -1)


def ordered_embeddings(count: int, width: int, std: float) -> torch.Tensor:
    """(count, width) sinusoid rows of standard deviation `std`: nearby indices get similar rows.

    Angular rates run geometrically from pi/2 per index (neighbours differ) down to pi/(2*count)
    (the whole range is one monotone sweep), as in transformer position encodings.

    >>> e = torch.nn.functional.normalize(ordered_embeddings(32, 64, 0.02), dim=-1)
    >>> bool((e[3] @ e[4]) > (e[3] @ e[20]) + 0.3)
    True
    """
    index = torch.arange(count, dtype=torch.float32)[:, None]
    half = (width + 1) // 2
    rates = (math.pi / 2) * (1.0 / count) ** (torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
    table = torch.zeros(count, width)
    table[:, 0::2] = torch.sin(index * rates)
    table[:, 1::2] = torch.cos(index * rates)[:, : width // 2]
    return table / table.std() * std


def box_fractions(bins: Sequence[int] | torch.Tensor, n_bins: int = NUM_LOC_BINS, device=None) -> torch.Tensor:
    """(4,) box (x1, y1, x2, y2) as fractions of the image from its location bins: the cells cover
    from the start of the first bin to the end of the last.

    >>> box_fractions([0, 8, 15, 31], 32).tolist()
    [0.0, 0.25, 0.5, 1.0]
    """
    start = torch.as_tensor(bins, dtype=torch.float32, device=device)
    return (start + torch.tensor([0.0, 0.0, 1.0, 1.0], device=start.device)) / n_bins


def pool_box(features: torch.Tensor, grid: tuple[int, int], box: torch.Tensor) -> torch.Tensor:
    """(D,) mean of one image's (h*w, D) merged-patch features over `box` (fractions), each cell
    weighted by the share of it the box covers."""
    h, w = grid
    weights = _cover(box[1], box[3], h)[:, None] * _cover(box[0], box[2], w)[None, :]  # (h, w)
    weights = weights.reshape(-1).to(features.dtype)
    return weights @ features / weights.sum()


def region_backbone(model: nn.Module) -> RegionQwen2_5_VLModel:
    """The `RegionQwen2_5_VLModel` inside `model` (the built-in model, maybe PEFT-wrapped)."""
    for module in model.modules():
        if isinstance(module, RegionQwen2_5_VLModel):
            return module
    raise ValueError(f"{type(model).__name__} has no region backbone (not the built-in model)")


def _cover(lo: torch.Tensor, hi: torch.Tensor, cells: int) -> torch.Tensor:
    """Fraction of each of `cells` equal cells of [0, 1] covered by [lo, hi] (in cell widths)."""
    edges = torch.arange(cells + 1, device=lo.device, dtype=torch.float32) / cells
    return (torch.minimum(hi, edges[1:]) - torch.maximum(lo, edges[:-1])).clamp(min=0) * cells


class RegionQwen2_5_VLForConditionalGeneration(Qwen2_5_VLForConditionalGeneration):
    """Qwen2.5-VL with region features (`RegionQwen2_5_VLModel` as its backbone)."""

    def __init__(self, config: Qwen2_5_VLConfig):
        # Same body as the parent's __init__, with the region backbone in place of the plain one.
        Qwen2_5_VLPreTrainedModel.__init__(self, config)
        self.model = RegionQwen2_5_VLModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()


def publish_model_class() -> None:
    """Make `transformers.RegionQwen2_5_VLForConditionalGeneration` resolve to our class.

    TRL's GRPO builds its reference model with `getattr(transformers, config.architectures[0])`.
    Importing `transformers.processing_utils` replaces `sys.modules["transformers"]` once (it re-runs
    the package's lazy init), so the name goes on the current module object as well as on ours.
    """
    name = RegionQwen2_5_VLForConditionalGeneration.__name__
    # Libraries imported before that replacement (TRL among them) hold the older module object
    # as their `transformers` attribute: reach those too, whoever imported first.
    holders = [transformers, sys.modules.get("transformers")]
    holders += [getattr(m, "transformers", None) for m in list(sys.modules.values())]
    for module in {
        id(m): m for m in holders if isinstance(m, types.ModuleType) and m.__name__ == "transformers"
    }.values():
        if getattr(module, name, None) is not RegionQwen2_5_VLForConditionalGeneration:
            setattr(module, name, RegionQwen2_5_VLForConditionalGeneration)


publish_model_class()


def is_region_model(model: nn.Module) -> bool:
    """True for the built-in model with live region features (unwraps PEFT)."""
    config = getattr(model, "config", None)
    return (
        bool(getattr(config, "workbench_region_features", False))
        and getattr(config, "workbench_loc_token_start", None) is not None
    )


def uses_region_coords(model: nn.Module) -> bool:
    """Whether prompts for `model` should carry location tokens (`prompts.to_messages(region_coords=...)`)."""
    return is_region_model(model)


def prompt_options(model: nn.Module) -> dict[str, Any]:
    """How to prompt `model`: `prompts.to_messages(row, path, **prompt_options(model))`. Location
    tokens for the built-in model; the system prompt style and option style it was built with (a
    real pretrained VLM, or a built-in model saved before a setting existed, gets the full prompts
    and "A. left" options)."""
    config = getattr(model, "config", None)
    return {"region_coords": uses_region_coords(model),
            "system": str(getattr(config, "workbench_system_prompts", "full")),
            "option_style": str(getattr(config, "workbench_option_style", "letter_first"))}


def make_config(tokenizer, settings: ModelSettings) -> Qwen2_5_VLConfig:
    """The Qwen2.5-VL config of the built-in model for `tokenizer` and `settings`."""
    ids = tokenizer.convert_tokens_to_ids
    head_dim = settings.hidden_size // settings.num_heads
    half = head_dim // 2
    t = half // 4
    hw = (half - t) // 2
    mrope_section = [t, hw, half - t - hw]  # temporal, height, width slices of the rotary half-dim
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=settings.hidden_size,
            intermediate_size=settings.intermediate_size,
            num_hidden_layers=settings.num_layers,
            num_attention_heads=settings.num_heads,
            num_key_value_heads=settings.num_kv_heads,
            max_position_embeddings=settings.max_position_embeddings,
            max_window_layers=settings.num_layers,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": settings.rope_theta,
                "mrope_section": mrope_section,
            },
            bos_token_id=None,
            eos_token_id=ids(EOS_TOKEN),
            pad_token_id=ids(PAD_TOKEN),
        ),
        vision_config=dict(
            depth=settings.vision_layers,
            hidden_size=settings.vision_hidden_size,
            intermediate_size=settings.vision_intermediate_size,
            num_heads=settings.vision_heads,
            patch_size=settings.patch_size,
            spatial_merge_size=settings.merge_size,
            temporal_patch_size=1,
            out_hidden_size=settings.hidden_size,
            window_size=settings.image_size,  # one window covers the image ...
            fullatt_block_indexes=list(range(settings.vision_layers)),  # ... and every block attends globally
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=settings.tie_word_embeddings,
        workbench_region_features=settings.region_features,
        workbench_region_geometry=settings.region_features and settings.region_geometry,
        workbench_region_index=settings.region_features and settings.region_index,
        workbench_region_token_id=ids(REGION_TOKEN),
        workbench_loc_token_start=ids(LOC_TOKENS[0]),
        workbench_num_loc_bins=NUM_LOC_BINS,
        workbench_system_prompts=settings.system_prompts,
        workbench_option_style=settings.option_style,
        workbench_settings=asdict(settings),
    )


def build_tiny(corpus: Iterable[str], settings: ModelSettings | None = None):
    """(model, processor): a randomly initialised tiny Qwen2.5-VL with region features and a
    tokenizer trained on `corpus` (pass `prompts.corpus(rows, settings.system_prompts)`: questions,
    targets, system prompts)."""
    settings = settings or ModelSettings()
    tokenizer = train_tokenizer(corpus, settings.vocab_size, option_tokens=settings.option_style == "letter_after")
    processor = make_processor(tokenizer, settings)
    config = make_config(tokenizer, settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = RegionQwen2_5_VLForConditionalGeneration(config)
    if config.workbench_region_geometry:  # off with region_features too: no location tokens then
        first = config.workbench_loc_token_start
        with torch.no_grad():
            table = model.get_input_embeddings().weight
            table[first : first + NUM_LOC_BINS] = ordered_embeddings(
                NUM_LOC_BINS, table.shape[1], std=float(config.text_config.initializer_range)
            )
    _set_generation_tokens(model, tokenizer)
    return model, processor


def _set_generation_tokens(model, tokenizer) -> None:
    gen = model.generation_config
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = None


# ---------------------------------------------------------------------------------------------
# Loading


def load(
    name_or_path: str | Path,
    lora: LoraSettings | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
):
    """(model, processor) from a folder written by `save_pretrained` of the built-in model, or a
    real pretrained VLM (any AutoModelForImageTextToText, e.g. a Qwen2.5-VL) by hub name or path.

    A real VLM gets a `<region>` token (embeddings resized only if the vocabulary grows) and is used
    with plain `<region>` tokens and the drawn marks (`uses_region_coords(model)` is False). With
    `lora`, the model comes back as a PEFT model. Missing or corrupt checkpoints raise
    FileNotFoundError / ValueError naming the path.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    name = str(name_or_path)
    local = Path(name).expanduser()
    if local.exists() or _looks_local(name):
        if not local.exists():
            raise FileNotFoundError(f"model checkpoint folder {name!r} does not exist")
        if not local.is_dir():
            raise FileNotFoundError(f"model checkpoint {name!r} is not a folder")
        config_file = local / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"model checkpoint {name!r} has no config.json")
        try:
            json.loads(config_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"model checkpoint {name!r}: config.json is corrupt ({err})") from err
        name = str(local)
    publish_model_class()
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError, KeyError) as err:
        raise FileNotFoundError(f"cannot read a model config from {name!r}: {err}") from err

    try:
        if getattr(config, "workbench_region_features", None) is not None:
            model = RegionQwen2_5_VLForConditionalGeneration.from_pretrained(name, dtype=dtype)
            processor = WorkbenchProcessor.from_pretrained(name)
        else:
            model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype)
            processor = _load_pretrained_processor(name, config)
    except OSError as err:
        raise FileNotFoundError(f"cannot load model weights or processor from {name!r}: {err}") from err
    except Exception as err:  # safetensors / json decode errors of a corrupt checkpoint
        if type(err).__name__ in ("SafetensorError", "HeaderTooLarge", "JSONDecodeError"):
            raise ValueError(f"model checkpoint {name!r} is corrupt: {err}") from err
        raise
    if not is_region_model(model):
        _add_region_token(model, processor)
    tokenizer = processor.tokenizer
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora.to_peft_config(model))
    return model, processor


def _looks_local(name: str) -> bool:
    """A path rather than a hub id: absolute, relative with ./ or ../, ~, or more than one '/'."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def _load_pretrained_processor(name: str, config):
    """The checkpoint's processor; for the Qwen-VL family without torchvision (no video processor)
    the image-only `WorkbenchProcessor` over the same image processor and tokenizer."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name)
    except (ImportError, ValueError, TypeError, AttributeError) as err:
        if config.model_type not in ("qwen2_5_vl", "qwen2_vl"):
            raise ValueError(f"cannot build the processor of {name!r}: {err}") from err
        processor = None
    if not isinstance(processor, ProcessorMixin):
        if config.model_type not in ("qwen2_5_vl", "qwen2_vl"):
            raise ValueError(f"{name!r} has no multimodal processor (got {type(processor).__name__})")
        processor = WorkbenchProcessor.from_pretrained(name)
    if processor.chat_template is None:
        processor.chat_template = getattr(processor.tokenizer, "chat_template", None) or CHAT_TEMPLATE
    return processor


def _add_region_token(model, processor) -> None:
    """Give a pretrained VLM the `<region>` token (resizing embeddings only if the vocab grows)."""
    from tokenizers import AddedToken

    tokenizer = processor.tokenizer
    if REGION_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(REGION_TOKEN, normalized=False, special=False)])
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    model.config.workbench_region_token_id = tokenizer.convert_tokens_to_ids(REGION_TOKEN)


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
):
    """Left-padded tensors (input_ids, attention_mask, pixel_values, image_grid_thw, mm_token_type_ids)
    of the prompts of `rows` on `path`, through `prompts.to_messages` (`system`: its prompt style,
    `option_style`: how options are listed)."""
    from workbench import prompts

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
) -> list[str]:
    """Completions (special tokens removed) of `rows` on `path` (lor | dtr | auto), batched with
    left padding, one `model.generate` per batch. Used by evaluation, `workbench ask` and the demo.
    The prompt follows `prompt_options(model)` unless `region_coords`, `system` or `option_style`
    say otherwise."""
    options_of_model = prompt_options(model)
    if region_coords is None:
        region_coords = options_of_model["region_coords"]
    if system is None:
        system = options_of_model["system"]
    if option_style is None:
        option_style = options_of_model["option_style"]
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
                                 option_style=option_style)
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            ids = model.generate(
                **batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **options
            )
            new = ids[:, batch["input_ids"].shape[1] :]
            out += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out
