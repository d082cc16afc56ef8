"""Whisper for tests: the orchestrator's assembled base model, cached per test run."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

import numpy as np
import soxr

from duplex_orchestrator.asr import Transcriber, assemble_whisper_base

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(os.environ.get("DUPLEX_CACHE", ROOT / ".cache")) / "whisper-base"


@cache
def whisper() -> Transcriber:
    # Whisper's own 30 s window: tests judge what a voice said, so they take the most
    # accurate reading (the fitted window flips a word more often; bench_asr measures it).
    return Transcriber(assemble_whisper_base(DEFAULT_DIR), window_step_s=0.0)


def transcribe(pcm16: bytes, sample_rate: int) -> str:
    audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    audio16k = soxr.resample(audio, sample_rate, 16000).astype(np.float32)
    # Half a second of silence first, as a listener has: Whisper sometimes mishears a word
    # that starts on the very first sample ("Streaming" as "It's reaming").
    lead_in = np.zeros(8000, dtype=np.float32)
    return whisper().transcribe(np.concatenate([lead_in, audio16k])).text


if __name__ == "__main__":
    print(assemble_whisper_base(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR))
