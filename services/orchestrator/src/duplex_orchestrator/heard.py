"""What a user heard of a reply they cut off, for the LLM's history: pure.

A reply stopped by a barge-in was heard only in part, and an LLM given its whole
text answers as if the user had heard it all ("As I said, the museum closes at
five" when they stopped it before the hours). The worker's audio carries no word
timings (the ABI sends frames only), so the words heard are reckoned from the
seconds the client played and the voice's speaking rate in this session: the
characters per second of its replies heard whole (the median of the latest few),
a typical rate until one is. LiveKit's transcript synchronizer reckons an
interrupted reply's words from a standard speaking rate the same way.
"""

from __future__ import annotations

import re
import statistics
from collections import deque

TYPICAL_CHARS_PER_S = 16.0
"""Characters of text (spaces and punctuation too) per second of a reply's audio, used
until one is heard whole: of a 183-character text, Piper's joe read 17.3, Kokoro's
kumo 14.6 and alpha 16.0 (2026-12-06, `duplex say`)."""
CUT_MARK = "…"
"""Ends a reply's text that was cut off: the LLM sees it was not heard to its end."""
_MIN_LEARNED_S = 1.0
_WORD = re.compile(r"\S+")


def heard_part(text: str, heard_s: float, chars_per_s: float, complete: bool = True) -> str:
    """The words of a reply cut off that were said within its first ``heard_s`` seconds
    at ``chars_per_s``: those whose last character was reached, then ``CUT_MARK``; ""
    when not one was. All of ``text`` reached: it, when it is ``complete`` (the LLM had
    written all it would), else it and ``CUT_MARK`` (the rest was never said)."""
    reached = heard_s * chars_per_s
    if reached >= len(text.rstrip()):
        return text if complete or not text.strip() else text.rstrip() + CUT_MARK
    said = [m.end() for m in _WORD.finditer(text) if m.end() <= reached]
    return text[: said[-1]] + CUT_MARK if said else ""


class SpeakingRate:
    """A session's voice speed: characters per second of the replies heard whole."""

    def __init__(self, keep: int = 5, typical: float = TYPICAL_CHARS_PER_S) -> None:
        self._rates: deque[float] = deque(maxlen=keep)
        self._typical = typical

    def learn(self, chars: int, seconds: float) -> None:
        """A reply of ``chars`` characters took ``seconds`` of audio (short ones are
        mostly the silence around their words, and teach nothing)."""
        if chars > 0 and seconds >= _MIN_LEARNED_S:
            self._rates.append(chars / seconds)

    @property
    def chars_per_s(self) -> float:
        return statistics.median(self._rates) if self._rates else self._typical


__all__ = ["CUT_MARK", "TYPICAL_CHARS_PER_S", "SpeakingRate", "heard_part"]
