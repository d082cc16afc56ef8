"""Model eviction decisions: pure functions over a snapshot, with the clock passed in.

The model manager asks two questions: which idle models have outlived their
TTL (``ttl_expired``), and which must go so that one more fits under the
resident cap (``make_room``, LRU). A model is never a candidate while a
session holds it, while it is loading, while pinned, or before it has been
resident for ``min_residency_s``. A *kept* model (the worker's default) is
never TTL-evicted and is the last to give way under the cap, so a worker
with a cap of 1 can still swap between its voices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Residency:
    model_id: str
    loaded_at: float
    last_used: float
    refs: int = 0
    pinned: bool = False
    loading: bool = False
    kept: bool = False


@dataclass(frozen=True)
class EvictionPolicy:
    ttl_s: float | None = None
    """Idle time after which an unpinned model is unloaded; None: never."""
    min_residency_s: float = 0.0
    """A model stays at least this long after loading, whatever else happens."""
    resident_cap: int = 0
    """Most models resident at once (loading ones included); 0: unlimited."""


def evictable(model: Residency, policy: EvictionPolicy, now: float) -> bool:
    return (
        model.refs == 0
        and not model.pinned
        and not model.loading
        and now - model.loaded_at >= policy.min_residency_s
    )


def ttl_expired(models: Iterable[Residency], policy: EvictionPolicy, now: float) -> list[str]:
    """Ids of models idle past the TTL, least recently used first."""
    if policy.ttl_s is None:
        return []
    ttl = policy.ttl_s
    expired = [
        m for m in models if evictable(m, policy, now) and not m.kept and now - m.last_used >= ttl
    ]
    return [m.model_id for m in sorted(expired, key=lambda m: (m.last_used, m.model_id))]


def make_room(
    models: Sequence[Residency], policy: EvictionPolicy, now: float, incoming: int = 1
) -> list[str] | None:
    """Ids to evict (LRU first) so ``incoming`` more models fit; None if the cap cannot be met."""
    if policy.resident_cap <= 0:
        return []
    excess = len(models) + incoming - policy.resident_cap
    if excess <= 0:
        return []
    candidates = sorted(
        (m for m in models if evictable(m, policy, now)),
        key=lambda m: (m.kept, m.last_used, m.model_id),
    )
    if len(candidates) < excess:
        return None
    return [m.model_id for m in candidates[:excess]]


def next_check(models: Iterable[Residency], policy: EvictionPolicy, now: float) -> float | None:
    """Seconds until some model could first become TTL-expired (None: nothing to wait for)."""
    if policy.ttl_s is None:
        return None
    waits = [
        max(m.last_used + policy.ttl_s, m.loaded_at + policy.min_residency_s) - now
        for m in models
        if m.refs == 0 and not m.pinned and not m.loading and not m.kept
    ]
    return max(0.0, min(waits)) if waits else None
