"""The engine contract every TTS family implements.

A family (``TTSFamily``) turns a catalog entry into a loaded ``TTSModel``; a
model opens one ``SynthesisStream`` per utterance. A stream takes text as it
arrives and hands back mono float32 chunks at the model's native rate as they
are produced. That is all an engine does: framing, pacing, resampling,
loudness, metrics, backpressure and threading belong to the worker.

The stream is asynchronous and pull-driven; the worker calls, always from its
event loop:

- ``push_text(delta)`` for each text delta (cheap, never blocks);
- ``end_input()`` once the utterance's text is complete;
- ``read()`` for the next chunk (``None``: the utterance is fully spoken) — the
  worker pulls only as fast as it wants audio, so nothing runs far ahead;
- ``cancel()`` on STOP, barge-in or session end: generation stops inside the
  model, within one step;
- ``aclose()`` exactly once at the end, whatever happened.

Backpressure: the worker calls ``read()`` only while it wants more audio (at
most ``AHEAD_LIMIT_S`` buffered); long generation jobs watch
``context.room(pending_s)``, counting the audio they hold unread. Blocking work
(inference) runs through ``self.run(fn)``, which puts it on the model's executor
at the utterance's playback deadline. A family declares that executor:
``SHARED`` (the worker's pool of synthesis threads, earliest deadline first;
ONNX engines whose sessions are thread-safe) or ``DEVICE`` (one dedicated thread
per device shared by every model on it, so torch calls and LoRA switches never
interleave; loads, warm-ups and unloads run there too).

Two ready shapes:

- ``ClauseModel`` (most engines): implement ``synthesize_clause(text, options)``;
  the worker's clause segmentation feeds it one clause at a time, so the
  first audio follows the first clause, not the whole reply.
- ``TTSModel.open_stream`` with your own ``SynthesisStream`` (token-streaming
  engines such as CSM): you get raw deltas and keep your own context.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import functools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from duplex_tts.catalog import ModelSpec
from duplex_tts.text import ClauseSegmenter

FloatArray = npt.NDArray[np.float32]
T = TypeVar("T")


class ExecutorKind(enum.Enum):
    SHARED = "shared"
    """The worker's synthesis threads, shared by every session, earliest deadline first."""
    DEVICE = "device"
    """One dedicated thread per device (``cpu``, ``cuda``): serializes torch calls."""


class Executor(Protocol):
    """Where a model's blocking work runs (``duplex_tts.scheduler``)."""

    async def run(self, fn: Callable[[], T], deadline: float) -> T: ...


@dataclass(frozen=True)
class VoiceOptions:
    """Per-session voice settings from StartSession."""

    language: str = ""
    speaker: str = ""
    reference_audio: FloatArray | None = None
    reference_sample_rate: int = 0
    reference_text: str = ""


@dataclass(frozen=True)
class StreamContext:
    """What the worker hands a stream: the session's options and its executor."""

    options: VoiceOptions
    executor: Executor
    deadline: Callable[[], float]
    """When this utterance's buffered audio runs out (monotonic seconds)."""
    room: Callable[[float], bool] = lambda pending_s: True
    """Whether the worker wants more audio now, given ``pending_s``: the seconds of
    audio this stream has generated that ``read()`` has not handed out yet (the
    engine's own queue counts against the limit too). Pull-driven streams get
    backpressure for free (pass 0); an engine that generates in one long job checks
    this between steps, returns when it is false, and starts again on the next
    ``read()``."""


class AdapterError(Exception):
    """A model failed to load or synthesize; the message is shown to the client."""


