"""duplex's judges as AgentSession's turn detector: each verdict's silence, the turn's audio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit.agents import llm

from duplex_livekit import DuplexTurnDetector, DuplexVAD, TurnSilences, VoiceParts, voice_session
from duplex_livekit.turns import LIKELY, POLL_S, UNLIKELY, WORDS_WAIT_S
from duplex_livekit.verdicts import Measures, silence_after
from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn, Verdict
from tests.support.fake_ears import voiced
from tests.support.waiting import eventually
from tests.unit.test_livekit_parts import _events

POLICY = EndOfTurn(pitch_rise_st=0)  # the default judges, without the pitch (tested apart)
SILENCES = TurnSilences()


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


@dataclass
class Words:
    """A recognizer that hears the scripted words, in order."""

    said: list[tuple[str, float | None]]
    heard: list[int] = field(default_factory=list)
    wanted: list[Wanted] = field(default_factory=list)
    idle_workers: int = 1

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        self.heard.append(len(audio16k))
        if wanted is not None:
            self.wanted.append(wanted)
        text, ends_here = self.said.pop(0)
        return Transcript(text, 0.1, len(audio16k) / 16000, ends_here=ends_here)


@dataclass
class Model:
    """Smart Turn, scripted: the audio it was given."""

    probability_of_complete: float = 0.9
    heard: list[int] = field(default_factory=list)

    def probability(self, audio16k: np.ndarray) -> float:
        self.heard.append(len(audio16k))
        return self.probability_of_complete


@dataclass
class Clock:
    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds
        await asyncio.sleep(0)


def _detector(model: Model | None = None) -> tuple[DuplexTurnDetector, Clock]:
    clock = Clock()
    detector = DuplexTurnDetector(
        POLICY, SILENCES, model or Model(), clock=clock, sleep=clock.sleep
    )
    return detector, clock


def _said(*texts: str) -> llm.ChatContext:
    chat = llm.ChatContext()
    chat.add_message(role="assistant", content="Hello, how can I help?")
    for text in texts:
        chat.add_message(role="user", content=text)
    return chat


def _utterance(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.int16)


def _say(
    detector: DuplexTurnDetector, clock: Clock, seconds: float, text: str, ends_here: float | None
) -> Transcript:
    """The user speaks for ``seconds`` (an onset, then the VAD ends the utterance)."""
    detector.speech_started()
    clock.now += seconds
    return detector.hear(_utterance(seconds), Words([(text, ends_here)]), ended_at=clock.now)


async def test_a_complete_turn_is_likely_over_at_once() -> None:
    detector, clock = _detector()
    transcript = _say(detector, clock, 2.0, "What is the capital of France?", 0.97)
    assert transcript.text == "What is the capital of France?"
    clock.now += 0.15  # Whisper's time
    assert await detector.predict_end_of_turn(_said("What is the capital of France?")) == LIKELY
    assert clock.slept == []
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.COMPLETE


async def test_a_doubted_statement_is_over_once_its_silence_has_passed() -> None:
    detector, clock = _detector()
    _say(detector, clock, 1.5, "I need to pick up.", 0.5)
    clock.now += 0.15
    # spoke until 0.2 s before the VAD ended the utterance; 0.7 s of silence from there
    assert await detector.predict_end_of_turn(_said("I need to pick up.")) == LIKELY
    assert clock.slept == [0.35]


async def test_words_that_want_more_wait_longer_than_the_full_silence() -> None:
    detector, clock = _detector()
    _say(detector, clock, 1.0, "I would like to order.", 0.9)
    assert await detector.predict_end_of_turn(_said("I would like to order.")) == LIKELY
    assert clock.slept == [1.8]
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.INCOMPLETE


async def test_a_timeout_shorter_than_the_silence_answers_unlikely() -> None:
    detector, clock = _detector()
    _say(detector, clock, 1.0, "I would like to order.", 0.9)
    chat = _said("I would like to order.")
    assert await detector.predict_end_of_turn(chat, timeout=0.5) == UNLIKELY
    assert clock.slept == []


async def test_asked_before_whisper_has_the_new_words_it_waits_for_them() -> None:
    """The user went on; AgentSession asks at the VAD's end with the first half's words,
    while Whisper hears the rest: no answer on the first half (that would cut them off).
    AgentSession asks again with the new words (and cancels the first question)."""
    detector, clock = _detector()
    detector.speech_started()
    words = Words([("I would like to order.", 0.9), ("I would like to order a large pizza.", 0.95)])
    clock.now += 1.0
    detector.hear(_utterance(1.0), words, ended_at=clock.now)
    clock.now += 0.6
    detector.speech_started()  # the user goes on before the verdict's silence ran out
    clock.now += 1.2
    first_half = asyncio.create_task(detector.predict_end_of_turn(_said("I would like to order.")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not first_half.done()  # waiting for Whisper
    detector.hear(_utterance(1.2), words, ended_at=clock.now)
    said = _said("I would like to order. a large pizza.")
    assert await detector.predict_end_of_turn(said) == LIKELY
    # never "likely" on the first half's words; "unlikely" once it gave up waiting
    assert await first_half == UNLIKELY
    assert len(clock.slept) == round(WORDS_WAIT_S / POLL_S)


async def test_an_utterance_without_words_keeps_the_verdict_from_its_own_end() -> None:
    detector, clock = _detector()
    _say(detector, clock, 1.0, "I need to pick up.", 0.5)
    clock.now += 0.3
    detector.speech_started()  # a cough in the doubt's silence
    clock.now += 0.4
    asked = asyncio.create_task(detector.predict_end_of_turn(_said("I need to pick up.")))
    await asyncio.sleep(0)
    detector.hear(_utterance(0.4), Words([("", None)]), ended_at=clock.now)
    spoke_until = clock.now - 0.2
    assert await asked == LIKELY
    assert clock.now == pytest.approx(spoke_until + 0.7, abs=POLL_S)  # the doubt, again


async def test_a_verdict_speaks_only_for_the_words_it_judged() -> None:
    detector, clock = _detector()
    assert await detector.predict_end_of_turn(_said("Hello.")) == UNLIKELY  # none yet
    _say(detector, clock, 1.0, "Hello.", 0.99)
    assert await detector.predict_end_of_turn(_said("Something else.")) == UNLIKELY
    assert await detector.predict_end_of_turn(_said("hello.")) == LIKELY


async def test_smart_turn_hears_the_turn_so_far_and_a_new_turn_alone() -> None:
    model = Model(probability_of_complete=0.2)
    detector, clock = _detector(model)
    said = Words(
        [
            ("Can you book a table?", 0.97),  # complete, yet doubted: 0.5 s
            ("Can you book a table for two?", 0.97),  # said 0.1 s after: the same turn
            ("Thanks.", 0.99),  # after the turn ended: a new one
        ]
    )
    detector.speech_started()
    detector.hear(_utterance(1.0), said, ended_at=clock.now)
    clock.now += 0.1
    detector.speech_started()
    clock.now += 0.5
    detector.hear(_utterance(0.5), said, ended_at=clock.now)
    clock.now += 3.0
    detector.speech_started()
    clock.now += 0.5
    detector.hear(_utterance(0.5), said, ended_at=clock.now)
    assert model.heard == [16000, 24000, 8000]
    assert said.heard == [16000, 24000, 8000]  # Whisper too: the turn so far


async def test_a_turn_that_goes_on_is_judged_on_its_whole_sentence() -> None:
    """Whisper hears the turn so far: its second half is judged with the first before it
    ("the weather tomorrow." alone is a doubted statement), and AgentSession, which
    appends each utterance's words, is handed the new ones only."""
    detector, clock = _detector()
    words = Words(
        [
            ("Can you tell me about?", 0.5),  # Whisper doubts it: not complete
            ("Can you tell me about the weather tomorrow?", 0.97),
        ]
    )
    detector.speech_started()
    clock.now += 1.2
    first = detector.hear(_utterance(1.2), words, ended_at=clock.now)
    assert first.text == "Can you tell me about?"
    clock.now += 0.4  # a hesitation: 0.6 s after the speech
    detector.speech_started()
    clock.now += 1.3
    second = detector.hear(_utterance(1.3), words, ended_at=clock.now)
    assert second.text == "the weather tomorrow?"
    assert words.heard == [19200, 40000]
    assert detector.latest is not None
    assert detector.latest.text == "Can you tell me about the weather tomorrow?"
    assert detector.latest.verdict is Verdict.COMPLETE
    said = _said("Can you tell me about? the weather tomorrow?")
    assert await detector.predict_end_of_turn(said) == LIKELY
    assert clock.slept == []


