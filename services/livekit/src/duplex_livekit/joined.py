"""A turn answered too soon, taken back from the chat so its words join the rest (pure).

When the user goes on soon after a turn was ended (a false end), AgentSession has
already made that turn a user message and begun its reply; the words after it
come as a new turn. duplex's own sessions cancel the reply and answer the whole
turn; ``take_back`` lets the agent do the same with the chat it answers from.
"""

from __future__ import annotations

from livekit.agents import llm


def take_back(chat_ctx: llm.ChatContext, said: str) -> str | None:
    """Remove the user's last message from ``chat_ctx`` if it ends with ``said`` (the
    turn answered too soon), and the messages after it (the reply it got, cut short);
    its text. None, and nothing removed, where the last user message is another."""
    items = chat_ctx.items
    users = [
        (i, item)
        for i, item in enumerate(items)
        if isinstance(item, llm.ChatMessage) and item.role == "user"
    ]
    if not users or not _plain(said):
        return None
    last, message = users[-1]
    text = message.text_content or ""
    if not _plain(text).endswith(_plain(said)):
        return None
    items[last:] = [item for item in items[last + 1 :] if not isinstance(item, llm.ChatMessage)]
    return text


def _plain(text: str) -> str:
    return " ".join(text.split()).lower()
