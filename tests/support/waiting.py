"""Polling for a condition in async tests (no fixed sleeps, a clear failure)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 15.0, every_s: float = 0.1
) -> None:
    """Return once ``check()`` (sync or async) is true; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{getattr(check, '__name__', check)} not true within {timeout_s} s"
            )
        await asyncio.sleep(every_s)
