"""Client audio to the session core's 16 kHz: frame checks and streaming resampling.

Every transport converts what its client sends before the core sees it: the
WebSocket gets PCM16 frames at a declared rate, WebRTC gets Opus decoded at
48 kHz, LiveKit gets its room's frames. The core takes int16 samples at 16 kHz.
"""

from __future__ import annotations

import numpy as np
import soxr

from duplex_orchestrator.protocol import ProtocolError, frame_bytes
from duplex_orchestrator.vad import VAD_RATE


class To16k:
    """A streaming resampler from ``rate`` to 16 kHz, int16 in and out, state kept across calls."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream = (
            None
            if rate == VAD_RATE
            else soxr.ResampleStream(rate, VAD_RATE, 1, dtype="float32", quality="HQ")
        )

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return samples.astype(np.int16, copy=False)
        resampled: np.ndarray = self._stream.resample_chunk(samples.astype(np.float32) / 32768.0)
        return np.clip(np.rint(resampled * 32768.0), -32768, 32767).astype(np.int16)


def pcm_frame(data: bytes, rate: int) -> np.ndarray:
    """One WebSocket binary frame: exactly 20 ms of PCM16 mono at ``rate``, or a ProtocolError."""
    expected = frame_bytes(rate)
    if len(data) != expected:
        raise ProtocolError(
            "bad_audio_frame",
            f"binary frames must hold 20 ms of PCM16 mono at {rate} Hz "
            f"({expected} bytes); got {len(data)}",
        )
    return np.frombuffer(data, dtype="<i2")


def to_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved int16 samples of ``channels`` channels, averaged to mono."""
    if channels == 1:
        return samples
    mixed: np.ndarray = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
    mono: np.ndarray = np.rint(mixed).astype(np.int16)
    return mono
