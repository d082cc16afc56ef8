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
        self.complete = False
        """The source came to its end (not closed early): ``text`` is all of it."""

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
                self._done = self.complete = True
                return
            self._seen.append(delta)
            yield delta

    async def aclose(self) -> None:
        """End the source now if it was left unfinished (a reply stopped, failed or cut
        short): an LLM's HTTP stream closes, so the model stops writing a reply no one
        hears, instead of whenever the abandoned generator is collected. A source that
        is running (a cancelled consumer is inside it) is ended by that cancellation."""
        close = getattr(self._source, "aclose", None)
        if self._done or close is None or getattr(self._source, "ag_running", False):
            return
        self._done = True
        await close()


class TextTooLong(Exception):
    """A client streamed more text into one reply than it may carry."""


class ClientText:
    """Text deltas sent by the client (stream-TTS mode), ended by ``final``.

    At most ``max_chars`` in all: the queue (text sent faster than it is
    spoken) stays bounded; past it ``push`` raises ``TextTooLong``.
    """

    def __init__(self, max_chars: int = 20_000) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._chars = 0
        self._max = max_chars
        self.closed = False
        self.has_words = False
        """Some text that is not blank came: something to say."""

    def push(self, text: str, final: bool) -> None:
        if self.closed:
            return
        self._chars += len(text)
        if self._chars > self._max:
            self.closed = True
            self._queue.put_nowait(None)  # speak what came before, then end
            raise TextTooLong(
                f"a streamed reply may carry at most {self._max} characters; "
                "send final and start another"
            )
        if text:
            self._queue.put_nowait(text)
            self.has_words = self.has_words or not text.isspace()
        if final:
            self.closed = True
            self._queue.put_nowait(None)

    async def deltas(self) -> AsyncIterator[str]:
        while (delta := await self._queue.get()) is not None:
            yield delta


async def once(text: str) -> AsyncIterator[str]:
    """A whole text as a stream of one delta (``say``)."""
    yield text
