"""Text sources for a reply: replayable (for retries) and client-fed (stream-TTS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class ReplayableText:
    """Wraps a stream of text deltas; ``replay()`` re-yields what was pulled, then continues.

    A reply that fails on one worker is retried on another from the start
    of its text, without asking the LLM again.
    """

    def __init__(self, source: AsyncIterator[str]) -> None:
        self._source = source
        self._seen: list[str] = []
        self._done = False

    @property
    def text(self) -> str:
        return "".join(self._seen)

    async def replay(self) -> AsyncIterator[str]:
        for delta in list(self._seen):
            yield delta
        while not self._done:
            try:
                delta = await anext(self._source)
            except StopAsyncIteration:
                self._done = True
                return
            self._seen.append(delta)
            yield delta


class ClientText:
    """Text deltas sent by the client (stream-TTS mode), ended by ``final``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False

    def push(self, text: str, final: bool) -> None:
        if self.closed:
            return
        if text:
            self._queue.put_nowait(text)
        if final:
            self.closed = True
            self._queue.put_nowait(None)

    async def deltas(self) -> AsyncIterator[str]:
        while (delta := await self._queue.get()) is not None:
            yield delta
