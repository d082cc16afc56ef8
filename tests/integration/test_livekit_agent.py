"""duplex's LiveKit agent, offline: the AgentSession a room job runs, with no room and no server.

Audio goes in through a scripted microphone (48 kHz frames in real time) and
comes out into an in-memory output that plays in real time. Utterances and
barge-in are duplex's VAD (Silero, the default), speech recognition is real Whisper
base, the LLM is duplex's echo bridge and the workers are in-process fakes. The
end of a turn is the VAD's silence, or duplex's judges (real Smart Turn) where
a room is ``judged``.
The room path itself (``entrypoint``) needs a LiveKit server: not run here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from functools import cache

import pytest
from livekit.agents import AgentSession, UserInputTranscribedEvent

from duplex_livekit import (
    Control,
    DuplexAgent,
    DuplexTTS,
    DuplexTurnDetector,
    TurnSilences,
    VoiceParts,
    voice_agent,
    voice_session,
)
from duplex_orchestrator import prosody
from duplex_orchestrator.app import end_of_turn
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import Verdict
from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.silero import SileroModel
from duplex_orchestrator.smart_turn import SmartTurn
from tests.support.fake_ears import Ears
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.livekit_input import ScriptedMicrophone
from tests.support.livekit_output import PlayedAudioOutput
from tests.support.speech import speech_16k
from tests.support.waiting import eventually
from tests.support.whisper import whisper


@dataclass
class Room:
    session: AgentSession[None]
    voice: DuplexTTS
    mic: ScriptedMicrophone
    output: PlayedAudioOutput
    worker: FakeWorker
    turns: DuplexTurnDetector | None = None
    heard: list[str] = field(default_factory=list)
    sent: list[dict[str, object]] = field(default_factory=list)

    async def send(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))


@cache
def _silero() -> SileroModel:
    return SileroModel()


@cache
def _smart_turn() -> SmartTurn:
    return SmartTurn()


def _judges(
    recognizer: object, silences: TurnSilences | None = None, judging: bool = True
) -> DuplexTurnDetector:
    """duplex's judges with the orchestrator's defaults (``--end-of-turn
    transcript+smart-turn``, Whisper started at the gap), as ``VoiceParts.from_config``
    builds them; ``silences``: other silences than the configuration's. Not ``judging``:
    the detector of ``--end-of-turn silence``, there for manual turns only."""
    config = OrchestratorConfig(dev=True)
    prosody.warm_up()  # as the room job's prewarm does
    default = TurnSilences.from_config(config)
    unjudged = replace(default, gap_ms=0, pause_ms=config.turn_silence_ms(judged=False))
    return DuplexTurnDetector(
        end_of_turn(config),
        silences or (default if judging else unjudged),
        _smart_turn(),
        recognizer=recognizer,  # type: ignore[arg-type]
        judging=judging,
    )


async def _room(
    worker: FakeWorker,
    recognizer: object,
    can_pause: bool = False,
    backchannels_resume: bool = True,
    judged: bool = False,
    silences: TurnSilences | None = None,
    turns: DuplexTurnDetector | None = None,
) -> AsyncIterator[Room]:
    parts = VoiceParts(
        recognizer=recognizer,  # type: ignore[arg-type]
        bridge=EchoBridge(),
        registry=FakeRegistry(worker),
        default_model="mock",
        classifier=_silero().classifier,  # the configuration's default VAD
        vad="silero",
        vad_onset_ms=40,
        turns=turns or (_judges(recognizer, silences) if judged else None),
    )
    session, voice = voice_session(parts)
    output = PlayedAudioOutput(can_pause=can_pause)
    room = Room(session, voice, ScriptedMicrophone(), output, worker, parts.turns)
    session.input.audio = room.mic
    session.output.audio = room.output

    @session.on("user_input_transcribed")
    def _heard(event: UserInputTranscribedEvent) -> None:
        if event.is_final:
            room.heard.append(event.transcript)

    await session.start(agent=voice_agent(backchannels_resume), record=False)
    yield room
    await session.aclose()
    await room.output.aclose()
    await voice.aclose()


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    async for room in _room(FakeWorker(frames_per_chunk=10, frame_s=0.02), whisper()):
        yield room


@pytest.fixture(params=[True, False], ids=["judged", "silence"])
async def any_room(request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    """Turns ended by duplex's judges (the agent's default), or by the VAD's silence."""
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    async for room in _room(worker, whisper(), judged=request.param):
        yield room


@pytest.fixture
async def quiet_room() -> AsyncIterator[Room]:
    """No speech: control messages only (fake ears, no Whisper)."""
    async for room in _room(FakeWorker(frames_per_chunk=5, frame_s=0.01), Ears()):
        yield room


