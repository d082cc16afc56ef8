"""Thin kopf handlers of VoiceModels: place, load and pin copies; rebuild status; unload.

A timer reconciles each VoiceModel: its spec is checked against the pools (an
invalid spec gets an ``InvalidSpec`` condition and an Event, and nothing is
loaded until it changes); missing copies are placed (``placement.place``) and
loaded, pinned, with ``LoadModel`` over gRPC; failed loads and evictions
become ``lastFailure`` / Events; ``status`` is rebuilt from the Leases. A
finalizer unloads the model everywhere before the VoiceModel goes away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import grpc
import kopf

from duplex_operator import metrics
from duplex_operator.kube import (
    GROUP,
    VERSION,
    SharedListing,
    candidates,
    pools,
    worker_leases,
)
from duplex_operator.placement import known_size, place
from duplex_operator.status import status_changes, voicemodel_status
from duplex_operator.validation import estimated_vram_gb, voicemodel_problems
from duplex_protocol.kube import KubeClient
from duplex_protocol.lease import LeaseView, rfc3339_micro
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)


def model_id_of(body: Any) -> str:
    return str(body["spec"].get("modelId") or body["metadata"]["name"])


async def grpc_call(
    endpoint: str, method: str, request: Any, timeout_s: float, security: WireSecurity
) -> Any:
    """One call to a worker, with the mutual TLS and token the workers require."""
    async with security.channel(endpoint) as channel:
        stub = pb_grpc.TTSStub(channel)
        return await getattr(stub, method)(request, timeout=timeout_s, metadata=security.metadata)


def model_handlers(
    registry: kopf.OperatorRegistry,
    client: KubeClient,
    cluster_leases: SharedListing[list[LeaseView]],
    reconcile_every_s: float,
    load_timeout_s: float,
    now: Callable[[], datetime],
    security: WireSecurity,
) -> None:
    # A Lease shows a new copy only at the worker's next renewal (<= 2 s):
    # copies loaded recently count as held meanwhile, so none is placed twice.
    recent_loads: dict[tuple[str, str], datetime] = {}
    cluster_pools: SharedListing[list[dict[str, Any]]] = SharedListing(lambda ns: pools(client, ns))

    # ---- VoiceModel ------------------------------------------------------

    @kopf.timer(GROUP, VERSION, "voicemodels", registry=registry, interval=reconcile_every_s)
    async def model_reconcile(
        body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
    ) -> None:
        with metrics.RECONCILE.labels(kind="VoiceModel").time():
            await reconcile_model(body, patch, logger)

    async def reconcile_model(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
        moment = now()
        spec, meta = body["spec"], body["metadata"]
        namespace, generation = meta["namespace"], int(meta.get("generation") or 0)
        model_id = model_id_of(body)
        min_resident = int((spec.get("residency") or {}).get("minResident", 1))
        previous = dict(body.get("status") or {})
        problems = voicemodel_problems(dict(spec), await cluster_pools.get(namespace))
        if problems:
            message = "; ".join(problems)
            if (
                previous.get("phase") != "Failed"
                or previous.get("observedGeneration") != generation
            ):
                kopf.warn(body, reason="InvalidSpec", message=message)
            wanted = voicemodel_status(
                model_id,
                min_resident,
                [],
                moment,
                generation=generation,
                invalid=message,
                previous=previous,
            )
            patch.status.update(status_changes(previous, wanted))
            return
        leases = await cluster_leases.get(namespace)
        eviction = _report_evictions(body, previous, leases, model_id, moment)
        if eviction:
            patch.status["lastEviction"] = eviction
        for key, loaded in list(recent_loads.items()):
            if (moment - loaded).total_seconds() > 10:
                del recent_loads[key]
        # Loads issued meanwhile count as held, on their worker, and towards its fill.
        pending: dict[str, set[str]] = {}
        for pod, model in recent_loads:
            pending.setdefault(pod, set()).add(model)
        workers = [
            replace(c, resident=c.resident | pending.get(c.pod, set()))
            for c in candidates(leases, moment, await cluster_pools.get(namespace))
        ]
        holding = sum(1 for c in workers if c.alive and model_id in c.resident)
        selector = spec.get("workerSelector") or {}
        base = str(spec.get("baseModel") or "")
        picks = place(
            model_id,
            spec["family"],
            min_resident - holding,
            workers,
            pools=selector.get("pools") or (),
            match_labels=selector.get("matchLabels"),
            needs_bytes=known_size(model_id, workers, int(estimated_vram_gb(spec) * 1e9)),
            base_model=base,
            base_bytes=known_size(base, workers) if base else 0,
        )
        for pick in picks:  # reserved before the call: concurrent reconciles see it
            recent_loads[(pick.pod, model_id)] = moment
        for pick in picks:
            try:
                await grpc_call(
                    pick.endpoint,
                    "LoadModel",
                    pb.LoadModelRequest(model_id=model_id, pin=True),
                    load_timeout_s,
                    security,
                )
                metrics.PLACEMENTS.inc()
                kopf.info(body, reason="Loaded", message=f"loaded on {pick.pod}")
            except grpc.aio.AioRpcError as exc:
                recent_loads.pop((pick.pod, model_id), None)
                metrics.LOAD_FAILURES.inc()
                failure = {
                    "worker": pick.pod,
                    "reason": "LoadFailed",
                    "message": exc.details() or exc.code().name,
                    "time": rfc3339_micro(moment),
                }
                patch.status["lastFailure"] = failure
                kopf.warn(body, reason="LoadFailed", message=f"{pick.pod}: {failure['message']}")
        pools_of = {c.pod: c.pool for c in workers}
        wanted = voicemodel_status(
            model_id,
            min_resident,
            leases,
            moment,
            generation=generation,
            loading_on=[
                (pools_of[pod], pod) for pod, m in recent_loads if m == model_id and pod in pools_of
            ],
            previous=previous,
        )
        patch.status.update(status_changes(previous, wanted))
        logger.debug(f"{model_id}: {wanted['phase']}")

    def _report_evictions(
        body: kopf.Body,
        previous: dict[str, Any],
        leases: list[Any],
        model_id: str,
        moment: datetime,
    ) -> dict[str, str] | None:
        """A copy that was ready on a live worker and is gone now was evicted there (TTL/LRU)."""
        alive = {lease.pod: lease for lease in leases if lease.alive(moment)}
        last = None
        for copy in previous.get("resident") or []:
            lease = alive.get(copy.get("pod", ""))
            if lease is None or copy.get("state") != "ready":
                continue
            if model_id not in {m.id for m in lease.state.resident}:
                metrics.EVICTIONS.inc()
                kopf.info(
                    body,
                    reason="Evicted",
                    message=f"{lease.pod} evicted {model_id} (idle TTL or LRU)",
                )
                last = {
                    "worker": lease.pool,
                    "pod": lease.pod,
                    "reason": "IdleOrCap",
                    "time": rfc3339_micro(moment),
                }
        return last

    @kopf.on.delete(GROUP, VERSION, "voicemodels", registry=registry)
    async def model_delete(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        """Finalizer: unload the model from every worker before the VoiceModel goes."""
        model_id, moment = model_id_of(body), now()
        for lease in await worker_leases(client, body["metadata"]["namespace"]):
            if not lease.alive(moment) or model_id not in {m.id for m in lease.state.resident}:
                continue
            try:
                await grpc_call(
                    lease.endpoint,
                    "UnloadModel",
                    pb.UnloadModelRequest(model_id=model_id),
                    60,
                    security,
                )
                logger.info(f"unloaded {model_id} from {lease.pod}")
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    raise kopf.TemporaryError(f"{lease.pod}: {exc.details()}", delay=5) from exc
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise kopf.TemporaryError(f"{lease.pod}: {exc.details()}", delay=10) from exc
