"""Speech recognition that hears what the test says, and a signal webrtcvad calls speech."""

from __future__ import annotations

import numpy as np

from duplex_orchestrator.asr import Transcript, Wanted


class Ears:
    """Speech recognition that hears whatever the test says the user said."""

    def __init__(self) -> None:
        self.words = "hello there"
        self.ends_here: float | None = None
        """Whisper's probability of a sentence end where the words stop (None: unsaid)."""
        self.fail = False
        self.heard: list[float] = []
        """Seconds of audio of each transcription, in order."""
        self.wanted: list[Wanted | None] = []
        """Each transcription's ``wanted``, in order: a test asks them later."""

    def transcribe(self, audio16k: np.ndarray, wanted: Wanted | None = None) -> Transcript:
        self.heard.append(len(audio16k) / 16000)
        self.wanted.append(wanted)
        if self.fail:
            raise RuntimeError("the recognizer broke")
        if wanted is not None and not wanted():  # as Whisper does before its decoder
            return Transcript("", 0.01, len(audio16k) / 16000, abandoned=True)
        return Transcript(self.words, 0.01, len(audio16k) / 16000, ends_here=self.ends_here)


def voiced(seconds: float) -> np.ndarray:
    """A harmonic tone with a syllable-like envelope: webrtcvad calls it speech."""
    t = np.arange(int(seconds * 16000)) / 16000
    harmonics = sum(np.sin(2 * np.pi * 180 * h * t) / h for h in range(1, 10))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.5 * 32767 * harmonics * envelope / 3).astype(np.int16)
