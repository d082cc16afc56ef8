"""Wall-clock pacing with a bounded lead, driven by a fake clock."""

import itertools

import pytest

from duplex_tts.pacing import Pacer


def run(pacer: Pacer, frames: int, start: float = 100.0) -> list[float]:
    """Send ``frames`` frames as soon as the pacer allows; return send times."""
    now, sent = start, []
    for _ in range(frames):
        delay = pacer.delay(now)
        if delay > 0:
            now += delay
        pacer.sent(now)
        sent.append(now)
    return sent


def test_only_the_lead_leaves_early_then_one_frame_per_20ms() -> None:
    sent = run(Pacer(lead_s=0.06), 50)
    early = [t for t in sent if t == sent[0]]
    assert len(early) == 4  # the first frame plus 60 ms of lead
    gaps = [b - a for a, b in itertools.pairwise(sent[4:])]
    assert all(g == pytest.approx(0.02) for g in gaps)
    assert sent[-1] - sent[0] == pytest.approx(49 * 0.02 - 0.06)


def test_zero_lead_is_strict_real_time() -> None:
    sent = run(Pacer(lead_s=0.0), 10)
    assert sent[-1] - sent[0] == pytest.approx(0.18)


def test_a_late_frame_reanchors_instead_of_bursting() -> None:
    pacer = Pacer(lead_s=0.0)
    run(pacer, 5)  # sent at 100.00 .. 100.08
    late = 100.5  # synthesis stalled
    assert pacer.delay(late) <= 0
    pacer.sent(late)
    assert pacer.underruns == 1
    assert pacer.delay(late) == pytest.approx(0.02)


def test_lateness_is_reported() -> None:
    pacer = Pacer(lead_s=0.0)
    pacer.sent(10.0)
    assert pacer.sent(10.025) == pytest.approx(0.005)
    assert pacer.sent(10.03) == 0.0


def test_restart_after_a_long_pause_starts_a_fresh_schedule() -> None:
    pacer = Pacer(lead_s=0.0)
    run(pacer, 3)
    pacer.restart(500.0)
    assert pacer.delay(500.0) == 0.0
    pacer.sent(500.0)
    assert pacer.delay(500.0) == pytest.approx(0.02)
    assert pacer.underruns == 0


def test_pause_resume_storms_keep_the_lead_bounded() -> None:
    """1,000 PAUSE/RESUME pairs between frames must not turn the lead into a burst."""
    pacer = Pacer(lead_s=0.06)
    now, sent = 100.0, []
    for _ in range(1000):
        delay = pacer.delay(now)
        if delay > 0:
            now += delay
        pacer.sent(now)
        sent.append(now)
        pacer.restart(now)  # PAUSE then RESUME at once
    # Real time for 1,000 frames (20 s) less the 60 ms lead, not a 0.3 s burst.
    assert sent[-1] - sent[0] == pytest.approx(999 * 0.02 - 0.06)


def test_resume_after_a_short_pause_waits_for_the_frames_already_sent() -> None:
    pacer = Pacer(lead_s=0.06)
    sent = run(pacer, 4)  # all four leave at once: 80 ms of audio by 100.0
    pacer.restart(sent[-1] + 0.01)  # paused 10 ms, the client still holds 70 ms
    assert pacer.delay(sent[-1] + 0.01) == pytest.approx(0.08 - 0.06 - 0.01)
