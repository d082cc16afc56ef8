"""The operator's I/O against the Kubernetes API: apply manifests, read worker Leases and pools."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import kopf

from duplex_operator.builders import pod_labels
from duplex_operator.placement import Candidate
from duplex_protocol.kube import KubeClient, KubeConfig, KubeError, bearer_token, leases_path
from duplex_protocol.lease import LeaseView, read_lease

_PATHS = {
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("apps/v1", "StatefulSet"): "/apis/apps/v1/namespaces/{ns}/statefulsets",
    (
        "rbac.authorization.k8s.io/v1",
        "Role",
    ): "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
    ): "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    ("coordination.k8s.io/v1", "Lease"): "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
}
GROUP, VERSION = "duplex.dev", "v1alpha1"
"""The API group and version of TTSWorker and VoiceModel."""
POOLS = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/ttsworkers"


def collection(manifest: dict[str, Any]) -> str:
    template = _PATHS[(manifest["apiVersion"], manifest["kind"])]
    return template.format(ns=manifest["metadata"]["namespace"])


FIELD_MANAGER = "duplex-operator"


async def apply(client: KubeClient, manifest: dict[str, Any]) -> str:
    """Server-side apply the object as ``duplex-operator``: changes roll out, dropped fields go.

    Emulators without server-side apply answer 404 for an object not there
    yet (the API server creates it); then it is created.
    """
    path = collection(manifest)
    try:
        await client.server_side_apply(
            f"{path}/{manifest['metadata']['name']}", manifest, FIELD_MANAGER
        )
        return "applied"
    except KubeError as exc:
        if exc.status != 404:
            raise
    await client.create(path, manifest)
    return "created"


async def connection_info(config: KubeConfig) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration as every other API call.

    kopf calls this again on a 401, so a token from an exec plugin is renewed.
    """
    client = await config.configuration()
    return kopf.ConnectionInfo(
        server=str(client.host),
        token=await bearer_token(client) or None,
        ca_path=client.ssl_ca_cert or None,
        certificate_path=client.cert_file or None,
        private_key_path=client.key_file or None,
        insecure=not client.verify_ssl,
    )


async def worker_leases(client: KubeClient, namespace: str) -> list[LeaseView]:
    listing = await client.get(leases_path(namespace))
    views = (read_lease(item) for item in listing.get("items", []))
    return [v for v in views if v is not None]


async def pools(client: KubeClient, namespace: str) -> list[dict[str, Any]]:
    listing = await client.get(POOLS.format(ns=namespace))
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


T = TypeVar("T")


class SharedListing(Generic[T]):
    """One listing per key at most every ``max_age_s``, shared by all who ask meanwhile.

    Hundreds of VoiceModel timers each need the namespace's Leases and pools;
    listing them once a second for all keeps the API server's load flat in the
    number of VoiceModels. A failed listing is not kept.

    The listing runs as a task of its own, which never ends in an exception: its
    error goes to the readers instead. At shutdown kopf re-raises the error of
    any task that outlived its handlers, and a listing whose readers were
    cancelled fails once the API client is closed: the operator exited 1.
    """

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[T]],
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch, self._max_age_s, self._clock = fetch, max_age_s, clock
        self._entries: dict[str, tuple[float, asyncio.Future[T | Exception]]] = {}

    async def get(self, key: str) -> T:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._max_age_s:
            entry = (now, asyncio.ensure_future(self._settled(key)))
            self._entries[key] = entry
        result = await asyncio.shield(entry[1])
        if isinstance(result, Exception):
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise result
        return result

    async def _settled(self, key: str) -> T | Exception:
        try:
            return await self._fetch(key)
        except Exception as exc:
            return exc


def candidates(
    leases: list[LeaseView], now: datetime, pool_resources: Sequence[Mapping[str, Any]] = ()
) -> list[Candidate]:
    """Placement candidates from the workers' Leases and their TTSWorker pools.

    A Lease names its pool; the pool's labels are what its pods carry, so a
    VoiceModel's ``workerSelector.matchLabels`` is matched against those.
    """
    labels_by_pool = {
        str(p["metadata"]["name"]): pod_labels(
            str(p["metadata"]["name"]), p["metadata"].get("labels") or {}
        )
        for p in pool_resources
    }
    return [
        Candidate(
            pod=lease.pod,
            pool=lease.pool,
            endpoint=lease.endpoint,
            families=frozenset(lease.state.families),
            resident=frozenset(m.id for m in lease.state.resident),
            resident_cap=lease.state.resident_cap,
            memory_limit_bytes=lease.state.memory_limit_bytes,
            resident_memory={m.id: m.memory_bytes for m in lease.state.resident},
            alive=lease.alive(now) and lease.state.ready,
            labels=labels_by_pool.get(lease.pool, pod_labels(lease.pool, {})),
        )
        for lease in leases
    ]
