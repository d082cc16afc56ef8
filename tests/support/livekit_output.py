"""A livekit-agents AudioOutput that plays into memory in real time (no room, no device).

Frames captured are played at their own pace by a task, as a speaker would;
``flush`` ends a segment once it has played, ``clear_buffer`` (an
interruption) drops what has not played yet; with ``can_pause``, ``pause`` holds
the playback where it is until ``resume``, as a room's output does. What played, what was dropped
and how often the buffer was cleared are kept for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib

from livekit import rtc
from livekit.agents.voice import io


class PlayedAudioOutput(io.AudioOutput):
    def __init__(self, sample_rate: int = 48_000, can_pause: bool = False) -> None:
        super().__init__(
            label="played-in-memory",
            capabilities=io.AudioOutputCapabilities(pause=can_pause),
            sample_rate=sample_rate,
        )
        self._playing = asyncio.Event()
        self._playing.set()
        self.pauses = 0
        self.resumes = 0
        self.captured: list[rtc.AudioFrame] = []
        self.played: list[rtc.AudioFrame] = []
        self.cleared = 0
        self.dropped = 0
        self._queue: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._player: asyncio.Task[None] | None = None
        self._segment_played = 0.0
        self._started = False

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._player is None or self._player.done():
            self._player = asyncio.create_task(self._play())
        if not self._started:
            self._started = True
            self.on_playback_started(created_at=asyncio.get_running_loop().time())
        self.captured.append(frame)
        self._queue.put_nowait(frame)

    def flush(self) -> None:
        super().flush()
        self._queue.put_nowait(None)  # the segment ends after what is queued

    def pause(self) -> None:
        """A room's output holds its place (LiveKit pauses it on an interruption that
        may turn out false); ``can_pause`` says whether it may."""
        super().pause()
        self.pauses += 1
        self._playing.clear()

    def resume(self) -> None:
        super().resume()
        self.resumes += 1
        self._playing.set()

    def clear_buffer(self) -> None:
        self.cleared += 1
        while not self._queue.empty():
            if self._queue.get_nowait() is not None:
                self.dropped += 1
        self._finish(interrupted=True)

    def _finish(self, *, interrupted: bool) -> None:
        if self._started:
            self.on_playback_finished(
                playback_position=self._segment_played, interrupted=interrupted
            )
        self._started = False
        self._segment_played = 0.0

    async def _play(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                frame = await self._queue.get()
                if frame is None:
                    self._finish(interrupted=False)
                    continue
                await self._playing.wait()
                await asyncio.sleep(frame.duration)
                self.played.append(frame)
                self._segment_played += frame.duration

    async def aclose(self) -> None:
        if self._player is not None:
            self._player.cancel()
