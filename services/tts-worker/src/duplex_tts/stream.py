"""One utterance: text chunks in, paced 20 ms frames out, with PAUSE / RESUME / STOP.

Three cooperating parts run per Synthesize call:

- the reader pushes text chunks into the model's ``SynthesisStream`` as they
  arrive (clause engines cut clauses there; token engines take raw deltas);
- the synthesizer pulls audio chunks from the stream (their blocking steps run
  on the model's executor, earliest playback deadline first) through the
  ``AudioPipeline`` into frames, ahead of playback but at most
  ``AHEAD_LIMIT_S`` ahead, so memory stays bounded however long the text is;
- ``frames()`` hands frames out on the wall-clock schedule of the ``Pacer``.

Control flags are only read by ``frames()`` right before a frame is handed
out, in the same event-loop step that records ``last_sequence``: once a PAUSE
has been acknowledged with that number, no later frame leaves until RESUME.
STOP (and session end) cancels generation inside the model at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from duplex_protocol import FRAME_BYTES
from duplex_tts import metrics
from duplex_tts.adapters import Executor, StreamContext, TTSModel, VoiceOptions
from duplex_tts.audio import AudioPipeline, fade_out
from duplex_tts.pacing import Pacer

log = logging.getLogger(__name__)

T = TypeVar("T")
_SILENCE = bytes(FRAME_BYTES)
AHEAD_LIMIT_S = 15.0
"""Most audio synthesized ahead of playback; the stream is not pulled beyond it."""
MAX_UTTERANCE_CHARS = 20_000
"""Most text one Synthesize stream may carry (about 20 minutes of speech)."""


class TextError(Exception):
    """A text chunk the worker refuses (size, session mismatch)."""


@dataclass(frozen=True)
class Frame:
    pcm: bytes
    sequence: int
    is_last: bool
    synthesis_s: float = 0.0
    """On the last frame of a finished utterance: the model's compute time for it."""


@dataclass(frozen=True)
class Text:
    text: str
    is_final: bool


class QueueDepth:
    """Utterances with synthesis outstanding (text in, audio not all made), across streams."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n
        metrics.QUEUE_DEPTH.set(self.value)


class MeteredExecutor:
    """Wraps a model's executor: when synthesis was first asked for, and compute time."""

    def __init__(self, inner: Executor, clock: Callable[[], float]) -> None:
        self._inner = inner
        self._clock = clock
        self.first_submit_at: float | None = None
        self.busy_s = 0.0

    async def run(self, fn: Callable[[], T], deadline: float) -> T:
        if self.first_submit_at is None:
            self.first_submit_at = self._clock()

        def timed() -> T:
            started = time.perf_counter()
            try:
                return fn()
            finally:
                self.busy_s += time.perf_counter() - started

        return await self._inner.run(timed, deadline)


