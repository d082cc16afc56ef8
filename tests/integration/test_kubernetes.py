"""Worker Leases and Lease-based routing against kmock's Kubernetes emulator.

Real ``duplex-tts-worker`` processes write their Leases to the emulator; the
orchestrator's ``kubernetes`` registry lists and watches them. The emulator
ignores label selectors and resourceVersion, so the code filters client-side.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from duplex_orchestrator.registry.kubernetes import KubernetesRegistry
from duplex_orchestrator.routing.policy import RouteRequest, route
from duplex_protocol.kube import KubeClient, KubeConfig, leases_path
from duplex_protocol.lease import ResidentModel, WorkerState, lease_manifest
from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.emulator import NS, start_pod_worker
from tests.support.orchestrator import ScriptedClient, start_orchestrator
from tests.support.voicepacks import write_mock_pack
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess, connect

NAMESPACE = NS


def leases(kmock: Any) -> dict[str, dict[str, Any]]:
    """Leases stored in the emulator now (a deleted object leaves an empty record)."""
    found = {key[-1]: dict(obj) for key, obj in kmock.objects.items() if "leases" in str(key[0])}
    return {name: obj for name, obj in found.items() if obj}


async def test_a_worker_owns_and_renews_its_lease(kmock: Any, k8s: str, tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    write_mock_pack(packs, "mock")
    write_mock_pack(packs, "mock-a")
    worker = await asyncio.to_thread(start_pod_worker, k8s, "cpu-0", packs, tmp_path / "w.log")
    try:
        await eventually(lambda: "duplex-tts-cpu-0" in leases(kmock))
        lease = leases(kmock)["duplex-tts-cpu-0"]
        assert lease["spec"]["holderIdentity"] == "cpu-0"
        assert lease["metadata"]["labels"]["duplex.dev/pool"] == "cpu"
        assert lease["metadata"]["annotations"]["duplex.dev/endpoint"] == worker.address
        state = json.loads(lease["metadata"]["annotations"]["duplex.dev/state"])
        assert [m["id"] for m in state["resident"]] == ["mock"]
        first_renewal = lease["spec"]["renewTime"]
        async with connect(worker.address) as stub:
            await stub.LoadModel(pb.LoadModelRequest(model_id="mock-a"))

        def shows_mock_a() -> bool:
            current = leases(kmock)["duplex-tts-cpu-0"]
            resident = json.loads(current["metadata"]["annotations"]["duplex.dev/state"])[
                "resident"
            ]
            return (
                "mock-a" in [m["id"] for m in resident]
                and current["spec"]["renewTime"] != first_renewal
            )

        await eventually(shows_mock_a, 10)
    finally:
        await asyncio.to_thread(worker.stop)
    assert "duplex-tts-cpu-0" not in leases(kmock)  # released at shutdown


def fake_lease(pod: str, resident: list[str], renewed: datetime, port: int) -> dict[str, Any]:
    state = WorkerState(
        families=["mock"],
        models=["mock-a", "mock-b"],
        resident=[ResidentModel(id=m, state="ready") for m in resident],
    )
    return lease_manifest(
        pod=pod,
        pod_uid="u",
        namespace=NAMESPACE,
        pool="cpu",
        endpoint=f"127.0.0.1:{port}",
        state=state,
        now=renewed,
    )


async def test_registry_routes_from_live_leases_only(kmock: Any, k8s: str) -> None:
    client = KubeClient(KubeConfig(k8s))
    now = datetime.now(UTC)
    await client.create(leases_path(NAMESPACE), fake_lease("fresh", ["mock-a"], now, 7001))
    await client.create(
        leases_path(NAMESPACE), fake_lease("expired", ["mock-b"], now - timedelta(seconds=30), 7002)
    )
    foreign = {
        "metadata": {"name": "kube-scheduler", "namespace": NAMESPACE},
        "spec": {"holderIdentity": "x"},
    }
    await client.create(leases_path(NAMESPACE), foreign)  # not ours: filtered out client-side
    registry = KubernetesRegistry(KubeClient(KubeConfig(k8s)), NAMESPACE)
    watcher = asyncio.create_task(registry.run())
    try:
        await eventually(lambda: len(registry.snapshot()) == 2, 5)
        views = {v.worker_id: v for v in registry.snapshot()}
        assert views["fresh"].healthy
        assert not views["expired"].healthy  # renewTime + 10 s has passed
        assert route(registry.snapshot(), RouteRequest("mock-a")).worker.worker_id == "fresh"  # type: ignore[union-attr]
        # mock-b is resident only on the dead worker: it is loaded on a live one instead.
        chosen = route(registry.snapshot(), RouteRequest("mock-b", fallback_model="mock-a"))
        assert chosen.worker is not None
        assert chosen.load_on is not None
        assert (chosen.worker.worker_id, chosen.load_on.worker_id) == ("fresh", "fresh")
        # The watch keeps the table current: a renewal revives, a deletion removes.
        await client.merge_patch(
            leases_path(NAMESPACE, "duplex-tts-expired"),
            {"spec": {"renewTime": fake_lease("expired", [], now, 1)["spec"]["renewTime"]}},
        )
        await eventually(lambda: all(v.healthy for v in registry.snapshot()), 5)
        await client.delete(leases_path(NAMESPACE, "duplex-tts-fresh"))
        await eventually(lambda: [v.worker_id for v in registry.snapshot()] == ["expired"], 5)
    finally:
        watcher.cancel()
        await registry.close()
        await client.close()


async def test_two_workers_with_different_models_get_the_right_sessions(
    kmock: Any, k8s: str, tmp_path: Path
) -> None:
    packs = tmp_path / "packs"
    for name in ("mock-a", "mock-b"):
        write_mock_pack(packs, name)
    workers: list[WorkerProcess] = []
    for pod, model in (("pod-a", "mock-a"), ("pod-b", "mock-b")):
        workers.append(
            await asyncio.to_thread(
                start_pod_worker, k8s, pod, packs, tmp_path / f"{pod}.log", default_model=model
            )
        )
    await eventually(lambda: len(leases(kmock)) == 2)
    orch = await asyncio.to_thread(
        lambda: start_orchestrator(
            [],
            tmp_path / "o.log",
            "--registry",
            "kubernetes",
            "--namespace",
            NAMESPACE,
            "--default-model",
            "mock-a",
            env={"DUPLEX_KUBE_URL": k8s},
        )
    )
    try:
        for model, pod in (("mock-a", "pod-a"), ("mock-b", "pod-b"), ("mock-a", "pod-a")):
            async with ScriptedClient(orch.ws_url) as c:
                await c.start(model=model)
                await c.send(type="say", text="Routed by lease.")
                started = await c.wait_for("tts_start", turn=1)
                await c.wait_for("tts_end", turn=1)
            assert (started["worker"], started["model"]) == (pod, model)
    finally:
        await asyncio.to_thread(orch.stop)
        for worker in workers:
            await asyncio.to_thread(worker.stop)
