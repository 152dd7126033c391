"""Building and loading models: the built-in tiny Qwen2.5-VL (`build_tiny`, `make_config`) and
`load`, which reads a saved workbench model, a real pretrained Qwen2.5-VL by name or path
(optionally with LoRA adapters) or a merged checkpoint, and returns (model, processor).
Taught in `notebooks/03_cold_start_sft.ipynb`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import (
    Qwen2_5_VLConfig,
)
from transformers.processing_utils import ProcessorMixin

from workbench import compat
from workbench.model.architecture import (
    RegionQwen2_5_VLForConditionalGeneration,
    is_region_model,
    ordered_embeddings,
    publish_model_class,
)
from workbench.model.settings import DEPTH_MODES, LoraSettings, ModelSettings
from workbench.model.tokenizer import (
    CHAT_TEMPLATE,
    EOS_TOKEN,
    PAD_TOKEN,
    WorkbenchProcessor,
    make_processor,
    train_tokenizer,
)
from workbench.schema import REGION_TOKEN
from workbench.tasks.locations import LOC_TOKENS, NUM_LOC_BINS


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
        workbench_region_box_text=settings.region_box_text,
        workbench_region_pool=settings.region_pool,
        workbench_region_token_id=ids(REGION_TOKEN),
        workbench_loc_token_start=ids(LOC_TOKENS[0]),
        workbench_num_loc_bins=NUM_LOC_BINS,
        workbench_system_prompts=settings.system_prompts,
        workbench_option_style=settings.option_style,
        workbench_depth_embedding=settings.depth_embedding if settings.region_features else "none",
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
        if model.model.depth_embed is not None:  # the weight initialisation drew it like any Linear
            model.model.depth_embed.reset_last()
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
    depth_embedding: str | None = None,
):
    """(model, processor) from a folder written by `save_pretrained` of the built-in model, the
    shipped checkpoint (`"shipped"`, `workbench.model.shipped`), or a real pretrained VLM (any
    AutoModelForImageTextToText, e.g. a Qwen2.5-VL) by hub name or path.

    A real VLM gets a `<region>` token (embeddings resized only if the vocabulary grows) and is used
    with plain `<region>` tokens and the drawn marks (`uses_region_coords(model)` is False). With
    `lora`, the model comes back as a PEFT model. Missing or corrupt checkpoints raise
    FileNotFoundError / ValueError naming the path.

    depth_embedding: "relative" or "metric" gives a real Qwen2.5-VL the built-in model's 3D
    positional embedding as an add-on (initialised near zero, trained fully next to the LoRA
    adapters, saved in the config so that `load` reads a merged model back with it); None keeps
    what the checkpoint has; "auto" adds the paper's ("relative") to a Qwen2.5-VL without one and
    keeps what any other checkpoint has (what SFT uses). A checkpoint that already has a setting
    must not be given another.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    from workbench.model import shipped

    name = str(name_or_path)
    if name == shipped.SHIPPED:  # the checkpoint in the package, its files checked against its manifest
        shipped.check()
        name = shipped.resolve(name)
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
        if "connect" in str(err) or "offline" in str(err).lower():
            raise FileNotFoundError(f"model {name!r} is not a local folder, and it cannot be downloaded here (the "
                                    "Hugging Face hub is not reachable, or offline mode is on): give a model folder"
                                    ) from None
        raise FileNotFoundError(f"cannot read a model config from {name!r}: {err}") from err

    reset_depth = _depth_addon(config, name, depth_embedding)
    try:
        if (getattr(config, "workbench_region_features", None) is not None
                or getattr(config, "workbench_depth_embedding", "none") != "none"):
            model = RegionQwen2_5_VLForConditionalGeneration.from_pretrained(name, config=config, dtype=dtype)
            processor = _with_chat_template(WorkbenchProcessor.from_pretrained(name))
            if reset_depth:  # new: near zero, so the pretrained features start as they were
                model.model.depth_embed.reset_last()
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
    compat.clear_saved_truncation(tokenizer)
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora.to_peft_config(model))
    return model, processor


def _depth_addon(config, name: str, depth_embedding: str | None) -> bool:
    """Put the depth add-on's setting into a pretrained VLM's `config`; True when the embedding is
    new (absent from the checkpoint). A ValueError names a bad or conflicting setting."""
    saved = getattr(config, "workbench_depth_embedding", None)
    if depth_embedding == "auto":
        depth_embedding = None if saved is not None or config.model_type != "qwen2_5_vl" else "relative"
    if depth_embedding is None:
        return False
    if depth_embedding not in DEPTH_MODES:
        raise ValueError(f"depth_embedding must be one of {DEPTH_MODES} or 'auto', got {depth_embedding!r}")
    if saved is not None:
        if saved != depth_embedding:
            raise ValueError(f"{name!r} already embeds depth as {saved!r}; it cannot be loaded with {depth_embedding!r}")
        return False
    if depth_embedding == "none":
        return False
    if config.model_type != "qwen2_5_vl":
        raise ValueError(f"the depth add-on needs a Qwen2.5-VL; {name!r} is a {config.model_type!r} model")
    config.workbench_depth_embedding = depth_embedding
    config.architectures = [RegionQwen2_5_VLForConditionalGeneration.__name__]
    return True


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
    return _with_chat_template(processor)


def _with_chat_template(processor):
    """`processor` with a chat template: its own, else its tokenizer's (a hub Qwen2.5-VL keeps it
    there), else the workbench's."""
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
