"""End of turn at a pause: the pure policy, and the session ending (or not ending) a turn.

The session tests run the real VAD and turn logic with fake ears (the
transcript is whatever the test says) and a fake Smart Turn (a fixed
probability); audio goes in as 20 ms frames, as fast as the loop runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator.app import busy_gap_frames
from duplex_orchestrator.asr import (
    before_repetition,
    closing_step,
    generate_max_length,
    looks_looped,
    new_token_cap,
    probability_of,
    sentence_end_tokens,
    token_budget,
    window_features,
    window_frames,
    windows_to_try,
    without_penalty,
)
from duplex_orchestrator.cli import orchestrator_main
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, EndOfTurnMode, Verdict, transcript_complete
from duplex_orchestrator.events import Asr, BargeIn, ReplyText, TtsEnd, TtsStart, VadState
from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.protocol import Start
from duplex_orchestrator.session import Services, VoiceSession
from duplex_orchestrator.smart_turn import PIPECAT_VERSION, SmartTurnMissing, find_model
from duplex_orchestrator.vad import FrameClassifier, WebRtcClassifier
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.session_io import Recorded
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]

PAUSE_FRAMES, END_FRAMES = 10, 50  # judged at 200 ms of silence; any turn ends at 1 s
DOUBT_FRAMES = 25  # a doubted turn ends at 500 ms
COMPLETE, DOUBTED, INCOMPLETE = Verdict.COMPLETE, Verdict.DOUBTED, Verdict.INCOMPLETE


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("What time does the museum open tomorrow?", True),
        ("Please remind me to call my sister tonight.", True),
        ("What is it about?", True),  # a question may end on a preposition
        ("Stop!", True),
        ("I would like to order a large...", False),
        ("I was wondering if you...", False),
        ("Tell me a joke about.", False),  # Whisper's period on a cut-off statement
        ("I'd like to book a table for the.", False),
        ("Could you remind me", False),  # no final punctuation
        ("Could you remind me?", False),  # remind me of what?
        ("Can you tell us?", False),
        ("Can you help me?", True),
        ("Can you tell me about?", False),
        ("I would like to order.", False),  # order what?
        ("Can you tell me the about?", False),  # Whisper's hearing of a hesitation
        # a filler after other words holds the floor, even closed as a question
        ("Can you explain why, um?", False),
        ("Do you think it will, um?", False),
        ("What about it, hm?", False),
        ("Um, can you explain why?", True),  # a filler first is no hesitation at the end
        ("Hmm?", True),  # alone, a whole turn
        ("Uh-huh.", True),  # a backchannel, not a filler after words
        ("Nice, huh?", True),  # a tag, not a filler
        ("Can you give me the?", False),
        ("Is it red and?", False),
        ("Who are you talking to?", True),
        ("Did you call her?", True),
        ("Can you tell me the time?", True),
        ("I'd like to book.", False),
        ("I'd like to go to Paris.", True),
        ("Welcome to London.", True),
        # A wh-question whose "do" or modal has its subject but not yet its verb.
        ("What time does the museum?", False),  # Kokoro's 260 ms pause before "open"
        ("Where can I?", False),
        ("How do you?", False),
        ("So which one should we?", False),
        ("What time does the museum open?", True),
        ("What would you like?", True),
        ("Where can I buy tickets?", True),
        ("Why would I?", True),  # complete as it stands: "why" wants no more
        ("Can you?", True),
        ("Who are you?", True),
        # A clause that is only its subject (or "do"/a modal and it) and a verb that
        # needs an object has not said what.
        ("Could you please find?", False),
        ("Could you translate?", False),
        ("The thing is, I really want.", False),
        ("Please translate.", False),
        ("Do you want?", False),
        ("What do you want?", True),  # the wh-word is the object
        ("Thanks, that's all I need.", True),  # the object came first
        ("Can you find a hotel?", True),
        ("Can you help?", True),  # a verb that may stand alone
        # A wish ending on "if" and a subject and a past modal; a "to" after a word
        # that takes an infinitive; "whether" last.
        ("I was wondering if you could.", False),
        ("Let me know if you can.", True),
        ("Yes, I could.", True),
        ("How much would it cost to?", False),
        ("Is it possible to?", False),
        ("Where are you going to?", True),
        ("Can you check whether?", False),
        # A question ending on a preposition with no wh-word to be its object, or on a
        # relative pronoun; an infinitive that needs an object after a wish or "how".
        ("Can you book me a flight to?", False),
        ("Do you know anyone who?", False),
        ("Where is it from?", True),
        ("Who is it for?", True),
        ("Can I come in?", True),  # a particle, not a preposition
        ("Tell me how to make.", False),
        ("What do you need to buy?", True),
        ("Is there anything to add?", True),
        ("So, um.", False),
        ("well,", False),
        ("", False),
    ],
)
def test_a_transcript_reads_as_complete_or_not(text: str, complete: bool) -> None:
    assert transcript_complete(text) is complete


@pytest.mark.parametrize(
    ("mode", "text", "probability", "verdict"),
    [
        ("transcript+smart-turn", "Hello there.", 0.9, COMPLETE),
        ("transcript+smart-turn", "Hello there.", 0.2, DOUBTED),  # a longer silence ends it
        ("transcript+smart-turn", "Hello there.", None, DOUBTED),
        ("transcript+smart-turn", "Hello there and", 0.9, INCOMPLETE),
        ("transcript+smart-turn", None, 0.9, INCOMPLETE),  # no transcript (superseded)
        ("transcript", "Hello there.", None, COMPLETE),
        ("transcript", "Hello there, and", None, INCOMPLETE),
        ("smart-turn", None, 0.5, COMPLETE),
        ("smart-turn", None, 0.49, INCOMPLETE),
        ("smart-turn", None, None, INCOMPLETE),
        ("silence", "Hello there.", 1.0, INCOMPLETE),
    ],
)
def test_the_policy_ends_a_turn_only_when_its_judges_agree(
    mode: str, text: str | None, probability: float | None, verdict: Verdict
) -> None:
    policy = EndOfTurn(mode, threshold=0.5)  # type: ignore[arg-type]
    assert policy.decide(text, probability) is verdict


@pytest.mark.parametrize(
    ("mode", "text", "ends_here", "question_end", "verdict"),
    [
        ("transcript+smart-turn", "Is it possible to change?", 0.95, 0.85, COMPLETE),
        ("transcript+smart-turn", "Is it possible to change?", 0.85, 0.85, COMPLETE),
        ("transcript+smart-turn", "Is it possible to change?", 0.6, 0.85, INCOMPLETE),
        ("transcript+smart-turn", "Is it possible to change?", None, 0.85, COMPLETE),  # unsaid
        ("transcript+smart-turn", "Is it possible to change?", 0.6, 0.0, COMPLETE),  # 0: off
        ("transcript+smart-turn", 'He asked "why?"', 0.6, 0.85, INCOMPLETE),  # a quoted "?"
        # A statement can always take more ("tonight", "at seven"): Whisper's doubt
        # there does not hold its words back, it only doubts the turn (see
        # test_statement_doubt).
        ("transcript+smart-turn", "Please remind me to call my sister tonight.", 0.6, 0.85,
         DOUBTED),
        ("transcript", "Is it possible to change?", 0.6, 0.85, INCOMPLETE),
        ("transcript", "Is it possible to change?", 0.9, 0.85, COMPLETE),
        ("smart-turn", "Is it possible to change?", 0.1, 0.85, COMPLETE),  # words not a judge
    ],
)  # fmt: skip
def test_whisper_doubting_that_a_question_ends_keeps_the_turn_open(
    mode: str, text: str, ends_here: float | None, question_end: float, verdict: Verdict
) -> None:
    policy = EndOfTurn(mode, question_end=question_end)  # type: ignore[arg-type]
    assert policy.decide(text, 0.9, ends_here) is verdict
    assert policy.words_complete("Is it possible to change", 0.99) is False  # no "?"


class FixedTurnModel:
    def __init__(self, probability: float) -> None:
        self.value = probability
        self.calls = 0
        self.heard: list[int] = []
        """Samples of audio of each call."""

    def probability(self, audio16k: np.ndarray) -> float:
        self.calls += 1
        self.heard.append(len(audio16k))
        return self.value


async def session_with(
    ears: Ears,
    turn_model: FixedTurnModel,
    worker: FakeWorker | None = None,
    gap_frames: int = 0,
    busy_gap_frames: int = 0,
    mode: EndOfTurnMode = "transcript+smart-turn",
    sound_hold_max_s: float = 0.14,
    classifier: Callable[[], FrameClassifier] = WebRtcClassifier,
    patience_turns: int = 10,
    patience_from_pauses: bool = False,
    pitch_rise_st: float = 3.0,
    pitch_first_fall_st: float | None = EndOfTurn.pitch_first_fall_st,
) -> tuple[VoiceSession, Recorded]:
    io = Recorded()
    services = Services(
        registry=FakeRegistry(worker or FakeWorker()),
        transcriber=ears,
        llm=EchoBridge(),
        default_model="mock",
        end_frames=END_FRAMES,
        pause_frames=PAUSE_FRAMES,
        doubt_frames=DOUBT_FRAMES,
        gap_frames=gap_frames,
        busy_gap_frames=busy_gap_frames,
        end_of_turn=EndOfTurn(
            mode, pitch_rise_st=pitch_rise_st, pitch_first_fall_st=pitch_first_fall_st
        ),
        smart_turn=turn_model,
        sound_hold_max_s=sound_hold_max_s,
        classifier=classifier,
        patience_turns=patience_turns,
        patience_from_pauses=patience_from_pauses,
    )
    session = VoiceSession(io, services)
    await session.handle(Start(model="", sample_rate=16000))
    return session, io


async def feed(session: VoiceSession, audio: np.ndarray, realtime: bool = False) -> None:
    for i in range(0, len(audio), 320):
        await session.audio(audio[i : i + 320])
        await asyncio.sleep(0.02 if realtime else 0)


def silence(frames: int) -> np.ndarray:
    return np.zeros(320 * frames, np.int16)


async def test_a_complete_turn_ends_at_the_pause_not_after_the_full_silence() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)  # 400 ms: less than 1 s
    await io.wait_for(TtsEnd)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert [e.text for e in io.of(Asr) if e.final] == ["What time is it?"]
    assert model.calls == 1
    await session.close()


@pytest.mark.parametrize(
    ("words", "probability"),
    [("I would like to order a large...", 0.9), ("I would like to order a large...", 0.1)],
)
async def test_an_incomplete_turn_waits_for_more_speech_or_the_full_silence(
    words: str, probability: float
) -> None:
    ears, model = Ears(), FixedTurnModel(probability)
    ears.words = words
    session, io = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(DOUBT_FRAMES + 5), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]  # still the user's turn
    assert io.of(TtsStart) == []
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    await session.close()


async def test_words_whisper_doubts_end_there_wait_like_unfinished_ones() -> None:
    """Whisper wrote "?", but its language model still expected words there (as after
    "What's the difference between"): the words do not read as complete, whatever
    Smart Turn says, and the turn waits for more speech or the full silence."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words, ears.ends_here = "What's the difference between?", 0.3
    session, io = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(DOUBT_FRAMES + 5), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start"]  # still the user's turn
    assert model.calls == 0  # the words said "not yet": Smart Turn was not asked
    await feed(session, silence(END_FRAMES))
    await io.wait_for(TtsEnd)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    await session.close()


