"""A tiny CosyVoice 2 model directory with random weights, from the runtime's real classes.

Run inside the CosyVoice environment (``make cosyvoice-env``)::

    services/tts-engines/cosyvoice/.venv/bin/python -m tests.support.tiny_cosyvoice DIR

It lays out what a real ``CosyVoice2-0.5B`` folder holds and duplex reads:
``cosyvoice2.yaml`` (hyperpyyaml naming the real classes, at toy sizes),
``CosyVoice-BlankEN/`` (a two-layer Qwen2 and a byte-level tokenizer),
``llm.pt``, ``flow.pt``, ``hift.pt`` (state dicts) and ``spk2info.pt`` with one
speaker, ``Tiny Speaker``, whose prompt (text, speech tokens, mel) is random.

The LLM's decoder is biased so that it emits speech tokens, the fill token
(ask for more text) now and then, and end-of-speech soon once the text is all
in: a random model would otherwise babble up to its length limit.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

SPEAKER = "Tiny Speaker"
SPEECH_TOKENS = 64
SAMPLE_RATE = 24000

_YAML = """\
sample_rate: {sample_rate}
llm_input_size: 32
llm_output_size: 32
spk_embed_dim: 192
qwen_pretrain_path: ''
token_frame_rate: 25
token_mel_ratio: 2
chunk_size: 25
num_decoding_left_chunks: -1

llm: !new:cosyvoice.llm.llm.Qwen2LM
    llm_input_size: !ref <llm_input_size>
    llm_output_size: !ref <llm_output_size>
    speech_token_size: {speech_tokens}
    length_normalized_loss: True
    lsm_weight: 0
    mix_ratio: [5, 15]
    llm: !new:cosyvoice.llm.llm.Qwen2Encoder
        pretrain_path: !ref <qwen_pretrain_path>
    sampling: !name:cosyvoice.utils.common.ras_sampling
        top_p: 0.8
        top_k: 25
        win_size: 10
        tau_r: 0.1

flow: !new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec
    input_size: 512
    output_size: 80
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: {speech_tokens}
    input_frame_rate: !ref <token_frame_rate>
    only_mask_loss: True
    token_mel_ratio: !ref <token_mel_ratio>
    pre_lookahead_len: 3
    encoder: !new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder
        output_size: 512
        attention_heads: 2
        linear_units: 64
        num_blocks: 1
        dropout_rate: 0.0
        positional_dropout_rate: 0.0
        attention_dropout_rate: 0.0
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: 512  # the runtime's look-ahead and upsampling layers are 512 wide
        use_cnn_module: False
        macaron_style: False
        static_chunk_size: !ref <chunk_size>
    decoder: !new:cosyvoice.flow.flow_matching.CausalConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: 'cosine'
                training_cfg_rate: 0.2
                inference_cfg_rate: 0.7
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.CausalConditionalDecoder
            in_channels: 320
            out_channels: 80
            channels: [32]
            dropout: 0.0
            attention_head_dim: 16
            n_blocks: 1
            num_mid_blocks: 1
            num_heads: 2
            act_fn: 'gelu'
            static_chunk_size: !ref <chunk_size> * <token_mel_ratio>
            num_decoding_left_chunks: !ref <num_decoding_left_chunks>

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: 80
    base_channels: 32
    nb_harmonics: 8
    sampling_rate: !ref <sample_rate>
    nsf_alpha: 0.1
    nsf_sigma: 0.003
    nsf_voiced_threshold: 10
    upsample_rates: [8, 5, 3]
    upsample_kernel_sizes: [16, 11, 7]
    istft_params:
        n_fft: 16
        hop_len: 4
    resblock_kernel_sizes: [3]
    resblock_dilation_sizes: [[1, 3]]
    source_resblock_kernel_sizes: [7, 7, 11]
    source_resblock_dilation_sizes: [[1, 3], [1, 3], [1, 3]]
    lrelu_slope: 0.1
    audio_limit: 0.99
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: 1
        in_channels: 80
        cond_channels: 32

# Training parts a real model's yaml names too (imported while it loads).
parquet_opener: !name:cosyvoice.dataset.processor.parquet_opener
get_tokenizer: !name:cosyvoice.tokenizer.tokenizer.get_qwen_tokenizer
    token_path: !ref <qwen_pretrain_path>
    skip_special_tokens: True
allowed_special: 'all'
"""


def _tokenizer(folder: Path) -> int:
    """A byte-level BPE with no merges (one token per byte); returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # a character per byte
    vocab = {char: index for index, char in enumerate(alphabet)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    fast.save_pretrained(folder)
    return len(vocab) + 32  # room for the special tokens CosyVoice adds


def build(folder: Path, seed: int = 0) -> Path:
    """Write the tiny model into ``folder`` (created) and return it."""
    import torch
    from hyperpyyaml import load_hyperpyyaml
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    qwen = folder / "CosyVoice-BlankEN"
    vocab_size = _tokenizer(qwen)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    Qwen2ForCausalLM(config).save_pretrained(qwen)

    text = _YAML.format(sample_rate=SAMPLE_RATE, speech_tokens=SPEECH_TOKENS)
    (folder / "cosyvoice2.yaml").write_text(text)
    configs = load_hyperpyyaml(text, overrides={"qwen_pretrain_path": str(qwen)})
    llm, flow, hift = configs["llm"], configs["flow"], configs["hift"]
    with torch.no_grad():
        # Logits = bias: 64 speech tokens at 0, end-of-speech and fill likely, the
        # unused special token never.
        llm.llm_decoder.weight.mul_(0.01)
        llm.llm_decoder.bias.zero_()
        llm.llm_decoder.bias[SPEECH_TOKENS] = math.log(14.0)
        llm.llm_decoder.bias[SPEECH_TOKENS + 1] = -1e4
        llm.llm_decoder.bias[SPEECH_TOKENS + 2] = math.log(9.0)
    torch.save(llm.state_dict(), folder / "llm.pt")
    torch.save(flow.state_dict(), folder / "flow.pt")
    torch.save(hift.state_dict(), folder / "hift.pt")

    prompt_tokens = torch.randint(0, SPEECH_TOKENS, (1, 30), dtype=torch.int32)
    speaker = {
        "prompt_text": torch.randint(0, 256, (1, 8), dtype=torch.int32),
        "llm_prompt_speech_token": prompt_tokens,
        "flow_prompt_speech_token": prompt_tokens,
        "prompt_speech_feat": torch.randn(1, 60, 80) * 0.1,
        "llm_embedding": torch.randn(1, 192),
        "flow_embedding": torch.randn(1, 192),
    }
    torch.save({SPEAKER: speaker}, folder / "spk2info.pt")
    return folder


def write_cosyvoice_pack(root: Path, model_id: str = "cosyvoice-tiny", **params: Any) -> Path:
    """A voicepack ``<root>/cosyvoice/<model_id>`` whose weights are the tiny model."""
    import yaml

    folder = root / "cosyvoice" / model_id
    build(folder / "weights")
    meta = {
        "id": model_id,
        "family": "cosyvoice",
        "languages": ["en-US"],
        "tags": ["test", "random-weights"],
        "native_sample_rate": SAMPLE_RATE,
        "source": {"path": "weights"},
        "params": params,
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    return folder


if __name__ == "__main__":
    write_cosyvoice_pack(Path(sys.argv[1]))
