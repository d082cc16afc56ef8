"""Give working memory back once the worker has been quiet for a while.

Engines keep what their longest utterance needed (ONNX Runtime's arena never
shrinks by itself), so a worker that spoke long clauses for ten sessions would
hold that peak for ever. ``IdleRelease`` counts utterances in flight and, after
``delay_s`` with none, runs ``release`` once; a new utterance cancels the wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class IdleRelease:
    def __init__(self, release: Callable[[], Awaitable[None]], delay_s: float) -> None:
        self._release = release
        self._delay_s = delay_s
        self._speaking = 0
        self._task: asyncio.Task[None] | None = None
        self._sleeping = False  # the task still waits out the quiet spell
        self._dirty = False  # something was spoken since the last release

    def started(self) -> None:
        """An utterance began."""
        self._speaking += 1
        self._dirty = True
        if self._task is not None and self._sleeping:
            self._task.cancel()  # a release already under way finishes: it disturbs nothing

    def ended(self) -> None:
        """An utterance ended; the last one starts the idle countdown."""
        self._speaking -= 1
        if self._speaking == 0 and self._dirty and self._delay_s > 0:
            self._sleeping = True
            self._task = asyncio.create_task(self._after_quiet())

    async def _after_quiet(self) -> None:
        await asyncio.sleep(self._delay_s)
        self._sleeping = False
        self._dirty = False
        try:
            await self._release()
        except Exception:  # keeping memory is no reason to disturb anything
            log.exception("giving back idle memory failed")
        else:
            log.info("idle: working memory given back", extra={"event": "idle_release"})

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
