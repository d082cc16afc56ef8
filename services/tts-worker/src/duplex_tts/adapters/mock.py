"""The ``mock`` family: deterministic speech-like audio, no dependencies, for tests.

Each word becomes voiced syllables (a harmonic series on a gliding pitch with
a syllable envelope) and words are separated by short pauses, so the signal
has speech's rhythm and loudness statistics. The same text always gives the
same samples. Voicepack ``params``: ``pitch_hz``, ``load_delay_ms`` (slow
loads for manager tests), ``rtf`` (compute time per audio second),
``fail_load`` (a message: loading fails with it) and ``fail_on_word`` (a word
that makes synthesis raise, as a crashing model would).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator

import numpy as np

from duplex_tts.adapters.base import AdapterError, FloatArray, TTSFamily, TTSModel, VoiceOptions
from duplex_tts.catalog import ModelSpec

_SYLLABLE_S = 0.14
_WORD_GAP_S = 0.05
_VOWELS = re.compile(r"[aeiouy]+", re.IGNORECASE)


class MockModel(TTSModel):
    def __init__(
        self, native_sample_rate: int, pitch_hz: float, rtf: float, fail_on_word: str = ""
    ) -> None:
        super().__init__(native_sample_rate)
        self._pitch_hz = pitch_hz
        self._rtf = rtf
        self._fail_on_word = fail_on_word.lower()

    def synthesize(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        for word in text.split():
            if self._fail_on_word and word.lower().strip(".,!?") == self._fail_on_word:
                raise RuntimeError(f"mock model crashed on {word!r}")
            audio = self._word(word)
            if self._rtf > 0:
                time.sleep(self._rtf * audio.size / self.native_sample_rate)
            yield audio

    def _word(self, word: str) -> FloatArray:
        sr = self.native_sample_rate
        syllables = max(1, len(_VOWELS.findall(word)))
        seed = zlib.crc32(word.lower().encode())
        n = int(_SYLLABLE_S * sr)
        t = np.arange(n, dtype=np.float64) / sr
        envelope = np.sin(np.pi * np.arange(n) / n) ** 2
        parts = []
        for k in range(syllables):
            f0 = self._pitch_hz * (1.0 + 0.08 * (((seed >> (k * 3)) & 7) - 3.5) / 3.5)
            glide = f0 * (1.0 - 0.1 * t / _SYLLABLE_S)
            phase = 2 * np.pi * np.cumsum(glide) / sr
            voiced = sum((0.5 / h) * np.sin(h * phase) for h in range(1, 9))
            parts.append(0.4 * envelope * voiced)
        parts.append(np.zeros(int(_WORD_GAP_S * sr)))
        return np.concatenate(parts).astype(np.float32)


class MockFamily(TTSFamily):
    name = "mock"

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        params = spec.params
        if "fail_load" in params:
            raise AdapterError(str(params["fail_load"]))
        delay_ms = float(params.get("load_delay_ms", 0))
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        pitch = float(params.get("pitch_hz", 140.0))
        if isinstance(base, MockModel):
            pitch = base._pitch_hz * float(params.get("pitch_ratio", 1.0))
        return MockModel(
            spec.native_sample_rate,
            pitch,
            float(params.get("rtf", 0.0)),
            str(params.get("fail_on_word", "")),
        )