async def test_a_new_turn_is_heard_alone() -> None:
    detector, clock = _detector()
    words = Words([("What time is it?", 0.97), ("Thanks.", 0.99)])
    _say(detector, clock, 1.0, "What time is it?", 0.97)
    clock.now += 2.0  # the reply; then the user speaks again
    detector.speech_started()
    clock.now += 0.5
    assert detector.hear(_utterance(0.5), words, ended_at=clock.now).text == "What time is it?"
    assert words.heard == [8000]


async def test_a_turn_that_goes_on_adds_no_words_for_a_cough() -> None:
    detector, clock = _detector()
    words = Words([("I need to pick up.", 0.5), ("I need to pick up.", 0.5)])
    detector.speech_started()
    clock.now += 1.0
    detector.hear(_utterance(1.0), words, ended_at=clock.now)
    clock.now += 0.2
    detector.speech_started()  # a cough inside the doubt's silence
    clock.now += 0.4
    assert detector.hear(_utterance(0.4), words, ended_at=clock.now).text == ""
    assert detector.latest is not None
    assert detector.latest.said == "I need to pick up."
    assert detector.latest.spoke_until == pytest.approx(clock.now - 0.2)


async def test_words_that_read_unfinished_are_not_given_to_smart_turn() -> None:
    model = Model()
    detector, clock = _detector(model)
    detector.hear(_utterance(1.0), Words([("I would like to order.", 0.9)]), ended_at=clock.now)
    detector.hear(_utterance(1.0), Words([("Could you book a table for", None)]), clock.now)
    assert model.heard == []


