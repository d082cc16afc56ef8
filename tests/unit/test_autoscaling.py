"""TTSWorker autoscaling: load → replicas, up at once, down late and only past idle pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duplex_operator.autoscaling import (
    AutoscalingSpec,
    Decision,
    InvalidAutoscaling,
    WorkerLoad,
    decide,
    ordinal,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SESSIONS = AutoscalingSpec(1, 4, "activeSessions", 2.0, scale_down_delay_s=30)


def pods(*sessions: int, queued: tuple[int, ...] = ()) -> list[WorkerLoad]:
    """Workers ``cpu-tts-0..n`` holding the given sessions (and queued segments)."""
    depth = list(queued) + [0] * (len(sessions) - len(queued))
    return [
        WorkerLoad(f"cpu-tts-{i}", True, active_sessions=s, queue_depth=q)
        for i, (s, q) in enumerate(zip(sessions, depth, strict=True))
    ]


def run(
    current: int, workers: list[WorkerLoad], *, at_s: float = 0, since_s: float | None = None
) -> Decision:
    since = None if since_s is None else T0 + timedelta(seconds=since_s)
    return decide(
        SESSIONS,
        current,
        workers,
        statefulset="cpu-tts",
        now=T0 + timedelta(seconds=at_s),
        pending_since=since,
    )


@pytest.mark.parametrize(
    ("current", "sessions", "replicas", "wanted"),
    [
        (1, (0,), 1, 0),  # idle: minReplicas
        (1, (2,), 1, 1),  # exactly the target
        (1, (3,), 2, 2),  # over: up at once
        (2, (5, 4), 4, 5),  # 9 sessions want 5, capped at maxReplicas
        (3, (3, 2), 3, 3),  # a pod still starting (no Lease yet) changes nothing
    ],
)
def test_the_pool_grows_at_once_to_the_load_over_the_target(
    current: int, sessions: tuple[int, ...], replicas: int, wanted: int
) -> None:
    decision = run(current, pods(*sessions))
    assert (decision.replicas, decision.wanted) == (replicas, wanted)
    assert decision.pending_since is None


def test_a_scale_down_waits_out_its_delay_without_a_break() -> None:
    first = run(3, pods(1, 0, 0), at_s=0)
    assert (first.replicas, first.pending_since) == (3, T0)
    assert run(3, pods(1, 0, 0), at_s=29, since_s=0).replicas == 3
    # The load came back meanwhile: the wait starts over.
    assert run(3, pods(3, 2, 1), at_s=20, since_s=0).pending_since is None
    done = run(3, pods(1, 0, 0), at_s=30, since_s=0)
    assert (done.replicas, done.pending_since) == (1, None)


def test_a_scale_down_stops_above_the_highest_busy_worker() -> None:
    # 1 session wants 1 pod; the top pod holds it, so nothing can go (ordinals go top first).
    held = run(3, pods(0, 0, 1), at_s=60, since_s=0)
    assert (held.replicas, held.held_by) == (3, ("cpu-tts-2",))
    assert held.pending_since == T0  # still wanted: goes as soon as that pod is idle
    assert "cpu-tts-2 still busy" in held.reason(3, SESSIONS)
    # The middle pod busy: the top one goes, the middle one stays.
    middle = run(3, pods(0, 1, 0), at_s=60, since_s=0)
    assert (middle.replicas, middle.held_by) == (2, ("cpu-tts-1",))
    # Queued text counts as held too, whatever the metric.
    assert run(2, pods(0, 0, queued=(0, 1)), at_s=60, since_s=0).replicas == 2


def test_a_worker_without_a_live_lease_holds_nothing() -> None:
    dead = [WorkerLoad("cpu-tts-0", True), WorkerLoad("cpu-tts-1", False, active_sessions=5)]
    decision = run(2, dead, at_s=60, since_s=0)
    assert (decision.replicas, decision.load) == (1, 0)


def test_lowered_bounds_apply_without_the_delay_but_spare_busy_pods() -> None:
    tight = AutoscalingSpec(2, 2, "activeSessions", 2.0, scale_down_delay_s=300)
    idle = [WorkerLoad(f"cpu-tts-{i}", True) for i in range(4)]
    assert decide(tight, 4, idle, statefulset="cpu-tts", now=T0, pending_since=None).replicas == 2
    busy = [*idle[:3], WorkerLoad("cpu-tts-3", True, active_sessions=1)]
    assert decide(tight, 4, busy, statefulset="cpu-tts", now=T0, pending_since=None).replicas == 4
    low = AutoscalingSpec(3, 5, "activeSessions", 2.0)
    assert decide(low, 1, idle[:1], statefulset="cpu-tts", now=T0, pending_since=None).replicas == 3


def test_queue_depth_as_the_metric() -> None:
    queue = AutoscalingSpec(1, 8, "queueDepth", 4.0)
    workers = pods(9, 9, queued=(6, 3))  # sessions do not count, 9 queued segments do
    decision = decide(queue, 2, workers, statefulset="cpu-tts", now=T0, pending_since=None)
    assert (decision.replicas, decision.load) == (3, 9)
    assert "9 queued segments, target 4" in decision.reason(2, queue)


def test_ordinals_belong_to_the_pool_statefulset() -> None:
    assert ordinal("cpu-tts-12", "cpu-tts") == 12
    assert ordinal("gpu-tts-1", "cpu-tts") is None
    assert ordinal("cpu-tts-1-x", "cpu-tts") is None


def test_spec_parsing_and_actionable_errors() -> None:
    assert AutoscalingSpec.from_spec({"replicas": 2}) is None
    parsed = AutoscalingSpec.from_spec(
        {"autoscaling": {"maxReplicas": 3, "targetQueueDepth": 8, "scaleDownDelaySeconds": 5}}
    )
    assert parsed == AutoscalingSpec(1, 3, "queueDepth", 8.0, 5.0)
    for bad, words in [
        ({"maxReplicas": 3}, "exactly one of"),
        ({"maxReplicas": 3, "targetActiveSessions": 2, "targetQueueDepth": 2}, "exactly one of"),
        ({"maxReplicas": 3, "targetActiveSessions": 0}, "must be > 0"),
        ({"minReplicas": 4, "maxReplicas": 3, "targetActiveSessions": 2}, "minReplicas <="),
    ]:
        with pytest.raises(InvalidAutoscaling, match=words):
            AutoscalingSpec.from_spec({"autoscaling": bad})
