"""The spatial VLM: the built-in tiny Qwen2.5-VL with region features, or a real pretrained
Qwen2.5-VL with LoRA, behind one `load` / `generate` API. Taught in `notebooks/03_cold_start_sft.ipynb`.

- `settings`: `ModelSettings`, `LoraSettings` and their presets;
- `tokenizer`: special tokens, chat template, tokenizer training, the processor;
- `architecture`: region features inside the Qwen2.5-VL backbone;
- `loading`: building the tiny model and loading any checkpoint;
- `inference`: prompts to tensors and batched generation.

The location-token codec the prompts and the model share lives in `workbench.tasks.locations`;
its names are re-exported here.
"""

from workbench.model.architecture import (
    GEOMETRY_DIM,
    GEOMETRY_FREQUENCIES,
    MAX_REGIONS,
    REGION_POOLS,
    RegionQwen2_5_VLForConditionalGeneration,
    RegionQwen2_5_VLModel,
    box_encoding,
    box_fractions,
    hide_box_tokens,
    is_region_model,
    ordered_embeddings,
    patch_features,
    pool_box,
    pool_box_patches,
    prompt_options,
    publish_model_class,
    region_backbone,
    uses_depth,
    uses_region_coords,
)
from workbench.model.inference import generate, model_inputs
from workbench.model.loading import build_tiny, load, make_config
from workbench.model.settings import DEPTH_MODES, REGION_BOXES, LoraSettings, ModelSettings
from workbench.model.tokenizer import (
    CHAT_TEMPLATE,
    CONTROL_TOKENS,
    EOS_TOKEN,
    FORMAT_TOKENS,
    OPTION_TOKENS,
    PAD_TOKEN,
    ROLE_NAMES,
    WorkbenchProcessor,
    image_size_of,
    make_processor,
    train_tokenizer,
)
from workbench.tasks.locations import (
    LOC_TOKENS,
    NUM_LOC_BINS,
    bins_to_box,
    box_to_bins,
    decode_region_tokens,
    encode_region_tokens,
)

__all__ = ['LOC_TOKENS', 'NUM_LOC_BINS', 'bins_to_box', 'box_to_bins', 'decode_region_tokens', 'encode_region_tokens', 'ModelSettings', 'LoraSettings', 'DEPTH_MODES', 'REGION_BOXES', 'PAD_TOKEN', 'EOS_TOKEN', 'CONTROL_TOKENS', 'FORMAT_TOKENS', 'OPTION_TOKENS', 'CHAT_TEMPLATE', 'ROLE_NAMES', 'train_tokenizer', 'WorkbenchProcessor', 'make_processor', 'image_size_of', 'RegionQwen2_5_VLModel', 'MAX_REGIONS', 'GEOMETRY_FREQUENCIES', 'GEOMETRY_DIM', 'box_encoding', 'ordered_embeddings', 'box_fractions', 'pool_box', 'pool_box_patches', 'patch_features', 'REGION_POOLS', 'hide_box_tokens', 'region_backbone', 'RegionQwen2_5_VLForConditionalGeneration', 'publish_model_class', 'is_region_model', 'uses_region_coords', 'prompt_options', 'uses_depth', 'make_config', 'build_tiny', 'load', 'model_inputs', 'generate']
