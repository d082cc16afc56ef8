"""duplex-tts-csm: the ``csm`` family, Sesame CSM (transformers' ``CsmForConditionalGeneration``).

A streaming engine on the device thread (``ExecutorKind.DEVICE``): clauses in,
audio out while each clause is generated (``engine``), decoded by Mimi in small
chunks with left context (``codec``).

Weights come from ``source.path``: a folder written by ``save_pretrained``
(config, safetensors, tokenizer; a processor with a chat template if it has
one), as ``sesame/csm-1b`` downloaded ahead of time or mounted from a PVC.
Voicepack ``params``: ``speaker`` (CSM's speaker id, default 0),
``max_frames_per_clause`` (250), ``temperature`` (0.9), ``do_sample`` (true),
``chunk_frames`` (2: 160 ms per decode), ``context_frames`` (25), ``dtype``
(``float32``, ``bfloat16``, ``float16``; default float32 on the CPU and
bfloat16 on CUDA), ``max_batch`` (8 rows per batched generation).
``StartSession``'s ``speaker`` (digits) overrides the speaker id.

LoRA voices: a voicepack with ``base_model`` naming a CSM base and
``source.path`` a peft adapter folder (``adapter_config.json`` +
``adapter_model.safetensors``). Loading it adds a named adapter to the
resident base (``lora``); unloading deletes it. Sessions on the base and on
its voices are generated together, one batch row each (``batch``).
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch

from duplex_tts.adapters import (
    AdapterError,
    ExecutorKind,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.adapters.sources import settings_from_params, source_folder
from duplex_tts.catalog import ModelSpec
from duplex_tts_csm.batch import ClauseBatcher
from duplex_tts_csm.codec import ChunkedDecoder
from duplex_tts_csm.engine import CsmSettings, CsmStream, check_reference
from duplex_tts_csm.lora import BASE, LoraHost, adapter_name

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CsmModel(TTSModel):
    """A resident CSM base: its own voice, and the host of its LoRA voices."""

    adapter = BASE

    def __init__(self, model: Any, tokenizer: Any, settings: CsmSettings, device: str) -> None:
        super().__init__(int(model.codec_model.config.sampling_rate))
        self.host = LoraHost(model)
        self._tokenizer = tokenizer
        self.settings = settings
        self.device = device
        config = model.config
        self.dtype: torch.dtype = next(model.parameters()).dtype
        self.codebook_eos = int(config.codebook_eos_token_id)
        self.audio_token_id = int(config.audio_token_id)
        self.audio_eos_token_id = int(config.audio_eos_token_id)
        # Left padding, masked out: any id but the audio placeholders (CSM's pad id is
        # its audio token id, which would turn padding into audio frames).
        special = {self.audio_token_id, self.audio_eos_token_id}
        self.filler_token_id = next(
            int(i)
            for i in (config.pad_token_id, config.bos_token_id, 0, 1)
            if i is not None and i not in special
        )
        self.samples_per_frame = int(
            model.codec_model.config.sampling_rate / model.codec_model.config.frame_rate
        )
        self.batcher = ClauseBatcher(self, settings.max_batch)

    @property
    def model(self) -> Any:
        """The transformers model (LoRA layers injected while adapters exist)."""
        return self.host.model

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return CsmStream(self, context)

    def check_options(self, options: VoiceOptions) -> None:
        check_reference(options, self)

    def prompt(self, text: str, speaker: int) -> torch.Tensor:
        """Token ids of one clause: CSM reads ``[speaker]text``."""
        template = getattr(self._tokenizer, "chat_template", None)
        if template:
            conversation = [{"role": str(speaker), "content": [{"type": "text", "text": text}]}]
            encoded = self._tokenizer.apply_chat_template(
                conversation, tokenize=True, return_dict=True, return_tensors="pt"
            )
        else:
            encoded = self._tokenizer(f"[{speaker}]{text}", return_tensors="pt")
        ids: torch.Tensor = encoded["input_ids"][0]
        return ids

    def decoder(self, settings: CsmSettings) -> ChunkedDecoder:
        return ChunkedDecoder(
            self.model.codec_model,
            chunk_frames=settings.chunk_frames,
            context_frames=settings.context_frames,
        )

    @property
    def memory_bytes(self) -> int | None:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        self.host = LoraHost(None)
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class CsmVoice(TTSModel):
    """A LoRA voice: a named adapter on a resident ``CsmModel``, batched with it."""

    def __init__(self, base: CsmModel, adapter: str, settings: CsmSettings, size: int) -> None:
        super().__init__(base.native_sample_rate)
        self.base = base
        self.adapter = adapter
        self.samples_per_frame = base.samples_per_frame
        self.settings = settings
        self._size = size

    @property
    def batcher(self) -> ClauseBatcher:
        return self.base.batcher

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return CsmStream(self, context)

    def check_options(self, options: VoiceOptions) -> None:
        check_reference(options, self)

    @property
    def memory_bytes(self) -> int | None:
        return self._size  # the adapter's weights; the base counts its own

    def close(self) -> None:  # on the device thread: the base stays resident
        self.base.host.remove(self.adapter)


def settings_from(spec: ModelSpec) -> CsmSettings:
    return settings_from_params(CsmSettings, spec, "CSM", read_elsewhere=("dtype",))


class CsmFamily(TTSFamily):
    name = "csm"
    executor = ExecutorKind.DEVICE

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        from transformers import AutoTokenizer, CsmForConditionalGeneration

        folder = source_folder(spec, "CSM", "a save_pretrained folder")
        settings = settings_from(spec)
        if spec.base_model:
            return self._load_lora(spec, folder, settings, base)
        dtype_name = str(spec.params.get("dtype", "bfloat16" if device == "cuda" else "float32"))
        if dtype_name not in _DTYPES:
            raise AdapterError(f"voicepack {spec.id}: dtype must be one of {', '.join(_DTYPES)}")
        try:
            model = CsmForConditionalGeneration.from_pretrained(folder, dtype=_DTYPES[dtype_name])
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise AdapterError(f"csm could not load {folder}: {exc}") from exc
        model = model.to(device).eval()
        return CsmModel(model, tokenizer, settings, device)

    def _load_lora(
        self, spec: ModelSpec, folder: Path, settings: CsmSettings, base: TTSModel | None
    ) -> CsmVoice:
        if not isinstance(base, CsmModel):
            raise AdapterError(
                f"voicepack {spec.id}: base_model {spec.base_model!r} is not a csm base model"
            )
        name = adapter_name(spec.id)
        size = base.host.add(name, folder)
        return CsmVoice(base, name, settings, size)


__all__ = [
    "BASE",
    "ChunkedDecoder",
    "CsmFamily",
    "CsmModel",
    "CsmSettings",
    "CsmVoice",
    "LoraHost",
    "settings_from",
]
