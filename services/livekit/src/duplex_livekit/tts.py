"""A livekit-agents TTS plugin backed by duplex workers.

Text streams in as the LLM produces it and goes to a worker as it arrives;
the worker's 20 ms frames at 48 kHz come out one by one (``push_frame``, not
re-chunked). Routing, worker sessions, retries on another worker and
deduplicated background loads are duplex's own ``Speaker`` over a duplex
``Registry`` (static addresses, or the Kubernetes Leases). When AgentSession
interrupts a reply it closes the stream: the worker gets STOP and its session
ends, and AgentSession clears its audio output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from duplex_orchestrator.events import Error, Event, ModelState
from duplex_orchestrator.feeds import ReplayableText
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.registry.static import StaticRegistry
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.session import check_model
from duplex_orchestrator.speaker import Speaker

log = logging.getLogger(__name__)
SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960


class DuplexTTS(tts.TTS[None]):
    """Speak with a duplex voice (``model``) on the workers a ``Registry`` knows."""

    def __init__(
        self,
        *,
        model: str = "piper-en-us-joe-medium",
        workers: list[str] | None = None,
        registry: Registry | None = None,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
        )
        if registry is None and not workers:
            raise ValueError("DuplexTTS needs worker addresses (workers=[...]) or a registry")
        self._model = model
        self._active_model = model
        """The model actually speaking: the previous one while ``model`` loads."""
        self._registry = registry or StaticRegistry(workers or [])
        self._poller: asyncio.Task[None] | None = None
        self._known = asyncio.Event()
        """Set once the registry has read its workers (the first reply waits for it)."""

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "duplex"

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def active_model(self) -> str:
        """The model replies speak with now (the previous one while a switch loads)."""
        return self._active_model

    @active_model.setter
    def active_model(self, model: str) -> None:
        self._active_model = model

    def update_options(self, *, model: str) -> None:
        """Speak with another duplex model from the next reply (loaded where needed)."""
        self._model = model

    async def switch_model(self, model: str) -> ModelState:
        """Check ``model``, start loading it where none holds it, speak with it once loaded.

        Replies go on in the active model meanwhile (duplex's model switch);
        an unknown model raises ``ProtocolError`` and changes nothing.
        """
        await self.workers_known()
        check_model(model, self._registry, self._model)
        io = _EventsIO()
        speaker = Speaker(io, self._registry, self._active_model, "livekit-switch")
        await speaker.switch_model(model)
        self._model = model
        state = next(e for e in io.events if isinstance(e, ModelState))
        return state

    def prewarm(self) -> None:
        self._ensure_polling()

    def _ensure_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        try:
            await self._registry.refresh()
        finally:
            self._known.set()
        with contextlib.suppress(NotImplementedError):  # a fixed registry (tests) has no loop
            await self._registry.run()

    async def workers_known(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the registry has read its workers once."""
        self._ensure_polling()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._known.wait(), timeout_s)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return self._synthesize_with_stream(text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> DuplexTTSStream:
        self._ensure_polling()
        return DuplexTTSStream(tts=self, conn_options=conn_options)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._registry.close()


class _EventsIO:
    """Keeps the events a Speaker reports (a model switch outside any reply)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def event(self, event: Event) -> None:
        self.events.append(event)

    async def audio(self, frame: bytes) -> None:
        raise AssertionError("no audio outside a reply")

    async def flush_audio(self) -> None:
        """Nothing is queued outside a reply."""


class _EmitterIO:
    """duplex's SessionIO onto a livekit AudioEmitter: frames out as they come."""

    def __init__(self, emitter: tts.AudioEmitter) -> None:
        self._emitter = emitter
        self.errors: list[Error] = []

    async def event(self, event: Event) -> None:
        if isinstance(event, Error) and not event.retrying:
            self.errors.append(event)

    async def audio(self, frame: bytes) -> None:
        self._emitter.push_frame(
            rtc.AudioFrame(
                data=frame,
                sample_rate=SAMPLE_RATE,
                num_channels=1,
                samples_per_channel=FRAME_SAMPLES,
            )
        )

    async def flush_audio(self) -> None:
        """AgentSession clears its own output on interruption."""


class DuplexTTSStream(tts.SynthesizeStream):
    def __init__(self, *, tts: DuplexTTS, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, conn_options=conn_options)
        self._duplex = tts

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        request_id = uuid.uuid4().hex[:12]
        output_emitter.initialize(
            request_id=request_id,
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            frame_size_ms=20,
            stream=True,
        )
        await self._duplex.workers_known()
        io = _EmitterIO(output_emitter)
        speaker = Speaker(io, self._duplex.registry, self._duplex.model, f"livekit-{request_id}")
        speaker.active_model = self._duplex.active_model  # the fallback while a switch loads
        reply = Reply(1)
        output_emitter.start_segment(segment_id=request_id)
        try:
            await speaker.speak(reply, ReplayableText(self._text()), None)
        except asyncio.CancelledError:
            await reply.stop()  # interrupted: the worker stops generating at once
            raise
        finally:
            self._duplex.active_model = speaker.active_model
            await speaker.close()
        output_emitter.end_segment()
        if io.errors:
            error = io.errors[-1]
            raise APIConnectionError(f"duplex {error.code}: {error.message}", retryable=False)

    async def _text(self) -> AsyncIterator[str]:
        """The input channel's text up to its first flush (one segment per stream)."""
        async for item in self._input_ch:
            if isinstance(item, self._FlushSentinel):
                return
            yield item
