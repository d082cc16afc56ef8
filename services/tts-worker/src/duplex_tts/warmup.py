"""The hidden utterance a model speaks once loaded: first-call costs paid, loudness calibrated."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from duplex_tts.adapters import Executor, StreamContext, TTSModel
from duplex_tts.audio import calibrate_gain
from duplex_tts.catalog import ModelSpec

WARMUP_TEXT = "Hello, this is a short warm up of the voice."
WARMUP_TEXTS = {"ja": "こんにちは、これは声のウォームアップです。"}
"""Per language (the part before '-'), so the gain is calibrated on the model's own speech."""


def warmup_text(spec: ModelSpec) -> str:
    language = spec.languages[0].split("-")[0].lower() if spec.languages else ""
    return str(spec.params.get("warmup_text") or WARMUP_TEXTS.get(language, WARMUP_TEXT))


async def warm_up(model: TTSModel, executor: Executor, text: str) -> float:
    """Run a hidden utterance (first-call costs paid now) and calibrate loudness gain."""
    # A second's slack: live sessions with less audio buffered go first.
    context = StreamContext(model.warmup_options(), executor, lambda: time.monotonic() + 1.0)
    stream = model.open_stream(context)
    try:
        stream.push_text(text)
        stream.end_input()
        chunks = [chunk async for chunk in stream]
    finally:
        await stream.aclose()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return await asyncio.to_thread(calibrate_gain, audio, model.native_sample_rate)
