"""The voice lab's HTTP API (``/lab``): load a voice on demand, measure a reply's loudness.

The page speaks each voice over ``/ws`` like any client; these two calls add
what a comparison needs. Audio posted for measuring is read into memory,
measured and dropped: never written or logged. Measuring runs in a thread,
off the event loop that paces every session's audio; pyloudnorm (and the
scipy.signal it pulls in, ~3 s to import on a small CPU) is imported there on
the first measurement, so an orchestrator starts without it.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
from aiohttp import web

from duplex_orchestrator.routing.policy import RouteRequest, route
from duplex_orchestrator.transports import REGISTRY

LAB_RATE = 48_000
"""The rate of the audio the page receives (and posts back): the workers' 48 kHz."""
MAX_MEASURED_S = 120
_BLOCK_S = 0.4  # BS.1770's gating block: shorter audio has no integrated loudness


def loudness(pcm: bytes, rate: int = LAB_RATE) -> dict[str, float | None]:
    """Integrated loudness (LUFS, ITU-R BS.1770-4 via pyloudnorm), sample peak and length."""
    import pyloudnorm

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    seconds = len(samples) / rate
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    lufs: float | None = None
    if seconds >= _BLOCK_S:
        value = float(pyloudnorm.Meter(rate).integrated_loudness(samples))
        lufs = round(value, 2) if math.isfinite(value) else None  # silence: -inf
    return {
        "lufs": lufs,
        "peak_dbfs": round(20 * math.log10(peak), 2) if peak > 0 else None,
        "seconds": round(seconds, 3),
    }


async def load_voice(request: web.Request) -> web.StreamResponse:
    """``POST /api/models/{model}/load``: ready (200), loading (202) or unknown (404)."""
    registry = request.app[REGISTRY]
    model_id = request.match_info["model"]
    known = {str(m["id"]): m for m in registry.models()}
    if model_id not in known:
        return web.json_response(
            {
                "error": "unknown_model",
                "message": f"no worker serves {model_id!r}",
                "models": sorted(known),
            },
            status=404,
        )
    if known[model_id]["resident"]:
        return web.json_response({"model": model_id, "state": "ready"})
    chosen = route(registry.snapshot(), RouteRequest(model_id))
    target = chosen.load_on or chosen.worker
    if target is None:
        return web.json_response(
            {"error": "no_worker", "message": chosen.reason, "model": model_id}, status=503
        )
    registry.ensure_loading(target.endpoint, model_id)
    return web.json_response(
        {"model": model_id, "state": "loading", "worker": target.worker_id}, status=202
    )


async def measure(request: web.Request) -> web.StreamResponse:
    """``POST /api/lab/loudness``: the body is PCM16 mono little-endian at 48 kHz."""
    limit = MAX_MEASURED_S * LAB_RATE * 2
    body = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):  # read() stops at what arrived
        body += chunk
        if len(body) > limit:
            return web.json_response(
                {"error": "too_large", "message": f"at most {MAX_MEASURED_S} s of audio"},
                status=413,
            )
    return web.json_response(await asyncio.to_thread(loudness, bytes(body)))


def setup(app: web.Application) -> None:
    app.router.add_post("/api/models/{model}/load", load_voice)
    app.router.add_post("/api/lab/loudness", measure)
