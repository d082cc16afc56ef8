"""Open sessions: each holds one model reference from StartSession to its end."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from duplex_tts import metrics
from duplex_tts.adapters import VoiceOptions
from duplex_tts.manager import ModelHandle
from duplex_tts.stream import Utterance

log = logging.getLogger(__name__)


@dataclass
class Session:
    id: str
    handle: ModelHandle
    options: VoiceOptions
    last_activity: float
    client_tag: str = ""
    utterance: Utterance | None = None
    frames_sent: int = 0
    ended: bool = field(default=False)


class SessionTable:
    def __init__(self, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, Session] = {}
        self._max = max_sessions
        self._clock = clock
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._sessions)

    async def emptied(self) -> None:
        """Returns once no session is open."""
        await self._empty.wait()

    @property
    def full(self) -> bool:
        return len(self._sessions) >= self._max

    def open(self, handle: ModelHandle, options: VoiceOptions, client_tag: str = "") -> Session:
        session = Session(
            id=uuid.uuid4().hex,
            handle=handle,
            options=options,
            last_activity=self._clock(),
            client_tag=client_tag,
        )
        self._sessions[session.id] = session
        self._empty.clear()
        metrics.ACTIVE_SESSIONS.set(len(self._sessions))
        log.info(
            "session started",
            extra={
                "event": "session_start",
                "session_id": session.id,
                "model": handle.model_id,
                "client_tag": client_tag,
            },
        )
        return session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_activity = self._clock()
        return session

    def end(self, session_id: str, reason: str) -> Session | None:
        """Forget the session, stop its utterance and release its model reference."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return None
        session.ended = True
        if session.utterance is not None:
            session.utterance.stop()
        session.handle.release()
        if not self._sessions:
            self._empty.set()
        metrics.ACTIVE_SESSIONS.set(len(self._sessions))
        log.info(
            "session ended",
            extra={
                "event": "session_end",
                "session_id": session_id,
                "reason": reason,
                "frames_sent": session.frames_sent,
            },
        )
        return session

    def idle(self, timeout_s: float) -> list[str]:
        """Sessions with no open stream and no activity for ``timeout_s``."""
        now = self._clock()
        return [
            s.id
            for s in self._sessions.values()
            if s.utterance is None and now - s.last_activity >= timeout_s
        ]

    def end_all(self, reason: str) -> None:
        for session_id in list(self._sessions):
            self.end(session_id, reason)
