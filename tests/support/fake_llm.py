"""An OpenAI-compatible ``/v1/chat/completions`` served in process on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

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


def streamed_answer(
    *contents: str | None, every_s: float = 0.0, seen: list[Any] | None = None
) -> Handler:
    """A handler streaming ``contents`` as server-sent deltas (None: a delta without
    content), ``every_s`` apart, then ``[DONE]``; each request's JSON body into ``seen``."""

    async def stream(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for content in contents:
            await asyncio.sleep(every_s)
            chunk = {"choices": [{"delta": {} if content is None else {"content": content}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    return stream
