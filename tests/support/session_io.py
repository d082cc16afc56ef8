"""A ``SessionIO`` that keeps what a session emits in memory, for in-process tests."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from duplex_orchestrator.events import Event, to_dict

E = TypeVar("E")


class Recorded:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.frames: list[bytes] = []
        self.flushes = 0
        self._changed = asyncio.Event()

    async def event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def audio(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def flush_audio(self) -> None:
        self.flushes += 1

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def named(self, kind: str) -> list[dict[str, Any]]:
        """The events of one wire ``type``, as the JSON objects a client reads."""
        return [to_dict(e) for e in self.events if e.type == kind]

    async def wait_for(self, kind: type[E], count: int = 1, timeout_s: float = 10.0) -> list[E]:
        """Wait until ``count`` events of ``kind`` were emitted; returns them."""
        async with asyncio.timeout(timeout_s):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)
