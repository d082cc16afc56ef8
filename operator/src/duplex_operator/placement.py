"""Where a VoiceModel's resident copies go: a pure ranking over live workers.

Eligible: alive, runs the model's family, does not hold the model yet, in an
allowed pool, labels matching. Order: not full (under its resident cap)
first, then fewest resident models, then most free memory, then name, so the
same inputs always give the same placement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    pod: str
    pool: str
    endpoint: str
    families: frozenset[str]
    resident: frozenset[str] = frozenset()
    resident_cap: int = 0
    free_memory_gb: float = 0.0
    alive: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.resident_cap > 0 and len(self.resident) >= self.resident_cap


def place(
    model_id: str,
    family: str,
    copies: int,
    candidates: Iterable[Candidate],
    *,
    pools: Iterable[str] = (),
    match_labels: Mapping[str, str] | None = None,
) -> list[Candidate]:
    """Up to ``copies`` new workers for ``model_id``, best first."""
    allowed = set(pools)
    wanted = dict(match_labels or {})
    eligible = [
        c
        for c in candidates
        if c.alive
        and family in c.families
        and model_id not in c.resident
        and (not allowed or c.pool in allowed)
        and all(c.labels.get(k) == v for k, v in wanted.items())
    ]
    eligible.sort(key=lambda c: (c.full, len(c.resident), -c.free_memory_gb, c.pod))
    return eligible[: max(0, copies)]
