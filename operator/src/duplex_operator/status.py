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
) -> dict[str, Any]:
    """``phase``, ``residentCopies``, ``resident[]`` and a Ready condition (no I/O)."""
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
    is_ready = phase in ("Ready", "Standby")
    condition = {
        "type": "Ready",
        "status": "True" if is_ready else "False",
        "reason": "InvalidSpec" if invalid else phase,
        "message": invalid or f"{ready} of {min_resident} required copies ready",
        "lastTransitionTime": rfc3339_micro(now),
        "observedGeneration": generation,
    }
    return {
        "phase": phase,
        "residentCopies": ready,
        "resident": [{k: v for k, v in r.items() if v is not None} for r in resident],
        "observedGeneration": generation,
        "conditions": [condition],
    }
