"""A statement whose pitch has not fallen as this user's do is doubted (``prosody``).

Its words may read as complete, and Smart Turn and Whisper may agree, where a
person only hesitates ("I need to pick up. … the kids"). The session learns how
far this user's pitch falls at a statement's end; a statement ending well above
that is doubted, and its reply waits for a statement's doubt (700 ms), past a
0.6 s hesitation. Until it has heard three, it takes a fall most voices make.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator import judging
from duplex_orchestrator.app import end_of_turn
from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from duplex_orchestrator.events import TtsEnd, TtsStart
from duplex_orchestrator.session import VoiceSession
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.support.session_io import Recorded
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import PAUSE_FRAMES, FixedTurnModel, feed, session_with, silence
from tests.unit.test_patience import past_continue_window
from tests.unit.test_statement_doubt import (
    HESITATION_FRAMES,
    STATEMENT_DOUBT_FRAMES,
    turn_ends,
)

COMPLETE, DOUBTED, INCOMPLETE = Verdict.COMPLETE, Verdict.DOUBTED, Verdict.INCOMPLETE
FALLING_HZ, LEVEL_HZ = 120.0, 180.0
"""A statement's end: from 180 Hz down 7 semitones, or level (a hesitation)."""


@pytest.mark.parametrize(
    ("text", "above_usual_st", "pitch_rise_st", "verdict"),
    [
        ("I need to pick up.", 3.0, 3.0, DOUBTED),
        ("I need to pick up.", 2.9, 3.0, COMPLETE),
        ("I need to pick up.", None, 3.0, COMPLETE),  # not known yet
        ("I need to pick up.", 9.0, 0.0, COMPLETE),  # 0: off
        ("Stop the music!", 4.0, 3.0, DOUBTED),
        ("Is it true?", 9.0, 3.0, COMPLETE),  # a question may end high
        ("I need to pick up and", 9.0, 3.0, INCOMPLETE),
    ],
)
def test_a_statement_ending_above_the_users_usual_end_is_doubted(
    text: str, above_usual_st: float | None, pitch_rise_st: float, verdict: Verdict
) -> None:
    policy = EndOfTurn(pitch_rise_st=pitch_rise_st)
    assert policy.decide(text, 0.9, 0.95, None, above_usual_st) is verdict


def test_the_first_usual_fall_is_configured_in_semitones_or_off() -> None:
    assert end_of_turn(build_config({"dev": True})).pitch_first_fall_st == -3.5
    for off in ("off", "OFF", None):
        config = build_config({"dev": True, "end_of_turn_pitch_first_fall_st": off})
        expected = None if off is not None else -3.5  # a flag not given: the default
        assert end_of_turn(config).pitch_first_fall_st == expected
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_pitch_first_fall_st": 2})  # a rise
    assert "end_of_turn_pitch_first_fall_st" in str(bad.value)
    parser = orchestrator_parser()
    cases: list[tuple[str, float | str]] = [("-4", -4.0), ("off", "off")]
    for given, parsed in cases:
        args = parser.parse_args(["--end-of-turn-pitch-first-fall-st", given])
        assert args.end_of_turn_pitch_first_fall_st == parsed
        config = build_config(vars(args) | {"dev": True})
        assert config.end_of_turn_pitch_first_fall_st == (None if given == "off" else -4.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--end-of-turn-pitch-first-fall-st", "low"])


def test_the_pitch_rise_is_configured_in_semitones() -> None:
    assert end_of_turn(build_config({"dev": True})).pitch_rise_st == 3.0
    config = build_config({"dev": True, "end_of_turn_pitch_rise_st": 0})
    assert end_of_turn(config).pitch_rise_st == 0.0
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_pitch_rise_st": -1})
    assert "end_of_turn_pitch_rise_st" in str(bad.value)
    args = orchestrator_parser().parse_args(["--end-of-turn-pitch-rise-st", "4.5"])
    assert args.end_of_turn_pitch_rise_st == 4.5


def pitch_doubts() -> float:
    return REGISTRY.get_sample_value("duplex_pitch_doubts_total") or 0.0


async def under_way(worker: FakeWorker, texts_before: int) -> None:
    """The turn ended: its reply's text is reaching the worker."""
    await eventually(lambda: len(worker.texts) > texts_before, every_s=0.005)


async def statement(
    session: VoiceSession, io: Recorded, worker: FakeWorker, ending_hz: float
) -> int:
    """A statement the words, Whisper and Smart Turn all call complete: the silence
    (frames) after which its reply first sounded."""
    replies = len(io.of(TtsStart))
    texts = len(worker.texts)
    await feed(session, voiced(1.0, ending_hz))
    await feed(session, silence(PAUSE_FRAMES), realtime=True)
    await under_way(worker, texts)
    silent = PAUSE_FRAMES
    while len(io.of(TtsStart)) == replies and silent < 60:
        await feed(session, silence(1), realtime=True)
        silent += 1
    await io.wait_for(TtsEnd, replies + 1)
    await past_continue_window()
    return silent


async def test_a_users_first_statement_ending_level_waits_for_a_statements_doubt() -> None:
    """Before the session knows the user, their statement's end is judged against a
    fall most voices make (``--end-of-turn-pitch-first-fall-st``)."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up the kids.", 0.95
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, pitch_first_fall_st=-3.5)
    by_pitch = pitch_doubts()
    try:
        assert await statement(session, io, worker, LEVEL_HZ) >= STATEMENT_DOUBT_FRAMES
        assert pitch_doubts() == by_pitch + 1
        assert await statement(session, io, worker, FALLING_HZ) < HESITATION_FRAMES
        assert pitch_doubts() == by_pitch + 1
    finally:
        await session.close()


async def test_a_user_known_to_end_level_is_no_longer_doubted_for_it() -> None:
    """A voice that hardly falls at a full stop is doubted at first, not once the
    session has heard three of its statements: its own end is then the usual."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up the kids.", 0.95
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, pitch_first_fall_st=-3.5)
    try:
        waits = [await statement(session, io, worker, LEVEL_HZ) for _ in range(4)]
        assert all(wait >= STATEMENT_DOUBT_FRAMES for wait in waits[:3])
        assert waits[3] < HESITATION_FRAMES
    finally:
        await session.close()


