"""A session's transcriptions: which partials reach the client, what each asks of Whisper."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
from duplex_orchestrator.endpoint import EndOfTurn
from duplex_orchestrator.events import Asr, Event
from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.session_parts import Services
from duplex_orchestrator.transcriptions import Transcriptions
from tests.support.fake_worker import FakeRegistry
from tests.support.waiting import eventually

AUDIO = np.zeros(16000, np.int16)


class GatedEars:
    """Hears the words it is told, each transcription waiting for its own gate."""

    def __init__(self) -> None:
        self.gates: list[threading.Event] = []
        self.aligns: list[AlignWhen | None] = []
        self.words = iter(["first", "second", "third"])

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        gate = threading.Event()
        self.gates.append(gate)
        self.aligns.append(align)
        gate.wait(10)
        return Transcript(next(self.words), 0.01, len(audio16k) / 16000)


class Sent:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def partials(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Asr) and not e.final]


def build(judging: list[bool]) -> tuple[Transcriptions, GatedEars, Sent, Services]:
    ears, sent = GatedEars(), Sent()
    services = Services(
        FakeRegistry(), ears, EchoBridge(), "m", end_of_turn=EndOfTurn("transcript")
    )
    return Transcriptions(services, sent, lambda: judging[0]), ears, sent, services


async def started(ears: GatedEars, count: int) -> None:
    """Until ``count`` transcriptions are running in their threads."""
    await eventually(lambda: len(ears.gates) >= count, every_s=0.005)


async def finish(ears: GatedEars, index: int, task: asyncio.Task[Transcript]) -> Transcript:
    await started(ears, index + 1)
    ears.gates[index].set()
    return await task


async def test_a_partial_transcript_reaches_the_client_while_the_turn_is_judged() -> None:
    transcriptions, ears, sent, services = build([True])
    transcript = await finish(ears, 0, transcriptions.partial(AUDIO, lambda: True))
    assert transcript.text == "first"
    assert sent.partials() == ["first"]
    assert ears.aligns == [services.end_of_turn.wants_last_word]


@pytest.mark.parametrize("partial", [True, False])
async def test_one_superseded_or_after_the_turn_ended_does_not(partial: bool) -> None:
    judging = [True]
    transcriptions, ears, sent, _ = build(judging)
    first = transcriptions.partial(AUDIO, lambda: True)
    await started(ears, 1)
    second = transcriptions.latest(AUDIO, partial=partial)
    assert (await finish(ears, 0, first)).text == "first"  # superseded by the second
    judging[0] = False  # the turn ended meanwhile
    await finish(ears, 1, second)
    assert sent.partials() == []


async def test_the_final_transcript_is_never_sent_as_partial_nor_aligned() -> None:
    transcriptions, ears, sent, _ = build([True])
    assert (await finish(ears, 0, transcriptions.latest(AUDIO))).text == "first"
    assert sent.partials() == []
    assert ears.aligns == [None]
