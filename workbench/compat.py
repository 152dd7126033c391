"""Every use of a library's internals, in one place, with the versions it was written for.

The workbench calls public APIs of transformers, TRL and plotly wherever they exist. Where they do
not, the private module, method or attribute is named here and nowhere else, so an upgrade that
moves one breaks in this file, with a warning that names the version it was written for. The
versions are pinned exactly in `pyproject.toml` and `requirements/lock.txt`.

What relies on what:
- transformers: the fast-tokenizer backend class and the PIL image processor of Qwen2-VL (no public
  import path without torchvision); `ProcessorMixin.__init__` called directly (the built-in
  processor skips Qwen2.5-VL's video processor); `Qwen2_5_VLPreTrainedModel.__init__` (the region
  model builds its own backbone); the vision tower's window order (`vision_window_index`: the depth
  embedding is added where the blocks have put the patches); a class published on the `transformers` module object(s), because
  TRL builds GRPO's reference model with `getattr(transformers, config.architectures[0])`.
- TRL: helpers of `trl.trainer.utils` and the vision-language SFT collator; the overridden hooks
  of `GRPOTrainer` (`GRPO_HOOKS`) and two of its private attributes (`grpo_metrics`,
  `grpo_pad_token_id`).
- plotly: a FigureWidget's synced state (`sync_figure_widget`).

Nothing here imports torch or the libraries at import time.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types
import warnings
from copy import deepcopy
from typing import Any

WRITTEN_FOR = {"transformers": "5.24.0", "trl": "1.16.0", "plotly": "7.1.0"}
"""Package -> the exact version whose internals this module uses."""

_INTERNAL_NAMES = {
    # name here: (package, module, attribute)
    "TokenizersBackend": ("transformers", "transformers.tokenization_utils_tokenizers", "TokenizersBackend"),
    "Qwen2VLImageProcessorPil": (
        "transformers", "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl", "Qwen2VLImageProcessorPil"),
    "DataCollatorForVisionLanguageModeling": (
        "trl", "trl.trainer.sft_trainer", "DataCollatorForVisionLanguageModeling"),
    "get_training_chat_template": ("trl", "trl.chat_template_utils", "get_training_chat_template"),
    "has_generation_markers": ("trl", "trl.chat_template_utils", "has_generation_markers"),
    "RepeatSampler": ("trl", "trl.trainer.utils", "RepeatSampler"),
    "nanstd": ("trl", "trl.trainer.utils", "nanstd"),
    "split_pixel_values_by_grid": ("trl", "trl.trainer.utils", "split_pixel_values_by_grid"),
    "unsplit_pixel_values_by_grid": ("trl", "trl.trainer.utils", "unsplit_pixel_values_by_grid"),
}

GRPO_HOOKS = ("_generate_and_score_completions", "_calculate_rewards")
"""Private `trl.GRPOTrainer` methods that `train.dynamic_sampling` overrides (and calls via super)."""

_checked: set[str] = set()


def installed_version(package: str) -> str | None:
    """The installed version of `package`, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_version(package: str) -> None:
    """Warn once when `package` is not the version this module was written for."""
    if package in _checked:
        return
    _checked.add(package)
    have, want = installed_version(package), WRITTEN_FOR[package]
    if have != want:
        warnings.warn(f"workbench.compat was written for {package}=={want}, found {have}; "
                      "internals it uses may have moved (see workbench/compat.py)", stacklevel=3)


def __getattr__(name: str) -> Any:
    """`compat.RepeatSampler` etc.: the internal object, imported on first use."""
    if name not in _INTERNAL_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    package, module, attribute = _INTERNAL_NAMES[name]
    check_version(package)
    try:
        value = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"{module}.{attribute} is gone in {package} {installed_version(package)}; "
                          f"workbench.compat was written for {WRITTEN_FOR[package]}") from err
    globals()[name] = value
    return value


# ----------------------------------------------------------------------------- transformers


def init_processor_mixin(processor, image_processor, tokenizer, chat_template=None, **kwargs) -> None:
    """Run `ProcessorMixin.__init__` on `processor`, skipping its subclass's own `__init__`."""
    from transformers.processing_utils import ProcessorMixin

    check_version("transformers")
    ProcessorMixin.__init__(processor, image_processor, tokenizer, chat_template=chat_template, **kwargs)


