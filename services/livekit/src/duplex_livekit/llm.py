"""A livekit-agents LLM plugin over a duplex ``LLMBridge`` (echo, or any OpenAI-compatible server).

The chat context's last user message is the question; earlier user and
assistant messages are the history, oldest first, as the WebSocket path sends
them. The bridge's deltas stream out as chat chunks as they arrive. Tools are
not offered (duplex's bridges speak plain text).
"""

from __future__ import annotations

import uuid
from typing import Any

from livekit.agents import APIConnectionError, APIConnectOptions, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from duplex_orchestrator.llm import HISTORY_CHARS, LLMBridge, LLMError, recent


class DuplexLLM(llm.LLM[None]):
    def __init__(
        self, bridge: LLMBridge, *, name: str = "echo", history_chars: int = HISTORY_CHARS
    ) -> None:
        super().__init__()
        self._bridge = bridge
        self._name = name
        self.history_chars = history_chars
        """The conversation the bridge is given: its latest messages within this many
        characters (``duplex_orchestrator.llm.recent``), as on the WebSocket path."""

    @property
    def bridge(self) -> LLMBridge:
        return self._bridge

    @property
    def model(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return "duplex"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> DuplexLLMStream:
        return DuplexLLMStream(self, chat_ctx=chat_ctx, tools=[], conn_options=conn_options)


def question_and_history(chat_ctx: llm.ChatContext) -> tuple[str, list[dict[str, str]]]:
    """The last user message, and the user/assistant turns before it (pure)."""
    turns = [
        {"role": m.role, "content": m.text_content or ""}
        for m in chat_ctx.messages()
        if m.role in ("user", "assistant") and m.text_content
    ]
    last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=-1)
    if last_user < 0:
        return "", turns
    return turns[last_user]["content"], turns[:last_user]


def user_said_last(chat_ctx: llm.ChatContext, text: str) -> bool:
    """Whether the user's last message ends with these words (pure)."""
    said, _ = question_and_history(chat_ctx)
    return " ".join(said.split()).lower().endswith(" ".join(text.split()).lower())


class DuplexLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        if not isinstance(self._llm, DuplexLLM):
            raise TypeError("DuplexLLMStream belongs to a DuplexLLM")
        question, history = question_and_history(self._chat_ctx)
        if not question:
            return
        chunk_id = uuid.uuid4().hex[:12]
        earlier = recent(history, self._llm.history_chars)
        try:
            async for delta in self._llm.bridge.reply(question, earlier):
                self._event_ch.send_nowait(
                    llm.ChatChunk(
                        id=chunk_id, delta=llm.ChoiceDelta(role="assistant", content=delta)
                    )
                )
        except LLMError as exc:
            raise APIConnectionError(str(exc), retryable=False) from exc
