"""TTS adapter families, looked up by name. Heavy families import lazily."""

from __future__ import annotations

import importlib

from duplex_tts.adapters.base import (
    AdapterError,
    FloatArray,
    TextGranularity,
    TTSFamily,
    TTSModel,
    VoiceOptions,
)

# family name → "module:Class"; imported only when a worker serves that family,
# so a mock-only worker never imports onnxruntime and a Piper worker never torch.
FAMILIES: dict[str, str] = {
    "mock": "duplex_tts.adapters.mock:MockFamily",
    "piper": "duplex_tts.adapters.piper:PiperFamily",
}


def get_family(name: str) -> TTSFamily:
    target = FAMILIES.get(name)
    if target is None:
        raise AdapterError(f"unknown adapter family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    module_name, class_name = target.split(":")
    family_cls = getattr(importlib.import_module(module_name), class_name)
    family: TTSFamily = family_cls()
    return family


__all__ = [
    "FAMILIES",
    "AdapterError",
    "FloatArray",
    "TTSFamily",
    "TTSModel",
    "TextGranularity",
    "VoiceOptions",
    "get_family",
]
