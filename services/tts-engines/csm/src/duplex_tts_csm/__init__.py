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
bfloat16 on CUDA). ``StartSession``'s ``speaker`` (digits) overrides the
speaker id.
"""

from __future__ import annotations

import gc
from dataclasses import fields
from typing import Any

import torch

from duplex_tts.adapters import (
    AdapterError,
    ExecutorKind,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
)
from duplex_tts.adapters.sources import pack_path
from duplex_tts.catalog import ModelSpec
from duplex_tts_csm.codec import ChunkedDecoder
from duplex_tts_csm.engine import CsmSettings, CsmStream, _FrameStreamer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CsmModel(TTSModel):
    def __init__(self, model: Any, tokenizer: Any, settings: CsmSettings, device: str) -> None:
        super().__init__(int(model.codec_model.config.sampling_rate))
        self.model = model
        self._tokenizer = tokenizer
        self.settings = settings
        self.device = device

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return CsmStream(self, context)

    def prompt(self, text: str, speaker: int) -> dict[str, torch.Tensor]:
        """Token ids for one clause: CSM reads ``[speaker]text``."""
        template = getattr(self._tokenizer, "chat_template", None)
        if template:
            conversation = [{"role": str(speaker), "content": [{"type": "text", "text": text}]}]
            encoded = self._tokenizer.apply_chat_template(
                conversation, tokenize=True, return_dict=True, return_tensors="pt"
            )
        else:
            encoded = self._tokenizer(f"[{speaker}]{text}", return_tensors="pt")
        return {
            k: v.to(self.device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")
        }

    def generate_clause(self, text: str, stream: CsmStream) -> None:
        """Generate one clause on this thread, streaming audio through ``stream``."""
        spoken = stream.options.speaker
        speaker = int(spoken) if spoken.isdigit() else self.settings.speaker
        s = self.settings
        decoder = ChunkedDecoder(
            self.model.codec_model, chunk_frames=s.chunk_frames, context_frames=s.context_frames
        )
        streamer = _FrameStreamer(stream, decoder, int(self.model.config.codebook_eos_token_id))
        sampling: dict[str, Any] = {
            "do_sample": s.do_sample,
            "depth_decoder_do_sample": s.do_sample,
        }
        if s.do_sample:
            sampling |= {"temperature": s.temperature, "depth_decoder_temperature": s.temperature}
        with torch.inference_mode():
            self.model.generate(
                **self.prompt(text, speaker),
                max_new_tokens=s.max_frames_per_clause,
                streamer=streamer,
                **sampling,
            )

    @property
    def memory_bytes(self) -> int | None:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def settings_from(spec: ModelSpec) -> CsmSettings:
    known = {f.name: f.type for f in fields(CsmSettings)}
    values: dict[str, Any] = {}
    for key, value in spec.params.items():
        if key == "dtype":
            continue
        if key not in known:
            raise AdapterError(
                f"voicepack {spec.id}: unknown CSM param {key!r}; known: {', '.join(known)}, dtype"
            )
        values[key] = value
    try:
        return CsmSettings(**values)
    except TypeError as exc:
        raise AdapterError(f"voicepack {spec.id}: {exc}") from exc


class CsmFamily(TTSFamily):
    name = "csm"
    executor = ExecutorKind.DEVICE

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        from transformers import AutoTokenizer, CsmForConditionalGeneration

        if not spec.source.path:
            raise AdapterError(
                f"voicepack {spec.id}: CSM loads from source.path (a save_pretrained folder); "
                "download the weights ahead of time or mount them"
            )
        folder = pack_path(spec, spec.source.path)
        settings = settings_from(spec)
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


__all__ = ["ChunkedDecoder", "CsmFamily", "CsmModel", "CsmSettings"]
