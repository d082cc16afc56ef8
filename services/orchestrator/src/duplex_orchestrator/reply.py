"""One spoken reply: the worker stream it plays on, its PAUSE / RESUME / STOP state,
the hold on its first sound, and the frames a resume sends again (``playout``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import grpc

from duplex_orchestrator.playout import FRAME_S, Playout
from duplex_orchestrator.tts import PAUSE, RESUME, STOP, WorkerClient
from duplex_protocol.tts.v1 import tts_pb2 as pb

Held = Callable[[], bool]
"""Whether the reply's first sound must wait now (the user may be going on)."""


def _never() -> bool:
    return False


class Reply:
    def __init__(
        self,
        turn: int,
        held: Held = _never,
        hold_max_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.turn = turn
        self._clock = clock
        self._playout = Playout()
        self._again: list[bytes] = []
        """Frames for the client once the reply resumes: those it dropped at the pause,
        then those the worker sent while paused."""
        self._frames_sent = 0
        self._frames_dropped = 0
        """Frames sent to the client, and those it dropped unplayed (a pause, a flush)."""
        self._held = held
        self._hold_max_s = hold_max_s
        self._rechecked: asyncio.Event | None = None
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self.paused = False
        self.stopped = False
        self.finished = False
        self.deltas_shown = 0
        """Reply text deltas already taken for the client (a retry does not repeat them)."""
        self.unshown: list[str] = []
        """Text deltas kept back until the first sound: a reply withdrawn unheard shows none."""
        self.sounding = False
        """Its first sound went out (or it never could): its text is shown as it comes."""
        self.text_error: Exception | None = None
        """The reply's text source (the LLM) failed: the turn ends with this error."""
        self._client: WorkerClient | None = None
        self._session_id = ""
        self._call: grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame] | None = None

    async def attach(
        self,
        client: WorkerClient,
        session_id: str,
        call: grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame],
    ) -> None:
        """The worker stream is open; apply a pause or stop that came before it."""
        self._client, self._session_id, self._call = client, session_id, call
        if self.stopped:
            await self._control(STOP)
        elif self.paused:
            await self._control(PAUSE)

    async def first_sound(self) -> bool:
        """Wait, before the first frame goes to the client, while ``held`` says so (asked
        again at each ``recheck``), at most ``hold_max_s`` (the VAD may stop hearing the
        client): whether it waited. A reply stopped meanwhile was never heard."""
        if self.stopped or not self._held():
            return False
        self._rechecked = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._hold_max_s):
                    while not self.stopped and self._held():
                        await self._rechecked.wait()
                        self._rechecked.clear()
        finally:
            self._rechecked = None
        return True

    async def unpaused(self) -> None:
        """Wait while paused: a reply paused before its first sound (the user spoke
        first) makes none until what they said resumes it, or stops it unheard."""
        await self._unpaused.wait()

    @property
    def holding(self) -> bool:
        """Its first frame is here and waiting (``first_sound``)."""
        return self._rechecked is not None

    def recheck(self) -> None:
        """What ``held`` depends on may have changed (the VAD heard another frame)."""
        if self._rechecked is not None:
            self._rechecked.set()

    def frames_for_client(self, frame: bytes) -> list[bytes]:
        """What goes to the client as ``frame`` comes from the worker: nothing while
        stopped, nothing while paused (kept for the resume), else the frames kept at
        the pause, then ``frame``."""
        if self.stopped:
            return []
        if self.paused:
            self._again.append(frame)
            return []
        frames, self._again = [*self._again, frame], []
        return self._sending(frames)

    def frames_left(self) -> list[bytes]:
        """At the end of the worker's stream: frames kept at a pause that a resume let
        go but no later frame carried out (none while still paused or stopped)."""
        if self.stopped or self.paused:
            return []
        frames, self._again = self._again, []
        return self._sending(frames)

    def _sending(self, frames: list[bytes]) -> list[bytes]:
        """``frames`` go to the client now: the client's schedule gets them."""
        now = self._clock()
        for frame in frames:
            self._playout.sent(frame, now)
        self._frames_sent += len(frames)
        return frames

    @property
    def sent_s(self) -> float:
        """The audio sent to the client, in seconds (a reply heard whole: its length)."""
        return self._frames_sent * FRAME_S

    def heard_s(self) -> float:
        """The audio the client has played of it by now, in seconds, by its schedule:
        what it was sent, less what it dropped and what it has not played yet."""
        held = self._playout.pending(self._clock())
        return max(0, self._frames_sent - self._frames_dropped - held) * FRAME_S

    async def pause(self) -> None:
        """A barge-in: the client drops what it holds, so what it had not played yet is
        kept to be sent again if the reply resumes."""
        if not self.paused:
            dropped = self._playout.unplayed(self._clock())
            self._frames_dropped += len(dropped)
            self._again[:0] = dropped
        self.paused = True
        self._unpaused.clear()
        await self._control(PAUSE)

    def still_playing(self) -> bool:
        """The client may still be playing some of it (nothing since a pause or a flush)."""
        return self._playout.playing(self._clock())

    def flushed(self) -> None:
        """The client was told to drop what it holds of it."""
        self._frames_dropped += len(self._playout.unplayed(self._clock()))

    async def resume(self) -> None:
        self.paused = False
        self._unpaused.set()
        await self._control(RESUME)

    async def stop(self) -> None:
        if self.stopped or self.finished:
            return
        self.stopped = True
        self._unpaused.set()
        self.recheck()
        await self._control(STOP)

    async def _control(self, action: int) -> None:
        if self._client is None:
            return
        with contextlib.suppress(grpc.aio.AioRpcError):  # a stream that already ended
            await self._client.control(self._session_id, action)  # type: ignore[arg-type]
