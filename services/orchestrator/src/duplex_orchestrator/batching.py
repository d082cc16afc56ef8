"""Natural batching: callers' threads hand in items; at most ``lanes`` batches run at once.

There is no thread of its own and no waiting for a batch to fill. A caller
whose item is pending and who finds a free lane takes the oldest pending items
(up to ``max_batch``), runs them as one batch
and hands each its result; the other callers wait. So a lone request runs at
once, and requests that arrive while every lane is busy share the next batch
instead of queueing one behind another: what a decoder-bound model such as
Whisper gains from, since a batch of four costs far less than four runs
(``tests.bench.bench_asr`` measures it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Request(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    batch: int = 0
    """How many items shared its batch."""


class Batcher(Generic[T, R]):
    """``submit`` blocks until ``process`` has run the item, alone or in a batch.

    ``process`` takes a list of items and returns their results in order; if it
    raises, every item of that batch gets the error.
    """

    def __init__(self, process: Callable[[list[T]], list[R]], lanes: int, max_batch: int) -> None:
        if lanes < 1 or max_batch < 1:
            raise ValueError(f"lanes ({lanes}) and max_batch ({max_batch}) must be at least 1")
        self._process = process
        self.lanes, self.max_batch = lanes, max_batch
        self._pending: list[_Request[T, R]] = []
        self._running = 0
        """Batches running (at most ``lanes``)."""
        self._running_items = 0
        self._changed = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Items pending or being processed."""
        with self._changed:
            return len(self._pending) + self._running_items

    def submit(self, item: T) -> R:
        return self.submit_sized(item)[0]

    def submit_sized(self, item: T) -> tuple[R, int]:
        """``submit``, also saying how many items shared the batch."""
        request: _Request[T, R] = _Request(item)
        with self._changed:
            self._pending.append(request)
            while not request.done:
                if self._running < self.lanes and self._pending:
                    self._lead()
                else:
                    self._changed.wait()
        if request.error is not None:
            raise request.error
        return request.result, request.batch  # type: ignore[return-value]

    def _lead(self) -> None:
        """Run one batch on a free lane (called holding the lock; releases it meanwhile).

        The caller's own item may not be in it (more than ``max_batch`` wait): it
        then leads or waits again.
        """
        batch = self._pending[: self.max_batch]  # oldest first, whoever leads
        for request in batch:
            self._pending.remove(request)
        self._running += 1
        self._running_items += len(batch)
        self._changed.release()
        try:
            results: list[R] | None = None
            error: BaseException | None = None
            try:
                results = self._process([r.item for r in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            except BaseException as exc:  # handed to every caller of the batch
                error = exc
        finally:
            self._changed.acquire()
        for i, request in enumerate(batch):
            request.error = error
            request.result = results[i] if results is not None and error is None else None
            request.batch = len(batch)
            request.done = True
        self._running -= 1
        self._running_items -= len(batch)
        self._changed.notify_all()
