"""Spoken test input: Piper (or another CPU voice) speaks a sentence, 16 kHz PCM16, in-process."""

from __future__ import annotations

import wave
from functools import cache
from pathlib import Path

import numpy as np
import soxr

from duplex_tts.adapters import ClauseModel, VoiceOptions, get_family
from duplex_tts.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]


PIPER = "piper-en-us-joe-medium"
SPEAKERS = (PIPER, "kokoro-82m-en-kumo", "kokoro-82m-en-alpha")
"""Voices of different families and speakers that speak English on the CPU."""


@cache
def _voice(name: str) -> ClauseModel:
    spec = load_catalog(ROOT / "voicepacks").models[name]
    model = get_family(spec.family).load(spec, "cpu", None)
    assert isinstance(model, ClauseModel)
    return model


def speech_16k(
    text: str, lead_s: float = 0.5, tail_s: float = 0.2, level: float = 0.6, voice: str = PIPER
) -> np.ndarray:
    """``text`` spoken by ``voice`` at 16 kHz int16, with ``lead_s`` and ``tail_s`` of silence."""
    model = _voice(voice)
    audio = np.concatenate(list(model.synthesize_clause(text, VoiceOptions())))
    audio = soxr.resample(audio, model.native_sample_rate, 16000)
    audio = audio / max(1e-6, float(np.abs(audio).max())) * level
    silence = np.zeros
    out = np.concatenate([silence(int(lead_s * 16000)), audio, silence(int(tail_s * 16000))])
    return (out * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path
