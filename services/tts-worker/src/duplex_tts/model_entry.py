"""One model's record inside the model manager (``ModelEntry``), and what it reports.

Plain data and its read-only views: the manager (``duplex_tts.manager``) changes it
under its own rules; the eviction policy sees it as a ``Residency``, callers as a
``ModelStatus``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from duplex_tts.adapters import Executor, TTSModel
from duplex_tts.catalog import ModelSpec
from duplex_tts.eviction import Residency
from duplex_tts.model_types import ModelHandle, ModelStatus, State


@dataclass
class ModelEntry:
    spec: ModelSpec
    state: State = State.AVAILABLE
    model: TTSModel | None = None
    gain: float = 1.0
    refs: int = 0
    pinned: bool = False
    kept: bool = False
    executor: Executor | None = None
    device_thread: str = ""
    memory_bytes: int = 0
    loaded_at: float = 0.0
    loaded_at_wall: float = 0.0
    last_used: float = 0.0
    last_used_wall: float = 0.0
    load_ms: int = 0
    error: str = ""
    load_task: asyncio.Task[None] | None = None
    base: ModelHandle | None = None

    @property
    def resident(self) -> bool:
        """Loaded or loading: it counts against the resident cap."""
        return self.state in (State.READY, State.LOADING)

    def residency(self) -> Residency:
        return Residency(
            model_id=self.spec.id,
            loaded_at=self.loaded_at,
            last_used=self.last_used,
            refs=self.refs,
            pinned=self.pinned,
            loading=self.state is State.LOADING,
            kept=self.kept,
        )

    def status(self) -> ModelStatus:
        return ModelStatus(
            spec=self.spec,
            state=self.state,
            refs=self.refs,
            pinned=self.pinned,
            loaded_at_wall=self.loaded_at_wall if self.state is State.READY else 0.0,
            last_used_wall=self.last_used_wall,
            load_ms=self.load_ms if self.resident else 0,
            error=self.error,
            memory_bytes=self.memory_bytes,  # set at load, zeroed at unload
            kept=self.kept,
        )


__all__ = ["ModelEntry"]
