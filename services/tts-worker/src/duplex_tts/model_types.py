"""The model manager's public types: its errors (each maps to one gRPC status code),
a model's state, the read-only status of one catalog entry, and the counted handle
a session holds on a ready model."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from duplex_tts.adapters import Executor, TTSModel
from duplex_tts.catalog import ModelSpec


class ModelError(Exception):
    """Base of the manager's errors; each maps to one gRPC status code."""


class UnknownModel(ModelError):
    pass


class NoCapacity(ModelError):
    pass


class LoadFailed(ModelError):
    pass


class ModelInUse(ModelError):
    pass


class State(enum.Enum):
    AVAILABLE = "available"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelStatus:
    """A read-only view of one catalog entry, for ListModels and logs."""

    spec: ModelSpec
    state: State
    refs: int
    pinned: bool
    loaded_at_wall: float
    last_used_wall: float
    load_ms: int
    error: str
    memory_bytes: int = 0
    kept: bool = False


@dataclass
class ModelHandle:
    """A counted reference to a ready model; release it exactly once."""

    model_id: str
    model: TTSModel
    gain: float
    executor: Executor
    _release: Callable[[str], None] = field(repr=False)
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._release(self.model_id)


__all__ = [
    "LoadFailed",
    "ModelError",
    "ModelHandle",
    "ModelInUse",
    "ModelStatus",
    "NoCapacity",
    "State",
    "UnknownModel",
]