def turn_ends(by: str) -> float:
    return REGISTRY.get_sample_value("duplex_turn_ends_total", {"by": by}) or 0.0


async def test_words_that_read_complete_end_the_turn_after_a_longer_silence_if_doubted() -> None:
    """The turn ends at the pause provisionally, so its reply is prepared while Smart
    Turn listens; Smart Turn doubts it, so the reply sounds after the doubt's silence."""
    ears, model = Ears(), FixedTurnModel(0.1)  # Smart Turn doubts it
    ears.words = "What time is it?"
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    before = turn_ends("judged_after_doubt")
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    (final,) = [e for e in io.of(Asr) if e.final]
    assert final.end_of_turn_ms == pytest.approx(PAUSE_FRAMES * 20, abs=60)  # at the pause
    assert worker.texts  # the reply is under way ...
    assert io.frames == []  # ... and silent: 400 ms of silence is less than the doubt's
    assert io.of(TtsStart) == []
    assert io.of(ReplyText) == []  # its text comes with its sound
    await feed(session, silence(DOUBT_FRAMES - PAUSE_FRAMES - 10))
    (end,) = await io.wait_for(TtsEnd)  # at 500 ms of silence, not 1 s
    assert not end.interrupted
    assert len(io.frames) == end.frames > 0
    assert turn_ends("judged_after_doubt") == before + 1
    await session.close()


