"""Faults and hostile clients against real orchestrator and worker processes.

A hung worker (SIGSTOP) is failed over and the turn ends; a restarted worker
is routed to again within a poll interval or two; failing replies leave no
worker sessions behind; malformed WebSocket input gets its documented error
and the session goes on; foreign origins and wrong keys are refused.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.orchestrator import OrchestratorProcess, ScriptedClient, start_orchestrator
from tests.support.voicepacks import write_mock_pack
from tests.support.waiting import eventually
from tests.support.worker import WorkerProcess, connect, start_worker

LONG = " ".join(f"Sentence number {i} of a long reply." for i in range(40))


def mock_worker(tmp: Path, name: str, *extra: str, port: int | None = None) -> WorkerProcess:
    args = ["--adapter", "mock", "--default-model", "mock", "--worker-id", name, *extra]
    return start_worker(args, tmp / f"{name}.log", port=port)


async def active_sessions(worker: WorkerProcess) -> int:
    async with connect(worker.address) as stub:
        return (await stub.GetCapabilities(pb.GetCapabilitiesRequest())).active_sessions


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[WorkerProcess, WorkerProcess, OrchestratorProcess]]:
    a, b = mock_worker(tmp_path, "worker-a"), mock_worker(tmp_path, "worker-b")
    orch = start_orchestrator([a.address, b.address], tmp_path / "o.log", "--default-model", "mock")
    yield a, b, orch
    for process in (a, b):
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGCONT)
    orch.stop()
    a.stop()
    b.stop()


async def test_a_hung_worker_is_failed_over_and_the_turn_ends(
    pair: tuple[WorkerProcess, WorkerProcess, OrchestratorProcess],
) -> None:
    a, b, orch = pair
    workers = {"worker-a": a, "worker-b": b}
    async with ScriptedClient(orch.ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG)
        first = await c.wait_for("tts_start", turn=1)
        speaking = workers.pop(str(first["worker"]))
        other = next(iter(workers))
        await c.first_audio_after(0)
        speaking.hang()
        stopped_at = time.monotonic()
        error = await c.wait_for("error", code="tts_failed", timeout_s=15)
        failover_s = time.monotonic() - stopped_at
        assert "stopped responding" in error["message"]
        assert error["retrying"] is True
        again = await c.wait_for("tts_start", worker=other, timeout_s=15)
        assert again["turn"] == 1
        await c.send(type="interrupt")
        await c.wait_for("tts_end", turn=1, timeout_s=15)
        # The next turn avoids the hung worker outright (it is marked unhealthy).
        await c.send(type="say", text="And the next turn.")
        assert (await c.wait_for("tts_end", turn=2, timeout_s=15))["frames"] > 10
        assert c.got.of("tts_start", turn=2)[0]["worker"] == other
    print(f"failover after SIGSTOP: {failover_s * 1000:.0f} ms")  # a figure, not a bound


async def test_a_hung_only_worker_ends_the_turn_with_an_error(tmp_path: Path) -> None:
    worker = mock_worker(tmp_path, "only")
    orch = start_orchestrator([worker.address], tmp_path / "o.log", "--default-model", "mock")
    try:
        async with ScriptedClient(orch.ws_url) as c:
            await c.start()
            await c.send(type="say", text=LONG)
            await c.first_audio_after(0)
            worker.hang()
            await c.wait_for("error", code="tts_failed", timeout_s=15)
            final = await c.wait_for("error", code="no_worker", timeout_s=15)
            assert "retrying" not in final
    finally:
        worker.process.send_signal(signal.SIGCONT)
        orch.stop()
        worker.stop()


async def test_a_restarted_worker_is_routed_to_within_a_poll_interval_or_two(
    tmp_path: Path,
) -> None:
    """After a 15 s outage gRPC's own reconnect backoff (1 s, x1.6 each try) would wait
    ~9 s more: its tries fall near 9 s and 16 s, then not before ~26 s."""
    worker = mock_worker(tmp_path, "phoenix")
    port = int(worker.address.rsplit(":", 1)[1])
    orch = start_orchestrator([worker.address], tmp_path / "o.log", "--default-model", "mock")
    try:
        worker.stop()
        await eventually(lambda: '"event": "worker_down"' in orch.log(), 10)
        await asyncio.sleep(15)
        worker = mock_worker(tmp_path, "phoenix", port=port)
        back_at = time.monotonic()

        async def routable() -> bool:
            async with aiohttp.ClientSession() as http, http.get(f"{orch.url}/healthz") as r:
                return r.status == 200

        await eventually(routable, 20, every_s=0.05)
        found_s = time.monotonic() - back_at
        # Poll interval 0.3 s: found within a few intervals, not gRPC's backoff.
        assert found_s < 5, f"found {found_s:.1f} s after it served again"
        async with ScriptedClient(orch.ws_url) as c:
            await c.start()
            await c.send(type="say", text="Back again.")
            await c.wait_for("tts_end", turn=1)
    finally:
        orch.stop()
        worker.stop()


@pytest.fixture
def crashy(tmp_path: Path) -> Iterator[tuple[WorkerProcess, OrchestratorProcess]]:
    packs = tmp_path / "voicepacks"
    write_mock_pack(packs, "mock")
    write_mock_pack(packs, "mock-crashy", fail_on_word="kaboom")
    worker = mock_worker(tmp_path, "slots", "--voicepacks", str(packs), "--max-sessions", "3")
    orch = start_orchestrator([worker.address], tmp_path / "o.log", "--default-model", "mock")
    yield worker, orch
    orch.stop()
    worker.stop()


async def test_failing_replies_leave_no_worker_sessions_behind(
    crashy: tuple[WorkerProcess, OrchestratorProcess],
) -> None:
    """Each failed reply used to leak its worker session until all slots were gone."""
    worker, orch = crashy
    async with ScriptedClient(orch.ws_url) as c:
        await c.start(model="mock-crashy")
        for turn in range(1, 7):  # twice the worker's session limit
            await c.send(type="say", text="Then it went kaboom.")
            await eventually(lambda t=turn: len(c.got.of("error", code="tts_failed")) == t, 15)  # type: ignore[misc]
        await c.send(type="say", text="This one is fine.")
        assert (await c.wait_for("tts_end", turn=7))["frames"] > 10

    async def none_left() -> bool:
        return await active_sessions(worker) == 0

    await eventually(none_left, 10)


async def test_text_a_model_cannot_take_is_cleaned_or_refused(
    crashy: tuple[WorkerProcess, OrchestratorProcess],
) -> None:
    _, orch = crashy
    async with ScriptedClient(orch.ws_url) as c:
        await c.start()
        await c.send_raw('{"type": "say", "text": "Null\\u0000 and bell\\u0007 inside."}')
        assert (await c.wait_for("tts_end", turn=1))["frames"] > 10
        await c.send_raw('{"type": "say", "text": "lone \\ud800 surrogate"}')
        refused = await c.wait_for("error", code="bad_text")
        assert "lone surrogate" in refused["message"]
        await c.send(type="say", text="Still talking.")
        assert (await c.wait_for("tts_end", turn=2))["frames"] > 10
        assert c.got.of("reply", turn=2)
        assert [e["code"] for e in c.got.of("error")] == ["bad_text"]


async def test_malformed_websocket_input_gets_its_error_and_the_session_goes_on(
    crashy: tuple[WorkerProcess, OrchestratorProcess],
) -> None:
    _, orch = crashy
    async with ScriptedClient(orch.ws_url) as c:
        await c.start()
        bad: list[tuple[str | bytes, str]] = [
            ('{"type": "start", "sample_rate": ' + "9" * 5000 + "}", "bad_json"),
            ("[" * 20000 + "]" * 20000, "bad_json"),
            ("x" * (2 << 20), "too_large"),
            (b"\xff\xfe not UTF-8", "bad_json"),
        ]
        assert c.ws is not None
        for sent, (raw, code) in enumerate(bad, 1):
            if isinstance(raw, bytes):
                await c.ws.send_frame(raw, aiohttp.WSMsgType.TEXT)
            else:
                await c.send_raw(raw)
            await eventually(lambda n=sent: len(c.got.of("error")) == n, 15)  # type: ignore[misc]
            assert c.got.of("error")[-1]["code"] == code
        await c.send(type="say", text="Nothing broke.")
        assert (await c.wait_for("tts_end", turn=1))["frames"] > 10


async def test_foreign_origins_and_wrong_keys_are_refused(tmp_path: Path) -> None:
    worker = mock_worker(tmp_path, "guarded")
    key_file = tmp_path / "api-key"
    key_file.write_text("k3y\n")
    orch = start_orchestrator(
        [worker.address],
        tmp_path / "o.log",
        "--api-key-file", str(key_file),
        "--default-model", "mock",
        "--allowed-origin", "https://app.example.com",
    )  # fmt: skip
    own = f"http://127.0.0.1:{orch.port}"

    async def status(headers: dict[str, str], query: str = "") -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(orch.ws_url + query, headers=headers) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    try:
        assert "k3y" not in " ".join(orch.process.args)  # type: ignore[arg-type]
        assert await status({"Authorization": "Bearer k3y"}) == 101
        assert await status({"Authorization": "bearer k3y"}) == 101
        assert await status({"Authorization": "BEARER k3y", "Origin": own}) == 101
        # A proxy's own Authorization header next to the client's X-API-Key.
        assert await status({"Authorization": "Basic cHJveHk6eA==", "X-API-Key": "k3y"}) == 101
        assert await status({"X-API-Key": "k3y", "Origin": "https://app.example.com"}) == 101
        assert await status({"Authorization": "Bearer nope"}) == 401
        # Cross-site WebSocket hijacking: the browser sends the key (?key=) but a foreign Origin.
        assert await status({"Origin": "https://evil.example"}, "?key=k3y") == 403
    finally:
        orch.stop()
        worker.stop()
