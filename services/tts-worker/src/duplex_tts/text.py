"""Clause segmentation of streamed text: pure, no I/O.

Text reaches the worker token by token. Synthesis starts at the first clause
boundary rather than at the end of the reply, so the first words are heard
early and later clauses are synthesized while earlier ones play.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# With the ideographic full stop and the full-width ! ? , and the ideographic comma.
_SENTENCE_END = ".!?;:\n\u3002\uff01\uff1f"
_CLAUSE_END = ",\u2014\u2013)\u3001\uff0c"
# Full-width marks end a clause by themselves: CJK text puts no space after them.
_NO_SPACE_NEEDED = frozenset("\u3002\uff01\uff1f\u3001\uff0c")
# A period after these words does not end a sentence.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "sr", "jr", "vs", "etc", "e.g", "i.e", "prof", "no", "fig"}
)
_LAST_WORD = re.compile(r"([\w.]+)\W*$")


@dataclass
class ClauseSegmenter:
    """Cuts a growing text into speakable clauses.

    ``min_clause_chars`` keeps a comma from cutting off a one-word fragment
    (bad prosody); ``max_clause_chars`` bounds how long text without any
    punctuation waits before it is cut at a space.
    """

    min_clause_chars: int = 12
    max_clause_chars: int = 240
    _buffer: str = field(default="", init=False)

    def push(self, text: str) -> list[str]:
        """Add text; return the clauses that are now complete."""
        self._buffer += text
        clauses: list[str] = []
        while (cut := self._next_cut()) is not None:
            clause, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if clause.strip():
                clauses.append(clause.strip())
        return clauses

    def finish(self) -> list[str]:
        """End of text: return whatever is left as a last clause."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    @property
    def pending(self) -> str:
        return self._buffer

    def _next_cut(self) -> int | None:
        buf = self._buffer
        for i, ch in enumerate(buf):
            at_end = i == len(buf) - 1
            followed_by_space = ch in _NO_SPACE_NEEDED or (not at_end and buf[i + 1].isspace())
            if ch in _SENTENCE_END and (followed_by_space or at_end or ch == "\n"):
                if ch == "." and not self._period_ends_sentence(buf[: i + 1], at_end):
                    continue
                if buf[: i + 1].strip() and _has_word(buf[: i + 1]):
                    return i + 1
            elif (
                ch in _CLAUSE_END
                and (followed_by_space or at_end)
                and len(buf[: i + 1].strip()) >= self.min_clause_chars
            ):
                return i + 1
        if len(buf) > self.max_clause_chars:
            space = buf.rfind(" ", 0, self.max_clause_chars)
            return space + 1 if space > 0 else self.max_clause_chars
        return None

    @staticmethod
    def _period_ends_sentence(head: str, at_end: bool) -> bool:
        match = _LAST_WORD.search(head[:-1] + " ")
        word = match.group(1).lower().rstrip(".") if match else ""
        initialism = "." in word  # U.S., e.g.
        single_letter = len(word) == 1 and word.isalpha() and word != "i"
        if word in _ABBREVIATIONS or initialism or single_letter:
            return False
        # "3." may be the start of "3.14" when more tokens are coming.
        return not (at_end and head[-2:-1].isdigit())


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
