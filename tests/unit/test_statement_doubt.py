"""A statement Whisper doubts, and the longer doubt a statement gets.

Cut where a person hesitates, a statement's first half is often a sentence in
its own right ("I need to pick up."): the rules read it complete, and so may
Smart Turn. Whisper's language model still expects more words there more
often than after a complete one, so below ``EndOfTurn.statement_end`` the turn
is doubted; and a doubted statement waits longer than a doubted question
(``Services.statement_doubt_frames``), past a hesitation of 0.6 s.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator.app import end_of_turn
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from duplex_orchestrator.events import TtsEnd, TtsStart, VadState
from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.session import Services, VoiceSession
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.session_io import Recorded
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import (
    DOUBT_FRAMES,
    PAUSE_FRAMES,
    FixedTurnModel,
    feed,
    session_with,
    silence,
)

COMPLETE, DOUBTED, INCOMPLETE = Verdict.COMPLETE, Verdict.DOUBTED, Verdict.INCOMPLETE
STATEMENT_DOUBT_FRAMES = Services.statement_doubt_frames  # 700 ms, the session's default
HESITATION_FRAMES = 30  # 600 ms: longer than a question's doubt, shorter than a statement's


@pytest.mark.parametrize(
    ("mode", "text", "probability", "ends_here", "statement_end", "verdict"),
    [
        ("transcript+smart-turn", "I need to pick up.", 0.9, 0.6, 0.75, DOUBTED),
        ("transcript+smart-turn", "I need to pick up.", 0.9, 0.75, 0.75, COMPLETE),  # at it
        ("transcript+smart-turn", "I need to pick up.", 0.9, None, 0.75, COMPLETE),  # unsaid
        ("transcript+smart-turn", "I need to pick up.", 0.9, 0.6, 0.0, COMPLETE),  # 0: off
        ("transcript+smart-turn", "I need to pick up.", 0.1, 0.9, 0.75, DOUBTED),  # Smart Turn
        ("transcript+smart-turn", "Stop the music!", 0.9, 0.5, 0.75, DOUBTED),
        ("transcript+smart-turn", "I need to pick up and", 0.9, 0.6, 0.75, INCOMPLETE),
        # A question Whisper doubts is not complete at all (``question_end``).
        ("transcript+smart-turn", "Is it true?", 0.9, 0.6, 0.75, INCOMPLETE),
        ("transcript+smart-turn", "Is it true?", 0.9, 0.9, 0.75, COMPLETE),
        ("transcript", "I need to pick up.", None, 0.6, 0.75, DOUBTED),  # the words alone
        ("transcript", "I need to pick up.", None, 0.9, 0.75, COMPLETE),
        ("smart-turn", "I need to pick up.", 0.9, 0.1, 0.75, COMPLETE),  # words not a judge
        ("silence", "I need to pick up.", 0.9, 0.9, 0.75, INCOMPLETE),
    ],
)  # fmt: skip
def test_a_statement_whisper_expected_more_words_after_is_doubted(
    mode: str,
    text: str,
    probability: float | None,
    ends_here: float | None,
    statement_end: float,
    verdict: Verdict,
) -> None:
    policy = EndOfTurn(mode, statement_end=statement_end)  # type: ignore[arg-type]
    assert policy.decide(text, probability, ends_here) is verdict


def test_a_question_closed_with_a_full_stop_is_judged_as_a_question() -> None:
    """Whisper sometimes closes a question with a full stop. Its words still ask: no
    statement's doubt at that stop, no statement's pitch (a question's rises), and a
    doubt from Smart Turn waits a question's silence, not a statement's."""
    policy = EndOfTurn()
    asked = "Can you tell me about the weather tomorrow."
    told = "I would like the weather for tomorrow."
    assert policy.decide(asked, 0.9, ends_here=0.6) is COMPLETE
    assert policy.decide(told, 0.9, ends_here=0.6) is DOUBTED
    assert policy.decide(asked, 0.9, ends_here=0.9, above_usual_st=5.0) is COMPLETE
    assert policy.decide(told, 0.9, ends_here=0.9, above_usual_st=5.0) is DOUBTED
    assert policy.decide(asked, 0.2, ends_here=0.9) is DOUBTED
    assert not policy.doubts_long(asked, 0.2)
    assert policy.doubts_long(told, 0.2)


@pytest.mark.parametrize(
    ("words", "frames"),
    [
        ("I need to pick up.", 35),
        ("Stop the music!", 35),
        ('She said "stop."', 35),
        ("Is it true?", 25),
        ("Is it true", 25),  # no mark: never ended at a pause; the shorter one
        (None, 25),  # the words are not in
    ],
)
def test_a_statement_is_doubted_longer_than_a_question(words: str | None, frames: int) -> None:
    services = Services(
        FakeRegistry(FakeWorker()), Ears(), EchoBridge(), "mock",
        doubt_frames=25, statement_doubt_frames=35,
    )  # fmt: skip
    assert services.doubt_frames_for(words) == frames


def turn_ends(by: str) -> float:
    return REGISTRY.get_sample_value("duplex_turn_ends_total", {"by": by}) or 0.0


@pytest.mark.parametrize("mode", ["transcript+smart-turn", "transcript"])
async def test_a_statement_whisper_doubts_sounds_after_the_statements_doubt(mode: str) -> None:
    """Smart Turn is sure (or not asked), the words read complete, but Whisper expected
    more after the full stop: the turn ends at the pause provisionally, and its reply
    sounds only once the silence reaches a statement's doubt."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up.", 0.5
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, mode=mode)  # type: ignore[arg-type]
    await sounds_at_a_statements_doubt(session, io, worker)
    await session.close()


