"""What the LiveKit turn detector hears: the turn so far, and the work started at the gap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from duplex_livekit import DuplexTurnDetector
from duplex_livekit.turns import LIKELY
from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
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
    speculating,
    user_said,
)
from tests.support.waiting import eventually


async def test_smart_turn_hears_the_turn_so_far_and_a_new_turn_alone() -> None:
    model = Model(probability_of_complete=0.2)
    detector, clock = fake_detector(model)
    said = Words(
        [
            ("Can you book a table?", 0.97),  # complete, yet doubted: 0.5 s
            ("Can you book a table for two?", 0.97),  # said 0.1 s after: the same turn
            ("Thanks.", 0.99),  # after the turn ended: a new one
        ]
    )
    detector.speech_started()
    detector.hear(silence_of(1.0), said, ended_at=clock.now)
    clock.now += 0.1
    detector.speech_started()
    clock.now += 0.5
    detector.hear(silence_of(0.5), said, ended_at=clock.now)
    clock.now += 3.0
    detector.speech_started()
    clock.now += 0.5
    detector.hear(silence_of(0.5), said, ended_at=clock.now)
    assert model.heard == [16000, 24000, 8000]
    assert said.heard == [16000, 24000, 8000]  # Whisper too: the turn so far


async def test_a_turn_that_goes_on_is_judged_on_its_whole_sentence() -> None:
    """Whisper hears the turn so far: its second half is judged with the first before it
    ("the weather tomorrow." alone is a doubted statement), and AgentSession, which
    appends each utterance's words, is handed the new ones only."""
    detector, clock = fake_detector()
    words = Words(
        [
            ("Can you tell me about?", 0.5),  # Whisper doubts it: not complete
            ("Can you tell me about the weather tomorrow?", 0.97),
        ]
    )
    detector.speech_started()
    clock.now += 1.2
    first = detector.hear(silence_of(1.2), words, ended_at=clock.now)
    assert first.text == "Can you tell me about?"
    clock.now += 0.4  # a hesitation: 0.6 s after the speech
    detector.speech_started()
    clock.now += 1.3
    second = detector.hear(silence_of(1.3), words, ended_at=clock.now)
    assert second.text == "the weather tomorrow?"
    assert words.heard == [19200, 40000]
    assert detector.latest is not None
    assert detector.latest.text == "Can you tell me about the weather tomorrow?"
    assert detector.latest.verdict is Verdict.COMPLETE
    said = user_said("Can you tell me about? the weather tomorrow?")
    assert await detector.predict_end_of_turn(said) == LIKELY
    assert clock.slept == []


async def test_a_new_turn_is_heard_alone() -> None:
    detector, clock = fake_detector()
    words = Words([("What time is it?", 0.97), ("Thanks.", 0.99)])
    say(detector, clock, 1.0, "What time is it?", 0.97)
    clock.now += 2.0  # the reply; then the user speaks again
    detector.speech_started()
    clock.now += 0.5
    assert detector.hear(silence_of(0.5), words, ended_at=clock.now).text == "What time is it?"
    assert words.heard == [8000]


async def test_a_turn_that_goes_on_adds_no_words_for_a_cough() -> None:
    detector, clock = fake_detector()
    words = Words([("I need to pick up.", 0.5), ("I need to pick up.", 0.5)])
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    clock.now += 0.2
    detector.speech_started()  # a cough inside the doubt's silence
    clock.now += 0.4
    assert detector.hear(silence_of(0.4), words, ended_at=clock.now).text == ""
    assert detector.latest is not None
    assert detector.latest.said == "I need to pick up."
    assert detector.latest.spoke_until == pytest.approx(clock.now - 0.2)


async def test_words_that_read_unfinished_are_not_given_to_smart_turn() -> None:
    model = Model()
    detector, clock = fake_detector(model)
    detector.hear(silence_of(1.0), Words([("I would like to order.", 0.9)]), ended_at=clock.now)
    detector.hear(silence_of(1.0), Words([("Could you book a table for", None)]), clock.now)
    assert model.heard == []


async def test_the_gaps_transcript_is_the_utterances_when_no_speech_followed() -> None:
    detector, clock, words = speculating([("What is the capital of France?", 0.97)])
    detector.speech_started()
    clock.now += 2.0
    detector.speculate(silence_of(2.0))  # the gap: 60 ms of silence
    clock.now += 0.14
    transcript = detector.hear(silence_of(2.2), words, ended_at=clock.now)  # the pause
    assert transcript.text == "What is the capital of France?"
    assert words.heard == [32000]  # one pass, on the gap's audio
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.COMPLETE


async def test_speech_after_the_gap_makes_its_transcript_stale() -> None:
    said: list[tuple[str, float | None]] = [("I would like", 0.5), ("I would like a pizza.", 0.9)]
    detector, clock, words = speculating(said)
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(silence_of(1.0))
    clock.now += 0.1
    detector.speech_started(onset=False)  # the user goes on inside the utterance
    assert not words.wanted[0]()  # Whisper drops it at its next step
    clock.now += 1.0
    transcript = detector.hear(silence_of(2.0), words, ended_at=clock.now)
    assert transcript.text == "I would like a pizza."
    assert words.heard == [16000, 32000]


