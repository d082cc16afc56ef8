"""One spoken reply: the worker stream it plays on and its PAUSE / RESUME / STOP state."""

from __future__ import annotations

import contextlib

import grpc

from duplex_orchestrator.tts import PAUSE, RESUME, STOP, WorkerClient
from duplex_protocol.tts.v1 import tts_pb2 as pb


class Reply:
    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.paused = False
        self.stopped = False
        self.finished = False
        self.deltas_shown = 0
        """Reply text deltas already sent to the client (a retry does not repeat them)."""
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

    async def pause(self) -> None:
        self.paused = True
        await self._control(PAUSE)

    async def resume(self) -> None:
        self.paused = False
        await self._control(RESUME)

    async def stop(self) -> None:
        if self.stopped or self.finished:
            return
        self.stopped = True
        await self._control(STOP)

    async def _control(self, action: int) -> None:
        if self._client is None:
            return
        with contextlib.suppress(grpc.aio.AioRpcError):  # a stream that already ended
            await self._client.control(self._session_id, action)  # type: ignore[arg-type]
