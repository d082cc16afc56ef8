"""The kopf operator in-process against kmock's emulator, with real worker processes as pods.

The emulator does not run controllers (no StatefulSet controller, no garbage
collector, deletions are immediate), so the workers are local processes
that write the Leases real pods would, and a deletion is simulated as the API
server does it for an object with finalizers: by setting deletionTimestamp.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from duplex_protocol.kube import KubeClient, KubeConfig
from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.crd import ROOT
from tests.support.emulator import (
    MODELS,
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


async def start_pool(k8s: str, tmp_path: Path) -> list[WorkerProcess]:
    packs = tmp_path / "packs"
    for name in ("mock", "mock-a"):
        write_mock_pack(packs, name)
    return [
        await asyncio.to_thread(start_pod_worker, k8s, pod, packs, tmp_path / f"{pod}.log")
        for pod in ("cpu-tts-0", "cpu-tts-1")
    ]


async def test_pool_and_voicemodel_lifecycle(kmock: Any, k8s: str, tmp_path: Path) -> None:
    workers = await start_pool(k8s, tmp_path)
    api = KubeClient(KubeConfig(k8s))
    pool = yaml.safe_load((ROOT / "examples" / "ttsworker-cpu.yaml").read_text())
    pool = as_served(pool)
    pool["spec"]["families"] = ["mock"]
    try:
        # Pools and models in two runs: with both kinds in flight, kopf on the emulator
        # occasionally sends a patch for one kind to the other's path (never seen on clusters).
        async with running_operator(k8s, ("ttsworkers",)):
            await api.create(POOLS, pool)
            await eventually(lambda: bool(stored(kmock, "statefulsets", "cpu-tts")))
            sts = stored(kmock, "statefulsets", "cpu-tts")
            assert sts["spec"]["replicas"] == 2
            assert "nvidia.com/gpu" not in str(sts)
            assert (
                stored(kmock, "rolebindings", "cpu-tts-worker")["subjects"][0]["name"]
                == "cpu-tts-worker"
            )
            await eventually(
                lambda: (
                    stored(kmock, "ttsworkers", "cpu").get("status", {}).get("readyReplicas") == 2
                )
            )
            listed = stored(kmock, "ttsworkers", "cpu")["status"]["workers"]
            assert [w["pod"] for w in listed] == ["cpu-tts-0", "cpu-tts-1"]

            # A spec change rolls out: the StatefulSet follows the pool.
            change = {"replicas": 3, "image": "duplex/tts-worker:0.2.0"}
            await api.merge_patch(
                f"{POOLS}/cpu", {"spec": {**change, "modelManager": {"ttlSeconds": 120}}}
            )

            def rolled_out() -> bool:
                spec = stored(kmock, "statefulsets", "cpu-tts")["spec"]
                container = spec["template"]["spec"]["containers"][0]
                args = container["args"]
                return bool(
                    spec["replicas"] == 3
                    and container["image"] == "duplex/tts-worker:0.2.0"
                    and args[args.index("--ttl-ms") + 1] == "120000"
                )

            await eventually(rolled_out)

        # kopf cancels the tasks spawned while it ran, this client's connections too.
        await api.close()
        api = KubeClient(KubeConfig(k8s))
        async with running_operator(k8s, ("voicemodels",)):
            model: dict[str, Any] = {
                "apiVersion": "duplex.dev/v1alpha1",
                "kind": "VoiceModel",
                "metadata": {
                    "name": "mock-a",
                    "namespace": NS,
                },
                "spec": {
                    "family": "mock",
                    "source": {"voicepack": "mock/mock-a"},
                    "languages": ["en-US"],
                    "residency": {"minResident": 1},
                },
            }
            await api.create(MODELS, as_served(model))

            def status(name: str) -> dict[str, Any]:
                return dict(stored(kmock, "voicemodels", name).get("status") or {})

            await eventually(lambda: status("mock-a").get("phase") == "Ready")
            ready = status("mock-a")
            assert ready["residentCopies"] == 1
            holder = ready["resident"][0]["pod"]
            worker = workers[0] if holder == "cpu-tts-0" else workers[1]
            async with connect(worker.address) as stub:
                info = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}[
                    "mock-a"
                ]
            assert (info.state, info.pinned) == (pb.MODEL_STATE_READY, True)
            await asyncio.sleep(1.5)  # a few more reconciles place no second copy
            assert status("mock-a")["residentCopies"] == 1

            bad = {
                **model,
                "metadata": {
                    "name": "bad",
                    "namespace": NS,
                },
                "spec": {**model["spec"], "family": "parler"},
            }
            await api.create(MODELS, as_served(bad))
            await eventually(lambda: status("bad").get("phase") == "Failed")
            condition = status("bad")["conditions"][0]
            assert condition["reason"] == "InvalidSpec"
            assert "no TTSWorker pool runs family 'parler'" in condition["message"]

            # Deleting: the API marks the object; the finalizer unloads everywhere first.
            assert "finalizers" in stored(kmock, "voicemodels", "mock-a")["metadata"]
            when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            await api.merge_patch(f"{MODELS}/mock-a", {"metadata": {"deletionTimestamp": when}})
            # Without its finalizer the object goes (the emulator deletes it as the API does).
            await eventually(
                lambda: (
                    not stored(kmock, "voicemodels", "mock-a").get("metadata", {}).get("finalizers")
                )
            )
            async with connect(worker.address) as stub:
                info = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}[
                    "mock-a"
                ]
            assert info.state == pb.MODEL_STATE_AVAILABLE
    finally:
        await api.close()
        for w in workers:
            await asyncio.to_thread(w.stop)


async def test_a_ttl_eviction_shows_in_status_and_as_an_event(
    kmock: Any, k8s: str, tmp_path: Path
) -> None:
    packs = tmp_path / "packs"
    for name in ("mock", "mock-a"):
        write_mock_pack(packs, name)
    worker = await asyncio.to_thread(
        start_pod_worker,
        k8s,
        "cpu-tts-0",
        packs,
        tmp_path / "w.log",
        *("--ttl-ms", "4500", "--min-residency-ms", "0"),
    )
    api = KubeClient(KubeConfig(k8s))
    pool = cpu_pool(replicas=1)
    model = {
        "apiVersion": "duplex.dev/v1alpha1",
        "kind": "VoiceModel",
        "metadata": {"name": "mock-a"},
        "spec": {
            "family": "mock",
            "source": {"voicepack": "mock/mock-a"},
            "languages": ["en-US"],
            "residency": {"minResident": 0},
        },
    }

    def status() -> dict[str, Any]:
        return dict(stored(kmock, "voicemodels", "mock-a").get("status") or {})

    try:
        await api.create(POOLS, as_served(pool))
        async with running_operator(k8s, ("voicemodels",)):
            await api.create(MODELS, as_served(model))
            await eventually(
                lambda: status().get("phase") == "Standby"
            )  # nothing required, nothing loaded
            async with connect(worker.address) as stub:  # a session's on-demand load: unpinned
                await stub.LoadModel(pb.LoadModelRequest(model_id="mock-a"))
            await eventually(lambda: status().get("residentCopies") == 1)
            assert status()["resident"][0]["pod"] == "cpu-tts-0"
            # Idle for 4.5 s (over two 2 s Lease renewals, so one showed it), the worker evicts it.
            await eventually(lambda: "lastEviction" in status(), 20)
        eviction = status()["lastEviction"]
        assert (eviction["pod"], eviction["worker"]) == ("cpu-tts-0", "cpu")
        assert status()["residentCopies"] == 0
        assert status()["phase"] == "Standby"
        evicted = events(kmock, "Evicted")
        assert evicted
        assert "cpu-tts-0 evicted mock-a" in evicted[0]["message"]
        assert evicted[0]["involvedObject"]["name"] == "mock-a"
    finally:
        await api.close()
        await asyncio.to_thread(worker.stop)


async def test_worker_selector_places_by_the_labels_pods_carry(
    kmock: Any, k8s: str, tmp_path: Path
) -> None:
    """matchLabels is matched against the pool's labels (which its pods carry), through
    the real handler: placement used to see no labels and placed nothing."""
    write_mock_pack(tmp_path / "packs", "mock-b")
    workers = await start_pool(k8s, tmp_path)
    api = KubeClient(KubeConfig(k8s))
    pool = as_served(cpu_pool())
    pool["metadata"]["labels"] = {"tier": "premium"}
    await api.create(POOLS, pool)

    def voicemodel(name: str, selector: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "duplex.dev/v1alpha1",
            "kind": "VoiceModel",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "family": "mock",
                "source": {"voicepack": f"mock/{name}"},
                "languages": ["en-US"],
                "residency": {"minResident": 1},
                "workerSelector": selector,
            },
        }

    def status(name: str) -> dict[str, Any]:
        return dict(stored(kmock, "voicemodels", name).get("status") or {})

    try:
        async with running_operator(k8s, ("voicemodels",)):
            await api.create(
                MODELS, as_served(voicemodel("mock-a", {"matchLabels": {"tier": "premium"}}))
            )
            await api.create(
                MODELS, as_served(voicemodel("mock-b", {"matchLabels": {"tier": "gold"}}))
            )
            await eventually(lambda: status("mock-a").get("phase") == "Ready", 30)
            assert status("mock-a")["residentCopies"] == 1
            await asyncio.sleep(1.5)  # several reconciles: no pool is labelled gold
            assert not status("mock-b").get("resident")
    finally:
        await api.close()
        for w in workers:
            await asyncio.to_thread(w.stop)
