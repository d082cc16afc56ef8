"""A user who speaks again before the reply to their last turn has begun is not talked
over, and their words are not lost.

A turn ended by the full silence is answered once its words are in; while Whisper is
still at them (busy with other sessions, or a speculation that was skipped), the user
may go on. The reply then begins while they speak: it pauses, unheard, as over a reply
that was sounding (a barge-in), and their words stop it and are answered, or noise
lets it go on. Before, the reply played over the user and their words got no reply
(``Turns`` took words while speaking for impossible and dropped them).
"""

from __future__ import annotations

import threading

import numpy as np

from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
from duplex_orchestrator.events import Asr, BargeIn, ReplyText, TtsEnd, TtsStart
from duplex_orchestrator.session import VoiceSession
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeWorker
from tests.support.session_io import Recorded
from tests.unit.test_end_of_turn import END_FRAMES, FixedTurnModel, feed, session_with, silence

FIRST = "I would like to order " + "and so on " * 10
"""Its echo is long: still playing when the user's next words are in."""


class GatedEars(Ears):
    """Hears the words of ``script`` in turn, each transcription waiting for ``gate``."""

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.script = script
        self.gate = threading.Event()

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        words = self.script.pop(0) if self.script else ""
        self.gate.wait(10)
        self.words = words
        return super().transcribe(audio16k, wanted, align)


async def speaks_while_the_first_turn_is_heard(
    second: str,
) -> tuple[VoiceSession, Recorded, FakeWorker]:
    """A turn ended by the full silence; the user goes on before its words are in, and
    says ``second`` (silence then, until the turn it makes is over)."""
    ears, worker = GatedEars([FIRST, second]), FakeWorker(frame_s=0.02)
    session, io = await session_with(ears, FixedTurnModel(0.9), worker, mode="silence")
    await feed(session, voiced(0.6))
    await feed(session, silence(END_FRAMES))  # the turn ends by silence; its words not in yet
    await feed(session, voiced(0.2), realtime=True)  # the user goes on
    ears.gate.set()  # the first turn's words are in: its reply begins while they speak
    await feed(session, voiced(0.4), realtime=True)
    await feed(session, silence(END_FRAMES), realtime=True)
    return session, io, worker


async def test_words_said_before_the_reply_began_stop_it_unheard_and_are_answered() -> None:
    session, io, worker = await speaks_while_the_first_turn_is_heard("a large pizza")
    first, second = await io.wait_for(TtsEnd, 2)
    assert first.interrupted
    assert first.frames == 0
    assert [e.turn for e in io.of(TtsStart)] == [second.turn]  # only the answer began
    assert not second.interrupted
    assert second.frames > 0
    assert [(e.action, e.flush) for e in io.of(BargeIn)] == [("pause", False), ("stop", None)]
    assert {e.turn for e in io.of(ReplyText)} == {second.turn}  # no text of the unheard one
    assert [e.text for e in io.of(Asr) if e.final] == [FIRST, "a large pizza"]
    assert worker.controls == ["pause", "stop"]
    assert "".join(worker.texts).endswith("a large pizza")
    await session.close()


async def test_noise_before_the_reply_began_lets_it_sound() -> None:
    session, io, worker = await speaks_while_the_first_turn_is_heard("")  # no words
    (end,) = await io.wait_for(TtsEnd)
    assert not end.interrupted
    assert end.frames > 0
    assert [(e.action, e.flush) for e in io.of(BargeIn)] == [("pause", False), ("resume", None)]
    assert worker.controls == ["pause", "resume"]
    (start,) = io.of(TtsStart)
    assert start.turn == end.turn
    await session.close()
