"""Benchmark a real worker process serving one model (``--model``; Piper by default).

Prints p50/p95 per figure with the issue's target and writes
``bench-results/worker-<family>.json``. Timing bounds live here, never in tests.

Figures (all measured by a gRPC client in this process against a worker subprocess):
- first_audio_final_ms: whole text sent with is_final → first frame received;
- first_audio_stream_ms: first word sent → first frame received, words sent every 40 ms;
- first_audio_stream_from_clause_ms: the same, from the word that completes the first clause;
- rtf: worker-side synthesis time / audio duration per clause, from the adapter in-process;
- pause_to_last_frame_ms: Control(PAUSE) sent → last frame received before the stream holds
  (0 when every frame up to the acknowledged sequence had already arrived);
- pause_ack_ms: Control(PAUSE) round trip (sent → acknowledged with last_sequence);
- jitter_ms@N: per frame |arrival gap - 20 ms| with N concurrent sessions, after the lead,
  plus underruns (audible stalls of a client that plays from the first frame with the
  worker's lead as cushion and waits whenever a frame is late);
- load_warmup_ms: LoadModel round trip on a running worker (load + warm-up);
- memory_mb: the model's memory_bytes as the worker measured it at each of those loads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from tests.support.worker import ROOT, Collector, aiter_chunks, connect, start_worker, text_chunks

PIPER = "piper-en-us-joe-medium"
SHORT = [
    "Hello there.",
    "Sure, I can help with that.",
    "The weather is nice today.",
    "Let me check that for you.",
    "That sounds like a great plan.",
    "Here is what I found.",
]
PARAGRAPH = (
    "Thanks for waiting. I looked at your calendar, and you are free on Tuesday afternoon, "
    "so I booked the meeting room for three o'clock. I also sent a note to the team, "
    "and they will bring the slides."
)
TARGETS = {
    "piper": {
        "first_audio_final_ms": ("p95", 150.0),
        "first_audio_stream_ms": ("p95", 150.0),
        "pause_to_last_frame_ms": ("p95", 10.0),
        "jitter_ms@10": ("p95", 5.0),
        "load_warmup_ms": ("p95", 2500.0),
    },
    # Kokoro-82M on two CPU cores: a short first clause, and no stall at 3 sessions.
    "kokoro": {
        "first_audio_final_ms": ("p95", 400.0),
        "pause_to_last_frame_ms": ("p95", 10.0),
    },
}
NO_UNDERRUNS = {"kokoro": ["jitter_ms@3"]}
CACHE = ROOT / ".cache" / "duplex"


def summary(values: Sequence[float]) -> dict[str, float]:
    data = sorted(values)
    return {
        "n": len(data),
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
        "max": float(data[-1]),
        "mean": float(statistics.fmean(data)),
    }


async def first_audio(
    stub: pb_grpc.TTSAsyncStub, model: str, runs: int, *, word_by_word: bool
) -> tuple[list[float], list[float]]:
    """(first chunk sent → first frame, first-clause chunk sent → first frame), in ms."""
    sid = (await stub.StartSession(pb.StartSessionRequest(model_id=model))).session_id
    from_first, from_clause = [], []
    for i in range(runs):
        text = SHORT[i % len(SHORT)] if not word_by_word else PARAGRAPH
        chunks = text_chunks(sid, text, word_by_word=word_by_word)
        sent_at: list[float] = []
        stopped = asyncio.Event()

        async def paced(
            chunks: list[pb.TextChunk] = chunks,
            sent_at: list[float] = sent_at,
            stopped: asyncio.Event = stopped,
        ) -> AsyncIterator[pb.TextChunk]:
            for chunk in chunks:
                if stopped.is_set():
                    return  # the stream ended at STOP: nothing more may be sent
                sent_at.append(time.monotonic())
                yield chunk
                if word_by_word:
                    await asyncio.sleep(0.04)

        first = None
        async for _frame in stub.Synthesize(paced()):
            if first is None:
                first = time.monotonic()
                if word_by_word:
                    stopped.set()
                    await stub.Control(
                        pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_STOP)
                    )
        assert first is not None
        clause_end = next(
            i for i, c in enumerate(chunks) if c.text.rstrip()[-1:] in ".,!?" or c.is_final
        )
        from_first.append((first - sent_at[0]) * 1000)
        from_clause.append((first - sent_at[clause_end]) * 1000)
    await stub.EndSession(pb.EndSessionRequest(session_id=sid))
    return from_first, from_clause


async def pause_latency(
    stub: pb_grpc.TTSAsyncStub, model: str, runs: int
) -> tuple[list[float], list[float]]:
    """(PAUSE sent → last frame before the hold, PAUSE sent → acknowledged), in ms."""
    sid = (await stub.StartSession(pb.StartSessionRequest(model_id=model))).session_id
    latencies, acks = [], []
    for i in range(runs):
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, PARAGRAPH))))
        await collector.wait_frames(10 + (i % 7) * 5)
        sent = time.monotonic()
        ack = await stub.Control(pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_PAUSE))
        acks.append((time.monotonic() - sent) * 1000)
        await asyncio.sleep(0.3)
        got = collector.got
        held = [
            t
            for f, t in zip(got.frames, got.arrival, strict=True)
            if f.sequence <= ack.last_sequence
        ]
        last_arrival = held[-1] if held else sent
        assert all(f.sequence <= ack.last_sequence for f in got.frames), "frame after PAUSE ack"
        latencies.append(max(0.0, last_arrival - sent) * 1000)
        await stub.Control(pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_STOP))
        await collector.done()
    await stub.EndSession(pb.EndSessionRequest(session_id=sid))
    return latencies, acks


def playout_underruns(arrival: Sequence[float]) -> int:
    """Stalls a client would hear: it plays from the first frame's arrival, a frame every
    20 ms (the worker's lead is its cushion), and when a frame is not there in time it
    waits for it (one audible gap) and plays on from there."""
    stalls = 0
    play_at = arrival[0]
    for t in arrival:
        if t > play_at + 0.001:
            stalls += 1
            play_at = t
        play_at += 0.02
    return stalls


async def jitter(address: str, model: str, sessions: int, lead_s: float) -> dict[str, Any]:
    async def one(stub: pb_grpc.TTSAsyncStub) -> tuple[list[float], int, float]:
        sid = (await stub.StartSession(pb.StartSessionRequest(model_id=model))).session_id
        sent = time.monotonic()
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, PARAGRAPH))))
        got = await collector.done(120)
        await stub.EndSession(pb.EndSessionRequest(session_id=sid))
        arrival = got.arrival
        lead_frames = round(lead_s / 0.02)
        gaps = [
            abs((b - a) - 0.02) * 1000
            for a, b in zip(arrival[lead_frames:], arrival[lead_frames + 1 :], strict=False)
        ]
        underruns = playout_underruns(arrival)
        return gaps, underruns, (arrival[0] - sent) * 1000

    async with connect(address) as stub:
        results = await asyncio.gather(*(one(stub) for _ in range(sessions)))
    gaps = [g for r in results for g in r[0]]
    return {
        "jitter": summary(gaps),
        "underruns": sum(r[1] for r in results),
        "frames": sum(len(r[0]) for r in results),
        "first_audio": summary([r[2] for r in results]),
    }


def family_of(model: str) -> str:
    from duplex_tts.catalog import load_catalog

    return load_catalog(ROOT / "voicepacks").models[model].family


def rtf(model_id: str, runs: int) -> list[float]:
    from duplex_tts.adapters import ClauseModel, VoiceOptions, get_family
    from duplex_tts.catalog import load_catalog

    spec = load_catalog(ROOT / "voicepacks").models[model_id]
    model = get_family(spec.family, cache_dir=CACHE).load(spec, "cpu", None)
    assert isinstance(model, ClauseModel)
    list(model.synthesize_clause("Warm up.", VoiceOptions()))
    values = []
    for i in range(runs):
        text = SHORT[i % len(SHORT)] if i % 2 else PARAGRAPH.split(". ")[i % 3]
        started = time.perf_counter()
        samples = sum(c.size for c in model.synthesize_clause(text, VoiceOptions()))
        values.append((time.perf_counter() - started) / (samples / model.native_sample_rate))
    return values


async def load_warmup(workdir: Path, model: str, runs: int) -> tuple[list[float], list[float]]:
    """(LoadModel round trips in ms, the memory_bytes reported in MB)."""
    worker = start_worker(
        [
            "--adapter",
            f"mock,{family_of(model)}",
            "--default-model",
            "mock",
            "--cache-dir",
            str(CACHE),
        ],
        workdir / "load.log",
    )
    values, memory = [], []
    try:
        async with connect(worker.address) as stub:
            for _ in range(runs):
                started = time.monotonic()
                info = await stub.LoadModel(pb.LoadModelRequest(model_id=model))
                values.append((time.monotonic() - started) * 1000)
                assert info.state == pb.MODEL_STATE_READY
                memory.append(info.memory_bytes / 1e6)
                await stub.UnloadModel(pb.UnloadModelRequest(model_id=model))
    finally:
        worker.stop()
    return values, memory


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="duplex-bench-"))
    lead_ms = 60
    model = args.model
    worker = start_worker(
        [
            *("--adapter", family_of(model), "--default-model", model),
            *("--lead-ms", str(lead_ms), "--cache-dir", str(CACHE)),
        ],
        workdir / "worker.log",
    )
    try:
        async with connect(worker.address) as stub:
            final, _ = await first_audio(stub, model, args.runs, word_by_word=False)
            results["first_audio_final_ms"] = summary(final)
            streamed, from_clause = await first_audio(stub, model, args.runs, word_by_word=True)
            results["first_audio_stream_ms"] = summary(streamed)
            results["first_audio_stream_from_clause_ms"] = summary(from_clause)
            last_frame, acks = await pause_latency(stub, model, args.runs)
            results["pause_to_last_frame_ms"] = summary(last_frame)
            results["pause_ack_ms"] = summary(acks)
        for n in args.sessions:
            measured = await jitter(worker.address, model, n, lead_ms / 1000)
            results[f"jitter_ms@{n}"] = measured["jitter"] | {
                "underruns": measured["underruns"],
                "frames": measured["frames"],
            }
            results[f"first_audio_ms@{n}"] = measured["first_audio"]
    finally:
        worker.stop()
    results["rtf"] = summary(rtf(model, args.runs))
    loads, memory = await load_warmup(workdir, model, args.load_runs)
    results["load_warmup_ms"] = summary(loads)
    results["memory_mb"] = summary(memory)
    return results


def report(results: dict[str, Any], family: str) -> str:
    lines = [f"{family}", f"{'figure':34} {'n':>5} {'p50':>9} {'p95':>9} {'max':>9}  target"]
    for name, fig in results.items():
        target = TARGETS.get(family, {}).get(name)
        verdict = ""
        if target:
            stat, bound = target
            verdict = f"{stat} < {bound:g}: {'met' if fig[stat] < bound else 'MISSED'}"
        if "underruns" in fig:
            verdict += f"  underruns {fig['underruns']}/{fig['frames']}"
            if name in NO_UNDERRUNS.get(family, []):
                verdict += " (target 0: " + ("met)" if fig["underruns"] == 0 else "MISSED)")
        lines.append(
            f"{name:34} {fig['n']:>5} {fig['p50']:>9.3f} {fig['p95']:>9.3f} "
            f"{fig['max']:>9.3f}  {verdict}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=PIPER, help="catalog id of the model to measure")
    parser.add_argument("--runs", type=int, default=30, help="repetitions per latency figure")
    parser.add_argument("--load-runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, nargs="*", default=[1, 3, 10, 16])
    parser.add_argument("--out", type=Path, help="default bench-results/worker-<family>.json")
    args = parser.parse_args()
    family = family_of(args.model)
    out = args.out or ROOT / "bench-results" / f"worker-{family}.json"
    publish(asyncio.run(run(args)), out, lambda results: report(results, family))


def publish(results: dict[str, Any], out: Path, render: Callable[[dict[str, Any]], str]) -> None:
    """Write the JSON results and print the table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(render(results))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
