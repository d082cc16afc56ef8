"""WebRTC pure parts: which ICE candidates are kept, the reply track's queue, settings."""

from __future__ import annotations

import pytest

from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.transports.ice import address_allowed, allowed_sdp, candidate_address
from duplex_orchestrator.transports.webrtc import IceServer, ReplyTrack, RtcSettings

OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host generation 0",
        "a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host generation 0",
        "a=candidate:3 1 udp 2122260223 3f1c2a4e-1111-2222-3333-444455556666.local 50002 typ host",
        "a=candidate:4 1 udp 1686052607 203.0.113.7 50003 typ srflx raddr 0.0.0.0 rport 0",
        "a=end-of-candidates",
    ]
)


@pytest.mark.parametrize(
    ("allowed", "kept"),
    [
        ([], ["192.168.1.20", "127.0.0.1", "203.0.113.7"]),  # any IP; never an mDNS name
        (["127.0.0.1"], ["127.0.0.1"]),
        (["192.168.0.0/16", "203.0.113.7"], ["192.168.1.20", "203.0.113.7"]),
    ],
)
def test_candidates_outside_the_allowed_networks_are_dropped(
    allowed: list[str], kept: list[str]
) -> None:
    filtered = allowed_sdp(OFFER, allowed)
    lines = filtered.splitlines()
    assert [candidate_address(x) for x in lines if x.startswith("a=candidate:")] == kept
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111" in lines
    assert "a=end-of-candidates" in lines
    assert filtered.endswith("\r\n")


def test_malformed_candidates_are_not_allowed() -> None:
    assert candidate_address("a=candidate:1 1 udp") == ""
    assert not address_allowed("", [])
    assert not address_allowed("host.local", [])
    assert address_allowed("::1", ["::1/128"])


def test_barge_in_drops_every_queued_frame() -> None:
    track = ReplyTrack()
    for _ in range(7):
        track.push(b"\1\0" * 960)
    assert track.queued == 7
    assert track.flush() == 7
    assert track.queued == 0


async def test_the_reply_track_sends_queued_frames_then_silence_on_20_ms_ticks() -> None:
    now = [100.0]
    track = ReplyTrack(clock=lambda: now[0])
    track.push(b"\1\0" * 960)
    first = await track.recv()
    second = await track.recv()  # the fake clock has not moved: late, so no wait
    assert first.pts == 0
    assert second.pts == 960
    assert first.to_ndarray().max() == 1
    assert second.to_ndarray().max() == 0  # nothing queued: silence keeps the clock going
    assert track.sent == 1


def test_browser_config_carries_turn_credentials_and_the_keepalive() -> None:
    settings = RtcSettings(
        ice_servers=[
            IceServer(["stun:stun.example.com:3478"]),
            IceServer(["turn:turn.example.com:3478"], "duplex", "secret"),
        ],
        keepalive_s=8,
    )
    config = settings.browser_config()
    assert config["iceServers"] == [
        {"urls": ["stun:stun.example.com:3478"]},
        {"urls": ["turn:turn.example.com:3478"], "username": "duplex", "credential": "secret"},
    ]
    assert config["keepaliveMs"] == 2000
    assert len(settings.configuration().iceServers or []) == 2


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"ice_servers": ["http://stun.example.com"]}, "must start with stun:"),
        ({"rtc_hosts": ["localhost"]}, "not an IP address"),
        ({"rtc_peer_networks": ["10.0.0.0/33"]}, "not an IP address"),
        ({"rtc_keepalive_ms": 10}, "rtc_keepalive_ms"),
    ],
)
def test_bad_webrtc_settings_are_refused_with_the_field_named(
    flags: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config({"dev": True, **flags})
