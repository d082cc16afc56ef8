"""What a voice session tells its client: one frozen dataclass per event kind.

The session core emits these; each transport serializes them (the WebSocket
and the WebRTC data channel both send ``to_json(event)``, LiveKit maps them to
its own room events). A field left ``None`` is not sent, so optional figures
do not appear as ``null`` on the wire. The README lists every event.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Ready:
    type: ClassVar[str] = "ready"
    session_id: str
    model: str
    models: list[dict[str, object]]
    sample_rate_in: int
    sample_rate_out: int = 48000
    frame_ms: int = 20
    turn_detection: str = "auto"


@dataclass(frozen=True)
class Pong:
    type: ClassVar[str] = "pong"


@dataclass(frozen=True)
class VadState:
    type: ClassVar[str] = "vad"
    state: str
    """``speech_start`` or ``speech_end``."""


@dataclass(frozen=True)
class BargeIn:
    type: ClassVar[str] = "barge_in"
    action: str
    """``pause`` (drop buffered audio now), ``resume`` (it was noise) or ``stop``."""
    flush: bool | None = None
    """With ``pause``: True, the client drops what it holds; False, a reply that had not
    begun waits while the user speaks (nothing of it was sent)."""


@dataclass(frozen=True)
class Asr:
    type: ClassVar[str] = "asr"
    text: str
    final: bool
    asr_ms: float | None = None
    end_of_turn_ms: float | None = None
    """Final only: the end of speech → the turn judged over (the pause or silence waited)."""


@dataclass(frozen=True)
class ReplyText:
    type: ClassVar[str] = "reply"
    turn: int
    text: str


@dataclass(frozen=True)
class TtsStart:
    type: ClassVar[str] = "tts_start"
    turn: int
    model: str
    worker: str


@dataclass(frozen=True)
class TtsEnd:
    type: ClassVar[str] = "tts_end"
    turn: int
    frames: int
    interrupted: bool
    synthesis_ms: float | None = None
    """The worker's compute time for the whole reply (None: stopped, or not reported)."""


@dataclass(frozen=True)
class Latency:
    type: ClassVar[str] = "latency"
    turn: int
    first_audio_ms: float
    voice_to_voice_ms: float | None = None


@dataclass(frozen=True)
class ModelState:
    type: ClassVar[str] = "model"
    requested: str
    active: str
    loading: bool


@dataclass(frozen=True)
class Error:
    type: ClassVar[str] = "error"
    code: str
    message: str
    retrying: bool | None = None
    """True when the turn goes on elsewhere (another worker tries)."""


@dataclass(frozen=True)
class CloneRecording:
    type: ClassVar[str] = "clone"
    max_s: float
    state: str = "recording"


@dataclass(frozen=True)
class Voice:
    type: ClassVar[str] = "voice"
    cloned: bool
    seconds: float | None = None
    transcript: str | None = None


Event = (
    Ready
    | Pong
    | VadState
    | BargeIn
    | Asr
    | ReplyText
    | TtsStart
    | TtsEnd
    | Latency
    | ModelState
    | Error
    | CloneRecording
    | Voice
)


def to_dict(event: Event) -> dict[str, Any]:
    """The event as the JSON object clients read: ``type`` first, ``None`` fields left out."""
    fields = {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if getattr(event, f.name) is not None
    }
    return {"type": event.type, **fields}


def to_json(event: Event) -> str:
    return json.dumps(to_dict(event))
