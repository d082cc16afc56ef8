"""The session core in process: real VAD and turn logic, fake ears, fake workers, no transport.

Audio goes in as 16 kHz frames (what every transport hands the core); what
comes out is read as typed events and 20 ms frames from a recording
``SessionIO``. Nothing here starts a process or opens a socket.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from duplex_orchestrator.events import (
    Asr,
    BargeIn,
    Error,
    Latency,
    ModelState,
    Pong,
    Ready,
    ReplyText,
    TtsEnd,
    TtsStart,
    VadState,
)
from duplex_orchestrator.llm import HISTORY_CHARS, EchoBridge, LLMError
from duplex_orchestrator.protocol import (
    Interrupt,
    Model,
    Ping,
    ProtocolError,
    Say,
    Start,
    Text,
    UserText,
)
from duplex_orchestrator.session import Services, VoiceSession
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.session_io import Recorded

END_FRAMES = 10  # 200 ms of silence ends a turn here


class BrokenLLM:
    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        yield "Partly"
        raise LLMError("the LLM endpoint answered 500")


class WordlessLLM:
    """Answers with blank deltas only, as a model whose tokens all went to reasoning;
    counts the streams closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        try:
            yield ""
            yield " \n"
        finally:
            self.closed += 1


class EndlessLLM:
    """Streams a reply a word at a time for as long as it is read, keeping each stream
    (so only the session can end one: collecting it would end it too) and counting
    the streams ended."""

    def __init__(self) -> None:
        self.streams: list[AsyncIterator[str]] = []
        self.ended = 0

    def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        stream = self._words()
        self.streams.append(stream)
        return stream

    async def _words(self) -> AsyncIterator[str]:
        try:
            for i in range(1000):
                yield f"Word {i}." if i == 0 else f" Word {i}."
        finally:
            self.ended += 1


