"""Words that want more at a pause wait longer than the silence that ends any turn.

"I'd like to book a table for …": no judge, nor the person, takes that for a
whole turn, and a person hesitating there may pause past the second of silence
that ends any turn. Such a pause ends the turn only after
``--end-of-turn-unfinished-ms`` (2 s), as pipecat's and LiveKit's turn models let
an unfinished turn wait (3 s there); every other turn is as before.
"""

from __future__ import annotations

import pytest

from duplex_orchestrator.cli import orchestrator_parser
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import wants_more
from duplex_orchestrator.events import Asr, TtsEnd, VadState
from duplex_orchestrator.vad import SpeechDetector, VadEvent
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.unit.test_end_of_turn import END_FRAMES, FixedTurnModel, feed, session_with, silence
from tests.unit.test_statement_doubt import turn_ends

UNFINISHED_FRAMES = 100  # 2 s
LONG_PAUSE_FRAMES = 65  # 1.3 s


@pytest.mark.parametrize(
    ("text", "wants"),
    [
        ("I'd like to book a table for", True),  # a last word that continues
        ("I'd like to book, um", True),  # a filler after other words
        ("I would like to order.", True),  # a mark after words the rules call unfinished
        ("Could you remind me?", True),
        ("What time does the museum?", True),
        ("I'd like to book a table for two.", False),
        ("I'd like to book a table for 2.", False),  # a number in digits ends it too
        ("Wake me up at 7.", False),
        ("What time is it?", False),
        ("10 of clubs", False),  # only its mark is missing: not this rule's
        ("Yeah, we had a long discussion", False),
        ("Hmm?", False),  # a filler alone may be the whole turn
        ("", False),
    ],
)
def test_words_want_more_by_what_they_say_not_by_a_missing_mark(text: str, wants: bool) -> None:
    assert wants_more(text) is wants


def push(detector: SpeechDetector, speech: bool, frames: int) -> list[VadEvent]:
    events = [detector.push(speech, 0.0) for _ in range(frames)]
    return [e for e in events if e is not None]


def test_a_pause_held_for_more_ends_the_turn_only_after_its_longer_silence() -> None:
    detector = SpeechDetector(onset_frames=2, end_frames=50, pause_frames=10)
    push(detector, True, 5)
    push(detector, False, 10)
    detector.pause_end_frames = 100
    assert VadEvent.SPEECH_END not in push(detector, False, 60)  # past the 50
    push(detector, True, 3)  # speech goes on: the next pause is an ordinary one
    assert detector.pause_end_frames == 0
    assert push(detector, False, 50)[-1] is VadEvent.SPEECH_END
    assert detector.ended_after == 50
    push(detector, True, 5)
    push(detector, False, 10)
    detector.pause_end_frames = 100
    assert push(detector, False, 90)[-1] is VadEvent.SPEECH_END
    assert detector.ended_after == 100
    assert detector.pause_end_frames == 0


async def test_a_long_hesitation_after_words_that_want_more_is_not_cut_off() -> None:
    """ "I'd like to book a table for", 1.3 s, "two.": one turn, answered whole (without
    the longer silence, the second ended it after "for")."""
    ears, worker, model = Ears(), FakeWorker(), FixedTurnModel(0.02)
    session, io = await session_with(ears, model, worker, unfinished_frames=UNFINISHED_FRAMES)
    ears.words = "I'd like to book a table for"
    await feed(session, voiced(0.6))
    await feed(session, silence(LONG_PAUSE_FRAMES), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]  # still the user's turn
    ears.words, ears.ends_here, model.value = "I'd like to book a table for two.", 0.95, 0.9
    await feed(session, voiced(0.4))
    await feed(session, silence(END_FRAMES), realtime=True)
    await io.wait_for(TtsEnd)
    assert [e.text for e in io.of(Asr) if e.final] == [ears.words]
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    await session.close()


@pytest.mark.parametrize(
    ("words", "ends_after", "by"),
    [
        ("I'd like to book a table for", UNFINISHED_FRAMES, "silence_after_unfinished"),
        ("Yeah, we had a long discussion", END_FRAMES, "silence"),  # only its mark missing
        ("I would like to order a large...", UNFINISHED_FRAMES, "silence_after_unfinished"),
    ],
)
async def test_a_turn_that_stops_on_words_that_want_more_ends_after_the_longer_silence(
    words: str, ends_after: int, by: str
) -> None:
    ears, worker = Ears(), FakeWorker()
    session, io = await session_with(
        ears, FixedTurnModel(0.5), worker, unfinished_frames=UNFINISHED_FRAMES
    )
    before = turn_ends(by)
    ears.words = words
    await feed(session, voiced(0.6))
    await feed(session, silence(ends_after - 2), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]
    await feed(session, silence(2))
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert turn_ends(by) == before + 1
    await io.wait_for(TtsEnd)
    # Words that wanted more are no pause the user went on after: nothing learned.
    assert session._vad.detector.end_frames == END_FRAMES
    await session.close()


def test_the_unfinished_silence_is_configured() -> None:
    args = vars(orchestrator_parser().parse_args(["--dev", "--end-of-turn-unfinished-ms", "1500"]))
    args.pop("config")
    assert build_config(args).end_of_turn_unfinished_ms == 1500
    assert build_config({"dev": True}).end_of_turn_unfinished_ms == 2000
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_unfinished_ms": 3500})
    assert "end_of_turn_unfinished_ms" in str(bad.value)
