"""What every registry backend shares: gRPC clients, the model list, deduplicated LoadModel."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from duplex_orchestrator.routing.policy import WorkerView
from duplex_orchestrator.tts import WorkerClient
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)


class Registry:
    """A table of workers kept in memory; routing reads ``snapshot()`` and never waits on I/O."""

    def __init__(self, security: WireSecurity | None = None, max_backoff_s: float = 2.0) -> None:
        self._security = security or WireSecurity()
        self._max_backoff_s = max_backoff_s
        self._clients: dict[str, WorkerClient] = {}
        self._loading: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- to implement --------------------------------------------------

    def snapshot(self) -> list[WorkerView]:
        raise NotImplementedError

    def mark_unhealthy(self, endpoint: str) -> None:
        """A call to the worker failed: stop routing to it until it proves alive again."""
        raise NotImplementedError

    async def refresh(self) -> None:
        """Read every worker's state once (before serving)."""

    async def refresh_worker(self, endpoint: str) -> None:
        """Re-read one worker's state (after a load)."""

    async def run(self) -> None:
        """Keep the table current for ever."""
        raise NotImplementedError

    # ---- shared ----------------------------------------------------------

    def client(self, endpoint: str) -> WorkerClient:
        if endpoint not in self._clients:
            self._clients[endpoint] = WorkerClient(
                endpoint, security=self._security, max_backoff_s=self._max_backoff_s
            )
        return self._clients[endpoint]

    def models(self) -> list[dict[str, object]]:
        """Every model some healthy worker serves, for the client's model selector."""
        views = [v for v in self.snapshot() if v.healthy]
        ids = sorted({m for v in views for m in v.models})
        return [
            {
                "id": model_id,
                "languages": sorted(
                    {lang for v in views for lang in v.languages.get(model_id, ())}
                ),
                "family": next((v.families[model_id] for v in views if model_id in v.families), ""),
                "resident": any(model_id in v.resident for v in views),
            }
            for model_id in ids
        ]

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
            await self.client(endpoint).load_model(model_id)
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
            await self.refresh_worker(endpoint)
            self._loading.discard((endpoint, model_id))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for worker in self._clients.values():
            with contextlib.suppress(Exception):
                await worker.close()
