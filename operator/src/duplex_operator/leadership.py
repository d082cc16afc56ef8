"""Leader election decisions over a ``coordination.k8s.io`` Lease (pure; the clock is passed in).

Two or more operator replicas (and the old and new pod of a rolling update)
must not both reconcile: kopf's peering only pauses operators of a *lower*
priority, and same-priority peers keep working side by side. So the replicas
elect one leader through a Lease, as controller-runtime and client-go do: the
holder renews it; the others take it over once it is released or has gone
``leaseDurationSeconds`` without renewal. I/O is in ``election``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from duplex_protocol.lease import parse_time, rfc3339_micro

LEADER_LEASE = "duplex-operator-leader"
LEASE_DURATION_S = 15
RENEW_EVERY_S = 5.0
RETRY_EVERY_S = 2.0


class Move(Enum):
    CREATE = "create"
    """No Lease yet: create it holding it (creation is atomic: one wins, the rest get 409)."""
    RENEW = "renew"
    TAKE_OVER = "take-over"
    """Released or expired: claim it (guarded by resourceVersion on a real API server)."""
    FOLLOW = "follow"


@dataclass(frozen=True)
class LeaderRecord:
    """What a leader Lease says, read from the API object."""

    holder: str
    renewed: datetime | None
    duration_s: int
    transitions: int = 0
    resource_version: str = ""

    def expired(self, now: datetime) -> bool:
        if not self.holder or self.renewed is None:
            return True
        return self.renewed + timedelta(seconds=self.duration_s) <= now

    @staticmethod
    def from_lease(lease: dict[str, Any]) -> LeaderRecord:
        spec = lease.get("spec") or {}
        renewed = spec.get("renewTime") or spec.get("acquireTime")
        return LeaderRecord(
            holder=str(spec.get("holderIdentity") or ""),
            renewed=parse_time(renewed) if renewed else None,
            duration_s=int(spec.get("leaseDurationSeconds") or LEASE_DURATION_S),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )


def decide(record: LeaderRecord | None, me: str, now: datetime) -> Move:
    if record is None:
        return Move.CREATE
    if record.holder == me:
        return Move.RENEW
    if record.expired(now):
        return Move.TAKE_OVER
    return Move.FOLLOW


def claim(
    move: Move,
    record: LeaderRecord | None,
    me: str,
    now: datetime,
    *,
    name: str = LEADER_LEASE,
    namespace: str,
    duration_s: int = LEASE_DURATION_S,
) -> dict[str, Any]:
    """The Lease (CREATE) or merge-patch (RENEW, TAKE_OVER) that makes ``me`` the holder.

    A patch carries the resourceVersion it read: the API server then refuses it
    with 409 if another replica wrote the Lease in between.
    """
    stamp = rfc3339_micro(now)
    spec: dict[str, Any] = {"holderIdentity": me, "leaseDurationSeconds": duration_s}
    spec["renewTime"] = stamp
    if move is not Move.RENEW:
        spec["acquireTime"] = stamp
        spec["leaseTransitions"] = 0 if record is None else record.transitions + 1
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    metadata["labels"] = {
        "app.kubernetes.io/name": "duplex",
        "app.kubernetes.io/component": "operator",
    }
    if record is not None and record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    if move is Move.CREATE:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }
    if move is Move.FOLLOW:
        raise ValueError("a follower claims nothing")
    return {"metadata": metadata, "spec": spec}


def release(record: LeaderRecord) -> dict[str, Any]:
    """The merge-patch a leader stopping cleanly sends, so a follower takes over at once."""
    metadata = {"resourceVersion": record.resource_version} if record.resource_version else {}
    return {"metadata": metadata, "spec": {"holderIdentity": None, "renewTime": None}}
