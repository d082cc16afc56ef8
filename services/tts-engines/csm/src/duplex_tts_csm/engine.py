"""CSM streams: clauses in, audio chunks out while generation runs.

One generation job per stream runs on the device thread. For each clause it
builds the prompt, calls ``generate`` with a streamer, and the streamer turns
every frame of codebooks into audio through a ``ChunkedDecoder`` and hands it
to the event loop: the first audio follows the first ``chunk_frames`` frames,
not the whole clause. CSM's ``generate`` ignores custom stopping criteria, so
cancel (STOP, barge-in, session end) raises from the streamer: generation
stops within one step. Backpressure is checked between clauses (audio the
stream holds unread counts), so at most one clause runs past the limit.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from duplex_tts.adapters import JobStream, StreamContext, VoiceOptions
from duplex_tts.text import ClauseSegmenter
from duplex_tts_csm.codec import ChunkedDecoder


@dataclass(frozen=True)
class CsmSettings:
    """Voicepack ``params`` of a CSM voice."""

    speaker: int = 0
    max_frames_per_clause: int = 250  # 20 s: a clause is at most ~240 characters
    temperature: float = 0.9
    do_sample: bool = True
    chunk_frames: int = 2  # 160 ms of audio per decode
    context_frames: int = 25


class Cancelled(Exception):
    """Raised inside ``generate`` (from the streamer) to stop it within a step."""


class _FrameStreamer(BaseStreamer):
    """Receives each step's codes; decodes and hands audio on as it goes."""

    def __init__(self, stream: CsmStream, decoder: ChunkedDecoder, eos: int) -> None:
        self._stream = stream
        self._decoder = decoder
        self._eos = eos
        self._prompt_seen = False
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        if self._stream.cancelled:
            raise Cancelled
        frame = value.reshape(-1)
        if self.ended or bool((frame[:-1] == self._eos).all()):
            self.ended = True  # the end-of-audio frame is not audio
            return
        self._stream.frames_generated += 1
        self._stream.emit(self._decoder.push(frame))

    def end(self) -> None:
        self._stream.emit(self._decoder.flush())


class CsmStream(JobStream):
    def __init__(self, model: Any, context: StreamContext) -> None:
        super().__init__(context, model.native_sample_rate)
        self._model = model
        self._segmenter = ClauseSegmenter()
        self._clauses: collections.deque[str] = collections.deque()
        self._ended = False
        self.options: VoiceOptions = context.options
        self.frames_generated = 0
        """Frames of codebooks generated so far (audio frames, not 20 ms frames)."""

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
        return bool(self._clauses), self._ended

    def generate(self) -> None:
        """Speak queued clauses until none is left, no room, or cancel."""
        while not self.cancelled and self.room():
            with self.lock:
                if not self._clauses:
                    return
                clause = self._clauses.popleft()
            try:
                self._model.generate_clause(clause, self)
            except Cancelled:
                return