class SynthesisStream(ABC):
    """One utterance inside a model. See the module docstring for the call order."""

    def __init__(self, context: StreamContext) -> None:
        self.context = context
        self._cancelled = threading.Event()

    @abstractmethod
    def push_text(self, delta: str) -> None:
        """Take a text delta. Called on the event loop; must not block."""

    @abstractmethod
    def end_input(self) -> None:
        """No more text: speak what is left, then ``read()`` returns None."""

    @abstractmethod
    async def read(self) -> FloatArray | None:
        """The next chunk (float32, mono, native rate, about [-1, 1]); None at the end.

        Raise ``AdapterError`` (or anything) to fail this utterance only.
        """

    def cancel(self) -> None:
        """Stop generating. Thread-safe; ``cancelled`` is what generation code checks."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Free per-utterance resources. Called once, after the last ``read``."""

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` on the model's executor at this utterance's deadline."""
        return await self.context.executor.run(fn, self.context.deadline())

    def __aiter__(self) -> AsyncIterator[FloatArray]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[FloatArray]:
        while (chunk := await self.read()) is not None:
            yield chunk


class TTSModel(ABC):
    """A loaded model: opens a stream per utterance."""

    def __init__(self, native_sample_rate: int) -> None:
        self.native_sample_rate = native_sample_rate

    @abstractmethod
    def open_stream(self, context: StreamContext) -> SynthesisStream:
        """A new stream for one utterance. Cheap; called on the event loop."""

    def close(self) -> None:  # noqa: B027 - optional hook, most models need nothing
        """Free weights (GPU memory, sessions). Called once, after the last stream."""

    def release_memory(self) -> None:  # noqa: B027 - optional hook
        """Give back memory kept between utterances (an ONNX Runtime arena, caches).

        Called on the model's executor once the worker has spoken nothing for a
        while (``--release-idle-s``); the weights stay loaded. Must be cheap when
        nothing is held.
        """

    def check_options(self, options: VoiceOptions) -> None:  # noqa: B027 - optional hook
        """Refuse session options this model cannot speak with: raise ``AdapterError``.

        Called at StartSession on the event loop (cheap checks only, no inference),
        so a bad reference clip or speaker fails the session's start with a clear
        message instead of its first utterance.
        """

    def warmup_options(self) -> VoiceOptions:
        """The session options of the hidden warm-up utterance (a cloning-only model
        with no voice of its own gives a reference clip here)."""
        return VoiceOptions()

    def forget(self) -> None:  # noqa: B027 - optional hook
        """Drop what was derived from sessions or from the old catalog (RELOAD).

        Called on the model's executor for every resident model when the worker
        re-reads its voicepacks; e.g. XTTS's cache of cloned-voice latents. The
        weights stay loaded.
        """

    @property
    def memory_bytes(self) -> int | None:
        """Memory the model holds (VRAM on a GPU), if the engine knows it.

        None: the worker measures the process's memory growth across the load
        and warm-up instead (right for ONNX engines on the CPU).
        """
        return None


_END = object()


class ClauseModel(TTSModel):
    """A model that speaks whole clauses: implement ``synthesize_clause``."""

    @abstractmethod
    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        """Yield chunks for one clause. Each ``next()`` runs on the model's executor.

        Write it as a generator: the call itself happens on the event loop, so it
        must do no work before its first ``next()``. Sessions run concurrently on
        the shared pool: guard non-thread-safe state.
        """

    def open_stream(self, context: StreamContext) -> SynthesisStream:
        return ClauseStream(self, context)


class ClauseStream(SynthesisStream):
    """Feeds a ``ClauseModel`` clause by clause; one chunk per executor step."""

    def __init__(self, model: ClauseModel, context: StreamContext) -> None:
        super().__init__(context)
        self._model = model
        self._segmenter = ClauseSegmenter()
        self._clauses: collections.deque[object] = collections.deque()
        self._arrived = asyncio.Event()
        self._chunks_of: Iterator[FloatArray] | None = None

    def push_text(self, delta: str) -> None:
        self._add(self._segmenter.push(delta))

    def end_input(self) -> None:
        self._add([*self._segmenter.finish(), _END])

    def _add(self, items: Sequence[object]) -> None:
        if items:
            self._clauses.extend(items)
            self._arrived.set()

    async def read(self) -> FloatArray | None:
        while not self.cancelled:
            if self._chunks_of is not None:
                step = functools.partial(next, self._chunks_of, None)
                chunk: FloatArray | None = await self.run(step)
                if chunk is not None:
                    if chunk.size:
                        return chunk
                    continue
                self._chunks_of = None
            if not self._clauses:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            clause = self._clauses.popleft()
            if clause is _END:
                self._clauses.appendleft(_END)
                return None
            assert isinstance(clause, str)
            self._chunks_of = self.clause_chunks(clause)
        return None

    def clause_chunks(self, clause: str) -> Iterator[FloatArray]:
        """The chunks of one clause; a subclass may hand the model more (a cancel check)."""
        return self._model.synthesize_clause(clause, self.context.options)

    def cancel(self) -> None:
        super().cancel()
        self._arrived.set()  # wake a read() waiting for text

    async def aclose(self) -> None:
        chunks, self._chunks_of = self._chunks_of, None
        self._clauses.clear()
        close = getattr(chunks, "close", None)
        if close is not None:
            # ValueError: a step cancelled mid-flight still runs on its thread;
            # the generator is then collected when that step returns.
            with contextlib.suppress(ValueError):
                close()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/duplex``, else ``~/.cache/duplex``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "duplex"


class TTSFamily(ABC):
    """A model family: knows how to load its voicepacks.

    ``cache_dir`` is the worker's cache folder (``--cache-dir``): engines that
    assemble or convert weights put them under it, never in the home directory.
    """

    name: ClassVar[str]
    executor: ClassVar[ExecutorKind] = ExecutorKind.SHARED

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()

    @abstractmethod
    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        """Load ``spec`` onto ``device`` ("cpu" or "cuda"). Blocking; runs in a thread.

        ``base`` is the loaded ``spec.base_model`` for variants, else None.
        Raise ``AdapterError`` with an actionable message on failure.
        """
