"""The pitch at a statement's end, and this user's usual fall (``prosody``)."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_orchestrator.prosody import PitchHabit, fall_of, final_fall_st

RATE = 16000


def glide(start_hz: float, end_hz: float, seconds: float = 1.2) -> np.ndarray:
    """A voiced-like tone (a pulse train's harmonics) gliding from one pitch to another,
    int16 at 16 kHz."""
    hz = np.geomspace(start_hz, end_hz, int(seconds * RATE))
    phase = 2 * np.pi * np.cumsum(hz) / RATE
    tone = np.sum([np.sin(k * phase) / k for k in range(1, 6)], axis=0)
    scaled: np.ndarray = (tone / np.abs(tone).max() * 0.5 * 32767).astype(np.int16)
    return scaled


def track(*segments: tuple[float, int]) -> np.ndarray:
    """A pitch track: (Hz, frames) segments, 0 Hz unvoiced."""
    return np.concatenate([np.full(frames, hz, dtype=np.float64) for hz, frames in segments])


def test_the_fall_is_the_end_against_the_median_in_semitones() -> None:
    # 100 frames at 200 Hz, then the last 11 voiced at 100 Hz: an octave below.
    assert fall_of(track((200.0, 100), (100.0, 11))) == pytest.approx(-12.0)
    # Unvoiced frames after the last voiced one do not count as its end.
    assert fall_of(track((200.0, 100), (100.0, 11), (0.0, 30))) == pytest.approx(-12.0)
    assert fall_of(track((200.0, 100), (400.0, 11))) == pytest.approx(12.0)
    assert fall_of(track((150.0, 50))) == pytest.approx(0.0)


def test_too_little_voice_gives_no_fall() -> None:
    assert fall_of(track((0.0, 100), (180.0, 7))) is None
    assert fall_of(np.zeros(0)) is None


def test_an_end_past_an_octave_is_the_trackers_jump_not_the_voice() -> None:
    assert fall_of(track((120.0, 100), (240.0, 11))) == pytest.approx(12.0)
    assert fall_of(track((120.0, 100), (250.0, 11))) is None
    assert fall_of(track((240.0, 100), (115.0, 11))) is None


def test_a_falling_voice_falls_and_a_rising_one_does_not() -> None:
    falling = final_fall_st(np.concatenate([glide(180, 180), glide(180, 110, 0.4)]), RATE)
    level = final_fall_st(glide(150, 150), RATE)
    rising = final_fall_st(np.concatenate([glide(150, 150), glide(150, 200, 0.4)]), RATE)
    assert falling is not None
    assert level is not None
    assert rising is not None
    assert falling < -4 < level < 4 < rising
    assert abs(level) < 0.5
    silence = np.zeros(RATE, dtype=np.int16)
    assert final_fall_st(silence, RATE) is None
    # Float audio is read as it is; only the last 1.6 s counts.
    as_float = glide(150, 150).astype(np.float32) / 32768
    assert final_fall_st(as_float, RATE) == pytest.approx(level, abs=0.2)
    long_lead = np.concatenate([glide(300, 300, 3.0), glide(150, 150, 1.6)])
    assert abs(final_fall_st(long_lead, RATE) or 99) < 0.5


def test_the_habit_judges_only_after_enough_statements() -> None:
    habit = PitchHabit(turns=10, min_turns=3)
    assert habit.above_usual_st(0.0) is None
    for turn, fall in enumerate([-4.0, -5.0]):
        habit.heard(turn, fall)
    assert habit.usual_fall_st() is None
    habit.heard(2, -6.0)
    assert habit.usual_fall_st() == -5.0
    assert habit.above_usual_st(-1.0) == 4.0
    assert habit.above_usual_st(None) is None


def test_until_it_knows_the_user_the_habit_takes_the_first_usual_fall() -> None:
    habit = PitchHabit(turns=10, min_turns=3, first_usual_fall_st=-3.5)
    assert habit.above_usual_st(0.0) == 3.5
    for turn, fall in enumerate([-1.0, 0.0]):
        habit.heard(turn, fall)
    assert habit.usual_fall_st() == -3.5
    habit.heard(2, -0.5)
    assert habit.usual_fall_st() == -0.5  # theirs, once three are heard
    assert habit.above_usual_st(0.0) == 0.5


def test_a_turn_the_user_went_on_with_is_forgotten() -> None:
    habit = PitchHabit(min_turns=1)
    first, second = object(), object()
    habit.heard(first, -4.0)
    habit.heard(second, 1.0)  # a hesitation ended as a turn: the user went on
    habit.forget(second)
    assert habit.usual_fall_st() == -4.0
    habit.forget(second)  # forgetting twice, or a turn never heard, changes nothing
    habit.forget(object())
    assert habit.usual_fall_st() == -4.0


def test_a_turn_forgotten_before_its_measure_came_is_not_learned_after() -> None:
    """Under load the pitch is measured after Smart Turn and the alignment answer; the
    user may have gone on by then."""
    habit = PitchHabit(min_turns=1)
    late = object()
    habit.forget(late)
    habit.heard(late, 2.0)
    assert habit.usual_fall_st() is None
    habit.heard(object(), -3.0)
    assert habit.usual_fall_st() == -3.0


def test_the_habit_remembers_only_the_latest_turns() -> None:
    habit = PitchHabit(turns=3, min_turns=1)
    for turn, fall in enumerate([-9.0, -9.0, -1.0, -1.0, -2.0]):
        habit.heard(turn, fall)
    assert habit.usual_fall_st() == -1.0
