"""A session learns how long its user pauses inside a turn, and waits that long.

The judges read one moment of one turn; a user who went on after a turn was
ended at a pause (a false end), or with ``--end-of-turn-patience-from pauses``
after any pause inside a turn, is likely to again. After that the reply to a
statement ended at a pause (the judges call its first half complete most often)
sounds only once the silence is longer than the pause the user went on after
(``patience.Patience``); a question judged complete still answers at once.
"""

from __future__ import annotations

import asyncio

import pytest

from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn
from duplex_orchestrator.events import Asr, TtsEnd, TtsStart, VadState
from duplex_orchestrator.patience import MARGIN_FRAMES, Patience
from duplex_orchestrator.session import VoiceSession
from duplex_orchestrator.turns import State
from duplex_orchestrator.vad import SpeechDetector
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.support.session_io import Recorded
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import (
    END_FRAMES,
    PAUSE_FRAMES,
    FixedTurnModel,
    feed,
    session_with,
    silence,
)
from tests.unit.test_statement_doubt import turn_ends

HESITATION_FRAMES = 30  # 600 ms, the conversation bench's hesitation


@pytest.mark.parametrize(
    ("turns", "pauses", "hold"),
    [
        (6, [[]], 0),  # no pause heard: no hold
        (6, [[30]], 30 + MARGIN_FRAMES),  # this turn's own pause
        (6, [[12, 30, 20]], 30 + MARGIN_FRAMES),  # its longest
        (6, [[30], [], [], [], [], []], 30 + MARGIN_FRAMES),  # the sixth latest: remembered
        (6, [[30], [], [], [], [], [], []], 0),  # the seventh: forgotten
        (2, [[30], [15], []], 15 + MARGIN_FRAMES),
        (6, [[48]], 50),  # never past the silence that ends any turn
        (0, [[30]], 0),  # off
    ],
)
def test_the_hold_is_the_longest_pause_of_the_latest_turns(
    turns: int, pauses: list[list[int]], hold: int
) -> None:
    patience = Patience(turns, max_frames=50)
    for turn in pauses:  # each turn: the pauses the user went on after, then its end
        for pause in turn:
            patience.went_on(pause)
        patience.turn_ended()
    assert patience.hold_frames() == hold


def test_a_turn_that_goes_on_after_its_end_is_one_turn() -> None:
    patience = Patience(turns=2, max_frames=50)
    patience.went_on(20)
    patience.turn_ended()
    patience.turn_ended()  # ended at a pause ...
    patience.turn_reopened()  # ... and went on: still two turns remembered
    patience.went_on(25)
    patience.turn_ended()
    assert patience.hold_frames() == 25 + MARGIN_FRAMES
    patience.turn_ended()
    patience.turn_ended()
    assert patience.hold_frames() == 0


def test_a_false_end_holds_the_ending_turn_and_exactly_the_configured_turns_after_it() -> None:
    """``turn_ended`` answers for the turn it ends, before that turn is remembered."""
    patience = Patience(turns=2, max_frames=50)
    assert patience.turn_ended() == 0
    patience.turn_ended()  # ended at a pause ...
    patience.turn_reopened()  # ... and the user went on after 600 ms
    patience.went_on(HESITATION_FRAMES)
    held = HESITATION_FRAMES + MARGIN_FRAMES
    assert [patience.turn_ended() for _ in range(4)] == [held, held, held, 0]


def test_the_detector_reports_the_longest_pause_speech_followed() -> None:
    detector = SpeechDetector(onset_frames=2, end_frames=40, pause_frames=10)
    for is_speech in [True] * 5 + [False] * 12 + [True] * 3 + [False] * 7 + [True] * 2:
        detector.push(is_speech, 0.0)
    assert detector.longest_pause == 12
    for _ in range(40):  # the end of the turn: no speech followed, not a pause
        detector.push(False, 0.0)
    assert detector.longest_pause == 12
    for _ in range(2):  # the next turn's onset
        detector.push(True, 0.0)
    assert detector.longest_pause == 0


async def hesitant_turn(session: VoiceSession, ears: Ears, io: Recorded) -> None:
    """A statement with a 600 ms hesitation the judges rightly call incomplete."""
    ears.words, ears.ends_here = "I would like to order", None
    await feed(session, voiced(0.6))
    await feed(session, silence(HESITATION_FRAMES), realtime=True)
    ears.words, ears.ends_here = "I would like to order a large pizza.", 0.95
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd)
    await past_continue_window()


