"""The built-in model's architecture: Qwen2.5-VL with region features in place of `<region>`
tokens. Taught in `notebooks/03_cold_start_sft.ipynb`.

Region features (SPEC section 3, docs/design.md "Regions inside the model"). TRL passes only
`input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw` (and `mm_token_type_ids`) to the
model, so each region's box travels inside the token ids:

    <region><|loc_a|><|loc_b|><|loc_c|><|loc_d|>

a..d are x1, y1, x2, y2 quantized to `NUM_LOC_BINS` bins of the image width / height: the box
covers bins a..c horizontally and b..d vertically, i.e. [a/N, (c+1)/N] x [b/N, (d+1)/N] of the image.
`RegionQwen2_5_VLModel` (the backbone) reads the four location ids after every `<region>` id,
averages the vision features of its sample's image weighted by how much of each cell the box
covers, projects them (`region_proj`) and puts the result in place of the `<region>` token
embedding. Which features (`REGION_POOLS`, the config's `workbench_region_pool`): "patch", the
vision tower's patch features with the 3D positional embedding added, on the patch grid, before
the merger (SpatialRGPT's region extractor pools the encoder's features, not the projector's);
or "merged", the merger's output on the 2x coarser grid of image tokens (models saved before the
setting existed). The work happens in the backbone, not in the LM-head wrapper,
because TRL's fused LM head (SFT and GRPO) calls the backbone directly.

Identification on disk: `model_type` stays `qwen2_5_vl` (AutoConfig and processors work), the
config carries `workbench_region_features` plus the token ids, and `architectures` names
`RegionQwen2_5_VLForConditionalGeneration`. `load` dispatches on the config flag. The class is
also published as an attribute of the `transformers` module on import, because TRL's GRPO builds
its reference model with `getattr(transformers, config.architectures[0])`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
)

from workbench import compat
from workbench.model import depth
from workbench.tasks.locations import NUM_LOC_BINS

# ---------------------------------------------------------------------------------------------
# The 3D positional embedding (SPEC section 3)

REGION_POOLS = ("patch", "merged")
"""Values of the config's `workbench_region_pool`: the features region pooling averages (module
docstring); a config without it is "merged"."""

DEPTH_FREQUENCIES = 8
"""sin / cos frequencies per coordinate, log-spaced from 0.5 to 64 rad per unit."""


class DepthEmbedding(nn.Module):
    """Per-patch points (x, y, z) -> an embedding of the vision width: the raw xyz plus sin / cos at
    `DEPTH_FREQUENCIES` log-spaced frequencies, then Linear, LayerNorm, GELU, Linear; the last layer
    starts near zero, so a fresh embedding leaves the vision features as they were. Patches
    without depth (`valid` 0) get zero."""

    def __init__(self, width: int, frequencies: int = DEPTH_FREQUENCIES):
        super().__init__()
        self.frequencies = frequencies  # computed in forward: a non-persistent buffer is left
        # uninitialised when `from_pretrained` builds the model on the meta device
        features = 3 * (1 + 2 * frequencies)
        self.net = nn.Sequential(nn.Linear(features, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, width))
        self.reset_last()

    def reset_last(self) -> None:
        """Near-zero output layer (also after a from-scratch model's weight initialisation)."""
        nn.init.normal_(self.net[-1].weight, std=1e-4)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # xyz: (N, 3), valid: (N, 1) -> (N, width)
        scales = 2.0 ** torch.linspace(-1, 6, self.frequencies, device=xyz.device, dtype=xyz.dtype)
        angles = xyz[..., None] * scales  # (N, 3, F)
        features = torch.cat([xyz, angles.sin().flatten(1), angles.cos().flatten(1)], dim=-1)
        # the angles in float32 (bf16 keeps 8 bits of 64 * z), the layers in the model's dtype
        dtype = self.net[0].weight.dtype
        return self.net(features.to(dtype)) * valid.to(dtype)


# ---------------------------------------------------------------------------------------------
# The region-feature model


class RegionQwen2_5_VLModel(Qwen2_5_VLModel):
    """Qwen2.5-VL backbone whose `<region>` embeddings carry box-pooled vision features, and whose
    vision patches may carry a 3D positional embedding. A real pretrained Qwen2.5-VL loaded with a
    depth add-on (`load(..., depth_embedding=...)`) has the embedding and no region projection
    (its config has no `workbench_region_features`)."""

    def __init__(self, config: Qwen2_5_VLConfig):
        super().__init__(config)
        hidden = config.text_config.hidden_size
        self.region_pool = str(getattr(config, "workbench_region_pool", "merged"))
        if self.region_pool not in REGION_POOLS:
            raise ValueError(f"workbench_region_pool {self.region_pool!r} is not one of {REGION_POOLS}")
        if self.region_pool == "patch":
            vision_dim = config.vision_config.hidden_size
        else:
            vision_dim = config.vision_config.out_hidden_size
        if getattr(config, "workbench_region_features", None) is not None:
            self.region_proj = nn.Sequential(nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        if getattr(config, "workbench_region_geometry", False):
            self.region_geometry = nn.Linear(GEOMETRY_DIM, hidden)
        if getattr(config, "workbench_region_index", False):
            self.region_index = nn.Embedding(MAX_REGIONS, hidden)
        self.depth_embed = None
        self._pending_depth = None  # (N, vision width) embedding of the current images, window order
        if getattr(config, "workbench_depth_embedding", "none") != "none":
            self.depth_embed = DepthEmbedding(config.vision_config.hidden_size)
            self.visual.merger.register_forward_pre_hook(self._add_depth_embedding)
        self._patches = None  # the merger's input of the current images, window order ("patch" pooling)
        if getattr(config, "workbench_region_features", None) is not None and self.region_pool == "patch":
            # after the depth hook: the hooks run in order, so it sees the patches with the embedding
            self.visual.merger.register_forward_pre_hook(self._keep_patches)

    # -- the 3D positional embedding ------------------------------------------------------------
    def get_image_features(self, pixel_values, image_grid_thw=None, **kwargs):
        """Qwen2.5-VL's image features, with the depth points the processor appended (`depth.
        POINT_COLUMNS` columns of `pixel_values`) stripped and, when the model has a depth
        embedding, embedded and added to the patch features before the merger."""
        visual = self.visual
        width = visual.config.in_channels * visual.config.temporal_patch_size * visual.config.patch_size**2
        if pixel_values.shape[-1] == width + depth.POINT_COLUMNS:
            pixel_values, points = pixel_values[:, :width], pixel_values[:, width:]
            if self.depth_embed is not None:
                xyz = points[:, 0:3] if self.config.workbench_depth_embedding == "metric" else points[:, 3:6]
                embedding = self.depth_embed(xyz.float(), points[:, 6:7].float())  # (N, D), patch order
                order = compat.vision_window_index(visual, image_grid_thw)
                # the order the vision blocks hold the patches in when they reach the merger
                self._pending_depth = visual.permute_input_for_window_attn(embedding, order, seq_len=embedding.shape[0])
        elif pixel_values.shape[-1] != width:
            raise ValueError(f"pixel_values rows have {pixel_values.shape[-1]} values; this model reads {width} "
                             f"(or {width + depth.POINT_COLUMNS} with depth points)")
        keep = hasattr(self, "region_proj") and self.region_pool == "patch"
        self._patches = [] if keep else None
        try:
            output = super().get_image_features(pixel_values, image_grid_thw, **kwargs)
            if keep:
                _attach_patches(output, self._patches[0], compat.vision_window_index(visual, image_grid_thw),
                                image_grid_thw, visual.spatial_merge_unit)
            return output
        finally:
            self._pending_depth = None
            self._patches = None

    def _keep_patches(self, module, args):
        """Forward pre-hook of the vision merger: keep its input for region pooling ("patch")."""
        if self._patches is not None:
            self._patches.append(args[0])

    def _add_depth_embedding(self, module, args):
        """Forward pre-hook of the vision merger: patch features + the pending depth embedding."""
        if self._pending_depth is None:
            return None
        hidden = args[0]
        assert hidden.shape == self._pending_depth.shape, (hidden.shape, self._pending_depth.shape)
        return (hidden + self._pending_depth.to(hidden.dtype), *args[1:])

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,  # transformers 5.x name (past_key_values is deprecated)
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
            image = mm_encoder_outputs["image"]
            inputs_embeds = self._with_region_features(
                input_ids,
                inputs_embeds,
                image.pooler_output,
                image_grid_thw,
                position_ids,
                patch_features(image) if self.region_pool == "patch" else None,
            )
        if (
            not getattr(cfg, "workbench_region_box_text", True)
            and input_ids is not None
            and bool((input_ids == cfg.workbench_region_token_id).any())
        ):
            if inputs_embeds is None:
                inputs_embeds = self.get_input_embeddings()(input_ids)
            inputs_embeds = hide_box_tokens(input_ids, inputs_embeds, cfg)
        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
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

    def _with_region_features(self, input_ids, inputs_embeds, image_features, image_grid_thw, position_ids,
                              patches=None):
        """Replace each `<region>` embedding (with 4 location ids after it) by its pooled features.

        image_features: one (h*w, D) tensor per image in batch order (rows of the merged grid);
        patches: None to pool those, else one (h*w*m*m, d) tensor of patch features per image, each
        image token's m x m patches together (the processor's order; `pool_box_patches`).
        Images are matched to the runs of image placeholder tokens, in order (as Qwen2.5-VL does);
        a region uses the image its fifth location id names (`<|loc_{k-1}|>`: its sample's k-th
        image, a multi-view prompt), else the last image of its sample that starts before it, else
        the sample's first (`_region_image`).
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
            image = _region_image(images_of[b], t, input_ids[b, t + 5] - cfg.workbench_loc_token_start
                                  if t + 5 < length else -1, n_bins)
            box = box_fractions(bins, n_bins)
            if patches is None:
                pooled.append(pool_box(image_features[image], grids[image], box))
            else:
                pooled.append(pool_box_patches(patches[image], grids[image], self.config.vision_config.spatial_merge_size,
                                               box))
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
        warm-up, `experiments.perception`, trains read-outs on)."""
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


def hide_box_tokens(input_ids: torch.Tensor, inputs_embeds: torch.Tensor, config) -> torch.Tensor:
    """`inputs_embeds` with the location tokens that follow each `<region>` (its four box bins and
    the optional fifth naming its image) set to zero: the box stays in the ids, where region pooling
    reads it, but not in what the language model reads (`ModelSettings.region_box_text` False).
    Location tokens elsewhere (a 2D box the model writes) are left as they are."""
    start, n_bins = config.workbench_loc_token_start, config.workbench_num_loc_bins
    is_loc = (input_ids >= start) & (input_ids < start + n_bins)
    after = torch.zeros_like(is_loc)
    region = input_ids == config.workbench_region_token_id
    run = region
    for _ in range(5):  # loc tokens right after a region token, or after such a loc token
        run = torch.nn.functional.pad(run[:, :-1], (1, 0)) & is_loc
        after |= run
    if not bool(after.any()):
        return inputs_embeds
    return inputs_embeds.masked_fill(after[..., None], 0.0)


def _region_image(images: list[tuple[int, int]], position: int, frame_bin: Any, n_bins: int) -> int:
    """The image a region at token `position` pools from, among its sample's `images` ((start,
    image index) in order): the one its fifth location bin names (0-based; a frame past the last
    image falls back), else the last image starting before it, else the first.

    >>> _region_image([(3, 0), (40, 1)], 90, 0, 32), _region_image([(3, 0), (40, 1)], 90, -1, 32)
    (0, 1)
    """
    frame = int(frame_bin)
    if 0 <= frame < min(n_bins, len(images)):
        return images[frame][1]
    before = [image for start, image in images if start < position]
    return before[-1] if before else images[0][1]


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


def pool_box_patches(patches: torch.Tensor, grid: tuple[int, int], merge: int, box: torch.Tensor) -> torch.Tensor:
    """(d,) mean of one image's patch features over `box` (fractions), each patch weighted by the
    share of it the box covers. `patches` (h*w*merge**2, d) holds, for each image token of the
    (h, w) merged grid in row order, its merge x merge patches in row order (Qwen2.5-VL's order)."""
    h, w = grid
    weights = _cover(box[1], box[3], h * merge)[:, None] * _cover(box[0], box[2], w * merge)[None, :]
    weights = weights.reshape(h, merge, w, merge).permute(0, 2, 1, 3).reshape(-1).to(patches.dtype)
    return weights @ patches / weights.sum()


def _attach_patches(output, patches: torch.Tensor, window_index: torch.Tensor, grid_thw: torch.Tensor,
                    unit: int) -> None:
    """Give a vision output the patch features of each image (`patch_features`), back in the
    processor's order from the window order the merger saw them in."""
    rows = patches.reshape(-1, unit, patches.shape[-1])[torch.argsort(window_index)].reshape(patches.shape)
    per_image = torch.split(rows, grid_thw.prod(-1).tolist())
    # keyed by the merged tensors: `generate` may repeat an output's images (num_return_sequences)
    output.workbench_patches = {id(merged): p for merged, p in zip(output.pooler_output, per_image)}


def patch_features(output) -> list[torch.Tensor]:
    """The patch features of each image of a vision output of a "patch"-pooling model's
    `get_image_features`, in `pooler_output`'s order (what `pool_box_patches` averages)."""
    table = getattr(output, "workbench_patches", None)
    if table is None:
        raise ValueError("these image features were not made by this model's get_image_features: "
                         "region pooling on patches needs the patch features")
    return [table[id(merged)] for merged in output.pooler_output]


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
        compat.init_qwen2_5_vl_pretrained(self, config)
        self.model = RegionQwen2_5_VLModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def generate(self, *args, **kwargs):
        """Hugging Face's `generate`, with the decode loop of `workbench.model.decoding` when the
        call is one it supports (greedy or sampled decoding of token ids, no beams or extra
        outputs): the same tokens for greedy decoding, about twice as fast on a CPU for GRPO's
        rollouts (`benchmarks/grpo_generate.py`)."""
        from workbench.model import decoding

        if not args and decoding.ENABLED:
            config, model_kwargs = self._prepare_generation_config(kwargs.get("generation_config"),
                                                                   **{k: v for k, v in kwargs.items()
                                                                      if k != "generation_config"})
            if decoding.supports(self, config, model_kwargs):
                return decoding.decode(self, config, **model_kwargs)
        return super().generate(*args, **kwargs)


def publish_model_class() -> None:
    """Make `transformers.RegionQwen2_5_VLForConditionalGeneration` resolve to our class (TRL's GRPO
    builds its reference model with `getattr(transformers, config.architectures[0])`)."""
    compat.publish_on_transformers(RegionQwen2_5_VLForConditionalGeneration)


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


def uses_depth(model: nn.Module) -> bool:
    """Whether `model` embeds depth (the built-in model, or a pretrained one with the depth add-on):
    prompts for it should carry the row's depth (`depth.row_image`)."""
    return any(isinstance(m, RegionQwen2_5_VLModel) and m.depth_embed is not None for m in model.modules())


def prompt_options(model: nn.Module) -> dict[str, Any]:
    """How to prompt `model`: `prompts.to_messages(row, path, **prompt_options(model))`. Location
    tokens for the built-in model; the system prompt style and option style it was built with (a
    real pretrained VLM, or a built-in model saved before a setting existed, gets the full prompts
    and "A. left" options)."""
    config = getattr(model, "config", None)
    return {"region_coords": uses_region_coords(model),
            "system": str(getattr(config, "workbench_system_prompts", "full")),
            "option_style": str(getattr(config, "workbench_option_style", "letter_first"))}
