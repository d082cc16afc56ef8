"""Hot-swapping two real families (Piper, Kokoro) on one worker with a resident cap of 1.

The worker runs as a pod would, writing its Lease into kmock's emulator, so
ListModels, GetCapabilities and the Lease are all checked against what is loaded.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from tests.integration.test_kokoro import CACHE, KUMO
from tests.integration.test_kubernetes import leases
from tests.integration.test_stream import assert_well_formed
from tests.support.emulator import declare_cluster, start_pod_worker
from tests.support.waiting import eventually
from tests.support.worker import VOICEPACKS, Collector, aiter_chunks, connect, speak, text_chunks

pytestmark = pytest.mark.slow

PIPER = "piper-en-us-joe-medium"
LEASE = "duplex-tts-swap-0"


def lease_state(kmock: Any) -> dict[str, Any]:
    lease = leases(kmock).get(LEASE, {})
    annotations = lease.get("metadata", {}).get("annotations", {})
    state: dict[str, Any] = json.loads(annotations.get("duplex.dev/state", "{}"))
    return state


async def listed(stub: pb_grpc.TTSAsyncStub) -> dict[str, pb.ModelInfo]:
    return {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}


async def rss(stub: pb_grpc.TTSAsyncStub) -> int:
    caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
    return caps.memory_bytes


async def test_sessions_alternating_between_piper_and_kokoro_swap_models_under_a_cap_of_one(
    kmock: Any, tmp_path: Path
) -> None:
    url = declare_cluster(kmock)
    worker = await asyncio.to_thread(
        start_pod_worker,
        url,
        "swap-0",
        VOICEPACKS,
        tmp_path / "worker.log",
        *("--adapter", "piper,kokoro", "--resident-cap", "1", "--min-residency-ms", "0"),
        *("--cache-dir", str(CACHE)),
        default_model=PIPER,
    )
    try:
        async with connect(worker.address) as stub:
            piper_only = await rss(stub)
            for model_id, other in [(KUMO, PIPER), (PIPER, KUMO), (KUMO, PIPER), (PIPER, KUMO)]:
                sid = (
                    await stub.StartSession(pb.StartSessionRequest(model_id=model_id))
                ).session_id
                got = await speak(stub, sid, "Switching voices now.")
                assert_well_formed(got)
                await stub.EndSession(pb.EndSessionRequest(session_id=sid))
                models = await listed(stub)
                assert models[model_id].state == pb.MODEL_STATE_READY
                assert models[model_id].memory_bytes > 10_000_000
                assert (models[other].state, models[other].memory_bytes) == (
                    pb.MODEL_STATE_AVAILABLE,
                    0,
                )
                caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
                assert list(caps.resident_models) == [model_id]
                assert list(caps.model_memory_bytes) == [model_id]

                def lease_shows(model_id: str = model_id) -> bool:
                    resident = lease_state(kmock).get("resident", [])
                    return [(m["id"], m["memory_bytes"] > 0) for m in resident] == [
                        (model_id, True)
                    ]

                await eventually(lease_shows, 10)

            # Back on Piper alone: Kokoro's memory went back to the OS with it.
            assert await rss(stub) < piper_only + 100_000_000

            # A stream holds Piper: Kokoro cannot evict it, and the stream goes on intact.
            sid = (await stub.StartSession(pb.StartSessionRequest(model_id=PIPER))).session_id
            text = "This reply keeps playing while another voice is asked for."
            collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, text))))
            await collector.wait_frames(10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.StartSession(pb.StartSessionRequest(model_id=KUMO))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert_well_formed(await collector.done())
    finally:
        await asyncio.to_thread(worker.stop)
    log = worker.log()
    assert log.count(f'"event": "model_load", "model": "{KUMO}"') == 2
    assert log.count(f'"event": "model_load", "model": "{PIPER}"') == 3
    assert log.count('"reason": "lru"') == 4
