"""Repacketizing a continuous 48 kHz signal into exact 20 ms PCM16 frames: pure."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from duplex_protocol import FRAME_SAMPLES

FloatArray = npt.NDArray[np.float32]


def float_to_pcm16(samples: FloatArray) -> bytes:
    """[-1, 1] float32 → little-endian int16 bytes (clipped, rounded)."""
    scaled = np.clip(samples, -1.0, 1.0) * 32767.0
    pcm: bytes = np.rint(scaled).astype("<i2").tobytes()
    return pcm


def fade_out(frame: bytes) -> bytes:
    """A linear fade to zero over one frame, so a STOP ends without a click."""
    pcm = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    ramp = np.linspace(1.0, 0.0, num=pcm.size, dtype=np.float32)
    faded: bytes = np.rint(pcm * ramp).astype("<i2").tobytes()
    return faded


class Framer:
    """Accumulates samples; hands out whole 960-sample frames.

    Samples carry over between pushes, so frame boundaries never depend on
    how the adapter happened to chunk its output.
    """

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self._frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: FloatArray) -> list[bytes]:
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = data.size // self._frame_samples * self._frame_samples
        self._pending = data[whole:]
        return [
            float_to_pcm16(data[i : i + self._frame_samples])
            for i in range(0, whole, self._frame_samples)
        ]

    def flush(self) -> bytes:
        """The last frame: what is left, zero-padded (a silent frame if nothing is)."""
        last = np.zeros(self._frame_samples, dtype=np.float32)
        last[: self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return float_to_pcm16(last)

    @property
    def pending_samples(self) -> int:
        return int(self._pending.size)
