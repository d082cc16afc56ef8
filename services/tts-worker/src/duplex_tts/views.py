"""Protobuf and Lease views of the model manager's state (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from duplex_protocol.lease import ResidentModel, rfc3339_micro
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.model_types import ModelStatus, State

_STATE = {
    State.AVAILABLE: pb.MODEL_STATE_AVAILABLE,
    State.LOADING: pb.MODEL_STATE_LOADING,
    State.READY: pb.MODEL_STATE_READY,
    State.FAILED: pb.MODEL_STATE_FAILED,
}


def model_info(status: ModelStatus) -> pb.ModelInfo:
    spec = status.spec
    return pb.ModelInfo(
        id=spec.id,
        family=spec.family,
        languages=spec.languages,
        tags=spec.tags,
        state=_STATE[status.state],
        loaded_at_ms=int(status.loaded_at_wall * 1000),
        last_used_ms=int(status.last_used_wall * 1000),
        refs=status.refs,
        pinned=status.pinned,
        load_ms=status.load_ms,
        native_sample_rate=spec.native_sample_rate,
        error=status.error,
        base_model=spec.base_model or "",
        memory_bytes=status.memory_bytes,
        kept=status.kept,
    )


def iso(epoch: float) -> str:
    return rfc3339_micro(datetime.fromtimestamp(epoch, UTC)) if epoch else ""


def resident_models(statuses: list[ModelStatus]) -> list[ResidentModel]:
    """The Lease's ``resident``: the models loaded or loading."""
    return [
        ResidentModel(
            id=s.spec.id,
            state=s.state.value,
            last_used=iso(s.last_used_wall),
            loaded_at=iso(s.loaded_at_wall),
            load_ms=s.load_ms,
            refs=s.refs,
            pinned=s.pinned,
            memory_bytes=s.memory_bytes,
        )
        for s in statuses
        if s.state in (State.READY, State.LOADING)
    ]


def model_memory(statuses: list[ModelStatus]) -> dict[str, int]:
    """GetCapabilities' ``model_memory_bytes``: each ready model's."""
    return {s.spec.id: s.memory_bytes for s in statuses if s.state is State.READY}
