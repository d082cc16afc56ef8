"""A scripted WebRTC client (aiortc) for tests and the bench: a microphone from samples.

It does what the browser page does: one audio track out (``Microphone``, fed
48 kHz PCM16 by the caller, silence otherwise), one data channel for the
protocol's JSON, an offer with ICE gathered, pings as keepalive, and it
records the reply audio it hears with arrival times. Loopback only: call
``offer_only(["127.0.0.1"])`` (the server's app does it with ``--rtc-host``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tests.support.waiting import eventually

RATE = 48_000
FRAME = 960


class Microphone(MediaStreamTrack):
    """Sends queued 48 kHz samples in 20 ms frames, paced to the clock; silence when idle."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending: deque[np.ndarray] = deque()
        self._started: float | None = None
        self._pts = 0
        self.speaking_until = 0.0

    def say(self, samples48k: np.ndarray) -> float:
        """Queue speech; returns the monotonic time its last frame will have been sent."""
        samples = samples48k.astype(np.int16)
        for i in range(0, len(samples), FRAME):
            chunk = samples[i : i + FRAME]
            self._pending.append(np.pad(chunk, (0, FRAME - len(chunk))))
        self.speaking_until = time.monotonic() + len(self._pending) * FRAME / RATE
        return self.speaking_until

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._started is None:
            self._started = now
        else:
            self._pts += FRAME
            wait = self._started + self._pts / RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
        samples = self._pending.popleft() if self._pending else np.zeros(FRAME, np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


@dataclass
class Heard:
    """Reply audio as it arrived: (monotonic time, RMS of the 20 ms frame)."""

    levels: list[tuple[float, float]] = field(default_factory=list)

    def loud_after(self, since: float, threshold: float = 300.0) -> list[float]:
        return [t for t, rms in self.levels if t >= since and rms > threshold]


class RtcClient:
    def __init__(self, base_url: str, key: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.pc = RTCPeerConnection()
        self.mic = Microphone()
        self.heard = Heard()
        self.events: list[dict[str, Any]] = []
        self.session_id = ""
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel("duplex")
        self.channel.on("message", self._on_message)
        self.pc.on("track", self._on_track)
        self.keepalive = True

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.events.append({**json.loads(message), "_at": time.monotonic()})
            self._changed.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.AudioFrame)
                samples = frame.to_ndarray().reshape(-1).astype(np.float64)
                rms = float(np.sqrt(np.mean(samples**2)))
                self.heard.levels.append((time.monotonic(), rms))

    async def connect(
        self, model: str = "", timeout_s: float = 15.0, **start: Any
    ) -> dict[str, Any]:
        """Offer, answer, wait for the data channel, send ``start`` (with ``start``'s
        fields too); returns ``ready``."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base_url}/rtc/offer", json=offer, headers=headers) as response,
        ):
            if response.status != 200:
                raise RuntimeError(f"offer refused: {response.status} {await response.text()}")
            answer = await response.json()
        self.session_id = answer["session_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await eventually(lambda: self.channel.readyState == "open", timeout_s, every_s=0.02)
        self.send({"type": "start", "model": model, **start})
        self._tasks.append(asyncio.create_task(self._ping()))
        return await self.wait_for("ready", timeout_s=timeout_s)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.keepalive and self.channel.readyState == "open":
                self.send({"type": "ping"})

    def send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message))

    def named(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(
        self, kind: str, count: int = 1, timeout_s: float = 30.0, **match: Any
    ) -> dict[str, Any]:
        """The ``count``-th event of ``kind`` whose fields match ``match``."""
        async with asyncio.timeout(timeout_s):
            while True:
                found = [
                    e for e in self.named(kind) if all(e.get(k) == v for k, v in match.items())
                ]
                if len(found) >= count:
                    return found[count - 1]
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.mic.stop()
        await self.pc.close()
