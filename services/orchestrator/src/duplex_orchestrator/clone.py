"""A reference clip for voice cloning, recorded or uploaded by the client.

Between ``clone_start`` and ``clone_end`` the client's binary frames are the
clip (its microphone, or a file the browser decodes and sends as frames)
rather than speech to answer. The finished clip, with Whisper's transcript of
it (CSM reads what the clip says), goes to the worker in every later
``StartSession`` (``reference_audio``), where a cloning family (XTTS) speaks
with that voice; other families ignore it. The clip is kept only in the
session's memory, dropped by ``clone_clear`` or when the session ends; it is
never written or logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import soxr

from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.events import CloneRecording, Event, Voice
from duplex_orchestrator.protocol import ProtocolError
from duplex_orchestrator.vad import VAD_RATE

log = logging.getLogger(__name__)

MIN_CLIP_S = 3.0
MAX_CLIP_S = 30.0  # XTTS reads at most 30 s; more is cut, not refused


@dataclass(frozen=True)
class VoiceReference:
    """A finished clip: PCM16 mono little-endian at ``sample_rate``, and what it says."""

    pcm: bytes
    sample_rate: int
    text: str

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate


class ClipRecorder:
    """Collects the clip's frames, up to ``MAX_CLIP_S``."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._parts: list[np.ndarray] = []
        self._samples = 0
        self.limit = int(MAX_CLIP_S * sample_rate)

    def push(self, samples: np.ndarray) -> None:
        room = self.limit - self._samples
        if room > 0:
            self._parts.append(samples[:room].astype(np.int16))
            self._samples += min(room, samples.size)

    @property
    def seconds(self) -> float:
        return self._samples / self.sample_rate

    def finish(self) -> np.ndarray:
        """The clip; ``ProtocolError`` when it is too short to clone a voice from."""
        if self.seconds < MIN_CLIP_S:
            raise ProtocolError(
                "clip_too_short",
                f"the voice clip is {self.seconds:.1f} s; record or upload at least "
                f"{MIN_CLIP_S:.0f} s of speech (6 to 10 s clones best)",
            )
        return np.concatenate(self._parts)


async def reference_of(recorder: ClipRecorder, transcriber: SpeechToText) -> VoiceReference:
    """The finished clip and Whisper's transcript of it, made in a thread
    (``ProtocolError`` when the clip is too short)."""
    clip, rate = recorder.finish(), recorder.sample_rate
    audio16k = clip if rate == VAD_RATE else soxr.resample(clip, rate, VAD_RATE)
    transcript = await asyncio.to_thread(transcriber.transcribe, audio16k)
    return VoiceReference(clip.astype("<i2").tobytes(), rate, transcript.text)


class VoiceClip:
    """A session's clip messages: ``start`` records, ``end`` makes the reference and
    ``use``s it, ``clear`` uses none; each then tells the client (``emit``)."""

    def __init__(
        self,
        transcriber: SpeechToText,
        use: Callable[[VoiceReference | None], None],
        emit: Callable[[Event], Awaitable[None]],
        session_id: str,
    ) -> None:
        self._transcriber = transcriber
        self._use = use
        self._emit = emit
        self._session_id = session_id
        self.recorder: ClipRecorder | None = None

    async def start(self, sample_rate: int) -> None:
        self.recorder = ClipRecorder(sample_rate)
        await self._emit(CloneRecording(max_s=self.recorder.limit / sample_rate))

    async def end(self) -> None:
        """Use the reference made from the clip recorded since ``start``."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            raise ProtocolError("not_recording", 'send {"type": "clone_start"} first')
        reference = await reference_of(recorder, self._transcriber)
        self._use(reference)  # before the client hears of it: its next reply has the voice
        log.info(  # the figures only: never the clip or its words
            "voice clip set",
            extra={
                "event": "voice_clip",
                "session_id": self._session_id,
                "seconds": reference.seconds,
            },
        )
        seconds = round(reference.seconds, 2)
        await self._emit(Voice(cloned=True, seconds=seconds, transcript=reference.text))

    async def clear(self) -> None:
        self.recorder = None
        self._use(None)
        await self._emit(Voice(cloned=False))
