"""Speaking replies for one session: routing, worker sessions, retries, audio out.

Each reply is routed (pure policy over the registry snapshot) to a worker,
spoken over that worker's ``Synthesize`` stream on a cached worker session,
and its frames are handed to the transport. A worker that dies mid-reply is
marked unhealthy and the reply is retried from the start of its text on
another; a worker session the worker ended while idle is reopened.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from duplex_orchestrator import metrics
from duplex_orchestrator.feeds import ReplayableText
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.routing.policy import RouteRequest, route

log = logging.getLogger(__name__)


class SessionIO(Protocol):
    """What a transport gives a session: JSON-able events and 20 ms audio frames out."""

    async def event(self, kind: str, **fields: Any) -> None: ...
    async def audio(self, frame: bytes) -> None: ...


@dataclass(frozen=True)
class _Retry:
    avoid: str | None
    """Worker endpoint to avoid next time; None: the same worker with a fresh session."""


class Speaker:
    def __init__(
        self,
        io: SessionIO,
        registry: Registry,
        model: str,
        session_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._io = io
        self._registry = registry
        self._session_id = session_id
        self._clock = clock
        self.model = model
        """The model the user asked for."""
        self.active_model = model
        """The model actually speaking (a fallback while ``model`` loads)."""
        self._worker_sessions: dict[tuple[str, str], str] = {}

    async def speak(
        self, reply: Reply, text: ReplayableText, speech_ended_at: float | None
    ) -> None:
        """Speak ``text`` to the end (or until stopped), retrying where that makes sense."""
        excluded: set[str] = set()
        started = self._clock()
        for _attempt in range(3):
            retry = await self._speak_once(reply, text, excluded, started, speech_ended_at)
            if retry is None:
                return
            if retry.avoid:
                excluded.add(retry.avoid)  # failed there: retry the turn on another worker

    async def _speak_once(
        self,
        reply: Reply,
        text: ReplayableText,
        excluded: set[str],
        started: float,
        speech_ended_at: float | None,
    ) -> _Retry | None:
        """Speak the reply on one worker; says how to retry when that makes sense."""
        registry = self._registry
        chosen = route(
            registry.snapshot(),
            RouteRequest(self.model, fallback_model=self.active_model, exclude=frozenset(excluded)),
        )
        metrics.ROUTING.labels(
            reason=chosen.reason.split(" ")[0] if chosen.worker else "none"
        ).inc()
        if chosen.worker is None:
            await self.error("no_worker", chosen.reason)
            return None
        if chosen.load_on is not None and registry.ensure_loading(
            chosen.load_on.endpoint, self.model
        ):
            await self._io.event(
                "model", requested=self.model, active=chosen.model_id, loading=True
            )
        endpoint = chosen.worker.endpoint
        client = registry.client(endpoint)
        reused = (endpoint, chosen.model_id) in self._worker_sessions
        try:
            session_id = await self._worker_session(endpoint, chosen.model_id)
            self.active_model = chosen.model_id
            call = client.synthesize(session_id, self._forward_text(reply, text))
            await reply.attach(client, session_id, call)
            frames = 0
            async for frame in call:
                if frames == 0:  # announced with its first frame: a failed attempt says nothing
                    await self._io.event(
                        "tts_start",
                        turn=reply.turn,
                        model=chosen.model_id,
                        worker=chosen.worker.worker_id,
                    )
                    await self._first_frame(reply, started, speech_ended_at)
                frames += 1
                if not reply.paused:
                    await self._io.audio(frame.pcm)
            await self._io.event(
                "tts_end", turn=reply.turn, frames=frames, interrupted=reply.stopped
            )
            return None
        except grpc.aio.AioRpcError as exc:
            if reply.stopped:
                return None
            self._worker_sessions.pop((endpoint, chosen.model_id), None)
            if exc.code() == grpc.StatusCode.NOT_FOUND and reused:
                return _Retry(avoid=None)  # the worker ended our idle session: open a new one
            if exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                registry.mark_unhealthy(endpoint)
                await self.error(
                    "tts_failed",
                    f"TTS worker {endpoint} failed mid-reply ({exc.code().name}); "
                    "retrying elsewhere if possible",
                )
                return _Retry(avoid=endpoint)
            await self.error("tts_failed", exc.details() or exc.code().name)
            return None

    async def _forward_text(self, reply: Reply, text: ReplayableText) -> AsyncIterator[str]:
        index = 0
        async for delta in text.replay():
            if reply.stopped:
                return
            if index >= reply.deltas_shown:  # a retry replays text the client already has
                await self._io.event("reply", turn=reply.turn, text=delta)
                reply.deltas_shown = index + 1
            index += 1
            yield delta

    async def _first_frame(
        self, reply: Reply, started: float, speech_ended_at: float | None
    ) -> None:
        now = self._clock()
        figures: dict[str, float] = {"first_audio_ms": round((now - started) * 1000, 1)}
        metrics.FIRST_AUDIO.observe(now - started)
        if speech_ended_at is not None:
            figures["voice_to_voice_ms"] = round((now - speech_ended_at) * 1000, 1)
            metrics.VOICE_TO_VOICE.observe(now - speech_ended_at)
        await self._io.event("latency", turn=reply.turn, **figures)

    async def _worker_session(self, endpoint: str, model_id: str) -> str:
        key = (endpoint, model_id)
        if key not in self._worker_sessions:
            started = await self._registry.client(endpoint).start_session(model_id)
            self._worker_sessions[key] = started.session_id
        return self._worker_sessions[key]

    async def switch_model(self, model: str) -> None:
        """Use ``model`` from the next turn; load it in the background if it is resident nowhere."""
        self.model = model
        registry = self._registry
        chosen = route(registry.snapshot(), RouteRequest(model, fallback_model=self.active_model))
        loading = chosen.load_on is not None
        if chosen.load_on is not None:
            registry.ensure_loading(chosen.load_on.endpoint, model)
        await self._io.event(
            "model", requested=model, active=chosen.model_id if loading else model, loading=loading
        )

    async def error(self, code: str, message: str) -> None:
        metrics.ERRORS.labels(code=code).inc()
        log.warning(
            "session error",
            extra={"event": "session_error", "session_id": self._session_id, "code": code},
        )
        await self._io.event("error", code=code, message=message)

    async def close(self) -> None:
        """End every worker session this speaker opened."""
        for (endpoint, _model), session_id in self._worker_sessions.items():
            with contextlib.suppress(grpc.aio.AioRpcError, KeyError):
                await self._registry.client(endpoint).end_session(session_id)
        self._worker_sessions.clear()
