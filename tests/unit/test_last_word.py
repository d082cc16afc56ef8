"""A last word Whisper wrote without hearing it: the sound under it, and the policy.

Cut where a person hesitates ("Could you send an email to ..."), Whisper often
completes the phrase ("... to me?"). Its alignment of the words on the audio
puts such a word where the sound has already stopped; a word that was said has
sound under it. The pure pieces, the policy, and a session with fake ears.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from duplex_orchestrator.app import end_of_turn
from duplex_orchestrator.asr import Transcript, last_word_start
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from duplex_orchestrator.events import Asr, TtsEnd, TtsStart, VadState
from duplex_orchestrator.session import VoiceSession
from duplex_orchestrator.vad import last_sound_s
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.support.session_io import Recorded
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import (
    DOUBT_FRAMES,
    END_FRAMES,
    PAUSE_FRAMES,
    FixedTurnModel,
    LateTurnModel,
    feed,
    session_with,
    silence,
    turn_ends,
)
from tests.unit.test_patience import sounds_after

COMPLETE, INCOMPLETE = Verdict.COMPLETE, Verdict.INCOMPLETE


def test_the_last_sound_is_the_end_of_the_last_frame_above_the_speech_floor() -> None:
    tone = (0.1 * np.sin(np.arange(8000) * 0.2)).astype(np.float32)  # 0.5 s at -23 dBFS
    faint = np.full(3200, 10 ** (-60 / 20), np.float32)  # 0.2 s at -60 dBFS: no speech
    audio = np.concatenate([np.zeros(1600, np.float32), tone, faint, np.zeros(3200, np.float32)])
    assert last_sound_s(audio) == pytest.approx(0.6)
    assert last_sound_s((audio * 32767).astype(np.int16)) == pytest.approx(0.6)  # int16 alike
    assert last_sound_s(audio, floor_dbfs=-70) == pytest.approx(0.8)  # the faint part counts
    assert last_sound_s(np.zeros(16000, np.int16)) == 0.0
    assert last_sound_s(np.zeros(100, np.int16)) == 0.0  # shorter than a frame


def test_the_last_word_is_the_last_aligned_word_not_its_punctuation() -> None:
    aligned = [
        {"word": " Send", "start": 0.3},
        {"word": " to", "start": 0.9},
        {"word": " me", "start": 1.26},
        {"word": ".", "start": 1.4},
    ]
    assert last_word_start(aligned) == 1.26
    assert last_word_start([{"word": "?", "start": 0.2}]) is None
    assert last_word_start([]) is None


def test_the_sound_under_the_last_word_needs_both_the_alignment_and_the_sound() -> None:
    heard = Transcript("Send a message to me.", 0.2, 1.5, last_word_s=1.26, sound_end_s=1.28)
    assert heard.last_word_sound_s == pytest.approx(0.02)
    assert Transcript("Send a message to me.", 0.2, 1.5).last_word_sound_s is None


@pytest.mark.parametrize(
    ("mode", "text", "under_last", "last_word_min_s", "verdict"),
    [
        ("transcript+smart-turn", "Send a message to me.", 0.02, 0.08, INCOMPLETE),
        ("transcript+smart-turn", "Send a message to me.", -0.05, 0.08, INCOMPLETE),  # after
        ("transcript+smart-turn", "Send a message to me.", 0.08, 0.08, COMPLETE),
        ("transcript+smart-turn", "Send a message to me.", 0.3, 0.08, COMPLETE),
        ("transcript+smart-turn", "Send a message to me.", None, 0.08, COMPLETE),  # not aligned
        ("transcript+smart-turn", "Send a message to me.", 0.02, 0.0, COMPLETE),  # 0: off
        ("transcript+smart-turn", "Could you send an email to me?", 0.01, 0.08, INCOMPLETE),
        ("transcript", "Send a message to me.", 0.02, 0.08, INCOMPLETE),
        ("transcript", "Send a message to me.", 0.3, 0.08, COMPLETE),
        ("smart-turn", "Send a message to me.", 0.02, 0.08, COMPLETE),  # words not a judge
    ],
)  # fmt: skip
def test_a_last_word_with_no_sound_under_it_keeps_the_turn_open(
    mode: str, text: str, under_last: float | None, last_word_min_s: float, verdict: Verdict
) -> None:
    policy = EndOfTurn(mode, last_word_min_s=last_word_min_s)  # type: ignore[arg-type]
    assert policy.decide(text, 0.9, None, under_last) is verdict


def test_the_words_are_aligned_only_where_that_can_change_the_verdict() -> None:
    policy = EndOfTurn()
    assert policy.wants_last_word("Send a message to me.", None)
    assert policy.wants_last_word("Is it true?", 0.95)
    assert not policy.wants_last_word("Send a message to", None)  # the rules say not yet
    assert not policy.wants_last_word("Is it possible to change?", 0.4)  # Whisper doubts
    assert not EndOfTurn(last_word_min_s=0).wants_last_word("Send a message to me.", None)
    assert not EndOfTurn("smart-turn").wants_last_word("Send a message to me.", None)


async def test_a_last_word_whisper_did_not_hear_sounds_only_after_the_full_silence() -> None:
    """Whisper completed the phrase at a hesitation: the words read complete to the
    rules, so the turn ends provisionally at the pause and its reply is prepared while
    the words are aligned; the aligned last word has no sound under it, so the words
    did not read complete after all, and the reply makes no sound before the full
    silence, whatever Smart Turn says (counted as ended by ``silence``)."""
    ears, model, worker = Ears(), FixedTurnModel(0.9), FakeWorker()
    ears.words, ears.last_word_sound_s = "Could you send an email to me?", 0.01
    session, io = await session_with(ears, model, worker)
    by_silence = turn_ends("silence")
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    waited = PAUSE_FRAMES + await sounds_after(session, io, worker)
    assert waited >= END_FRAMES - 1  # the full silence (to a frame), not a doubt's
    assert ears.aligned[:1] == [True]  # the judged transcript came with an aligner
    assert ears.alignments == 1
    assert turn_ends("silence") == by_silence + 1
    (end,) = await io.wait_for(TtsEnd)
    assert not end.interrupted
    await session.close()


async def aligning(
    words: str, last_word_sound_s: float
) -> tuple[VoiceSession, Recorded, Ears, threading.Event]:
    """A session whose turn ended provisionally on ``words`` at the pause, its reply
    already under way (the worker has its text) while the words' alignment is held
    back until the returned gate is set (the caller sets it, also when it fails)."""
    ears, worker, gate = Ears(), FakeWorker(), threading.Event()
    ears.words, ears.last_word_sound_s, ears.alignment_gate = words, last_word_sound_s, gate
    session, io = await session_with(ears, FixedTurnModel(0.9), worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    await eventually(lambda: bool(worker.texts), 5, every_s=0.005)
    assert ears.alignments == 0  # the reply is prepared while the words are aligned
    return session, io, ears, gate


async def test_a_held_reply_whose_last_word_is_found_unsaid_waits_for_the_full_silence() -> None:
    """The alignment answers after the reply's first frame is already held."""
    session, io, ears, gate = await aligning("Could you send an email to me?", 0.01)
    gate.set()
    await eventually(lambda: ears.alignments == 1, 5, every_s=0.005)
    waited = PAUSE_FRAMES + await sounds_after_released(session, io)
    assert waited >= END_FRAMES - 1
    await session.close()


