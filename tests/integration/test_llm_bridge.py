"""The OpenAI-compatible bridge against a small in-process server on loopback.

What a server that does not stream, or streams no words, gives the session:
an ``LLMError`` that says so (the session reports it as ``llm_failed``), not
a reply of silence.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from duplex_orchestrator.llm import LLMError, OpenAIBridge, with_words
from tests.support.fake_llm import Handler, serve_completions


def _events(*contents: str | None) -> Handler:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for content in contents:
            chunk = {"choices": [{"delta": {} if content is None else {"content": content}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    return stream


async def _whole_json(request: web.Request) -> web.StreamResponse:
    return web.json_response({"choices": [{"message": {"content": "Hello."}}]})


async def _answer(handler: Handler) -> str:
    runner, url = await serve_completions(handler)
    try:
        deltas: AsyncIterator[str] = with_words(OpenAIBridge(url, "tiny").reply("Hi?", []))
        return "".join([delta async for delta in deltas])
    finally:
        await runner.cleanup()


async def test_a_streamed_answer_is_read_delta_by_delta() -> None:
    assert await _answer(_events(None, "Hello", " there.")) == "Hello there."


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        (_events(None, "", "  "), "the LLM answered with no text"),
        (_events(), "the LLM answered with no text"),
        (_whole_json, "answered application/json without server-sent events"),
    ],
    ids=["blank deltas", "no deltas", "not streamed"],
)
async def test_an_answer_with_nothing_to_say_is_an_llm_error(handler: Handler, says: str) -> None:
    with pytest.raises(LLMError, match=says):
        await _answer(handler)
