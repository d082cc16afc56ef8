"""Resident-first routing: a pure function over a registry snapshot (DESIGN §5).

Filter workers by health, capacity, model and language; prefer those where
the model is resident, then the lowest queue depth, then the best p50
first-audio latency. If the requested model is resident nowhere, name the
best candidate to load it on (the caller fires one deduplicated LoadModel)
and serve this utterance from the best worker where the fallback model is
resident.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerView:
    """What routing knows of one worker (from GetCapabilities/ListModels or a Lease)."""

    worker_id: str
    endpoint: str
    healthy: bool = True
    models: frozenset[str] = frozenset()
    """Models the worker can serve (its catalog)."""
    resident: frozenset[str] = frozenset()
    languages: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """model id → languages."""
    families: dict[str, str] = field(default_factory=dict)
    """model id → engine family."""
    queue_depth: int = 0
    active_sessions: int = 0
    max_sessions: int = 64
    p50_first_audio_ms: float = 0.0


@dataclass(frozen=True)
class RouteRequest:
    model_id: str
    language: str = ""
    fallback_model: str = ""
    """Model to speak with meanwhile if ``model_id`` is resident nowhere."""
    exclude: frozenset[str] = frozenset()
    """Workers not to use (e.g. one that just failed this turn)."""


@dataclass(frozen=True)
class Route:
    worker: WorkerView | None
    model_id: str
    load_on: WorkerView | None = None
    """Fire LoadModel(request.model_id) on this worker (resident nowhere yet)."""
    reason: str = ""


def _best(workers: Sequence[WorkerView]) -> WorkerView:
    """Lowest queue depth, then p50 first audio, then fewest sessions, then id.

    A worker with no latency sample yet (p50 of 0, e.g. just restarted) ranks
    like the best measured one: it must not lose to a measured worker (it
    would never get the turn that measures it), nor win them all on a guess;
    among equals the idler one wins.
    """
    measured = [w.p50_first_audio_ms for w in workers if w.p50_first_audio_ms > 0]
    unknown = min(measured, default=0.0)
    return min(
        workers,
        key=lambda w: (
            w.queue_depth,
            w.p50_first_audio_ms or unknown,
            w.active_sessions,
            w.worker_id,
        ),
    )


def _language_ok(w: WorkerView, model_id: str, base: str) -> bool:
    """``base``: the request's primary language subtag, lower case ('' for any)."""
    if not base:
        return True
    langs = w.languages.get(model_id, ())
    return not langs or any(lang.split("-")[0].lower() == base for lang in langs)


def _eligible(
    workers: Iterable[WorkerView], request: RouteRequest, model_id: str
) -> list[WorkerView]:
    base = request.language.split("-")[0].lower()
    return [
        w
        for w in workers
        if w.healthy
        and model_id in w.models
        and w.active_sessions < w.max_sessions
        and w.worker_id not in request.exclude
        and _language_ok(w, model_id, base)
    ]


def route(workers: Sequence[WorkerView], request: RouteRequest) -> Route:
    """One decision; O(workers), only the best candidate is picked (no full sort)."""
    able = _eligible(workers, request, request.model_id)
    if not able:
        return Route(
            None,
            request.model_id,
            reason=f"no healthy worker with free capacity serves {request.model_id!r}",
        )
    resident = [w for w in able if request.model_id in w.resident]
    if resident:
        return Route(_best(resident), request.model_id, reason="resident")
    load_on = _best(able)
    fallback_model = request.fallback_model
    if fallback_model and fallback_model != request.model_id:
        fallback = [
            w for w in _eligible(workers, request, fallback_model) if fallback_model in w.resident
        ]
        if fallback:
            return Route(
                _best(fallback),
                fallback_model,
                load_on=load_on,
                reason="fallback while loading",
            )
    return Route(load_on, request.model_id, reason="load on demand")