async def past_continue_window() -> None:
    """Wait until speech would start a new turn, not continue the last (its silence
    was fed faster than real time)."""
    await asyncio.sleep(EndOfTurn("transcript").continue_window_ms / 1000 + 0.05)


async def sounds_after(session: VoiceSession, io: Recorded, worker: FakeWorker) -> int:
    """Silence after the next turn, a frame at a time once its reply is under way: how
    much of it passed (frames, from the pause) before the reply's first sound. Counted
    in frames fed, not time: how long the reply takes to start does not count."""
    starts, texts = len(io.of(TtsStart)), len(worker.texts)
    await eventually(lambda: len(worker.texts) > texts, every_s=0.005)
    for frames in range(END_FRAMES):
        await feed(session, silence(1), realtime=True)
        if len(io.of(TtsStart)) > starts:
            return frames
    return END_FRAMES


@pytest.mark.parametrize(
    ("words", "patience_turns", "from_pauses", "held"),
    [
        ("I need to pick up the kids.", 10, True, True),
        ("What time is it?", 10, True, False),  # a question both judges call complete
        ("I need to pick up the kids.", 0, True, False),  # patience off: as before
        # By default only a false end teaches it: this hesitation was judged right.
        ("I need to pick up the kids.", 10, False, False),
    ],
)
async def test_after_a_hesitation_a_statement_waits_out_the_users_pause(
    words: str, patience_turns: int, from_pauses: bool, held: bool
) -> None:
    ears, worker = Ears(), FakeWorker()
    session, io = await session_with(
        ears,
        FixedTurnModel(0.9),
        worker,
        patience_turns=patience_turns,
        patience_from_pauses=from_pauses,
    )
    await hesitant_turn(session, ears, io)
    before = turn_ends("judged_after_patience")
    ears.words, ears.ends_here = words, 0.95  # the judges leave no doubt
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    waited = PAUSE_FRAMES + await sounds_after(session, io, worker)
    if held:  # past the pause the user went on after, not at the judged pause
        assert waited >= HESITATION_FRAMES
        assert turn_ends("judged_after_patience") == before + 1
    else:
        assert waited < HESITATION_FRAMES - 5
        assert turn_ends("judged_after_patience") == before
    (_, end) = await io.wait_for(TtsEnd, 2)
    assert not end.interrupted
    assert end.frames > 0
    await session.close()


@pytest.mark.parametrize(
    ("words", "probability", "held"),
    [
        ("It is about the budget.", 0.9, True),  # a statement both judges call complete
        ("Is it about the budget?", 0.1, True),  # a question Smart Turn doubts (500 ms)
        ("Is it about the budget?", 0.9, False),  # a question both call complete
    ],
)
async def test_a_user_who_went_on_after_a_reply_began_is_waited_for_next_time(
    words: str, probability: float, held: bool
) -> None:
    """A statement every judge calls complete, answered at the pause: the user goes on
    after 600 ms (the reply is withdrawn). Their next statement, or a doubted question,
    waits that long; a question both judges call complete does not."""
    ears, worker, model = Ears(), FakeWorker(), FixedTurnModel(0.9)
    session, io = await session_with(ears, model, worker)
    ears.words, ears.ends_here = "I have a meeting.", 0.95
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    first = PAUSE_FRAMES + await sounds_after(session, io, worker)
    assert first < HESITATION_FRAMES - 5  # nothing learned yet: answered at the pause
    await feed(session, silence(HESITATION_FRAMES - first), realtime=True)
    ears.words = "I have a meeting with my manager at noon."
    continued = turn_ends("continued")
    await feed(session, voiced(0.4))  # the user goes on
    assert turn_ends("continued") == continued + 1
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd, 2)
    await past_continue_window()
    ears.words, model.value = words, probability
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    waited = PAUSE_FRAMES + await sounds_after(session, io, worker)
    if held:
        assert waited >= HESITATION_FRAMES
    else:
        assert waited < HESITATION_FRAMES - 5
    await session.close()