class Utterance:
    def __init__(
        self,
        model: TTSModel,
        model_id: str,
        gain: float,
        options: VoiceOptions,
        executor: Executor,
        queue_depth: QueueDepth,
        *,
        lead_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._model_id = model_id
        self._queue_depth = queue_depth
        self._clock = clock
        self._pipeline = AudioPipeline(model.native_sample_rate, gain)
        self._pacer = Pacer(lead_s=lead_s)
        self._executor = MeteredExecutor(executor, clock)
        self._stream = model.open_stream(
            StreamContext(options, self._executor, self._deadline, self._has_room)
        )
        self._frames: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self.paused = False
        self.stopped = False
        self.error: Exception | None = None
        self.last_sequence = -1
        self._queued = False
        self._input_ended = False
        self._text_chars = 0
        self._first_frame_sent = False
        self.first_audio_s: float | None = None
        self.synthesis_s = 0.0
        """The model's compute time, once the whole text is synthesized."""
        self._underruns_seen = 0
        self._synth_task: asyncio.Task[None] | None = None

    # ---- control (called from Control RPCs) ----------------------------

    def pause(self) -> int:
        self.paused = True
        return self.last_sequence

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._pacer.restart(self._clock())
            self._changed.set()

    def stop(self) -> int:
        """End the stream with one last frame and stop generation inside the model."""
        self.stopped = True
        self._stream.cancel()
        self._changed.set()
        return self.last_sequence

    # ---- input ---------------------------------------------------------

    def feed(self, chunk: Text) -> None:
        """Accept one text chunk (called by the reader as chunks arrive)."""
        if self._input_ended:
            return
        self._text_chars += len(chunk.text)
        if self._text_chars > MAX_UTTERANCE_CHARS:
            raise TextError(
                f"an utterance may carry at most {MAX_UTTERANCE_CHARS} characters of text; "
                "end it (is_final) and speak the rest in another Synthesize call"
            )
        if chunk.text:
            self._mark_queued(True)
            self._stream.push_text(chunk.text)
        if chunk.is_final:
            self._input_ended = True
            self._stream.end_input()

    async def room_for_text(self) -> None:
        """Backpressure for the reader: take no more text while the audio buffer is full.

        The reader then stops pulling chunks, gRPC flow control stops the
        caller, and text waits on the caller's side instead of in this worker.
        """
        while not self._has_room() and not self.stopped and self.error is None:
            self._drained.clear()
            await self._drained.wait()

    def end_of_input(self) -> None:
        """The client half-closed without is_final: speak what is left."""
        self.feed(Text("", is_final=True))

    def fail(self, error: Exception) -> None:
        self.error = error
        self._stream.cancel()
        self._changed.set()

    def _mark_queued(self, queued: bool) -> None:
        if queued != self._queued:
            self._queued = queued
            self._queue_depth.add(1 if queued else -1)

    # ---- synthesis -----------------------------------------------------

    def start(self) -> None:
        self._synth_task = asyncio.create_task(self._synthesize_all())

    async def _synthesize_all(self) -> None:
        samples = 0
        try:
            while True:
                await self._wait_for_room()
                chunk = await self._stream.read()
                if chunk is None:
                    break
                samples += chunk.size
                self._push_frames(self._pipeline.push(chunk), last=False)
            if not self._stream.cancelled:
                self.synthesis_s = self._executor.busy_s
                self._push_frames(self._pipeline.finish(), last=True)
        except Exception as exc:  # any engine failure ends this stream, not the worker
            self.fail(exc)
        finally:
            self._mark_queued(False)
        if samples and self._executor.busy_s > 0:
            rtf = self._executor.busy_s / (samples / self._model.native_sample_rate)
            metrics.RTF.labels(model=self._model_id).observe(rtf)

    def _has_room(self, pending_s: float = 0.0) -> bool:
        """Buffered frames plus ``pending_s`` (audio an engine holds unread) under the limit."""
        return len(self._frames) * self._pacer.frame_s + pending_s < AHEAD_LIMIT_S

    async def _wait_for_room(self) -> None:
        """Backpressure: pull no more while ``AHEAD_LIMIT_S`` of audio waits to be played."""
        while not self._has_room():
            self._drained.clear()
            await self._drained.wait()

    def _deadline(self) -> float:
        """When this stream's buffered audio runs out (paused streams are not urgent)."""
        if self.paused:
            return self._clock() + 3600.0
        return self._clock() + len(self._frames) * self._pacer.frame_s

    def _push_frames(self, frames: list[bytes], *, last: bool) -> None:
        for i, pcm in enumerate(frames):
            self._frames.append((pcm, last and i == len(frames) - 1))
        if frames:
            self._changed.set()

    # ---- output --------------------------------------------------------

    async def frames(self) -> AsyncIterator[Frame]:
        """Paced frames until the one flagged is_last; raises the adapter's error if any."""
        sequence = 0
        while True:
            self._changed.clear()
            if self.error is not None:
                raise self.error
            if self.stopped:
                # Fade the next frame out; after a pause the client has already
                # dropped its audio, so end on silence instead of a blip.
                playing = self._frames and not self.paused
                pcm = fade_out(self._frames[0][0]) if playing else _SILENCE
                yield self._emit(sequence, pcm, is_last=True)
                return
            if self.paused or not self._frames:
                await self._changed.wait()
                continue
            delay = self._pacer.delay(self._clock())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                continue
            pcm, is_last = self._frames.popleft()
            self._drained.set()
            yield self._emit(sequence, pcm, is_last)
            if is_last:
                return
            sequence += 1

    def _emit(self, sequence: int, pcm: bytes, is_last: bool) -> Frame:
        now = self._clock()
        lateness = self._pacer.sent(now)
        self.last_sequence = sequence
        if not self._first_frame_sent:
            self._first_frame_sent = True
            started = self._executor.first_submit_at
            if started is not None:
                first_audio = now - started
                metrics.FIRST_AUDIO.labels(model=self._model_id).observe(first_audio)
                self.first_audio_s = first_audio
        else:
            metrics.FRAME_LATENESS.observe(lateness)
        if self._pacer.underruns > self._underruns_seen:
            metrics.UNDERRUNS.inc(self._pacer.underruns - self._underruns_seen)
            self._underruns_seen = self._pacer.underruns
        synthesis_s = self.synthesis_s if is_last and not self.stopped else 0.0
        return Frame(pcm=pcm, sequence=sequence, is_last=is_last, synthesis_s=synthesis_s)

    async def close(self) -> None:
        """Cancel generation, wait for the synthesizer, then let the stream free itself."""
        self._stream.cancel()
        if self._synth_task is not None and not self._synth_task.done():
            self._synth_task.cancel()
            await asyncio.wait([self._synth_task])
        self._mark_queued(False)
        try:
            await self._stream.aclose()
        except Exception:
            log.exception("closing a synthesis stream failed", extra={"event": "stream_close"})
