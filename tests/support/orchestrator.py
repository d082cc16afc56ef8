"""Start a real ``duplex-orchestrator`` subprocess; a scripted WebSocket client for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from tests.support.worker import ROOT, ChildProcess, free_port


@dataclass
class OrchestratorProcess(ChildProcess):
    port: int = 0
    tls: bool = False
    """Serving HTTPS/WSS (started with --tls-cert, a certificate for 127.0.0.1)."""

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws"


def start_orchestrator(
    workers: Sequence[str],
    log_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> OrchestratorProcess:
    port = port or free_port()
    cmd = [sys.executable, "-m", "duplex_orchestrator", "--port", str(port), "--poll-ms", "300"]
    cmd += [arg for w in workers for arg in ("--worker", w)]
    if "--rtc-peer-network" not in extra:  # WebRTC media stays on loopback
        cmd += ["--rtc-host", "127.0.0.1", "--rtc-peer-network", "127.0.0.1"]
    keyed = any(arg in ("--api-key", "--api-key-file") for arg in extra)
    cmd += list(extra) if keyed else ["--dev", *extra]
    variables = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DUPLEX_CACHE": str(ROOT / ".cache"),
        **(env or {}),
    }
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, env=variables)
    orchestrator = OrchestratorProcess(proc, log_path, port=port, tls="--tls-cert" in extra)
    # Readiness only: tests that serve TLS check the certificate themselves.
    unverified = ssl._create_unverified_context() if orchestrator.tls else None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"orchestrator exited with {proc.returncode}:\n{orchestrator.log()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(
                f"{orchestrator.url}/healthz", timeout=1, context=unverified
            ) as response,
        ):
            if response.status == 200:
                return orchestrator
        time.sleep(0.2)
    orchestrator.stop()
    raise RuntimeError(f"orchestrator not healthy:\n{orchestrator.log()}")


@dataclass
class Transcript:
    """What a scripted client received, with arrival times."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio: list[tuple[float, bytes]] = field(default_factory=list)

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for _, e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        ]

    def time_of(self, kind: str, **match: Any) -> float:
        return next(
            t
            for t, e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        )

    def pcm(self, start: float = 0.0, end: float = float("inf")) -> bytes:
        return b"".join(frame for t, frame in self.audio if start <= t < end)


class ScriptedClient:
    """A WebSocket client whose microphone plays a prepared 16 kHz track in real time."""

    def __init__(self, ws_url: str, key: str = "") -> None:
        self._url = ws_url
        self._key = key
        self.got = Transcript()
        self._http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._audio_arrived = asyncio.Event()

    async def __aenter__(self) -> ScriptedClient:
        self._http = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            self.ws = await self._http.ws_connect(self._url, headers=headers)
        except BaseException:
            await self._http.close()  # refused connections leave no open session behind
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._http is not None:
            await self._http.close()

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            now = time.monotonic()
            if message.type is aiohttp.WSMsgType.TEXT:
                self.got.events.append((now, json.loads(message.data)))
            elif message.type is aiohttp.WSMsgType.BINARY:
                self.got.audio.append((now, message.data))
                self._audio_arrived.set()

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def start(
        self, model: str = "", sample_rate: int = 16000, **fields: Any
    ) -> dict[str, Any]:
        await self.send(type="start", model=model, sample_rate=sample_rate, **fields)
        return await self.wait_for("ready")

    async def wait_for(self, kind: str, timeout_s: float = 30.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.got.of(kind, **match)
            if found:
                return found[0]
            await asyncio.sleep(0.01)
        raise TimeoutError(
            f"no {kind} {match} in {timeout_s}s; events: {[e for _, e in self.got.events]}"
        )

    async def first_audio_after(self, moment: float, timeout_s: float = 20.0) -> float:
        """Arrival time of the first audio frame received after ``moment``."""
        deadline = time.monotonic() + timeout_s
        while True:
            later = [t for t, _ in self.got.audio if t > moment]
            if later:
                return later[0]
            self._audio_arrived.clear()
            await asyncio.wait_for(
                self._audio_arrived.wait(), max(0.0, deadline - time.monotonic())
            )

    async def speak(self, track: np.ndarray, rate: int = 16000) -> float:
        """Play ``track`` (int16 at ``rate``) as 20 ms frames in real time; return the start."""
        step = rate // 50
        padded = np.concatenate([track, np.zeros(-len(track) % step, np.int16)])
        started = time.monotonic()
        for i in range(len(padded) // step):
            await self.send_raw(padded[i * step : (i + 1) * step].astype("<i2").tobytes())
            await asyncio.sleep(max(0.0, started + (i + 1) * 0.02 - time.monotonic()))
        return started


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def cough(seconds: float = 0.35, level: float = 0.5, seed: int = 0) -> np.ndarray:
    """A band-passed noise burst: trips the VAD, holds no words."""
    from scipy.signal import butter, lfilter

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * 16000))
    b, a = butter(2, [300 / 8000, 3000 / 8000], "band")
    shaped = np.asarray(lfilter(b, a, noise)) * np.exp(-np.linspace(0, 5, noise.size))
    burst: np.ndarray = (shaped / np.abs(shaped).max() * level * 32767).astype(np.int16)
    return burst


def words_of(text: str) -> str:
    import re

    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())
