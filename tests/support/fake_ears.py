"""Speech recognition that hears what the test says, and a signal webrtcvad calls speech."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted


class Ears:
    """Speech recognition that hears whatever the test says the user said."""

    def __init__(self) -> None:
        self.words = "hello there"
        self.ends_here: float | None = None
        """Whisper's probability of a sentence end where the words stop (None: unsaid)."""
        self.last_word_sound_s = 0.3
        """Sound under the last word, given when the session asks for the alignment."""
        self.aligned: list[bool] = []
        """Whether each transcription came with an aligner (its ``align`` said yes), in order."""
        self.alignments = 0
        """How many alignments were run."""
        self.alignment_gate: threading.Event | None = None
        """When set by a test: each alignment waits for it (at most 10 s)."""
        self.fail = False
        self.heard: list[float] = []
        """Seconds of audio of each transcription, in order."""
        self.wanted: list[Wanted | None] = []
        """Each transcription's ``wanted``, in order: a test asks them later."""

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        self.heard.append(len(audio16k) / 16000)
        self.wanted.append(wanted)
        if self.fail:
            raise RuntimeError("the recognizer broke")
        seconds = len(audio16k) / 16000
        if wanted is not None and not wanted():  # as Whisper does before its decoder
            return Transcript("", 0.01, seconds, abandoned=True)
        aligned = align is not None and align(self.words, self.ends_here)
        self.aligned.append(aligned)
        transcript = Transcript(self.words, 0.01, seconds, ends_here=self.ends_here)
        if not aligned:
            return transcript
        # The last sound 200 ms before the audio's end, as at the pause.
        sound_end_s = max(0.0, seconds - 0.2)
        last_word_s = sound_end_s - self.last_word_sound_s

        def aligner() -> Transcript:
            if self.alignment_gate is not None:
                self.alignment_gate.wait(10)
            self.alignments += 1
            return replace(transcript, last_word_s=last_word_s, sound_end_s=sound_end_s)

        return replace(transcript, aligner=aligner)


STATEMENT_END_HZ = 120.0
"""A statement's end: 7 semitones down from 180 Hz, more than most voices fall."""


def voiced(seconds: float, ending_hz: float = STATEMENT_END_HZ) -> np.ndarray:
    """A harmonic tone with a syllable-like envelope: webrtcvad calls it speech. Its
    pitch is 180 Hz, gliding to ``ending_hz`` over the last 0.4 s (a statement's
    end falls, as by default; a hesitation's stays up at 180)."""
    samples = int(seconds * 16000)
    glide = min(samples, 6400)
    hz = np.concatenate([np.full(samples - glide, 180.0), np.geomspace(180.0, ending_hz, glide)])
    phase = 2 * np.pi * np.cumsum(hz) / 16000
    t = np.arange(samples) / 16000
    harmonics = sum(np.sin(h * phase) / h for h in range(1, 10))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.5 * 32767 * harmonics * envelope / 3).astype(np.int16)
