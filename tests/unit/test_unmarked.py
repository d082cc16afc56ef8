"""Words complete but for their closing mark, that Smart Turn is sure of, wait a statement's doubt.

Whisper base leaves the closing mark out of short commands and telephone speech
("10 of clubs", people's card names in the end-of-turn bench's recordings), and
a transcript without one waited for the full second of silence whatever Smart
Turn said. Where the words would read complete with a full stop and Smart Turn
is sure (``EndOfTurn.unmarked_sure``), the turn is doubted instead, as a
statement Smart Turn doubts: it ends after a statement's doubt (700 ms), past a
0.6 s hesitation, and speech before that withdraws the reply unheard.
"""

from __future__ import annotations

import pytest

from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from duplex_orchestrator.events import TtsEnd, VadState
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import (
    END_FRAMES,
    PAUSE_FRAMES,
    FixedTurnModel,
    feed,
    only_the_whole_turns_reply_is_heard,
    session_with,
    silence,
)
from tests.unit.test_statement_doubt import (
    HESITATION_FRAMES,
    STATEMENT_DOUBT_FRAMES,
    sounds_at_a_statements_doubt,
)

DOUBTED, INCOMPLETE = Verdict.DOUBTED, Verdict.INCOMPLETE


@pytest.mark.parametrize(
    ("mode", "text", "probability", "unmarked_sure", "verdict"),
    [
        ("transcript+smart-turn", "10 of clubs", 0.99, 0.95, DOUBTED),
        ("transcript+smart-turn", "Call a taxi, please", 0.95, 0.95, DOUBTED),  # at it
        ("transcript+smart-turn", "10 of clubs", 0.9, 0.95, INCOMPLETE),  # not sure enough
        ("transcript+smart-turn", "10 of clubs", None, 0.95, INCOMPLETE),  # not answered
        ("transcript+smart-turn", "10 of clubs", 0.99, 0.0, INCOMPLETE),  # 0: never
        # Words that stay unfinished with a full stop, or end on a comma or dots.
        ("transcript+smart-turn", "I would like to order", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", "Can you book me a flight to", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", "I need a taxi and", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", "10 of clubs,", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", "10 of clubs...", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", "", 0.99, 0.95, INCOMPLETE),
        ("transcript+smart-turn", None, 0.99, 0.95, INCOMPLETE),
        # Only where both judge: the words alone have no sound to be sure of.
        ("transcript", "10 of clubs", None, 0.95, INCOMPLETE),
    ],
)  # fmt: skip
def test_words_without_their_mark_are_doubted_where_smart_turn_is_sure(
    mode: str, text: str | None, probability: float | None, unmarked_sure: float, verdict: Verdict
) -> None:
    policy = EndOfTurn(mode, unmarked_sure=unmarked_sure)  # type: ignore[arg-type]
    assert policy.decide(text, probability) is verdict


def test_such_a_turn_waits_a_statements_doubt() -> None:
    assert EndOfTurn().doubts_long("10 of clubs", 0.99)


def test_the_certainty_is_configured_as_a_probability() -> None:
    assert build_config({"dev": True}).end_of_turn_unmarked_sure == 0.95
    assert (
        build_config({"dev": True, "end_of_turn_unmarked_sure": 0}).end_of_turn_unmarked_sure == 0
    )
    with pytest.raises(ConfigError, match="end_of_turn_unmarked_sure"):
        build_config({"dev": True, "end_of_turn_unmarked_sure": 1.5})


async def test_a_command_without_its_mark_is_answered_after_a_statements_doubt() -> None:
    """Smart Turn is sure of "10 of clubs": the reply is prepared at the pause, silent
    past a 0.6 s hesitation, and sounds at a statement's doubt, not the full second."""
    ears, model = Ears(), FixedTurnModel(0.99)
    ears.words = "10 of clubs"
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await sounds_at_a_statements_doubt(session, io, worker)
    await session.close()


async def test_without_smart_turns_certainty_it_waits_the_full_silence() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "10 of clubs"
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(STATEMENT_DOUBT_FRAMES + 5), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]  # still the user's turn
    assert worker.texts == []  # no reply prepared for it
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    await session.close()


async def test_speech_before_the_doubt_ends_continues_the_turn_unheard() -> None:
    ears, model = Ears(), FixedTurnModel(0.99)
    ears.words = "8 of spades"
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(HESITATION_FRAMES), realtime=True)  # a 0.6 s hesitation
    await eventually(lambda: bool(worker.texts), every_s=0.005)  # the reply is under way
    ears.words = "8 of spades, 4 of clubs."
    await feed(session, voiced(0.4))  # ... and the user goes on
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)
    await only_the_whole_turns_reply_is_heard(io, ears, heard_s=0.6 + 0.4)
    await session.close()
