"""``JobStream``: the plumbing of engines that generate in one long job.

A token-streaming engine (CSM, the mock's token mode) does not return one
chunk per ``read()``: one generation job on the model's executor produces
chunk after chunk and hands each to the event loop. This base class owns
that: the queue, starting a job when input waits and none runs, ending the
stream after the last, errors, cancel, and backpressure that counts the
audio already handed over but not read (a busy event loop must not let the
job run ahead of the limit). A subclass keeps its own input under
``self.lock`` and implements ``pending()`` and ``generate()``.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod

import numpy as np

from duplex_tts.adapters.base import FloatArray, StreamContext, SynthesisStream

_DONE = object()


class JobStream(SynthesisStream):
    def __init__(self, context: StreamContext, sample_rate: int) -> None:
        super().__init__(context)
        self.lock = threading.Lock()
        """Guards the subclass's input and the unread-audio count."""
        self._sample_rate = sample_rate
        self._loop = asyncio.get_running_loop()
        self._unread_s = 0.0
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._job: asyncio.Future[None] | None = None

    @abstractmethod
    def pending(self) -> tuple[bool, bool]:
        """(work is waiting, input has ended); called under ``self.lock``."""

    @abstractmethod
    def generate(self) -> None:
        """On the executor: emit audio until no work is left, no ``room()``, or cancel."""

    # ---- for subclasses ---------------------------------------------------

    def kick(self) -> None:
        """Start a job if work waits and none runs; end the stream after the last."""
        if self.cancelled or (self._job is not None and not self._job.done()):
            return
        with self.lock:
            waiting, ended = self.pending()
        if waiting:
            if self.room():  # else the next read() starts it
                self._job = asyncio.ensure_future(self.run(self.generate))
                self._job.add_done_callback(self._job_done)
        elif ended:
            self._out.put_nowait(_DONE)

    def emit(self, audio: FloatArray | None) -> None:
        """Hand a chunk to the event loop (thread-safe; empty chunks are dropped)."""
        if audio is None or not audio.size:
            return
        with self.lock:
            self._unread_s += audio.size / self._sample_rate
        self._loop.call_soon_threadsafe(self._out.put_nowait, audio)

    def wake(self) -> None:
        """``kick()`` from any thread, after the audio already emitted (a job that
        generated for this stream, e.g. a batch led by another, has finished)."""
        self._loop.call_soon_threadsafe(self.kick)

    def fail(self, error: BaseException) -> None:
        """Make the next ``read()`` raise ``error`` (thread-safe)."""
        self._loop.call_soon_threadsafe(self._out.put_nowait, error)

    @property
    def running(self) -> bool:
        """A generation job is on the executor now."""
        return self._job is not None and not self._job.done()

    def room(self) -> bool:
        """Whether the worker wants more audio, counting what is emitted but unread."""
        with self.lock:
            unread_s = self._unread_s
        return self.context.room(unread_s)

    # ---- the SynthesisStream side -----------------------------------------

    def cancel(self) -> None:
        super().cancel()
        self._out.put_nowait(_DONE)

    async def read(self) -> FloatArray | None:
        self.kick()  # a job that stopped for backpressure goes on
        item = await self._out.get()
        if item is _DONE:
            self._out.put_nowait(_DONE)  # later reads end too
            return None
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, np.ndarray)
        with self.lock:
            self._unread_s -= item.size / self._sample_rate
        return item

    def _job_done(self, job: asyncio.Future[None]) -> None:
        if job.cancelled():
            return
        error = job.exception()
        if error is not None:
            self._out.put_nowait(error)
        else:
            self.kick()
