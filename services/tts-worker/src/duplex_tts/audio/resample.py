"""Band-limited streaming resampling (soxr), continuous across chunks."""

from __future__ import annotations

import numpy as np
import soxr

from duplex_protocol import SAMPLE_RATE
from duplex_tts.audio.framing import FloatArray


class StreamResampler:
    """Native rate → 48 kHz, one instance per utterance.

    soxr keeps its filter state between calls, so chunk boundaries leave no
    discontinuity (a click) in the output; ``flush`` drains the filter tail.
    """

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        if in_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {in_rate}")
        self._passthrough = in_rate == out_rate
        self._stream = (
            None
            if self._passthrough
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, samples: FloatArray) -> FloatArray:
        data = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return data
        out: FloatArray = self._stream.resample_chunk(data, last=False)
        return out

    def flush(self) -> FloatArray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out: FloatArray = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return out
