"""The Speaker's failure handling with fake workers: exclusion, session ends, stalls.

Worker ids differ from endpoints here on purpose: a retry must avoid the
worker that failed by the identity routing compares, and ``mark_unhealthy``
is a no-op so that only the exclusion can keep the retry away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from duplex_orchestrator.feeds import ReplayableText
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.routing.policy import WorkerView
from duplex_orchestrator.speaker import Speaker
from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.support.session_io import Recorded

MODEL = "mock"


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "injected")


@dataclass
class FakeCall:
    behaviour: str
    """ok: three frames; fail: UNAVAILABLE; internal: INTERNAL; hang: no frame ever;
    slow: a frame after 0.3 s of silence."""
    cancelled: bool = False

    def __aiter__(self) -> AsyncIterator[pb.AudioFrame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[pb.AudioFrame]:
        if self.behaviour == "fail":
            raise rpc_error(grpc.StatusCode.UNAVAILABLE)
        if self.behaviour == "internal":
            raise rpc_error(grpc.StatusCode.INTERNAL)
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "slow":
            await asyncio.sleep(0.3)
        for i in range(3):
            yield pb.AudioFrame(pcm=b"\0\0" * 960, sequence=i, is_last=i == 2)

    def done(self) -> bool:
        return self.cancelled

    def cancel(self) -> bool:
        self.cancelled = True
        return True


@dataclass
class FakeClient:
    behaviour: str
    alive: bool = True
    started: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    async def start_session(
        self, model_id: str, load_timeout_s: float = 0, reference: Any = None
    ) -> Any:
        self.started.append(model_id)
        return pb.StartSessionResponse(session_id=f"s{len(self.started)}", model_id=model_id)

    def synthesize(self, session_id: str, text: AsyncIterator[str]) -> FakeCall:
        return FakeCall(self.behaviour)

    async def capabilities(self, timeout_s: float | None = None) -> pb.Capabilities:
        if not self.alive:
            await asyncio.sleep(timeout_s or 0)
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED)
        return pb.Capabilities()

    async def end_session(self, session_id: str) -> None:
        self.ended.append(session_id)

    async def control(self, session_id: str, action: int) -> None:
        pass


class FakeRegistry(Registry):
    def __init__(self, clients: dict[str, FakeClient]) -> None:
        super().__init__()
        self.fakes = clients

    def snapshot(self) -> list[WorkerView]:
        return [
            WorkerView(
                worker_id=name,
                endpoint=f"10.0.0.{i}:7001",
                models=frozenset({MODEL}),
                resident=frozenset({MODEL}),
                p50_first_audio_ms=10.0 * (i + 1),  # "a" is the best worker
            )
            for i, name in enumerate(sorted(self.fakes))
        ]

    def mark_unhealthy(self, endpoint: str) -> None:
        pass  # only the exclusion may keep a retry away from the failed worker

    def client(self, endpoint: str) -> Any:
        index = int(endpoint.split(":")[0].rsplit(".", 1)[1])
        return self.fakes[sorted(self.fakes)[index]]


async def speak(clients: dict[str, FakeClient]) -> Recorded:
    events = Recorded()
    speaker = Speaker(events, FakeRegistry(clients), MODEL, "test", stall_s=0.05,
                      probe_timeout_s=0.05)  # fmt: skip

    async def text() -> AsyncIterator[str]:
        yield "Hello there."

    await asyncio.wait_for(speaker.speak(Reply(1), ReplayableText(text()), None), 10)
    await speaker.close()
    return events


async def test_a_failed_worker_is_excluded_by_its_id_on_retry() -> None:
    failing, healthy = FakeClient("fail"), FakeClient("ok")
    events = await speak({"a": failing, "b": healthy})
    assert len(failing.started) == 1  # never chosen again this turn
    assert healthy.started == [MODEL]
    assert [e["worker"] for e in events.named("tts_start")] == ["b"]
    assert events.named("tts_end")[0]["frames"] == 3


@pytest.mark.parametrize("behaviour", ["ok", "fail", "internal", "hang"])
async def test_every_worker_session_opened_is_ended(behaviour: str) -> None:
    first = FakeClient(behaviour, alive=behaviour != "hang")
    second = FakeClient("ok")
    await speak({"a": first, "b": second})
    for client in (first, second):
        assert sorted(client.ended) == sorted(f"s{i + 1}" for i in range(len(client.started)))


async def test_a_hung_worker_is_failed_over_and_the_turn_ends() -> None:
    hung, healthy = FakeClient("hang", alive=False), FakeClient("ok")
    events = await speak({"a": hung, "b": healthy})
    errors = events.named("error")
    assert [e["code"] for e in errors] == ["tts_failed"]
    assert "stopped responding" in errors[0]["message"]
    assert [e["worker"] for e in events.named("tts_start")] == ["b"]
    assert len(events.named("tts_end")) == 1


async def test_a_silent_worker_that_answers_probes_is_waited_for() -> None:
    slow = FakeClient("slow", alive=True)
    events = await speak({"a": slow, "b": FakeClient("ok")})
    assert events.named("error") == []
    assert [e["worker"] for e in events.named("tts_start")] == ["a"]


async def test_a_turn_that_fails_everywhere_ends_with_an_error() -> None:
    events = await speak({"a": FakeClient("hang", alive=False)})
    assert events.named("tts_end") == []
    assert events.named("error")[-1]["code"] in ("no_worker", "tts_failed")
