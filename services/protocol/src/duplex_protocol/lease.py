"""The worker Lease record (DESIGN §6): one writer per fact, read by the orchestrator and operator.

Each worker pod owns one ``coordination.k8s.io/v1`` Lease ``duplex-tts-<pod>``
in its namespace, renewed every 2 s with a 10 s duration, owned by its Pod.
It publishes its gRPC endpoint and a JSON state in annotations. Everything
here is pure: manifests in and out, the clock passed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

LEASE_PREFIX = "duplex-tts-"
LEASE_DURATION_S = 10
RENEW_EVERY_S = 2
ENDPOINT_ANNOTATION = "duplex.dev/endpoint"
STATE_ANNOTATION = "duplex.dev/state"
POOL_LABEL = "duplex.dev/pool"
LABELS = {"app.kubernetes.io/name": "duplex", "app.kubernetes.io/component": "tts-worker"}


@dataclass(frozen=True)
class ResidentModel:
    id: str
    state: str
    """loading | ready"""
    last_used: str = ""
    """RFC 3339 time of the last session start or end."""
    loaded_at: str = ""
    load_ms: int = 0
    refs: int = 0
    pinned: bool = False
    memory_bytes: int = 0
    """What the model holds (VRAM on a GPU); see ModelInfo.memory_bytes."""


@dataclass(frozen=True)
class WorkerState:
    """What a worker publishes in ``duplex.dev/state``."""

    families: list[str]
    device: str = "cpu"
    models: list[str] = field(default_factory=list)
    """Every model the worker can serve (its catalog)."""
    languages: dict[str, list[str]] = field(default_factory=dict)
    model_families: dict[str, str] = field(default_factory=dict)
    """model id → its engine family (piper, csm, ...)."""
    resident: list[ResidentModel] = field(default_factory=list)
    queue_depth: int = 0
    active_sessions: int = 0
    max_sessions: int = 64
    p50_first_audio_ms: float = 0.0
    memory_bytes: int = 0
    """The worker process's resident set size."""
    memory_limit_bytes: int = 0
    """Memory available to the worker (cgroup limit, else host total)."""
    resident_cap: int = 0
    ready: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> WorkerState:
        data = json.loads(text)
        # Unknown keys are dropped, so a newer worker's record stays readable.
        fields = ResidentModel.__dataclass_fields__
        data["resident"] = [
            ResidentModel(**{k: v for k, v in m.items() if k in fields})
            for m in data.get("resident", [])
        ]
        known = WorkerState.__dataclass_fields__
        return WorkerState(**{k: v for k, v in data.items() if k in known})


def lease_name(pod: str) -> str:
    return f"{LEASE_PREFIX}{pod}"


def rfc3339_micro(moment: datetime) -> str:
    """Lease times are MicroTime: microseconds, UTC, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lease_manifest(
    *,
    pod: str,
    pod_uid: str,
    namespace: str,
    pool: str,
    endpoint: str,
    state: WorkerState,
    now: datetime,
    acquired: datetime | None = None,
) -> dict[str, Any]:
    """The full Lease a worker creates (and merge-patches on every renewal)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(pod),
            "namespace": namespace,
            "labels": {**LABELS, POOL_LABEL: pool},
            "annotations": {ENDPOINT_ANNOTATION: endpoint, STATE_ANNOTATION: state.to_json()},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod,
                    "uid": pod_uid,
                    "controller": False,
                }
            ],
        },
        "spec": {
            "holderIdentity": pod,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "acquireTime": rfc3339_micro(acquired or now),
            "renewTime": rfc3339_micro(now),
        },
    }


@dataclass(frozen=True)
class LeaseView:
    """A worker as seen through its Lease."""

    pod: str
    namespace: str
    pool: str
    endpoint: str
    state: WorkerState
    renewed: datetime
    duration_s: int

    def alive(self, now: datetime) -> bool:
        """Dead once ``renewTime + leaseDurationSeconds`` has passed."""
        return now <= self.renewed + timedelta(seconds=self.duration_s)


def read_lease(lease: dict[str, Any]) -> LeaseView | None:
    """A worker Lease as a ``LeaseView``; None for Leases that are not ours or are malformed.

    Label selectors are also applied here, client-side: not every API (or
    emulator) honours them.
    """
    meta = lease.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in LABELS.items()) or not meta.get("name", "").startswith(
        LEASE_PREFIX
    ):
        return None
    annotations = meta.get("annotations") or {}
    spec = lease.get("spec") or {}
    try:
        return LeaseView(
            pod=spec["holderIdentity"],
            namespace=meta.get("namespace", ""),
            pool=labels.get(POOL_LABEL, ""),
            endpoint=annotations[ENDPOINT_ANNOTATION],
            state=WorkerState.from_json(annotations[STATE_ANNOTATION]),
            renewed=parse_time(spec["renewTime"]),
            duration_s=int(spec.get("leaseDurationSeconds") or LEASE_DURATION_S),
        )
    except (KeyError, ValueError, TypeError):
        return None
