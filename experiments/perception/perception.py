"""Region perception warm-up: teach a fresh built-in model's vision side to see what is inside a
region before cold-start SFT. A study that no profile runs: `warm_start.py` beside this file
applies it to a fresh built-in model and saves that model for `workbench sft --model`.

Why (issue #3). A real VLM starts from a pretrained vision encoder; the built-in model starts
from a random one, and SFT trains it only through the few answer tokens that depend on it. Linear
probes on the region features of a default-profile SFT model (`probe`, run on val objects) found
them nearly blind: object color 0.58 and object kind 0.21 (chance 0.18), while the box geometry
the model is also given predicts the object's x, y, z and size with correlations 0.69-0.98 that
its traces never used (`think_corr` about 0). This stage trains the vision tower and the region
projection on every object of the training images, with small linear heads that read the region
feature (`RegionQwen2_5_VLModel.region_embeddings`, the very vector that replaces a `<region>`
token) and predict:

- the object's color and kind (cross-entropy);
- its camera-frame center x, y, z, its height above the floor, its width (larger horizontal
  side) and its height (standardised, smooth L1).

Each object is seen as a box region (its visible 2D box) or, like the data's point regions, as a
small square around its projected center, with the region's order drawn at random so that no
order embedding stands in for the content. The heads are thrown away afterwards: what stays is a
region feature in which these quantities are linear directions, the form a language model reads
most easily. It is a plain PyTorch loop over images only (no language model forward, so a step
costs a fraction of an SFT step), seeded, and recorded in the config
(`workbench_perception_warmup_steps`), so a model is warmed once.

The describe warm-up (`describe_warm_up`) then trains the whole model to write what a marked
region holds ("The green chair in the red box is at x = 81 px, 2.13 m from the camera and 0.43 m
above the floor, and measures 0.40 x 0.46 x 0.86 m."), in the traces' own words.

Neither is part of the library (no profile turned them on; `warm_start.py` runs them). Measured on the default profile (issue #3, docs/design.md): the read-outs learn
(held out: color 0.81, x 0.97, z 0.71 through box regions; describe digits 0.52 teacher-forced),
but after SFT the traces' numbers still do not follow the scene and choice accuracy stays at chance.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

CONFIG_KEY = "workbench_perception_warmup_steps"
"""Config attribute recording the perception warm-up steps a model has had (absent = none)."""

TARGETS = ("x", "y", "z", "floor_height", "width", "height")
"""Regression targets of a region: camera-frame center (m), center height above the floor (m),
max(sx, sy) and sz of its upright box (m)."""


@dataclass(frozen=True)
class RegionTarget:
    """One object seen through one region of one image."""

    image: int
    """Index into the warm-up's image list."""
    box: tuple[float, float, float, float]
    """The object's visible 2D box in pixels (x1, y1, x2, y2): its box region."""
    point: tuple[float, float, float, float]
    """The small square of a point region on it (`point_box`)."""
    color: str
    kind: str
    values: tuple[float, ...]
    """The `TARGETS`, in order."""


def object_targets(row: Mapping[str, Any], obj: Mapping[str, Any]) -> tuple[float, ...]:
    """The `TARGETS` of one object of a dataset row."""
    from workbench.tasks.questions import world_from_camera

    center = np.asarray(obj["center"], dtype=np.float64)
    floor = float(world_from_camera(center[None], row["camera_to_world"])[0, 2])
    sx, sy, sz = (float(v) for v in obj["size"])
    return (float(center[0]), float(center[1]), float(center[2]), floor, max(sx, sy), sz)


