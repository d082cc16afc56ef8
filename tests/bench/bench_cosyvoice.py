"""Benchmark CosyVoice 2 in process, in its own venv: ``make bench`` (tiny CPU model by default).

Without ``--packs`` it builds the tiny random-weight CosyVoice 2 of the tests
(a two-layer Qwen2, one conformer block, a small HiFT): the figures then
measure duplex's and the runtime's mechanics on a 2-core CPU, not the real
model's speed. With ``--packs DIR --model ID --device cuda`` it measures real
weights. Figures, in ms unless named otherwise:

- load_ms: the model from its folder to ready (no warm-up);
- first_chunk_ms: first audio of a reply whose text is all there at once;
- first_chunk_streamed_ms: first audio when the same text arrives a word every
  50 ms (an LLM's pace), from its first word: CosyVoice starts speaking
  before the text has ended;
- x_realtime: seconds of audio per wall second over the whole reply;
- memory_mb: the weights' tensors (LLM, flow, HiFT).

Writes ``bench-results/cosyvoice.json``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from duplex_tts.adapters import StreamContext, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_cosyvoice import CosyVoiceFamily, CosyVoiceModel
from tests.bench.bench_worker import summary
from tests.bench.engine_main import engine_bench_main

TEXT = "Hello there, how are you doing on this fine and sunny day? I hope all is well."
WORD_GAP_S = 0.05


async def speak(model: CosyVoiceModel, device: SynthesisScheduler, gap_s: float) -> list[float]:
    """(first chunk ms, seconds of audio, wall seconds)."""
    started = time.perf_counter()
    stream = model.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))

    async def feed() -> None:
        for i, word in enumerate(TEXT.split(" ")):
            stream.push_text(("" if i == 0 else " ") + word)
            if gap_s:
                await asyncio.sleep(gap_s)
        stream.end_input()

    feeding = asyncio.create_task(feed())
    first, samples = 0.0, 0
    async for chunk in stream:
        first = first or (time.perf_counter() - started) * 1000
        samples += chunk.size
    await feeding
    await stream.aclose()
    return [first, samples / model.native_sample_rate, time.perf_counter() - started]


async def run(packs: Path, model_id: str, device_name: str, runs: int) -> dict[str, Any]:
    spec = load_catalog(packs).models[model_id]
    device = SynthesisScheduler(1, name=f"device-{device_name}")
    names = ("load_ms", "first_chunk_ms", "first_chunk_streamed_ms", "x_realtime", "memory_mb")
    figures: dict[str, list[float]] = {k: [] for k in names}
    try:
        started = time.perf_counter()
        model = await device.run(
            lambda: CosyVoiceFamily().load(spec, device_name, None), deadline=0.0
        )
        figures["load_ms"].append((time.perf_counter() - started) * 1000)
        assert isinstance(model, CosyVoiceModel)
        figures["memory_mb"].append((model.memory_bytes or 0) / 2**20)
        await speak(model, device, 0.0)  # first calls paid
        for _ in range(runs):
            first, audio_s, wall_s = await speak(model, device, 0.0)
            figures["first_chunk_ms"].append(first)
            figures["x_realtime"].append(audio_s / wall_s)
            first, _, _ = await speak(model, device, WORD_GAP_S)
            figures["first_chunk_streamed_ms"].append(first)
        await device.run(model.close, deadline=0.0)
    finally:
        device.shutdown()
    return {name: summary(values) for name, values in figures.items()}


def main() -> None:
    from tests.support.tiny_cosyvoice import write_cosyvoice_pack

    engine_bench_main(__doc__, "cosyvoice", write_cosyvoice_pack, run)


if __name__ == "__main__":
    main()
