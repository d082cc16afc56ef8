"""HTTP signalling for the WebRTC transport: ``GET /rtc/config``, ``POST /rtc/offer``.

Both sit behind the API key and the origin check, like ``/ws``. The offer is
``{"sdp": ..., "type": "offer"}`` with ICE already gathered (no trickle); the
answer is aiortc's, with ``session_id``. Every peer connection is closed when
the server stops.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from duplex_orchestrator import metrics
from duplex_orchestrator.transports import SERVICES
from duplex_orchestrator.transports.webrtc import MAX_OFFER_BYTES, RtcSession, RtcSettings

log = logging.getLogger(__name__)
SESSIONS: web.AppKey[set[RtcSession]] = web.AppKey("rtc_sessions", set)


def setup(app: web.Application, settings: RtcSettings) -> None:
    app[SESSIONS] = set()

    async def config(request: web.Request) -> web.StreamResponse:
        return web.json_response(settings.browser_config())

    async def offer(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_OFFER_BYTES, actual_size=request.content_length
            )
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text='the body must be JSON: {"sdp": ..., "type": "offer"}'
            ) from None
        if not isinstance(body, dict) or body.get("type") != "offer":
            raise web.HTTPBadRequest(text='expected {"sdp": ..., "type": "offer"}')
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or "m=audio" not in sdp:
            raise web.HTTPBadRequest(text="the offer must carry an audio track and a data channel")
        sessions = request.app[SESSIONS]

        async def closed(rtc: RtcSession) -> None:
            if rtc in sessions:
                sessions.discard(rtc)
                metrics.SESSIONS.dec()

        rtc = RtcSession(request.app[SERVICES], settings, on_closed=closed)
        try:
            answer = await asyncio.wait_for(rtc.answer(sdp), 10)
        except Exception as exc:  # any offer aiortc cannot take: say why, leave nothing open
            await rtc.close("bad offer")
            reason = str(exc) or type(exc).__name__
            raise web.HTTPBadRequest(text=f"cannot answer this offer: {reason}") from None
        sessions.add(rtc)
        metrics.SESSIONS.inc()
        log.info("webrtc session opened", extra={"event": "rtc_open", "session_id": rtc.id})
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": rtc.id})

    async def close_all(app: web.Application) -> None:
        live: set[RtcSession] = app[SESSIONS]
        await asyncio.gather(*(rtc.close("server stopping") for rtc in list(live)))

    app.router.add_get("/rtc/config", config)
    app.router.add_post("/rtc/offer", offer)
    app.on_shutdown.append(close_all)
