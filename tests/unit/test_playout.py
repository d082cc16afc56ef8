"""A reply resumed after a false barge-in sends again what the client dropped.

``Playout`` follows the client's schedule (pure, the clock passed in); the session
core, with a fake worker whose frames carry their numbers, shows no frame skipped.
"""

from __future__ import annotations

import pytest

from duplex_orchestrator.events import BargeIn, TtsEnd, TtsStart
from duplex_orchestrator.playout import CUSHION_S, FRAME_S, Playout
from duplex_orchestrator.protocol import Say
from tests.support.fake_worker import FakeWorker, frame_number
from tests.unit.test_session_core import say_aloud, started


def frames(n: int) -> list[bytes]:
    return [bytes([i]) for i in range(n)]


def test_a_burst_is_played_one_frame_after_another_from_a_cushion_on() -> None:
    playout = Playout()
    for frame in frames(10):
        playout.sent(frame, 0.0)
    # Frame i plays from CUSHION_S + i * FRAME_S; at 0.1 s frames 0 and 1 are over.
    assert playout.unplayed(CUSHION_S + 2.5 * FRAME_S) == frames(10)[2:]


def test_paced_frames_leave_the_cushion_and_the_frame_playing_unplayed() -> None:
    playout = Playout()
    for i, frame in enumerate(frames(50)):
        playout.sent(frame, i * FRAME_S)
    now = 49 * FRAME_S + 0.001  # just after the last was sent
    kept = playout.unplayed(now)
    assert kept == frames(50)[-len(kept) :]
    assert len(kept) == pytest.approx(CUSHION_S / FRAME_S + 1, abs=1)


def test_a_client_that_ran_dry_starts_again_after_a_cushion() -> None:
    playout = Playout()
    playout.sent(b"a", 0.0)
    playout.sent(b"b", 1.0)  # long after "a" was played
    assert playout.unplayed(1.0 + CUSHION_S) == [b"b"]


def test_after_a_flush_nothing_is_held() -> None:
    playout = Playout()
    playout.sent(b"a", 0.0)
    assert playout.playing(0.0)
    assert playout.unplayed(0.0) == [b"a"]
    assert playout.unplayed(0.0) == []
    assert not playout.playing(0.0)


def test_the_client_plays_until_its_last_frame_ends() -> None:
    playout = Playout()
    assert not playout.playing(0.0)  # nothing sent
    for frame in frames(3):
        playout.sent(frame, 0.0)
    last_ends = CUSHION_S + 3 * FRAME_S
    assert playout.playing(last_ends - 0.001)
    assert not playout.playing(last_ends + 0.001)


async def test_a_resumed_reply_skips_no_frame_the_client_dropped() -> None:
    worker = FakeWorker(frames_per_chunk=120, frame_s=0.01, numbered=True)
    session, io, ears = await started(worker)
    await session.handle(Say("A long reply."))
    await io.wait_for(TtsStart)
    ears.words = ""  # a cough: the reply pauses, then resumes
    await say_aloud(session, 0.3)
    (end,) = await io.wait_for(TtsEnd)
    assert [b.action for b in io.of(BargeIn)] == ["pause", "resume"]
    numbers = [frame_number(pcm) for pcm in io.frames]
    # The client flushed at the pause; after it, the reply starts again at a frame it
    # had been sent but not played, and goes on to the last without a gap.
    restarts = [i for i in range(1, len(numbers)) if numbers[i] <= numbers[i - 1]]
    assert restarts, "nothing the client dropped at the pause was sent again"
    before, after = numbers[: restarts[0]], numbers[restarts[0] :]
    assert after[0] <= before[-1]
    assert after == list(range(after[0], end.frames))
    await session.close()
