"""The ``mock`` family: deterministic speech-like audio, no dependencies, for tests.

Each word becomes voiced syllables (a harmonic series on a gliding pitch with
a syllable envelope) and words are separated by short pauses, so the signal
has speech's rhythm and loudness statistics. The same text always gives the
same samples. Voicepack ``params``: ``pitch_hz``, ``load_delay_ms`` (slow
loads for manager tests), ``rtf`` (compute time per audio second),
``fail_load`` (a message: loading fails with it), ``fail_on_word`` (a word
that makes synthesis raise, as a crashing model would) and ``streaming:
token`` (take raw text deltas and speak each word as soon as it is complete,
keeping context across deltas, like CSM: the token path of the engine contract).
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator

import numpy as np

from duplex_tts.adapters.base import (
    AdapterError,
    ClauseModel,
    FloatArray,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.adapters.jobs import JobStream
from duplex_tts.catalog import ModelSpec

_SYLLABLE_S = 0.14
_WORD_GAP_S = 0.05
_VOWELS = re.compile(r"[aeiouy]+", re.IGNORECASE)


class MockModel(ClauseModel):
    def __init__(
        self,
        native_sample_rate: int,
        pitch_hz: float,
        rtf: float,
        fail_on_word: str = "",
        token_streaming: bool = False,
    ) -> None:
        super().__init__(native_sample_rate)
        self._pitch_hz = pitch_hz
        self._rtf = rtf
        self._fail_on_word = fail_on_word.lower()
        self._token_streaming = token_streaming
        self.words_generated = 0
        """Words synthesized so far, across streams (tests watch cancellation with it)."""

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        if self._token_streaming:
            return MockTokenStream(self, context)
        return super().open_stream(context)

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        for word in text.split():
            yield self.speak_word(word)

    def speak_word(self, word: str) -> FloatArray:
        """One word's audio, taking ``rtf`` times its duration (blocking)."""
        if self._fail_on_word and word.lower().strip(".,!?") == self._fail_on_word:
            raise RuntimeError(f"mock model crashed on {word!r}")
        audio = self._word(word)
        if self._rtf > 0:
            time.sleep(self._rtf * audio.size / self.native_sample_rate)
        self.words_generated += 1
        return audio

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


class MockTokenStream(JobStream):
    """Raw deltas in; a word is spoken once the next delta shows it is complete.

    Shaped like a token-streaming GPU engine: one long generation job on the
    executor speaks every complete word there is, and only the ``cancelled``
    flag (or backpressure) stops it between words.
    """

    def __init__(self, model: MockModel, context: StreamContext) -> None:
        super().__init__(context, model.native_sample_rate)
        self._model = model
        self._pending = ""
        self._ended = False

    def push_text(self, delta: str) -> None:
        with self.lock:
            self._pending += delta
        self.kick()

    def end_input(self) -> None:
        with self.lock:
            self._ended = True
        self.kick()

    def pending(self) -> tuple[bool, bool]:
        return self._take_word(peek=True) is not None, self._ended

    def _take_word(self, *, peek: bool = False) -> str | None:
        """The next complete word (caller holds the lock)."""
        words = self._pending.split()
        if not words or not (self._ended or self._pending[-1:].isspace()):
            return None
        if not peek:
            self._pending = self._pending.lstrip()[len(words[0]) :]
        return words[0]

    def generate(self) -> None:
        while not self.cancelled and self.room():
            with self.lock:
                word = self._take_word()
            if word is None:
                return
            self.emit(self._model.speak_word(word))


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
            token_streaming=params.get("streaming") == "token",
        )
