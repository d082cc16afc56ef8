"""The WebRTC transport (aiortc): Opus both ways, the protocol's JSON on a data channel.

``POST /rtc/offer`` takes the browser's SDP offer (one audio track, one data
channel, ICE gathered) and answers with aiortc's. The data channel carries the
WebSocket protocol's JSON messages and events unchanged (``start`` opens the
session; binary messages are a voice clip's 20 ms PCM16 frames at 48 kHz, as an
upload). The microphone track is Opus decoded at 48 kHz, mixed to mono and
resampled to the core's 16 kHz here. The reply goes out on ``ReplyTrack``: each
of the worker's 20 ms frames is sent at the next 20 ms tick, silence when none
waits; barge-in drops what is queued at once.

aiortc reports no disconnect when a browser vanishes, so the client sends a
``ping`` on the data channel every couple of seconds and a session that hears
nothing for ``keepalive_s`` is closed, with its worker session.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from duplex_orchestrator import metrics
from duplex_orchestrator.events import Error, Event, to_json
from duplex_orchestrator.protocol import CloneEnd, ProtocolError, Start, parse
from duplex_orchestrator.session import Services, VoiceSession
from duplex_orchestrator.transports.audio import To16k, pcm_frame, to_mono
from duplex_orchestrator.transports.ice import allowed_sdp

log = logging.getLogger(__name__)
RATE = 48_000
FRAME_SAMPLES = 960
SILENCE = bytes(FRAME_SAMPLES * 2)
MAX_OFFER_BYTES = 64 * 1024
MAX_PENDING_MESSAGES = 4096
"""Data-channel messages waiting to be handled (80 s of clip frames): past it the
client sends faster than its session can take, and the session is closed."""


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server handed to both ends (the browser gets it from /rtc/config)."""

    urls: list[str]
    username: str = ""
    credential: str = ""


@dataclass
class RtcSettings:
    ice_servers: list[IceServer] = field(default_factory=list)
    peer_networks: list[str] = field(default_factory=list)
    """Peer candidate addresses accepted (addresses or CIDRs); empty: any."""
    keepalive_s: float = 10.0
    """A session whose data channel is silent this long is closed (the client pings)."""

    def configuration(self) -> RTCConfiguration:
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(s.urls, s.username or None, s.credential or None)
                for s in self.ice_servers
            ]
        )

    def browser_config(self) -> dict[str, Any]:
        """What the page passes to ``new RTCPeerConnection`` (credentials included)."""
        servers = [
            {
                "urls": s.urls,
                **({"username": s.username} if s.username else {}),
                **({"credential": s.credential} if s.credential else {}),
            }
            for s in self.ice_servers
        ]
        return {"iceServers": servers, "keepaliveMs": int(self.keepalive_s * 1000 / 4)}


class ReplyTrack(MediaStreamTrack):
    """The agent's voice: queued 20 ms frames, one per 20 ms tick, silence between replies."""

    kind = "audio"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._queue: deque[bytes] = deque()
        self._clock = clock
        self._started: float | None = None
        self._pts = 0
        self.sent = 0
        """Reply frames sent (not silence)."""

    def push(self, frame: bytes) -> None:
        self._queue.append(frame)

    def flush(self) -> int:
        """Drop everything queued (barge-in); returns how many frames were dropped."""
        dropped = len(self._queue)
        self._queue.clear()
        return dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._started is None:
            self._started = now
        else:
            self._pts += FRAME_SAMPLES
            wait = self._started + self._pts / RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:  # the loop stalled: restart the schedule, never burst to catch up
                self._started = now - self._pts / RATE
        pcm = self._queue.popleft() if self._queue else SILENCE
        if pcm is not SILENCE:
            self.sent += 1
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class DataChannelIO:
    """SessionIO over a data channel (events) and a ReplyTrack (audio)."""

    def __init__(self, track: ReplyTrack) -> None:
        self.track = track
        self.channel: RTCDataChannel | None = None

    async def event(self, event: Event) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(to_json(event))

    async def audio(self, frame: bytes) -> None:
        self.track.push(frame)

    async def flush_audio(self) -> None:
        self.track.flush()


