"""The WebRTC transport end to end over loopback: aiortc client ↔ aiortc server, fake workers.

Real Opus, DTLS/SRTP, SCTP data channel and ICE, on 127.0.0.1 only (the
server offers only that address, both ends drop other candidates); the worker
and speech recognition are in-process fakes so that only the transport is
under test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import numpy as np
import pytest
import soxr
from aiohttp import web

from duplex_orchestrator.llm import EchoBridge
from duplex_orchestrator.session import Services
from duplex_orchestrator.transports import SERVICES, rtc_http
from duplex_orchestrator.transports.ice import offer_only
from duplex_orchestrator.transports.webrtc import RtcSettings
from tests.support.fake_ears import Ears, voiced
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.rtc_client import RtcClient
from tests.support.waiting import eventually

LOOPBACK = ["127.0.0.1"]


@dataclass
class Server:
    url: str
    worker: FakeWorker
    ears: Ears
    app: web.Application


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    offer_only(LOOPBACK)
    worker = FakeWorker(frames_per_chunk=40, frame_s=0.02)  # real time: 0.8 s per chunk
    ears = Ears()
    app = web.Application()
    app[SERVICES] = Services(
        registry=FakeRegistry(worker),
        transcriber=ears,
        llm=EchoBridge(),
        default_model="mock",
        end_frames=15,
    )
    rtc_http.setup(app, RtcSettings(peer_networks=LOOPBACK, keepalive_s=2.0))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Server(f"http://127.0.0.1:{port}", worker, ears, app)
    await runner.cleanup()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[RtcClient]:
    rtc = RtcClient(server.url)
    ready = await rtc.connect()
    assert ready["sample_rate_in"] == 48000  # Opus: the track's rate, whatever was declared
    yield rtc
    await rtc.close()


def candidates(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_only_loopback_candidates_are_offered_or_accepted(server: Server) -> None:
    rtc = RtcClient(server.url)
    try:
        await rtc.connect()
        local = rtc.pc.localDescription.sdp
        remote = rtc.pc.remoteDescription.sdp
        assert set(candidates(local)) == {"127.0.0.1"}
        assert set(candidates(remote)) == {"127.0.0.1"}
    finally:
        await rtc.close()


async def test_a_reply_is_heard_frame_by_frame_not_in_a_burst(
    server: Server, client: RtcClient
) -> None:
    sent_at = time.monotonic()
    client.send({"type": "say", "text": "Hello there."})
    end = await client.wait_for("tts_end")
    assert end["frames"] == 40
    await asyncio.sleep(0.3)  # the last frames are still on the wire
    loud = client.heard.loud_after(sent_at)
    assert len(loud) >= 35  # Opus decoded back: the reply was heard
    # 40 frames of 20 ms went out as they came: spread over ~0.8 s, not bunched up.
    assert loud[-1] - loud[0] > 0.5


async def test_a_spoken_question_is_answered_and_speech_over_the_reply_pauses_it(
    server: Server, client: RtcClient
) -> None:
    question = soxr.resample(voiced(0.8), 16000, 48000).astype(np.int16)
    client.mic.say(question)
    asr = await client.wait_for("asr", final=True)
    assert asr["text"] == "hello there"
    await client.wait_for("tts_start")
    await asyncio.sleep(0.3)
    server.ears.words = ""  # the interruption is a cough: the reply resumes
    client.mic.say(soxr.resample(voiced(0.4), 16000, 48000).astype(np.int16))
    barge = await client.wait_for("barge_in", action="pause")
    assert barge["flush"] is True
    assert "pause" in server.worker.controls
    await client.wait_for("barge_in", action="resume")
    end = await client.wait_for("tts_end")
    assert not end["interrupted"]
    assert server.worker.controls == ["pause", "resume"]


async def test_manual_turns_over_the_data_channel_end_only_at_end_turn(server: Server) -> None:
    """``turn_detection`` reaches the session though the transport sets ``start``'s rate:
    the silence after the question ends nothing, the data channel's ``end_turn`` does."""
    rtc = RtcClient(server.url)
    try:
        ready = await rtc.connect(turn_detection="manual")
        assert ready["turn_detection"] == "manual"
        assert ready["sample_rate_in"] == 48000
        rtc.mic.say(soxr.resample(voiced(0.8), 16000, 48000).astype(np.int16))
        await rtc.wait_for("vad", state="speech_start")
        await asyncio.sleep(2.0)  # twice the silence that ends a turn
        assert not [e for e in rtc.named("asr") if e["final"]]  # partials, live, only
        rtc.send({"type": "end_turn"})
        asr = await rtc.wait_for("asr", final=True)
        assert asr["text"] == "hello there"
        assert not (await rtc.wait_for("tts_end"))["interrupted"]
    finally:
        await rtc.close()


async def test_interrupt_drops_the_queued_reply_audio(server: Server, client: RtcClient) -> None:
    server.worker.frames_per_chunk = 500  # 10 s
    client.send({"type": "say", "text": "A very long reply."})
    await client.wait_for("tts_start")
    await asyncio.sleep(0.5)
    client.send({"type": "interrupt"})
    stop = await client.wait_for("barge_in", action="stop")
    end = await client.wait_for("tts_end")
    assert end["interrupted"]
    await asyncio.sleep(1.0)
    # Nothing of the reply is heard a generous while after the stop (the queue was dropped).
    assert client.heard.loud_after(stop["_at"] + 0.5) == []
    assert server.worker.controls == ["stop"]


async def test_a_vanished_client_is_detected_by_keepalive_and_its_worker_session_freed(
    server: Server, client: RtcClient
) -> None:
    server.worker.frames_per_chunk = 1000  # 20 s: still speaking when the client vanishes
    client.send({"type": "say", "text": "A very long reply."})
    await client.wait_for("tts_start")
    client.keepalive = False  # the browser tab is gone: no pings, no goodbye
    await eventually(lambda: not server.app[rtc_http.SESSIONS], timeout_s=10)
    assert server.worker.ended == ["fake-0-s1"]
    assert "stop" in server.worker.controls


async def test_bad_offers_get_a_clear_400(server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        for body in ({"type": "answer", "sdp": "x"}, {"type": "offer", "sdp": "v=0"}):
            async with http.post(f"{server.url}/rtc/offer", json=body) as response:
                assert response.status == 400
                assert "offer" in await response.text()
        no_loopback = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + (
            "a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host\r\n"
        )
        async with http.post(
            f"{server.url}/rtc/offer", json={"type": "offer", "sdp": no_loopback}
        ) as response:
            assert response.status == 400
            assert "none of the offer's ICE candidates may be used" in await response.text()
        async with http.post(f"{server.url}/rtc/offer", data=b"{nope") as response:
            assert response.status == 400
            assert "JSON" in await response.text()
    assert server.app[rtc_http.SESSIONS] == set()
