"""The OpenAI-compatible bridge against a small in-process server on loopback.

What a server that does not stream, streams no words or stops sending gives the
session: an ``LLMError`` that says so (the session reports it as ``llm_failed``),
not a reply of silence; an answer that streams for longer than the wait is read
to its end; the instructions are the system message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from duplex_orchestrator.llm import SYSTEM_PROMPT, LLMError, OpenAIBridge, text_failure, with_words
from tests.support.fake_llm import Handler, serve_completions, streamed_answer


async def _whole_json(request: web.Request) -> web.StreamResponse:
    return web.json_response({"choices": [{"message": {"content": "Hello."}}]})


async def _answer(handler: Handler, **bridge: Any) -> str:
    runner, url = await serve_completions(handler)
    try:
        deltas: AsyncIterator[str] = with_words(
            OpenAIBridge(url, "tiny", **bridge).reply("Hi?", [])
        )
        return "".join([delta async for delta in deltas])
    finally:
        await runner.cleanup()


async def test_a_streamed_answer_is_read_delta_by_delta() -> None:
    assert await _answer(streamed_answer(None, "Hello", " there.")) == "Hello there."


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        (streamed_answer(None, "", "  "), "the LLM answered with no text"),
        (streamed_answer(), "the LLM answered with no text"),
        (_whole_json, "answered application/json without server-sent events"),
    ],
    ids=["blank deltas", "no deltas", "not streamed"],
)
async def test_an_answer_with_nothing_to_say_is_an_llm_error(handler: Handler, says: str) -> None:
    with pytest.raises(LLMError, match=says):
        await _answer(handler)


async def test_an_answer_streamed_for_longer_than_the_wait_is_read_to_its_end() -> None:
    """The wait bounds each piece of the stream, not the answer: a total limit cut a
    long answer off mid-sentence with a bare TimeoutError (and an empty error)."""
    words = [f" word{i}" for i in range(8)]
    answer = await _answer(streamed_answer(*words, every_s=0.15), wait_s=0.6)  # 1.2 s in all
    assert answer == "".join(words)


async def test_a_stream_that_stops_sending_is_an_llm_error_naming_the_wait() -> None:
    with pytest.raises(LLMError, match=r"sent nothing for 0\.3 s \(llm_timeout_s\)"):
        await _answer(streamed_answer("Hello", " there.", every_s=1.0), wait_s=0.3)


@pytest.mark.parametrize(
    ("instructions", "system"),
    [
        ({}, [SYSTEM_PROMPT]),
        ({"system_prompt": "You take pizza orders."}, ["You take pizza orders."]),
        ({"system_prompt": ""}, []),
    ],
    ids=["default", "given", "none"],
)
async def test_the_instructions_are_the_system_message(
    instructions: dict[str, str], system: list[str]
) -> None:
    seen: list[Any] = []
    await _answer(streamed_answer("Hello.", seen=seen), **instructions)
    messages = seen[0]["messages"]
    assert [m["content"] for m in messages if m["role"] == "system"] == system
    assert messages[-1] == {"role": "user", "content": "Hi?"}


def test_a_failure_without_a_message_still_says_what_failed() -> None:
    assert str(text_failure(TimeoutError())) == "the LLM's stream failed (TimeoutError)"
    assert str(text_failure(ValueError("bad delta"))) == "bad delta"


async def _content_parts(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for content in (["Hello"], [{"type": "text", "text": " there"}, {"type": "image"}], "."):
        chunk = {"choices": [{"delta": {"content": content}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


async def test_content_streamed_as_parts_is_read_as_text() -> None:
    """Mistral streams some chunks' content as a list of parts: it was read as nothing."""
    assert await _answer(_content_parts) == "Hello there."


async def test_the_endpoints_own_url_is_taken_as_well_as_its_base() -> None:
    runner, url = await serve_completions(streamed_answer("Hi."))
    try:
        bridge = OpenAIBridge(url + "/chat/completions/", "tiny")
        assert "".join([d async for d in bridge.reply("Hi?", [])]) == "Hi."
    finally:
        await runner.cleanup()


def _failing_first(status: int, times: int, then: Handler) -> tuple[Handler, list[int]]:
    """Answers ``status`` to the first ``times`` requests, then as ``then``; counts them."""
    asked: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        asked.append(len(asked))
        if len(asked) <= times:
            return web.json_response({"error": {"message": "busy"}}, status=status)
        return await then(request)

    return handler, asked


@pytest.mark.parametrize("status", [429, 503])
async def test_a_failure_that_may_pass_is_asked_again_before_the_first_words(
    status: int,
) -> None:
    """A moment's 503 or 429 from the endpoint was an llm_failed error and a turn
    without an answer."""
    handler, asked = _failing_first(status, 2, streamed_answer("Hello."))
    assert await _answer(handler) == "Hello."
    assert len(asked) == 3


@pytest.mark.parametrize(
    ("status", "times", "says"),
    [(503, 3, "answered 503"), (400, 1, "answered 400"), (401, 1, "answered 401")],
    ids=["still failing after two more tries", "a bad request", "a wrong key"],
)
async def test_failures_that_will_not_pass_are_not_asked_again_forever(
    status: int, times: int, says: str
) -> None:
    handler, asked = _failing_first(status, times, streamed_answer("Hello."))
    with pytest.raises(LLMError, match=says):
        await _answer(handler)
    assert len(asked) == times


async def test_a_stream_that_fails_after_its_first_words_is_not_asked_again() -> None:
    asked: list[int] = []

    async def words_then_error(request: web.Request) -> web.StreamResponse:
        asked.append(1)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"delta": {"content": "Partly"}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b'data: {"error": {"message": "overloaded"}}\n\n')
        return response

    with pytest.raises(LLMError, match="reported an error: overloaded"):
        await _answer(words_then_error)
    assert asked == [1]  # its first words were already said: no second answer
