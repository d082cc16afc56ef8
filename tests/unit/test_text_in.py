"""A Synthesize stream's request side: chunks checked, cleaned, fed; text logged only when asked."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest

from duplex_protocol import MAX_TEXT_CHUNK_BYTES
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.stream import Text, TextError, Utterance
from duplex_tts.text_in import read_text


class FedUtterance:
    """What the reader does to an utterance, recorded."""

    def __init__(self) -> None:
        self.fed: list[Text] = []
        self.error: Exception | None = None
        self.ended = self.stopped = False

    def feed(self, chunk: Text) -> None:
        self.fed.append(chunk)

    async def room_for_text(self) -> None:
        return None

    def end_of_input(self) -> None:
        self.ended = True

    def fail(self, error: Exception) -> None:
        self.error = error

    def stop(self) -> int:
        self.stopped = True
        return 0


def chunk(text: str, final: bool = False, session_id: str = "s1") -> pb.TextChunk:
    return pb.TextChunk(session_id=session_id, text=text, is_final=final)


async def read(
    chunks: list[pb.TextChunk], *, log_text: bool = False, then: Exception | None = None
) -> FedUtterance:
    utterance = FedUtterance()

    async def rest() -> AsyncIterator[pb.TextChunk]:
        for c in chunks[1:]:
            yield c
        if then is not None:
            raise then

    await read_text(chunks[0], rest(), cast(Utterance, utterance), "s1", log_text)
    return utterance


async def test_chunks_are_fed_in_order_with_control_characters_as_spaces() -> None:
    utterance = await read([chunk("Hello,"), chunk(" wor\x00ld."), chunk("", final=True)])
    assert [(t.text, t.is_final) for t in utterance.fed] == [
        ("Hello,", False),
        (" wor ld.", False),
        ("", True),
    ]
    assert utterance.error is None
    assert not utterance.ended


async def test_a_stream_closed_without_a_final_chunk_speaks_what_it_had() -> None:
    utterance = await read([chunk("Hello"), chunk(" there")])
    assert [t.text for t in utterance.fed] == ["Hello", " there"]
    assert utterance.ended


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (chunk("x", session_id="other"), "does not match the stream's session 's1'"),
        (chunk("a" * (MAX_TEXT_CHUNK_BYTES + 1)), "send it in smaller chunks"),
    ],
)
async def test_a_bad_chunk_fails_the_utterance_with_a_clear_error(
    bad: pb.TextChunk, says: str
) -> None:
    utterance = await read([chunk("Fine."), bad, chunk("never read", final=True)])
    assert isinstance(utterance.error, TextError)
    assert says in str(utterance.error)
    assert [t.text for t in utterance.fed] == ["Fine."]


async def test_a_broken_request_side_stops_the_utterance_cleanly() -> None:
    broken = grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata()
    )
    utterance = await read([chunk("Hello")], then=broken)
    assert utterance.stopped
    assert utterance.error is None


@pytest.mark.parametrize("log_text", [False, True])
async def test_the_text_is_logged_only_when_asked(
    log_text: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="duplex_tts")
    await read([chunk("my secret words", final=True)], log_text=log_text)
    logged = any(
        "my secret words" in str(getattr(r, "text", "")) + r.getMessage() for r in caplog.records
    )
    assert logged is log_text
