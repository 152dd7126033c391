"""A tiny random plain Qwen2.5-VL saved like a hub checkpoint (no `<region>` token, no workbench
config keys): the stand-in for a real pretrained VLM in the tests of `model.load`, LoRA and vLLM
(tests/test_model.py, tests/test_gpu.py)."""

from __future__ import annotations

from collections.abc import Iterable

from workbench import model as M


def plain_checkpoint(path, texts: Iterable[str], vocab_extra: int = 0, head_dim: int = 16) -> int:
    """Save a randomly initialised Qwen2.5-VL, a byte-level BPE tokenizer trained on `texts` and a
    PIL image processor into `path`; return the tokenizer's length.

    vocab_extra: spare embedding rows (a hub Qwen2.5-VL has some, so `<region>` needs no resize).
    head_dim: of the text and the vision attention; 16 is the smallest, 64 what every attention
    kernel takes (vLLM). The text model has 4 heads, the vision tower 2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=list(M.CONTROL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts) * 5, trainer)
    tokenizer = TokenizersBackend(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=M.CHAT_TEMPLATE
    )
    ids = tokenizer.convert_tokens_to_ids
    hidden, vision_hidden = 4 * head_dim, 2 * head_dim
    half = head_dim // 2  # the rotary half-dim, split into temporal, height and width sections
    t = half // 4
    hw = (half - t) // 2
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer) + vocab_extra,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [t, hw, half - t - hw]},
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
            bos_token_id=None,
        ),
        vision_config=dict(
            depth=1,
            hidden_size=vision_hidden,
            intermediate_size=2 * vision_hidden,
            num_heads=2,
            out_hidden_size=hidden,
            fullatt_block_indexes=[0],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}).save_pretrained(path)
    return len(tokenizer)