class LateTurnModel(FixedTurnModel):
    """Smart Turn on a loaded CPU: it answers only once ``answer`` is set."""

    def __init__(self, probability: float) -> None:
        super().__init__(probability)
        self.answer = threading.Event()

    def probability(self, audio16k: np.ndarray) -> float:
        self.answer.wait(10)
        return super().probability(audio16k)


async def test_a_turn_smart_turn_has_not_judged_by_the_doubts_silence_is_counted_apart() -> None:
    """The words read complete and Smart Turn is slow: the doubt's silence confirms the
    turn as it would a doubted one, but counted as ``judged_unanswered``, so a bench
    tells a late model from one that doubts."""
    ears, model = Ears(), LateTurnModel(0.1)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model)
    doubted, unanswered = turn_ends("judged_after_doubt"), turn_ends("judged_unanswered")
    try:
        await feed(session, voiced(0.6))
        await feed(session, silence(DOUBT_FRAMES + 5), realtime=True)
        (end,) = await io.wait_for(TtsEnd)
        assert len(io.frames) == end.frames > 0
        assert model.calls == 0  # still thinking
        assert turn_ends("judged_unanswered") == unanswered + 1
        assert turn_ends("judged_after_doubt") == doubted
    finally:
        model.answer.set()
        await session.close()