async def sounds_at_a_statements_doubt(
    session: VoiceSession, io: Recorded, worker: FakeWorker
) -> None:
    """The turn spoken next ends at the pause, provisionally: its reply is prepared there,
    silent past a 600 ms hesitation (longer than a question's doubt), and sounds whole at
    a statement's doubt (``judged_after_doubt``)."""
    before = turn_ends("judged_after_doubt")
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]  # at the pause
    await eventually(lambda: bool(worker.texts), every_s=0.005)  # the reply is under way ...
    await feed(session, silence(HESITATION_FRAMES - PAUSE_FRAMES - 5), realtime=True)
    assert io.frames == []  # ... and silent past the hesitation
    assert io.of(TtsStart) == []
    await feed(session, silence(STATEMENT_DOUBT_FRAMES - HESITATION_FRAMES))
    (end,) = await io.wait_for(TtsEnd)
    assert not end.interrupted
    assert len(io.frames) == end.frames > 0
    assert turn_ends("judged_after_doubt") == before + 1


@pytest.mark.parametrize("ends_here", [None, 0.5])  # Smart Turn's doubt, or Whisper's too
async def test_a_hesitation_after_a_doubted_statement_goes_on_unheard(
    ends_here: float | None,
) -> None:
    """A 600 ms hesitation after "I need to pick up.": longer than a question's doubt,
    shorter than a statement's, so the user's going on continues the turn before a
    sound of its first reply was heard."""
    ears, model = Ears(), FixedTurnModel(0.1)
    ears.words, ears.ends_here = "I need to pick up.", ends_here
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(HESITATION_FRAMES), realtime=True)
    assert HESITATION_FRAMES > DOUBT_FRAMES  # a question would have sounded by now
    await eventually(lambda: bool(worker.texts), every_s=0.005)
    ears.words, ears.ends_here = "I need to pick up my daughter from school.", 0.95
    await feed(session, voiced(0.4))  # the user goes on
    await feed(session, silence(STATEMENT_DOUBT_FRAMES + 5))
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert ends[0].frames == 0  # not a sound of the first reply
    assert len(io.frames) == ends[1].frames > 0
    await session.close()


def test_the_statements_doubt_is_configured_and_reaches_the_policy() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_statement_doubt_ms": 200})  # the pause's
    assert "end_of_turn_statement_doubt_ms (200) must be longer than" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_statement_end": 1.2})
    assert "end_of_turn_statement_end" in str(bad.value)
    config = build_config({"dev": True})
    assert config.end_of_turn_statement_doubt_ms == 700
    assert end_of_turn(config).statement_end == 0.75
    config = build_config({"dev": True, "end_of_turn_statement_end": 0})
    assert end_of_turn(config).statement_end == 0


@pytest.mark.parametrize(
    ("text", "probability", "sure_unfinished", "long"),
    [
        ("Can you turn the volume up?", 0.01, 0.03, True),  # "... volume, uh": sure
        ("Can you turn the volume up?", 0.03, 0.03, False),  # at it
        ("Can you turn the volume up?", 0.2, 0.03, False),  # doubted, not sure
        ("Can you turn the volume up?", None, 0.03, False),  # Smart Turn did not answer
        ("Can you turn the volume up?", 0.01, 0.0, False),  # 0: never
        ("I need to pick up.", 0.9, 0.03, True),  # a statement's doubt is always long
    ],
)
def test_a_question_smart_turn_is_sure_is_unfinished_waits_a_statements_doubt(
    text: str, probability: float | None, sure_unfinished: float, long: bool
) -> None:
    assert EndOfTurn(sure_unfinished=sure_unfinished).doubts_long(text, probability) is long


async def test_a_question_cut_at_a_filler_goes_on_unheard_after_a_long_hesitation() -> None:
    """ "Can you turn the volume, uh ... down a bit?": Whisper hears "Can you turn the
    volume up?", which reads complete, and Smart Turn is sure it is not (0.01). A
    question's doubt (500 ms) would answer within a 600 ms hesitation; a question
    Smart Turn is this sure of waits a statement's (700 ms), and stays silent."""
    ears, model = Ears(), FixedTurnModel(0.01)
    ears.words, ears.ends_here = "Can you turn the volume up?", 0.97
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    await eventually(lambda: bool(worker.texts), every_s=0.005)  # the reply is under way ...
    await feed(session, silence(STATEMENT_DOUBT_FRAMES - PAUSE_FRAMES - 7), realtime=True)
    assert io.frames == []  # ... and silent past a question's doubt, to a statement's
    assert io.of(TtsStart) == []
    await feed(session, silence(2))
    (end,) = await io.wait_for(TtsEnd)
    assert len(io.frames) == end.frames > 0
    await session.close()


async def test_a_question_smart_turn_only_doubts_sounds_after_a_questions_doubt() -> None:
    ears, model = Ears(), FixedTurnModel(0.2)
    ears.words, ears.ends_here = "Can you turn the volume up?", 0.97
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(HESITATION_FRAMES - 2), realtime=True)
    await eventually(lambda: bool(io.frames), every_s=0.005)  # before 600 ms of silence
    await session.close()


def test_the_sure_unfinished_threshold_is_checked_and_reaches_the_policy() -> None:
    assert end_of_turn(build_config({"dev": True})).sure_unfinished == pytest.approx(0.03)
    flags = {"dev": True, "end_of_turn_question_sure_unfinished": 0}
    assert end_of_turn(build_config(flags)).sure_unfinished == 0
    with pytest.raises(ConfigError, match="end_of_turn_question_sure_unfinished"):
        build_config({"dev": True, "end_of_turn_question_sure_unfinished": 0.9})
