"""The ``kubernetes`` registry: worker Leases listed and watched into memory (DESIGN §6).

The orchestrator only reads Leases. A Lease past ``renewTime +
leaseDurationSeconds`` is dead and its worker gets no sessions. Labels are
filtered client-side too (``read_lease``), since not every API honours
selectors. Routing decisions come from this table: no per-session API call.
A Lease seen alive and then lapsed counts once in ``duplex_lease_expiries_total``
(one already dead when first seen, e.g. a deleted pod's, does not).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from duplex_orchestrator import metrics
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.routing.policy import WorkerView
from duplex_protocol.kube import KubeClient, KubeError, leases_path
from duplex_protocol.lease import LABELS, LeaseView, read_lease
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)
_SELECTOR = ",".join(f"{k}={v}" for k, v in LABELS.items())
_DOWN_FOR_S = 10.0


class KubernetesRegistry(Registry):
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        security: WireSecurity | None = None,
    ) -> None:
        super().__init__(security, max_backoff_s=1.0)
        self._kube = client
        self._namespace = namespace
        self._leases: dict[str, LeaseView] = {}
        self._down: dict[str, float] = {}
        self._seen_alive: set[str] = set()
        self._now = now
        self._monotonic = monotonic

    def snapshot(self) -> list[WorkerView]:
        now, clock = self._now(), self._monotonic()
        views = []
        for name, lease in self._leases.items():
            alive = lease.alive(now)
            self._note_liveness(name, alive)
            state = lease.state
            failed = self._down.get(lease.endpoint, float("-inf")) > clock - _DOWN_FOR_S
            views.append(
                WorkerView(
                    worker_id=lease.pod,
                    endpoint=lease.endpoint,
                    healthy=alive and state.ready and not failed,
                    models=frozenset(state.models),
                    resident=frozenset(m.id for m in state.resident if m.state == "ready"),
                    languages={k: tuple(v) for k, v in state.languages.items()},
                    families=dict(state.model_families),
                    queue_depth=state.queue_depth,
                    active_sessions=state.active_sessions,
                    max_sessions=state.max_sessions,
                    p50_first_audio_ms=state.p50_first_audio_ms,
                )
            )
        return views

    def _note_liveness(self, name: str, alive: bool) -> None:
        if alive:
            self._seen_alive.add(name)
        elif name in self._seen_alive:
            self._seen_alive.discard(name)
            metrics.LEASE_EXPIRIES.inc()

    def mark_unhealthy(self, endpoint: str) -> None:
        # The Lease may still look alive for up to 10 s: skip the worker meanwhile.
        self._down[endpoint] = self._monotonic()

    def apply(self, event_type: str, lease: dict[str, object]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) into the table."""
        meta = lease.get("metadata")
        name = meta.get("name", "") if isinstance(meta, dict) else ""
        if event_type == "DELETED":
            self._leases.pop(name, None)
            self._seen_alive.discard(name)  # released, not lapsed
            return
        view = read_lease(lease)
        if view is not None:
            if self._down.get(view.endpoint) is not None and self._leases.get(name) != view:
                self._down.pop(view.endpoint, None)  # renewed since it failed: trust it again
            self._leases[name] = view

    async def refresh(self) -> None:
        listing = await self._kube.get(leases_path(self._namespace), labelSelector=_SELECTOR)
        self._leases.clear()
        for item in listing.get("items", []):
            self.apply("ADDED", item)
        self._seen_alive &= self._leases.keys()

    async def run(self) -> None:
        """List, then watch; on any error start over after a short pause."""
        while True:
            try:
                await self.refresh()
                async for event in self._kube.watch(
                    leases_path(self._namespace), labelSelector=_SELECTOR
                ):
                    obj = event.get("object")
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and isinstance(
                        obj, dict
                    ):
                        self.apply(str(event["type"]), obj)
            except (TimeoutError, KubeError, OSError, ValueError) as exc:
                log.warning(
                    "lease watch failed", extra={"event": "lease_watch_error", "error": str(exc)}
                )
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        await super().close()
        await self._kube.close()