async def test_the_agent_hears_a_spoken_question_and_answers_in_duplex_frames(
    any_room: Room,
) -> None:
    room = any_room
    room.mic.speak(speech_16k("What is the capital of France?"))
    await eventually(lambda: bool(room.heard), timeout_s=30)
    assert "capital of france" in room.heard[0].lower()
    # The echo bridge repeats the question; the worker got it as text deltas and spoke it.
    await eventually(lambda: "capital of France" in "".join(room.worker.texts), timeout_s=20)
    await eventually(lambda: len(room.output.played) >= 20, timeout_s=20)
    assert {(f.sample_rate, f.samples_per_channel) for f in room.output.captured} <= {
        (48000, 960),
        (48000, 480),  # livekit's emitter holds back a 10 ms tail to mark the last frame
    }


async def test_speaking_over_the_reply_clears_the_output_and_stops_the_worker(room: Room) -> None:
    room.worker.frames_per_chunk = 100  # 2 s per word: a long reply
    room.mic.speak(speech_16k("Tell me a long story about the sea."))
    await eventually(lambda: len(room.output.played) >= 25, timeout_s=30)
    room.mic.speak(speech_16k("Stop, tell me about Paris instead."))
    await eventually(lambda: room.output.cleared >= 1, timeout_s=10)
    await eventually(
        lambda: "stop" in room.worker.controls or bool(room.worker.ended), timeout_s=10
    )
    assert (
        room.output.dropped + len(room.output.played) < 25 * 100
    )  # most of the reply never played
    await eventually(lambda: len(room.heard) >= 2, timeout_s=30)
    assert "paris" in room.heard[1].lower()
    await eventually(lambda: "Paris" in "".join(room.worker.texts), timeout_s=30)


async def test_a_model_message_switches_the_voice_for_the_next_reply(quiet_room: Room) -> None:
    room = quiet_room
    room.worker.models = room.worker.resident = frozenset({"mock", "other"})
    control = Control(room.session, room.voice, room.send)
    await control.handle(b'{"type": "model", "model": "other"}')
    assert room.sent == [
        {"type": "model", "requested": "other", "active": "other", "loading": False}
    ]
    await asyncio.wait_for(room.session.say("Now in another voice.").wait_for_playout(), 20)
    assert room.worker.started == ["other"]


async def test_a_model_resident_nowhere_loads_while_the_active_voice_speaks(
    quiet_room: Room,
) -> None:
    room = quiet_room
    room.worker.models = frozenset({"mock", "big"})  # "big" is known but not loaded
    control = Control(room.session, room.voice, room.send)
    await control.handle(b'{"type": "model", "model": "big"}')
    assert room.sent == [{"type": "model", "requested": "big", "active": "mock", "loading": True}]
    assert room.worker.loads == ["big"]
    await asyncio.wait_for(room.session.say("Still the old voice.").wait_for_playout(), 20)
    assert room.worker.started == ["mock"]  # no reply waits for a load
    room.worker.resident = frozenset({"mock", "big"})  # the load finished
    await asyncio.wait_for(room.session.say("Now the new one.").wait_for_playout(), 20)
    assert room.worker.started == ["mock", "big"]


async def test_bad_control_messages_get_clear_errors_and_the_session_goes_on(
    quiet_room: Room,
) -> None:
    room = quiet_room
    control = Control(room.session, room.voice, room.send)
    await control.handle(b'{"type": "model", "model": "nope"}')
    await control.handle(b"not json")
    await control.handle(b'{"type": "start", "sample_rate": 16000}')
    await control.handle(b'{"type": "ping"}')
    await control.handle(b'{"type": "end_turn"}')  # nothing said since the last
    codes = [m.get("code", m["type"]) for m in room.sent]
    assert codes == ["unknown_model", "bad_json", "unsupported", "pong", "no_speech"]
    assert "available: mock" in str(room.sent[0]["message"])
    await control.handle(b'{"type": "say", "text": "Still here."}')
    await eventually(lambda: "".join(room.worker.texts) == "Still here.", timeout_s=20)
    assert room.voice.model == "mock"


async def test_an_interrupt_message_stops_the_reply(quiet_room: Room) -> None:
    room = quiet_room
    room.worker.frames_per_chunk = 500
    control = Control(room.session, room.voice, room.send)
    await control.handle(b'{"type": "say", "text": "A reply that goes on and on."}')
    await eventually(lambda: len(room.output.played) >= 5, timeout_s=10)
    await control.handle(b'{"type": "interrupt"}')
    await eventually(lambda: room.output.cleared >= 1, timeout_s=10)
    await eventually(lambda: bool(room.worker.ended), timeout_s=10)
    assert len(room.output.played) < 100


