"""Settings of the model: `ModelSettings` (the built-in tiny Qwen2.5-VL's size and prompting) and
`LoraSettings` (adapters for a real pretrained VLM), with their profile presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from workbench.model.architecture import REGION_POOLS, is_region_model
from workbench.settings import from_preset
from workbench.tasks.prompts import OPTION_STYLES, SYSTEM_STYLES

DEPTH_MODES = ("none", "relative", "metric")
"""Values of `ModelSettings.depth_embedding`: which point map the model embeds (`depth.py`)."""


REGION_BOXES = {"tokens": dict(region_box_text=True, region_geometry=True),
                "pooled": dict(region_box_text=False, region_geometry=False)}
"""How a new built-in model's language model learns where a region is (`SFTSettings.region_box`):
"tokens", from the box itself (its location tokens and a Fourier encoding of it added to the region
feature; the profiles'), or "pooled", only from what the box pools (the image and its 3D positional
embedding), as the paper's model does."""


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
    region_box_text: bool = True
    """The language model reads each region's location tokens (its box, as tokens after `<region>`).
    False: those tokens reach it with zero embeddings, so a region's place reaches the model only
    through what its box pools (the patch features with the 3D positional embedding), as in the
    paper's model, whose regions are marks in the image and pooled features; the box still picks
    what is pooled. With `region_geometry` off too, a blank image knows nothing of where a region is."""
    region_index: bool = True
    """Add a learned embedding of the region's order in its sample (first, second, ...) to its
    region feature. Traces name the regions in question order, and without it the k-th region can
    only be told apart by counting; with it, a trace finds "its" region by content (issue #3: on a
    two-category set with a one-line system prompt, teacher-forced label copying after 300 steps
    rose from 0.35 to 0.59)."""
    region_pool: str = "patch"
    """The vision features a region's box averages (`REGION_POOLS`): "patch", the vision tower's
    patch features with the 3D positional embedding, before the merger, on the 16x16 patch grid of
    a 112 px image (as SpatialRGPT's region extractor pools the encoder's features); or "merged",
    the merger's output on the 8x8 grid of image tokens (issue #19 measured both:
    docs/experiments.md, "Region pooling before the merger"). Saved in the config."""
    depth_embedding: str = "metric"
    """The 3D positional embedding added to the vision patch features before the merger (and so
    before region pooling), from the depth an image carries (`depth.attach`): "metric" (camera-frame
    points from z-depth and intrinsics), "relative" (the released SR-ReaL model's pseudo point map
    from relative depth, no intrinsics) or "none". Saved in the config; an image without depth runs
    with the embedding off."""
    system_prompts: str = "short"
    """System prompts the model is trained and asked with: "short" (one line per path) or "full"
    (`prompts.SYSTEM_STYLES`). Saved in the config; `prompt_options(model)` reads it back."""
    option_style: str = "letter_first"
    """How choice options are listed in the prompt (`prompts.OPTION_STYLES`): "letter_first"
    ("A. left") or "letter_after" ("- left (A)", with the letters " (A)".. as single tokens), which
    makes the letter of a trace's conclusion one induction copy. Saved in the config;
    `prompt_options(model)` reads it back. An ablation, not the default: measured in
    docs/experiments.md ("Option styles")."""
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
        if self.region_pool not in REGION_POOLS:
            raise ValueError(f"region_pool must be one of {REGION_POOLS}, got {self.region_pool!r}")
        if self.depth_embedding not in DEPTH_MODES:
            raise ValueError(f"depth_embedding must be one of {DEPTH_MODES}, got {self.depth_embedding!r}")
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
        """A `peft.LoraConfig` for `model`: region modules and the depth embedding fully trained, a
        pretrained VLM's `<region>` row trainable."""
        from peft import LoraConfig

        config = model.config
        extra: dict[str, Any] = {}
        backbone = getattr(model, "model", None)
        # fully trained: the region modules of the built-in model, the depth embedding of either
        modules = [name for name in ("region_proj", "region_geometry", "region_index", "depth_embed")
                   if getattr(backbone, name, None) is not None]
        if modules:
            extra["modules_to_save"] = modules
        if not is_region_model(model) and getattr(config, "workbench_region_token_id", None) is not None:
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
