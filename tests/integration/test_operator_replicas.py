"""Two ``duplex-operator`` processes against kmock: one leads, the other waits and takes over.

Only the leader reconciles; when it dies without releasing its Lease, the
follower takes the lead after ``--lease-duration-s`` and carries on
reconciling; a leader stopped with SIGTERM releases the Lease.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from duplex_operator.leadership import LEADER_LEASE
from duplex_protocol.kube import KubeClient, KubeConfig
from tests.support.emulator import (
    POOLS,
    as_served,
    cpu_pool,
    start_operator,
    stored,
)
from tests.support.waiting import eventually
from tests.support.worker import ChildProcess


def holder(kmock: Any) -> str:
    spec = stored(kmock, "leases", LEADER_LEASE).get("spec") or {}
    return str(spec.get("holderIdentity") or "")


def handled(replica: ChildProcess) -> list[str]:
    """The kopf handler runs a replica logged (kopf names each handler in its messages)."""
    lines = []
    for line in replica.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "pool_reconcile" in str(entry.get("msg", "")):
            lines.append(entry["msg"])
    return lines


async def test_two_replicas_one_leads_and_the_follower_takes_over(
    kmock: Any, k8s: str, tmp_path: Path
) -> None:
    lease = ("--lease-duration-s", "3", "--reconcile-every-s", "1")
    first = start_operator(k8s, "op-a", tmp_path / "op-a.log", *lease)
    second: ChildProcess | None = None
    api = KubeClient(KubeConfig(k8s))
    try:
        await eventually(lambda: holder(kmock) == "op-a", 60)
        second = start_operator(k8s, "op-b", tmp_path / "op-b.log", *lease)
        await eventually(lambda: '"following"' in second.log(), 60)
        await api.create(POOLS, as_served(cpu_pool(replicas=2)))
        await eventually(lambda: bool(stored(kmock, "statefulsets", "cpu-tts")), 30)
        assert stored(kmock, "statefulsets", "cpu-tts")["spec"]["replicas"] == 2
        await asyncio.sleep(3)  # a few of the follower's lease reads and more leader renewals
        assert holder(kmock) == "op-a"
        assert handled(first)
        assert handled(second) == []
        assert second.process.poll() is None

        # The leader dies without a word: the follower waits the Lease out, then leads.
        first.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.process.wait)
        await eventually(lambda: holder(kmock) == "op-b", 30)
        lease_spec = stored(kmock, "leases", LEADER_LEASE)["spec"]
        assert lease_spec["leaseTransitions"] == 1
        await api.merge_patch(f"{POOLS}/cpu", {"spec": {"replicas": 3}})
        await eventually(
            lambda: stored(kmock, "statefulsets", "cpu-tts")["spec"]["replicas"] == 3, 30
        )
        # kopf logs a handler's success after it returns, i.e. after its patch landed.
        await eventually(lambda: bool(handled(second)), 30)

        # A clean stop hands the Lease back at once.
        assert await asyncio.to_thread(second.stop) == 0
        assert holder(kmock) == ""
    finally:
        await api.close()
        for replica in (first, second):
            if replica is not None:
                await asyncio.to_thread(replica.stop)
