"""A turn ended at a pause: how it is confirmed, and when its reply's first sound waits."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import numpy as np
import pytest

from duplex_orchestrator import metrics
from duplex_orchestrator.endpoint import EndOfTurn
from duplex_orchestrator.judging import Speculation
from duplex_orchestrator.pause_ends import JudgedTurn, PauseEnds
from duplex_orchestrator.session_parts import Services
from duplex_orchestrator.vad import Vad

NOTHING = cast(Any, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ends_count(by: str) -> float:
    return metrics.TURN_ENDS.labels(by=by)._value.get()  # type: ignore[no-any-return]


@pytest.fixture
def setup() -> tuple[PauseEnds, Clock, list[str]]:
    clock, rechecked = Clock(), []
    services = Services(NOTHING, NOTHING, NOTHING, "piper", sound_hold_max_s=0.14)
    services.end_of_turn = EndOfTurn("transcript+smart-turn", continue_window_ms=1000)
    ends = PauseEnds(services, Vad(), clock, lambda: rechecked.append("recheck"))
    return ends, clock, rechecked


def turn_at(
    clock: Clock, *, doubt: int = 25, least: int = 0, silent: int = 10, patience: int = 0
) -> JudgedTurn:
    speculation = Speculation("gap", 1, np.zeros(160, np.int16))
    task = cast("asyncio.Task[None]", NOTHING)
    audio = np.zeros(160, np.int16)
    return JudgedTurn(audio, clock(), task, speculation, silent, doubt, 50, least, patience)


def test_a_provisional_end_holds_the_sound_until_a_judge_confirms_it(setup: Any) -> None:
    ends, clock, rechecked = setup
    turn = turn_at(clock)
    before = ends_count("judged_complete")
    ends.opened(turn, "provisional")
    assert ends.sound_held()
    assert not turn.confirmed
    ends.confirm(turn.speculation)
    assert turn.confirmed
    assert not ends.sound_held()
    assert rechecked == ["recheck"]
    ends.confirm(turn.speculation)  # once only
    assert rechecked == ["recheck"]
    assert ends_count("judged_complete") == before + 1


def test_a_judge_within_the_users_learned_pause_waits_it_out(setup: Any) -> None:
    ends, clock, rechecked = setup
    turn = turn_at(clock, least=13, silent=10)
    ends.opened(turn, "provisional")
    ends.confirm(turn.speculation)  # the judge agrees at 10 frames of silence
    assert not turn.confirmed
    assert rechecked == []
    for _ in range(2):
        ends.silence_went_on()
    assert not turn.confirmed
    ends.silence_went_on()  # the 13th frame
    assert turn.confirmed
    assert rechecked == ["recheck"]


def test_a_doubted_turn_is_confirmed_by_the_doubts_silence(setup: Any) -> None:
    ends, clock, _ = setup
    turn = turn_at(clock, doubt=25, silent=10)
    before = ends_count("judged_after_doubt")
    ends.opened(turn, "provisional")
    ends.doubt(turn.speculation)
    for _ in range(14):
        ends.silence_went_on()
    assert not turn.confirmed
    ends.silence_went_on()  # 15 frames after the pause: the question's doubt
    assert turn.confirmed
    assert ends.hold_max_s() == pytest.approx(0.14)
    assert ends_count("judged_after_doubt") == before + 1


def test_a_question_doubted_long_is_confirmed_by_a_statements_silence(setup: Any) -> None:
    """Smart Turn is sure the question is unfinished (``EndOfTurn.doubts_long``)."""
    ends, clock, _ = setup
    turn = turn_at(clock, doubt=25, silent=10)
    ends.opened(turn, "provisional")
    ends.doubt(turn.speculation, long=True)
    assert turn.doubt_frames == Services.statement_doubt_frames == 35
    for _ in range(24):
        ends.silence_went_on()
    assert not turn.confirmed
    ends.silence_went_on()  # 25 frames after the pause: the statement's doubt
    assert turn.confirmed


def test_an_unconfirmed_turns_sound_may_wait_for_the_longest_doubt(setup: Any) -> None:
    """A reply is prepared before the judges answer, and its first sound may wait at
    most ``hold_max_s``: for an unconfirmed turn, at least until a statement's doubt
    (the question's may yet be lengthened to it), then an onset's run."""
    ends, clock, _ = setup
    turn = turn_at(clock, doubt=25, silent=10)
    ends.opened(turn, "provisional")
    assert ends.hold_max_s() == pytest.approx(0.14 + (35 - 10) * 0.02)
    ends.doubt(turn.speculation, long=True)
    assert ends.hold_max_s() == pytest.approx(0.14 + (35 - 10) * 0.02)
    ends.confirm(turn.speculation, "judged_after_doubt")
    assert ends.hold_max_s() == pytest.approx(0.14)


def test_a_judges_verdict_on_another_speculation_is_ignored(setup: Any) -> None:
    ends, clock, rechecked = setup
    turn = turn_at(clock)
    ends.opened(turn, "provisional")
    stale = Speculation("gap", 0, np.zeros(160, np.int16))
    ends.confirm(stale)
    ends.doubt(stale)
    assert not turn.confirmed
    assert not turn.doubted
    assert rechecked == []


def test_speech_continues_the_turn_only_within_the_continue_window(setup: Any) -> None:
    ends, clock, _ = setup
    turn = turn_at(clock)
    ends.opened(turn, "judged_complete")
    clock.now += 0.9
    assert ends.reopened() is turn
    assert ends.reopened() is None  # forgotten once reopened
    ends.opened(turn, "judged_complete")
    clock.now += 0.2  # 1.1 s after the turn ended: a barge-in, not the turn going on
    assert not ends.sound_held()
    assert ends.reopened() is None


@pytest.mark.parametrize(
    ("patience", "after_s", "confirmed", "goes_on"),
    [
        (0, 1.1, False, False),  # the continue window (1 s)
        (40, 1.1, False, False),  # a learned pause shorter than the window changes nothing
        (70, 1.1, False, True),  # a learned pause of 1.4 s: speech within it goes on
        (70, 1.35, False, True),
        (70, 1.45, False, False),
        (70, 1.1, True, False),  # its reply sounds: the continue window, as for any turn
        (70, 0.9, True, True),
    ],
)
def test_a_learned_pause_longer_than_the_continue_window_widens_it_while_held(
    setup: Any, patience: int, after_s: float, confirmed: bool, goes_on: bool
) -> None:
    """A statement's reply waits out the user's learned pause; until then their speech
    continues the turn, or the held reply would sound at the window's end, before it."""
    ends, clock, _ = setup
    turn = turn_at(clock, least=patience, doubt=max(25, patience), patience=patience)
    ends.opened(turn, "provisional")
    turn.confirmed = confirmed
    clock.now += after_s
    assert ends.sound_held() is (goes_on and not confirmed)
    assert (ends.reopened() is turn) is goes_on


def test_after_another_turn_ended_nothing_is_held(setup: Any) -> None:
    ends, clock, _ = setup
    ends.opened(turn_at(clock), "provisional")
    ends.clear()
    assert not ends.sound_held()
    assert ends.reopened() is None
    assert ends.hold_max_s() == pytest.approx(0.14)
