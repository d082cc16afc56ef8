"""A WebSocket client of the orchestrator, used by ``duplex say`` and ``duplex talk``."""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np

from duplex_orchestrator.protocol import MAX_TEXT_CHARS, frame_bytes

RATE_IN = 16_000
QUIET_AFTER_S = 2.0
"""After the WAV, how long ``talk`` listens with no turn open and no reply given before
it gives up: more than the 1 s of silence that ends any turn."""
SETTLED_AFTER_S = 0.5
"""After the WAV and a reply, how long ``talk`` waits with no turn open before it is
done: the VAD's onset is reported ~0.1 s after the sound starts."""


@dataclass
class Conversation:
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    first_audio_at: float | None = None
    ended: bool = False
    """The awaited event came, or (``talk``) every turn was answered (else: timed out,
    or the socket closed first)."""
    nothing_to_answer: bool = False
    """``talk`` stopped because the WAV was over with no reply given and no turn open
    (no speech, or none with words): no reply was coming."""

    def turn_open(self) -> bool:
        """Whether a reply may still come: the user is speaking (speech began and its
        words are not in yet), or words were heard and their reply has not ended."""
        speaking = awaiting_reply = False
        for event in self.events:
            kind = event["type"]
            if kind == "vad" and event.get("state") == "speech_start":
                speaking = True
            elif kind == "asr" and event.get("final"):
                speaking, awaiting_reply = False, bool(str(event.get("text", "")).strip())
            elif kind == "tts_end" and not event.get("interrupted"):
                # A reply the user's speech stopped (a barge-in with words, a turn that
                # went on) is followed by the reply to what they said: that one ends it.
                awaiting_reply = False
            elif kind == "error" and not event.get("retrying"):
                speaking = awaiting_reply = False  # the turn failed: nothing more comes
        return speaking or awaiting_reply

    def replied(self) -> bool:
        return any(
            event["type"] == "tts_end" and not event.get("interrupted") for event in self.events
        )

    def texts(self, kind: str, key: str = "text") -> list[str]:
        """``key`` of every ``kind`` event (for ``asr``: final transcripts only)."""
        return [
            str(e.get(key, ""))
            for e in self.events
            if e["type"] == kind and (kind != "asr" or e.get("final"))
        ]

    def save(self, path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(48_000)
            out.writeframes(bytes(self.audio))


def read_audio_16k(path: Path) -> np.ndarray:
    """An audio file FFmpeg reads (WAV of any sample format, FLAC, MP3, Ogg, ...), its
    first audio stream mixed down to mono and resampled to 16 kHz int16 by PyAV.
    ``ValueError`` says what is wrong with a file that is not one."""
    # PyAV (FFmpeg) comes with faster-whisper and aiortc: no WAV subset of our own.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE_IN)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: holds no audio stream")
            for frame in container.decode(container.streams.audio[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except OSError:  # missing, a folder, not readable: said as the OS says it
        raise
    except av.error.FFmpegError as exc:  # not audio at all, cut short, an unknown codec
        raise ValueError(f"{path}: not an audio file FFmpeg can read ({exc.strerror})") from exc
    data = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if data.size == 0:
        raise ValueError(f"{path}: the file holds no audio")
    return data


def text_pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, each cut after a space
    where there is one; joined, they are ``text``."""
    pieces = []
    while len(text) > size:
        cut = text.rfind(" ", 0, size) + 1 or size
        pieces.append(text[:cut])
        text = text[cut:]
    return [*pieces, text]


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, convo: Conversation, until: str | None, timeout_s: float
) -> None:
    """Collect events and audio until ``until`` (``None``: until cancelled), a failure
    that ends what was awaited, the socket's close or the timeout."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = await ws.receive(timeout=left)
        except TimeoutError:
            break
        if message.type is aiohttp.WSMsgType.BINARY:
            convo.first_audio_at = convo.first_audio_at or time.monotonic()
            convo.audio.extend(message.data)
        elif message.type is aiohttp.WSMsgType.TEXT:
            event = json.loads(message.data)
            convo.events.append(event)
            if event["type"] == until:
                convo.ended = True
                return
            if until is not None and event["type"] == "error" and not event.get("retrying"):
                return  # the turn (or the start) failed: nothing more is coming
        else:
            break


async def say(
    url: str, key: str, text: str, model: str = "", timeout_s: float = 60.0
) -> Conversation:
    """The agent speaks ``text`` as it is; its reply's events and audio."""
    messages: list[dict[str, object]]
    if len(text) <= MAX_TEXT_CHARS:
        messages = [{"type": "say", "text": text}]
    else:  # past one message's limit: the same reply, as a stream of text
        pieces = text_pieces(text, MAX_TEXT_CHARS)
        messages = [
            {"type": "text", "text": piece, "final": i == len(pieces)}
            for i, piece in enumerate(pieces, 1)
        ]
    return await _one_reply(url, key, model, messages, timeout_s)


async def ask(
    url: str, key: str, text: str, model: str = "", timeout_s: float = 60.0
) -> Conversation:
    """``text`` as the user's turn, typed (``user_text``); the answer's events and audio."""
    return await _one_reply(url, key, model, [{"type": "user_text", "text": text}], timeout_s)


async def _one_reply(
    url: str, key: str, model: str, messages: Sequence[Mapping[str, object]], timeout_s: float
) -> Conversation:
    """Start a session, send ``messages``, and collect until the reply's ``tts_end``."""
    convo = Conversation()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=_headers(key)) as ws:
        await ws.send_str(json.dumps({"type": "start", "model": model, "sample_rate": RATE_IN}))
        await _receive(ws, convo, "ready", 30)
        if not convo.ended:
            return convo  # refused (its error is in the events) or not answered
        for message in messages:
            await ws.send_str(json.dumps(message))
        convo.ended = False
        await _receive(ws, convo, "tts_end", timeout_s)
    return convo


async def talk(
    url: str,
    key: str,
    audio16k: np.ndarray,
    model: str = "",
    timeout_s: float = 60.0,
    push_to_talk: bool = False,
) -> Conversation:
    """Stream the audio in real time as if spoken, then silence until every turn in it
    has been answered (``ended``), or until ``QUIET_AFTER_S`` after it with no reply
    given and no turn open (``nothing_to_answer``). A reply the user's speech stops
    (a turn ended too early and continued) does not end it: the turn's reply does.
    ``push_to_talk``: manual turns (the whole audio is one), then ``end_turn`` and no
    more audio (a button let go)."""
    convo = Conversation()
    step = frame_bytes(RATE_IN) // 2
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=_headers(key)) as ws:
        turns = "manual" if push_to_talk else "auto"
        start = {"type": "start", "model": model, "sample_rate": RATE_IN, "turn_detection": turns}
        await ws.send_str(json.dumps(start))
        await _receive(ws, convo, "ready", 30)
        if not convo.ended:
            return convo  # refused (its error is in the events) or not answered
        convo.ended = False
        receiver = asyncio.create_task(_receive(ws, convo, None, timeout_s))
        padded = np.concatenate([audio16k, np.zeros(-len(audio16k) % step, np.int16)])
        started = time.monotonic()
        quiet_since: float | None = None
        frame_index = 0
        while not receiver.done() and time.monotonic() - started < timeout_s:
            chunk: np.ndarray | None = None
            if frame_index * step < len(padded):
                chunk = padded[frame_index * step : (frame_index + 1) * step]
            else:
                if not push_to_talk:
                    chunk = np.zeros(step, np.int16)  # the microphone open while the reply plays
                elif frame_index * step == len(padded):
                    await ws.send_str(json.dumps({"type": "end_turn"}))
                now = time.monotonic()
                if convo.turn_open():
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= (SETTLED_AFTER_S if convo.replied() else QUIET_AFTER_S):
                    convo.ended = convo.replied()
                    convo.nothing_to_answer = not convo.ended
                    break
            if chunk is not None:
                await ws.send_bytes(chunk.astype("<i2").tobytes())
            frame_index += 1
            await asyncio.sleep(max(0.0, started + frame_index * 0.02 - time.monotonic()))
        receiver.cancel()
        await asyncio.wait([receiver])
    return convo
