"""gRPC client of a TTS worker (duplex.tts.v1): one channel per worker, shared by sessions.

Every call has a deadline. The channel's reconnect backoff is capped (by the
registry's poll interval) so that a worker restarted after a long outage is
tried again within one interval, not after gRPC's default two minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from duplex_orchestrator.clone import VoiceReference
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from duplex_protocol.wire import WireSecurity

ControlAction: TypeAlias = pb.ControlAction.ValueType
PAUSE, RESUME, STOP = pb.CONTROL_ACTION_PAUSE, pb.CONTROL_ACTION_RESUME, pb.CONTROL_ACTION_STOP


class WorkerClient:
    def __init__(
        self,
        endpoint: str,
        *,
        security: WireSecurity | None = None,
        rpc_timeout_s: float = 2.0,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.endpoint = endpoint
        security = security or WireSecurity()
        backoff_ms = max(100, int(max_backoff_s * 1000))
        self._channel = security.channel(
            endpoint,
            [
                ("grpc.initial_reconnect_backoff_ms", min(1000, backoff_ms)),
                ("grpc.min_reconnect_backoff_ms", min(1000, backoff_ms)),
                ("grpc.max_reconnect_backoff_ms", backoff_ms),
            ],
        )
        self.stub = pb_grpc.TTSStub(self._channel)
        self._timeout = rpc_timeout_s
        self._metadata = security.metadata

    async def start_session(
        self,
        model_id: str,
        load_timeout_s: float = 120.0,
        reference: VoiceReference | None = None,
    ) -> pb.StartSessionResponse:
        """``load_timeout_s``: the model may have to load first; pass less when it is resident.

        ``reference``: the session's voice clip, for families that clone (others ignore it).
        """
        request = pb.StartSessionRequest(model_id=model_id)
        if reference is not None:
            request.reference_audio = reference.pcm
            request.reference_sample_rate = reference.sample_rate
            request.reference_text = reference.text
        return await self.stub.StartSession(
            request,
            timeout=load_timeout_s,
            metadata=self._metadata,
        )

    def synthesize(
        self, session_id: str, text: AsyncIterator[str]
    ) -> grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame]:
        async def chunks() -> AsyncIterator[pb.TextChunk]:
            async for delta in text:
                yield pb.TextChunk(session_id=session_id, text=delta)
            yield pb.TextChunk(session_id=session_id, text="", is_final=True)

        return self.stub.Synthesize(chunks(), metadata=self._metadata)

    async def control(self, session_id: str, action: ControlAction) -> pb.ControlResponse:
        # Short: a barge-in waits on it, and a hung worker must not hold the session.
        return await self.stub.Control(
            pb.ControlRequest(session_id=session_id, action=action),
            timeout=min(1.0, self._timeout),
            metadata=self._metadata,
        )

    async def end_session(self, session_id: str) -> None:
        await self.stub.EndSession(
            pb.EndSessionRequest(session_id=session_id),
            timeout=self._timeout,
            metadata=self._metadata,
        )

    async def capabilities(self, timeout_s: float | None = None) -> pb.Capabilities:
        return await self.stub.GetCapabilities(
            pb.GetCapabilitiesRequest(),
            timeout=timeout_s or self._timeout,
            metadata=self._metadata,
        )

    async def list_models(self) -> list[pb.ModelInfo]:
        return list(
            (
                await self.stub.ListModels(
                    pb.ListModelsRequest(), timeout=self._timeout, metadata=self._metadata
                )
            ).models
        )

    async def load_model(self, model_id: str, timeout_s: float = 300.0) -> pb.ModelInfo:
        return await self.stub.LoadModel(
            pb.LoadModelRequest(model_id=model_id), timeout=timeout_s, metadata=self._metadata
        )

    async def close(self) -> None:
        await self._channel.close()
