"""Synthesis threads shared by every session, earliest playback deadline first.

Each synthesis step (one pull of audio from a model) carries the moment its
session's buffered audio runs out; the threads always take the most urgent
step. A new utterance's first clause (nothing buffered) goes ahead of sessions
that still hold seconds of audio, so first audio stays fast under load and no
session starves while others synthesize far ahead (FIFO order lets a burst of
sessions each wait behind all the others' next clauses).

``Executors`` holds the shared pool and one single-thread scheduler per device
for engines that declare ``ExecutorKind.DEVICE`` (torch: one thread per GPU).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[float, int, Callable[[], Any], "Future[Any]"]


class SynthesisScheduler:
    def __init__(self, threads: int, name: str = "synth") -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self._heap: list[_Job] = []
        self._cond = threading.Condition()
        self._order = itertools.count()  # FIFO among equal deadlines
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T], deadline: float) -> Future[T]:
        """Run ``fn`` on a synthesis thread; smaller ``deadline`` runs first."""
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("synthesis scheduler is shut down")
            heapq.heappush(self._heap, (deadline, next(self._order), fn, future))
            self._cond.notify()
        return future

    async def run(self, fn: Callable[[], T], deadline: float) -> T:
        """``submit`` and await the result (the ``Executor`` protocol of engines)."""
        return await asyncio.wrap_future(self.submit(fn, deadline))

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def shutdown(self) -> None:
        """Cancel what has not started; let running steps finish."""
        with self._cond:
            self._closed = True
            for *_, future in self._heap:
                future.cancel()
            self._heap.clear()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                _, _, fn, future = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue  # its stream went away while it waited
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting stream
                future.set_exception(exc)
            else:
                future.set_result(result)


class Executors:
    """The shared synthesis pool, and a dedicated thread per device made on first use."""

    def __init__(self, shared_threads: int) -> None:
        self.shared = SynthesisScheduler(shared_threads)
        self._devices: dict[str, SynthesisScheduler] = {}

    def device(self, name: str) -> SynthesisScheduler:
        if name not in self._devices:
            self._devices[name] = SynthesisScheduler(1, name=f"device-{name}")
        return self._devices[name]

    def shutdown(self) -> None:
        for scheduler in [self.shared, *self._devices.values()]:
            scheduler.shutdown()
