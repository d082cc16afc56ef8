"""The gRPC servicer of ``duplex.tts.v1.TTS``: request validation and status codes.

It translates between protobuf messages and the session table, the model
manager and ``Utterance`` streams; all synthesis logic lives there.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import grpc
import numpy as np

from duplex_protocol import FRAME_MS, MAX_TEXT_CHUNK_BYTES, SAMPLE_RATE
from duplex_protocol.lease import WorkerState
from duplex_protocol.text import MAX_ID_CHARS, shown
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from duplex_tts import __version__, metrics
from duplex_tts.adapters import AdapterError, VoiceOptions
from duplex_tts.catalog import Catalog
from duplex_tts.config import WorkerConfig
from duplex_tts.idle import IdleRelease
from duplex_tts.manager import (
    LoadFailed,
    ModelError,
    ModelInUse,
    ModelManager,
    NoCapacity,
    UnknownModel,
)
from duplex_tts.memory import memory_limit_bytes, rss_bytes
from duplex_tts.sessions import Session, SessionTable
from duplex_tts.stream import QueueDepth, TextError, Utterance
from duplex_tts.text_in import read_text
from duplex_tts.views import model_info, model_memory, resident_models

log = logging.getLogger(__name__)

_STATUS = {
    UnknownModel: grpc.StatusCode.NOT_FOUND,
    NoCapacity: grpc.StatusCode.RESOURCE_EXHAUSTED,
    LoadFailed: grpc.StatusCode.FAILED_PRECONDITION,
    ModelInUse: grpc.StatusCode.FAILED_PRECONDITION,
}


async def _abort(
    context: grpc.aio.ServicerContext[object, object], code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")  # abort raises


async def _check_id(
    value: str, field: str, context: grpc.aio.ServicerContext[object, object]
) -> None:
    """Ids are short: refuse a long one without echoing it (status details are metadata)."""
    if len(value) > MAX_ID_CHARS:
        await _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} is {len(value)} characters; the limit is {MAX_ID_CHARS}",
        )


class TTSServicer(pb_grpc.TTSServicer):
    def __init__(
        self,
        config: WorkerConfig,
        manager: ModelManager,
        reload_catalog: Callable[[], Catalog],
    ) -> None:
        self._config = config
        self._manager = manager
        self._reload_catalog = reload_catalog
        self.sessions = SessionTable(config.max_sessions)
        self._queue_depth = QueueDepth()
        self._first_audio_ms: deque[float] = deque(maxlen=200)
        self.idle = IdleRelease(manager.release_memory, config.release_idle_s)
        self.draining = False
        """Shutting down: no new sessions; the Lease says not ready."""

    # ---- sessions ------------------------------------------------------

    async def StartSession(
        self, request: pb.StartSessionRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.StartSessionResponse:
        await _check_id(request.model_id, "model_id", context)
        await _check_id(request.client_tag, "client_tag", context)
        model_id = request.model_id or self._config.default_model
        if self.draining:
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "worker is draining before it stops; start the session on another worker",
            )
        if self.sessions.full:
            await _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"worker is at its session limit ({self._config.max_sessions}); try another worker",
            )
        options = await self._voice_options(request, context)
        try:
            handle = await self._manager.acquire(model_id)
        except ModelError as exc:
            await _abort(context, _STATUS[type(exc)], str(exc))
        try:
            handle.model.check_options(options)
        except BaseException as exc:
            handle.release()  # whatever failed: the model's refcount is given back
            if isinstance(exc, AdapterError):
                await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise
        session = self.sessions.open(handle, options, request.client_tag)
        return pb.StartSessionResponse(
            session_id=session.id,
            model_id=model_id,
            sample_rate=SAMPLE_RATE,
            frame_ms=FRAME_MS,
            native_sample_rate=handle.model.native_sample_rate,
        )

    async def EndSession(
        self, request: pb.EndSessionRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.EndSessionResponse:
        session = await self._session(request.session_id, context)
        self.sessions.end(session.id, reason="client")
        return pb.EndSessionResponse(session_id=session.id, frames_sent=session.frames_sent)

    async def _session(
        self, session_id: str, context: grpc.aio.ServicerContext[object, object]
    ) -> Session:
        await _check_id(session_id, "session_id", context)
        if not session_id:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "session_id is empty; call StartSession first",
            )
        session = self.sessions.get(session_id)
        if session is None:
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"unknown or ended session {shown(session_id)}; start a new one with StartSession",
            )
        return session

    async def _voice_options(
        self, request: pb.StartSessionRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> VoiceOptions:
        reference = None
        if request.reference_audio:
            if len(request.reference_audio) % 2 or request.reference_sample_rate <= 0:
                await _abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "reference_audio must be PCM16 (an even number of bytes) "
                    "with reference_sample_rate > 0",
                )
            pcm = np.frombuffer(request.reference_audio, dtype="<i2")
            reference = (pcm.astype(np.float32) / 32768.0).astype(np.float32)
        return VoiceOptions(
            language=request.language,
            speaker=request.speaker,
            reference_audio=reference,
            reference_sample_rate=request.reference_sample_rate,
            reference_text=request.reference_text,
        )

    # ---- streaming -----------------------------------------------------

    async def Synthesize(
        self,
        request_iterator: AsyncIterator[pb.TextChunk],
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[pb.AudioFrame]:
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "no TextChunk was sent")
        except TextError as exc:  # the first chunk did not decode
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        session = await self._session(first.session_id, context)
        if session.utterance is not None:
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {session.id} already has an open Synthesize stream; "
                "STOP it or wait for is_last",
            )
        handle = session.handle
        utterance = Utterance(
            handle.model,
            handle.model_id,
            handle.gain,
            session.options,
            handle.executor,
            self._queue_depth,
            lead_s=self._config.lead_ms / 1000,
        )
        session.utterance = utterance
        fields = {"session_id": session.id, "model": handle.model_id}
        reader = asyncio.create_task(
            read_text(first, request_iterator, utterance, session.id, self._config.log_text)
        )
        utterance.start()
        self.idle.started()
        finished = vanished = False
        started = time.perf_counter()
        try:
            async for frame in utterance.frames():
                session.frames_sent += 1
                yield pb.AudioFrame(
                    pcm=frame.pcm,
                    sample_rate=SAMPLE_RATE,
                    frame_ms=FRAME_MS,
                    sequence=frame.sequence,
                    is_last=frame.is_last,
                    synthesis_ms=frame.synthesis_s * 1000,
                )
            finished = True
        except (asyncio.CancelledError, GeneratorExit):
            vanished = True  # the client cancelled or disconnected
            raise
        except TextError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ModelError as exc:
            await _abort(context, _STATUS[type(exc)], str(exc))
        except Exception as exc:  # an adapter failure must not take the worker down
            log.exception("synthesis failed", extra={"event": "synthesis_error", **fields})
            await _abort(context, grpc.StatusCode.INTERNAL, f"synthesis failed: {exc}")
        finally:
            self.idle.ended()
            reader.cancel()
            await utterance.close()
            session.utterance = None
            if utterance.first_audio_s is not None:
                self._first_audio_ms.append(utterance.first_audio_s * 1000)
            if vanished and not session.ended:
                # The client vanished mid-stream: free its session and model reference.
                self.sessions.end(session.id, reason="client cancelled stream")
            log.info(
                "utterance ended",
                extra={
                    "event": "utterance_end",
                    **fields,
                    "completed": finished,
                    "seconds": round(time.perf_counter() - started, 3),
                    "first_audio_ms": round((utterance.first_audio_s or 0) * 1000, 1),
                },
            )

    # ---- control -------------------------------------------------------

    async def Control(
        self, request: pb.ControlRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ControlResponse:
        received = time.perf_counter()
        action = request.action
        if action not in pb.ControlAction.values() or action == pb.CONTROL_ACTION_UNSPECIFIED:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown action {action}; use PAUSE, RESUME, STOP or RELOAD",
            )
        metrics.CONTROLS.labels(action=pb.ControlAction.Name(action)).inc()
        if action == pb.CONTROL_ACTION_RELOAD:
            catalog = await asyncio.to_thread(self._reload_catalog)
            self._manager.set_catalog(catalog)
            await self._manager.forget()
            log.info("catalog reloaded", extra={"event": "reload", "models": len(catalog.models)})
            return pb.ControlResponse(action=action, catalog_size=len(catalog.models))
        session = await self._session(request.session_id, context)
        utterance = session.utterance
        last = -1
        if utterance is not None:
            if action == pb.CONTROL_ACTION_PAUSE:
                last = utterance.pause()
                metrics.PAUSE_LATENCY.observe(time.perf_counter() - received)
            elif action == pb.CONTROL_ACTION_RESUME:
                utterance.resume()
                last = utterance.last_sequence
            else:
                last = utterance.stop()
        return pb.ControlResponse(
            session_id=session.id,
            action=action,
            last_sequence=last,
            streaming=utterance is not None,
        )

    # ---- models --------------------------------------------------------

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_info(s) for s in self._manager.statuses()])

    async def LoadModel(
        self, request: pb.LoadModelRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ModelInfo:
        await _check_id(request.model_id, "model_id", context)
        try:
            return model_info(await self._manager.load(request.model_id, pin=request.pin))
        except ModelError as exc:
            await _abort(context, _STATUS[type(exc)], str(exc))

    async def UnloadModel(
        self, request: pb.UnloadModelRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ModelInfo:
        await _check_id(request.model_id, "model_id", context)
        try:
            return model_info(await self._manager.unload(request.model_id))
        except ModelError as exc:
            await _abort(context, _STATUS[type(exc)], str(exc))

    async def GetCapabilities(
        self, request: pb.GetCapabilitiesRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.Capabilities:
        cfg = self._config
        return pb.Capabilities(
            worker_id=cfg.worker_id,
            families=cfg.adapters,
            device=cfg.device,
            sample_rate=SAMPLE_RATE,
            frame_ms=FRAME_MS,
            max_text_chunk_bytes=MAX_TEXT_CHUNK_BYTES,
            max_sessions=cfg.max_sessions,
            active_sessions=len(self.sessions),
            queue_depth=self._queue_depth.value,
            p50_first_audio_ms=self._p50_first_audio_ms(),
            resident_models=self._manager.resident_ids(),
            default_model=cfg.default_model,
            resident_cap=cfg.resident_cap,
            memory_bytes=rss_bytes(),
            version=__version__,
            model_memory_bytes=model_memory(self._manager.statuses()),
            memory_limit_bytes=memory_limit_bytes(),
        )

    def worker_state(self) -> WorkerState:
        """What this worker publishes in its Lease (the same facts as GetCapabilities)."""
        cfg = self._config
        statuses = self._manager.statuses()
        return WorkerState(
            families=list(cfg.adapters),
            device=cfg.device,
            models=[s.spec.id for s in statuses],
            languages={s.spec.id: list(s.spec.languages) for s in statuses},
            model_families={s.spec.id: s.spec.family for s in statuses},
            resident=resident_models(statuses),
            queue_depth=self._queue_depth.value,
            active_sessions=len(self.sessions),
            max_sessions=cfg.max_sessions,
            p50_first_audio_ms=self._p50_first_audio_ms(),
            memory_bytes=rss_bytes(),
            memory_limit_bytes=memory_limit_bytes(),
            resident_cap=cfg.resident_cap,
            ready=not self.draining,
        )

    def _p50_first_audio_ms(self) -> float:
        return statistics.median(self._first_audio_ms) if self._first_audio_ms else 0.0

    def end_idle_sessions(self) -> None:
        for session_id in self.sessions.idle(self._config.session_idle_timeout_s):
            self.sessions.end(session_id, reason="idle timeout")
