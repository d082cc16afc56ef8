"""Where a VoiceModel's resident copies go: a pure ranking over live workers.

Eligible: alive, runs the model's family, does not hold the model yet, in an
allowed pool, labels matching. Order: not full (under its resident cap)
first, then where the model fits in the free memory, then (a LoRA voice)
where its base is already resident, then fewest resident models, then most
free memory, then name, so the same inputs always give the same placement.

A LoRA voice adds an adapter to its base on the worker, loading the base
first where it is not resident: there it needs the base's memory too, and
one more resident slot.

Memory is what the workers measured: each resident model's ``memory_bytes``
from the Lease, against the worker's ``memory_limit_bytes``. A model's size
is what a worker holding it reports (``known_size``), else the VoiceModel's
``estimatedVramGB``.
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
    memory_limit_bytes: int = 0
    """What the worker may use (0: unknown, treated as unlimited)."""
    resident_memory: Mapping[str, int] = field(default_factory=dict)
    """Memory each resident model holds, as the worker measured it."""
    alive: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.resident_cap > 0 and len(self.resident) >= self.resident_cap

    @property
    def free_memory_bytes(self) -> int | None:
        if not self.memory_limit_bytes:
            return None
        return max(0, self.memory_limit_bytes - sum(self.resident_memory.values()))

    def fits(self, needs_bytes: int) -> bool:
        free = self.free_memory_bytes
        return needs_bytes <= 0 or free is None or free >= needs_bytes


def known_size(model_id: str, candidates: Iterable[Candidate], estimated_bytes: int = 0) -> int:
    """A model's memory: the largest a worker holding it measured, else the estimate."""
    measured = [c.resident_memory.get(model_id, 0) for c in candidates]
    return max([m for m in measured if m > 0], default=estimated_bytes)


def place(
    model_id: str,
    family: str,
    copies: int,
    candidates: Iterable[Candidate],
    *,
    pools: Iterable[str] = (),
    match_labels: Mapping[str, str] | None = None,
    needs_bytes: int = 0,
    base_model: str = "",
    base_bytes: int = 0,
) -> list[Candidate]:
    """Up to ``copies`` new workers for ``model_id``, best first.

    ``base_model``/``base_bytes``: a LoRA voice's base and the memory it takes
    on a worker that does not hold it yet."""

    def lacks_base(c: Candidate) -> bool:
        return bool(base_model) and base_model not in c.resident

    def no_slot(c: Candidate) -> bool:  # the base takes a slot of its own
        slots = 2 if lacks_base(c) else 1
        return c.resident_cap > 0 and len(c.resident) + slots > c.resident_cap

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
    eligible.sort(
        key=lambda c: (
            no_slot(c),
            not c.fits(needs_bytes + (base_bytes if lacks_base(c) else 0)),
            lacks_base(c),
            len(c.resident),
            -(c.free_memory_bytes or 0),
            c.pod,
        )
    )
    return eligible[: max(0, copies)]
