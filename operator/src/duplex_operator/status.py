"""A VoiceModel's status from the workers' Leases: pure, the clock passed in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from duplex_protocol.lease import LeaseView, rfc3339_micro


def voicemodel_status(
    model_id: str,
    min_resident: int,
    leases: Iterable[LeaseView],
    now: datetime,
    *,
    generation: int = 0,
    invalid: str = "",
    loading_on: Iterable[tuple[str, str]] = (),
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``phase``, ``residentCopies``, ``resident[]`` and a Ready condition (no I/O).

    ``loading_on``: (pool, pod) pairs where a load was just issued that no
    Lease shows yet. ``previous``: the status now, whose condition keeps its
    ``lastTransitionTime`` while its status stays the same.
    """
    resident = []
    for lease in leases:
        if not lease.alive(now):
            continue
        for model in lease.state.resident:
            if model.id == model_id:
                resident.append(
                    {
                        "worker": lease.pool,
                        "pod": lease.pod,
                        "state": model.state,
                        "loadedAt": model.loaded_at or None,
                        "lastUsedAt": model.last_used or None,
                        "loadMs": model.load_ms,
                    }
                )
    shown = {r["pod"] for r in resident}
    for pool, pod in loading_on:
        if pod not in shown:
            resident.append({"worker": pool, "pod": pod, "state": "loading"})
    resident.sort(key=lambda r: str(r["pod"]))
    ready = sum(1 for r in resident if r["state"] == "ready")
    loading = sum(1 for r in resident if r["state"] == "loading")
    if invalid:
        phase = "Failed"
    elif min_resident == 0 and ready == 0 and loading == 0:
        phase = "Standby"
    elif ready >= min_resident:
        phase = "Ready"
    elif loading:
        phase = "Loading"
    elif ready:
        phase = "Degraded"
    else:
        phase = "Pending"
    is_ready = "True" if phase in ("Ready", "Standby") else "False"
    before: dict[str, Any] = next(
        (c for c in (previous or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    since = before.get("lastTransitionTime") if before.get("status") == is_ready else None
    condition = {
        "type": "Ready",
        "status": is_ready,
        "reason": "InvalidSpec" if invalid else phase,
        "message": invalid or f"{ready} of {min_resident} required copies ready",
        "lastTransitionTime": since or rfc3339_micro(now),
        "observedGeneration": generation,
    }
    return {
        "phase": phase,
        "residentCopies": ready,
        "resident": [{k: v for k, v in r.items() if v is not None} for r in resident],
        "observedGeneration": generation,
        "conditions": [condition],
    }


def status_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The top-level status fields to write: only those that differ (no write when none)."""
    return {key: value for key, value in wanted.items() if current.get(key) != value}
