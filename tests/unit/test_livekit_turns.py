"""duplex's judges as AgentSession's turn detector: each verdict's silence, the wait."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from duplex_livekit import DuplexVAD, TurnSilences, VoiceParts, voice_session
from duplex_livekit.turns import LIKELY, POLL_S, UNLIKELY, WORDS_WAIT_S
from duplex_livekit.verdicts import Measures, silence_after
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from tests.support.fake_ears import voiced
from tests.support.livekit_turns import (
    POLICY,
    SILENCES,
    Model,
    Words,
    fake_detector,
    say,
    silence_of,
    user_said,
)
from tests.unit.test_livekit_parts import _events


@pytest.mark.parametrize(
    ("heard", "verdict", "wait_ms"),
    [
        (Measures("What is the capital of France?", 0.9, 0.97), Verdict.COMPLETE, 0),
        (Measures("Do you think so?", 0.2, 0.97), Verdict.DOUBTED, 500),  # Smart Turn doubts
        (Measures("Can you turn the volume up?", 0.01, 0.97), Verdict.DOUBTED, 700),  # sure not
        (Measures("I need to pick up.", 0.9, 0.5), Verdict.DOUBTED, 700),  # Whisper's doubt
        (Measures("I would like to order", None, None), Verdict.INCOMPLETE, 1000),
        (Measures("I would like to order.", None, 0.9), Verdict.INCOMPLETE, 2000),  # wants more
        (Measures("10 of clubs", 0.97), Verdict.DOUBTED, 700),  # sure, lacking only its mark
        (Measures("10 of clubs", 0.6), Verdict.INCOMPLETE, 1000),
        (Measures("Send a message to me.", 0.9, 0.9, 0.01), Verdict.INCOMPLETE, 1000),  # unsaid
    ],
)
def test_each_verdict_ends_the_turn_after_its_own_silence(
    heard: Measures, verdict: Verdict, wait_ms: int
) -> None:
    assert silence_after(POLICY, SILENCES, heard) == (verdict, wait_ms)


def test_the_silences_never_pass_the_full_one_but_for_words_that_want_more() -> None:
    silences = TurnSilences(doubt_ms=1500, statement_doubt_ms=1500, full_ms=800, unfinished_ms=0)
    assert silence_after(POLICY, silences, Measures("Do you?", 0.2, 0.97))[1] == 800
    assert silence_after(POLICY, silences, Measures("I would like to order.", None))[1] == 800
    silent = EndOfTurn("silence")
    assert silence_after(silent, SILENCES, Measures("Hello.", 0.99, 0.99)) == (
        Verdict.INCOMPLETE,
        1000,
    )


async def test_a_complete_turn_is_likely_over_at_once() -> None:
    detector, clock = fake_detector()
    transcript = say(detector, clock, 2.0, "What is the capital of France?", 0.97)
    assert transcript.text == "What is the capital of France?"
    clock.now += 0.15  # Whisper's time
    assert await detector.predict_end_of_turn(user_said("What is the capital of France?")) == LIKELY
    assert clock.slept == []
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.COMPLETE


async def test_a_doubted_statement_is_over_once_its_silence_has_passed() -> None:
    detector, clock = fake_detector()
    say(detector, clock, 1.5, "I need to pick up.", 0.5)
    clock.now += 0.15
    # spoke until 0.2 s before the VAD ended the utterance; 0.7 s of silence from there
    assert await detector.predict_end_of_turn(user_said("I need to pick up.")) == LIKELY
    assert clock.slept == [0.35]


async def test_words_that_want_more_wait_longer_than_the_full_silence() -> None:
    detector, clock = fake_detector()
    say(detector, clock, 1.0, "I would like to order.", 0.9)
    assert await detector.predict_end_of_turn(user_said("I would like to order.")) == LIKELY
    assert clock.slept == [1.8]
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.INCOMPLETE


async def test_a_timeout_shorter_than_the_silence_answers_unlikely() -> None:
    detector, clock = fake_detector()
    say(detector, clock, 1.0, "I would like to order.", 0.9)
    chat = user_said("I would like to order.")
    assert await detector.predict_end_of_turn(chat, timeout=0.5) == UNLIKELY
    assert clock.slept == []


async def test_asked_before_whisper_has_the_new_words_it_waits_for_them() -> None:
    """The user went on; AgentSession asks at the VAD's end with the first half's words,
    while Whisper hears the rest: no answer on the first half (that would cut them off).
    AgentSession asks again with the new words (and cancels the first question)."""
    detector, clock = fake_detector()
    detector.speech_started()
    words = Words([("I would like to order.", 0.9), ("I would like to order a large pizza.", 0.95)])
    clock.now += 1.0
    detector.hear(silence_of(1.0), words, ended_at=clock.now)
    clock.now += 0.6
    detector.speech_started()  # the user goes on before the verdict's silence ran out
    clock.now += 1.2
    first_half = asyncio.create_task(
        detector.predict_end_of_turn(user_said("I would like to order."))
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert not first_half.done()  # waiting for Whisper
    detector.hear(silence_of(1.2), words, ended_at=clock.now)
    said = user_said("I would like to order. a large pizza.")
    assert await detector.predict_end_of_turn(said) == LIKELY
    # never "likely" on the first half's words; "unlikely" once it gave up waiting
    assert await first_half == UNLIKELY
    assert len(clock.slept) == round(WORDS_WAIT_S / POLL_S)


async def test_an_utterance_without_words_keeps_the_verdict_from_its_own_end() -> None:
    detector, clock = fake_detector()
    say(detector, clock, 1.0, "I need to pick up.", 0.5)
    clock.now += 0.3
    detector.speech_started()  # a cough in the doubt's silence
    clock.now += 0.4
    asked = asyncio.create_task(detector.predict_end_of_turn(user_said("I need to pick up.")))
    await asyncio.sleep(0)
    detector.hear(silence_of(0.4), Words([("", None)]), ended_at=clock.now)
    spoke_until = clock.now - 0.2
    assert await asked == LIKELY
    assert clock.now == pytest.approx(spoke_until + 0.7, abs=POLL_S)  # the doubt, again


async def test_a_verdict_speaks_only_for_the_words_it_judged() -> None:
    detector, clock = fake_detector()
    assert await detector.predict_end_of_turn(user_said("Hello.")) == UNLIKELY  # none yet
    say(detector, clock, 1.0, "Hello.", 0.99)
    assert await detector.predict_end_of_turn(user_said("Something else.")) == UNLIKELY
    assert await detector.predict_end_of_turn(user_said("hello.")) == LIKELY


async def test_speech_again_reported_after_the_verdict_does_not_hold_it() -> None:
    """AgentSession runs two VAD streams, each with its own Silero: one may hear speech
    go on inside an utterance the other (whose utterances are judged) has ended. Only
    an onset follows an ended utterance, so only an onset waits for new words."""
    detector, clock = fake_detector()
    say(detector, clock, 1.5, "What is the capital of France?", 0.97)
    clock.now += 0.05
    detector.speech_started(onset=False)  # the other stream's view
    said = user_said("What is the capital of France?")
    assert await detector.predict_end_of_turn(said) == LIKELY
    assert clock.slept == []


async def test_english_is_judged_and_other_languages_are_not() -> None:
    detector, _ = fake_detector()
    assert await detector.supports_language(None)
    assert await detector.supports_language("en-US")
    assert not await detector.supports_language("fr")


async def test_the_vad_tells_the_detector_when_speech_begins_and_at_the_gap() -> None:
    began: list[bool] = []
    gaps: list[int] = []
    silence = np.zeros(16000, np.int16)
    speech = np.concatenate([voiced(0.6), silence[:1600], voiced(0.6), silence, voiced(0.6)])
    events = await _events(
        np.concatenate([speech, silence]),
        end_ms=200,
        on_speech=began.append,
        gap_ms=60,
        on_gap=lambda utterance: gaps.append(len(utterance)),
    )
    starts = [e for e in events if e.type.name == "START_OF_SPEECH"]
    assert len(starts) == began.count(True) == 2  # the onsets
    assert began[0] is True
    assert began[1] is False  # speech again after the 0.1 s inside the first utterance
    assert len(gaps) >= 3  # that silence, and the end of each utterance
    assert min(gaps) >= 0.6 * 16000


@pytest.mark.parametrize(
    ("settings", "judged", "vad_end_ms"),
    [
        ({}, True, 200),  # the default: the judges end turns, the VAD ends utterances
        ({"end_of_turn_pause_ms": 300, "end_of_turn_doubt_ms": 600}, True, 300),
        ({"end_of_turn": "silence"}, False, 500),  # only the VAD's silence, as before
        ({"end_of_turn": "silence", "vad_end_ms": 800}, False, 800),
        ({"asr_language": "de"}, False, 500),  # the words' rules are English's
    ],
)
async def test_the_room_agent_ends_turns_as_the_configuration_says(
    settings: dict[str, object], judged: bool, vad_end_ms: int
) -> None:
    config = OrchestratorConfig(dev=True, **settings)
    parts = VoiceParts.from_config(config, Words([]), smart_turn=Model())
    session, voice = voice_session(parts)
    await voice.aclose()
    assert isinstance(session.vad, DuplexVAD)
    assert session.vad.end_frames * 20 == vad_end_ms
    detection = session.turn_detection
    # judged: the reply is prepared (LLM and voice) as the words come, heard at the end
    assert session.options.preemptive_generation["enabled"] is judged
    assert parts.turns is not None  # for manual turns, judged or not
    assert parts.turns.judging is judged
    assert session.vad.on_speech == parts.turns.speech_started
    if not judged:
        assert detection == "vad"
        assert session.vad.on_gap is None
        assert parts.turns.silences.pause_ms == vad_end_ms  # the VAD's utterances
        return
    assert detection is parts.turns
    assert session.vad.on_gap == parts.turns.speculate  # Whisper starts at the 60 ms gap
    assert session.vad.gap_frames == 3
    assert parts.turns.silences == TurnSilences.from_config(config)
    assert parts.turns.silences.doubt_ms == settings.get("end_of_turn_doubt_ms", 500)
    assert session.options.endpointing["max_delay"] == 1.0
