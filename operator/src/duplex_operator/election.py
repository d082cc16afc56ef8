"""Leader election I/O: read, claim, renew and release the leader Lease (see ``leadership``).

``acquire()`` returns once this replica leads; ``hold()`` renews until the
lead is lost (another holder, or no successful renewal within the renew
deadline) and then returns, so the caller stops reconciling at once;
``release()`` hands the Lease over on a clean shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from duplex_operator.leadership import (
    LEADER_LEASE,
    LEASE_DURATION_S,
    RENEW_EVERY_S,
    RETRY_EVERY_S,
    LeaderRecord,
    Move,
    claim,
    decide,
    release,
)
from duplex_protocol.kube import KubeClient, KubeConfig, KubeError, leases_path

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        config: KubeConfig,
        namespace: str,
        identity: str,
        *,
        name: str = LEADER_LEASE,
        duration_s: int = LEASE_DURATION_S,
        renew_every_s: float = RENEW_EVERY_S,
        retry_every_s: float = RETRY_EVERY_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._namespace, self.identity = namespace, identity
        self._client = KubeClient(config)
        self._name, self._duration_s = name, duration_s
        self._renew_every_s, self._retry_every_s = renew_every_s, retry_every_s
        self._now = now
        self._record: LeaderRecord | None = None
        self.leading = False

    async def _read(self) -> LeaderRecord | None:
        try:
            lease = await self._client.get(leases_path(self._namespace, self._name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return LeaderRecord.from_lease(lease) if lease.get("metadata") else None

    async def try_lead(self) -> bool:
        """One round: read the Lease and, when free or ours, claim or renew it."""
        record = await self._read()
        moment = self._now()
        move = decide(record, self.identity, moment)
        if move is Move.FOLLOW:
            self._record = record
            return False
        body = claim(
            move,
            record,
            self.identity,
            moment,
            name=self._name,
            namespace=self._namespace,
            duration_s=self._duration_s,
        )
        try:
            if move is Move.CREATE:
                written = await self._client.create(leases_path(self._namespace), body)
            else:
                written = await self._client.merge_patch(
                    leases_path(self._namespace, self._name), body
                )
        except KubeError as exc:
            if exc.status == 409:  # another replica wrote it first
                return False
            raise
        self._record = LeaderRecord.from_lease(written)
        return self._record.holder == self.identity

    async def acquire(self) -> None:
        """Wait until this replica leads."""
        told = ""
        while True:
            try:
                if await self.try_lead():
                    self.leading = True
                    log.info("leading", extra={"lease": self._name, "identity": self.identity})
                    return
                holder = self._record.holder if self._record else ""
                if holder != told:
                    log.info("following", extra={"lease": self._name, "leader": holder})
                    told = holder
            except (KubeError, OSError, TimeoutError) as exc:
                log.warning("leader election: %s", exc)
            await asyncio.sleep(self._retry_every_s)

    async def hold(self) -> None:
        """Renew the lead; return when it is lost."""
        deadline = timedelta(seconds=self._duration_s * 2 / 3)
        renewed = self._now()
        while True:
            await asyncio.sleep(self._renew_every_s)
            try:
                if await self.try_lead():
                    renewed = self._now()
                    continue
                log.warning("lost the lead", extra={"lease": self._name})
                break
            except (KubeError, OSError, TimeoutError) as exc:
                log.warning("leader renewal failed: %s", exc)
            if self._now() - renewed > deadline:
                log.warning("no renewal within %s: giving up the lead", deadline)
                break
        self.leading = False

    async def release(self) -> None:
        """Give the Lease up (clean shutdown): a follower takes over without waiting it out."""
        if not self.leading or self._record is None:
            return
        self.leading = False
        try:
            await self._client.merge_patch(
                leases_path(self._namespace, self._name), release(self._record)
            )
            log.info("released the lead", extra={"lease": self._name})
        except (KubeError, OSError, TimeoutError) as exc:
            log.warning("leader release failed (the Lease will expire): %s", exc)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.close()