class RtcSession:
    """One peer connection and the voice session it carries."""

    def __init__(
        self,
        services: Services,
        settings: RtcSettings,
        on_closed: Callable[[RtcSession], Awaitable[None] | None] | None = None,
    ) -> None:
        self.pc = RTCPeerConnection(settings.configuration())
        self.track = ReplyTrack()
        self.io = DataChannelIO(self.track)
        self.session = VoiceSession(self.io, services)
        self._settings = settings
        self._on_closed = on_closed
        self._messages: asyncio.Queue[str | bytes | None] = asyncio.Queue(MAX_PENDING_MESSAGES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_heard = time.monotonic()
        self._to16k = To16k(RATE)
        self._uploading = False
        self._closed = False
        self.pc.addTrack(self.track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def id(self) -> str:
        return self.session.id

    async def answer(self, sdp: str) -> RTCSessionDescription:
        """aiortc's answer; ValueError when no candidate of the offer may be used."""
        usable = allowed_sdp(sdp, self._settings.peer_networks)
        if "a=candidate:" not in usable:
            raise ValueError(
                "none of the offer's ICE candidates may be used (gather before offering; "
                f"allowed networks: {', '.join(self._settings.peer_networks) or 'any IP'}; "
                "mDNS names are not resolved)"
            )
        offer = RTCSessionDescription(usable, "offer")
        await self.pc.setRemoteDescription(offer)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._consume_messages())
        self._spawn(self._watch_keepalive())
        return self.pc.localDescription

    # ---- inbound -------------------------------------------------------

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self.io.channel = channel

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self._last_heard = time.monotonic()
            try:
                self._messages.put_nowait(message)
            except asyncio.QueueFull:  # a flood: bounded memory, an explicit end
                self._spawn(self.close("client sends faster than its session can take"))

        @channel.on("close")
        def on_close() -> None:
            self._spawn(self.close("data channel closed"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._consume_audio(track))

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._spawn(self.close(f"connection {self.pc.connectionState}"))

    async def _consume_messages(self) -> None:
        try:
            await self._handle_messages()
        except Exception:  # a bug, not the client's fault: end this session, not the server
            log.exception("webrtc session failed", extra={"event": "rtc_error"})
            await self.close("internal error")

    async def _handle_messages(self) -> None:
        session = self.session
        while (raw := await self._messages.get()) is not None:
            try:
                if isinstance(raw, bytes):  # an uploaded voice clip's frames
                    if not session.recording_clip:
                        raise ProtocolError(
                            "not_recording",
                            "binary messages are a voice clip's frames: "
                            'send {"type": "clone_start"} first',
                        )
                    self._uploading = True  # the microphone's frames wait meanwhile
                    await session.audio(np.zeros(0, np.int16), source=pcm_frame(raw, RATE))
                    continue
                message = parse(raw)
                if isinstance(message, Start):  # the track's rate, whatever the client says
                    message = replace(message, sample_rate=RATE)
                elif isinstance(message, CloneEnd):
                    self._uploading = False
                await session.handle(message)
            except ProtocolError as exc:
                metrics.ERRORS.labels(code=exc.code).inc()
                await self.io.event(Error(exc.code, str(exc)))

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not self.session.started or self._uploading:
                continue
            assert isinstance(frame, av.AudioFrame)
            source = to_mono(frame.to_ndarray().reshape(-1), len(frame.layout.channels))
            await self.session.audio(self._to16k(source), source=source)

    async def _watch_keepalive(self) -> None:
        period = min(1.0, self._settings.keepalive_s / 4)
        while not self._closed:
            await asyncio.sleep(period)
            if time.monotonic() - self._last_heard > self._settings.keepalive_s:
                await self.close(f"no keepalive for {self._settings.keepalive_s:g} s")
                return

    # ---- lifecycle -----------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, reason: str = "closed") -> None:
        if self._closed:
            return
        self._closed = True
        log.info(
            "webrtc session closed",
            extra={"event": "rtc_close", "session_id": self.id, "reason": reason},
        )
        with contextlib.suppress(asyncio.QueueFull):  # a full queue is dropped with its task
            self._messages.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.session.close()
        self.track.stop()
        await self.pc.close()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self._on_closed is not None:
            result = self._on_closed(self)
            if result is not None:
                await result
