"""One utterance: text chunks in, paced 20 ms frames out, with PAUSE / RESUME / STOP.

Three cooperating parts run per Synthesize call:

- the reader takes text chunks as they arrive and cuts clauses (``text``);
- the synthesizer turns each clause into audio on the shared synthesis
  threads (earliest playback deadline first) and through the
  ``AudioPipeline`` into frames, ahead of playback, so later clauses are
  ready while earlier ones play;
- ``frames()`` hands frames out on the wall-clock schedule of the ``Pacer``.

Control flags are only read by ``frames()`` right before a frame is handed
out, in the same event-loop step that records ``last_sequence``: once a PAUSE
has been acknowledged with that number, no later frame leaves until RESUME.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from duplex_protocol import FRAME_BYTES
from duplex_tts import metrics
from duplex_tts.adapters import FloatArray, TextGranularity, TTSModel, VoiceOptions
from duplex_tts.audio import AudioPipeline, fade_out
from duplex_tts.pacing import Pacer
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts.text import ClauseSegmenter

log = logging.getLogger(__name__)

_SILENCE = bytes(FRAME_BYTES)
_END = object()


class TextError(Exception):
    """A text chunk the worker refuses (size, session mismatch)."""


@dataclass(frozen=True)
class Frame:
    pcm: bytes
    sequence: int
    is_last: bool


@dataclass(frozen=True)
class Text:
    text: str
    is_final: bool


class QueueDepth:
    """Counts text segments waiting for or under synthesis, across all streams."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n
        metrics.QUEUE_DEPTH.set(self.value)


class Utterance:
    def __init__(
        self,
        model: TTSModel,
        model_id: str,
        gain: float,
        options: VoiceOptions,
        scheduler: SynthesisScheduler,
        queue_depth: QueueDepth,
        *,
        lead_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._model_id = model_id
        self._options = options
        self._scheduler = scheduler
        self._queue_depth = queue_depth
        self._clock = clock
        self._pipeline = AudioPipeline(model.native_sample_rate, gain)
        self._pacer = Pacer(lead_s=lead_s)
        self._segmenter = ClauseSegmenter()
        self._texts: asyncio.Queue[object] = asyncio.Queue()
        self._frames: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._changed = asyncio.Event()
        self.paused = False
        self.stopped = False
        self.error: Exception | None = None
        self.last_sequence = -1
        self._first_clause_at: float | None = None
        self._first_frame_sent = False
        self.first_audio_s: float | None = None
        self._underruns_seen = 0
        self._synth_task: asyncio.Task[None] | None = None

    # ---- control (called from Control RPCs) ----------------------------

    def pause(self) -> int:
        self.paused = True
        return self.last_sequence

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._pacer.restart()
            self._changed.set()

    def stop(self) -> int:
        self.stopped = True
        self._changed.set()
        return self.last_sequence

    # ---- input ---------------------------------------------------------

    def feed(self, chunk: Text) -> None:
        """Accept one text chunk (called by the reader as chunks arrive)."""
        if self._model.text_granularity is TextGranularity.TOKEN:
            pieces = [chunk.text] if chunk.text else []
        else:
            pieces = self._segmenter.push(chunk.text)
            if chunk.is_final:
                pieces += self._segmenter.finish()
        for piece in pieces:
            self._enqueue(piece)
        if chunk.is_final:
            self._texts.put_nowait(_END)

    def end_of_input(self) -> None:
        """The client half-closed without is_final: speak what is left."""
        self.feed(Text("", is_final=True))

    def fail(self, error: Exception) -> None:
        self.error = error
        self._changed.set()

    def _enqueue(self, piece: str) -> None:
        if self._first_clause_at is None:
            self._first_clause_at = self._clock()
        self._queue_depth.add(1)
        self._texts.put_nowait(piece)

    # ---- synthesis -----------------------------------------------------

    def start(self) -> None:
        self._synth_task = asyncio.create_task(self._synthesize_all())

    async def _synthesize_all(self) -> None:
        try:
            while True:
                item = await self._texts.get()
                if item is _END:
                    self._push_frames(self._pipeline.finish(), last=True)
                    return
                assert isinstance(item, str)
                try:
                    await self._synthesize_one(item)
                finally:
                    self._queue_depth.add(-1)
        except asyncio.CancelledError:
            self._drain_queue()
            raise
        except Exception as exc:  # any adapter failure ends this stream, not the worker
            self.fail(exc)

    async def _synthesize_one(self, text: str) -> None:
        started = time.perf_counter()
        chunks: Iterator[FloatArray] = self._model.synthesize(text, self._options)
        samples = 0
        while True:
            step = self._scheduler.submit(lambda: next(chunks, None), self._deadline())
            chunk = await asyncio.wrap_future(step)
            if chunk is None:
                break
            samples += chunk.size
            self._push_frames(self._pipeline.push(chunk), last=False)
        if samples:
            rtf = (time.perf_counter() - started) / (samples / self._model.native_sample_rate)
            metrics.RTF.labels(model=self._model_id).observe(rtf)

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

    def _drain_queue(self) -> None:
        while not self._texts.empty():
            if self._texts.get_nowait() is not _END:
                self._queue_depth.add(-1)

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
            if self._first_clause_at is not None:
                first_audio = now - self._first_clause_at
                metrics.FIRST_AUDIO.labels(model=self._model_id).observe(first_audio)
                self.first_audio_s = first_audio
        else:
            metrics.FRAME_LATENESS.observe(lateness)
        if self._pacer.underruns > self._underruns_seen:
            metrics.UNDERRUNS.inc(self._pacer.underruns - self._underruns_seen)
            self._underruns_seen = self._pacer.underruns
        return Frame(pcm=pcm, sequence=sequence, is_last=is_last)

    async def close(self) -> None:
        if self._synth_task is not None and not self._synth_task.done():
            self._synth_task.cancel()
            await asyncio.wait([self._synth_task])
        self._drain_queue()
