"""A listener's acknowledgement over a reply ("uh-huh", "okay") lets the reply go on.

Pure decisions (``turns.is_backchannel``, ``Turns``) and the session core with fake
ears and a fake worker, on the judged path (the acknowledgement's words read complete,
so its turn ends at the pause).
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.events import BargeIn, TtsEnd, TtsStart
from duplex_orchestrator.protocol import Say
from duplex_orchestrator.turns import Action, State, Turns, is_backchannel
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


@pytest.mark.parametrize(
    ("text", "backchannel"),
    [
        ("Mm-hmm.", True),
        ("Mhm.", True),
        ("Uh-huh.", True),
        ("Okay.", True),
        ("Okay, okay.", True),
        ("Yeah, yeah, yeah.", True),
        ("Oh, I see.", True),
        ("All right.", True),
        ("Right.", True),
        ("Got it.", True),
        ("Okay?", False),  # a question asks for an answer
        ("Yes.", False),  # an answer may be meant: it stops the reply
        ("No.", False),
        ("Wait.", False),
        ("Stop.", False),
        ("Okay, stop.", False),
        ("Yeah, but what about tomorrow?", False),
        ("Okay, thanks.", False),
        ("Okay, 2.", False),  # a number in digits is words too: an answer
        ("Yeah, 10 of them.", False),
        ("Yeah yeah yeah yeah", False),  # more than a listener's three words
        ("", False),
        ("[noise]", False),
    ],
)
def test_an_acknowledgement_is_told_from_words_that_take_the_turn(
    text: str, backchannel: bool
) -> None:
    assert is_backchannel(text) is backchannel


def barged_in(backchannels: bool = True) -> Turns:
    turns = Turns(lambda: 0.0, backchannels=backchannels)
    turns.utterance("Tell me a story.")
    turns.reply_started()
    turns.speech_started()
    assert turns.state is State.BARGED_IN
    return turns


def test_an_acknowledgement_over_a_reply_resumes_it_unanswered() -> None:
    turns = barged_in()
    decision = turns.utterance("Mm-hmm.")
    assert decision.actions == (Action.RESUME_TTS,)
    assert decision.backchannel
    assert decision.barge_in_outcome == "backchannel"
    assert turns.state is State.SPEAKING


def test_with_backchannels_off_an_acknowledgement_stops_the_reply_and_is_answered() -> None:
    turns = barged_in(backchannels=False)
    decision = turns.utterance("Mm-hmm.")
    assert decision.actions == (Action.STOP_TTS, Action.REPLY)
    assert decision.barge_in_outcome == "stop"


def test_noise_and_words_keep_their_outcomes() -> None:
    assert barged_in().utterance("").barge_in_outcome == "resume"
    assert barged_in().utterance("Wait, stop.").barge_in_outcome == "stop"


@pytest.mark.parametrize(
    ("text", "goes_on"), [("", True), ("[cough]", True), ("Okay", True), ("Wait", False)]
)
def test_what_lets_a_reply_go_on(text: str, goes_on: bool) -> None:
    assert barged_in().lets_reply_go_on(text) is goes_on
    assert barged_in(backchannels=False).lets_reply_go_on(text) is (goes_on and text != "Okay")


def test_an_acknowledgement_while_listening_is_a_turn() -> None:
    turns = Turns(lambda: 0.0)
    assert not turns.lets_reply_go_on("Okay.")
    assert turns.utterance("Okay.").actions == (Action.REPLY,)


def barge_ins(outcome: str) -> float:
    return REGISTRY.get_sample_value("duplex_barge_in_total", {"outcome": outcome}) or 0.0


async def test_an_acknowledgement_over_a_reply_lets_it_go_on_and_later_words_stop_it() -> None:
    """ "Mm-hmm." reads complete, so its turn ends at the pause; it resumes the reply and
    is not answered. Words after it are a new barge-in, not that turn going on."""
    before = barge_ins("backchannel")
    ears = Ears()
    worker = FakeWorker(frames_per_chunk=1000, frame_s=0.004)  # a reply of 4 s
    session, io = await session_with(ears, FixedTurnModel(0.9), worker)
    await session.handle(Say("A long reply."))
    await io.wait_for(TtsStart)
    ears.words = "Mm-hmm."
    await feed(session, voiced(0.4))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    await io.wait_for(BargeIn, 2)
    assert [(b.action, b.flush) for b in io.of(BargeIn)] == [("pause", True), ("resume", None)]
    assert worker.controls == ["pause", "resume"]
    assert barge_ins("backchannel") == before + 1
    assert session._replies.history == []  # not a turn of the conversation
    ears.words = "Wait, what about tomorrow?"
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES + 5))
    await io.wait_for(TtsStart, 2)
    assert [(b.action, b.flush) for b in io.of(BargeIn)] == [
        ("pause", True),
        ("resume", None),
        ("pause", True),
        ("stop", None),
    ]
    (end,) = io.of(TtsEnd)
    assert end.turn == 1
    assert end.interrupted
    assert worker.controls == ["pause", "resume", "pause", "stop"]
    assert session._replies.history[0] == {"role": "user", "content": "Wait, what about tomorrow?"}
    await session.close()


@pytest.mark.parametrize("heard", ["Okay", ""])
async def test_an_unclosed_acknowledgement_or_noise_resumes_the_reply_at_the_pause(
    heard: str,
) -> None:
    """Whisper often writes a lone "Okay" without its full stop, which as a turn waits
    for the full silence, and hears no words in a noise the VAD took for speech; over
    a reply either is settled at the pause."""
    ears = Ears()
    worker = FakeWorker(frames_per_chunk=1000, frame_s=0.004)
    session, io = await session_with(ears, FixedTurnModel(0.9), worker)
    await session.handle(Say("A long reply."))
    await io.wait_for(TtsStart)
    ears.words = heard
    await feed(session, voiced(0.4))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)  # 300 ms: not 1 s
    await io.wait_for(BargeIn, 2)  # the feed stops short of the full silence
    assert [b.action for b in io.of(BargeIn)] == ["pause", "resume"]
    assert session.turns.state.value == "speaking"
    await session.close()


def test_the_flag_takes_resume_or_stop() -> None:
    def parsed(*argv: str) -> dict[str, object]:
        flags = vars(orchestrator_parser().parse_args(list(argv)))
        return {k: v for k, v in flags.items() if k != "config"} | {"dev": True}

    assert build_config(parsed()).barge_in_backchannels == "resume"
    assert build_config(parsed("--barge-in-backchannels", "stop")).barge_in_backchannels == "stop"
    with pytest.raises(ConfigError, match="barge_in_backchannels"):
        build_config({"dev": True, "barge_in_backchannels": "sometimes"})
