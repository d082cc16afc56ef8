"""Start a real ``duplex-tts-worker`` subprocess and talk to it over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from duplex_protocol.wire import WireSecurity
from tests.support.voicepacks import VOICEPACKS as VOICEPACKS
from tests.support.voicepacks import quiet_voicepacks

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ChildProcess:
    """A service started by a test, logging to a file, stopped with SIGTERM."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def hang(self, timeout_s: float = 5.0) -> None:
        """SIGSTOP the process and return once the kernel shows it stopped.

        A fault test must not go on to wait for a failover while the process
        still runs: that would test nothing (and once timed out in CI).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.process.send_signal(signal.SIGSTOP)
            if _state(self.process.pid) == "T":
                return
            time.sleep(0.01)
        raise RuntimeError(f"pid {self.process.pid} did not stop: {_state(self.process.pid)!r}")


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T, ...)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@dataclass
class WorkerProcess(ChildProcess):
    address: str = ""


def start_worker(
    args: Sequence[str],
    log_path: Path,
    ready_timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
    security: WireSecurity | None = None,
    port: int | None = None,
) -> WorkerProcess:
    """Start a worker on a free port and wait for health SERVING.

    ``env``: extra variables; ``security``: how to reach a worker started with TLS;
    ``port``: a fixed port (to restart a worker where it was). Without ``--voicepacks``
    in ``args`` it serves ``quiet_voicepacks()``: a test judging what it says hears the
    same audio every run.
    """
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "duplex_tts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        "0",
        *args,
    ]
    if "--voicepacks" not in args:  # the shipped voices, Piper's without noise
        cmd += ["--voicepacks", str(quiet_voicepacks())]
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        cmd,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    worker = WorkerProcess(proc, log_path, address=f"127.0.0.1:{port}")
    deadline = time.monotonic() + ready_timeout_s
    with _sync_channel(worker.address, security) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.log()}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service="duplex.tts.v1.TTS"), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return worker
            time.sleep(0.1)
    worker.stop()
    raise RuntimeError(f"worker not ready in {ready_timeout_s}s:\n{worker.log()}")


def _sync_channel(address: str, security: WireSecurity | None) -> grpc.Channel:
    if security is None or not security.tls:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(security.ca, security.key, security.cert)
    options = [("grpc.ssl_target_name_override", security.server_name)]
    return grpc.secure_channel(address, credentials, options)


@dataclass
class Received:
    frames: list[pb.AudioFrame] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)

    @property
    def pcm(self) -> bytes:
        return b"".join(f.pcm for f in self.frames)


def text_chunks(session_id: str, text: str, *, word_by_word: bool = False) -> list[pb.TextChunk]:
    if not word_by_word:
        return [pb.TextChunk(session_id=session_id, text=text, is_final=True)]
    words = text.split(" ")
    return [
        pb.TextChunk(
            session_id=session_id, text=(" " if i else "") + w, is_final=i == len(words) - 1
        )
        for i, w in enumerate(words)
    ]


async def aiter_chunks(
    chunks: Sequence[pb.TextChunk], gap_s: float = 0.0
) -> AsyncIterator[pb.TextChunk]:
    for chunk in chunks:
        yield chunk
        if gap_s:
            await asyncio.sleep(gap_s)


async def speak(stub: pb_grpc.TTSAsyncStub, session_id: str, text: str, **kwargs: bool) -> Received:
    """One whole utterance; returns every frame with its arrival time."""
    got = Received()
    async for frame in stub.Synthesize(aiter_chunks(text_chunks(session_id, text, **kwargs))):
        got.frames.append(frame)
        got.arrival.append(time.monotonic())
    return got


class Collector:
    """Reads a Synthesize call in the background, so a test can act while frames flow."""

    def __init__(self, call: AsyncIterable[pb.AudioFrame]) -> None:
        self.got = Received()
        self.error: grpc.aio.AioRpcError | None = None
        self._call = call
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for frame in self._call:
                self.got.frames.append(frame)
                self.got.arrival.append(time.monotonic())
        except grpc.aio.AioRpcError as exc:
            self.error = exc

    async def wait_frames(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.got.frames) < count and not self.task.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.got.frames)} of {count} frames arrived")
            await asyncio.sleep(0.005)

    async def done(self, timeout_s: float = 30.0) -> Received:
        await asyncio.wait_for(self.task, timeout_s)
        return self.got


@contextlib.asynccontextmanager
async def connect(
    address: str, security: WireSecurity | None = None
) -> AsyncIterator[pb_grpc.TTSAsyncStub]:
    async with (security or WireSecurity()).channel(address) as channel:
        yield pb_grpc.TTSStub(channel)
