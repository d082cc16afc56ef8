"""A false end in a LiveKit room (``duplex_livekit.false_ends``, pure): speech soon after
a turn was answered goes on from it, by how that turn ended; later speech, or speech
after a turn the client ended, is a turn of its own."""

from __future__ import annotations

import math

import pytest

from duplex_livekit.false_ends import FalseEnds, WentOn
from duplex_livekit.verdicts import Judgement
from duplex_orchestrator.endpoint import Verdict

WINDOW_S = 1.0


def _turn(verdict: Verdict, wait_s: float, spoke_until: float = 10.0) -> Judgement:
    return Judgement("I have a meeting.", "I have a meeting.", verdict, wait_s, spoke_until)


@pytest.mark.parametrize(
    ("verdict", "wait_s", "onset_after_end_s", "goes_on"),
    [
        (Verdict.COMPLETE, 0.0, 0.3, True),  # ended at the pause
        (Verdict.COMPLETE, 0.0, 0.99, True),
        (Verdict.COMPLETE, 0.0, 1.01, False),  # past the continue window
        (Verdict.DOUBTED, 0.7, 0.9, True),  # ended by the doubt's silence
        (Verdict.DOUBTED, 0.7, 1.2, False),
        (Verdict.INCOMPLETE, 1.0, 0.45, True),  # ended by the full silence: half a second
        (Verdict.INCOMPLETE, 1.0, 0.6, False),
    ],
)
def test_speech_soon_after_a_turns_end_goes_on_from_it(
    verdict: Verdict, wait_s: float, onset_after_end_s: float, goes_on: bool
) -> None:
    false_ends = FalseEnds(WINDOW_S)
    turn = _turn(verdict, wait_s)
    false_ends.ended(turn)
    onset = turn.ends_at + onset_after_end_s
    false_ends.onset(onset)
    expected = WentOn(turn, pause_s=onset - turn.spoke_until) if goes_on else None
    went_on = false_ends.take_went_on()
    assert went_on == expected
    if went_on is not None:
        assert math.isclose(went_on.pause_s, wait_s + onset_after_end_s)
    assert false_ends.take_went_on() is None  # once


def test_only_the_first_onset_after_an_end_can_go_on_from_it() -> None:
    false_ends = FalseEnds(WINDOW_S)
    turn = _turn(Verdict.COMPLETE, 0.0)
    false_ends.ended(turn)
    false_ends.onset(turn.ends_at + 0.2)
    false_ends.onset(turn.ends_at + 0.4)  # the same turn's next word: no end before it
    assert false_ends.take_went_on() is None


def test_speech_after_a_turn_the_client_ended_is_a_turn_of_its_own() -> None:
    false_ends = FalseEnds(WINDOW_S)
    false_ends.ended(_turn(Verdict.COMPLETE, 0.0))
    false_ends.ended(None)  # end_turn, or the turns changed kind
    false_ends.onset(10.1)
    assert false_ends.take_went_on() is None


def test_the_turn_joined_is_named_once_and_a_new_turn_forgets_it() -> None:
    false_ends = FalseEnds(WINDOW_S)
    turn = _turn(Verdict.COMPLETE, 0.0)
    false_ends.join(turn)
    assert false_ends.take_joined() is turn
    assert false_ends.take_joined() is None
    false_ends.join(turn)
    false_ends.join(None)
    assert false_ends.take_joined() is None
