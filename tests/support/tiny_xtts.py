"""A tiny XTTS-v2 built from coqui-tts's real classes with random weights.

``XttsConfig``/``XttsArgs`` with a two-layer GPT and a small audio-token
vocabulary, a character-level BPE ``vocab.json`` carrying XTTS's special
tokens, and the real ``Xtts`` model saved as ``model.pth`` beside its
``config.json`` (and a ``speakers_xtts.pth`` with one built-in speaker): the
``xtts`` family loads it like the downloaded XTTS-v2 folder. The speaker
encoder and HiFi-GAN decoder keep their real sizes (XTTS does not make them
configurable), so the audio has XTTS's real rate and chunking; it is noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from tokenizers import Tokenizer, models
from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
from TTS.tts.models.xtts import Xtts

SPECIAL = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
MAX_AUDIO_TOKENS = 24  # every clause of noise ends here: 24 x 1024 samples at 22.05 kHz


def write_vocab(path: Path) -> None:
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789'.,!?-:;\"")
    vocab = {token: i for i, token in enumerate(SPECIAL + chars)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(path))


def tiny_config(vocab: Path) -> XttsConfig:
    args = XttsArgs(
        gpt_layers=2, gpt_n_model_channels=64, gpt_n_heads=4, gpt_num_audio_tokens=66,
        gpt_start_audio_token=64, gpt_stop_audio_token=65, decoder_input_dim=64,
        gpt_use_perceiver_resampler=True, tokenizer_file=str(vocab),
        gpt_max_audio_tokens=MAX_AUDIO_TOKENS + 3, gpt_max_text_tokens=200,
        gpt_max_prompt_tokens=70,
    )  # fmt: skip
    return XttsConfig(model_args=args, languages=["en"], gpt_cond_len=6, gpt_cond_chunk_len=6)


def tiny_model(folder: Path, seed: int = 0) -> tuple[Xtts, XttsConfig]:
    folder.mkdir(parents=True, exist_ok=True)
    write_vocab(folder / "vocab.json")
    config = tiny_config(folder / "vocab.json")
    torch.manual_seed(seed)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(folder / "vocab.json"))
    model.init_models()  # sizes the GPT's text embedding by the vocabulary
    # coqui's stream generator always samples: keep the random GPT from sampling its
    # stop token, so every clause runs to MAX_AUDIO_TOKENS and tests see its length.
    with torch.no_grad():
        model.gpt.mel_head.bias[config.model_args.gpt_stop_audio_token] = -1e4
    return model, config


def write_xtts_pack(root: Path, model_id: str = "xtts-tiny", seed: int = 0, **params: Any) -> Path:
    """A voicepack ``<root>/xtts/<model_id>`` laid out like coqui's XTTS-v2 download."""
    folder = root / "xtts" / model_id
    weights = folder / "weights"
    model, config = tiny_model(weights, seed)
    torch.save({"model": model.state_dict()}, weights / "model.pth")
    config.save_json(str(weights / "config.json"))
    torch.manual_seed(seed + 100)
    speakers = {
        "Ana Tiny": {
            "gpt_cond_latent": torch.randn(1, 32, 64),
            "speaker_embedding": torch.randn(1, 512, 1),
        }
    }
    torch.save(speakers, weights / "speakers_xtts.pth")
    meta = {
        "id": model_id,
        "family": "xtts",
        "languages": ["en-US"],
        "tags": ["test", "random-weights", "cloning"],
        "native_sample_rate": 24000,
        "source": {"path": "weights"},
        "params": {"stream_chunk_size": 8, **params},
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder
