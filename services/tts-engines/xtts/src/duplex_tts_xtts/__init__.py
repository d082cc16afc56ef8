"""duplex-tts-xtts: the ``xtts`` family, XTTS-v2 (coqui-tts) with voice cloning.

Clause by clause on the device thread (``ExecutorKind.DEVICE``): each clause
goes through coqui's ``Xtts.inference_stream``, so audio leaves every
``stream_chunk_size`` GPT tokens, not after the whole clause. Cancel (STOP,
barge-in, session end) stops the GPT within one token through a transformers
stopping criterion.

The voice is cloned from the session's ``StartSession.reference_audio`` (6 to 10 s
of speech at any rate): its conditioning latents are cached by a hash of the
clip (``cloning``), so only a new clip costs a clone. Without a clip the
voicepack's ``reference`` (a WAV beside it) or built-in ``speaker`` (from
``speakers_xtts.pth``) speaks; ``StartSession.speaker`` picks another built-in
speaker.

Weights come from ``source.path``: a folder holding coqui's XTTS-v2 files
(``config.json``, ``model.pth``, ``vocab.json``, optionally
``speakers_xtts.pth``), downloaded ahead of time or mounted from a PVC.
Voicepack ``params``: see ``XttsSettings``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile
import soxr
import torch
from prometheus_client import Counter, Histogram

from duplex_tts.adapters import (
    AdapterError,
    ClauseModel,
    ClauseStream,
    ExecutorKind,
    FloatArray,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.adapters.sources import (
    pack_path,
    require_files,
    settings_from_params,
    source_folder,
)
from duplex_tts.catalog import ModelSpec
from duplex_tts.tracing import phase
from duplex_tts_xtts.cloning import LatentCache, clip_key

log = logging.getLogger(__name__)

CLONE_RATE = 22050  # XTTS's encoders read 22.05 kHz audio
MIN_REFERENCE_S = 1.0

CLONE_SECONDS = Histogram(
    "duplex_tts_xtts_clone_seconds",
    "Time to clone a voice from a reference clip (conditioning latents + speaker embedding)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LATENT_CACHE = Counter(
    "duplex_tts_xtts_latent_cache",
    "Cloned-voice lookups by reference-clip hash",
    ["result"],
)


@dataclass(frozen=True)
class XttsSettings:
    """Voicepack ``params`` of an XTTS voice (coqui's inference defaults).

    coqui's streaming generator always samples (there is no greedy mode), so
    ``temperature``, ``top_k`` and ``top_p`` shape every reply.
    """

    language: str = "en"
    speaker: str = ""  # a built-in speaker (speakers_xtts.pth) when no clip is sent
    reference: str = ""  # a WAV beside the voicepack: the voice when no clip is sent
    stream_chunk_size: int = 20  # GPT tokens per decoded chunk (~0.93 s of audio)
    overlap_wav_len: int = 1024
    temperature: float = 0.75
    top_k: int = 50
    top_p: float = 0.85
    repetition_penalty: float = 10.0
    length_penalty: float = 1.0
    speed: float = 1.0
    latent_cache_size: int = 16

    def __post_init__(self) -> None:
        if self.stream_chunk_size < 1:
            raise ValueError("stream_chunk_size must be at least 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.speed <= 0:
            raise ValueError("temperature and speed must be > 0, top_p in (0, 1]")
        if self.latent_cache_size < 0 or self.overlap_wav_len < 0:
            raise ValueError("latent_cache_size and overlap_wav_len must be >= 0")


@dataclass(frozen=True)
class Voice:
    """A cloned or built-in voice: what ``inference_stream`` conditions on."""

    gpt_latents: torch.Tensor
    speaker_embedding: torch.Tensor


class _Cancelled:
    """A transformers stopping criterion: true for every row once the stream is cancelled."""

    def __init__(self, cancelled: Callable[[], bool]) -> None:
        self._cancelled = cancelled

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self._cancelled(), dtype=torch.bool, device=input_ids.device
        )


class XttsModel(ClauseModel):
    def __init__(self, model: Any, settings: XttsSettings, device: str) -> None:
        super().__init__(int(model.args.output_sample_rate))
        self.model = model
        self.settings = settings
        self.device = device
        self.cache: LatentCache[Voice] = LatentCache(settings.latent_cache_size)
        self.default_voice: Voice | None = None

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return XttsStream(self, context)

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        return self.clause_chunks(text, options, lambda: False)

    def clause_chunks(
        self, text: str, options: VoiceOptions, cancelled: Callable[[], bool]
    ) -> Iterator[FloatArray]:
        """One clause, chunk by chunk; every ``next()`` runs on the device thread."""
        from transformers import StoppingCriteriaList

        voice = self.voice_for(options)  # checks the options, the language included
        s = self.settings
        chunks = self.model.inference_stream(
            text,
            options.language or s.language,
            voice.gpt_latents,
            voice.speaker_embedding,
            stream_chunk_size=s.stream_chunk_size,
            overlap_wav_len=s.overlap_wav_len,
            temperature=s.temperature,
            length_penalty=s.length_penalty,
            repetition_penalty=s.repetition_penalty,
            top_k=s.top_k,
            top_p=s.top_p,
            do_sample=True,  # coqui's stream generator samples whatever this says
            speed=s.speed,
            stopping_criteria=StoppingCriteriaList([_Cancelled(cancelled)]),
        )
        try:
            for chunk in chunks:
                if cancelled():
                    return
                yield chunk.detach().float().cpu().numpy().astype(np.float32, copy=False)
        except AssertionError as exc:  # coqui asserts on over-long text
            raise AdapterError(f"XTTS: {str(exc).strip(' ❗')}") from exc

    def check_options(self, options: VoiceOptions) -> None:
        language = options.language or self.settings.language
        languages = list(self.model.config.languages)
        if language.split("-")[0] not in languages and language not in languages:
            raise AdapterError(f"XTTS speaks {', '.join(languages)}; not {language!r}")
        clip = options.reference_audio
        if clip is not None and clip.size:
            rate = options.reference_sample_rate
            if rate <= 0:
                raise AdapterError("reference_audio needs its sample rate (reference_sample_rate)")
            if clip.size / rate < MIN_REFERENCE_S:
                raise AdapterError(
                    f"reference_audio is {clip.size / rate:.2f} s; XTTS needs at least "
                    f"{MIN_REFERENCE_S:.0f} s of speech (6 to 10 s clones best)"
                )
        elif options.speaker:
            speakers = getattr(self.model.speaker_manager, "speakers", None) or {}
            if options.speaker not in speakers:
                known = ", ".join(sorted(speakers)[:8]) or "none in this voicepack"
                raise AdapterError(
                    f"XTTS has no built-in speaker {options.speaker!r}; some it has: {known}"
                )
        elif self.default_voice is None:
            raise AdapterError(
                "XTTS clones a voice: send reference_audio (6 to 10 s of speech) in StartSession "
                "or give the voicepack a reference WAV or a built-in speaker"
            )

    def voice_for(self, options: VoiceOptions) -> Voice:
        """The session's clip (cloned, cached), else its built-in speaker, else the pack's voice."""
        self.check_options(options)
        clip = options.reference_audio
        if clip is not None and clip.size:
            rate = options.reference_sample_rate
            audio = np.asarray(clip, dtype=np.float32)
            voice, hit = self.cache.get_or_compute(
                clip_key(audio, rate), lambda: self.clone(audio, rate)
            )
            LATENT_CACHE.labels(result="hit" if hit else "miss").inc()
            return voice
        if options.speaker:
            return self.builtin_speaker(options.speaker)
        assert self.default_voice is not None
        return self.default_voice

    def clone(self, audio: FloatArray, sample_rate: int) -> Voice:
        """Conditioning latents and speaker embedding of a clip (device thread)."""
        started = time.perf_counter()
        if sample_rate != CLONE_RATE:
            audio = soxr.resample(audio, sample_rate, CLONE_RATE).astype(np.float32)
        config = self.model.config
        audio = audio[: CLONE_RATE * int(config.max_ref_len)]
        clip = torch.from_numpy(np.ascontiguousarray(audio))[None, :].to(self.device)
        with phase("xtts.clone"):
            gpt_latents = self.model.get_gpt_cond_latents(
                clip, CLONE_RATE, length=config.gpt_cond_len, chunk_length=config.gpt_cond_chunk_len
            )
            embedding = self.model.get_speaker_embedding(clip, CLONE_RATE)
        took = time.perf_counter() - started
        CLONE_SECONDS.observe(took)
        # The figures only: the clip itself is never logged or kept.
        figures = {"clone_ms": round(took * 1000, 1), "clip_s": round(audio.size / CLONE_RATE, 2)}
        log.info("voice cloned", extra={"event": "xtts_clone", **figures})
        return Voice(gpt_latents, embedding)

    def builtin_speaker(self, name: str) -> Voice:
        self.check_options(VoiceOptions(speaker=name))
        latents, embedding = self.model.speaker_manager.speakers[name].values()
        return Voice(latents.to(self.device), embedding.to(self.device))

    def warmup_options(self) -> VoiceOptions:
        if self.default_voice is not None:
            return VoiceOptions()
        # No voice of its own: warm up on a synthetic clip (a voiced tone with
        # vibrato), which also pays the encoders' first-call cost for the first clone.
        t = np.arange(3 * CLONE_RATE) / CLONE_RATE
        pitch = 2 * np.pi * (140 * t + 3 * np.sin(2 * np.pi * 5 * t))
        tone = sum(np.sin(k * pitch) / k for k in range(1, 6)) * 0.2
        return VoiceOptions(
            reference_audio=np.asarray(tone, dtype=np.float32), reference_sample_rate=CLONE_RATE
        )

    def forget(self) -> None:
        self.cache.clear()

    @property
    def memory_bytes(self) -> int | None:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def close(self) -> None:
        self.cache.clear()
        self.default_voice = None
        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


class XttsStream(ClauseStream):
    """Clause by clause, handing the model this stream's cancel flag."""

    def __init__(self, model: XttsModel, context: StreamContext) -> None:
        super().__init__(model, context)
        self._xtts = model

    def clause_chunks(self, clause: str) -> Iterator[FloatArray]:
        return self._xtts.clause_chunks(clause, self.context.options, lambda: self.cancelled)


def settings_from(spec: ModelSpec) -> XttsSettings:
    return settings_from_params(XttsSettings, spec, "XTTS")


class XttsFamily(TTSFamily):
    name = "xtts"
    executor = ExecutorKind.DEVICE

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        folder = source_folder(spec, "XTTS", "a folder with config.json, model.pth, vocab.json")
        settings = settings_from(spec)
        require_files("xtts", folder / "config.json", folder / "model.pth", folder / "vocab.json")
        try:
            config = XttsConfig()
            config.load_json(str(folder / "config.json"))
            model = Xtts(config)
            model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise AdapterError(f"xtts could not load {folder}: {exc}") from exc
        xtts = XttsModel(model.to(device), settings, device)
        if settings.reference:
            path = pack_path(spec, settings.reference)
            require_files("xtts", path)
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
            xtts.default_voice = xtts.clone(audio.mean(axis=1), int(rate))
        elif settings.speaker:
            xtts.default_voice = xtts.builtin_speaker(settings.speaker)
        return xtts


__all__ = [
    "LatentCache",
    "Voice",
    "XttsFamily",
    "XttsModel",
    "XttsSettings",
    "clip_key",
    "settings_from",
]
