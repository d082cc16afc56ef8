"""Judging a turn speculatively: Whisper (and Smart Turn) start at the first frames of
silence, so the judgement at the pause finds them done, and stale work never holds a
turn back.

The real VAD and session run with fake ears that report each transcription and can
be held; ``idle_workers`` plays the free Whisper workers the session may take.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from prometheus_client import REGISTRY

from duplex_orchestrator.asr import AlignWhen, Transcript, Wanted
from duplex_orchestrator.events import ReplyText, TtsEnd, VadState
from tests.support.fake_ears import Ears, voiced
from tests.support.waiting import eventually
from tests.unit.test_end_of_turn import PAUSE_FRAMES, FixedTurnModel, feed, session_with, silence

GAP_FRAMES, BUSY_GAP_FRAMES = 3, 6


class PooledEars(Ears):
    """Fake ears with ``idle_workers``; the first ``held`` transcriptions wait for ``release``."""

    def __init__(self, idle_workers: int, held: int = 0) -> None:
        super().__init__()
        self.idle_workers = idle_workers
        self.held = held
        self.release = threading.Event()
        self.finished = 0

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        if len(self.heard) < self.held:
            self.heard.append(len(audio16k) / 16000)
            self.wanted.append(wanted)
            self.release.wait(10)
            return Transcript(self.words, 0.01, len(audio16k) / 16000)
        transcript = super().transcribe(audio16k, wanted, align)
        self.finished += 1
        return transcript


async def started(ears: PooledEars, model: FixedTurnModel) -> tuple[int, int]:
    """Transcriptions and Smart Turn calls begun at the gap, once what was started has
    run (polled, so a slow thread pool is waited for) and nothing more follows."""
    await eventually(lambda: len(ears.heard) <= ears.finished + ears.held, 5, every_s=0.005)
    await asyncio.sleep(0.05)  # anything still to start would have by now
    return len(ears.heard), model.calls


def speculations(at: str, outcome: str) -> float:
    labels = {"at": at, "outcome": outcome}
    return REGISTRY.get_sample_value("duplex_asr_speculations_total", labels) or 0.0


def samples(seconds: float) -> int:
    return round(seconds * 16000)


async def test_whisper_and_smart_turn_start_at_the_gap_and_the_pause_uses_them() -> None:
    ears, model = PooledEars(idle_workers=2), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model, gap_frames=GAP_FRAMES)
    used_before = speculations("gap", "used")
    await feed(session, voiced(0.6))
    await feed(session, silence(GAP_FRAMES))
    # Transcribing before the pause, and Smart Turn beside it (a second worker was idle).
    assert await started(ears, model) == (1, 1)
    await feed(session, silence(PAUSE_FRAMES), realtime=True)
    await io.wait_for(TtsEnd)
    assert len(ears.heard) == 1  # the pause used them: nothing was done twice
    assert model.calls == 1
    # Smart Turn heard the turn as it stands at the pause: the silence still to come added.
    assert model.heard[0] - samples(ears.heard[0]) == (PAUSE_FRAMES - GAP_FRAMES) * 320
    assert [e.state for e in io.of(VadState)] == ["speech_start", "speech_end"]
    assert speculations("gap", "used") == used_before + 1
    await session.close()


@pytest.mark.parametrize(
    ("idle_workers", "others_speaking", "started_at_the_gap", "started_at_the_busy_gap"),
    [
        (2, 0, (1, 1), (1, 1)),  # both at the first gap, nothing more later
        (1, 0, (1, 0), (1, 0)),  # Whisper only: Smart Turn waits for words that read complete
        (2, 1, (0, 0), (1, 1)),  # someone else is speaking: not until the busy gap
        (1, 1, (0, 0), (1, 0)),
        (0, 0, (0, 0), (0, 0)),  # none idle: both start at the pause, as without speculation
    ],
)
async def test_with_fewer_idle_workers_or_more_speakers_less_starts_and_later(
    idle_workers: int,
    others_speaking: int,
    started_at_the_gap: tuple[int, int],
    started_at_the_busy_gap: tuple[int, int],
) -> None:
    ears, model = PooledEars(idle_workers), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(
        ears, model, gap_frames=GAP_FRAMES, busy_gap_frames=BUSY_GAP_FRAMES
    )
    session._services.speaking.count += others_speaking
    await feed(session, voiced(0.6))
    await feed(session, silence(GAP_FRAMES))
    assert await started(ears, model) == started_at_the_gap
    await feed(session, silence(BUSY_GAP_FRAMES - GAP_FRAMES))
    assert await started(ears, model) == started_at_the_busy_gap
    await feed(session, silence(PAUSE_FRAMES - BUSY_GAP_FRAMES), realtime=True)
    await io.wait_for(TtsEnd)
    assert (len(ears.heard), model.calls) == (1, 1)  # each once, whenever it started
    assert session._services.speaking.count == others_speaking  # this user's turn is over
    await session.close()


async def test_speech_after_the_gap_makes_its_work_stale() -> None:
    ears, model = PooledEars(idle_workers=2), FixedTurnModel(0.9)
    ears.words = "I would like a pizza."  # what a speculation at the gap hears: complete
    session, io = await session_with(ears, model, gap_frames=GAP_FRAMES)
    stale, used = speculations("gap", "stale"), speculations("gap", "used")
    await feed(session, voiced(0.6))
    await feed(session, silence(GAP_FRAMES))
    assert await started(ears, model) == (1, 1)  # done before the speech goes on
    ears.words = "I would like a pizza with mushrooms."
    await feed(session, voiced(0.6))  # the user goes on before the pause
    await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
    ends = await io.wait_for(TtsEnd)
    assert len(ears.heard) == 2
    assert ears.heard[1] > ears.heard[0] + 0.6  # the whole turn, heard again
    reply = "".join(r.text for r in io.of(ReplyText) if r.turn == ends[0].turn)
    assert reply == "I would like a pizza with mushrooms."
    # Counted for operators: the first gap's work was wasted, the second gap's was the turn's.
    assert (speculations("gap", "stale"), speculations("gap", "used")) == (stale + 1, used + 1)
    await session.close()


async def test_a_stale_transcription_still_running_does_not_hold_the_turn_back() -> None:
    ears, model = PooledEars(idle_workers=2, held=1), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model, gap_frames=GAP_FRAMES)
    try:
        await feed(session, voiced(0.6))
        await feed(session, silence(GAP_FRAMES))  # a speculation starts, and hangs
        await eventually(lambda: len(ears.heard) == 1, 5, every_s=0.005)
        await feed(session, voiced(0.4))  # speech goes on: that speculation is stale
        await feed(session, silence(PAUSE_FRAMES + 5), realtime=True)
        await io.wait_for(TtsEnd, timeout_s=5)  # answered while the stale one still runs
        assert not ears.release.is_set()
        assert len(ears.heard) == 2
    finally:
        ears.release.set()
        await session.close()


async def test_speech_after_the_gap_abandons_its_transcription_and_the_next_gap_starts() -> None:
    """Whisper asks ``wanted`` before its decoder (most of its time): a speculation the
    user spoke past stops there, and the next gap does not wait for it."""
    ears, model = PooledEars(idle_workers=2, held=1), FixedTurnModel(0.9)
    session, _ = await session_with(ears, model, gap_frames=GAP_FRAMES)
    try:
        await feed(session, voiced(0.6))
        await feed(session, silence(GAP_FRAMES))  # a speculation starts, and hangs
        await eventually(lambda: len(ears.heard) == 1, 5, every_s=0.005)
        wanted = ears.wanted[0]
        assert wanted is not None
        assert wanted()
        await feed(session, voiced(0.4))  # the user goes on
        assert not wanted()
        await feed(session, silence(GAP_FRAMES))  # the next gap starts while it still runs
        await eventually(lambda: len(ears.heard) == 2, 5, every_s=0.005)
        assert not ears.release.is_set()
        fresh = ears.wanted[1]
        assert fresh is not None
        assert fresh()  # the new one is wanted, the stale one still not
        assert not wanted()
    finally:
        ears.release.set()
        await session.close()


async def test_the_words_a_turn_ended_on_stay_wanted_after_the_vad_moves_on() -> None:
    """Smart Turn alone may end the turn while Whisper still works on its words; the
    VAD then counts a new start, which must not abandon them."""
    ears, model = PooledEars(idle_workers=2, held=1), FixedTurnModel(0.9)
    ears.words = "What time is it?"
    session, io = await session_with(ears, model, gap_frames=GAP_FRAMES, mode="smart-turn")
    try:
        await feed(session, voiced(0.6))
        await feed(session, silence(PAUSE_FRAMES), realtime=True)
        await eventually(lambda: "speech_end" in [e.state for e in io.of(VadState)], 5)
        wanted = ears.wanted[0]
        assert wanted is not None
        assert wanted()
        ears.release.set()
        ends = await io.wait_for(TtsEnd)
        assert "".join(r.text for r in io.of(ReplyText) if r.turn == ends[0].turn) == ears.words
    finally:
        ears.release.set()
        await session.close()


async def test_a_session_closed_mid_speech_no_longer_counts_as_speaking() -> None:
    ears, model = PooledEars(idle_workers=2), FixedTurnModel(0.9)
    session, _ = await session_with(ears, model, gap_frames=GAP_FRAMES)
    speaking = session._services.speaking
    await feed(session, voiced(0.6))
    assert speaking.count == 1
    await session.close()
    assert speaking.count == 0