async def test_english_is_judged_and_other_languages_are_not() -> None:
    detector, _ = _detector()
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


def _speculating(said: list[tuple[str, float | None]]) -> tuple[DuplexTurnDetector, Clock, Words]:
    clock = Clock()
    words = Words(said)
    detector = DuplexTurnDetector(
        POLICY, SILENCES, Model(), recognizer=words, clock=clock, sleep=clock.sleep
    )
    return detector, clock, words


async def test_the_gaps_transcript_is_the_utterances_when_no_speech_followed() -> None:
    detector, clock, words = _speculating([("What is the capital of France?", 0.97)])
    detector.speech_started()
    clock.now += 2.0
    detector.speculate(_utterance(2.0))  # the gap: 60 ms of silence
    clock.now += 0.14
    transcript = detector.hear(_utterance(2.2), words, ended_at=clock.now)  # the pause
    assert transcript.text == "What is the capital of France?"
    assert words.heard == [32000]  # one pass, on the gap's audio
    assert detector.latest is not None
    assert detector.latest.verdict is Verdict.COMPLETE


async def test_speech_after_the_gap_makes_its_transcript_stale() -> None:
    said: list[tuple[str, float | None]] = [("I would like", 0.5), ("I would like a pizza.", 0.9)]
    detector, clock, words = _speculating(said)
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(_utterance(1.0))
    clock.now += 0.1
    detector.speech_started(onset=False)  # the user goes on inside the utterance
    assert not words.wanted[0]()  # Whisper drops it at its next step
    clock.now += 1.0
    transcript = detector.hear(_utterance(2.0), words, ended_at=clock.now)
    assert transcript.text == "I would like a pizza."
    assert words.heard == [16000, 32000]


