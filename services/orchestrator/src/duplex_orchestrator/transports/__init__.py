"""Transports: each turns one kind of client connection into a ``VoiceSession``.

``websocket`` (JSON + binary PCM), ``webrtc`` with ``rtc_http`` (aiortc, Opus,
a data channel) share the session core; ``SERVICES`` is where the HTTP app
keeps what every session shares, ``REGISTRY`` the workers (set first, for
``/healthz`` and the lab).
"""

from aiohttp import web

from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.session import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
REGISTRY: web.AppKey[Registry] = web.AppKey("registry", Registry)

__all__ = ["REGISTRY", "SERVICES"]