@pytest.fixture(params=[True, False], ids=["resume", "stop"])
async def pausing_room(request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    """A room's output, which LiveKit pauses on an interruption that may be false; the
    agent's ``backchannels_resume`` as the fixture's parameter."""
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    async for room in _room(worker, whisper(), True, backchannels_resume=request.param):
        yield room


async def test_an_acknowledgement_over_the_reply_lets_it_go_on(pausing_room: Room) -> None:
    """ "Okay." over the reply: AgentSession pauses it at the onset, and since duplex's
    agent drops an acknowledgement from the transcripts, resumes it as after a cough
    (Silero hears no speech in a cough at all: the orchestrator's tests show that).
    With ``--barge-in-backchannels stop`` it stops the reply and is answered."""
    room = pausing_room
    resumes = isinstance(room.session.current_agent, DuplexAgent) and (
        room.session.current_agent.backchannels_resume
    )
    room.worker.frames_per_chunk = 100  # 2 s per word: a long reply
    room.mic.speak(speech_16k("Tell me a long story about the sea."))
    await eventually(lambda: len(room.output.played) >= 25, timeout_s=30)
    room.mic.speak(speech_16k("Okay."))
    await eventually(lambda: room.output.pauses >= 1, timeout_s=10)
    if not resumes:
        await eventually(lambda: room.output.cleared >= 1, timeout_s=10)
        await eventually(lambda: len(room.heard) == 2, timeout_s=10)
        assert "okay" in room.heard[1].lower()
        played = len(room.output.played)  # and its answer is heard
        await eventually(lambda: len(room.output.played) > played + 5, timeout_s=15)
        return
    await eventually(lambda: room.output.resumes >= 1, timeout_s=10)
    played = len(room.output.played)
    await eventually(lambda: len(room.output.played) > played + 25, timeout_s=10)
    assert room.output.cleared == 0
    assert "stop" not in room.worker.controls
    assert len(room.heard) == 1  # "Okay" was no turn


async def test_a_hesitation_is_not_the_end_of_the_turn_when_the_judges_end_it(
    any_room: Room,
) -> None:
    """ "I would like to order … a large pizza with mushrooms.", with a 0.6 s pause:
    duplex's judges hear words that want more and wait, then judge the whole sentence,
    Whisper hearing the turn so far; the VAD's 500 ms silence alone
    answers the first half (and then the second, a barge-in over that reply)."""
    room = any_room
    room.mic.speak(speech_16k("I would like to order", tail_s=0.6))
    room.mic.speak(speech_16k("a large pizza with mushrooms."))
    await eventually(lambda: "pizza" in "".join(room.worker.texts).lower(), timeout_s=40)
    if room.turns is None:
        assert len(room.worker.started) == 2  # cut off: the first half was answered
        return

    # one turn, one reply heard: a reply prepared on the first half (the voice too) was
    # dropped unheard when the user went on; none was cut off at the output
    def said() -> list[str]:
        items = room.session.history.items
        return [
            m.text_content or "" for m in items if m.type == "message" and m.role == "assistant"
        ]

    await eventually(lambda: bool(said()), timeout_s=20)  # the reply has played
    await asyncio.sleep(0.5)
    assert len(said()) == 1
    reply = said()[0].lower()
    assert reply.index("order") < reply.index("pizza")
    assert reply.count("order") == reply.count("pizza") == 1  # each half handed on once
    assert room.output.cleared == 0
    judged = room.turns.latest
    assert judged is not None
    assert judged.verdict is Verdict.COMPLETE
    text = judged.text.lower()
    assert text.index("order") < text.index("pizza")  # judged on the whole sentence


async def test_the_judges_end_a_complete_question_at_its_pause() -> None:
    """Whisper's "?" and Smart Turn's "complete": no silence is waited for after the
    VAD's pause (``predict_end_of_turn`` answers at once)."""
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    async for room in _room(worker, whisper(), judged=True):
        assert room.turns is not None
        room.mic.speak(speech_16k("What time does the museum open tomorrow?"))
        await eventually(lambda: bool(worker.texts), timeout_s=30)
        judgement = room.turns.latest
        assert judgement is not None
        assert judgement.verdict is Verdict.COMPLETE
        assert judgement.wait_s == 0
        assert "museum" in judgement.text.lower()


async def test_end_turn_answers_at_once_a_turn_the_judges_would_wait_on() -> None:
    """Push to talk over the room's data channel: "I would like to order" wants more, so
    the judges wait (here 30 s); the client's ``end_turn``, sent as the speech stops,
    ends the utterance then (the VAD's pause not waited for) and the turn with it."""
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    patient = TurnSilences(full_ms=30_000, unfinished_ms=30_000)
    rooms = _room(worker, whisper(), judged=True, silences=patient)
    room = await anext(rooms)
    assert room.turns is not None
    control = Control(room.session, room.voice, room.send)
    room.mic.speak(speech_16k("I would like to order", tail_s=0.0))
    await eventually(lambda: not room.mic.speaking, timeout_s=10, every_s=0.01)
    await control.handle(b'{"type": "end_turn"}')  # within the VAD's 200 ms pause
    await eventually(lambda: "order" in "".join(worker.texts).lower(), timeout_s=20)
    assert room.sent == []  # no error
    judged = room.turns.latest
    assert judged is not None
    assert judged.verdict is Verdict.INCOMPLETE  # the judges alone would have waited
    assert judged.wait_s >= 30
    assert await anext(rooms, None) is None  # the room closes


@pytest.mark.parametrize("judging", [True, False], ids=["judged", "silence"])
async def test_manual_turns_end_only_at_the_clients_end_turn(judging: bool) -> None:
    """Push to talk, chosen by the participant's ``duplex.turn_detection``: "I would
    like to order", 1.5 s of silence (past the full second that ends any automatic
    turn), "a large pizza with mushrooms.", a whole sentence, then silence: nothing is
    answered until ``end_turn``, and then the whole turn, once."""
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    recognizer = whisper()
    rooms = _room(worker, recognizer, turns=_judges(recognizer, judging=judging))
    room = await anext(rooms)
    assert room.turns is not None
    control = Control(room.session, room.voice, room.send, room.turns)
    await control.turn_detection("manual")
    room.mic.speak(speech_16k("I would like to order", tail_s=1.5))
    room.mic.speak(speech_16k("a large pizza with mushrooms.", tail_s=1.5))
    await eventually(lambda: not room.mic.speaking, timeout_s=20, every_s=0.05)
    await eventually(lambda: len(room.heard) == 2, timeout_s=20)  # both halves heard
    await asyncio.sleep(0.5)
    assert room.output.captured == []  # nobody ended the turn: no reply
    assert worker.started == []  # nor one prepared for nothing at each pause
    await control.handle(b'{"type": "end_turn"}')
    await eventually(lambda: bool(room.output.played), timeout_s=20)
    await eventually(lambda: bool(_replies(room)), timeout_s=20)  # it has played
    await asyncio.sleep(0.5)
    assert room.sent == []  # no error
    assert len(_replies(room)) == 1
    assert len(worker.started) == 1
    reply = _replies(room)[0].lower()
    assert reply.index("order") < reply.index("pizza")
    assert reply.count("pizza") == 1
    await control.handle(b'{"type": "end_turn"}')  # nothing said since
    assert [event.get("code") for event in room.sent] == ["no_speech"]
    assert await anext(rooms, None) is None  # the room closes


def _replies(room: Room) -> list[str]:
    """What the agent has said, reply by reply."""
    items = room.session.history.items
    return [m.text_content or "" for m in items if m.type == "message" and m.role == "assistant"]


async def test_words_soon_after_a_turn_ended_are_answered_with_it() -> None:
    """A false end: "I have a meeting." is ended at its pause and its reply begins; the
    user goes on at once, "with my manager at noon.". AgentSession makes that a new
    turn, cutting the reply; the agent answers the whole turn (the echo bridge repeats
    what it is asked), and its chat keeps the turn once, without the reply cut short.
    (The window for going on is 5 s here, not 1: the test's Whisper, with its whole
    30 s window, takes a second a pass.)"""
    config = OrchestratorConfig(dev=True)
    recognizer = whisper()
    prosody.warm_up()
    turns = DuplexTurnDetector(
        replace(end_of_turn(config), continue_window_ms=5000),
        TurnSilences.from_config(config),
        _smart_turn(),
        recognizer=recognizer,
    )
    worker = FakeWorker(frames_per_chunk=10, frame_s=0.02)
    rooms = _room(worker, recognizer, turns=turns)
    room = await anext(rooms)
    room.mic.speak(speech_16k("I have a meeting."))
    await eventually(lambda: bool(room.output.captured), timeout_s=30)  # its reply began
    room.mic.speak(speech_16k("With my manager at noon.", lead_s=0.0))
    await eventually(lambda: "manager" in "".join(_replies(room)).lower(), timeout_s=40)
    last = _replies(room)[-1].lower()
    assert last.index("meeting") < last.index("manager")  # one reply to the whole turn
    chat = room.session.current_agent.chat_ctx
    asked = [m.text_content or "" for m in chat.messages() if m.role == "user"]
    assert len(asked) == 1
    assert asked[0].lower().index("meeting") < asked[0].lower().index("manager")
    assert turns.patience.hold_frames() > 0  # and the user's pause was learned
    assert await anext(rooms, None) is None  # the room closes