async def test_no_speculation_without_an_idle_worker_or_twice_in_one_silence() -> None:
    detector, clock, words = speculating([("Hello.", 0.99), ("Hello.", 0.99)])
    words.idle_workers = 0
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(silence_of(1.0))
    words.idle_workers = 1
    detector.speculate(silence_of(1.0))  # a worker is free now
    detector.speculate(silence_of(1.0))  # the other VAD stream's gap: already under way
    detector.hear(silence_of(1.2), words, ended_at=clock.now)
    assert words.heard == [16000]


async def test_the_gap_in_a_turn_that_goes_on_hears_the_turn_so_far() -> None:
    said: list[tuple[str, float | None]] = [
        ("I would like to order.", 0.9),
        ("I would like to order a large pizza.", 0.95),
    ]
    detector, clock, words = speculating(said)
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)  # wants more: 2 s
    clock.now += 0.4
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(silence_of(1.0))  # the second half's gap
    clock.now += 0.14
    transcript = detector.hear(silence_of(1.2), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]  # the gap's pass, on both halves, is the pause's
    assert transcript.text == "a large pizza."
    assert detector.latest is not None
    assert detector.latest.text == "I would like to order a large pizza."


async def test_the_gap_after_a_false_end_hears_the_turn_it_goes_on() -> None:
    """Soon after a turn was ended the user goes on: Whisper at the gap hears both, and
    that pass is the pause's."""
    said: list[tuple[str, float | None]] = [
        ("I have a meeting.", 0.97),
        ("I have a meeting with my manager.", 0.97),
    ]
    detector, clock, words = speculating(said)
    detector.speech_started()
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    assert await detector.predict_end_of_turn(user_said("I have a meeting.")) == LIKELY
    clock.now += 0.5
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(silence_of(1.0))
    clock.now += 0.14
    transcript = detector.hear(silence_of(1.2), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]
    assert transcript.text == "with my manager."
    assert detector.take_joined() is not None


@dataclass
class Heard:
    """A recognizer that knows the words by the length of the audio; ``meanwhile`` runs
    while it hears the first audio (the user speaks on while Whisper is slow)."""

    words: dict[int, str]
    meanwhile: Callable[[], None]
    heard: list[int] = field(default_factory=list)

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        self.heard.append(len(audio16k))
        if len(self.heard) == 1:
            self.meanwhile()
        return Transcript(self.words[len(audio16k)], 0.1, len(audio16k) / 16000, ends_here=0.95)


async def test_the_gaps_transcript_of_another_turn_is_not_claimed() -> None:
    """Whisper is slow on the first half: the second half's gap comes before the verdict
    on it, and hears that half alone. The pause, judging the turn that goes on, hears the
    whole turn instead of claiming it."""
    clock = Clock()
    first, second = silence_of(1.0), silence_of(1.2)

    def user_goes_on() -> None:
        clock.now += 0.4
        detector.speech_started()
        clock.now += 1.0
        detector.speculate(second[:16000])

    recognizer = Heard(
        {
            16000: "I would like to order.",
            len(first) + len(second): "I would like to order a large pizza.",
        },
        user_goes_on,
    )
    detector = DuplexTurnDetector(
        POLICY, SILENCES, Model(), recognizer=recognizer, clock=clock, sleep=clock.sleep
    )
    detector.speech_started()
    clock.now += 1.0
    detector.hear(first, recognizer, ended_at=clock.now)
    clock.now += 0.14
    transcript = detector.hear(second, recognizer, ended_at=clock.now)
    assert recognizer.heard == [16000, 16000, 35200]  # the half alone was not claimed
    assert transcript.text == "a large pizza."


async def test_smart_turn_is_asked_at_the_gap_beside_whisper() -> None:
    """Its answer is the pause's when no speech followed: asked once, on the turn as it
    stands at the pause (the 140 ms of silence still to come as zeros)."""
    model = Model()
    clock = Clock()
    words = Words([("What is the capital of France?", 0.97)])
    detector = DuplexTurnDetector(
        POLICY, SILENCES, model, recognizer=words, clock=clock, sleep=clock.sleep
    )
    detector.speech_started()
    clock.now += 2.0
    detector.speculate(silence_of(2.0))
    await eventually(lambda: model.heard == [32000 + 2240], timeout_s=5)  # before the pause
    clock.now += 0.14
    detector.hear(silence_of(2.14), words, ended_at=clock.now)
    assert model.heard == [32000 + 2240]  # not asked again
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.COMPLETE


async def test_smart_turn_is_asked_again_when_speech_followed_the_gap() -> None:
    model = Model()
    clock = Clock()
    words = Words([("What is", 0.5), ("What is the capital of France?", 0.97)])
    detector = DuplexTurnDetector(
        POLICY, SILENCES, model, recognizer=words, clock=clock, sleep=clock.sleep
    )
    detector.speech_started()
    clock.now += 0.5
    detector.speculate(silence_of(0.5))
    clock.now += 0.1
    detector.speech_started(onset=False)
    clock.now += 1.5
    detector.hear(silence_of(2.1), words, ended_at=clock.now)
    await eventually(lambda: len(model.heard) == 2, timeout_s=5)
    assert sorted(model.heard) == [8000 + 2240, 33600]