async def test_a_false_end_holds_as_many_later_turns_as_configured() -> None:
    """With ``--end-of-turn-patience-turns 2`` the two statements after a false end wait
    out the user's pause, the third does not (the session asked its hold only after it
    had counted the ending turn among the remembered ones, so it held one fewer)."""
    ears, worker = Ears(), FakeWorker()
    session, io = await session_with(ears, FixedTurnModel(0.9), worker, patience_turns=2)
    ears.words, ears.ends_here = "I have a meeting.", 0.95
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES))
    first = PAUSE_FRAMES + await sounds_after(session, io, worker)
    await feed(session, silence(HESITATION_FRAMES - first), realtime=True)
    ears.words = "I have a meeting with my manager at noon."
    continued = turn_ends("continued")
    await feed(session, voiced(0.4))  # the user goes on: a false end
    assert turn_ends("continued") == continued + 1
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd, 2)
    waited = []
    for n in range(3):
        await past_continue_window()
        ears.words = f"It is about the budget number {n}."
        ends = len(io.of(TtsEnd))
        await feed(session, voiced(0.6))
        await feed(session, silence(PAUSE_FRAMES))
        waited.append(PAUSE_FRAMES + await sounds_after(session, io, worker))
        await feed(session, silence(END_FRAMES))
        await io.wait_for(TtsEnd, ends + 1)
    assert waited[0] >= HESITATION_FRAMES
    assert waited[1] >= HESITATION_FRAMES
    assert waited[2] < HESITATION_FRAMES - 5
    await session.close()


def test_patience_is_configured() -> None:
    flags = ["--dev", "--end-of-turn-patience-turns", "0", "--end-of-turn-patience-from", "pauses"]
    flags += ["--end-of-turn-patience-max-ms", "1500"]
    args = vars(orchestrator_parser().parse_args(flags))
    args.pop("config")
    config = build_config(args)
    assert config.end_of_turn_patience_turns == 0
    assert config.end_of_turn_patience_from == "pauses"
    assert config.end_of_turn_patience_max_ms == 1500
    config = build_config({"dev": True})
    assert config.end_of_turn_patience_turns == 10
    assert config.end_of_turn_patience_from == "false-ends"
    assert config.end_of_turn_patience_max_ms == 2000
    for field, bad_value in (
        ("end_of_turn_patience_turns", -1),
        ("end_of_turn_patience_max_ms", 4000),
    ):
        with pytest.raises(ConfigError) as bad:
            build_config({"dev": True, field: bad_value})
        assert field in str(bad.value)


LONG_PAUSE_FRAMES = 65  # 1.3 s: a person's pause mid-sentence, longer than the full second


@pytest.mark.parametrize(
    ("after_end", "took", "max_frames", "silence"),
    [
        (15, True, 100, LONG_PAUSE_FRAMES + MARGIN_FRAMES),  # went on 300 ms after the end
        (15, False, 100, 50),  # noise or an "uh-huh": the reply went on, nothing learned
        (25, True, 100, 75 + MARGIN_FRAMES),  # half a second after: still going on
        (26, True, 100, 50),  # later: answering the reply, not going on
        (15, True, 68, 68),  # never past the longest wait configured
        (15, True, 50, 50),  # configured at the full silence: never past it
    ],
)
def test_speech_soon_after_the_full_silence_teaches_a_longer_one(
    after_end: int, took: bool, max_frames: int, silence: int
) -> None:
    patience = Patience(turns=10, max_frames=max_frames)
    patience.turn_ended()
    patience.silence_ended(50)  # the turn ended by the full silence
    for _ in range(after_end + 4):  # the silence after it, then an onset of 4 frames
        patience.silent_frame()
    patience.speech_started(onset_frames=4)
    patience.turn_ended()  # the utterance that began then is over
    pause = patience.resumed_after()
    assert pause == (50 + after_end if after_end <= 25 else None)
    if pause is not None and took:
        patience.went_on_after_end(pause)
    assert patience.silence_frames(50) == silence
    assert patience.resumed_after() is None  # asked once


@pytest.mark.parametrize(
    ("learned", "pause", "silence"),
    [
        (65, 49, 50),  # a pause the full second would not have ended: nothing to renew
        (65, 50, 50 + MARGIN_FRAMES),  # one it would have ended: remembered again
        (65, 65, 65 + MARGIN_FRAMES),
        (0, 65, 50),  # nothing learned: the pause was carried otherwise, it teaches nothing
        (30, 65, 50),  # learned, but no silence past the second: the same
        (65, 80, 50),  # longer than the silence learned: something else carried it
    ],
)
def test_a_pause_past_the_full_silence_renews_what_was_learned(
    learned: int, pause: int, silence: int
) -> None:
    patience = Patience(turns=2, max_frames=100)
    patience.went_on(learned)
    patience.turn_ended()
    for _ in range(3):  # more turns than remembered: only renewals keep it
        patience.went_on_past(pause, end_frames=50)
        patience.turn_ended()
    assert patience.silence_frames(50) == silence


