"""Benchmark voice sessions through the orchestrator: ``make bench``.

A real Piper worker and a real orchestrator (Whisper base, echo bridge) run as
subprocesses; a scripted WebSocket client plays spoken input in real time.
Prints p50/p95 and writes ``bench-results/orchestrator.json``.

- voice_to_voice_ms: last speech frame sent → first reply frame received;
- barge_in_ms: first frame of the interruption sent → ``barge_in`` flush received
  (VAD onset included; the worker PAUSE is sent right after the flush);
- asr_ms: Whisper time per utterance, as the server reports it;
- overhead_ms: ``say`` text sent → first frame at the client, minus the same text
  sent straight to the worker over gRPC → first frame (alternating runs).

The same questions and interruption then go over WebRTC (an aiortc client on
loopback: Opus both ways, the reply measured on the decoded track), and over
the WebSocket measured the same way, in the same run:

- heard_ms (ws / webrtc): last speech frame sent → first loud reply frame at the client;
- silenced_ms (ws / webrtc): first frame of the interruption sent → the reply stops
  at the client (WebSocket: the flush event, which drops the page's buffer;
  WebRTC: the last loud frame of the reply heard after the onset).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.transports.ice import offer_only
from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.bench.bench_worker import publish, summary
from tests.support.orchestrator import ScriptedClient, silence, start_orchestrator
from tests.support.rtc_client import RtcClient
from tests.support.speech import speech_16k
from tests.support.worker import ROOT, aiter_chunks, connect, start_worker, text_chunks

QUESTIONS = [
    "What time does the museum open tomorrow?",
    "Can you recommend a good book about history?",
    "Please remind me to call my sister tonight.",
    "How far is the train station from here?",
    "What should I cook for dinner this evening?",
]
LONG = (
    "This answer goes on for quite a while, describing the city, the weather, the food "
    "and the people, so that there is enough time to cut in."
)
TARGETS = {
    "voice_to_voice_ms": ("p50", 1000.0),
    "barge_in_ms": ("p95", 150.0),
    "overhead_ms": ("p95", 10.0),
}


async def voice_to_voice(ws_url: str, runs: int) -> tuple[list[float], list[float]]:
    v2v, asr = [], []
    async with ScriptedClient(ws_url) as c:
        await c.start()
        for i in range(runs):
            speech = speech_16k(QUESTIONS[i % len(QUESTIONS)], lead_s=0.3, tail_s=0.0)
            turn = i + 1
            mic = asyncio.create_task(c.speak(np.concatenate([speech, silence(8.0)])))
            started = time.monotonic()
            speech_end = started + len(speech) / 16000
            first = await c.first_audio_after(speech_end)
            v2v.append((first - speech_end) * 1000)
            await c.wait_for("tts_end", turn=turn, timeout_s=20)
            asr.append(float(c.got.of("asr", final=True)[-1]["asr_ms"]))
            mic.cancel()
            await asyncio.sleep(0.3)
    return v2v, asr


async def barge_in(ws_url: str, runs: int) -> list[float]:
    latencies = []
    interruption = speech_16k("Wait a moment please.", lead_s=0.0, tail_s=0.0)
    for _ in range(runs):
        async with ScriptedClient(ws_url) as c:
            await c.start()
            await c.send(type="say", text=LONG)
            await c.wait_for("tts_start", turn=1)
            await asyncio.sleep(1.0)
            mic = asyncio.create_task(c.speak(np.concatenate([interruption, silence(3.0)])))
            onset = time.monotonic()
            await c.wait_for("barge_in", action="pause", timeout_s=10)
            latencies.append((c.got.time_of("barge_in", action="pause") - onset) * 1000)
            await c.wait_for("barge_in", action="stop", timeout_s=10)
            mic.cancel()
    return latencies


async def overhead(ws_url: str, worker_address: str, runs: int) -> list[float]:
    values = []
    async with connect(worker_address) as stub, ScriptedClient(ws_url) as c:
        await c.start()
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        for i in range(runs):
            text = QUESTIONS[i % len(QUESTIONS)]
            sent = time.monotonic()
            call = stub.Synthesize(aiter_chunks(text_chunks(sid, text)))
            async for _frame in call:
                direct = time.monotonic() - sent
                await stub.Control(pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_STOP))
                break
            async for _frame in call:
                pass
            sent = time.monotonic()
            await c.send(type="say", text=text)
            via = await c.first_audio_after(sent) - sent
            await c.send(type="interrupt")
            await c.wait_for("tts_end", turn=i + 1)
            values.append((via - direct) * 1000)
    return values


LOUD = 300.0
"""RMS of a 20 ms int16 frame above which the reply counts as heard."""


def _to48k(samples16k: np.ndarray) -> np.ndarray:
    import soxr

    resampled: np.ndarray = soxr.resample(samples16k.astype(np.float32), 16000, 48000)
    clipped: np.ndarray = np.clip(resampled, -32768, 32767).astype(np.int16)
    return clipped


def _first_loud_ws(c: ScriptedClient, after: float) -> float | None:
    for t, pcm in c.got.audio:
        frame = np.frombuffer(pcm, "<i2").astype(np.float64)
        if t > after and np.sqrt(np.mean(frame**2)) > LOUD:
            return t
    return None


async def heard_ws(ws_url: str, runs: int) -> list[float]:
    values = []
    async with ScriptedClient(ws_url) as c:
        await c.start()
        for i in range(runs):
            speech = speech_16k(QUESTIONS[i % len(QUESTIONS)], lead_s=0.3, tail_s=0.0)
            mic = asyncio.create_task(c.speak(np.concatenate([speech, silence(8.0)])))
            speech_end = time.monotonic() + len(speech) / 16000
            await c.wait_for("tts_end", turn=i + 1, timeout_s=30)
            loud = _first_loud_ws(c, speech_end)
            if loud is not None:
                values.append((loud - speech_end) * 1000)
            mic.cancel()
            await asyncio.sleep(0.3)
    return values


async def heard_rtc(base_url: str, runs: int) -> list[float]:
    values = []
    rtc = RtcClient(base_url)
    try:
        await rtc.connect()
        for i in range(runs):
            speech = speech_16k(QUESTIONS[i % len(QUESTIONS)], lead_s=0.3, tail_s=0.0)
            speech_end = rtc.mic.say(_to48k(speech))
            await rtc.wait_for("tts_end", count=i + 1, timeout_s=30)
            await asyncio.sleep(0.3)
            loud = rtc.heard.loud_after(speech_end, LOUD)
            if loud:
                values.append((loud[0] - speech_end) * 1000)
    finally:
        await rtc.close()
    return values


async def silenced_rtc(base_url: str, runs: int) -> list[float]:
    values = []
    interruption = _to48k(speech_16k("Wait a moment please.", lead_s=0.0, tail_s=0.0))
    for _ in range(runs):
        rtc = RtcClient(base_url)
        try:
            await rtc.connect()
            rtc.send({"type": "say", "text": LONG})
            await rtc.wait_for("tts_start")
            await asyncio.sleep(1.0)
            onset = time.monotonic()
            rtc.mic.say(interruption)
            stop = await rtc.wait_for("barge_in", action="stop", timeout_s=10)
            await asyncio.sleep(0.5)
            # The reply's last loud frame heard after the onset (the answer to the
            # interruption starts after the stop and is not counted).
            loud = [t for t in rtc.heard.loud_after(onset, LOUD) if t < stop["_at"]]
            values.append(((loud[-1] if loud else onset) - onset) * 1000)
        finally:
            await rtc.close()
    return values


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="duplex-bench-orch-"))
    worker = start_worker(
        ["--adapter", "piper", "--default-model", "piper-en-us-joe-medium"], tmp / "w.log"
    )
    orch = start_orchestrator([worker.address], tmp / "o.log")
    results: dict[str, Any] = {}
    try:
        v2v, asr = await voice_to_voice(orch.ws_url, args.runs)
        results["voice_to_voice_ms"] = summary(v2v)
        results["asr_ms"] = summary(asr)
        barge = await barge_in(orch.ws_url, args.runs)
        results["barge_in_ms"] = summary(barge)
        results["overhead_ms"] = summary(await overhead(orch.ws_url, worker.address, args.runs * 2))
        offer_only(["127.0.0.1"])  # this process's aiortc client: loopback only, as the server
        results["heard_ms.ws"] = summary(await heard_ws(orch.ws_url, args.runs))
        results["heard_ms.webrtc"] = summary(await heard_rtc(orch.url, args.runs))
        results["silenced_ms.ws"] = summary(barge)  # the flush event: the page drops its buffer
        results["silenced_ms.webrtc"] = summary(await silenced_rtc(orch.url, args.runs))
    finally:
        orch.stop()
        worker.stop()
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"{'figure':22} {'n':>4} {'p50':>9} {'p95':>9} {'max':>9}  target"]
    for name, fig in results.items():
        verdict = ""
        if name in TARGETS:
            stat, bound = TARGETS[name]
            verdict = f"{stat} < {bound:g}: {'met' if fig[stat] < bound else 'MISSED'}"
        figures = f"{fig['n']:>4} {fig['p50']:>9.1f} {fig['p95']:>9.1f} {fig['max']:>9.1f}"
        lines.append(f"{name:22} {figures}  {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark voice sessions through the orchestrator."
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "orchestrator.json")
    args = parser.parse_args()
    publish(asyncio.run(run(args)), args.out, report)


if __name__ == "__main__":
    main()