def init_qwen2_5_vl_pretrained(model, config) -> None:
    """Run `Qwen2_5_VLPreTrainedModel.__init__` on `model` (its subclass builds its own parts)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPreTrainedModel

    check_version("transformers")
    Qwen2_5_VLPreTrainedModel.__init__(model, config)


def vision_window_index(visual, grid_thw):
    """The window order Qwen2.5-VL's vision tower puts merge units in before its blocks
    (`transformers.vision_utils.get_vision_window_index`), for `visual.permute_input_for_window_attn`."""
    from transformers import vision_utils

    check_version("transformers")
    window_index, _ = vision_utils.get_vision_window_index(
        grid_thw, spatial_merge_size=visual.spatial_merge_size, window_size=visual.window_size,
        patch_size=visual.patch_size, kwargs={})
    return window_index


def publish_on_transformers(cls: type) -> None:
    """Make `transformers.<cls.__name__>` resolve to `cls` on every `transformers` module object.

    TRL's GRPO builds its reference model with `getattr(transformers, config.architectures[0])`.
    Importing `transformers.processing_utils` replaces `sys.modules["transformers"]` once (it re-runs
    the package's lazy init), and libraries imported before that (TRL among them) hold the older
    module object as their `transformers` attribute: the name goes on all of them.
    """
    import transformers

    name = cls.__name__
    holders = [transformers, sys.modules.get("transformers")]
    holders += [getattr(m, "transformers", None) for m in list(sys.modules.values())]
    for module in {
        id(m): m for m in holders if isinstance(m, types.ModuleType) and m.__name__ == "transformers"
    }.values():
        if getattr(module, name, None) is not cls:
            setattr(module, name, cls)


# ----------------------------------------------------------------------------- TRL


def require_hooks(trainer_cls: type, hooks: tuple[str, ...] = GRPO_HOOKS) -> None:
    """Fail clearly when a trainer class no longer has the private hooks a subclass overrides."""
    check_version("trl")
    missing = [h for h in hooks if not callable(getattr(trainer_cls, h, None))]
    if missing:
        raise ImportError(f"{trainer_cls.__name__} has no {missing} in trl {installed_version('trl')}; "
                          f"workbench.compat was written for trl {WRITTEN_FOR['trl']}")


def grpo_metrics(trainer, mode: str = "train") -> dict[str, list[float]]:
    """`GRPOTrainer`'s private metric buffer of `mode`: {name: values}, averaged and logged by `log`."""
    return trainer._metrics[mode]


def grpo_pad_token_id(trainer) -> int:
    """The pad token id `GRPOTrainer` pads prompts and completions with (its private tokenizer)."""
    return trainer._tokenizer.pad_token_id


# ----------------------------------------------------------------------------- plotly


def sync_figure_widget(widget) -> None:
    """Copy a `plotly.graph_objects.FigureWidget`'s whole figure into its synced widget state, as
    plotly does when the widget is displayed on its own (a FigureWidget inside a box never is)."""
    check_version("plotly")
    widget._widget_layout = deepcopy(widget._layout_obj._props)
    widget._widget_data = deepcopy(widget._data)


def clear_saved_truncation(tokenizer) -> None:
    """Forget the truncation a saved fast tokenizer brought back from training (TRL's collator sets
    `max_length` on the backend; `save_pretrained` writes it into tokenizer.json, and loading turns
    it into a default `max_length`, which every later `padding=True` call, TRL's GRPO prompts
    included, then warns about: "`max_length` is ignored when `padding`=`True`"). Reads the private
    `_tokenizer` backend of a transformers fast tokenizer."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and getattr(backend, "truncation", None) is not None:
        backend.no_truncation()
    tokenizer.init_kwargs.pop("max_length", None)


KNOWN_THIRD_PARTY_WARNINGS = (
    # TRL 1.16's generation context (trl/models/utils.py) reads transformers' deprecated
    # `is_gradient_checkpointing` on every GRPO generation step.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)
"""Warnings raised inside pinned libraries on the workbench's normal paths, with nothing a user
can do about them (category, message regex)."""


def quiet_known_warnings() -> None:
    """Ignore `KNOWN_THIRD_PARTY_WARNINGS` (and only those) for the rest of the process."""
    for category, message in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
