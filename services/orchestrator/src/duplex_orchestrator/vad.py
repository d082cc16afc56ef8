"""Voice activity detection: a frame classifier on 20 ms / 16 kHz frames, debounced.

``SpeechDetector`` is the pure debouncer: it turns per-frame decisions into
speech onsets and ends. Onset needs a run of speech frames that are also above
an energy floor (a faint noise step that fools webrtcvad does not count); the
end of a turn needs a run of silence. Inside speech, the first few silent
frames are a ``SPEECH_GAP`` (and, a little later, a second one for when
Whisper was busy at the first): the session starts transcribing (and judging)
speculatively there, so the work is under way, or done, by the time a longer
silence run, a ``SPEECH_PAUSE``, asks whether the turn is complete
(``endpoint``); it ends the turn early with ``Vad.end_turn`` when it is.
``Vad`` adds the per-frame classifier: webrtcvad (``WebRtcClassifier``) or
Silero VAD (``silero.SileroClassifier``), compared by ``tests.bench.bench_vad``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import webrtcvad

VadKind = Literal["webrtc", "silero"]
VAD_RATE = 16_000
VAD_FRAME_SAMPLES = 320  # 20 ms
SPEECH_FLOOR_DBFS = -50.0
"""Frames quieter than this are never speech (``SpeechDetector.min_dbfs``'s default)."""


class VadEvent(enum.Enum):
    SPEECH_START = "speech_start"
    SPEECH_GAP = "speech_gap"
    SPEECH_PAUSE = "speech_pause"
    SPEECH_END = "speech_end"


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(frame.astype(np.float64) / 32768.0))))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def last_sound_s(audio16k: np.ndarray, floor_dbfs: float = SPEECH_FLOOR_DBFS) -> float:
    """Where the last 20 ms frame at or above ``floor_dbfs`` ends, in seconds from the
    start (0.0 when none is): int16 samples, or float ones scaled to ±1."""
    frames = len(audio16k) // VAD_FRAME_SAMPLES
    if frames == 0:
        return 0.0
    scale = 32768.0 if audio16k.dtype == np.int16 else 1.0
    samples = audio16k[: frames * VAD_FRAME_SAMPLES].astype(np.float64) / scale
    power = np.mean(np.square(samples.reshape(frames, VAD_FRAME_SAMPLES)), axis=1)
    loud = np.flatnonzero(power >= 10 ** (floor_dbfs / 10))
    return 0.0 if len(loud) == 0 else (int(loud[-1]) + 1) * VAD_FRAME_SAMPLES / VAD_RATE


@dataclass
class SpeechDetector:
    onset_frames: int = 4
    """Consecutive speech frames before an onset (80 ms)."""
    end_frames: int = 25
    """Consecutive non-speech frames that end a turn (500 ms)."""
    pause_frames: int = 10
    """Non-speech frames inside speech that make a pause (200 ms); < end_frames."""
    gap_frames: int = 0
    """Non-speech frames inside speech that make a gap (0: none); < pause_frames."""
    busy_gap_frames: int = 0
    """A second, later gap (0: none), where speculation starts if Whisper was too
    busy at the first; between gap_frames and pause_frames."""
    min_dbfs: float = SPEECH_FLOOR_DBFS
    """Frames quieter than this never count as speech."""
    in_speech: bool = False
    pauses: int = field(default=0, init=False)
    """Counts onsets and every return to speech after silence: a judgement made at
    a pause still applies only while this has not changed."""
    longest_pause: int = field(default=0, init=False)
    """The longest silence inside the current utterance that speech followed (frames;
    0 from each onset): how long this user pauses and goes on."""
    pause_end_frames: int = field(default=0, init=False)
    """The silence that ends the turn at this pause, when its words want more than
    ``end_frames`` (set by the judge; speech or the turn's end clears it)."""
    ended_after: int = field(default=0, init=False)
    """The silence that ended the last turn (frames), at SPEECH_END."""
    _run: int = field(default=0, init=False)

    @property
    def turn_end_frames(self) -> int:
        """The silence that ends the turn now: ``end_frames``, or this pause's if longer."""
        return max(self.end_frames, self.pause_end_frames)

    @property
    def silent_frames(self) -> int:
        """Consecutive non-speech frames inside speech so far (0 outside speech)."""
        return self._run if self.in_speech else 0

    @property
    def onset_pending(self) -> bool:
        """Outside speech, speech frames have begun a run that may yet make an onset."""
        return not self.in_speech and self._run > 0

    def end(self) -> None:
        """The turn was ended from outside (judged complete): back to waiting for an onset."""
        self.in_speech, self._run = False, 0
        self.pauses += 1
        self.pause_end_frames = 0

    def push(self, is_speech: bool, dbfs: float) -> VadEvent | None:
        speech = is_speech and dbfs >= self.min_dbfs
        if not self.in_speech:
            self._run = self._run + 1 if speech else 0
            if self._run >= self.onset_frames:
                self.in_speech, self._run = True, 0
                self.pauses += 1
                self.longest_pause = 0
                return VadEvent.SPEECH_START
            return None
        if speech and self._run > 0:
            self.pauses += 1
            self.longest_pause = max(self.longest_pause, self._run)
            self.pause_end_frames = 0
        self._run = 0 if speech else self._run + 1
        if self._run >= self.turn_end_frames:
            self.ended_after, self.pause_end_frames = self._run, 0
            self.in_speech, self._run = False, 0
            return VadEvent.SPEECH_END
        if self._run == self.pause_frames:
            return VadEvent.SPEECH_PAUSE
        if self._run in (self.gap_frames, self.busy_gap_frames) and self._run > 0:
            return VadEvent.SPEECH_GAP
        return None