async def test_no_speculation_without_an_idle_worker_or_twice_in_one_silence() -> None:
    detector, clock, words = _speculating([("Hello.", 0.99), ("Hello.", 0.99)])
    words.idle_workers = 0
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(_utterance(1.0))
    words.idle_workers = 1
    detector.speculate(_utterance(1.0))  # a worker is free now
    detector.speculate(_utterance(1.0))  # the other VAD stream's gap: already under way
    detector.hear(_utterance(1.2), words, ended_at=clock.now)
    assert words.heard == [16000]


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
    if not judged:
        assert parts.turns is None
        assert detection == "vad"
        return
    assert detection is parts.turns
    assert parts.turns is not None
    assert session.vad.on_speech == parts.turns.speech_started
    assert session.vad.on_gap == parts.turns.speculate  # Whisper starts at the 60 ms gap
    assert session.vad.gap_frames == 3
    assert parts.turns.silences == TurnSilences.from_config(config)
    assert parts.turns.silences.doubt_ms == settings.get("end_of_turn_doubt_ms", 500)
    assert session.options.endpointing["max_delay"] == 1.0


async def test_the_gap_in_a_turn_that_goes_on_hears_the_turn_so_far() -> None:
    said: list[tuple[str, float | None]] = [
        ("I would like to order.", 0.9),
        ("I would like to order a large pizza.", 0.95),
    ]
    detector, clock, words = _speculating(said)
    detector.speech_started()
    clock.now += 1.0
    detector.hear(_utterance(1.0), words, ended_at=clock.now)  # wants more: 2 s
    clock.now += 0.4
    detector.speech_started()
    clock.now += 1.0
    detector.speculate(_utterance(1.0))  # the second half's gap
    clock.now += 0.14
    transcript = detector.hear(_utterance(1.2), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]  # the gap's pass, on both halves, is the pause's
    assert transcript.text == "a large pizza."
    assert detector.latest is not None
    assert detector.latest.text == "I would like to order a large pizza."


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
    first, second = _utterance(1.0), _utterance(1.2)

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
    detector.speculate(_utterance(2.0))
    await eventually(lambda: model.heard == [32000 + 2240], timeout_s=5)  # before the pause
    clock.now += 0.14
    detector.hear(_utterance(2.14), words, ended_at=clock.now)
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
    detector.speculate(_utterance(0.5))
    clock.now += 0.1
    detector.speech_started(onset=False)
    clock.now += 1.5
    detector.hear(_utterance(2.1), words, ended_at=clock.now)
    await eventually(lambda: len(model.heard) == 2, timeout_s=5)
    assert sorted(model.heard) == [8000 + 2240, 33600]


async def _ended(detector: DuplexTurnDetector, clock: Clock, text: str, ends_here: float) -> None:
    """The user says ``text``; the detector ends the turn when its silence has passed."""
    _say(detector, clock, 1.0, text, ends_here)
    assert await detector.predict_end_of_turn(_said(text)) == LIKELY


async def test_words_soon_after_a_turn_ended_teach_the_users_patience() -> None:
    """A false end: the user went on 0.8 s after a statement judged complete (AgentSession
    took the rest as a new turn, cutting in on its reply). This user's statements wait
    that pause and a margin from then on; their whole questions do not."""
    detector, clock = _detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    assert detector.latest is not None
    assert detector.latest.wait_s == 0
    clock.now += 0.6  # the pause after the speech: 0.2 s to the VAD's end, then this
    _say(detector, clock, 1.0, "With my manager at noon.", 0.97)
    clock.now += 2.0
    _say(detector, clock, 1.0, "I need a taxi.", 0.97)
    assert detector.latest.wait_s == pytest.approx((40 + 5) * 0.02)
    clock.now += 2.0
    _say(detector, clock, 1.0, "What time is it?", 0.97)
    assert detector.latest.wait_s == 0


