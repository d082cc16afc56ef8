"""The WebSocket transport: JSON control/events and binary PCM, one VoiceSession per socket."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from duplex_orchestrator import metrics
from duplex_orchestrator.protocol import MAX_FRAME_BYTES, ProtocolError, parse
from duplex_orchestrator.session import Services, VoiceSession

log = logging.getLogger(__name__)


class WebSocketIO:
    def __init__(self, socket: web.WebSocketResponse) -> None:
        self._socket = socket

    async def event(self, kind: str, **fields: Any) -> None:
        if not self._socket.closed:
            await self._socket.send_str(json.dumps({"type": kind, **fields}))

    async def audio(self, frame: bytes) -> None:
        if not self._socket.closed:
            await self._socket.send_bytes(frame)


async def handle(request: web.Request, services: Services) -> web.WebSocketResponse:
    # decode_text=False: invalid UTF-8 gets a ``bad_json`` event instead of a closed socket.
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_FRAME_BYTES, decode_text=False)
    await socket.prepare(request)
    io = WebSocketIO(socket)
    session = VoiceSession(io, services)
    metrics.SESSIONS.inc()
    log.info("session opened", extra={"event": "ws_open", "session_id": session.id})
    try:
        async for message in socket:
            try:
                if message.type is WSMsgType.TEXT:
                    await session.handle(parse(message.data))
                elif message.type is WSMsgType.BINARY:
                    await session.audio(message.data)
            except ProtocolError as exc:
                metrics.ERRORS.labels(code=exc.code).inc()
                await io.event("error", code=exc.code, message=str(exc))
    finally:
        await session.close()
        metrics.SESSIONS.dec()
        log.info("session closed", extra={"event": "ws_close", "session_id": session.id})
    return socket
