"""The WebSocket protocol: JSON control messages and binary PCM, parsed and validated.

Client → server (JSON text frames):
  {"type": "start", "model": "piper-en-us-joe-medium", "sample_rate": 16000}
      opens the session; ``sample_rate`` of the binary audio the client sends
      (8000, 16000, 22050, 24000, 32000, 44100, 48000 or 96000 Hz);
      ``model`` optional (server default); ``turn_detection`` "auto" (default) or
      "manual" (only end_turn ends the user's turn: push to talk).
  {"type": "text", "text": "Hello", "final": false}   stream-TTS: speak text deltas as they arrive
  {"type": "say", "text": "Hello there."}             speak a whole text
  {"type": "user_text", "text": "What's on?"}          the user's turn, typed: the LLM answers it
  {"type": "model", "model": "mock"}                   use another model from the next turn
  {"type": "interrupt"}                                stop the reply now
  {"type": "end_turn"}      the user's turn is over (push-to-talk released): answer it now
  {"type": "clone_start"}   the binary frames that follow are a voice clip (recorded or uploaded)
  {"type": "clone_end"}     the clip is complete: later replies clone its voice where the model can
  {"type": "clone_clear"}   drop the clip: the model's own voice again
  {"type": "ping"}
Client → server (binary frames): 20 ms of PCM16 mono little-endian at the
declared rate per frame (640 bytes at 16 kHz, 1920 at 48 kHz).

Server → client: JSON events ``ready``, ``vad``, ``asr``, ``reply``,
``tts_start``, ``tts_end``, ``barge_in``, ``latency``, ``model``, ``clone``,
``voice``, ``error``, ``pong`` (see the README), and binary frames of 1920 bytes: 20 ms of PCM16 at
48 kHz from the TTS worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from duplex_protocol.text import MAX_ID_CHARS, clean_text, invalid_unicode

ALLOWED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
MAX_TEXT_CHARS = 4000
MAX_MESSAGE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""WebSocket frames past this are refused by the socket itself (close code 1009)."""


class ProtocolError(Exception):
    """A client message the server refuses; sent back as an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


TurnDetection = Literal["auto", "manual"]


@dataclass(frozen=True)
class Start:
    model: str
    sample_rate: int
    turn_detection: TurnDetection = "auto"
    """``auto``: the server ends the user's turns (its judges, the silence); ``manual``:
    only the client's ``end_turn`` does (push to talk), or an utterance's length limit."""


@dataclass(frozen=True)
class Text:
    text: str
    final: bool


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class UserText:
    """The user's turn as text (a chat box, a test): answered as spoken words are."""

    text: str


@dataclass(frozen=True)
class Model:
    model: str


@dataclass(frozen=True)
class Interrupt:
    pass


@dataclass(frozen=True)
class EndTurn:
    """The user's turn is over (a push-to-talk button released, or the client's own VAD
    heard its end): answer it now, not after the silence that ends a turn."""


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class CloneStart:
    pass


@dataclass(frozen=True)
class CloneEnd:
    pass


@dataclass(frozen=True)
class CloneClear:
    pass


Message = (
    Start
    | Text
    | Say
    | UserText
    | Model
    | Interrupt
    | EndTurn
    | Ping
    | CloneStart
    | CloneEnd
    | CloneClear
)


def frame_bytes(sample_rate: int) -> int:
    """Bytes in one 20 ms PCM16 mono frame at ``sample_rate``."""
    return sample_rate // 50 * 2


def parse(raw: str | bytes) -> Message:
    """One client text frame (``bytes`` when the transport leaves decoding to us)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "too_large", f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                "bad_json", f"not valid UTF-8 at byte {exc.start}: text frames must be UTF-8"
            ) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            "bad_json", f"not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise ProtocolError("bad_json", "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ProtocolError("bad_json", f"not acceptable JSON: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if kind == "start":
        rate = data.get("sample_rate", 16000)
        if isinstance(rate, bool) or rate not in ALLOWED_RATES:
            raise ProtocolError(
                "bad_sample_rate",
                f"sample_rate {str(rate)[:20]} not supported; use one of {list(ALLOWED_RATES)}",
            )
        turns = data.get("turn_detection", "auto")
        if turns not in ("auto", "manual"):
            raise ProtocolError(
                "bad_message",
                '\'turn_detection\' must be "auto" (the server ends turns) or "manual" '
                "(only end_turn does)",
            )
        manual = turns == "manual"
        return Start(_str(data, "model", required=False), int(rate), "manual" if manual else "auto")
    if kind == "text":
        final = data.get("final", False)
        if not isinstance(final, bool):
            raise ProtocolError("bad_message", "'final' must be true or false")
        return Text(_text(data), final)
    if kind == "say":
        text = _text(data)
        if not text.strip():
            # an empty `say` used to be answered by a reply of one silent frame
            raise ProtocolError("bad_message", "'text' is empty: there is nothing to say")
        return Say(text)
    if kind == "user_text":
        text = _text(data)
        if not text.strip():
            raise ProtocolError("bad_message", "'text' is empty: there is nothing to answer")
        return UserText(text)
    if kind == "model":
        return Model(_str(data, "model"))
    if kind == "interrupt":
        return Interrupt()
    if kind == "end_turn":
        return EndTurn()
    if kind == "ping":
        return Ping()
    if kind in _CLONE:
        return _CLONE[kind]
    raise ProtocolError(
        "unknown_type",
        f"unknown message type {str(kind)[:40]!r}; expected start, text, say, user_text, "
        "model, interrupt, end_turn, ping, clone_start, clone_end or clone_clear",
    )


_CLONE: dict[str, Message] = {
    "clone_start": CloneStart(),
    "clone_end": CloneEnd(),
    "clone_clear": CloneClear(),
}


def _str(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value):
        raise ProtocolError("bad_message", f"'{key}' must be a non-empty string")
    if len(value) > MAX_ID_CHARS or invalid_unicode(value):
        raise ProtocolError(
            "bad_message", f"'{key}' must be at most {MAX_ID_CHARS} characters of valid Unicode"
        )
    return value


def _text(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_message", "'text' must be a string")
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError(
            "too_large", f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}"
        )
    problem = invalid_unicode(text)
    if problem is not None:
        raise ProtocolError("bad_text", f"{problem}: send text as valid Unicode")
    # Control characters (a NUL breaks Piper) become spaces: nothing is lost for speech.
    return clean_text(text)