class RecordingLLM:
    """Answers its first question with ``first``, every later one with "Okay.";
    keeps the history each question came with."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.histories: list[list[dict[str, str]]] = []

    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        self.histories.append([dict(m) for m in history])
        answer = self.first if len(self.histories) == 1 else "Okay."
        for word in re.findall(r"\s*\S+", answer):  # the words with the space before each
            yield word


async def say_aloud(session: VoiceSession, seconds: float = 0.6) -> None:
    """Speech then enough silence to end the turn, in 20 ms frames at 16 kHz."""
    audio = np.concatenate([voiced(seconds), np.zeros(320 * (END_FRAMES + 5), np.int16)])
    for i in range(0, len(audio), 320):
        await session.audio(audio[i : i + 320])
        await asyncio.sleep(0)


async def speak_over(session: VoiceSession, seconds: float = 0.4) -> None:
    """Speech onset only (no end yet): enough to barge in."""
    audio = voiced(seconds)
    for i in range(0, len(audio), 320):
        await session.audio(audio[i : i + 320])


def session_registry(session: VoiceSession) -> FakeRegistry:
    registry = session._services.registry
    assert isinstance(registry, FakeRegistry)
    return registry


def setup(
    *workers: FakeWorker, llm: object | None = None, history_chars: int = HISTORY_CHARS
) -> tuple[VoiceSession, Recorded, Ears]:
    io, ears = Recorded(), Ears()
    services = Services(
        registry=FakeRegistry(*(workers or (FakeWorker(),))),
        transcriber=ears,
        llm=llm or EchoBridge(),  # type: ignore[arg-type]
        default_model="mock",
        end_frames=END_FRAMES,
        history_chars=history_chars,
    )
    return VoiceSession(io, services), io, ears


async def started(
    *workers: FakeWorker, llm: object | None = None, history_chars: int = HISTORY_CHARS
) -> tuple[VoiceSession, Recorded, Ears]:
    session, io, ears = setup(*workers, llm=llm, history_chars=history_chars)
    await session.handle(Start(model="", sample_rate=16000))
    return session, io, ears


async def test_a_spoken_turn_is_transcribed_answered_and_spoken() -> None:
    worker = FakeWorker()
    session, io, _ = await started(worker)
    assert io.of(Ready)[0].model == "mock"
    await say_aloud(session)
    end = (await io.wait_for(TtsEnd))[0]
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert [e.text for e in io.of(Asr) if e.final] == ["hello there"]
    final = next(e for e in io.of(Asr) if e.final)
    assert final.end_of_turn_ms is not None
    assert final.end_of_turn_ms >= END_FRAMES * 20  # the silence that ended the turn
    assert "".join(e.text for e in io.of(ReplyText)) == "hello there"
    assert worker.texts == ["hello", " there"]
    assert io.of(TtsStart)[0].model == "mock"
    assert end.frames == 10
    assert not end.interrupted
    assert len(io.frames) == 10
    assert all(len(f) == 1920 for f in io.frames)
    latency = io.of(Latency)[0]
    assert latency.voice_to_voice_ms is not None
    assert latency.voice_to_voice_ms > 0
    await session.close()
    assert worker.ended == ["fake-0-s1"]  # the worker session ended with the reply


async def test_speech_over_a_reply_pauses_it_and_noise_resumes_it() -> None:
    worker = FakeWorker(frames_per_chunk=150, frame_s=0.004)
    session, io, ears = await started(worker)
    await session.handle(Say("A long reply."))
    await io.wait_for(TtsStart)
    ears.words = ""  # a cough: no words
    await say_aloud(session, 0.3)
    await io.wait_for(TtsEnd)
    barge = io.of(BargeIn)
    assert [(b.action, b.flush) for b in barge] == [("pause", True), ("resume", None)]
    assert io.flushes == 1  # the transport dropped its queued audio at once
    assert worker.controls == ["pause", "resume"]
    assert io.of(TtsEnd)[0].frames == 150
    assert not io.of(TtsEnd)[0].interrupted
    await session.close()


async def test_words_over_a_reply_stop_it_and_are_answered() -> None:
    worker = FakeWorker(frames_per_chunk=150, frame_s=0.004)
    session, io, ears = await started(worker)
    await session.handle(Say("A long reply."))
    await io.wait_for(TtsStart)
    ears.words = "wait stop"
    await say_aloud(session, 0.3)
    ends = await io.wait_for(TtsEnd, 2)
    assert [(b.action, b.flush) for b in io.of(BargeIn)] == [("pause", True), ("stop", None)]
    assert worker.controls[:2] == ["pause", "stop"]
    assert ends[0].turn == 1
    assert ends[0].interrupted
    assert ends[1].turn == 2
    assert not ends[1].interrupted
    assert "".join(r.text for r in io.of(ReplyText) if r.turn == 2) == "wait stop"
    await session.close()


async def test_interrupt_stops_the_reply_and_flushes_the_client() -> None:
    worker = FakeWorker(frames_per_chunk=500, frame_s=0.004)
    session, io, _ = await started(worker)
    await session.handle(Say("A very long reply."))
    await io.wait_for(TtsStart)
    await session.handle(Interrupt())
    end = (await io.wait_for(TtsEnd))[0]
    assert end.interrupted
    assert end.frames < 500
    assert worker.controls == ["stop"]
    assert io.flushes == 1
    assert io.of(BargeIn)[-1].action == "stop"
    await session.handle(Say("Instead."))  # the client holds nothing of it now
    await io.wait_for(TtsEnd, 2)
    assert io.flushes == 1
    assert [b.action for b in io.of(BargeIn)] == ["stop"]
    await session.close()


async def test_a_reply_stopped_mid_stream_ends_its_llm_stream_with_it() -> None:
    """An OpenAI-compatible LLM's HTTP stream closes when its reply is stopped, so the
    model stops writing; not whenever the abandoned generator would be collected."""
    worker = FakeWorker(frames_per_chunk=50, frame_s=0.004)
    llm = EndlessLLM()
    session, io, _ = await started(worker, llm=llm)
    await say_aloud(session)
    await io.wait_for(TtsStart)
    await session.handle(Interrupt())  # returns once the reply is over
    assert (await io.wait_for(TtsEnd))[0].interrupted
    assert len(llm.streams) == 1
    assert llm.ended == 1
    await session.close()


@pytest.mark.parametrize("second", ["say", "text"])
async def test_a_new_reply_stops_the_one_sounding_and_flushes_the_client(second: str) -> None:
    """A `say` or text stream over a reply replaces it: the client used to be left to
    play what it held of the old reply (the worker's lead and its own cushion) before
    the new one, as if it had not been stopped."""
    worker = FakeWorker(frames_per_chunk=500, frame_s=0.004)
    session, io, _ = await started(worker)
    await session.handle(Say("A very long reply."))
    await io.wait_for(TtsStart)
    if second == "say":
        await session.handle(Say("Instead."))
    else:
        await session.handle(Text("Instead.", final=True))
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert ends[0].frames < 500
    assert not ends[1].interrupted
    assert io.flushes == 1
    assert (io.of(BargeIn)[0].action, io.of(BargeIn)[0].flush) == ("stop", True)
    kinds = [type(e).__name__ for e in io.events]
    new_start = max(i for i, kind in enumerate(kinds) if kind == "TtsStart")
    assert kinds.index("TtsEnd") < kinds.index("BargeIn") < new_start
    await session.close()


async def test_a_text_stream_starts_its_reply_at_its_first_words() -> None:
    """Blank deltas (an LLM's first chunk is often empty) start no reply and stop none;
    a stream that ends blank is an error, as an empty `say` is: it used to be answered
    by a reply of one silent frame."""
    worker = FakeWorker(frames_per_chunk=500, frame_s=0.004)
    session, io, _ = await started(worker)
    await session.handle(Say("A very long reply."))
    await io.wait_for(TtsStart)
    await session.handle(Text("", final=False))
    await session.handle(Text("  ", final=False))
    await asyncio.sleep(0.05)
    assert (len(io.of(TtsStart)), io.of(TtsEnd), io.flushes) == (1, [], 0)
    await session.handle(Text("Instead.", final=True))
    ends = await io.wait_for(TtsEnd, 2)
    assert [end.interrupted for end in ends] == [True, False]
    spoken = "".join(e.text for e in io.of(ReplyText) if e.turn == ends[1].turn)
    assert spoken.strip() == "Instead."
    with pytest.raises(ProtocolError, match="ended empty") as empty:
        await session.handle(Text("", final=True))
    assert empty.value.code == "bad_message"
    await session.handle(Text(" ", final=False))
    with pytest.raises(ProtocolError, match="ended empty"):
        await session.handle(Text("\n", final=True))
    await asyncio.sleep(0.05)
    assert len(io.of(TtsStart)) == 2  # neither blank stream was spoken
    await session.handle(Text("Again.", final=True))  # the next stream is spoken
    assert len(await io.wait_for(TtsEnd, 3)) == 3
    await session.close()


async def test_a_new_reply_over_a_paused_one_does_not_flush_again() -> None:
    """Paused by speech, the client already dropped what it held: no second flush, and
    no `stop` event for a reply the client no longer hears."""
    worker = FakeWorker(frames_per_chunk=500, frame_s=0.004)
    session, io, ears = await started(worker)
    await session.handle(Say("A very long reply."))
    await io.wait_for(TtsStart)
    ears.words = ""  # a cough, heard as no words
    await speak_over(session)
    await io.wait_for(BargeIn)
    await session.handle(Say("Instead."))
    await say_aloud(session, 0.0)  # the cough ends
    await io.wait_for(TtsEnd, 2)
    assert io.flushes == 1
    # the onset's pause; the new reply waiting, unheard, while the user speaks; a cough
    actions = [(b.action, b.flush) for b in io.of(BargeIn)]
    assert actions == [("pause", True), ("pause", False), ("resume", None)]
    await session.close()


async def test_an_llm_that_answers_no_text_is_an_llm_error_and_the_session_goes_on() -> None:
    """It used to be a reply of silence: the client heard nothing and was told nothing."""
    llm = WordlessLLM()
    session, io, _ = await started(llm=llm)
    await say_aloud(session)
    error = (await io.wait_for(Error))[0]
    assert (error.code, error.message) == (
        "llm_failed",
        "the LLM answered with no text: nothing to say",
    )
    assert llm.closed == 1
    await session.handle(Say("Still speaking."))
    assert not (await io.wait_for(TtsEnd, 2))[-1].interrupted
    await session.close()


async def test_a_model_resident_nowhere_is_loaded_once_and_used_when_resident() -> None:
    worker = FakeWorker(models=frozenset({"mock", "other"}))
    session, io, _ = await started(worker)
    await session.handle(Model("other"))
    await session.handle(Model("other"))
    assert worker.loads == ["other"]  # one LoadModel, however often asked
    state = io.of(ModelState)[0]
    assert (state.requested, state.active, state.loading) == ("other", "mock", True)
    await session.handle(Say("Meanwhile."))
    await io.wait_for(TtsEnd)
    assert io.of(TtsStart)[-1].model == "mock"  # the fallback speaks while it loads
    worker.resident = frozenset({"mock", "other"})
    await session.handle(Say("Now."))
    await io.wait_for(TtsEnd, 2)
    assert io.of(TtsStart)[-1].model == "other"
    await session.close()


async def test_unknown_models_and_early_messages_are_refused_and_the_session_goes_on() -> None:
    session, io, _ = setup(FakeWorker())
    with pytest.raises(ProtocolError) as early:
        await session.handle(Say("too soon"))
    assert early.value.code == "not_started"
    with pytest.raises(ProtocolError) as unknown:
        await session.handle(Start(model="nope", sample_rate=16000))
    assert unknown.value.code == "unknown_model"
    assert "mock" in str(unknown.value)
    await session.handle(Start(model="mock", sample_rate=16000))
    with pytest.raises(ProtocolError):
        await session.handle(Model("nope"))
    await session.handle(Ping())
    await session.handle(Say("Still here."))
    await io.wait_for(TtsEnd)
    assert io.of(Pong)
    assert io.of(TtsStart)[0].model == "mock"
    await session.close()


async def test_a_failing_worker_recognizer_or_llm_is_an_error_event_and_the_session_goes_on() -> (
    None
):
    worker = FakeWorker(fail_with=grpc.StatusCode.INTERNAL)
    session, io, ears = await started(worker, llm=BrokenLLM())
    await session.handle(Say("Hello."))
    await io.wait_for(Error)
    assert io.of(Error)[0].code == "tts_failed"
    worker.fail_with = None
    ears.fail = True
    await say_aloud(session)
    errors = await io.wait_for(Error, 2)
    assert errors[1].code == "asr_failed"
    ears.fail = False
    await say_aloud(session)
    errors = await io.wait_for(Error, 3)
    assert errors[2].code == "llm_failed"
    assert "500" in errors[2].message
    assert [e.code for e in errors] == ["tts_failed", "asr_failed", "llm_failed"]
    # The LLM failed, not the worker: it is not blamed, and nothing is retried on another.
    assert session_registry(session).unhealthy == []
    await session.handle(Say("Still speaking."))
    ends = await io.wait_for(TtsEnd, 2)  # the LLM's partial reply, then this one
    assert not ends[-1].interrupted
    assert ends[-1].frames == 5
    await session.close()


async def test_closing_mid_reply_stops_and_ends_the_worker_session() -> None:
    worker = FakeWorker(frames_per_chunk=500, frame_s=0.004)
    session, io, _ = await started(worker)
    await session.handle(Say("A very long reply."))
    await io.wait_for(TtsStart)
    await session.close()
    assert worker.controls == ["stop"]
    assert worker.ended == ["fake-0-s1"]


LONG_ANSWER = " ".join(f"Sentence number {i} of a long answer." for i in range(30))


async def test_the_llm_is_given_the_whole_of_a_reply_heard_to_its_end() -> None:
    llm = RecordingLLM("The museum opens at nine.")
    session, io, _ = await started(FakeWorker(frames_per_chunk=2, frame_s=0.001), llm=llm)
    await say_aloud(session)
    await io.wait_for(TtsEnd)
    await say_aloud(session)
    await io.wait_for(TtsEnd, 2)
    assert llm.histories[1] == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "The museum opens at nine."},
    ]
    await session.close()


async def test_the_llm_is_given_only_what_was_heard_of_a_reply_cut_off() -> None:
    """A reply stopped by words over it went into the history whole: the LLM then
    answered as if the user had heard what they had cut off."""
    llm = RecordingLLM(LONG_ANSWER)
    worker = FakeWorker(frames_per_chunk=20, frame_s=0.004)  # 5 times faster than it plays
    session, io, ears = await started(worker, llm=llm)
    await say_aloud(session)
    await io.wait_for(TtsStart)
    await asyncio.sleep(1.0)  # the client plays ~1 s of it: a few words
    ears.words = "wait stop"
    await say_aloud(session, 0.3)
    await io.wait_for(TtsEnd, 2)
    said = llm.histories[1][1]
    assert said["role"] == "assistant"
    assert said["content"].endswith("…")
    heard = said["content"].removesuffix("…")
    assert LONG_ANSWER.startswith(heard)
    assert heard  # ~1 s at 16 characters a second: a word or two
    assert len(heard) < len("".join(worker.texts))  # not all the worker had been given
    assert llm.histories[1][0] == {"role": "user", "content": "hello there"}
    await session.close()


async def test_an_llms_markdown_and_emoji_are_not_spoken_or_shown() -> None:
    llm = RecordingLLM("**Sure!** Two kinds:\n- *Margherita* 🍕\n- Pepperoni")
    worker = FakeWorker(frames_per_chunk=1, frame_s=0.001)
    session, io, _ = await started(worker, llm=llm)
    await say_aloud(session)
    await io.wait_for(TtsEnd)
    spoken = "Sure! Two kinds:\nMargherita.\nPepperoni"
    assert "".join(worker.texts) == spoken
    assert "".join(e.text for e in io.of(ReplyText)) == spoken
    await session.close()


@pytest.mark.parametrize(
    ("history_chars", "given"),
    [(HISTORY_CHARS, 14), (60, 7)],  # each turn 12 characters, each answer 5 or 18
    ids=["the default", "a small budget"],
)
async def test_the_llm_is_given_the_conversation_as_far_back_as_its_budget(
    history_chars: int, given: int
) -> None:
    """The LLM was given the latest 10 messages, whatever they held: after five turns it
    forgot the first (a name, an order), though its context had room for far more."""
    llm = RecordingLLM("My name is duplex.")
    worker = FakeWorker(frames_per_chunk=1, frame_s=0.001)
    session, io, ears = await started(worker, llm=llm, history_chars=history_chars)
    for turn in range(8):
        ears.words = f"Question {turn:02}."
        await say_aloud(session)
        await io.wait_for(TtsEnd, turn + 1)
    last = llm.histories[-1]
    assert len(last) == given
    assert last[-1] == {"role": "assistant", "content": "Okay."}
    assert sum(len(m["content"]) for m in last) <= history_chars
    if given == 14:
        assert last[:2] == [
            {"role": "user", "content": "Question 00."},
            {"role": "assistant", "content": "My name is duplex."},
        ]
    assert len(session._replies.history) == given + 2  # nothing older is kept
    await session.close()


async def test_what_a_client_has_the_agent_say_is_in_the_llms_history() -> None:
    """A greeting sent with ``say`` was spoken but unknown to the LLM, which then
    greeted the user again (LiveKit's ``session.say`` adds it to the chat by default)."""
    llm = RecordingLLM("Sure.")
    session, io, _ = await started(FakeWorker(frames_per_chunk=1, frame_s=0.001), llm=llm)
    await session.handle(Say("Hi, I am the pizza bot. What would you like?"))
    await io.wait_for(TtsEnd)
    await say_aloud(session)
    await io.wait_for(TtsEnd, 2)
    assert llm.histories[0] == [
        {"role": "assistant", "content": "Hi, I am the pizza bot. What would you like?"}
    ]
    await session.close()


async def test_a_typed_turn_is_answered_as_spoken_words_are() -> None:
    """There was no way to give the agent a turn as text: ``say`` speaks a text as the
    agent's own (LiveKit's rooms take typed chat as the user's input)."""
    llm = RecordingLLM("A long answer that goes on for a while.")
    worker = FakeWorker(frames_per_chunk=50, frame_s=0.004)  # 1 s of audio a word
    session, io, _ = await started(worker, llm=llm)
    await session.handle(UserText("What is on the menu?"))
    await io.wait_for(TtsStart)
    await asyncio.sleep(0.6)  # a word or two heard
    await session.handle(UserText("Just the pizzas, please."))  # over the first answer
    ends = await io.wait_for(TtsEnd, 2)
    assert ends[0].interrupted
    assert io.flushes == 1  # what the client held of the first answer was dropped
    assert "".join(r.text for r in io.of(ReplyText) if r.turn == ends[1].turn) == "Okay."
    assert llm.histories[1][0] == {"role": "user", "content": "What is on the menu?"}
    assert llm.histories[1][1]["content"].endswith("…")  # what was heard of it
    assert not io.of(Asr)  # nothing was transcribed
    await session.close()