@pytest.mark.parametrize(
    ("frames_sent", "elapsed_s", "soon"),
    [
        (15 + 4, 0.38, True),  # 300 ms of silence sent, 300 ms passed: going on
        (15 + 4, 1.5, False),  # the client sent only part of the silence: a new turn
        (60 + 4, 0.1, False),  # frames sent faster than real time: they count
    ],
)
def test_the_pause_after_the_full_silence_is_the_longer_of_its_frames_and_its_time(
    frames_sent: int, elapsed_s: float, soon: bool
) -> None:
    patience = Patience(turns=10, max_frames=100)
    patience.turn_ended()
    patience.silence_ended(50, last_speech_s=9.0)  # at 10.0 s
    for _ in range(frames_sent):  # the silence sent after it, then an onset of 4 frames
        patience.silent_frame()
    patience.speech_started(onset_frames=4, now_s=10.0 + elapsed_s)
    patience.turn_ended()
    assert (patience.resumed_after() is not None) is soon


def test_only_the_first_onset_after_the_full_silence_counts() -> None:
    patience = Patience(turns=10, max_frames=100)
    patience.turn_ended()
    patience.silence_ended(50)
    patience.speech_started(onset_frames=4)  # a cough: its utterance ended without words
    patience.turn_ended()
    assert patience.resumed_after() is not None
    for _ in range(10):
        patience.silent_frame()
    patience.speech_started(onset_frames=4)  # speech after that is no pause of the turn
    assert patience.resumed_after() is None


@pytest.mark.parametrize(
    ("after_end", "words", "max_frames", "waits"),
    [
        (15, "about how easy we want to make it", 100, True),
        (15, "Uh-huh.", 100, False),  # an acknowledgement: the reply went on
        (40, "about how easy we want to make it", 100, False),  # 800 ms after: a new turn
        (15, "about how easy we want to make it", END_FRAMES, False),  # configured off
    ],
)
async def test_a_user_who_went_on_after_the_full_silence_is_waited_for_longer(
    after_end: int, words: str, max_frames: int, waits: bool
) -> None:
    """A person pauses 1.3 s mid-sentence: the full second ends their turn and its reply
    begins; they go on 300 ms later, and their words stop it. Their next 1.3 s pause
    does not end a turn: the silence that ends their turns is now that pause and a
    margin. Noise, an "uh-huh" or speech that came later teach nothing."""
    ears, worker = Ears(), FakeWorker(frame_s=0.02)
    session, io = await session_with(
        ears, FixedTurnModel(0.9), worker, mode="silence", patience_max_frames=max_frames
    )
    ears.words = "Yeah, we had a long discussion"
    await feed(session, voiced(0.6))
    await feed(session, silence(END_FRAMES))  # the full second ends the turn
    await io.wait_for(TtsStart)
    ears.words = words
    await feed(session, silence(after_end))
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES), realtime=True)
    await io.wait_for(TtsEnd, 2 if waits else 1, timeout_s=5)
    await past_continue_window()
    before = turn_ends("silence_after_patience")
    ears.words = "I didn't even check yesterday"
    ends = len([e for e in io.of(VadState) if e.state == "speech_end"])
    await feed(session, voiced(0.6))
    await feed(session, silence(LONG_PAUSE_FRAMES))
    ended = len([e for e in io.of(VadState) if e.state == "speech_end"]) - ends
    assert ended == (0 if waits else 1)
    ears.words = "I didn't even check yesterday whether it was moving."
    await feed(session, voiced(0.4))
    await feed(session, silence(LONG_PAUSE_FRAMES + MARGIN_FRAMES))
    if waits:  # one turn, ended by the longer silence
        assert turn_ends("silence_after_patience") == before + 1
        await eventually(lambda: [e.text for e in io.of(Asr) if e.final][-1] == ears.words)
    else:
        assert turn_ends("silence_after_patience") == before
    await session.close()


async def teach_a_long_pause(session: VoiceSession, ears: Ears, io: Recorded) -> None:
    """The user pauses 1.3 s mid-sentence: the full second ends their turn and its reply
    begins; they go on 300 ms later and their words stop it. The session learns that
    pause (``test_a_user_who_went_on_after_the_full_silence_is_waited_for_longer``)."""
    ears.words, ears.ends_here = "Yeah, we had a long discussion about", None
    await feed(session, voiced(0.6))
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsStart)
    await feed(session, silence(15))
    ears.words = "how easy we want to make it and"
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES), realtime=True)
    await io.wait_for(TtsEnd, 2, timeout_s=5)
    await quiet_until_the_reply_is_heard(session)


