"""The worker's own Lease (DESIGN §6): created at start, renewed every 2 s, deleted at shutdown.

One writer per fact: only this pod writes ``duplex-tts-<pod>``. Renewals are
merge-patches of ``renewTime`` and the state annotations; an API error is
logged and the next tick tries again (the Lease simply ages meanwhile, and
readers treat it as dead after 10 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from duplex_protocol.kube import KubeClient, KubeError, leases_path
from duplex_protocol.lease import (
    ENDPOINT_ANNOTATION,
    RENEW_EVERY_S,
    STATE_ANNOTATION,
    WorkerState,
    lease_manifest,
    lease_name,
    rfc3339_micro,
)

log = logging.getLogger(__name__)


class LeaseWriter:
    def __init__(
        self,
        client: KubeClient,
        *,
        pod: str,
        pod_uid: str,
        namespace: str,
        pool: str,
        endpoint: str,
        state: Callable[[], WorkerState],
        renew_every_s: float = RENEW_EVERY_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._pod, self._uid, self._namespace, self._pool = pod, pod_uid, namespace, pool
        self._endpoint = endpoint
        self._state = state
        self._every = renew_every_s
        self._now = now
        self._path = leases_path(namespace, lease_name(pod))
        self._vacate_on_release = False

    async def acquire(self) -> None:
        """Create the Lease, or take over the one a previous run of this pod left."""
        manifest = lease_manifest(
            pod=self._pod,
            pod_uid=self._uid,
            namespace=self._namespace,
            pool=self._pool,
            endpoint=self._endpoint,
            state=self._state(),
            now=self._now(),
        )
        try:
            await self._client.create(leases_path(self._namespace), manifest)
        except KubeError as exc:
            if exc.status == 409:  # left by a previous run of this pod: take it over
                await self._client.merge_patch(self._path, manifest)
            elif exc.status == 403:
                # The operator created it (a worker may only patch its own Lease, by
                # name); it owns the Lease, so its owner reference stays.
                del manifest["metadata"]["ownerReferences"]
                await self._client.merge_patch(self._path, manifest)
                self._vacate_on_release = True
            else:
                raise
        log.info(
            "lease acquired", extra={"event": "lease_acquired", "lease": lease_name(self._pod)}
        )

    async def renew(self) -> None:
        await self._client.merge_patch(
            self._path,
            {
                "metadata": {
                    "annotations": {
                        ENDPOINT_ANNOTATION: self._endpoint,
                        STATE_ANNOTATION: self._state().to_json(),
                    }
                },
                "spec": {"holderIdentity": self._pod, "renewTime": rfc3339_micro(self._now())},
            },
        )

    async def run(self) -> None:
        """Acquire, then renew for ever (errors are logged and retried on the next tick)."""
        while True:
            try:
                await self.acquire()
                break
            except (TimeoutError, KubeError, OSError) as exc:
                log.warning(
                    "lease create failed", extra={"event": "lease_error", "error": str(exc)}
                )
                await asyncio.sleep(self._every)
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.renew()
            except (TimeoutError, KubeError, OSError) as exc:
                log.warning(
                    "lease renewal failed", extra={"event": "lease_error", "error": str(exc)}
                )

    async def release(self) -> None:
        """Delete the Lease at shutdown, so readers drop this worker at once."""
        try:
            if self._vacate_on_release:  # not ours to delete: hand it back vacant
                await self._client.merge_patch(
                    self._path, {"spec": {"holderIdentity": None, "renewTime": None}}
                )
            else:
                await self._client.delete(self._path)
        except (TimeoutError, KubeError, OSError) as exc:
            log.warning("lease delete failed", extra={"event": "lease_error", "error": str(exc)})
