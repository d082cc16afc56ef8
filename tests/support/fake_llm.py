"""An OpenAI-compatible ``/v1/chat/completions`` served in process on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.support.worker import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve_completions(handler: Handler) -> tuple[web.AppRunner, str]:
    """``handler`` at ``/v1/chat/completions``; the runner (to clean up) and the base URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"
