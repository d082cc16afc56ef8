"""LLM bridges: text in, a stream of text deltas out.

``EchoBridge`` (the default) repeats what was heard, so the whole loop is
testable without a model. ``OpenAIBridge`` streams from any OpenAI-compatible
``/chat/completions`` endpoint (server-sent events); its deltas go to the TTS
worker as they arrive, so the first clause is spoken before the reply is done.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

import aiohttp

log = logging.getLogger(__name__)


class LLMError(Exception):
    """The LLM endpoint failed; the message says how. ``retryable``: the failure may pass
    (the endpoint unreachable, busy or failing for a moment), and asking again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


RETRY_AFTER_S = (0.25, 0.75)
"""The waits before asking again after a failure that may pass, before the answer's
first words (after them the words already said cannot be taken back): two more tries
within a second, as LiveKit's LLM plugins retry (``APIConnectOptions``), shorter."""
_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMBridge(Protocol):
    def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        """Text deltas of the reply to ``text`` (``history``: earlier turns, oldest first)."""
        ...


class EchoBridge:
    """Repeats the user's words, streamed word by word like a model would."""

    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        for i, word in enumerate(text.split()):
            yield word if i == 0 else " " + word


async def with_words(deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    """``deltas`` as they come, and an ``LLMError`` at their end if none had a word: a
    model that answers nothing (its tokens spent on reasoning, a filter) is a failure
    the client is told of, not a reply of silence. Closing this closes ``deltas``."""
    said = False
    try:
        async for delta in deltas:
            said = said or bool(delta.strip())
            yield delta
        if not said:
            raise LLMError("the LLM answered with no text: nothing to say")
    finally:
        await close_stream(deltas)


async def close_stream(deltas: AsyncIterator[str]) -> None:
    """End a stream of deltas that has an end (an async generator, an LLM's HTTP stream)
    now, not whenever it is collected: the model stops writing what no one reads."""
    close = getattr(deltas, "aclose", None)
    if close is not None:
        await close()


HISTORY_CHARS = 24_000
"""The conversation an LLM is given with each turn, in characters (~6,000 tokens: it
fits the 8k context small local models are often served with, with room to answer)."""


def recent(messages: list[dict[str, str]], chars: int) -> list[dict[str, str]]:
    """The latest of ``messages`` (whole ones, in order) whose contents fit in ``chars``
    (pure): a long conversation is cut at its start, never mid-message."""
    kept: list[dict[str, str]] = []
    for message in reversed(messages):
        chars -= len(message["content"])
        if chars < 0:
            break
        kept.append(message)
    return kept[::-1]


def text_failure(exc: BaseException) -> LLMError:
    """An ``LLMError`` for any other failure of a reply's text source, its message never
    empty (a bare ``TimeoutError`` has none, and the client got ``llm_failed`` and "")."""
    return LLMError(str(exc) or f"the LLM's stream failed ({type(exc).__name__})")


SYSTEM_PROMPT = "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
"""The instructions sent as the system message unless ``llm_instructions`` sets others."""


class OpenAIBridge:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        system_prompt: str = SYSTEM_PROMPT,
        wait_s: float = 30.0,
    ) -> None:
        # the base URL (…/v1), as OpenAI's clients take it; the endpoint's own is accepted
        self._url = base_url.rstrip("/").removesuffix("/chat/completions") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._system = system_prompt
        self._wait_s = wait_s
        # What is bounded is each wait for the server (to connect, for the next bytes:
        # a model still loading, a hung server), not the answer: a stream lasts as long
        # as the model writes, and a total limit cut long answers off mid-sentence.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=wait_s, sock_read=wait_s)

    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        system = [{"role": "system", "content": self._system}] if self._system.strip() else []
        messages = [*system, *history, {"role": "user", "content": text}]
        body = {"model": self._model, "messages": messages, "stream": True}
        for retry_after in (*RETRY_AFTER_S, None):
            said = False
            stream = self._stream(body)
            try:
                async for delta in stream:
                    said = True
                    yield delta
                return
            except LLMError as exc:
                if said or not exc.retryable or retry_after is None:
                    raise
                log.warning("the LLM endpoint failed, asking again", extra={"event": "llm_retry"})
            finally:
                await stream.aclose()  # a reply stopped mid-stream closes the HTTP stream
            await asyncio.sleep(retry_after)

    async def _stream(self, body: dict[str, object]) -> AsyncGenerator[str, None]:
        """One request's deltas."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(self._url, json=body, headers=self._headers) as response,
            ):
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise LLMError(
                        f"LLM endpoint {self._url} answered {response.status}: {detail}",
                        retryable=response.status in _RETRYABLE_STATUS,
                    )
                events = 0
                async for raw in response.content:
                    line = raw.decode("utf-8", "replace").strip()
                    events += line.startswith("data:")
                    delta = _sse_delta(line)
                    if delta is None:
                        return
                    if delta:
                        yield delta
                if not events:  # a whole JSON answer, a web page: no stream of events
                    raise LLMError(
                        f"LLM endpoint {self._url} answered {response.content_type} without "
                        "server-sent events: not a streaming OpenAI-compatible /chat/completions"
                    )
        except TimeoutError as exc:  # aiohttp's read and connect timeouts are both
            raise LLMError(
                f"LLM endpoint {self._url} sent nothing for {self._wait_s:g} s (llm_timeout_s)"
            ) from exc
        except aiohttp.ClientError as exc:
            raise LLMError(f"LLM endpoint {self._url} unreachable: {exc}", retryable=True) from exc


def _sse_delta(line: str) -> str | None:
    """The text in one SSE line ('' for non-data lines); None at [DONE]."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        event = json.loads(data)
        error = event.get("error")
        choices = event.get("choices") or [{}]
        content = (choices[0].get("delta") or {}).get("content")
    except (json.JSONDecodeError, AttributeError, IndexError) as exc:
        raise LLMError(f"LLM stream sent a malformed event: {data[:120]!r}") from exc
    if error:  # a failure reported in the stream (OpenAI, vLLM): it was read as no text
        message = error.get("message") if isinstance(error, dict) else error
        raise LLMError(f"LLM stream reported an error: {str(message)[:200]}")
    if isinstance(content, list):  # content parts, as Mistral streams some chunks
        return "".join(_part_text(part) for part in content)
    return content if isinstance(content, str) else ""


def _part_text(part: object) -> str:
    """The text of one content part: a string, or ``{"type": "text", "text": ...}``."""
    if isinstance(part, str):
        return part
    text = part.get("text") if isinstance(part, dict) else None
    return text if isinstance(text, str) else ""
