"""TTS engine families, discovered through the ``duplex.tts.families`` entry points.

The worker core imports no engine: each family is its own package
(``duplex-tts-piper``, ``duplex-tts-kokoro``, …) that registers its
``TTSFamily`` class under the entry-point group, and is imported only when a
worker serves it. ``mock`` ships with the core for tests.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from duplex_tts.adapters.base import (
    AdapterError,
    ClauseModel,
    ClauseStream,
    Executor,
    ExecutorKind,
    FloatArray,
    StreamContext,
    SynthesisStream,
    TTSFamily,
    TTSModel,
    VoiceOptions,
    default_cache_dir,
)
from duplex_tts.adapters.jobs import JobStream

ENTRY_POINT_GROUP = "duplex.tts.families"


class FamilyNotInstalled(AdapterError):
    """A family no installed package provides."""


def installed_families() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def package_for(family: str) -> str:
    """The distribution that provides ``family`` by convention."""
    return f"duplex-tts-{family}"


def check_installed(families: list[str]) -> None:
    """Raise ``FamilyNotInstalled`` (one line naming the package) for the first missing family."""
    installed = installed_families()
    for name in families:
        if name not in installed:
            raise _not_installed(name, installed)


def get_family(name: str, cache_dir: Path | None = None) -> TTSFamily:
    """Import and instantiate the family registered as ``name``."""
    entry = next((ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name), None)
    if entry is None:
        raise _not_installed(name, installed_families())
    family_cls = entry.load()
    if not (isinstance(family_cls, type) and issubclass(family_cls, TTSFamily)):
        raise AdapterError(f"entry point {entry.value!r} for family {name!r} is not a TTSFamily")
    family: TTSFamily = family_cls(cache_dir)
    return family


def _not_installed(name: str, installed: list[str]) -> FamilyNotInstalled:
    package = package_for(name)
    return FamilyNotInstalled(
        f"TTS family {name!r} is not installed: install the package {package} "
        f"(uv sync --package {package}, or pip install {package}); "
        f"installed families: {', '.join(installed) or 'none'}"
    )


__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterError",
    "ClauseModel",
    "ClauseStream",
    "Executor",
    "ExecutorKind",
    "FamilyNotInstalled",
    "FloatArray",
    "JobStream",
    "StreamContext",
    "SynthesisStream",
    "TTSFamily",
    "TTSModel",
    "VoiceOptions",
    "check_installed",
    "default_cache_dir",
    "get_family",
    "installed_families",
    "package_for",
]
