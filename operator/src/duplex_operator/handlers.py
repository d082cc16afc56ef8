"""Thin kopf handlers: read the world, ask the pure parts, write objects and status.

- A TTSWorker becomes its ServiceAccount, Role, RoleBinding, headless Service
  and StatefulSet (owned, so deleting the pool removes them); a timer copies
  its workers' Leases into ``status.workers``; another, for pools with
  ``spec.autoscaling``, sets ``spec.replicas`` from the load those Leases
  report (``autoscaling.decide``).
- A VoiceModel is reconciled by a timer, whose handlers are in
  ``model_handlers``.

``build_registry`` puts both kinds' handlers in one kopf registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf

from duplex_operator import metrics
from duplex_operator.autoscaling import AutoscalingSpec, InvalidAutoscaling, WorkerLoad, decide
from duplex_operator.builders import (
    PoolSpec,
    WorkerWire,
    headless_service,
    service_account,
    statefulset,
    statefulset_name,
    vacant_leases,
    worker_role,
)
from duplex_operator.images import NoWorkerImage, WorkerImage
from duplex_operator.kube import (
    GROUP,
    POOLS,
    VERSION,
    SharedListing,
    apply,
    connection_info,
    worker_leases,
)
from duplex_operator.model_handlers import model_handlers
from duplex_operator.status import status_changes
from duplex_protocol.kube import KubeClient, KubeConfig
from duplex_protocol.lease import LeaseView, parse_time, rfc3339_micro
from duplex_protocol.wire import WireSecurity

log = logging.getLogger(__name__)


def build_registry(
    config: KubeConfig,
    *,
    reconcile_every_s: float = 3.0,
    load_timeout_s: float = 600.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    kinds: Collection[str] = ("ttsworkers", "voicemodels"),
    images: Sequence[WorkerImage] = (),
    security: WireSecurity | None = None,
    wire: WorkerWire | None = None,
) -> kopf.OperatorRegistry:
    """Handlers for ``kinds`` (both by default; tests may run them separately).

    ``security``: how to reach workers (default: the ``DUPLEX_GRPC_*`` variables).
    """
    registry = kopf.OperatorRegistry()
    security = security or WireSecurity.load()
    client = KubeClient(config)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await connection_info(config)

    @kopf.on.cleanup(registry=registry)
    async def close_client(**_: Any) -> None:
        await client.close()

    # Every reconcile reads the namespace's Leases and pools: listed once a second for all.
    leases: SharedListing[list[LeaseView]] = SharedListing(lambda ns: worker_leases(client, ns))
    if "ttsworkers" in kinds:
        _pool_handlers(
            registry, client, leases, reconcile_every_s, now, images, wire or WorkerWire()
        )
    if "voicemodels" in kinds:
        model_handlers(registry, client, leases, reconcile_every_s, load_timeout_s, now, security)
    return registry


def _pool_handlers(
    registry: kopf.OperatorRegistry,
    client: KubeClient,
    cluster_leases: SharedListing[list[LeaseView]],
    reconcile_every_s: float,
    now: Callable[[], datetime],
    images: Sequence[WorkerImage],
    wire: WorkerWire,
) -> None:
    # ---- TTSWorker -------------------------------------------------------

    @kopf.on.create(GROUP, VERSION, "ttsworkers", registry=registry)
    @kopf.on.update(GROUP, VERSION, "ttsworkers", registry=registry, field="spec")
    @kopf.on.resume(GROUP, VERSION, "ttsworkers", registry=registry)
    async def pool_reconcile(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        with metrics.RECONCILE.labels(kind="TTSWorker").time():
            try:
                pool = PoolSpec.from_resource(dict(body), images, wire)
            except NoWorkerImage as exc:
                kopf.warn(body, reason="NoWorkerImage", message=str(exc))
                raise kopf.PermanentError(str(exc)) from None
            for manifest in [
                service_account(pool),
                *worker_role(pool),
                *vacant_leases(pool),
                headless_service(pool),
                statefulset(pool),
            ]:
                outcome = await apply(client, manifest)
                logger.info(f"{manifest['kind']} {manifest['metadata']['name']} {outcome}")

    @kopf.timer(GROUP, VERSION, "ttsworkers", registry=registry, interval=reconcile_every_s)
    async def pool_status(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        moment = now()
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        leases = await cluster_leases.get(namespace)
        mine = [lease for lease in leases if lease.pool == name]
        workers = [
            {
                "name": lease.pod,
                "pod": lease.pod,
                "endpoint": lease.endpoint,
                "ready": lease.alive(moment) and lease.state.ready,
                "resident": [m.id for m in lease.state.resident if m.state == "ready"],
                "queueDepth": lease.state.queue_depth,
                "leaseRenewedAt": rfc3339_micro(lease.renewed),
            }
            for lease in sorted(mine, key=lambda lease: lease.pod)
        ]
        wanted = {
            "workers": workers,
            "replicas": body["spec"].get("replicas", 1),
            "readyReplicas": sum(1 for w in workers if w["ready"]),
        }
        patch.status.update(status_changes(dict(body.get("status") or {}), wanted))

    @kopf.timer(GROUP, VERSION, "ttsworkers", registry=registry, interval=reconcile_every_s)
    async def pool_autoscale(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        """``spec.autoscaling``: set the pool's ``spec.replicas`` from its workers' load."""
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        previous = dict((body.get("status") or {}).get("autoscaling") or {})
        try:
            spec = AutoscalingSpec.from_spec(body["spec"])
        except InvalidAutoscaling as exc:
            if previous.get("error") != str(exc):
                kopf.warn(body, reason="InvalidAutoscaling", message=str(exc))
                patch.status["autoscaling"] = {"error": str(exc)}
            return
        if spec is None:
            metrics.forget_pool(namespace, name)
            if previous:
                patch.status["autoscaling"] = None
            return
        moment = now()
        leases = [lease for lease in await cluster_leases.get(namespace) if lease.pool == name]
        workers = [
            WorkerLoad(
                lease.pod,
                lease.alive(moment),
                lease.state.active_sessions,
                lease.state.queue_depth,
            )
            for lease in leases
        ]
        current = int(body["spec"].get("replicas", 1))
        pending = previous.get("scaleDownPendingSince")
        decision = decide(
            spec,
            current,
            workers,
            statefulset=statefulset_name(name),
            now=moment,
            pending_since=parse_time(pending) if pending else None,
        )
        metrics.WANTED_REPLICAS.labels(namespace, name).set(decision.wanted)
        metrics.MAX_REPLICAS.labels(namespace, name).set(spec.max_replicas)
        wanted = {
            "metric": spec.metric,
            "load": decision.load,
            "wantedReplicas": decision.wanted,
            "scaleDownPendingSince": (
                rfc3339_micro(decision.pending_since) if decision.pending_since else None
            ),
            "heldBy": list(decision.held_by),
            "lastScaleTime": previous.get("lastScaleTime"),
        }
        if decision.replicas != current:
            # Through the spec, as `kubectl scale` would: the update handler rolls it out.
            await client.merge_patch(
                f"{POOLS.format(ns=namespace)}/{name}", {"spec": {"replicas": decision.replicas}}
            )
            up = decision.replicas > current
            metrics.SCALINGS.labels(direction="up" if up else "down").inc()
            kopf.info(
                body,
                reason="ScaledUp" if up else "ScaledDown",
                message=decision.reason(current, spec),
            )
            wanted["lastScaleTime"] = rfc3339_micro(moment)
        shown = {k: v for k, v in wanted.items() if v is not None}
        if shown != previous:  # a merge patch: fields gone since are written as null
            patch.status["autoscaling"] = {**dict.fromkeys(previous), **shown}

    @kopf.on.delete(GROUP, VERSION, "ttsworkers", registry=registry, optional=True)
    async def pool_delete(body: kopf.Body, **_: Any) -> None:
        """No finalizer (``optional``): the owned objects go by garbage collection."""
        metrics.forget_pool(body["metadata"]["namespace"], body["metadata"]["name"])
