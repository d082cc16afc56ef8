"""Spoken test input: Piper (or another CPU voice) speaks a sentence, 16 kHz PCM16, in-process.

A voice named ``espeak-ng:VOICE`` (e.g. ``espeak-ng:en-gb-scotland+m2``) is
Debian's ``espeak-ng`` program instead: a formant synthesizer, far from a
human voice and far from Piper's, which the benchmarks add where it is
installed (``make bench`` installs it).

Piper speaks without its generator noise (voicepack params ``noise_scale`` and
``noise_w_scale`` 0), so a test hears the same clip on every run: with the
voice's own noise a sentence sounds a little different each time, and Whisper
base misheard 6 of 30 syntheses of "Please stop talking now." by a word (and
in one CI run by two), which made a word-error bound fail by chance.
"""

from __future__ import annotations

import io
import shutil
import subprocess
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
ESPEAK = "espeak-ng:"
ESPEAK_SPEAKERS = (f"{ESPEAK}en-us+f3", f"{ESPEAK}en-gb-scotland+m2")
"""espeak-ng voices of other kinds: a female US and a male Scottish variant."""


def espeak_speakers() -> tuple[str, ...]:
    """``ESPEAK_SPEAKERS`` where the ``espeak-ng`` program is installed, else none."""
    return ESPEAK_SPEAKERS if shutil.which("espeak-ng") else ()


def _espeak(text: str, voice: str) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "165", "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), "<i2")
    return samples.astype(np.float32) / 32768.0, rate


@cache
def _voice(name: str) -> ClauseModel:
    spec = load_catalog(ROOT / "voicepacks").models[name]
    if spec.family == "piper":
        quiet = {**spec.params, "noise_scale": 0.0, "noise_w_scale": 0.0}
        spec = spec.model_copy(update={"params": quiet})
    model = get_family(spec.family).load(spec, "cpu", None)
    assert isinstance(model, ClauseModel)
    return model


def speech_16k(
    text: str, lead_s: float = 0.5, tail_s: float = 0.2, level: float = 0.6, voice: str = PIPER
) -> np.ndarray:
    """``text`` spoken by ``voice`` at 16 kHz int16, with ``lead_s`` and ``tail_s`` of silence."""
    if voice.startswith(ESPEAK):
        audio, rate = _espeak(text, voice.removeprefix(ESPEAK))
    else:
        model = _voice(voice)
        audio = np.concatenate(list(model.synthesize_clause(text, VoiceOptions())))
        rate = model.native_sample_rate
    audio = soxr.resample(audio, rate, 16000)
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