@pytest.mark.parametrize(
    ("after_s", "said"),
    [
        (0.6, "Okay."),  # an acknowledgement of the reply, not the turn going on
        (1.6, "With my manager at noon."),  # past the window: a new turn
    ],
)
async def test_an_acknowledgement_or_a_later_turn_teaches_nothing(
    after_s: float, said: str
) -> None:
    detector, clock = _detector()
    await _ended(detector, clock, "I have a meeting.", 0.97)
    clock.now += after_s
    _say(detector, clock, 1.0, said, 0.97)
    clock.now += 2.0
    _say(detector, clock, 1.0, "I need a taxi.", 0.97)
    assert detector.latest is not None
    assert detector.latest.wait_s == 0
    assert detector.patience.hold_frames() == 0


async def test_speech_before_the_turn_was_answered_over_goes_on_with_it() -> None:
    """Judged complete (no silence to wait), but Whisper was slow: the user spoke again
    before AgentSession was told the turn is over. It is the same turn, heard whole."""
    detector, clock = _detector()
    words = Words([("I have a meeting.", 0.97), ("I have a meeting with my manager.", 0.97)])
    detector.speech_started()
    clock.now += 1.0
    detector.hear(_utterance(1.0), words, ended_at=clock.now)
    clock.now += 0.1  # 0.3 s after the speech: past the verdict's silence (none)
    detector.speech_started()
    clock.now += 1.0
    transcript = detector.hear(_utterance(1.0), words, ended_at=clock.now)
    assert words.heard == [16000, 32000]
    assert transcript.text == "with my manager."
    clock.now += 3.0  # answered over this time, and later speech is a new turn
    assert await detector.predict_end_of_turn(_said("I have a meeting. with my manager.")) == LIKELY
    detector.speech_started()
    clock.now += 0.5
    detector.hear(_utterance(0.5), Words([("Thanks.", 0.99)]), ended_at=clock.now)
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
    _say(detector, clock, 1.0, "I would like to order.", 0.9)  # words that want more: 2 s
    asked = asyncio.create_task(detector.predict_end_of_turn(_said("I would like to order.")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not asked.done()
    assert detector.end_turn()
    assert await asyncio.wait_for(asked, timeout=5) == LIKELY
    assert not detector.end_turn()  # answered: that turn is over
    # a new turn after it waits its own silence again
    detector.speech_started()
    clock.now += 1.0
    detector.hear(_utterance(1.0), Words([("I need to pick up.", 0.5)]), ended_at=clock.now)
    again = asyncio.create_task(detector.predict_end_of_turn(_said("I need to pick up.")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not again.done()
    again.cancel()


async def test_an_utterance_the_client_ended_is_judged_on_its_words_at_once() -> None:
    """Ended by ``end_turn``, not by the VAD's pause: its speech went on until its end,
    so speech begun inside it (its last 200 ms) is not taken for speech after the
    verdict, which would wait for words that never come."""
    detector, clock = _detector()
    detector.speech_started()
    clock.now += 1.5
    detector.speech_started(onset=False)  # a short silence inside, 0.1 s before the end
    clock.now += 0.1
    assert detector.end_turn()
    words = Words([("I would like to order.", 0.9)])
    detector.hear(_utterance(1.6), words, ended_at=clock.now + 0.02)  # the next frame
    said = _said("I would like to order.")
    assert await asyncio.wait_for(detector.predict_end_of_turn(said), timeout=5) == LIKELY
    assert clock.slept == []


async def test_speech_again_reported_after_the_verdict_does_not_hold_it() -> None:
    """AgentSession runs two VAD streams, each with its own Silero: one may hear speech
    go on inside an utterance the other (whose utterances are judged) has ended. Only
    an onset follows an ended utterance, so only an onset waits for new words."""
    detector, clock = _detector()
    _say(detector, clock, 1.5, "What is the capital of France?", 0.97)
    clock.now += 0.05
    detector.speech_started(onset=False)  # the other stream's view
    said = _said("What is the capital of France?")
    assert await detector.predict_end_of_turn(said) == LIKELY
    assert clock.slept == []