async def test_speech_before_a_doubted_turn_is_confirmed_continues_it_unheard() -> None:
    ears, model = Ears(), FixedTurnModel(0.1)
    ears.words = "What time is it?"
    worker = FakeWorker()
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 10), realtime=True)  # doubted at the pause
    await eventually(lambda: bool(worker.texts), every_s=0.005)  # the reply is under way
    await feed(session, voiced(0.4))  # ... and the user goes on
    await feed(session, silence(DOUBT_FRAMES + 5))  # the second pause's doubt ends it
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert ends[0].frames == 0  # not a sound of the first reply
    assert [s.turn for s in io.of(TtsStart)] == [ends[1].turn]
    assert {r.turn for r in io.of(ReplyText)} == {ends[1].turn}  # not a word of the first
    assert len(io.frames) == ends[1].frames > 0
    assert ears.heard[-1] > 0.6 + 0.4  # seconds: the whole turn, both parts
    await session.close()


async def test_a_provisional_end_sounds_when_the_client_stops_sending_audio() -> None:
    """No frames, no silence to count: the hold's limit (the doubt's remaining silence
    and an onset's run) lets the doubted turn's reply speak."""
    ears, model = Ears(), FixedTurnModel(0.1)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 2), realtime=True)  # and then nothing
    (end,) = await io.wait_for(TtsEnd, timeout_s=5)
    assert not end.interrupted
    assert len(io.frames) == end.frames > 0
    await session.close()


async def test_speech_right_after_a_turn_judged_complete_continues_it() -> None:
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "I would like a pizza."  # the judges are wrong about this one
    worker = FakeWorker(frames_per_chunk=40, frame_s=0.004)  # 160 ms of audio per word
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    await io.wait_for(TtsStart)  # the reply began: the turn was judged complete
    first_utterance = ears.heard[-1]
    ears.words = "I would like a pizza with mushrooms."
    await feed(session, voiced(0.6))  # ... the user goes on
    await feed(session, silence(END_FRAMES + 5))
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted  # the early reply was cancelled ...
    assert io.flushes == 1  # ... and what the client had of it dropped
    assert [(b.action, b.flush) for b in io.of(BargeIn)] == [("stop", True)]
    # The whole turn was transcribed at once, and answered in one reply.
    assert ears.heard[-1] > first_utterance + 0.6
    second = "".join(r.text for r in io.of(ReplyText) if r.turn == ends[1].turn)
    assert second == "I would like a pizza with mushrooms."
    assert session._history[0] == {"role": "user", "content": second}  # the cut one is gone
    await session.close()


def holds(outcome: str) -> float:
    return REGISTRY.get_sample_value("duplex_reply_holds_total", {"outcome": outcome}) or 0.0


class Lagging:
    """webrtcvad a frame late, as Silero's 32 ms chunks make it: a word's first frame is
    loud before it is speech."""

    def __init__(self) -> None:
        self._vad, self._last = WebRtcClassifier(), False

    def is_speech(self, frame: np.ndarray) -> bool:
        last, self._last = self._last, self._vad.is_speech(frame)
        return last


async def judged_then_replying(
    sound_hold_max_s: float, classifier: Callable[[], FrameClassifier] = WebRtcClassifier
) -> tuple[VoiceSession, Recorded, Ears]:
    """A turn judged complete at its pause whose reply's first frame is 200 ms away,
    and the first frame of the user's next word heard meanwhile."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "What time does the museum, please?"  # the judges are wrong about this one
    worker = FakeWorker(frames_per_chunk=1, frame_s=0.2)
    session, io = await session_with(
        ears, model, worker, sound_hold_max_s=sound_hold_max_s, classifier=classifier
    )
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 1), realtime=True)
    await eventually(lambda: bool(worker.texts), every_s=0.005)  # the reply is under way
    await feed(session, voiced(0.02))  # the user's next word begins
    reply = session._reply
    assert reply is not None
    await eventually(lambda: reply.holding, every_s=0.005)  # the first frame came, and waits
    return session, io, ears


@pytest.mark.parametrize(
    "classifier", [WebRtcClassifier, Lagging], ids=["speech-frame", "loud-frame"]
)
async def test_a_reply_cancelled_by_the_user_going_on_never_reaches_the_client_as_sound(
    classifier: Callable[[], FrameClassifier],
) -> None:
    before = holds("withdrawn")
    session, io, ears = await judged_then_replying(10.0, classifier)
    assert io.frames == []  # held, though its first frame is here
    assert io.of(TtsStart) == []
    ears.words = "What time does the museum open tomorrow?"
    await feed(session, voiced(0.5))  # an onset: the turn goes on
    await feed(session, silence(END_FRAMES + 5))
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert ends[0].frames == 0
    assert holds("withdrawn") == before + 1
    # Nothing of the first reply was heard or shown; the whole question was answered.
    assert [s.turn for s in io.of(TtsStart)] == [ends[1].turn]
    assert {r.turn for r in io.of(ReplyText)} == {ends[1].turn}
    assert len(io.frames) == ends[1].frames > 0
    await session.close()


@pytest.mark.parametrize("speech_after", [True, False])
async def test_a_held_reply_speaks_when_no_onset_comes(speech_after: bool) -> None:
    """A click after the turn (its run of speech ends), or a client that stops sending
    audio (the hold's limit): the reply speaks, whole."""
    before = holds("spoke")
    session, io, ears = await judged_then_replying(10.0 if speech_after else 0.6)
    if speech_after:
        await feed(session, silence(3))
    (end,) = await io.wait_for(TtsEnd)
    assert not end.interrupted
    assert len(io.frames) == end.frames == len(ears.words.split())  # a frame a word
    assert holds("spoke") == before + 1
    await session.close()


@pytest.mark.parametrize(
    ("audio_s", "pad_s", "step_s", "window_s"),
    [
        (2.4, 1.0, 5.0, 5.0),
        (4.0, 1.0, 5.0, 5.0),
        (4.1, 1.0, 5.0, 10.0),
        (2.4, 3.0, 5.0, 10.0),
        (12.0, 1.0, 5.0, 15.0),
        (29.5, 1.0, 5.0, 30.0),  # never past Whisper's 30 s
        (2.4, 1.0, 0.0, 30.0),  # step 0: the full window, as Whisper pads
    ],
)
def test_the_encoder_window_fits_the_utterance_in_steps(
    audio_s: float, pad_s: float, step_s: float, window_s: float
) -> None:
    assert window_frames(round(audio_s * 100), pad_s, step_s) == round(window_s * 100)


@pytest.mark.parametrize(
    ("audio_s", "pad_s", "step_s", "windows_s"),
    [
        (2.6, 2.0, 1.0, [5.0, 10.0, 30.0]),  # fitted, 3 s more padding in 5 s steps, 30 s
        (2.6, 3.0, 5.0, [10.0, 30.0]),  # the retry's window is the first one: tried once
        (26.0, 2.0, 1.0, [28.0, 30.0]),
        (2.6, 2.0, 0.0, [30.0]),  # Whisper's own window: nothing else to try
    ],
)
def test_a_looping_decode_is_tried_again_on_longer_windows_up_to_30_s(
    audio_s: float, pad_s: float, step_s: float, windows_s: list[float]
) -> None:
    windows = windows_to_try(round(audio_s * 100), pad_s, step_s)
    assert windows == [round(w * 100) for w in windows_s]


def test_the_window_is_padded_with_silence_as_whisper_was_trained_not_with_zeros() -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    rng = np.random.default_rng(1)
    speech = (0.3 * rng.standard_normal(16000)).astype(np.float32)  # 1 s
    features = window_features(FeatureExtractor(), speech, 500)  # a 5 s window
    assert features.shape == (80, 500)
    floor = features.max() - 2.0  # the log-mel floor: 8 (log10) below the peak, over 4
    assert np.allclose(features[:, 110:], floor)  # the padding, past the speech
    assert np.all(features[:, 110:] != 0.0)
    longer = window_features(FeatureExtractor(), np.tile(speech, 40), 3000)
    assert longer.shape == (80, 3000)  # cut to Whisper's 30 s


def test_a_looping_decode_is_recognised() -> None:
    assert looks_looped("What is the weather like? " * 8)
    assert looks_looped("How far is it to the sea? How far is it to the sea?")
    assert not looks_looped("What is the weather like in Paris today?")
    assert not looks_looped("")


def test_smart_turn_is_pinned_alike_in_the_makefile_the_image_and_the_code() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "services" / "orchestrator" / "Dockerfile").read_text()
    assert f"PIPECAT_VERSION := {PIPECAT_VERSION}" in makefile
    assert f"ARG PIPECAT_VERSION={PIPECAT_VERSION}" in dockerfile
    assert "--no-deps pipecat-ai==$(PIPECAT_VERSION)" in makefile


def test_without_pipecat_the_error_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SmartTurnMissing) as missing:
        find_model()
    assert f"uv pip install --no-deps pipecat-ai=={PIPECAT_VERSION}" in str(missing.value)
    assert "--end-of-turn transcript" in str(missing.value)


def test_the_orchestrator_refuses_to_start_with_a_missing_smart_turn_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        orchestrator_main(["--dev", "--smart-turn-model", str(tmp_path / "gone.onnx")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "gone.onnx" in err
    assert len(err.strip().splitlines()) == 1


def test_the_pause_must_be_shorter_than_the_silence_that_ends_any_turn() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_pause_ms": 600, "vad_end_ms": 500})
    assert "end_of_turn_pause_ms" in str(bad.value)
    config = build_config({"dev": True, "end_of_turn": "silence"})
    assert config.turn_silence_ms(judged=False) == 500
    assert build_config({"dev": True}).turn_silence_ms(judged=True) == 1000


def test_a_doubt_waits_longer_than_the_pause() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_doubt_ms": 200})  # the pause is 200 ms
    assert "end_of_turn_doubt_ms (200) must be longer than end_of_turn_pause_ms" in str(bad.value)
    assert build_config({"dev": True}).end_of_turn_doubt_ms == 500


@pytest.mark.parametrize(
    ("settings", "frames"),
    [
        ({}, 6),  # 120 ms
        ({"speculate_ms": 160}, 8),  # never before the first gap
        ({"speculate_busy_ms": 0}, 0),
        ({"speculate_ms": 0}, 0),  # no speculation at all
    ],
)
def test_under_load_speculation_waits_for_a_longer_silence(
    settings: dict[str, int], frames: int
) -> None:
    assert busy_gap_frames(build_config({"dev": True, **settings})) == frames


def test_the_busy_gap_comes_before_the_pause() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "speculate_busy_ms": 200})  # the pause is 200 ms
    assert "speculate_busy_ms (200) must be shorter than end_of_turn_pause_ms" in str(bad.value)


def test_speculation_starts_before_the_pause_or_not_at_all() -> None:
    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "speculate_ms": 200})  # the pause is 200 ms
    assert "speculate_ms (200) must be shorter than end_of_turn_pause_ms (200)" in str(bad.value)
    assert build_config({"dev": True, "speculate_ms": 0}).speculate_ms == 0
    assert build_config({"dev": True}).speculate_ms == 60


@pytest.mark.parametrize(
    ("text", "cut", "said"),
    [
        ("Call my sister. Call my sister. Call", True, "Call my sister."),
        ("Call my sister. Call my sister.", False, "Call my sister."),
        ("How far is it? How far is it? How far is it?", False, "How far is it?"),
        ("Hi. Call my sister. Call my sister.", False, "Hi. Call my sister."),
        ("Call my sister. Call", False, None),  # ended by itself: the person said "Call"
        ("Call my sister. Then", True, None),  # cut, but not a repetition: try again
        ("Call my sister tonight.", True, None),
        # Its end said again, a loop too: the last word lies past the sound, and the
        # words would not read as complete (``EndOfTurn.last_word_min_s``).
        (
            "Can you buy flowers for my mother? Flowers for my mother?",
            False,
            "Can you buy flowers for my mother?",
        ),
        (
            "Can you buy flowers for my mother? For my mother? For",
            True,
            "Can you buy flowers for my mother?",
        ),
        ("Is it ready? Ready?", False, None),  # one word: kept
        ("Is it for my mother? For my father?", False, None),  # not its end
        ("", False, None),
    ],
)
def test_a_repeated_last_sentence_is_dropped_not_decoded_again(
    text: str, cut: bool, said: str | None
) -> None:
    assert before_repetition(text, cut=cut) == said


@pytest.mark.parametrize("budget", [1, 3, 4, 5, 16, 25, 100, 224])
def test_the_max_length_asked_of_ctranslate2_allows_the_whole_budget(budget: int) -> None:
    prompt = 4  # start of transcript, language, task, no timestamps
    max_length = generate_max_length(budget, prompt, 448)
    # CTranslate2's Whisper stops at half its max_length: asking for prompt + budget
    # would allow half the budget and never report a decode as cut short.
    assert new_token_cap(max_length, prompt) >= budget
    assert new_token_cap(max_length - 1, prompt) < budget  # and no more than needed


def test_the_token_budget_outlasts_fast_speech_and_cuts_a_loop_short() -> None:
    for seconds in (1, 2.5, 5, 10, 29):
        budget = token_budget(round(seconds * 100))
        assert budget >= 5 * seconds + 5  # above the 3-4.3 tokens a second measured
        assert budget <= 7 * seconds + 12  # a loop costs a few words' time, not seconds
    assert new_token_cap(generate_max_length(10**4, 4, 448), 4) == 224  # the model's limit


class TinyTokenizer:
    """Five tokens and the end of text, as faster-whisper's tokenizer decodes them."""

    pieces = (" what", "?", ".", "...", "?!")
    eot = len(pieces)

    def decode(self, tokens: list[int]) -> str:
        return "".join(self.pieces[t] for t in tokens)


def test_a_sentence_ends_on_its_punctuation_or_the_end_of_text_not_an_ellipsis() -> None:
    assert sentence_end_tokens(TinyTokenizer()) == [1, 2, 4, 5]  # "...": trailing off


def test_whispers_doubt_is_read_where_the_kept_text_ends_not_at_a_repetition() -> None:
    decode = TinyTokenizer().decode
    looped = [0, 1, 0, 1]  # " what? what?": the loop is dropped, "what?" kept
    assert closing_step(looped, "what?", decode) == 1  # the first "?", not the last
    assert closing_step(looped, "what? what?", decode) == 3
    assert closing_step([0], "what?", decode) is None  # no prefix says it


def test_the_probability_of_a_sentence_end_is_the_softmax_mass_of_its_tokens() -> None:
    logits = np.log(np.array([0.5, 0.2, 0.1, 0.15, 0.05], np.float32)) + 7.0
    assert probability_of(logits, [1, 2, 4]) == pytest.approx(0.35)
    suppressed = np.array([np.finfo(np.float32).min, 1.0, 1.0], np.float32)  # as CTranslate2
    assert probability_of(suppressed, [1]) == pytest.approx(0.5)


def test_whispers_doubt_is_read_before_the_repetition_penalty() -> None:
    """CTranslate2's returned logits carry its penalty on the tokens written so far (a
    positive logit divided, a negative one multiplied, once per token however often it
    was written): undone, the step's logits are the model's own."""
    own = np.array([4.0, -2.0, 3.0, 1.5, np.finfo(np.float32).min], np.float32)
    penalized = own.copy()
    penalized[[0, 1]] = np.array([4.0 / 1.1, -2.0 * 1.1], np.float32)
    restored = without_penalty(penalized, [1, 0, 1, 4], 1.1)
    np.testing.assert_allclose(restored[:4], own[:4], rtol=1e-6)
    assert restored[4] < -1e37  # a suppressed token stays out of reach
    assert probability_of(restored, [2]) == pytest.approx(probability_of(own, [2]))
    assert probability_of(penalized, [2]) > probability_of(own, [2])  # what it would be
    assert without_penalty(penalized, [], 1.1) is penalized
    assert without_penalty(penalized, [0], 1.0) is penalized


def test_the_question_end_threshold_is_a_probability_and_reaches_the_policy() -> None:
    from duplex_orchestrator.app import end_of_turn

    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_question_end": 1.5})
    assert "end_of_turn_question_end" in str(bad.value)
    config = build_config({"dev": True, "end_of_turn_question_end": 0.7})
    assert end_of_turn(config).question_end == 0.7
    assert end_of_turn(build_config({"dev": True})).question_end == 0.85
