"""The WebSocket transport: JSON control/events and binary PCM, one VoiceSession per socket.

The client declares its audio rate in ``start``; this transport checks each
binary frame (20 ms at that rate) and resamples it to the core's 16 kHz.
Events go out as JSON text frames, the worker's 20 ms frames as binary.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from duplex_orchestrator import metrics
from duplex_orchestrator.events import Error, Event, to_json
from duplex_orchestrator.protocol import MAX_FRAME_BYTES, ProtocolError, Start, parse
from duplex_orchestrator.session import Services, VoiceSession
from duplex_orchestrator.transports.audio import To16k, pcm_frame

log = logging.getLogger(__name__)


class WebSocketIO:
    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket

    async def event(self, event: Event) -> None:
        if not self._socket.closed:
            await self._socket.send_str(to_json(event))

    async def audio(self, frame: bytes) -> None:
        if not self._socket.closed:
            await self._socket.send_bytes(frame)

    async def flush_audio(self) -> None:
        """Nothing is queued here: the ``barge_in`` event tells the client to drop its buffer."""


async def handle(request: web.Request, services: Services) -> web.WebSocketResponse:
    # decode_text=False: invalid UTF-8 gets a ``bad_json`` event instead of a closed socket.
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_FRAME_BYTES, decode_text=False)
    await socket.prepare(request)
    io = WebSocketIO(socket)
    session = VoiceSession(io, services)
    to16k: To16k | None = None
    metrics.SESSIONS.inc()
    log.info("session opened", extra={"event": "ws_open", "session_id": session.id})
    try:
        async for message in socket:
            try:
                if message.type is WSMsgType.TEXT:
                    parsed = parse(message.data)
                    await session.handle(parsed)
                    if isinstance(parsed, Start):
                        to16k = To16k(parsed.sample_rate)
                elif message.type is WSMsgType.BINARY:
                    if to16k is None:
                        raise ProtocolError("not_started", 'send {"type": "start"} before audio')
                    samples = pcm_frame(message.data, to16k.rate)
                    await session.audio(to16k(samples), source=samples)
            except ProtocolError as exc:
                metrics.ERRORS.labels(code=exc.code).inc()
                await io.event(Error(exc.code, str(exc)))
    finally:
        await session.close()
        metrics.SESSIONS.dec()
        log.info("session closed", extra={"event": "ws_close", "session_id": session.id})
    return socket
