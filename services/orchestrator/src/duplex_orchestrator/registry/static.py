"""The ``static`` registry: worker addresses from flags/config, state polled over gRPC.

Every ``poll_s`` it asks each worker for GetCapabilities and ListModels and
keeps a ``WorkerView`` per worker; an unreachable worker is marked unhealthy
until it answers again.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.routing.policy import WorkerView
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)


class StaticRegistry(Registry):
    def __init__(
        self, endpoints: list[str], poll_s: float = 2.0, security: WireSecurity | None = None
    ) -> None:
        # Reconnect backoff capped at the poll interval: a worker back after a long
        # outage is seen at the next poll or the one after.
        super().__init__(security, max_backoff_s=poll_s)
        self._endpoints = list(endpoints)
        self._views = {e: WorkerView(worker_id=e, endpoint=e, healthy=False) for e in endpoints}
        self._poll_s = poll_s
        self._down: set[str] = set()
        """Workers whose outage has been logged (once per outage)."""

    def snapshot(self) -> list[WorkerView]:
        return list(self._views.values())

    async def refresh(self) -> None:
        await asyncio.gather(*(self.refresh_worker(e) for e in self._endpoints))

    async def refresh_worker(self, endpoint: str) -> None:
        worker = self.client(endpoint)
        try:
            caps, models = await asyncio.gather(worker.capabilities(), worker.list_models())
        except grpc.aio.AioRpcError as exc:
            if endpoint not in self._down:
                log.warning(
                    "worker unreachable",
                    extra={"event": "worker_down", "worker": endpoint, "code": exc.code().name},
                )
                self._down.add(endpoint)
            self.mark_unhealthy(endpoint)
            return
        if endpoint in self._down:
            self._down.discard(endpoint)
            log.info("worker reachable", extra={"event": "worker_up", "worker": endpoint})
        self._views[endpoint] = WorkerView(
            worker_id=caps.worker_id or endpoint,
            endpoint=endpoint,
            healthy=True,
            models=frozenset(m.id for m in models),
            resident=frozenset(m.id for m in models if m.state == pb.MODEL_STATE_READY),
            languages={m.id: tuple(m.languages) for m in models},
            families={m.id: m.family for m in models},
            queue_depth=caps.queue_depth,
            active_sessions=caps.active_sessions,
            max_sessions=caps.max_sessions or 64,
            p50_first_audio_ms=caps.p50_first_audio_ms,
        )

    def mark_unhealthy(self, endpoint: str) -> None:
        view = self._views[endpoint]
        self._views[endpoint] = WorkerView(
            worker_id=view.worker_id, endpoint=endpoint, healthy=False, models=view.models
        )

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._poll_s)
