"""A tiny Sesame CSM built from transformers' real classes with random weights.

Real configuration, model, codec and tokenizer classes, saved with
``save_pretrained`` into a voicepack folder the ``csm`` family loads like a
downloaded checkpoint, and LoRA voices saved by peft on it
(``write_lora_pack``): the loading, generation, streaming and LoRA code under
test is the real one; only the sizes are small and the audio is noise. Mimi's
codebooks are a power of two, so the tiny CSM's codebook vocabulary is too
(eos 0 and pad 63 live inside it; the real model keeps them outside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    CsmConfig,
    CsmForConditionalGeneration,
    MimiConfig,
    PreTrainedTokenizerFast,
)

CODEBOOKS = 8
CORPUS = [
    "Hello there, how are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
]


def tiny_config() -> CsmConfig:
    codec = MimiConfig(
        hidden_size=32, num_filters=8, codebook_size=64, codebook_dim=64,
        num_quantizers=CODEBOOKS, num_semantic_quantizers=1,
        vector_quantization_hidden_dimension=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=16, intermediate_size=64,
        upsampling_ratios=[8, 6, 5, 4], sliding_window=4, upsample_groups=32,
    )  # fmt: skip
    depth = {
        "num_codebooks": CODEBOOKS, "backbone_hidden_size": 64, "vocab_size": 64,
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": CODEBOOKS + 1,
    }  # fmt: skip
    return CsmConfig(
        num_codebooks=CODEBOOKS, vocab_size=64, text_vocab_size=300, hidden_size=64,
        intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=290,
        bos_token_id=291, audio_token_id=290, audio_eos_token_id=292,
        codebook_pad_token_id=63, codebook_eos_token_id=0,
        depth_decoder_config=depth, codec_config=codec.to_dict(),
    )  # fmt: skip


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=280,
        special_tokens=["<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


def tiny_model(seed: int = 0) -> CsmForConditionalGeneration:
    torch.manual_seed(seed)
    model = CsmForConditionalGeneration(tiny_config())
    # Mimi's codebooks are buffers that start at zero: every code would decode
    # to the same sound. Random codebooks make the audio depend on the codes.
    with torch.no_grad():
        for name, buffer in model.codec_model.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buffer.normal_()
    model.eval()
    return model


def write_csm_pack(root: Path, model_id: str = "csm-tiny", seed: int = 0, **params: Any) -> Path:
    """A voicepack folder ``<root>/csm/<model_id>`` holding a tiny saved CSM."""
    folder = root / "csm" / model_id
    weights = folder / "weights"
    tiny_model(seed).save_pretrained(weights)
    tiny_tokenizer().save_pretrained(weights)
    meta = {
        "id": model_id,
        "family": "csm",
        "languages": ["en-US"],
        "tags": ["test", "random-weights"],
        "native_sample_rate": 24000,
        "source": {"path": "weights"},
        "params": {"do_sample": False, "max_frames_per_clause": 20, **params},
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder


def write_lora_pack(
    root: Path, model_id: str, base_id: str = "csm-tiny", seed: int = 1, **params: Any
) -> Path:
    """A LoRA voice ``<root>/csm/<model_id>`` on ``base_id``, saved by peft.

    Its config targets every ``q_proj``/``v_proj``, the codec's included, as a
    careless training script would: the family must keep the codec untouched.
    Random (not zero) LoRA weights, so the voice really differs from its base.
    """
    from peft import LoraConfig, get_peft_model

    folder = root / "csm" / model_id
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    torch.manual_seed(seed)
    get_peft_model(tiny_model(), config).save_pretrained(str(folder / "adapter"))
    meta = {
        "id": model_id,
        "family": "csm",
        "base_model": base_id,
        "languages": ["en-US"],
        "tags": ["test", "lora", "random-weights"],
        "native_sample_rate": 24000,
        "source": {"path": "adapter"},
        "params": {"do_sample": False, "max_frames_per_clause": 20, **params},
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder
