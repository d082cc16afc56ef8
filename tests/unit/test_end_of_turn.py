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
from duplex_orchestrator.cli import orchestrator_main
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.endpoint import EndOfTurn, EndOfTurnMode, Verdict
from duplex_orchestrator.events import Asr, BargeIn, ReplyText, TtsEnd, TtsStart, VadState
from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.protocol import Start, TurnDetection
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
    patience_max_frames: int = 0,
    pitch_rise_st: float = 3.0,
    pitch_first_fall_st: float | None = EndOfTurn.pitch_first_fall_st,
    unfinished_frames: int = 0,
    turn_detection: TurnDetection = "auto",
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
        patience_max_frames=patience_max_frames,
        unfinished_frames=unfinished_frames,
    )
    session = VoiceSession(io, services)
    await session.handle(Start(model="", sample_rate=16000, turn_detection=turn_detection))
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
    await only_the_whole_turns_reply_is_heard(io, ears, heard_s=0.6 + 0.4)
    await session.close()


async def only_the_whole_turns_reply_is_heard(io: Recorded, ears: Ears, heard_s: float) -> None:
    """Two replies: the first withdrawn without a sound or a word reaching the client,
    the second to the whole turn (more than ``heard_s`` of audio transcribed)."""
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert ends[0].frames == 0  # not a sound of the first reply
    assert [s.turn for s in io.of(TtsStart)] == [ends[1].turn]
    assert {r.turn for r in io.of(ReplyText)} == {ends[1].turn}  # not a word of the first
    assert len(io.frames) == ends[1].frames > 0
    assert ears.heard[-1] > heard_s  # seconds: the whole turn, both parts


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
    assert session._replies.history[0] == {"role": "user", "content": second}  # the cut one is gone
    await session.close()


async def test_a_barge_in_that_goes_on_keeps_the_reply_it_cut_off_in_the_history() -> None:
    """Words over a reply, ended at a pause and then gone on with: the reply they cut
    off went out of the LLM's history with them (it joined the history only once
    stopped, after the length the turn's end had counted), and the LLM forgot it."""
    ears, model = Ears(), FixedTurnModel(0.9)
    ears.words = "Tell me about the menu today."
    worker = FakeWorker(frames_per_chunk=20, frame_s=0.02)  # 0.4 s a word, in real time
    session, io = await session_with(ears, model, worker)
    await feed(session, voiced(0.6))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    await io.wait_for(TtsStart)
    # 1.2 s of it heard: past the second in which speech continues the turn it answers
    await feed(session, silence(60), realtime=True)
    ears.words = "Wait."
    await feed(session, voiced(0.4))
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    await io.wait_for(TtsStart, 2)  # "Wait." ended at the pause, and answered
    ears.words = "Wait. Make it a large one."
    await feed(session, voiced(0.6))  # ... and the user goes on
    await feed(session, silence(END_FRAMES + 5))
    await io.wait_for(TtsEnd, 3)
    await io.wait_for(TtsStart, 3)
    ends = await io.wait_for(TtsEnd, 3, timeout_s=10)
    assert not ends[-1].interrupted
    history = session._replies.history
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == "Tell me about the menu today."
    assert history[1]["content"].endswith("…")  # what was heard of the first reply
    assert history[2]["content"] == "Wait. Make it a large one."  # the whole turn, once
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
    reply = session._replies.current
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


def test_the_question_end_threshold_is_a_probability_and_reaches_the_policy() -> None:
    from duplex_orchestrator.app import end_of_turn

    with pytest.raises(ConfigError) as bad:
        build_config({"dev": True, "end_of_turn_question_end": 1.5})
    assert "end_of_turn_question_end" in str(bad.value)
    config = build_config({"dev": True, "end_of_turn_question_end": 0.7})
    assert end_of_turn(config).question_end == 0.7
    assert end_of_turn(build_config({"dev": True})).question_end == 0.85
