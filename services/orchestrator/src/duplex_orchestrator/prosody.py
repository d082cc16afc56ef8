"""The pitch at a statement's end, against this user's own: a judge of the end of turn.

A statement's first half is often a sentence in its own right ("I need to pick
up.", "My daughter wants to learn."): the words, Whisper and Smart Turn may all
call it complete. What a listener hears is the voice: at the end of a
statement it falls, at a hesitation it stays up. How far it falls differs from
one voice to the next (of the bench's voices, Piper's hardly falls at a full
stop, Kokoro's by about 4 semitones), so one threshold for all holds back
many whole statements; ``PitchHabit`` learns the fall of *this* user's
statements over the session's turns, and a statement that ends well above
that fall is doubted (``endpoint.EndOfTurn.pitch_rise_st``): it ends after the
doubt's silence, not at the pause. Until it has heard a few, a user's usual fall
is taken to be that of most voices (``first_usual_fall_st``, -3.5 semitones by
default: the bench's five voices fall by 2.1 to 5.9 at a full stop, median 3.2),
so a statement that ends level is doubted from the first turn.

``final_fall_st`` is the measure: over the last ``TAIL_S`` of the utterance,
the median pitch of the last ``END_S`` of voiced speech against the median of
all of it, in semitones (negative: it fell). Praat's autocorrelation pitch
(``praat-parselmouth``: ~5 ms for 1.6 s on one core) tracks it. Everything
but ``pitch_track`` is pure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import parselmouth  # at import, not first use: loading it holds the GIL ~0.25 s

TAIL_S = 1.6
"""The part of the utterance heard: its last phrase, not the whole turn's range."""
END_S = 0.1
"""The end whose pitch counts: the last 100 ms of voiced speech."""
FRAME_S = 0.01
MIN_VOICED_FRAMES = 8
"""Fewer voiced frames than this (a whisper, a cough) give no measure."""
PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 60.0, 450.0
MAX_FALL_ST = 12.0
"""An end more than an octave from the median is the tracker's octave jump (on the
end-of-turn bench a Piper "Stop the music." read 28 semitones up), not the voice."""


def pitch_track(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The pitch of the last ``TAIL_S`` of ``audio`` (int16 or float), Hz per 10 ms
    frame, 0 where unvoiced."""
    tail = np.asarray(audio[-int(TAIL_S * sample_rate) :], dtype=np.float64)
    if audio.dtype == np.int16:
        tail /= 32768.0
    if tail.size < int(0.1 * sample_rate):
        return np.zeros(0)
    pitch = parselmouth.Sound(tail, sample_rate).to_pitch_ac(
        time_step=FRAME_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ
    )
    return np.asarray(pitch.selected_array["frequency"], dtype=np.float64)


def warm_up() -> None:
    """Run the tracker once, before the first user needs it."""
    pitch_track(np.zeros(int(TAIL_S * 16000), dtype=np.int16), 16000)


def fall_of(track_hz: np.ndarray) -> float | None:
    """Semitones from the median of the voiced frames to the median of the last
    ``END_S`` of them (None: too little voice, or an octave jump, to tell)."""
    voiced = np.flatnonzero(track_hz > 0)
    if voiced.size < MIN_VOICED_FRAMES:
        return None
    semitones = 12 * np.log2(track_hz[voiced] / 100.0)
    end = voiced >= voiced[-1] - round(END_S / FRAME_S)
    fall = float(np.median(semitones[end]) - np.median(semitones))
    return fall if abs(fall) <= MAX_FALL_ST else None


def final_fall_st(audio: np.ndarray, sample_rate: int) -> float | None:
    """How far the pitch fell at the end of ``audio``, in semitones (``fall_of``)."""
    return fall_of(pitch_track(audio, sample_rate))


@dataclass
class PitchHabit:
    """How far this user's pitch falls at the end of a statement, learned per session.

    The judge tells it each statement's fall as a turn ends on it (``heard``); a turn
    the user then goes on with is forgotten (``forget``: it was not their end). Until
    ``min_turns`` are known it takes ``first_usual_fall_st`` for theirs (None: it has
    no opinion)."""

    turns: int = 10
    """How many of the user's latest statements it remembers."""
    min_turns: int = 3
    """Statements heard before it judges by them (at least one, whatever is set)."""
    first_usual_fall_st: float | None = None
    """The usual fall taken for a user until ``min_turns`` are heard (None: none)."""
    _falls: deque[tuple[Hashable, float]] = field(default_factory=deque, init=False)
    _forgotten: deque[Hashable] = field(default_factory=lambda: deque(maxlen=4), init=False)
    """The latest turns forgotten: one may be heard after (its measure came late)."""

    def heard(self, turn: Hashable, fall_st: float) -> None:
        """A turn ended on a statement whose pitch fell by ``fall_st``."""
        if any(t is turn for t in self._forgotten):
            return
        self._falls.append((turn, fall_st))
        while len(self._falls) > self.turns:
            self._falls.popleft()

    def forget(self, turn: Hashable) -> None:
        """The user went on: that turn's end was a pause inside it (heard or not yet)."""
        self._falls = deque((t, f) for t, f in self._falls if t is not turn)
        self._forgotten.append(turn)

    def usual_fall_st(self) -> float | None:
        """The median fall of the remembered statements; too few yet, the first usual
        fall (None: none)."""
        if len(self._falls) < max(1, self.min_turns):
            return self.first_usual_fall_st
        return float(np.median([fall for _, fall in self._falls]))

    def above_usual_st(self, fall_st: float | None) -> float | None:
        """How far above this user's usual end a statement's end is (None: unknown)."""
        usual = self.usual_fall_st()
        if usual is None or fall_st is None:
            return None
        return fall_st - usual
