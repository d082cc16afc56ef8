"""Hostile input and access control against real worker processes.

Every bad request gets INVALID_ARGUMENT with a short message (never UNKNOWN,
never an echo of unbounded input); text a model cannot take is cleaned before
it reaches the model; a worker with a token or mutual TLS refuses strangers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import trustme

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.wire import WireSecurity
from tests.support.worker import (
    WorkerProcess,
    aiter_chunks,
    connect,
    speak,
    start_worker,
    text_chunks,
)

Factory = Callable[..., WorkerProcess]
BAD_UTF8 = b"\x0a\x04\xff\xfe\xfd\xfc"  # field 1 (a string) holding bytes that are not UTF-8


async def _failure(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code(), err.value.details() or ""


async def _raw_stream(channel: grpc.aio.Channel, messages: list[bytes]) -> None:
    call = channel.stream_stream(
        "/duplex.tts.v1.TTS/Synthesize",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )

    async def requests() -> AsyncIterator[bytes]:
        for message in messages:
            yield message

    async for _ in call(requests()):
        pass


async def test_malformed_requests_get_invalid_argument_and_short_messages(
    mock_worker: WorkerProcess,
) -> None:
    async with grpc.aio.insecure_channel(mock_worker.address) as channel:
        end = channel.unary_unary(
            "/duplex.tts.v1.TTS/EndSession",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        code, message = await _failure(end(BAD_UTF8))
        assert (code, "malformed request" in message) == (grpc.StatusCode.INVALID_ARGUMENT, True)
        code, message = await _failure(_raw_stream(channel, [BAD_UTF8]))
        assert (code, "malformed request" in message) == (grpc.StatusCode.INVALID_ARGUMENT, True)

    async with connect(mock_worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        good_first = pb.TextChunk(session_id=sid, text="Hello there, ").SerializeToString()
        async with grpc.aio.insecure_channel(mock_worker.address) as channel:
            code, _ = await _failure(_raw_stream(channel, [good_first, BAD_UTF8]))
        assert code == grpc.StatusCode.INVALID_ARGUMENT

        code, message = await _failure(stub.Control(pb.ControlRequest(session_id=sid, action=99)))  # type: ignore[arg-type]
        assert (code, "unknown action 99" in message) == (grpc.StatusCode.INVALID_ARGUMENT, True)

        huge = "x" * 100_000
        for call in (
            stub.EndSession(pb.EndSessionRequest(session_id=huge)),
            stub.Control(pb.ControlRequest(session_id=huge, action=pb.CONTROL_ACTION_STOP)),
            stub.StartSession(pb.StartSessionRequest(model_id=huge)),
            stub.LoadModel(pb.LoadModelRequest(model_id=huge)),
            stub.UnloadModel(pb.UnloadModelRequest(model_id=huge)),
        ):
            code, message = await _failure(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert "100000 characters; the limit is 128" in message
            assert len(message) < 200
        # A merely unknown id of allowed length is shown, cut short.
        code, message = await _failure(stub.EndSession(pb.EndSessionRequest(session_id="y" * 120)))
        assert code == grpc.StatusCode.NOT_FOUND
        assert "(120 characters)" in message
        assert len(message) < 200

        # The session outlived all of it.
        assert (await speak(stub, sid, "Still here.")).frames[-1].is_last


async def test_an_utterance_longer_than_the_text_limit_is_refused(
    mock_worker: WorkerProcess,
) -> None:
    async with connect(mock_worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id

        async def too_much() -> AsyncIterator[pb.TextChunk]:
            for _ in range(6):  # 24,000 characters (spaces: no audio, only text)
                yield pb.TextChunk(session_id=sid, text=" " * 4000)
            yield pb.TextChunk(session_id=sid, text="", is_final=True)

        async def drain() -> None:
            async for _ in stub.Synthesize(too_much()):
                pass

        code, message = await _failure(drain())
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 20000 characters" in message
        assert (await speak(stub, sid, "Shorter text is fine.")).frames[-1].is_last


async def test_control_characters_never_reach_the_model(piper_worker: WorkerProcess) -> None:
    """A NUL made Piper fail with "embedded null character"; now it is a space."""
    async with connect(piper_worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        got = await speak(stub, sid, "Hello\x00 there,\x07 friend\x1b.")
        assert got.frames[-1].is_last
        assert len(got.frames) > 25  # a second of speech, not an empty reply
    assert "synthesis_error" not in piper_worker.log()


async def test_a_worker_with_a_token_refuses_calls_without_it(
    worker_factory: Factory, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    worker = start_worker(
        ["--adapter", "mock", "--default-model", "mock", "--grpc-token-file", str(token)],
        tmp_path / "w.log",
    )  # its health check went through without a token: kubelet probes send none
    try:
        async with connect(worker.address) as stub:
            code, message = await _failure(stub.ListModels(pb.ListModelsRequest()))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "token" in message
            code, _ = await _failure(stub.StartSession(pb.StartSessionRequest()))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        async with connect(worker.address) as stub:
            wrong = WireSecurity(token="wrong").metadata
            code, _ = await _failure(stub.ListModels(pb.ListModelsRequest(), metadata=wrong))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            right = WireSecurity(token="s3cret-token").metadata
            assert (await stub.ListModels(pb.ListModelsRequest(), metadata=right)).models
            started = await stub.StartSession(pb.StartSessionRequest(), metadata=right)
            chunks = text_chunks(started.session_id, "Authorized.")
            frames = [f async for f in stub.Synthesize(aiter_chunks(chunks), metadata=right)]
            assert frames[-1].is_last
    finally:
        worker.stop()


def _pems(tmp_path: Path, ca: trustme.CA, name: str, *hosts: str) -> tuple[Path, Path]:
    issued = ca.issue_cert(*hosts)
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


async def test_mutual_tls_admits_only_callers_with_a_certificate_from_the_ca(
    tmp_path: Path,
) -> None:
    ca, stranger_ca = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert, server_key = _pems(tmp_path, ca, "worker", "duplex-tts-worker")
    client_cert, client_key = _pems(tmp_path, ca, "orchestrator", "duplex-orchestrator")
    rogue_cert, rogue_key = _pems(tmp_path, stranger_ca, "rogue", "duplex-orchestrator")
    trusted = WireSecurity.load(cert_file=client_cert, key_file=client_key, ca_file=ca_file)
    worker = start_worker(
        [
            "--adapter", "mock", "--default-model", "mock",
            "--tls-cert", str(server_cert), "--tls-key", str(server_key),
            "--tls-ca", str(ca_file),
        ],
        tmp_path / "w.log",
        security=trusted,
    )  # fmt: skip
    try:
        async with connect(worker.address, trusted) as stub:
            sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
            assert (await speak(stub, sid, "Over TLS.")).frames[-1].is_last
        rogue = WireSecurity.load(cert_file=rogue_cert, key_file=rogue_key, ca_file=ca_file)
        for stranger in (WireSecurity(), rogue):
            async with connect(worker.address, stranger) as stub:
                code, _ = await _failure(stub.ListModels(pb.ListModelsRequest(), timeout=5))
                assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        worker.stop()