class FrameClassifier(Protocol):
    """Speech or not, per 20 ms frame of one stream (it may keep state between frames)."""

    def is_speech(self, frame: np.ndarray) -> bool: ...


class WebRtcClassifier:
    """webrtcvad at ``aggressiveness`` 0-3 (3 rejects the most non-speech)."""

    def __init__(self, aggressiveness: int = 2) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(self._vad.is_speech(frame.astype("<i2").tobytes(), VAD_RATE))


@dataclass
class VadResult:
    event: VadEvent | None
    utterance: np.ndarray | None = None
    """At SPEECH_GAP, SPEECH_PAUSE and SPEECH_END: the utterance so far (16 kHz int16,
    with pre-roll)."""
    by_silence: bool = True
    """At SPEECH_END: False when a too-long utterance was cut."""


class Vad:
    """A ``FrameClassifier`` + ``SpeechDetector`` + the utterance buffer for ASR."""

    def __init__(
        self,
        classifier: FrameClassifier | None = None,
        detector: SpeechDetector | None = None,
        preroll_frames: int = 15,
        max_utterance_s: float = 30.0,
    ) -> None:
        self._classifier = classifier or WebRtcClassifier()
        self.detector = detector or SpeechDetector()
        self._preroll: deque[np.ndarray] = deque(maxlen=preroll_frames)
        self._utterance: list[np.ndarray] = []
        self._max_frames = int(max_utterance_s * VAD_RATE / VAD_FRAME_SAMPLES)
        self._pending = np.zeros(0, dtype=np.int16)
        self._levels: deque[float] = deque(maxlen=50)
        self._quiet_dbfs = float("-inf")
        """The loudest frame of the silence that ended the last turn judged complete."""

    def feed(self, samples: np.ndarray) -> Iterator[tuple[np.ndarray, VadResult]]:
        """Any number of int16 samples at 16 kHz: each whole 20 ms frame and its result.

        A partial frame waits for the next call.
        """
        pending = np.concatenate([self._pending, samples.astype(np.int16, copy=False)])
        whole = len(pending) - len(pending) % VAD_FRAME_SAMPLES
        self._pending = pending[whole:]
        for start in range(0, whole, VAD_FRAME_SAMPLES):
            frame = pending[start : start + VAD_FRAME_SAMPLES]
            yield frame, self.push(frame)

    def push(self, frame: np.ndarray) -> VadResult:
        """One 20 ms frame of 320 int16 samples at 16 kHz."""
        level = frame_dbfs(frame)
        self._levels.append(level)
        event = self.detector.push(self._classifier.is_speech(frame), level)
        if event is VadEvent.SPEECH_START:
            self._utterance = [*self._preroll, frame]
            self._preroll.clear()
            return VadResult(event)
        by_silence = True
        if self.detector.in_speech or event is VadEvent.SPEECH_END:
            self._utterance.append(frame)
            if event is None and len(self._utterance) >= self._max_frames:
                self.detector.in_speech = False  # a monologue: cut it here
                self.detector.pause_end_frames = 0
                event, by_silence = VadEvent.SPEECH_END, False
        if event in (VadEvent.SPEECH_GAP, VadEvent.SPEECH_PAUSE):
            return VadResult(event, np.concatenate(self._utterance))
        if event is VadEvent.SPEECH_END:
            audio = np.concatenate(self._utterance)
            self._utterance = []
            return VadResult(event, audio, by_silence)
        self._preroll.append(frame)
        return VadResult(None)

    def prepend(self, audio: np.ndarray) -> None:
        """Speech resumed a turn that was ended too early: its audio leads this utterance.

        Kept as 20 ms frames, so the too-long cut still counts it.
        """
        frames = [audio[i : i + VAD_FRAME_SAMPLES] for i in range(0, len(audio), VAD_FRAME_SAMPLES)]
        self._utterance[:0] = frames

    def end_turn(self) -> np.ndarray:
        """End the utterance now (it was judged complete at a pause): its audio so far."""
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.int16)
        self._utterance = []
        # The pre-roll still holds this utterance's last frames: a continued turn would hear
        # them twice (once in the prepended audio, once as its own pre-roll).
        self._preroll.clear()
        pause = self.detector.silent_frames
        self._quiet_dbfs = max(list(self._levels)[-pause:] if pause else [], default=float("-inf"))
        self.detector.end()
        return audio

    @property
    def sounding(self) -> bool:
        """The latest frame is 10 dB louder than the silence that ended the turn judged
        complete (and above the speech floor): perhaps a word beginning, which the
        classifier calls speech a frame or two later (Silero's chunk lags)."""
        floor = max(self.detector.min_dbfs, self._quiet_dbfs + 10)
        return bool(self._levels) and self._levels[-1] >= floor