async def test_until_the_alignment_answers_only_the_full_silence_confirms_the_turn() -> None:
    """The reply is prepared while the words are aligned (a decoder pass, 20-50 ms on
    a CPU), not after. Under load the alignment may wait behind other sessions'
    transcriptions; the doubt's silence does not confirm words whose last word is not
    yet placed (before, the turn did not even end on them); the alignment's answer
    does, at once."""
    session, io, _, gate = await aligning("Could you send an email to my boss?", 0.3)
    try:
        await feed(session, silence(DOUBT_FRAMES + 5 - PAUSE_FRAMES), realtime=True)
        assert not io.of(TtsStart)  # past the doubt's silence, still held
    finally:
        gate.set()
    frames = await sounds_after_released(session, io)
    assert frames < 10  # its last word has its sound: it speaks now
    await session.close()


async def test_an_unsaid_last_word_holds_the_turn_while_smart_turn_has_not_answered() -> None:
    """Smart Turn is late (a loaded CPU) and the alignment found the last word unsaid:
    the doubt's silence does not confirm the turn, only the full silence does."""
    ears, model, worker = Ears(), LateTurnModel(0.9), FakeWorker()
    ears.words, ears.last_word_sound_s = "Could you send an email to me?", 0.01
    session, io = await session_with(ears, model, worker)
    by_silence = turn_ends("silence")
    try:
        await feed(session, voiced(0.6))
        await feed(session, silence(PAUSE_FRAMES))
        waited = PAUSE_FRAMES + await sounds_after(session, io, worker)
        assert waited >= END_FRAMES - 1
        assert model.calls == 0  # still thinking
        assert turn_ends("silence") == by_silence + 1
    finally:
        model.answer.set()
        await session.close()


async def test_a_user_who_goes_on_after_an_unheard_last_word_hears_nothing_of_the_reply() -> None:
    ears, model, worker = Ears(), FixedTurnModel(0.9), FakeWorker()
    ears.words, ears.last_word_sound_s = "Could you send an email to me?", 0.01
    session, io = await session_with(ears, model, worker)
    continued = turn_ends("continued")
    await feed(session, voiced(0.6))
    await feed(session, silence(30), realtime=True)  # a 600 ms hesitation
    ears.words, ears.last_word_sound_s = "Could you send an email to my boss?", 0.3
    await feed(session, voiced(0.4))  # the user goes on
    assert turn_ends("continued") == continued + 1
    assert not io.of(TtsStart)  # withdrawn unheard
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsStart)
    finals = [e.text for e in io.of(Asr) if e.final]
    assert finals[-1] == "Could you send an email to my boss?"  # answered whole, once
    await session.close()


async def sounds_after_released(session: VoiceSession, io: Recorded) -> int:
    """Silence, a frame at a time, until the reply's first sound: how many frames."""
    for frames in range(END_FRAMES):
        if io.of(TtsStart):
            return frames
        await feed(session, silence(1), realtime=True)
    return END_FRAMES


async def test_a_turn_whose_last_word_was_heard_ends_at_the_pause() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.last_word_sound_s = "Could you send an email to my boss?", 0.3
    session, io = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert ears.aligned[0]
    await session.close()


async def test_words_that_already_read_unfinished_are_not_aligned() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "Could you send an email to"
    session, _ = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    assert ears.aligned[:1] == [False]  # no alignment pass for them
    assert not any(ears.aligned)
    assert ears.alignments == 0
    await session.close()


def test_the_last_word_threshold_is_checked_and_reaches_the_policy() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_last_word_ms": -1})
    assert "end_of_turn_last_word_ms" in str(bad.value)
    config = build_config({"dev": True, "end_of_turn_last_word_ms": 120})
    assert end_of_turn(config).last_word_min_s == pytest.approx(0.12)
    assert end_of_turn(build_config({"dev": True})).last_word_min_s == pytest.approx(0.08)
