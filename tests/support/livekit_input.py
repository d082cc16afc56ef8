"""A livekit-agents AudioInput that is a scripted microphone (no room, no device).

It yields 20 ms frames at 48 kHz in real time, as a room's track would:
silence, or the speech a test queued with ``speak`` (16 kHz samples,
resampled here so the agent's own resampling is exercised).
"""

from __future__ import annotations

import asyncio

import numpy as np
import soxr
from livekit import rtc
from livekit.agents.voice import io

RATE = 48_000
FRAME = 960  # 20 ms


class ScriptedMicrophone(io.AudioInput):
    def __init__(self) -> None:
        super().__init__(label="scripted-microphone")
        self._pending = np.zeros(0, dtype=np.int16)
        self._next_at: float | None = None

    def speak(self, samples16k: np.ndarray) -> None:
        """Queue speech (int16 at 16 kHz) after whatever is still queued."""
        up = soxr.resample(samples16k.astype(np.float32) / 32768.0, 16_000, RATE)
        speech = np.clip(np.rint(up * 32768.0), -32768, 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, speech])

    @property
    def speaking(self) -> bool:
        return len(self._pending) > 0

    async def __anext__(self) -> rtc.AudioFrame:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_at = now if self._next_at is None else max(self._next_at, now - 0.1)
        await asyncio.sleep(max(0.0, self._next_at - now))
        self._next_at += FRAME / RATE
        chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)])
        return rtc.AudioFrame(
            data=chunk.tobytes(), sample_rate=RATE, num_channels=1, samples_per_channel=FRAME
        )
