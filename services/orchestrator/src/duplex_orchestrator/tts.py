"""gRPC client of a TTS worker (duplex.tts.v1): one channel per worker, shared by sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc

ControlAction: TypeAlias = pb.ControlAction.ValueType
PAUSE, RESUME, STOP = pb.CONTROL_ACTION_PAUSE, pb.CONTROL_ACTION_RESUME, pb.CONTROL_ACTION_STOP


class WorkerClient:
    def __init__(self, endpoint: str, rpc_timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self._channel = grpc.aio.insecure_channel(endpoint)
        self.stub = pb_grpc.TTSStub(self._channel)
        self._timeout = rpc_timeout_s

    async def start_session(
        self, model_id: str, load_timeout_s: float = 120.0
    ) -> pb.StartSessionResponse:
        return await self.stub.StartSession(
            pb.StartSessionRequest(model_id=model_id), timeout=load_timeout_s
        )

    def synthesize(
        self, session_id: str, text: AsyncIterator[str]
    ) -> grpc.aio.StreamStreamCall[pb.TextChunk, pb.AudioFrame]:
        async def chunks() -> AsyncIterator[pb.TextChunk]:
            async for delta in text:
                yield pb.TextChunk(session_id=session_id, text=delta)
            yield pb.TextChunk(session_id=session_id, text="", is_final=True)

        return self.stub.Synthesize(chunks())

    async def control(self, session_id: str, action: ControlAction) -> pb.ControlResponse:
        return await self.stub.Control(
            pb.ControlRequest(session_id=session_id, action=action), timeout=self._timeout
        )

    async def end_session(self, session_id: str) -> None:
        await self.stub.EndSession(
            pb.EndSessionRequest(session_id=session_id), timeout=self._timeout
        )

    async def capabilities(self) -> pb.Capabilities:
        return await self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=self._timeout)

    async def list_models(self) -> list[pb.ModelInfo]:
        return list(
            (await self.stub.ListModels(pb.ListModelsRequest(), timeout=self._timeout)).models
        )

    async def load_model(self, model_id: str, timeout_s: float = 300.0) -> pb.ModelInfo:
        return await self.stub.LoadModel(pb.LoadModelRequest(model_id=model_id), timeout=timeout_s)

    async def close(self) -> None:
        await self._channel.close()
