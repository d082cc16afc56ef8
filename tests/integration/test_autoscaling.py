"""An autoscaled TTSWorker against kmock, with real mock-family workers as its pods under load.

The emulator runs no StatefulSet controller: the test starts and stops the
worker processes its pods would be, and the load is real sessions opened on
them (each worker reports its open sessions in its Lease).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from duplex_protocol.kube import KubeClient, KubeConfig
from duplex_protocol.lease import WorkerState, lease_name
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from tests.support.emulator import (
    NS,
    POOLS,
    as_served,
    cpu_pool,
    events,
    running_operator,
    start_pod_worker,
    stored,
)
from tests.support.voicepacks import write_mock_pack
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess, connect


def forget_events(kmock: Any) -> None:
    for key in [k for k in kmock.objects if "events" in str(k[0])]:
        del kmock.objects[key]


async def open_sessions(stub: pb_grpc.TTSAsyncStub, count: int) -> list[str]:
    replies = [await stub.StartSession(pb.StartSessionRequest()) for _ in range(count)]
    return [r.session_id for r in replies]


async def end_sessions(stub: pb_grpc.TTSAsyncStub, ids: list[str]) -> None:
    for session_id in ids:
        await stub.EndSession(pb.EndSessionRequest(session_id=session_id))


async def test_the_pool_follows_its_sessions_and_shrinks_only_past_idle_workers(
    kmock: Any, k8s: str, tmp_path: Path
) -> None:
    packs = tmp_path / "packs"
    write_mock_pack(packs, "mock")
    pool = cpu_pool(replicas=1)
    pool["spec"]["autoscaling"] = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetActiveSessions": 2,
        "scaleDownDelaySeconds": 2,
    }
    api = KubeClient(KubeConfig(k8s))
    workers: list[WorkerProcess] = []

    async def pod(name: str) -> WorkerProcess:
        worker = await asyncio.to_thread(
            start_pod_worker, k8s, name, packs, tmp_path / f"{name}.log", "--drain-timeout-s", "30"
        )
        workers.append(worker)
        return worker

    def replicas() -> tuple[int, int]:
        """The pool's spec.replicas and its StatefulSet's."""
        tw = stored(kmock, "ttsworkers", "cpu")["spec"].get("replicas", 1)
        sts = stored(kmock, "statefulsets", "cpu-tts").get("spec", {}).get("replicas")
        return tw, sts

    def autoscaling() -> dict[str, Any]:
        return dict(
            (stored(kmock, "ttsworkers", "cpu").get("status") or {}).get("autoscaling") or {}
        )

    def lease_state(pod_name: str) -> WorkerState | None:
        lease = stored(kmock, "leases", lease_name(pod_name))
        text = (lease.get("metadata", {}).get("annotations") or {}).get("duplex.dev/state")
        return WorkerState.from_json(text) if text else None

    try:
        first = await pod("cpu-tts-0")
        async with running_operator(k8s, ("ttsworkers",)):
            await api.create(POOLS, as_served(pool))
            await eventually(lambda: replicas() == (1, 1), 30)

            # 3 sessions over a target of 2 per worker: a second pod, at once.
            async with connect(first.address) as stub:
                busy = await open_sessions(stub, 3)
            await eventually(lambda: replicas() == (2, 2), 30)
            assert autoscaling()["load"] == 3
            wanted = REGISTRY.get_sample_value(
                "duplex_operator_autoscale_wanted_replicas", {"pool_namespace": NS, "pool": "cpu"}
            )
            assert wanted == 2
            up = events(kmock, "ScaledUp")
            assert up
            assert "replicas 1 -> 2: 3 active sessions, target 2" in up[0]["message"]
            forget_events(kmock)  # kmock names every kopf Event alike: one at a time

            # The StatefulSet's new pod starts and takes a session; the first pod's end.
            second = await pod("cpu-tts-1")
            async with connect(second.address) as stub:
                kept = await open_sessions(stub, 1)
            async with connect(first.address) as stub:
                await end_sessions(stub, busy)
            # 1 session wants 1 pod, but the pod that would go holds it: the pool stays.
            await eventually(lambda: autoscaling().get("heldBy") == ["cpu-tts-1"], 30)
            await asyncio.sleep(1.5)  # three more reconciles past the delay
            assert replicas() == (2, 2)
            assert events(kmock, "ScaledDown") == []

            # SIGTERM (a rollout, or a kubelet) drains it: not ready, new sessions refused.
            second.process.send_signal(signal.SIGTERM)
            await eventually(lambda: getattr(lease_state("cpu-tts-1"), "ready", True) is False, 15)
            async with connect(second.address) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.StartSession(pb.StartSessionRequest())
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "draining" in (refused.value.details() or "")
                assert second.process.poll() is None  # the open session keeps it up
                await end_sessions(stub, kept)
            assert await asyncio.to_thread(second.process.wait, 15) == 0

            # Idle now: down to one pod.
            await eventually(lambda: replicas() == (1, 1), 30)
            down = events(kmock, "ScaledDown")
            assert down
            assert "replicas 2 -> 1" in down[0]["message"]
            assert "scaleDownPendingSince" not in autoscaling()
    finally:
        await api.close()
        for worker in workers:
            await asyncio.to_thread(worker.stop)
