"""Native-rate model audio → loudness-normalized 48 kHz 20 ms PCM16 frames, per utterance.

An utterance starts at its first sound: models begin with tens of ms of
near-silence (Piper: up to 40 ms below -60 dBFS), which would only delay
what the listener hears. Silence inside the utterance is kept.
"""

from __future__ import annotations

import numpy as np

from duplex_tts.audio.framing import FloatArray, Framer
from duplex_tts.audio.resample import StreamResampler

# Gain may push rare peaks past full scale (Kokoro's raw output peaks above ±1
# too); a soft knee above this level avoids the harsh distortion of hard clipping.
_KNEE = 0.9
# What the knee tends to, just under full scale: however large a peak, the
# PCM16 frame never clips (a ceiling of 1.0 would round to ±32767).
CEILING = 0.98
LEAD_FLOOR = 10 ** (-60 / 20)
"""Below this (-60 dBFS, after gain) the start of an utterance is silence, dropped."""
LEAD_MARGIN_S = 0.005
"""Kept before the first sound, so its onset is not cut."""


def soft_limit(samples: FloatArray) -> FloatArray:
    out = samples.copy()
    over = np.abs(out) > _KNEE
    if np.any(over):
        width = CEILING - _KNEE
        excess = np.abs(out[over]) - _KNEE
        out[over] = np.sign(out[over]) * (_KNEE + width * np.tanh(excess / width))
    return out


class AudioPipeline:
    """Resample → gain → limit → frame. One per Synthesize stream, so every
    stage stays continuous across the clauses of an utterance."""

    def __init__(self, native_rate: int, gain: float = 1.0) -> None:
        self._resampler = StreamResampler(native_rate)
        self._framer = Framer()
        self._gain = gain
        self._margin = max(1, round(LEAD_MARGIN_S * native_rate))
        self._lead: FloatArray | None = np.zeros(0, np.float32)
        """Until the first sound: the last silent samples, the margin kept before it."""

    def push(self, native: FloatArray) -> list[bytes]:
        if self._lead is not None:
            native = self._after_lead(native)
        return self._framer.push(self._shape(self._resampler.process(native)))

    def _after_lead(self, native: FloatArray) -> FloatArray:
        """Drop the utterance's leading silence, all but the margin before its first sound."""
        assert self._lead is not None
        held = np.concatenate([self._lead, native])
        loud = np.flatnonzero(np.abs(held) * self._gain > LEAD_FLOOR)
        if loud.size == 0:
            self._lead = held[-self._margin :]
            return held[:0]
        self._lead = None
        return held[max(0, int(loud[0]) - self._margin) :]

    def finish(self) -> list[bytes]:
        """Drain the resampler; the final list ends with the zero-padded last frame."""
        frames = self._framer.push(self._shape(self._resampler.flush()))
        frames.append(self._framer.flush())
        return frames

    def _shape(self, samples: FloatArray) -> FloatArray:
        if samples.size == 0:
            return samples
        return soft_limit(samples * np.float32(self._gain))
