"""Benchmark hot-swapping two real families on one worker with a resident cap of 1: ``make bench``.

One worker serves ``piper,kokoro`` with ``--resident-cap 1 --min-residency-ms 0``;
sessions alternate Piper → Kokoro → Piper …. Each StartSession on the other
voice evicts the resident one, loads and warms the new one. Figures, in ms:

- swap_to_kokoro_ms / swap_to_piper_ms: StartSession round trip that swaps;
- swap_first_audio_ms: StartSession sent → first frame of "Switching voices now."
  (the swap plus the first clause), per swap;
- rss_after_swap_mb@<model>: the worker's resident set size after each swap,
  to show that memory returns when a model is evicted.

Writes ``bench-results/swap.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from duplex_protocol.tts.v1 import tts_pb2 as pb
from tests.bench.bench_worker import CACHE, PIPER, publish, summary
from tests.support.worker import ROOT, connect, speak, start_worker

KOKORO = "kokoro-82m-en-kumo"


async def run(cycles: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="duplex-bench-swap-"))
    worker = start_worker(
        [
            *("--adapter", "piper,kokoro", "--default-model", PIPER, "--resident-cap", "1"),
            *("--min-residency-ms", "0", "--cache-dir", str(CACHE)),
        ],
        workdir / "worker.log",
    )
    swaps: dict[str, list[float]] = {PIPER: [], KOKORO: []}
    first_audio: list[float] = []
    rss: dict[str, list[float]] = {PIPER: [], KOKORO: []}
    try:
        async with connect(worker.address) as stub:
            for model in [KOKORO, PIPER] * cycles:
                started = time.monotonic()
                reply = await stub.StartSession(pb.StartSessionRequest(model_id=model))
                swaps[model].append((time.monotonic() - started) * 1000)
                got = await speak(stub, reply.session_id, "Switching voices now.")
                first_audio.append((got.arrival[0] - started) * 1000)
                await stub.EndSession(pb.EndSessionRequest(session_id=reply.session_id))
                caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
                assert list(caps.resident_models) == [model]
                rss[model].append(caps.memory_bytes / 1e6)
    finally:
        worker.stop()
    return {
        "swap_to_kokoro_ms": summary(swaps[KOKORO]),
        "swap_to_piper_ms": summary(swaps[PIPER]),
        "swap_first_audio_ms": summary(first_audio),
        f"rss_after_swap_mb@{KOKORO}": summary(rss[KOKORO]),
        f"rss_after_swap_mb@{PIPER}": summary(rss[PIPER]),
    }


def report(results: dict[str, Any]) -> str:
    lines = [f"{'figure':40} {'n':>5} {'p50':>9} {'p95':>9} {'max':>9}"]
    for name, fig in results.items():
        lines.append(
            f"{name:40} {fig['n']:>5} {fig['p50']:>9.1f} {fig['p95']:>9.1f} {fig['max']:>9.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=10, help="Piper → Kokoro → Piper round trips")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "swap.json")
    args = parser.parse_args()
    publish(asyncio.run(run(args.cycles)), args.out, report)


if __name__ == "__main__":
    main()