async def test_after_three_falling_statements_a_level_one_waits_for_a_statements_doubt() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up the kids.", 0.95
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, pitch_first_fall_st=None)
    doubted = turn_ends("judged_after_doubt")
    by_pitch = pitch_doubts()
    try:
        # Unknown yet, and no first usual fall: a level end is answered at the pause,
        # and learned from.
        assert await statement(session, io, worker, LEVEL_HZ) < HESITATION_FRAMES
        for _ in range(3):
            assert await statement(session, io, worker, FALLING_HZ) < HESITATION_FRAMES
        # The median of four (one level, three falling) is a fall: now a level end
        # is doubted, and its reply waits past a hesitation.
        assert await statement(session, io, worker, LEVEL_HZ) >= STATEMENT_DOUBT_FRAMES
        assert turn_ends("judged_after_doubt") == doubted + 1
        assert pitch_doubts() == by_pitch + 1
        assert await statement(session, io, worker, FALLING_HZ) < HESITATION_FRAMES
        assert pitch_doubts() == by_pitch + 1
    finally:
        await session.close()


async def test_with_the_pitch_judge_off_a_level_statement_ends_at_the_pause() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up the kids.", 0.95
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, pitch_rise_st=0)
    try:
        for _ in range(3):
            await statement(session, io, worker, FALLING_HZ)
        assert await statement(session, io, worker, LEVEL_HZ) < HESITATION_FRAMES
    finally:
        await session.close()


async def test_a_turn_the_user_went_on_with_teaches_nothing_of_their_ends() -> None:
    """Three falling "ends" the user went on after (each turn then closing as a
    question) were not their ends: the session still knows nothing of them, and (no
    first usual fall) a level statement is answered at the pause."""
    ears, model = Ears(), FixedTurnModel(0.9)
    worker = FakeWorker()
    session, io = await session_with(
        ears, model, worker, patience_turns=0, pitch_first_fall_st=None
    )
    try:
        for _ in range(3):
            ears.words, ears.ends_here = "I need to pick up.", 0.95
            texts = len(worker.texts)
            await feed(session, voiced(1.0, FALLING_HZ))
            await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
            await under_way(worker, texts)
            ears.words = "I need to pick up. Can you take the kids?"
            await feed(session, voiced(0.6))  # ... the user goes on
            await feed(session, silence(60))
            await io.wait_for(TtsEnd, len(io.of(TtsEnd)) + 1)
            await past_continue_window()
        assert sum(not end.interrupted for end in io.of(TtsEnd)) == 3
        ears.words = "I need to pick up the kids."
        assert await statement(session, io, worker, LEVEL_HZ) < HESITATION_FRAMES
    finally:
        await session.close()


async def test_until_the_habit_can_judge_its_measure_does_not_hold_the_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tracker's first call imports it (~0.25 s; more on a loaded CPU, where a
    reply waiting for it let the user's next words miss the turn's continue window):
    while the session knows too few of the user's statements to judge (and takes no
    first usual fall), the reply does not wait for the measure, which is learned
    from when it comes."""
    measures = iter([(0.8, -5.0), (0.8, -5.0), (0.8, -5.0), (0.0, 0.0)])

    def slow_tracker(audio: np.ndarray, sample_rate: int) -> float:
        delay_s, fall = next(measures)
        time.sleep(delay_s)
        return fall

    monkeypatch.setattr(judging, "final_fall_st", slow_tracker)
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "I need to pick up the kids.", 0.95
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker, pitch_first_fall_st=None)
    by_pitch = pitch_doubts()
    try:
        for _ in range(3):  # answered at the pause: 0.8 s is 40 frames
            assert await statement(session, io, worker, FALLING_HZ) < HESITATION_FRAMES
            await asyncio.sleep(0.8)  # the measure lands, and is learned
        assert await statement(session, io, worker, FALLING_HZ) >= STATEMENT_DOUBT_FRAMES
        assert pitch_doubts() == by_pitch + 1  # 0 against the usual -5: doubted
    finally:
        await session.close()
