"""Scripted parts for the LiveKit turn detector's tests: Whisper, Smart Turn, a clock."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import numpy as np
from livekit.agents import llm

from duplex_livekit import Control, DuplexTurnDetector, TurnSilences, VoiceParts, voice_session
from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn

POLICY = EndOfTurn(pitch_rise_st=0)  # the default judges, without the pitch (tested apart)

SILENCES = TurnSilences()


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


def fake_detector(model: Model | None = None) -> tuple[DuplexTurnDetector, Clock]:
    """The default judges on a fake clock."""
    clock = Clock()
    detector = DuplexTurnDetector(
        POLICY, SILENCES, model or Model(), clock=clock, sleep=clock.sleep
    )
    return detector, clock


def user_said(*texts: str) -> llm.ChatContext:
    """The chat AgentSession asks about: its user said these last."""
    chat = llm.ChatContext()
    chat.add_message(role="assistant", content="Hello, how can I help?")
    for text in texts:
        chat.add_message(role="user", content=text)
    return chat


def silence_of(seconds: float) -> np.ndarray:
    """An utterance's audio (the scripted recognizer hears words, not sound)."""
    return np.zeros(int(seconds * 16000), np.int16)


def say(
    detector: DuplexTurnDetector, clock: Clock, seconds: float, text: str, ends_here: float | None
) -> Transcript:
    """The user speaks for ``seconds`` (an onset, then the VAD ends the utterance)."""
    detector.speech_started()
    clock.now += seconds
    return detector.hear(silence_of(seconds), Words([(text, ends_here)]), ended_at=clock.now)


def speculating(said: list[tuple[str, float | None]]) -> tuple[DuplexTurnDetector, Clock, Words]:
    """A detector that starts Whisper (these words) at the gap."""
    clock = Clock()
    words = Words(said)
    detector = DuplexTurnDetector(
        POLICY, SILENCES, Model(), recognizer=words, clock=clock, sleep=clock.sleep
    )
    return detector, clock, words


async def room_control(**settings: object) -> tuple[Control, VoiceParts, list[dict[str, object]]]:
    """The room's control, its session built from this configuration, never started."""
    config = OrchestratorConfig(dev=True, **settings)
    parts = VoiceParts.from_config(config, Words([]), smart_turn=Model())
    session, voice = voice_session(parts)
    await voice.aclose()  # no reply is spoken here
    sent: list[dict[str, object]] = []

    async def send(payload: bytes) -> None:
        sent.append(json.loads(payload))

    return Control(session, voice, send, parts.turns), parts, sent
