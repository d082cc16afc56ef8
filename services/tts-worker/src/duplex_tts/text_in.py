"""The request side of a ``Synthesize`` stream: its text chunks, checked, fed to the utterance.

Each chunk must name the stream's session and hold at most
``MAX_TEXT_CHUNK_BYTES``; control characters become spaces (a NUL breaks
Piper's front end). The reader waits for room in the utterance before it takes
the next chunk, so backpressure reaches the caller. A bad chunk fails the
utterance with a ``TextError`` (the servicer turns it into INVALID_ARGUMENT); a
broken request side ends it cleanly. The text is logged only when the worker's
``log_text`` asks for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from duplex_protocol import MAX_TEXT_CHUNK_BYTES
from duplex_protocol.text import clean_text, shown
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.stream import Text, TextError, Utterance

log = logging.getLogger(__name__)


async def read_text(
    first: pb.TextChunk,
    request_iterator: AsyncIterator[pb.TextChunk],
    utterance: Utterance,
    session_id: str,
    log_text: bool = False,
) -> None:
    """Feed ``first`` and the chunks after it to ``utterance`` until the final one."""
    try:
        chunk = first
        while True:
            check_chunk(chunk, session_id)
            if log_text:
                log.debug(
                    "text", extra={"event": "text", "session_id": session_id, "text": chunk.text}
                )
            utterance.feed(Text(clean_text(chunk.text), chunk.is_final))
            if chunk.is_final:
                return
            await utterance.room_for_text()  # backpressure up to the caller
            try:
                chunk = await anext(request_iterator)
            except StopAsyncIteration:
                utterance.end_of_input()
                return
    except TextError as exc:
        utterance.fail(exc)
    except (grpc.RpcError, asyncio.InvalidStateError):
        utterance.stop()  # the request side broke; end the utterance cleanly
    except Exception as exc:
        log.exception(
            "reading text failed", extra={"event": "read_error", "session_id": session_id}
        )
        utterance.fail(exc)


def check_chunk(chunk: pb.TextChunk, session_id: str) -> None:
    """A ``TextError`` unless the chunk names this session and is small enough."""
    if chunk.session_id != session_id:
        raise TextError(
            f"TextChunk.session_id {shown(chunk.session_id)} does not match "
            f"the stream's session {session_id!r}"
        )
    size = len(chunk.text.encode("utf-8"))
    if size > MAX_TEXT_CHUNK_BYTES:
        raise TextError(
            f"TextChunk.text is {size} bytes; the limit is {MAX_TEXT_CHUNK_BYTES}: "
            "send it in smaller chunks"
        )
