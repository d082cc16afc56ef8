"""Speaking replies for one session: routing, worker sessions, retries, audio out.

Each reply is routed (pure policy over the registry snapshot) to a worker and
spoken over a worker session opened for that reply alone: every way out of a
reply ends the session it opened, so nothing is left holding a worker's
session slots, and a session dies with the stream (and the connection) that
used it. A worker that fails mid-reply, or goes silent and does not answer a
probe (a hung process), is marked unhealthy and the reply is retried from the
start of its text on another worker; the client always gets ``tts_end`` or an
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from duplex_orchestrator import metrics
from duplex_orchestrator.clone import VoiceReference
from duplex_orchestrator.events import Error, Latency, ModelState, ReplyText, TtsEnd, TtsStart
from duplex_orchestrator.feeds import ReplayableText
from duplex_orchestrator.llm import LLMError, text_failure
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.routing.policy import RouteRequest, WorkerView, route
from duplex_orchestrator.tts import WorkerClient
from duplex_protocol.text import clean_text
from duplex_protocol.tts.v1 import tts_pb2 as pb

if TYPE_CHECKING:
    from duplex_orchestrator.session import SessionIO

log = logging.getLogger(__name__)
MAX_REPLY_CHARS = 20_000
"""Most text one reply may speak (the worker's limit per utterance)."""
RESIDENT_START_TIMEOUT_S = 5.0
"""StartSession deadline when the model is resident (no load to wait for)."""
_FAILOVER = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


class WorkerStalled(Exception):
    """A reply stream went silent and its worker did not answer a probe."""


@dataclass(frozen=True)
class _Retry:
    avoid: str
    """Worker id not to use again this turn (routing compares worker ids)."""


class Speaker:
    def __init__(
        self,
        io: SessionIO,
        registry: Registry,
        model: str,
        session_id: str,
        clock: Callable[[], float] = time.monotonic,
        *,
        stall_s: float = 0.5,
        probe_timeout_s: float = 0.75,
    ) -> None:
        self._io = io
        self._registry = registry
        self._session_id = session_id
        self._clock = clock
        self._stall_s = stall_s
        self._probe_timeout_s = probe_timeout_s
        self.model = model
        """The model the user asked for."""
        self.active_model = model
        """The model actually speaking (a fallback while ``model`` loads)."""
        self.reference: VoiceReference | None = None
        """The session's voice clip, sent with every worker session (cloning families)."""
        self._endings: set[asyncio.Task[None]] = set()

    async def speak(
        self, reply: Reply, text: ReplayableText, speech_ended_at: float | None
    ) -> None:
        """Speak ``text`` to the end (or until stopped), retrying on other workers.

        Its text is shown from its first sound on (``Reply.first_sound``): a reply
        withdrawn unheard shows none; one that could make no sound shows it at the end.
        """
        excluded: set[str] = set()
        started = self._clock()
        try:
            for _attempt in range(3):
                retry = await self._speak_once(reply, text, excluded, started, speech_ended_at)
                if retry is None:
                    return
                excluded.add(retry.avoid)  # failed there: retry the turn on another worker
            await self.error("tts_failed", "the reply failed on three workers; giving up")
        finally:
            if not reply.stopped and reply.unshown:
                with contextlib.suppress(Exception):  # the client may be gone
                    await self._show_kept(reply)

    async def _speak_once(
        self,
        reply: Reply,
        text: ReplayableText,
        excluded: set[str],
        started: float,
        speech_ended_at: float | None,
    ) -> _Retry | None:
        """Speak the reply on one worker; says where not to retry when that makes sense."""
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
            await self._io.event(ModelState(self.model, chosen.model_id, loading=True))
        worker = chosen.worker
        client = registry.client(worker.endpoint)
        resident = chosen.model_id in worker.resident
        session_id = ""
        call: grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame] | None = None
        frames = 0
        synthesis_ms: float | None = None
        try:
            opened = await client.start_session(
                chosen.model_id,
                load_timeout_s=RESIDENT_START_TIMEOUT_S if resident else 120.0,
                reference=self.reference,
            )
            session_id = opened.session_id
            self.active_model = chosen.model_id
            call = client.synthesize(session_id, self._forward_text(reply, text))
            await reply.attach(client, session_id, call)
            async for frame in self._watched(call, client):
                if frames == 0:  # announced with its first frame: a failed attempt says nothing
                    if await reply.first_sound():
                        outcome = "withdrawn" if reply.stopped else "spoke"
                        metrics.REPLY_HOLDS.labels(outcome=outcome).inc()
                    await reply.unpaused()  # the user spoke before it sounded
                    if reply.stopped:  # withdrawn while held: not a sound of it went out
                        break
                    await self._show_kept(reply)
                    await self._io.event(TtsStart(reply.turn, chosen.model_id, worker.worker_id))
                    await self._first_frame(reply, started, speech_ended_at)
                frames += 1
                if frame.is_last and frame.synthesis_ms > 0:
                    synthesis_ms = round(frame.synthesis_ms, 1)
                for pcm in reply.frames_for_client(frame.pcm):
                    await self._io.audio(pcm)
            for pcm in reply.frames_left():
                await self._io.audio(pcm)
            await self._io.event(
                TtsEnd(reply.turn, frames, interrupted=reply.stopped, synthesis_ms=synthesis_ms)
            )
            if reply.text_error is not None:
                raise reply.text_error
            return None
        except WorkerStalled:
            return await self._fail_over(worker, "stopped responding mid-reply")
        except grpc.aio.AioRpcError as exc:
            if reply.stopped:
                await self._io.event(TtsEnd(reply.turn, frames, interrupted=True))
                return None
            if exc.code() in _FAILOVER:
                return await self._fail_over(worker, f"failed mid-reply ({exc.code().name})")
            await self.error("tts_failed", exc.details() or exc.code().name)
            return None
        finally:
            if call is not None and not call.done():
                call.cancel()
            if session_id:
                self._end_later(client, session_id)

    async def _fail_over(self, worker: WorkerView, what: str) -> _Retry:
        """Skip this worker from now on and retry the turn elsewhere (the client is told)."""
        self._registry.mark_unhealthy(worker.endpoint)
        await self.error(
            "tts_failed",
            f"TTS worker {worker.worker_id} {what}; retrying elsewhere if possible",
            retrying=True,
        )
        return _Retry(avoid=worker.worker_id)

    async def _watched(
        self,
        call: grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame],
        client: WorkerClient,
    ) -> AsyncIterator[pb.AudioFrame]:
        """The call's frames; raises WorkerStalled when it goes silent and its worker too.

        Silence alone is no failure (the text may be slow to come, the reply
        paused, a clause long to synthesize): a worker that answers a probe is
        alive and is waited for. A stopped process answers nothing.
        """
        frames = call.__aiter__()
        while True:
            next_frame = asyncio.ensure_future(anext(frames))
            try:
                while not (await asyncio.wait({next_frame}, timeout=self._stall_s))[0]:
                    if not await self._answers(client):
                        raise WorkerStalled
                frame = next_frame.result()
            except StopAsyncIteration:
                return
            finally:
                if not next_frame.done():
                    next_frame.cancel()
            yield frame

    async def _answers(self, client: WorkerClient) -> bool:
        try:
            await client.capabilities(timeout_s=self._probe_timeout_s)
        except grpc.aio.AioRpcError as exc:
            return exc.code() not in _FAILOVER
        return True

    def _end_later(self, client: WorkerClient, session_id: str) -> None:
        """End a worker session without holding up the reply (its deadline bounds it)."""

        async def end() -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await client.end_session(session_id)

        task = asyncio.create_task(end())
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def _forward_text(self, reply: Reply, text: ReplayableText) -> AsyncIterator[str]:
        try:
            async for delta in self._checked_text(reply, text):
                yield delta
        except Exception as exc:
            # The text source (the LLM) failed, not the worker: end the text here so the
            # worker speaks what it has, and fail the turn with that error afterwards
            # (raised into gRPC's request iterator, it would cancel the call and the
            # worker would be blamed, marked unhealthy and the turn retried elsewhere).
            reply.text_error = exc if isinstance(exc, LLMError) else text_failure(exc)

    async def _checked_text(self, reply: Reply, text: ReplayableText) -> AsyncIterator[str]:
        index = chars = 0
        async for delta in text.replay():
            if reply.stopped:
                return
            delta = clean_text(delta)  # the LLM's text too: no NUL, no lone surrogate
            chars += len(delta)
            if chars > MAX_REPLY_CHARS:
                if index >= reply.deltas_shown:
                    reply.deltas_shown = index + 1
                    await self.error(
                        "too_large",
                        f"the reply passed {MAX_REPLY_CHARS} characters; the rest is not spoken",
                    )
                return
            if index >= reply.deltas_shown:  # a retry replays text the client already has
                reply.deltas_shown = index + 1
                if reply.sounding:
                    await self._io.event(ReplyText(reply.turn, delta))
                else:
                    reply.unshown.append(delta)
            index += 1
            yield delta

    async def _show_kept(self, reply: Reply) -> None:
        """Show the text kept back until the reply's first sound; from now on, as it comes."""
        while reply.unshown:
            await self._io.event(ReplyText(reply.turn, reply.unshown.pop(0)))
        reply.sounding = True

    async def _first_frame(
        self, reply: Reply, started: float, speech_ended_at: float | None
    ) -> None:
        now = self._clock()
        voice_to_voice_ms = None
        metrics.FIRST_AUDIO.observe(now - started)
        if speech_ended_at is not None:
            voice_to_voice_ms = round((now - speech_ended_at) * 1000, 1)
            metrics.VOICE_TO_VOICE.observe(now - speech_ended_at)
        first_audio_ms = round((now - started) * 1000, 1)
        await self._io.event(Latency(reply.turn, first_audio_ms, voice_to_voice_ms))

    async def switch_model(self, model: str) -> None:
        """Use ``model`` from the next turn; load it in the background if it is resident nowhere."""
        self.model = model
        registry = self._registry
        chosen = route(registry.snapshot(), RouteRequest(model, fallback_model=self.active_model))
        loading = chosen.load_on is not None
        if chosen.load_on is not None:
            registry.ensure_loading(chosen.load_on.endpoint, model)
        active = chosen.model_id if loading else model
        await self._io.event(ModelState(model, active, loading))

    async def error(self, code: str, message: str, *, retrying: bool = False) -> None:
        """Tell the client; ``retrying``: the turn goes on (another worker tries)."""
        metrics.ERRORS.labels(code=code).inc()
        log.warning(
            "session error",
            extra={"event": "session_error", "session_id": self._session_id, "code": code},
        )
        await self._io.event(Error(code, message, retrying=True if retrying else None))

    async def close(self) -> None:
        """Wait (bounded by their deadlines) for the worker sessions being ended."""
        if self._endings:
            await asyncio.wait(list(self._endings))
