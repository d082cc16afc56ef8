"""Model management and bad input against real worker processes (mock family)."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from tests.support.voicepacks import write_mock_pack
from tests.support.waiting import eventually
from tests.support.worker import (
    Collector,
    WorkerProcess,
    aiter_chunks,
    connect,
    free_port,
    speak,
    text_chunks,
)

Factory = Callable[..., WorkerProcess]


@pytest.fixture
def packs(tmp_path: Path) -> Path:
    root = tmp_path / "voicepacks"
    write_mock_pack(root, "mock")
    write_mock_pack(root, "mock-a", pitch_hz=180)
    write_mock_pack(root, "mock-b", pitch_hz=220, native_sample_rate=16000)
    write_mock_pack(root, "mock-slow", load_delay_ms=400)
    write_mock_pack(root, "mock-broken", fail_load="checkpoint is truncated; re-download it")
    write_mock_pack(root, "mock-crashy", fail_on_word="kaboom")
    return root


def mock_args(packs: Path, *extra: str) -> list[str]:
    return ["--adapter", "mock", "--default-model", "mock", "--voicepacks", str(packs), *extra]


async def models(stub: pb_grpc.TTSAsyncStub) -> dict[str, pb.ModelInfo]:
    return {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}


async def status_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = err.value.code()
    return code


async def test_list_load_unload(worker_factory: Factory, packs: Path) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:
        listed = await models(stub)
        assert set(listed) == {
            "mock",
            "mock-a",
            "mock-b",
            "mock-slow",
            "mock-broken",
            "mock-crashy",
        }
        default = listed["mock"]
        # The default is kept (never TTL-evicted), not pinned: it may give way under a cap.
        assert (default.state, default.kept, default.pinned, default.family) == (
            pb.MODEL_STATE_READY,
            True,
            False,
            "mock",
        )
        assert default.loaded_at_ms > 0
        assert listed["mock-a"].state == pb.MODEL_STATE_AVAILABLE
        loaded = await stub.LoadModel(pb.LoadModelRequest(model_id="mock-slow"))
        assert loaded.state == pb.MODEL_STATE_READY
        assert loaded.load_ms >= 400
        assert not loaded.pinned
        assert not loaded.kept
        unloaded = await stub.UnloadModel(pb.UnloadModelRequest(model_id="mock-slow"))
        assert unloaded.state == pb.MODEL_STATE_AVAILABLE
        caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        assert list(caps.resident_models) == ["mock"]
        assert (
            await status_of(stub.UnloadModel(pb.UnloadModelRequest(model_id="nope")))
            == grpc.StatusCode.NOT_FOUND
        )


async def test_concurrent_loads_of_one_model_share_the_load(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:
        replies = await asyncio.gather(
            *(stub.LoadModel(pb.LoadModelRequest(model_id="mock-slow")) for _ in range(4))
        )
    assert {r.loaded_at_ms for r in replies} == {replies[0].loaded_at_ms}
    assert worker.log().count('"event": "model_load", "model": "mock-slow"') == 1


async def test_preloaded_models_are_pinned(worker_factory: Factory, packs: Path) -> None:
    worker = worker_factory(*mock_args(packs, "--preload-models", "mock-a,mock-b"))
    async with connect(worker.address) as stub:
        listed = await models(stub)
    for model_id in ("mock-a", "mock-b"):
        assert (listed[model_id].state, listed[model_id].pinned) == (pb.MODEL_STATE_READY, True)


async def test_no_unload_while_a_stream_holds_the_model(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest(model_id="mock-a"))).session_id
        stream = Collector(
            stub.Synthesize(
                aiter_chunks(text_chunks(sid, "Several words keep this stream open a while."))
            )
        )
        await stream.wait_frames(1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UnloadModel(pb.UnloadModelRequest(model_id="mock-a"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "in use by 1 session" in (err.value.details() or "")
        got = await stream.done()
        assert len(got.frames) > 50  # the stream played to its end
        assert got.frames[-1].is_last
        assert (await models(stub))["mock-a"].refs == 1
        await stub.EndSession(pb.EndSessionRequest(session_id=sid))
        assert (
            await stub.UnloadModel(pb.UnloadModelRequest(model_id="mock-a"))
        ).state == pb.MODEL_STATE_AVAILABLE


async def test_ttl_evicts_idle_models_but_not_pinned_or_held(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs, "--ttl-ms", "300", "--min-residency-ms", "0"))
    async with connect(worker.address) as stub:
        await stub.LoadModel(pb.LoadModelRequest(model_id="mock-a"))
        held = (await stub.StartSession(pb.StartSessionRequest(model_id="mock-b"))).session_id

        async def evicted(model_id: str) -> bool:
            return (await models(stub))[model_id].state == pb.MODEL_STATE_AVAILABLE

        await eventually(lambda: evicted("mock-a"), 6)
        listed = await models(stub)
        assert listed["mock"].state == pb.MODEL_STATE_READY  # the kept default
        assert listed["mock-b"].state == pb.MODEL_STATE_READY  # held by a session
        await stub.EndSession(pb.EndSessionRequest(session_id=held))
        await eventually(lambda: evicted("mock-b"), 6)
    assert '"reason": "ttl"' in worker.log()


async def test_resident_cap_evicts_lru_and_refuses_when_all_are_held(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs, "--resident-cap", "2", "--min-residency-ms", "0"))
    async with connect(worker.address) as stub:
        await stub.LoadModel(pb.LoadModelRequest(model_id="mock-a"))
        await stub.LoadModel(pb.LoadModelRequest(model_id="mock-b"))  # evicts mock-a (LRU)
        caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        assert sorted(caps.resident_models) == ["mock", "mock-b"]
        await stub.StartSession(pb.StartSessionRequest(model_id="mock-b"))  # now held
        # Only the kept default is left to evict: it gives way last, but it does.
        await stub.LoadModel(pb.LoadModelRequest(model_id="mock-a"))
        caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        assert sorted(caps.resident_models) == ["mock-a", "mock-b"]
        await stub.StartSession(pb.StartSessionRequest(model_id="mock-a"))  # both held
        code = await status_of(stub.LoadModel(pb.LoadModelRequest(model_id="mock")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert worker.log().count('"reason": "lru"') == 2


async def test_reload_rereads_voicepacks(worker_factory: Factory, packs: Path) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:
        assert "mock-new" not in await models(stub)
        write_mock_pack(packs, "mock-new")
        reply = await stub.Control(pb.ControlRequest(action=pb.CONTROL_ACTION_RELOAD))
        assert reply.catalog_size == 7
        assert "mock-new" in await models(stub)
        sid = (await stub.StartSession(pb.StartSessionRequest(model_id="mock-new"))).session_id
        assert (await speak(stub, sid, "New voice.")).frames


async def test_bad_requests_get_actionable_status_codes(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:

        async def details(call: object) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call  # type: ignore[misc]
            return err.value.code(), err.value.details() or ""

        async def synth(chunks: list[pb.TextChunk]) -> tuple[grpc.StatusCode, str]:
            async def drain() -> None:
                async for _ in stub.Synthesize(aiter_chunks(chunks)):
                    pass

            return await details(drain())

        code, msg = await details(stub.StartSession(pb.StartSessionRequest(model_id="nope")))
        assert code == grpc.StatusCode.NOT_FOUND
        assert "unknown model 'nope'" in msg
        assert "mock-a" in msg
        code, msg = await details(stub.StartSession(pb.StartSessionRequest(model_id="mock-broken")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "checkpoint is truncated" in msg

        code, msg = await synth([pb.TextChunk(session_id="", text="hi", is_final=True)])
        assert (code, "session_id is empty" in msg) == (grpc.StatusCode.INVALID_ARGUMENT, True)
        code, msg = await synth([pb.TextChunk(session_id="nope", text="hi", is_final=True)])
        assert (code, "unknown or ended session" in msg) == (grpc.StatusCode.NOT_FOUND, True)
        code, msg = await synth([])
        assert code == grpc.StatusCode.INVALID_ARGUMENT

        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        code, msg = await synth([pb.TextChunk(session_id=sid, text="é" * 2049, is_final=True)])
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "4098 bytes; the limit is 4096" in msg
        code, msg = await synth(
            [
                pb.TextChunk(session_id=sid, text="Hello."),
                pb.TextChunk(session_id="other", text="x", is_final=True),
            ]
        )
        assert (code, "does not match" in msg) == (grpc.StatusCode.INVALID_ARGUMENT, True)
        code, msg = await details(stub.Control(pb.ControlRequest(session_id=sid)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT

        # A second stream on a busy session is refused; the first is unharmed.
        first = Collector(
            stub.Synthesize(
                aiter_chunks(text_chunks(sid, "A stream that is still running for a while."))
            )
        )
        await first.wait_frames(1)
        code, msg = await synth([pb.TextChunk(session_id=sid, text="again", is_final=True)])
        assert (code, "already has an open Synthesize stream" in msg) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            True,
        )
        assert (await first.done()).frames[-1].is_last

        # The session survived every bad chunk; after EndSession it is gone.
        assert (await speak(stub, sid, "Still fine.")).frames[-1].is_last
        await stub.EndSession(pb.EndSessionRequest(session_id=sid))
        code, _ = await details(
            stub.Control(pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_STOP))
        )
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = await synth([pb.TextChunk(session_id=sid, text="hi", is_final=True)])
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = await details(stub.EndSession(pb.EndSessionRequest(session_id=sid)))
        assert code == grpc.StatusCode.NOT_FOUND


async def test_a_model_crashing_mid_stream_fails_that_stream_only(
    worker_factory: Factory, packs: Path
) -> None:
    worker = worker_factory(*mock_args(packs))
    async with connect(worker.address) as stub:
        crashy = (
            await stub.StartSession(pb.StartSessionRequest(model_id="mock-crashy"))
        ).session_id
        other = (await stub.StartSession(pb.StartSessionRequest(model_id="mock"))).session_id
        bystander = Collector(
            stub.Synthesize(
                aiter_chunks(text_chunks(other, "A bystander keeps talking through it."))
            )
        )
        failing = Collector(
            stub.Synthesize(
                aiter_chunks(text_chunks(crashy, "First clause is fine. Then kaboom here."))
            )
        )
        await failing.done()
        assert failing.error is not None
        assert failing.error.code() == grpc.StatusCode.INTERNAL
        assert "mock model crashed on 'kaboom'" in (failing.error.details() or "")
        assert failing.got.frames  # the clause before the crash was spoken
        assert (await bystander.done()).frames[-1].is_last
        # The crashed session is still usable for text the model can speak.
        assert (await speak(stub, crashy, "Recovered.")).frames[-1].is_last


async def test_session_limit_is_resource_exhausted(worker_factory: Factory, packs: Path) -> None:
    worker = worker_factory(*mock_args(packs, "--max-sessions", "2"))
    async with connect(worker.address) as stub:
        for _ in range(2):
            await stub.StartSession(pb.StartSessionRequest())
        assert (
            await status_of(stub.StartSession(pb.StartSessionRequest()))
            == grpc.StatusCode.RESOURCE_EXHAUSTED
        )


async def test_metrics_endpoint_and_json_logs_without_text(
    worker_factory: Factory, packs: Path
) -> None:
    port = free_port()
    worker = worker_factory(*mock_args(packs, "--metrics-port", str(port)))
    secret = "Confidential words nobody should log."
    async with connect(worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        await speak(stub, sid, secret)
    url = f"http://127.0.0.1:{port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    for name in (
        "duplex_tts_first_audio_seconds_count",
        "duplex_tts_real_time_factor_count",
        "duplex_tts_frame_jitter_seconds_count",
        "duplex_tts_queue_depth",
        "duplex_tts_active_sessions 1.0",
        "duplex_tts_model_load_seconds_count",
        "duplex_tts_model_warmup_seconds_count",
    ):
        assert name in body
    import json

    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert any(line.get("session_id") == sid for line in lines)
    assert "Confidential" not in worker.log()


def test_health_is_not_serving_until_the_default_model_is_warm(tmp_path: Path, packs: Path) -> None:
    import subprocess
    import sys
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    write_mock_pack(packs, "mock-slow-default", load_delay_ms=4000)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "duplex_tts",
            "--adapter",
            "mock",
            "--default-model",
            "mock-slow-default",
            "--voicepacks",
            str(packs),
            "--metrics-port",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: list[int] = []
    try:
        # Short reconnect backoff: with gRPC's default (1 s, growing) the client may
        # first reach the worker only after the model has loaded.
        fast_reconnect = [
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 100),
        ]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=fast_reconnect) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    reply = health.Check(
                        health_pb2.HealthCheckRequest(service="duplex.tts.v1.TTS"), timeout=1
                    )
                except grpc.RpcError:
                    time.sleep(0.05)
                    continue
                if not seen or seen[-1] != reply.status:
                    seen.append(reply.status)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                time.sleep(0.05)
            stub = pb_grpc.TTSStub(channel)
            listed = {m.id: m for m in stub.ListModels(pb.ListModelsRequest()).models}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert seen == [
        health_pb2.HealthCheckResponse.NOT_SERVING,
        health_pb2.HealthCheckResponse.SERVING,
    ]
    assert listed["mock-slow-default"].state == pb.MODEL_STATE_READY
    assert listed["mock-slow-default"].load_ms >= 4000


def test_startup_errors_exit_with_a_message(tmp_path: Path, packs: Path) -> None:
    import subprocess
    import sys

    bad = subprocess.run(
        [sys.executable, "-m", "duplex_tts", *mock_args(packs, "--resident-cap", "-1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "resident_cap" in bad.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "duplex_tts",
            "--adapter",
            "mock",
            "--default-model",
            "ghost",
            "--voicepacks",
            str(packs),
            "--metrics-port",
            "0",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "model 'ghost' is not in the catalog" in missing.stderr
    uninstalled = subprocess.run(
        [
            *(sys.executable, "-m", "duplex_tts", "--adapter", "mock,parler"),
            *("--default-model", "mock", "--voicepacks", str(packs)),
            *("--metrics-port", "0", "--port", str(free_port())),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert uninstalled.returncode == 1
    (line,) = uninstalled.stderr.strip().splitlines()  # one line, naming the package
    assert "TTS family 'parler' is not installed" in line
    assert "duplex-tts-parler" in line
