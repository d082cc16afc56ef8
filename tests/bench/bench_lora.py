"""Benchmark CSM LoRA voices in process: ``make bench`` (tiny CPU model by default).

Without ``--packs`` it builds the tiny random-weight CSM of the tests and two
LoRA voices on it: the figures then measure duplex's own overhead and peft's
mechanics on a 2-core CPU, not a real model's speed. With ``--packs DIR
--base ID --voices ID ID ...`` and ``--device cuda`` it measures real weights.
Figures, in ms unless named otherwise:

- base_load_ms: the base from its saved folder to a ready model;
- adapter_load_ms / adapter_delete_ms: a LoRA voice added to the resident
  base, and removed again (the base stays);
- first_chunk_ms@same_voice / @other_voice: a one-clause utterance's first
  audio on the voice used just before, and on another voice of the base (no
  switch exists to pay for: every batch row names its adapter);
- batched_x_realtime@N / sequential_x_realtime@N: N sessions on N different
  voices of the base (the base and its adapters in turn), all speaking at
  once: seconds of audio produced per second of wall time, in one batched
  generation per clause round vs one session after another (max_batch 1).

Writes ``bench-results/lora.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

from duplex_tts.adapters import StreamContext, TTSModel, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_csm import CsmFamily, CsmModel
from tests.bench.bench_swap import report
from tests.bench.bench_worker import publish, summary
from tests.bench.torch_profile import torch_profile
from tests.support.worker import ROOT

TEXT = "How are you doing today?"
LONG = "Hello there, how are you today? The quick brown fox jumps. Please call Stella."


async def first_chunk_ms(voice: TTSModel, device: SynthesisScheduler) -> float:
    started = time.perf_counter()
    stream = voice.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))
    stream.push_text(TEXT)
    stream.end_input()
    first = 0.0
    async for _ in stream:
        first = first or (time.perf_counter() - started) * 1000
    await stream.aclose()
    return first


async def throughput(voices: list[TTSModel], device: SynthesisScheduler, rate: int) -> float:
    """Seconds of audio per wall second, every voice speaking ``LONG`` at once."""
    streams = [v.open_stream(StreamContext(VoiceOptions(), device, time.monotonic)) for v in voices]
    started = time.perf_counter()
    for stream in streams:
        stream.push_text(LONG)
        stream.end_input()

    async def drain(stream: Any) -> int:
        samples = sum([int(chunk.size) async for chunk in stream])
        await stream.aclose()
        return samples

    samples = sum(await asyncio.gather(*(drain(s) for s in streams)))
    return samples / rate / (time.perf_counter() - started)


async def run(
    packs: Path,
    base_id: str,
    voice_ids: list[str],
    device_name: str,
    runs: int,
    torch_trace: Path | None = None,
) -> dict[str, Any]:
    catalog = load_catalog(packs).models
    family = CsmFamily()
    device = SynthesisScheduler(1, name=f"device-{device_name}")
    loads: list[float] = []
    adds: list[float] = []
    deletes: list[float] = []
    same: list[float] = []
    other: list[float] = []
    batched: dict[int, list[float]] = {}
    sequential: dict[int, list[float]] = {}
    try:
        for _ in range(runs):
            started = time.perf_counter()
            base = await device.run(
                lambda: family.load(catalog[base_id], device_name, None), deadline=0.0
            )
            loads.append((time.perf_counter() - started) * 1000)
            assert isinstance(base, CsmModel)
            voices: list[TTSModel] = [base]
            for vid in voice_ids:
                started = time.perf_counter()
                voice = await device.run(
                    functools.partial(family.load, catalog[vid], device_name, base), deadline=0.0
                )
                adds.append((time.perf_counter() - started) * 1000)
                voices.append(voice)
            await first_chunk_ms(voices[0], device)  # warm
            same.append(await first_chunk_ms(voices[0], device))
            # Profiled: one utterance on a LoRA voice, the first run only.
            with torch_profile(None if loads[1:] else torch_trace):
                other.append(await first_chunk_ms(voices[1], device))
            for n in sorted({1, 2, len(voices), 2 * len(voices)}):
                chosen = [voices[i % len(voices)] for i in range(n)]
                base.batcher.max_batch = n
                batched.setdefault(n, []).append(
                    await throughput(chosen, device, base.native_sample_rate)
                )
                base.batcher.max_batch = 1
                sequential.setdefault(n, []).append(
                    await throughput(chosen, device, base.native_sample_rate)
                )
            for voice in voices[1:]:
                started = time.perf_counter()
                await device.run(voice.close, deadline=0.0)
                deletes.append((time.perf_counter() - started) * 1000)
            await device.run(base.close, deadline=0.0)
    finally:
        device.shutdown()
    results: dict[str, Any] = {
        "base_load_ms": summary(loads),
        "adapter_load_ms": summary(adds),
        "adapter_delete_ms": summary(deletes),
        "first_chunk_ms@same_voice": summary(same),
        "first_chunk_ms@other_voice": summary(other),
    }
    for n in batched:
        results[f"batched_x_realtime@{n}"] = summary(batched[n])
        results[f"sequential_x_realtime@{n}"] = summary(sequential[n])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packs", type=Path, help="voicepacks root (default: the tiny CSM)")
    parser.add_argument("--base", default="csm-tiny")
    parser.add_argument("--voices", nargs="+", default=["csm-tiny-warm", "csm-tiny-bright"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "lora.json")
    parser.add_argument(
        "--torch-profile",
        type=Path,
        help="torch profiler Chrome trace of one utterance on a LoRA voice, to this file",
    )
    args = parser.parse_args()
    packs = args.packs
    if packs is None:
        from tests.support.tiny_csm import write_csm_pack, write_lora_pack

        packs = Path(tempfile.mkdtemp(prefix="duplex-bench-lora-"))
        write_csm_pack(packs, "csm-tiny", max_frames_per_clause=40)
        for seed, vid in enumerate(args.voices, start=1):
            write_lora_pack(packs, vid, seed=seed, max_frames_per_clause=40)
    results = asyncio.run(
        run(packs, args.base, args.voices, args.device, args.runs, args.torch_profile)
    )
    publish(results, args.out, report)


if __name__ == "__main__":
    main()
