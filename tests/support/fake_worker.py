"""An in-process stand-in for TTS workers: a registry and clients with no gRPC, no process.

``FakeWorker`` speaks every text chunk as ``frames_per_chunk`` 20 ms frames (a
tone, so levels are measurable), paced by ``frame_s``; it honours PAUSE,
RESUME and STOP like a real worker and records what it was asked. It lets the
session core and the transports be tested without subprocesses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.routing.policy import WorkerView
from duplex_orchestrator.tts import PAUSE, RESUME, STOP
from duplex_protocol.tts.v1 import tts_pb2 as pb

TONE = (np.sin(2 * np.pi * 440 * np.arange(960) / 48000) * 8000).astype("<i2").tobytes()


def frame_number(pcm: bytes) -> int:
    """The sequence number a ``numbered`` fake worker wrote into a frame."""
    return int.from_bytes(pcm[:4], "little")


def rpc_error(code: grpc.StatusCode, details: str = "injected") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass
class _Stream:
    worker: FakeWorker
    session_id: str
    text: AsyncIterator[str]
    cancelled: bool = False
    _task: asyncio.Task[None] | None = None
    _frames: asyncio.Queue[pb.AudioFrame | Exception | None] = field(default_factory=asyncio.Queue)

    def __aiter__(self) -> AsyncIterator[pb.AudioFrame]:
        return self._read()

    async def _read(self) -> AsyncIterator[pb.AudioFrame]:
        self._task = asyncio.create_task(self._produce())
        try:
            while (frame := await self._frames.get()) is not None:
                if isinstance(frame, Exception):
                    raise frame
                yield frame
        finally:
            self._task.cancel()

    async def _produce(self) -> None:
        worker, sequence = self.worker, 0
        state = worker.sessions[self.session_id]
        try:
            if worker.fail_with is not None:
                await self._frames.put(rpc_error(worker.fail_with, "the fake worker fails"))
                return
            async for chunk in self.text:
                worker.texts.append(chunk)
                for _ in range(worker.frames_per_chunk):
                    await state.resumed.wait()
                    if state.stopped:
                        return
                    await asyncio.sleep(worker.frame_s)
                    await self._frames.put(
                        pb.AudioFrame(pcm=worker.pcm(sequence), sequence=sequence)
                    )
                    sequence += 1
                if state.stopped:
                    return
        except Exception:  # as in grpc.aio: a failing request iterator cancels the call
            await self._frames.put(rpc_error(grpc.StatusCode.CANCELLED, "request iterator raised"))
        finally:
            await self._frames.put(None)

    def done(self) -> bool:
        return self.cancelled

    def cancel(self) -> bool:
        self.cancelled = True
        if self._task is not None:
            self._task.cancel()
        return True


@dataclass
class _SessionState:
    model: str
    stopped: bool = False
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.resumed.set()


@dataclass
class FakeWorker:
    worker_id: str = "fake-0"
    models: frozenset[str] = frozenset({"mock"})
    resident: frozenset[str] = frozenset({"mock"})
    frames_per_chunk: int = 5
    frame_s: float = 0.005
    fail_with: grpc.StatusCode | None = None
    """Every Synthesize fails with this status (a worker that breaks mid-reply)."""
    sessions: dict[str, _SessionState] = field(default_factory=dict)
    controls: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)
    numbered: bool = False
    """Each frame's first four bytes are its sequence number (``frame_number``)."""

    def pcm(self, sequence: int) -> bytes:
        return sequence.to_bytes(4, "little") + TONE[4:] if self.numbered else TONE

    async def start_session(
        self, model_id: str, load_timeout_s: float = 0, reference: Any = None
    ) -> pb.StartSessionResponse:
        if model_id not in self.models:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, f"unknown model {model_id!r}")
        session_id = f"{self.worker_id}-s{len(self.started) + 1}"
        self.started.append(model_id)
        self.sessions[session_id] = _SessionState(model_id)
        return pb.StartSessionResponse(session_id=session_id, model_id=model_id)

    def synthesize(self, session_id: str, text: AsyncIterator[str]) -> _Stream:
        return _Stream(self, session_id, text)

    async def control(self, session_id: str, action: int) -> None:
        state = self.sessions[session_id]
        self.controls.append({PAUSE: "pause", RESUME: "resume", STOP: "stop"}[action])  # type: ignore[index]
        if action == PAUSE:
            state.resumed.clear()
        elif action == RESUME:
            state.resumed.set()
        elif action == STOP:
            state.stopped = True
            state.resumed.set()

    async def end_session(self, session_id: str) -> None:
        self.ended.append(session_id)

    async def capabilities(self, timeout_s: float | None = None) -> pb.Capabilities:
        return pb.Capabilities()


class FakeRegistry(Registry):
    """Routes to in-process fake workers; ``ensure_loading`` records the loads asked for."""

    def __init__(self, *workers: FakeWorker) -> None:
        super().__init__()
        self.workers = {w.worker_id: w for w in workers}
        self.unhealthy: list[str] = []

    def snapshot(self) -> list[WorkerView]:
        return [
            WorkerView(
                worker_id=w.worker_id,
                endpoint=w.worker_id,
                models=w.models,
                resident=w.resident,
                languages={m: ("en",) for m in w.models},
            )
            for w in self.workers.values()
        ]

    def mark_unhealthy(self, endpoint: str) -> None:
        self.unhealthy.append(endpoint)

    def client(self, endpoint: str) -> Any:
        return self.workers[endpoint]

    def ensure_loading(self, endpoint: str, model_id: str) -> bool:
        worker = self.workers[endpoint]
        if model_id in worker.loads:
            return False
        worker.loads.append(model_id)
        return True
