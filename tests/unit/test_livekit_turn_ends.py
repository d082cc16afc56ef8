"""How a LiveKit turn ends besides its verdict's silence: patience learned from false
ends, and the client's ``end_turn``."""

from __future__ import annotations

import asyncio

import pytest

from duplex_livekit import DuplexTurnDetector
from duplex_livekit.turns import LIKELY
from duplex_orchestrator.endpoint import Verdict
from tests.support.livekit_turns import (
    POLICY,
    SILENCES,
    Clock,
    Model,
    Words,
    fake_detector,
    say,
    silence_of,
    user_said,
)


async def _ended(detector: DuplexTurnDetector, clock: Clock, text: str, ends_here: float) -> None:
    """The user says ``text``; the detector ends the turn when its silence has passed."""
    say(detector, clock, 1.0, text, ends_here)
    assert await detector.predict_end_of_turn(user_said(text)) == LIKELY


async def test_words_soon_after_a_turn_ended_teach_the_users_patience() -> None:
    """A false end: the user went on 0.8 s after a statement judged complete (AgentSession
    took the rest as a new turn, cutting in on its reply). This user's statements wait
    that pause and a margin from then on; their whole questions do not."""
    detector, clock = fake_detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    assert detector.latest is not None
    assert detector.latest.wait_s == 0
    clock.now += 0.6  # the pause after the speech: 0.2 s to the VAD's end, then this
    say(detector, clock, 1.0, "With my manager at noon.", 0.97)
    clock.now += 2.0
    say(detector, clock, 1.0, "I need a taxi.", 0.97)
    assert detector.latest.wait_s == pytest.approx((40 + 5) * 0.02)
    clock.now += 2.0
    say(detector, clock, 1.0, "What time is it?", 0.97)
    assert detector.latest.wait_s == 0


async def test_words_after_a_false_end_are_judged_with_the_turn_they_go_on() -> None:
    """Soon after a turn was ended the user goes on: Whisper hears both, and the judges
    see the whole sentence (its second half alone, "in Paris tomorrow?", is no whole
    question), as when a turn goes on before its verdict's silence has run out.
    AgentSession, which takes the words as a new turn, is asked about them alone."""
    detector, clock = fake_detector()
    await _ended(detector, clock, "Is it going to rain?", 0.97)
    ended = detector.latest
    clock.now += 0.4
    words = Words([("Is it going to rain in Paris tomorrow?", 0.97)])
    detector.speech_started()
    clock.now += 1.5
    transcript = detector.hear(silence_of(1.5), words, ended_at=clock.now)
    assert words.heard == [16000 + 24000]
    assert transcript.text == "in Paris tomorrow?"
    assert detector.latest is not None
    assert detector.latest.text == "Is it going to rain in Paris tomorrow?"
    assert detector.latest.said == "in Paris tomorrow?"
    assert detector.latest.verdict is Verdict.COMPLETE
    said = user_said("Is it going to rain?", "in Paris tomorrow?")
    assert await detector.predict_end_of_turn(said) == LIKELY
    assert clock.slept == []
    assert detector.take_joined() is ended


async def test_an_acknowledgement_soon_after_a_turn_ended_is_heard_alone() -> None:
    """ "Okay." soon after the turn ended acknowledges the reply: heard with the turn
    before it, it adds only an acknowledgement, so it is heard again alone, a turn of
    its own; nothing is joined or learned."""
    detector, clock = fake_detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    clock.now += 0.6
    words = Words([("I have a meeting. Okay.", 0.97), ("Okay.", 0.99)])
    detector.speech_started()
    clock.now += 0.5
    transcript = detector.hear(silence_of(0.5), words, ended_at=clock.now)
    assert words.heard == [16000 + 8000, 8000]
    assert transcript.text == "Okay."
    assert detector.latest is not None
    assert (detector.latest.text, detector.latest.said) == ("Okay.", "Okay.")
    assert detector.take_joined() is None
    assert detector.patience.hold_frames() == 0


@pytest.mark.parametrize(
    ("after_s", "said", "heard"),
    [
        # an acknowledgement of the reply, not the turn going on
        (0.6, ["I have a meeting. Okay.", "Okay."], [32000, 16000]),
        (1.6, ["With my manager at noon."], [16000]),  # past the window: a new turn
    ],
)
async def test_an_acknowledgement_or_a_later_turn_teaches_nothing(
    after_s: float, said: list[str], heard: list[int]
) -> None:
    detector, clock = fake_detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    words = Words([(text, 0.97) for text in said])
    clock.now += after_s
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    assert words.heard == heard
    clock.now += 2.0
    say(detector, clock, 1.0, "I need a taxi.", 0.97)
    assert detector.latest is not None
    assert detector.latest.wait_s == 0
    assert detector.patience.hold_frames() == 0


