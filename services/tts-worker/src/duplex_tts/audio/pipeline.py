"""Native-rate model audio → loudness-normalized 48 kHz 20 ms PCM16 frames, per utterance."""

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

    def push(self, native: FloatArray) -> list[bytes]:
        return self._framer.push(self._shape(self._resampler.process(native)))

    def finish(self) -> list[bytes]:
        """Drain the resampler; the final list ends with the zero-padded last frame."""
        frames = self._framer.push(self._shape(self._resampler.flush()))
        frames.append(self._framer.flush())
        return frames

    def _shape(self, samples: FloatArray) -> FloatArray:
        if samples.size == 0:
            return samples
        return soft_limit(samples * np.float32(self._gain))
