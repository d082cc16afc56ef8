"""An LLM's streamed text made fit to be spoken: its markdown, emoji and thinking taken out.

LLMs answer in markdown even when asked for plain sentences, and a voice reads
what it is given: Piper said "asterisk, asterisk, sure exclamation, asterisk,
asterisk" for "**Sure!**", "hash hash drinks" for a heading, and spelled out a
link's address. LiveKit's agents (``tts_text_transforms``: ``filter_markdown``,
``filter_emoji``) and pipecat (``MarkdownTextFilter``) take them out before the
voice; ``SpokenText`` does so as the text streams (pure, no I/O): the text is
released up to its last word, so a marker split across deltas ("*", "*Sure") is
whole when it is cleaned, and a link is held until its address closes.

What goes: a reasoning model's thinking (``<think>`` … ``</think>``, which Qwen3
and DeepSeek-R1 write into the answer on some servers), headings' and list items'
markers, block quotes' ">", horizontal rules, code fences and backticks (the code
stays), bold, italic and strikethrough markers (the words stay), emoji; a link keeps
its text and an image its description. A line that ends without a closing mark (a
list item, a heading) gets a full stop, so the voice pauses there as a reader would.
Numbered items keep their numbers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

from duplex_orchestrator.llm import close_stream

_HOLD_MAX = 300
"""A link still open after this many characters is not one: released as it is."""
_LINE_MARKERS = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|[-*+•][ \t]+|>[ \t]?)")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
_PAIRED = re.compile(r"\*\*|__|~~|`")
_EMPHASIS = re.compile(r"(?<![\w*])[*_](?=[^\s*_])|(?<=[^\s*_])[*_](?![\w*])")
_EMOJI = re.compile(
    "[ \t]*[\U0001f000-\U0001faff\u2600-\u27bf\u2b50\u2b55\u231a\u231b\u23e9-\u23fa"
    "\ufe0f\u200d\u20e3]+"
)
_CLOSED = ".!?:;,"
_THINK_START, _THINK_END = "<think>", "</think>"
_LAST_WORD = re.compile(r"\s*\S*\s*$")
_MARKER_ONLY = re.compile(r"[ \t]*(?:#{1,6}|[-*+•>]|```|~~~|(?:[-*_][ \t]*){2,})?[ \t]*$")
"""A line so far that may yet be a marker and its text, or a horizontal rule."""


class SpokenText:
    """Feed it an LLM's deltas (``push``), then ``end``; what each returns is the text to
    speak so far. Holds back the last word (or a link not closed yet)."""

    def __init__(self) -> None:
        self._raw = ""
        """Text not yet known to be outside a thought (it may end in part of a tag)."""
        self._thinking = False
        self._began = False
        """Text outside a thought has come (blank lines before it are not said)."""
        self._held = ""
        self._line_start = True
        self._in_fence = False
        self._last = ""
        """The last character given out that was not whitespace."""

    def push(self, delta: str) -> str:
        self._held += self._said_aloud(delta)
        cut = self._safe_cut(self._held)
        ready, self._held = self._held[:cut], self._held[cut:]
        return self._clean(ready)

    def end(self) -> str:
        rest = "" if self._thinking else self._raw
        ready, self._held, self._raw = self._held + rest, "", ""
        return self._clean(ready if self._began else ready.lstrip(), final=True)

    def _said_aloud(self, delta: str) -> str:
        """``delta`` without what falls inside ``<think>`` … ``</think>``; the part of a
        tag it may end with is kept back for the next one."""
        self._raw += delta
        said = []
        while True:
            tag = _THINK_END if self._thinking else _THINK_START
            at = self._raw.find(tag)
            if at < 0:
                keep = _tag_start_length(self._raw, tag)
                if not self._thinking:
                    said.append(self._raw[: len(self._raw) - keep])
                self._raw = self._raw[len(self._raw) - keep :]
                break
            if not self._thinking:
                said.append(self._raw[:at])
            self._raw = self._raw[at + len(tag) :]
            self._thinking = not self._thinking
        text = "".join(said)
        if not self._began:
            text = text.lstrip()  # the blank lines a thought leaves before the answer
            self._began = bool(text)
        return text

    def _safe_cut(self, text: str) -> int:
        """Where ``text`` may be cut: before its last word and the whitespace around it
        (an emoji takes the space before it, a line's end its full stop), before a
        line's marker with nothing after it yet (it needs the space after it), and
        before a link or image not closed yet."""
        cut = _LAST_WORD.search(text).start()  # type: ignore[union-attr]  # always matches
        line = text.rfind("\n", 0, cut) + 1
        if (line > 0 or self._line_start) and _MARKER_ONLY.match(text, line, cut):
            cut = line
        opening = text.rfind("[", 0, cut)
        if opening >= 0 and len(text) - opening < _HOLD_MAX:
            end = _bracket_end(text, opening)
            if end is None or end > cut:  # the cut would split it: hold all of it
                cut = opening - 1 if opening > 0 and text[opening - 1] == "!" else opening
        return cut

    def _clean(self, text: str, final: bool = False) -> str:
        out = []
        lines = text.split("\n")
        for i, body in enumerate(lines):
            ends = i < len(lines) - 1  # the line's end is in this text
            whole = ends or final  # all of the line is here
            if self._line_start and _FENCE.match(body):
                self._in_fence = not self._in_fence
                body = ""
            elif self._line_start and not self._in_fence:
                body = "" if whole and _RULE.match(body) else _LINE_MARKERS.sub("", body)
            if not self._in_fence:
                body = _inline(body)
            out.append(body)
            if body.strip():
                self._last = body.rstrip()[-1]
            if ends:
                if self._last not in ("", *_CLOSED):
                    out.append(".")
                    self._last = "."
                out.append("\n")
            # indentation alone does not start the line's text: a marker may follow
            self._line_start = ends or (self._line_start and not body.strip())
        return "".join(out)


def _tag_start_length(text: str, tag: str) -> int:
    """How much of ``tag``'s start ``text`` ends with (0: none)."""
    return next(
        (n for n in range(min(len(tag) - 1, len(text)), 0, -1) if text.endswith(tag[:n])), 0
    )


def _bracket_end(text: str, opening: int) -> int | None:
    """Where the ``[`` at ``opening`` ends: after its ``]`` (text in brackets) or after
    the ``)`` of a link's address; None while that is not known yet."""
    close = text.find("]", opening)
    if close < 0 or close + 1 == len(text):
        return None  # "(" may follow
    if text[close + 1] != "(":
        return close + 1
    address_end = text.find(")", close)
    return None if address_end < 0 else address_end + 1


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _PAIRED.sub("", text)
    text = _EMPHASIS.sub("", text)
    return _EMOJI.sub("", text)


async def spoken(deltas: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """``deltas`` made fit to be spoken (``SpokenText``); closing this closes ``deltas``."""
    text = SpokenText()
    try:
        async for delta in deltas:
            if ready := text.push(delta):
                yield ready
        if rest := text.end():
            yield rest
    finally:
        await close_stream(deltas)


__all__ = ["SpokenText", "spoken"]
