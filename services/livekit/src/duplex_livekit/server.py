"""``duplex-orchestrator --transport livekit``: a LiveKit agent server running duplex's voice.

It registers with the LiveKit server (``LIVEKIT_URL``, ``LIVEKIT_API_KEY``,
``LIVEKIT_API_SECRET``) and runs ``agent.entrypoint`` in a job process for
each room it is given. The configuration reaches the job processes through
``prewarm`` (the settings as JSON, without the HTTP API key). SIGTERM drains:
running rooms finish before the process exits (give the pod a long enough
termination grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal

from livekit.agents import AgentServer

from duplex_livekit.agent import entrypoint, prewarm
from duplex_orchestrator.config import OrchestratorConfig

log = logging.getLogger(__name__)


def agent_server(config: OrchestratorConfig) -> AgentServer:
    settings = config.model_dump_json(exclude={"api_key", "api_key_file", "turn_credential"})
    server = AgentServer(
        ws_url=config.livekit_url,
        api_key=config.livekit_api_key,
        api_secret=config.livekit_api_secret,
        host=config.host,
        port=config.livekit_port,
        setup_fnc=functools.partial(prewarm, settings),
    )
    server.rtc_session(entrypoint, agent_name=config.livekit_agent_name)
    return server


def serve(config: OrchestratorConfig) -> None:
    asyncio.run(_run(agent_server(config)))


async def _run(server: AgentServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(server.run(devmode=False))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        log.info("draining: running rooms finish first", extra={"event": "livekit_drain"})
        with contextlib.suppress(asyncio.TimeoutError):
            await server.drain()
    stopping.cancel()
    await server.aclose()
    if running.done() and not running.cancelled():
        error = running.exception()
        if error is not None:
            raise error
