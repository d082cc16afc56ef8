"""Malformed requests are the client's error: INVALID_ARGUMENT, never UNKNOWN.

gRPC decodes a request before any servicer code runs; a message protobuf
refuses (a string field that is not UTF-8, truncated bytes) would surface as
an ``UNKNOWN`` "Unexpected error". This interceptor decodes tolerantly:
unary calls with a bad request answer ``INVALID_ARGUMENT`` before the
servicer sees them; in a request stream the bad message raises
``MalformedRequest`` (a ``TextError``) where the servicer reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from duplex_tts.stream import TextError


class MalformedRequest(TextError):
    """A request message that did not decode."""


class _Undecodable:
    def __init__(self, error: str) -> None:
        self.error = error


def _message(error: str) -> str:
    return f"malformed request: {error} (strings must be UTF-8)"


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return decode


def _unary(behaviour: Any) -> Any:
    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(request.error))
        return await behaviour(request, context)

    return run


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise MalformedRequest(_message(request.error))
        yield request


def _stream_stream(behaviour: Any) -> Any:
    async def run(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for item in behaviour(_checked(requests), context):
            yield item

    return run


def _stream_unary(behaviour: Any) -> Any:
    async def run(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behaviour(_checked(requests), context)

    return run


class TolerantDecoding(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        changes: dict[str, Any] = {"request_deserializer": _tolerant(handler.request_deserializer)}
        if handler.unary_unary is not None:
            changes["unary_unary"] = _unary(handler.unary_unary)
        elif handler.unary_stream is not None:
            changes["unary_stream"] = _unary_stream(handler.unary_stream)
        elif handler.stream_stream is not None:
            changes["stream_stream"] = _stream_stream(handler.stream_stream)
        elif handler.stream_unary is not None:
            changes["stream_unary"] = _stream_unary(handler.stream_unary)
        return handler._replace(**changes)  # type: ignore[attr-defined, no-any-return]


def _unary_stream(behaviour: Any) -> Any:
    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(request.error))
        async for item in behaviour(request, context):
            yield item

    return run
