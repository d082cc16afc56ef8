"""The ``static`` registry: worker addresses from flags/config, state polled over gRPC.

Every ``poll_s`` it asks each worker for GetCapabilities and ListModels and
keeps a ``WorkerView`` per worker; an unreachable worker is marked unhealthy
until it answers again. Routing reads ``snapshot()`` from memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from duplex_orchestrator.routing.policy import WorkerView
from duplex_orchestrator.tts import WorkerClient
from duplex_protocol.tts.v1 import tts_pb2 as pb

log = logging.getLogger(__name__)


class StaticRegistry:
    def __init__(self, endpoints: list[str], poll_s: float = 2.0) -> None:
        self.clients = {e: WorkerClient(e) for e in endpoints}
        self._views = {e: WorkerView(worker_id=e, endpoint=e, healthy=False) for e in endpoints}
        self._model_info: dict[str, pb.ModelInfo] = {}
        self._poll_s = poll_s
        self._loading: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def snapshot(self) -> list[WorkerView]:
        return list(self._views.values())

    def client(self, endpoint: str) -> WorkerClient:
        return self.clients[endpoint]

    def models(self) -> list[dict[str, object]]:
        """Every model some worker serves, for the client's model selector."""
        return [
            {
                "id": info.id,
                "family": info.family,
                "languages": list(info.languages),
                "resident": any(info.id in v.resident for v in self._views.values()),
            }
            for info in sorted(self._model_info.values(), key=lambda m: m.id)
        ]

    async def refresh(self) -> None:
        await asyncio.gather(*(self._refresh_one(e) for e in self.clients))

    async def _refresh_one(self, endpoint: str) -> None:
        client = self.clients[endpoint]
        try:
            caps, models = await asyncio.gather(client.capabilities(), client.list_models())
        except grpc.aio.AioRpcError as exc:
            if self._views[endpoint].healthy:
                log.warning(
                    "worker unreachable",
                    extra={"event": "worker_down", "worker": endpoint, "code": exc.code().name},
                )
            self.mark_unhealthy(endpoint)
            return
        for info in models:
            self._model_info[info.id] = info
        self._views[endpoint] = WorkerView(
            worker_id=caps.worker_id or endpoint,
            endpoint=endpoint,
            healthy=True,
            models=frozenset(m.id for m in models),
            resident=frozenset(m.id for m in models if m.state == pb.MODEL_STATE_READY),
            languages={m.id: tuple(m.languages) for m in models},
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

    def ensure_loading(self, endpoint: str, model_id: str) -> bool:
        """Fire one LoadModel for (worker, model) unless one is under way; True if fired."""
        key = (endpoint, model_id)
        if key in self._loading:
            return False
        self._loading.add(key)
        task = asyncio.create_task(self._load(endpoint, model_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _load(self, endpoint: str, model_id: str) -> None:
        try:
            await self.clients[endpoint].load_model(model_id)
            log.info(
                "model loaded for routing",
                extra={"event": "route_load", "worker": endpoint, "model": model_id},
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "LoadModel failed",
                extra={
                    "event": "route_load_failed",
                    "worker": endpoint,
                    "model": model_id,
                    "error": exc.details(),
                },
            )
        finally:
            # Refresh before forgetting the load, so routing never sees a gap in
            # which the model is neither loading nor resident (and loads it twice).
            await self._refresh_one(endpoint)
            self._loading.discard((endpoint, model_id))

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._poll_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
