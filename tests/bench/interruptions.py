"""Sounds over a reply, for ``bench_conversation``: speech (barge-in latency), noise
and a listener's acknowledgements ("Mm-hmm.", "Okay."), each in a fresh session with
one client. Speech should stop the reply at once; noise should not even pause it; an
acknowledgement pauses it (its onset is speech) and should resume it, unanswered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from tests.bench.bench_orchestrator import LONG
from tests.bench.bench_worker import summary
from tests.support.orchestrator import ScriptedClient, cough, silence

ACKNOWLEDGEMENTS = ("Uh huh.", "Okay.", "Right.", "Yeah.", "I see.", "Yeah, yeah.")
"""Said over a reply, each by the next of the bench's voices (``bench_conversation``):
Piper first, which says "uh huh" as Whisper writes "Uh-huh". No voice here says
"mm-hmm" so that Whisper hears it ("M-M-M.", "MMDM"), so it is not among them."""


def noises() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    clicks = np.zeros(16000, np.int16)
    for start in range(800, 15000, 2100):  # keys: sharp broadband ticks
        tick = rng.standard_normal(160) * np.exp(-np.linspace(0, 8, 160))
        clicks[start : start + 160] = (tick / np.abs(tick).max() * 0.4 * 32767).astype(np.int16)
    t = np.arange(32000) / 16000
    chord = np.sin(2 * np.pi * np.outer((220.0, 277.2, 329.6), t)).sum(axis=0)
    music = (chord / 3 * 0.03 * 32767).astype(np.int16)  # about -30 dBFS
    return {"cough": cough(), "keyboard": clicks, "music": music}


async def over_a_reply(ws_url: str, sound: np.ndarray) -> tuple[ScriptedClient, float]:
    """Play ``sound`` a second into a long reply, until the reply ends: the client (what
    it got) and when the sound began. Whether the sound stopped the reply is its
    ``tts_end``'s ``interrupted`` (``stopped``): the ``barge_in`` stop event comes after
    it, and may come after the client is gone."""
    async with ScriptedClient(ws_url) as c:
        await c.start()
        await c.send(type="say", text=LONG)
        await c.wait_for("tts_start", turn=1)
        await asyncio.sleep(1.0)
        onset = time.monotonic()
        mic = asyncio.create_task(c.speak(np.concatenate([sound, silence(3.0)])))
        await c.wait_for("tts_end", turn=1, timeout_s=30)
        mic.cancel()
    return c, onset


def stopped(c: ScriptedClient) -> bool:
    """Whether the first reply was cut short."""
    return bool(c.got.of("tts_end", turn=1, interrupted=True))


async def interruptions(
    ws_url: str, runs: int, speech: np.ndarray, acknowledgements: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Barge-in latency (``speech`` over a reply, ``runs`` times), false barge-ins on
    noise, and acknowledgements (name → audio) that stopped the reply or let it go on."""
    latency: list[float] = []
    for _ in range(runs):
        c, onset = await over_a_reply(ws_url, speech)
        latency.append((c.got.time_of("barge_in", action="pause") - onset) * 1000)
    false_stops: dict[str, int] = {}
    false_pauses: dict[str, int] = {}
    for name, sound in noises().items():
        c, _ = await over_a_reply(ws_url, sound)
        false_stops[name] = int(stopped(c))
        false_pauses[name] = int(bool(c.got.of("barge_in", action="pause")))
    stops: dict[str, int] = {}
    heard: dict[str, list[str]] = {}
    paused: list[float] = []
    for name, sound in acknowledgements.items():
        c, _ = await over_a_reply(ws_url, sound)
        stops[name] = int(stopped(c))
        heard[name] = [e["text"] for e in c.got.of("asr") if e.get("final")]
        if not stops[name] and c.got.of("barge_in", action="resume"):
            pause_at = c.got.time_of("barge_in", action="pause")
            paused.append((c.got.time_of("barge_in", action="resume") - pause_at) * 1000)
    return {
        "barge_in_ms": summary(latency),
        "false_barge_in_pauses": false_pauses,
        "false_barge_in_stops": false_stops,
        "acknowledgement_stops": stops,
        "acknowledgements_heard": heard,
        "acknowledgement_pause_ms": summary(paused) if paused else None,
    }


def render_interruptions(vad: str, barge: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"{vad}: barge-in (onset → flush): p50 {barge['barge_in_ms']['p50']:.0f} ms, "
        f"p95 {barge['barge_in_ms']['p95']:.0f} ms",
        f"{vad}: noise that paused the reply: {barge['false_barge_in_pauses']}",
        f"{vad}: noise that stopped the reply: {barge['false_barge_in_stops']}",
    ]
    if "acknowledgement_stops" in barge:
        stops = barge["acknowledgement_stops"]
        lines.append(
            f"{vad}: acknowledgements that stopped the reply: {sum(stops.values())} of {len(stops)}"
        )
        if pause := barge.get("acknowledgement_pause_ms"):
            lines.append(
                f"{vad}: the reply paused until it went on (first pause to first resume): "
                f"p50 {pause['p50']:.0f} ms, p95 {pause['p95']:.0f} ms"
            )
        for name, texts in barge["acknowledgements_heard"].items():
            lines.append(f"  {name}: heard {texts}, {'stopped' if stops[name] else 'went on'}")
    return lines