def point_box(row: Mapping[str, Any], obj: Mapping[str, Any], image_wh: Sequence[int]) -> tuple[float, ...]:
    """A point region on `obj` as the data draws one: a small square around its projected center,
    pulled inside the object's 2D box (`render.region_for` uses the visible mask, not stored in rows)."""
    from workbench.world.scenes import project

    w, h = image_wh
    x1, y1, x2, y2 = (float(v) for v in obj["bbox_2d"])
    u, v = (float(c) for c in project(obj["center"], row["intrinsics"]))
    u = min(max(u, x1), max(x2 - 1, x1))
    v = min(max(v, y1), max(y2 - 1, y1))
    s = max(2, w // 28)
    return (max(u - s, 0.0), max(v - s, 0.0), min(u + s + 1, w), min(v + s + 1, h))


def _view_key(row: Mapping[str, Any]) -> tuple:
    """What tells one rendered view from another: its scene and its camera pose."""
    return row["scene_id"], tuple(np.round(np.asarray(row["camera_to_world"], dtype=np.float64), 4).ravel())


def _has_box(obj: Mapping[str, Any]) -> bool:
    x1, y1, x2, y2 = obj["bbox_2d"]
    return x2 > x1 and y2 > y1


def collect(rows, max_images: int = 0):
    """(images, targets): one image per scene view of `rows` (a dataset split or a list of rows)
    and a `RegionTarget` per object with a 2D box."""
    images, targets, seen = [], [], set()
    for row in rows:
        key = _view_key(row)
        if key in seen or not row["objects"]:
            continue
        seen.add(key)
        image = row["image"].convert("RGB")
        for obj in filter(_has_box, row["objects"]):
            targets.append(RegionTarget(len(images), tuple(float(b) for b in obj["bbox_2d"]),
                                        point_box(row, obj, image.size), obj["color"], obj["category"],
                                        object_targets(row, obj)))
        images.append(image)
        if max_images and len(images) >= max_images:
            break
    if not targets:
        raise ValueError("no objects with a 2D box in the rows given to the perception warm-up")
    return images, targets


class PerceptionHeads(nn.Module):
    """Linear read-outs of a region feature: color and kind logits, standardised `TARGETS`."""

    def __init__(self, hidden: int, colors: Sequence[str], kinds: Sequence[str], mean, std):
        super().__init__()
        self.colors, self.kinds = list(colors), list(kinds)
        self.color = nn.Linear(hidden, len(self.colors))
        self.kind = nn.Linear(hidden, len(self.kinds))
        self.values = nn.Linear(hidden, len(TARGETS))
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        features = features.float()
        return {"color": self.color(features), "kind": self.kind(features), "values": self.values(features)}

    def loss(self, out: Mapping[str, torch.Tensor], batch: Sequence[RegionTarget]) -> torch.Tensor:
        device = out["values"].device
        color = torch.tensor([self.colors.index(t.color) for t in batch], device=device)
        kind = torch.tensor([self.kinds.index(t.kind) for t in batch], device=device)
        values = (torch.tensor([t.values for t in batch], device=device) - self.mean) / self.std
        return (
            nn.functional.cross_entropy(out["color"], color)
            + nn.functional.cross_entropy(out["kind"], kind)
            + nn.functional.smooth_l1_loss(out["values"], values) * len(TARGETS) / 2
        )


def region_features(model, processor, images, targets: Sequence[RegionTarget], points=None,
                    orders=None) -> torch.Tensor:
    """(R, hidden) region features of `targets` (their images among `images`) through the model's
    own vision tower, box pooling, projection, geometry and order terms. `points[i]`: see target i
    through its point region instead of its box (default: boxes); `orders`: region orders (0)."""
    from workbench import model as M
    backbone = M.region_backbone(model)
    used = sorted({t.image for t in targets})
    slot = {image: k for k, image in enumerate(used)}
    device = next(backbone.parameters()).device
    encoded = processor.image_processor([images[i] for i in used], return_tensors="pt")
    pixel_values = encoded["pixel_values"].to(device=device, dtype=backbone.visual.dtype)
    grid_thw = encoded["image_grid_thw"].to(device)
    output = backbone.get_image_features(pixel_values, grid_thw, return_dict=True)
    features = output.pooler_output
    patches = M.patch_features(output) if backbone.region_pool == "patch" else None
    merge = backbone.config.vision_config.spatial_merge_size
    grids = [(int(g[1]) // merge, int(g[2]) // merge) for g in grid_thw]
    pooled, boxes = [], []
    for i, t in enumerate(targets):
        k = slot[t.image]
        region = t.point if points is not None and points[i] else t.box
        box = M.box_fractions(M.box_to_bins(region, images[t.image].size), device=device)
        if patches is None:
            pooled.append(M.pool_box(features[k], grids[k], box))
        else:
            pooled.append(M.pool_box_patches(patches[k], grids[k], merge, box))
        boxes.append(box)
    if orders is None:
        orders = [0] * len(targets)
    return backbone.region_embeddings(torch.stack(pooled), torch.stack(boxes),
                                      torch.tensor(list(orders), device=device))


@torch.no_grad()
def evaluate(model, processor, heads: PerceptionHeads, images, targets, points: bool = False,
             batch_images: int = 32) -> dict[str, float]:
    """Held-out read-out quality through box regions (or point regions, `points`): color and kind
    accuracy, and the correlation of each `TARGETS` prediction with the truth (None where the
    truth is constant)."""
    was_training = model.training
    model.eval()
    by_image: dict[int, list[RegionTarget]] = {}
    for t in targets:
        by_image.setdefault(t.image, []).append(t)
    keys = sorted(by_image)
    colors, kinds, values, truth = [], [], [], []
    for i in range(0, len(keys), batch_images):
        batch = [t for k in keys[i: i + batch_images] for t in by_image[k]]
        out = heads(region_features(model, processor, images, batch, points=[points] * len(batch)))
        colors += [heads.colors[j] == t.color for j, t in zip(out["color"].argmax(-1).tolist(), batch)]
        kinds += [heads.kinds[j] == t.kind for j, t in zip(out["kind"].argmax(-1).tolist(), batch)]
        values.append((out["values"] * heads.std + heads.mean).cpu().numpy())
        truth.append(np.array([t.values for t in batch]))
    model.train(was_training)
    pred, true = np.concatenate(values), np.concatenate(truth)
    result: dict[str, float] = {"color_accuracy": round(float(np.mean(colors)), 4),
                                "kind_accuracy": round(float(np.mean(kinds)), 4), "regions": len(true)}
    for j, name in enumerate(TARGETS):
        ok = pred[:, j].std() > 0 and true[:, j].std() > 0
        result[f"{name}_corr"] = round(float(np.corrcoef(pred[:, j], true[:, j])[0, 1]), 4) if ok else None
    return result


def warm_up(model, processor, train_rows, steps: int, val_rows=None, batch_images: int = 16,
            learning_rate: float = 1e-3, point_fraction: float = 0.5, max_images: int = 0, seed: int = 0,
            eval_images: int = 200,
            log_every: int = 100, log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the vision side of the built-in `model` in place for `steps` AdamW steps of
    `batch_images` training images (all their objects), then record the steps in its config.

    Only the vision tower and the region terms (projection, geometry, order) are trained, so the
    language model is untouched. Returns the loss, the held-out read-out of up to `eval_images`
    views of `val_rows` through box and through point regions (`evaluate`: color and kind
    accuracy, correlations; None without `val_rows`), the region counts and the wall time.
    """
    from workbench import model as M
    if steps < 1:
        raise ValueError(f"perception warm-up steps must be >= 1, got {steps}")
    if not M.is_region_model(model):
        raise ValueError("the perception warm-up is for the built-in model (region features); "
                         "a pretrained VLM brings its own vision encoder")
    start = time.perf_counter()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    images, targets = collect(train_rows, max_images)
    backbone = M.region_backbone(model)
    hidden = backbone.config.text_config.hidden_size
    values = np.array([t.values for t in targets])
    heads = PerceptionHeads(hidden, sorted({t.color for t in targets}), sorted({t.kind for t in targets}),
                            values.mean(0), values.std(0) + 1e-6).to(next(model.parameters()).device)
    trained = [p for name, p in backbone.named_parameters()
               if name.startswith(("visual.", "region_")) and p.requires_grad]
    optimizer = torch.optim.AdamW([*trained, *heads.parameters()], lr=learning_rate, weight_decay=0.0)
    by_image: dict[int, list[RegionTarget]] = {}
    for t in targets:
        by_image.setdefault(t.image, []).append(t)
    order = list(by_image)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        batch = [t for k in rng.sample(order, min(batch_images, len(order))) for t in by_image[k]]
        points = [rng.random() < point_fraction for _ in batch]
        orders = [rng.randrange(M.MAX_REGIONS) for _ in batch]
        loss = heads.loss(heads(region_features(model, processor, images, batch, points, orders)), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if log is not None and (step % log_every == 0 or step == steps):
            log({"perception_step": step, "perception_loss": float(np.mean(losses[-log_every:]))})
    held_out = None
    if val_rows is not None:
        val_images, val_targets = collect(val_rows, max_images=eval_images)
        val_targets = [t for t in val_targets if t.color in heads.colors and t.kind in heads.kinds]
        if val_targets:
            held_out = {kind: evaluate(model, processor, heads, val_images, val_targets, points=kind == "point")
                        for kind in ("box", "point")}
    setattr(model.config, CONFIG_KEY, warmed_steps(model) + steps)
    return {
        "steps": steps,
        "batch_images": batch_images,
        "images": len(images),
        "regions": len(targets),
        "first_loss": losses[0],
        "final_loss": float(np.mean(losses[-log_every:])),
        "held_out": held_out,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def warmed_steps(model) -> int:
    """Perception warm-up steps `model` has had (0 for a fresh or pretrained model)."""
    return int(getattr(model.config, CONFIG_KEY, 0) or 0)


# ---------------------------------------------------------------------------------------------
# Describe: the language side reads what the region feature holds


DESCRIBE_KEY = "workbench_describe_warmup_steps"
"""Config attribute recording the describe warm-up steps a model has had (absent = none)."""


def describe_example(row: Mapping[str, Any], rng: random.Random, max_regions: int = 4):
    """(row, reply): a `ground_3d`-style row that marks 1-`max_regions` objects of `row`'s view
    as regions (random mark colors, box or point) and asks to describe them, and the reply: per
    region, in question order, the numbers the traces state, in the traces' own words ("is at
    x = 81 px", "m from the camera", "m above the floor", "measures w x d x h m").

    `row` should show a clean view (a general_qa or caption row: no marks drawn yet).
    """
    from workbench.tasks.questions import fmt
    from workbench.world import render
    from workbench.world.scenes import project

    objects = list(filter(_has_box, row["objects"]))
    if not objects:
        raise ValueError(f"row {row.get('id', '?')!r} has no object with a 2D box to describe")
    image = row["image"].convert("RGB")
    picked = rng.sample(objects, rng.randint(1, min(max_regions, len(objects))))
    colors = rng.sample(list(render.MARK_COLORS), len(picked))
    regions, refs, sentences = [], [], []
    for obj, color in zip(picked, colors):
        kind = "point" if rng.random() < 0.5 else "box"
        box = point_box(row, obj, image.size) if kind == "point" else obj["bbox_2d"]
        label = f"{color} {kind}"
        box = [int(round(v)) for v in box]
        point = [(box[0] + box[2] - 1) // 2, (box[1] + box[3] - 1) // 2] if kind == "point" else None
        regions.append({"label": label, "kind": kind, "bbox_2d": box, "point": point})
        refs.append(f"the object in the {label} <region>")
        _, _, _, floor, _, _ = object_targets(row, obj)
        u = float(project(np.asarray(obj["center"], dtype=np.float64), row["intrinsics"])[0])
        sx, sy, sz = (fmt(v) for v in obj["size"])
        sentences.append(
            f"The {obj['color']} {obj['name']} in the {label} is at x = {u:.0f} px, "
            f"{fmt(float(np.linalg.norm(obj['center'])))} m from the camera and {fmt(floor)} m above the floor, "
            f"and measures {sx} x {sy} x {sz} m."
        )
    marked = render.draw_marks(np.asarray(image), regions)
    question = "Describe " + (", ".join(refs[:-1]) + " and " + refs[-1] if len(refs) > 1 else refs[0]) + "."
    fake = {"id": f"describe-{row.get('id', '?')}", "task": "ground_3d", "image": marked, "question": question,
            "regions": regions, "choices": []}
    return fake, " ".join(sentences)


def describe_batch(processor, examples, system: str = "short") -> dict[str, torch.Tensor]:
    """Model inputs of (row, reply) pairs with `labels` on the replies (and their end-of-turn)."""
    from workbench.tasks import prompts
    tokenizer = processor.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids, labels, pixels, grids, types = [], [], [], [], []
    for row, reply in examples:
        messages = prompts.to_messages(row, "auto", region_coords=True, embed_image=True, system=system)
        enc = processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=True, return_dict=True,
                                            return_tensors="pt")
        prompt = enc["input_ids"][0].tolist()
        answer = tokenizer(reply, add_special_tokens=False)["input_ids"] + [eos]
        ids.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
        pixels.append(enc["pixel_values"])
        grids.append(enc["image_grid_thw"])
        if "mm_token_type_ids" in enc:
            types.append(enc["mm_token_type_ids"][0].tolist() + [0] * len(answer))
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id
    batch = {
        "input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
        "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        "labels": torch.tensor([y + [-100] * (width - len(y)) for y in labels]),
        "pixel_values": torch.cat(pixels),
        "image_grid_thw": torch.cat(grids),
    }
    if types:
        batch["mm_token_type_ids"] = torch.tensor([t + [0] * (width - len(t)) for t in types])
    return batch


def clean_views(rows, limit: int = 0) -> list[Mapping[str, Any]]:
    """Rows showing an unmarked view with objects (general_qa and caption rows), one per view."""
    out, seen = [], set()
    for row in rows:
        if row["task"] not in ("general_qa", "caption") or not row["objects"]:
            continue
        key = _view_key(row)
        if key in seen:
            continue
        seen.add(key)
        out.append(row)
        if limit and len(out) >= limit:
            break
    return out


@torch.no_grad()
def number_accuracy(model, processor, rows, n: int = 64, seed: int = 4321, batch_size: int = 16,
                    system: str = "short") -> dict[str, float]:
    """Teacher-forced accuracy of the describe replies of `n` views of `rows`: `token` (all reply
    tokens) and `digit` (the digit tokens: the numbers read off the region)."""
    rng = random.Random(seed)
    views = clean_views(rows, n)
    examples = [describe_example(r, rng) for r in views]
    device = next(model.parameters()).device
    digits = {i for t, i in processor.tokenizer.get_vocab().items() if t.isdigit()}
    was_training = model.training
    model.eval()
    hits = {"token": [0, 0], "digit": [0, 0]}
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in describe_batch(processor, examples[start: start + batch_size], system).items()}
        target = batch.pop("labels")[:, 1:]
        pred = model(**batch).logits[:, :-1].argmax(-1)
        mask = target != -100
        is_digit = mask & torch.isin(target, torch.tensor(sorted(digits), device=device))
        for key, m in (("token", mask), ("digit", is_digit)):
            hits[key][0] += int(((pred == target) & m).sum())
            hits[key][1] += int(m.sum())
    model.train(was_training)
    return {k: round(h[0] / h[1], 4) if h[1] else float("nan") for k, h in hits.items()}


def describe_warm_up(model, processor, train_rows, steps: int, val_rows=None, batch_size: int = 8,
                     learning_rate: float = 1e-3, system: str = "short", seed: int = 0, eval_views: int = 64,
                     log_every: int = 50,
                     log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the whole built-in `model` in place for `steps` AdamW steps on describe examples of
    the clean training views (`describe_example`): the language model learns to write the
    numbers a region feature holds, in the words the traces use, before SFT asks for them inside
    longer traces. Records the steps in the config; returns loss and the `number_accuracy` of
    `eval_views` views of `val_rows` before and after (None without `val_rows`)."""
    if steps < 1:
        raise ValueError(f"describe warm-up steps must be >= 1, got {steps}")
    start = time.perf_counter()
    rng = random.Random(seed)
    views = clean_views(train_rows)
    if not views:
        raise ValueError("no general_qa or caption rows with objects to describe in the training split")
    device = next(model.parameters()).device
    before = number_accuracy(model, processor, val_rows, eval_views, system=system) if val_rows is not None else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        examples = [describe_example(rng.choice(views), rng) for _ in range(batch_size)]
        batch = {k: v.to(device) for k, v in describe_batch(processor, examples, system).items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
        if log is not None and (step % log_every == 0 or step == steps):
            log({"describe_step": step, "describe_loss": float(np.mean(losses[-log_every:]))})
    after = number_accuracy(model, processor, val_rows, eval_views, system=system) if val_rows is not None else None
    setattr(model.config, DESCRIBE_KEY, described_steps(model) + steps)
    return {
        "steps": steps,
        "batch_size": batch_size,
        "views": len(views),
        "first_loss": losses[0],
        "final_loss": float(np.mean(losses[-log_every:])),
        "accuracy_before": before,
        "accuracy_after": after,
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def described_steps(model) -> int:
    """Describe warm-up steps `model` has had (0 for a fresh or pretrained model)."""
    return int(getattr(model.config, DESCRIBE_KEY, 0) or 0)
