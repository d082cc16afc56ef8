"""CSM streams: clauses in, audio chunks out while generation runs.

A stream segments its text into clauses. Its generation job on the device
thread hands each clause to the base's ``ClauseBatcher``, which generates it
together with the waiting clauses of the other streams on the same base (its
LoRA voices included) and streams every row's frames through a
``ChunkedDecoder``: the first audio follows the first ``chunk_frames`` frames,
not the whole clause. CSM's ``generate`` ignores custom stopping criteria, so
cancel (STOP, barge-in, session end) drops the row at the next step, and stops
generation within a step once no row is left. Backpressure is checked between
clauses (audio the stream holds unread counts), so at most one clause runs
past the limit.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from duplex_tts.adapters import AdapterError, FloatArray, JobStream, StreamContext, VoiceOptions
from duplex_tts.text import ClauseSegmenter
from duplex_tts_csm.batch import ClauseBatcher, ClauseJob, Segment


@dataclass(frozen=True)
class CsmSettings:
    """Voicepack ``params`` of a CSM voice."""

    speaker: int = 0
    max_frames_per_clause: int = 250  # 20 s: a clause is at most ~240 characters
    temperature: float = 0.9
    do_sample: bool = True
    chunk_frames: int = 2  # 160 ms of audio per decode
    context_frames: int = 25
    max_batch: int = 8  # a base's setting: rows of one batched generation
    context_clauses: int = 2  # earlier clauses of the reply CSM hears before each clause
    max_context_frames: int = 300  # 24 s of context audio at most (reference included)

    def __post_init__(self) -> None:
        for name in ("max_frames_per_clause", "chunk_frames", "max_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if min(self.context_frames, self.context_clauses, self.max_context_frames) < 0:
            raise ValueError("context_frames, context_clauses and max_context_frames must be >= 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")

    @property
    def sampling(self) -> tuple[bool, float, int]:
        """What rows of one batch must share."""
        return (self.do_sample, self.temperature, self.max_frames_per_clause)


class Voice(Protocol):
    """A CSM voice: the base itself, or one of its LoRA adapters."""

    native_sample_rate: int
    samples_per_frame: int
    settings: CsmSettings
    adapter: str
    """peft's adapter name for this voice's batch rows (``lora.BASE`` for the base)."""

    @property
    def batcher(self) -> ClauseBatcher: ...


class CsmStream(JobStream):
    def __init__(self, voice: Voice, context: StreamContext) -> None:
        super().__init__(context, voice.native_sample_rate)
        self.voice = voice
        self._batcher = voice.batcher
        self._segmenter = ClauseSegmenter()
        self._clauses: collections.deque[str] = collections.deque()
        self._ended = False
        self._in_flight = False  # a clause of this stream is being generated
        self._history: collections.deque[Segment] = collections.deque(
            maxlen=voice.settings.context_clauses
        )
        self._reference: Segment | None = None
        self._refused = False  # bad options: the first read() raises, nothing is generated
        try:
            self._reference = reference_segment(context.options, voice)
        except AdapterError as exc:
            self._refused = True
            self.fail(exc)
        spoken = context.options.speaker
        self.speaker = int(spoken) if spoken.isdigit() else voice.settings.speaker
        self.frames_generated = 0
        """Frames of codebooks generated so far (audio frames, not 20 ms frames)."""
        self._batcher.join(self)

    def push_text(self, delta: str) -> None:
        with self.lock:
            self._clauses.extend(self._segmenter.push(delta))
        self.kick()

    def end_input(self) -> None:
        with self.lock:
            self._clauses.extend(self._segmenter.finish())
            self._ended = True
        self.kick()

    def pending(self) -> tuple[bool, bool]:
        # Not ended while another stream's batch still generates our clause.
        return bool(self._clauses), self._ended and not self._in_flight

    def take(self) -> ClauseJob | None:
        """The next clause for a batch (any thread), or None."""
        with self.lock:
            if self.cancelled or self._refused or self._in_flight or not self._clauses:
                return None
            self._in_flight = True
            return ClauseJob(self, self._clauses.popleft(), self._context())

    def _context(self) -> list[Segment]:
        """Reference first, then the reply's latest clauses, within the frame budget."""
        settings = self.voice.settings
        budget = settings.max_context_frames * self.voice.samples_per_frame
        recent = list(self._history)
        chosen: list[Segment] = []
        if self._reference is not None and self._reference[1].size <= budget:
            chosen.append(self._reference)
            budget -= self._reference[1].size
        kept: list[Segment] = []
        for segment in reversed(recent):
            if segment[1].size > budget:
                break
            kept.insert(0, segment)
            budget -= segment[1].size
        return chosen + kept

    def remember(self, text: str, audio: FloatArray) -> None:
        """A clause spoken in full: context for the next ones (any thread)."""
        whole = audio.size - audio.size % self.voice.samples_per_frame
        if whole:
            with self.lock:
                self._history.append((text, audio[:whole]))

    def finish(self, *, wake: bool) -> None:
        """A batch is done with this stream's clause; ``wake``: it ran in another's job."""
        with self.lock:
            self._in_flight = False
        if wake:
            self.wake()

    def generate(self) -> None:
        """Speak queued clauses until none is left, no room, or cancel."""
        while not self.cancelled and self.room():
            if not self._batcher.speak(self):
                return

    def cancel(self) -> None:
        super().cancel()
        self._batcher.leave(self)

    async def aclose(self) -> None:
        self._batcher.leave(self)
        await super().aclose()


def check_reference(options: VoiceOptions, voice: Voice) -> None:
    """Refuse a reference clip CSM cannot use (cheap: StartSession calls it)."""
    clip = options.reference_audio
    if clip is None or not clip.size:
        return
    if not options.reference_text.strip():
        raise AdapterError("CSM needs reference_text (what the clip says) with reference_audio")
    if options.reference_sample_rate <= 0:
        raise AdapterError("reference_audio needs its sample rate (reference_sample_rate)")
    frame_s = voice.samples_per_frame / voice.native_sample_rate
    if clip.size / options.reference_sample_rate < frame_s:
        raise AdapterError("reference_audio is shorter than one CSM frame (80 ms)")


def reference_segment(options: VoiceOptions, voice: Voice) -> Segment | None:
    """The session's reference clip as a context segment at the model's rate, whole frames."""
    if options.reference_audio is None or not options.reference_audio.size:
        return None
    check_reference(options, voice)
    audio = np.asarray(options.reference_audio, dtype=np.float32)
    if options.reference_sample_rate != voice.native_sample_rate:
        audio = soxr.resample(audio, options.reference_sample_rate, voice.native_sample_rate)
    limit = voice.settings.max_context_frames * voice.samples_per_frame
    audio = audio[-limit:]  # the end of an over-long clip
    whole = audio.size - audio.size % voice.samples_per_frame
    if not whole:
        raise AdapterError("reference_audio is shorter than one CSM frame (80 ms)")
    return options.reference_text.strip(), audio[:whole].astype(np.float32)
