"""Leader election decisions: who claims, renews, takes over or follows, and what they write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duplex_operator.leadership import LeaderRecord, Move, claim, decide, release

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def record(holder: str, age_s: float, duration_s: int = 15) -> LeaderRecord:
    return LeaderRecord(holder, NOW - timedelta(seconds=age_s), duration_s, 2, "41")


@pytest.mark.parametrize(
    ("current", "move"),
    [
        (None, Move.CREATE),
        (record("op-a", 1), Move.RENEW),
        (record("op-a", 60), Move.RENEW),  # still ours: renew, nobody took it
        (record("op-b", 1), Move.FOLLOW),
        (record("op-b", 14.9), Move.FOLLOW),
        (record("op-b", 15), Move.TAKE_OVER),  # expired at renewTime + duration
        (record("", 0), Move.TAKE_OVER),  # released
        (LeaderRecord("op-b", None, 15), Move.TAKE_OVER),
    ],
)
def test_decide(current: LeaderRecord | None, move: Move) -> None:
    assert decide(current, "op-a", NOW) is move


def test_a_take_over_counts_a_transition_and_is_guarded_by_the_version_it_read() -> None:
    patch = claim(Move.TAKE_OVER, record("op-b", 30), "op-a", NOW, namespace="duplex")
    assert patch["metadata"]["resourceVersion"] == "41"
    assert patch["spec"]["holderIdentity"] == "op-a"
    assert patch["spec"]["leaseTransitions"] == 3
    stamp = "2026-11-21T12:00:00.000000Z"
    assert patch["spec"]["acquireTime"] == patch["spec"]["renewTime"] == stamp


def test_a_renewal_keeps_acquire_time_and_transitions() -> None:
    patch = claim(Move.RENEW, record("op-a", 5), "op-a", NOW, namespace="duplex")
    assert set(patch["spec"]) == {"holderIdentity", "leaseDurationSeconds", "renewTime"}


def test_creation_makes_a_whole_lease_that_reads_back_as_held() -> None:
    lease = claim(Move.CREATE, None, "op-a", NOW, namespace="duplex", duration_s=9)
    assert (lease["apiVersion"], lease["kind"]) == ("coordination.k8s.io/v1", "Lease")
    assert "resourceVersion" not in lease["metadata"]
    back = LeaderRecord.from_lease(lease)
    assert (back.holder, back.renewed, back.duration_s, back.transitions) == ("op-a", NOW, 9, 0)
    assert decide(back, "op-b", NOW + timedelta(seconds=8)) is Move.FOLLOW
    assert decide(back, "op-b", NOW + timedelta(seconds=9)) is Move.TAKE_OVER


def test_a_follower_claims_nothing() -> None:
    with pytest.raises(ValueError, match="follower"):
        claim(Move.FOLLOW, record("op-b", 1), "op-a", NOW, namespace="duplex")


def test_a_released_lease_is_free_at_once() -> None:
    held = record("op-a", 1)
    patch = release(held)
    assert patch["metadata"] == {"resourceVersion": "41"}
    lease = {"metadata": {"resourceVersion": "42"}, "spec": {**patch["spec"], "acquireTime": "x"}}
    lease["spec"]["acquireTime"] = "2026-11-21T11:59:59Z"
    assert decide(LeaderRecord.from_lease(lease), "op-b", NOW) is Move.TAKE_OVER
