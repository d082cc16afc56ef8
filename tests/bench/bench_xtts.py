"""Benchmark XTTS-v2 cloning and streaming in process: ``make bench`` (tiny CPU model by default).

Without ``--packs`` it builds the tiny random-weight XTTS of the tests (a
two-layer GPT, but XTTS's real speaker encoder and HiFi-GAN decoder): the
figures then measure duplex's and coqui's mechanics on a 2-core CPU, not the
real model's speed. With ``--packs DIR --model ID --device cuda`` it measures
real weights. Figures, in ms unless named otherwise:

- load_ms: the model from its folder to ready (no warm-up);
- clone_ms: a new 8 s reference clip (48 kHz) to conditioning latents and
  speaker embedding, each run a different clip;
- cached_clone_ms: the same clip again (hash + cache lookup);
- first_chunk_ms: a one-clause utterance's first audio with a cached voice;
- x_realtime: seconds of audio per wall second over that utterance.

Writes ``bench-results/xtts.json``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from duplex_tts.adapters import StreamContext, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_xtts import XttsFamily, XttsModel
from tests.bench.bench_worker import summary
from tests.bench.engine_main import engine_bench_main

TEXT = "How are you doing today?"


def clip(seed: int) -> VoiceOptions:
    audio = np.random.default_rng(seed).standard_normal(8 * 48000).astype(np.float32) * 0.1
    return VoiceOptions(reference_audio=audio, reference_sample_rate=48000)


async def speak(model: XttsModel, options: VoiceOptions, device: SynthesisScheduler) -> list[float]:
    """(first chunk ms, seconds of audio, wall seconds)."""
    started = time.perf_counter()
    stream = model.open_stream(StreamContext(options, device, time.monotonic))
    stream.push_text(TEXT)
    stream.end_input()
    first, samples = 0.0, 0
    async for chunk in stream:
        first = first or (time.perf_counter() - started) * 1000
        samples += chunk.size
    await stream.aclose()
    return [first, samples / model.native_sample_rate, time.perf_counter() - started]


async def run(packs: Path, model_id: str, device_name: str, runs: int) -> dict[str, Any]:
    spec = load_catalog(packs).models[model_id]
    device = SynthesisScheduler(1, name=f"device-{device_name}")
    figures: dict[str, list[float]] = {
        k: [] for k in ("load_ms", "clone_ms", "cached_clone_ms", "first_chunk_ms", "x_realtime")
    }
    try:
        started = time.perf_counter()
        model = await device.run(lambda: XttsFamily().load(spec, device_name, None), deadline=0.0)
        figures["load_ms"].append((time.perf_counter() - started) * 1000)
        assert isinstance(model, XttsModel)
        await speak(model, clip(0), device)  # first calls paid
        for i in range(1, runs + 1):
            options = clip(i)
            for key in ("clone_ms", "cached_clone_ms"):
                started = time.perf_counter()
                await device.run(functools.partial(model.voice_for, options), deadline=0.0)
                figures[key].append((time.perf_counter() - started) * 1000)
            first, audio_s, wall_s = await speak(model, options, device)
            figures["first_chunk_ms"].append(first)
            figures["x_realtime"].append(audio_s / wall_s)
        await device.run(model.close, deadline=0.0)
    finally:
        device.shutdown()
    return {name: summary(values) for name, values in figures.items()}


def main() -> None:
    from tests.support.tiny_xtts import write_xtts_pack

    engine_bench_main(__doc__, "xtts", write_xtts_pack, run)


if __name__ == "__main__":
    main()
