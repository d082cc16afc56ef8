"""Native-rate model audio → loudness-normalized 48 kHz 20 ms PCM16 frames, per utterance."""

from __future__ import annotations

import numpy as np

from duplex_tts.audio.framing import FloatArray, Framer
from duplex_tts.audio.resample import StreamResampler

# Gain may push rare peaks past full scale; a soft knee above this level
# avoids the harsh distortion of hard clipping.
_KNEE = 0.9


def soft_limit(samples: FloatArray) -> FloatArray:
    out = samples.copy()
    over = np.abs(out) > _KNEE
    if np.any(over):
        excess = np.abs(out[over]) - _KNEE
        out[over] = np.sign(out[over]) * (_KNEE + (1 - _KNEE) * np.tanh(excess / (1 - _KNEE)))
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
