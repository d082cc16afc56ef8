"""``{"type": "end_turn"}``: the client says the user's turn is over, and it is answered now.

A push-to-talk client, or one with its own VAD, stops sending audio when its
user stops speaking: the silence that ends a turn never comes. Its
``end_turn`` ends the turn on the audio so far (as LiveKit's
``commit_user_turn`` and OpenAI Realtime's ``input_audio_buffer.commit`` do), or
confirms a turn the judges ended at a pause; with nothing heard it is a clear
error, and the session goes on. With ``"turn_detection": "manual"`` in ``start``
(LiveKit's manual turn detection) only ``end_turn`` ends a turn: a push-to-talk
user who pauses while holding the button is never cut off.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator.events import Asr, BargeIn, Ready, TtsEnd, TtsStart, VadState
from duplex_orchestrator.protocol import EndTurn, ProtocolError
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.unit.test_end_of_turn import (
    END_FRAMES,
    PAUSE_FRAMES,
    FixedTurnModel,
    feed,
    session_with,
    silence,
)


def ended_by_client() -> float:
    return REGISTRY.get_sample_value("duplex_turn_ends_total", {"by": "client"}) or 0.0


@pytest.mark.parametrize("silent_frames", [0, 3], ids=["mid-word", "after-a-gap"])
async def test_an_open_turn_is_answered_at_once_with_no_silence_after_it(
    silent_frames: int,
) -> None:
    """Unfinished words (no judge ends them at a pause) and no more audio: without
    ``end_turn`` this turn would wait for a silence that never comes."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "I would like to order a large"
    session, io = await session_with(ears, model)
    before = ended_by_client()
    await feed(session, voiced(0.6))
    await feed(session, silence(silent_frames))
    await session.handle(EndTurn())
    (end,) = await io.wait_for(TtsEnd, timeout_s=5)
    assert not end.interrupted
    assert end.frames > 0
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert [e.text for e in io.of(Asr) if e.final] == ["I would like to order a large"]
    assert ears.heard[-1] >= 0.6  # the whole utterance, not a part of it
    assert ended_by_client() == before + 1
    await session.close()


async def test_a_turn_held_at_a_pause_is_confirmed_and_cannot_be_continued() -> None:
    """Smart Turn doubts the turn: its reply waits for the doubt's silence, which a
    client that stopped sending never gives (the hold's limit here is 10 s). After
    ``end_turn`` it sounds, and speech then is a barge-in over it, not more of the turn."""
    ears, model = Ears(), FixedTurnModel(0.1)
    ears.words = "What time is it?"
    worker = FakeWorker(frames_per_chunk=50, frame_s=0.02)  # a second a word
    session, io = await session_with(ears, model, worker, sound_hold_max_s=10.0)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 2), realtime=True)
    await io.wait_for(VadState, count=2, timeout_s=2)  # the turn ended at the pause, provisionally
    assert io.of(TtsStart) == []  # its sound held for the doubt's silence
    before = ended_by_client()
    await session.handle(EndTurn())
    await io.wait_for(TtsStart, timeout_s=2)
    assert ended_by_client() == before + 1
    await feed(session, voiced(0.3))  # the user speaks over the reply
    await io.wait_for(BargeIn, timeout_s=2)
    assert io.of(BargeIn)[0].action == "pause"  # a barge-in, not the turn going on
    await session.close()


async def test_end_turn_with_nothing_heard_is_an_error_and_the_session_goes_on() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model)
    with pytest.raises(ProtocolError) as refused:
        await session.handle(EndTurn())
    assert refused.value.code == "no_speech"
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)
    await io.wait_for(TtsEnd, timeout_s=5)  # ended by the judges before the client's end_turn
    await session.handle(EndTurn())  # a race, not a mistake: no error
    with pytest.raises(ProtocolError):
        await session.handle(EndTurn())  # but nothing was heard since that one
    await session.close()


async def test_with_manual_turns_no_pause_or_silence_ends_a_turn_only_end_turn() -> None:
    """Words every judge calls complete, a pause, more words, twice the silence that
    ends a turn: still one open turn, never judged (Smart Turn is not asked); then
    ``end_turn`` answers all of it."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model, turn_detection="manual")
    assert io.of(Ready)[0].turn_detection == "manual"
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 15), realtime=True)  # judged complete, if auto
    ears.words = "What time is it? And the date?"
    await feed(session, voiced(0.6))
    await feed(session, silence(2 * END_FRAMES))
    await asyncio.sleep(0.2)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]
    assert io.of(TtsStart) == []
    assert model.calls == 0
    await session.handle(EndTurn())
    (end,) = await io.wait_for(TtsEnd, timeout_s=5)
    assert not end.interrupted
    assert [e.text for e in io.of(Asr) if e.final] == ["What time is it? And the date?"]
    assert ears.heard[-1] >= 1.2 + PAUSE_FRAMES * 0.02  # both parts and the pause
    await session.close()


async def test_manual_turns_still_hear_a_barge_in_and_answer_it_at_end_turn() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    worker = FakeWorker(frames_per_chunk=50, frame_s=0.02)  # a second a word
    session, io = await session_with(ears, model, worker, turn_detection="manual")
    await feed(session, voiced(0.6))
    await session.handle(EndTurn())
    await io.wait_for(TtsStart, timeout_s=2)
    ears.words = "Stop please."
    await feed(session, voiced(0.4))  # over the reply: paused at once
    await io.wait_for(BargeIn, timeout_s=2)
    await feed(session, silence(2 * END_FRAMES))
    await asyncio.sleep(0.2)
    assert [b.action for b in io.of(BargeIn)] == ["pause"]  # waits for the end_turn
    await session.handle(EndTurn())
    ends = await io.wait_for(TtsEnd, count=2, timeout_s=5)
    assert ends[0].interrupted
    assert [b.action for b in io.of(BargeIn)] == ["pause", "stop"]
    await session.close()