async def quiet_until_the_reply_is_heard(session: VoiceSession) -> None:
    """Silence, as a client sends it, until the reply has played out and the continue
    window is over: the next speech is a new turn, not one that went on."""
    await feed(session, silence(END_FRAMES + 10), realtime=True)
    await eventually(lambda: session.turns.state is State.LISTENING)


async def test_a_statement_is_continued_within_the_users_learned_pause_past_the_window() -> None:
    """A user who pauses 1.3 s: a statement every judge calls complete is held that long,
    and speech 1.28 s after it (past the 1 s continue window) still continues the turn:
    the reply is withdrawn unheard and the whole sentence answered. (The continue window
    used to close first: the held reply sounded at 1 s, and the user's words were taken
    for a barge-in over it.)"""
    ears, worker = Ears(), FakeWorker(frame_s=0.02)
    session, io = await session_with(ears, FixedTurnModel(0.9), worker, patience_max_frames=100)
    await teach_a_long_pause(session, ears, io)
    starts, continued = len(io.of(TtsStart)), turn_ends("continued")
    ears.words, ears.ends_here = "I have a meeting.", 0.95
    await feed(session, voiced(0.6))
    await feed(session, silence(64), realtime=True)  # 1.28 s: within the pause learned
    assert len(io.of(TtsStart)) == starts  # held for the user's pause
    ears.words = "I have a meeting with my manager at noon."
    await feed(session, voiced(0.4))
    assert turn_ends("continued") == continued + 1
    await feed(session, silence(LONG_PAUSE_FRAMES + MARGIN_FRAMES), realtime=True)
    await io.wait_for(TtsStart, starts + 1)
    assert len(io.of(TtsStart)) == starts + 1  # one reply, to the whole sentence
    assert [e.text for e in io.of(Asr) if e.final][-1] == ears.words
    await session.close()


async def test_a_pause_the_learned_silence_carried_is_remembered_again() -> None:
    """A pause learned once is waited for; each turn in which the user went on after it
    (a pause that the silence ending any turn would have ended) renews it, so patience
    does not run out while it is working (with 2 remembered turns, the third such turn
    used to be cut at the full second)."""
    ears, worker = Ears(), FakeWorker(frame_s=0.02)
    session, io = await session_with(
        ears, FixedTurnModel(0.9), worker, patience_turns=2, patience_max_frames=100
    )
    await teach_a_long_pause(session, ears, io)
    for n in range(4):
        before = turn_ends("silence_after_patience")
        ends = len([e for e in io.of(VadState) if e.state == "speech_end"])
        ears.words, ears.ends_here = f"I would like to book number {n} for", None
        await feed(session, voiced(0.6))
        await feed(session, silence(LONG_PAUSE_FRAMES))
        assert len([e for e in io.of(VadState) if e.state == "speech_end"]) == ends, n
        ears.words = f"I would like to book number {n} for a table for two"
        await feed(session, voiced(0.4))
        await feed(session, silence(LONG_PAUSE_FRAMES + MARGIN_FRAMES))
        assert turn_ends("silence_after_patience") == before + 1
        await io.wait_for(TtsEnd, len(io.of(TtsStart)), timeout_s=5)
        await quiet_until_the_reply_is_heard(session)
    assert session._vad.detector.end_frames == LONG_PAUSE_FRAMES + MARGIN_FRAMES
    await session.close()


async def test_a_client_that_sends_nothing_between_turns_teaches_no_pause() -> None:
    """A client that sends audio only while its user speaks: a second after the full
    silence ended their turn, with nothing sent meanwhile, they speak over its reply.
    The frames alone would call that speech 'soon' (none came between); a second has
    passed, so it is a new turn over the reply, and nothing is learned."""
    ears, worker = Ears(), FakeWorker(frame_s=0.02, frames_per_chunk=20)
    session, io = await session_with(
        ears, FixedTurnModel(0.9), worker, mode="silence", patience_max_frames=100
    )
    ears.words = "Yeah, we had a long discussion"
    await feed(session, voiced(0.6))
    await feed(session, silence(END_FRAMES))  # the full second ends the turn
    await io.wait_for(TtsStart)
    await asyncio.sleep(1.0)  # nothing sent
    assert session.turns.state is State.SPEAKING  # the reply still sounds
    ears.words = "What about the budget"
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES), realtime=True)
    await io.wait_for(TtsEnd, 2, timeout_s=10)
    assert [e.text for e in io.of(Asr) if e.final][-1] == ears.words  # answered
    assert session._vad.detector.end_frames == END_FRAMES  # nothing learned
    await session.close()