async def test_speech_before_the_turn_was_answered_over_goes_on_with_it() -> None:
    """Judged complete (no silence to wait), but Whisper was slow: the user spoke again
    before AgentSession was told the turn is over. It is the same turn, heard whole."""
    detector, clock = fake_detector()
    words = Words([("I have a meeting.", 0.97), ("I have a meeting with my manager.", 0.97)])
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    clock.now += 0.1  # 0.3 s after the speech: past the verdict's silence (none)
    detector.speech_started()
    clock.now += 1.0
    transcript = detector.hear(silence_of(1.0), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]
    assert transcript.text == "with my manager."
    clock.now += 3.0  # answered over this time, and later speech is a new turn
    assert (
        await detector.predict_end_of_turn(user_said("I have a meeting. with my manager."))
        == LIKELY
    )
    detector.speech_started()
    clock.now += 0.5
    detector.hear(silence_of(0.5), Words([("Thanks.", 0.99)]), ended_at=clock.now)
    assert detector.latest is not None
    assert detector.latest.said == "Thanks."


async def test_the_client_ending_the_turn_answers_without_the_silence() -> None:
    """duplex's ``end_turn`` (a push-to-talk button released) while a doubt's silence
    runs: "likely" now, not when the silence has passed."""
    clock = Clock()

    async def never(seconds: float) -> None:  # only the client's end can end this wait
        await asyncio.Event().wait()

    detector = DuplexTurnDetector(POLICY, SILENCES, Model(), clock=clock, sleep=never)
    assert not detector.end_turn()  # no turn open: nothing to end
    say(detector, clock, 1.0, "I would like to order.", 0.9)  # words that want more: 2 s
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said("I would like to order.")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not asked.done()
    assert detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY
    assert not detector.end_turn()  # answered: that turn is over
    # a new turn after it waits its own silence again
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), Words([("I need to pick up.", 0.5)]), ended_at=clock.now)
    again = asyncio.create_task(detector.predict_end_of_turn(user_said("I need to pick up.")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not again.done()
    again.cancel()


async def test_an_utterance_the_client_ended_is_judged_on_its_words_at_once() -> None:
    """Ended by ``end_turn``, not by the VAD's pause: its speech went on until its end,
    so speech begun inside it (its last 200 ms) is not taken for speech after the
    verdict, which would wait for words that never come."""
    detector, clock = fake_detector()
    detector.speech_started()
    clock.now += 1.5
    detector.speech_started(onset=False)  # a short silence inside, 0.1 s before the end
    clock.now += 0.1
    assert detector.end_turn()
    words = Words([("I would like to order.", 0.9)])
    detector.hear(silence_of(1.6), words, ended_at=clock.now + 0.02)  # the next frame
    said = user_said("I would like to order.")
    assert await asyncio.wait_for(detector.predict_end_of_turn(said), timeout=5) == LIKELY
    assert clock.slept == []


async def test_a_false_end_is_seen_when_both_vad_streams_report_the_onset() -> None:
    """AgentSession runs two VAD streams, and each tells the detector of the onset; the
    second report is the same onset, not a new one that forgets the turn just ended."""
    detector, clock = fake_detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    ended = detector.latest
    clock.now += 0.6
    detector.speech_started()
    clock.now += 0.01
    detector.speech_started()  # the other stream's report
    clock.now += 1.0
    detector.hear(silence_of(1.0), Words([("With my manager at noon.", 0.97)]), clock.now)
    assert detector.take_joined() is ended
    assert detector.patience.hold_frames() > 0


async def test_speech_soon_after_the_client_ended_the_turn_is_no_false_end() -> None:
    """The client said the turn was over (``end_turn``): words half a second later
    are a new turn, not the turn going on; nothing is joined or learned."""
    detector, clock = fake_detector()
    say(detector, clock, 1.0, "I have a meeting.", 0.5)
    detector.end_turn()
    assert await detector.predict_end_of_turn(user_said("I have a meeting.")) == LIKELY
    clock.now += 0.5
    say(detector, clock, 1.0, "With my manager at noon.", 0.97)
    assert detector.take_joined() is None
    assert detector.patience.hold_frames() == 0
