"""End of turn: is the user done, or only pausing? Pure decisions, no I/O.

Silence alone cuts people off at a hesitation ("I'd like to order … a large
pizza") and makes complete answers wait. At a short pause (the VAD's
``SPEECH_PAUSE``, ``--end-of-turn-pause-ms``) the session asks two judges and
ends the turn at once when they agree it is complete; otherwise it waits for
more speech, up to the silence that ends any turn (``--vad-end-ms``):

- the transcript so far (Whisper's punctuation and last word): a turn with no
  final punctuation, ending in "...", or a statement ending on a word that
  needs a continuation ("to", "the", "and", "about", ...) is not complete;
- Smart Turn v3.2 (``smart_turn.SmartTurn``), a learned model of whether the
  speech sounds finished (intonation, pace), on the last 8 s of audio.

``mode`` picks which: ``transcript+smart-turn`` (both must agree, the
default), ``transcript``, ``smart-turn``, or ``silence`` (the pause is never
the end; only the full silence is, as before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EndOfTurnMode = Literal["transcript+smart-turn", "transcript", "smart-turn", "silence"]

# Words a statement cannot end on: articles, prepositions, conjunctions,
# possessives, fillers. A question may ("What is it about?"), so "?" and "!"
# are complete whatever the last word.
_CONTINUES = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "from",
        "into",
        "onto",
        "by",
        "as",
        "than",
        "and",
        "or",
        "but",
        "because",
        "if",
        "that",
        "which",
        "whose",
        "when",
        "where",
        "while",
        "although",
        "though",
        "unless",
        "until",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "very",
        "um",
        "uh",
        "er",
        "erm",
        "hmm",
    ]
)
_FINAL = re.compile(r"[.?!]['\")\]]*$")
_WORDS = re.compile(r"[a-z']+")


def transcript_complete(text: str) -> bool:
    """Whether a (partial) transcript reads as a finished turn."""
    text = text.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—")) or not _FINAL.search(text):
        return False
    if text.endswith(("?", "!")):
        return True
    words = _WORDS.findall(text.lower())
    return bool(words) and words[-1].strip("'") not in _CONTINUES


@dataclass(frozen=True)
class EndOfTurn:
    """The policy; ``decide`` is called at a pause with what each judge says."""

    mode: EndOfTurnMode = "transcript+smart-turn"
    threshold: float = 0.5
    """Smart Turn's probability of "complete" at or above which it agrees."""
    continue_window_ms: int = 1000
    """Speech this soon after a turn judged complete continues it: its reply is
    cancelled and the words join the turn (later speech is a barge-in)."""

    @property
    def uses_smart_turn(self) -> bool:
        return "smart-turn" in self.mode

    @property
    def uses_transcript(self) -> bool:
        return "transcript" in self.mode

    def decide(self, transcript: str | None, probability: float | None) -> bool:
        """True: end the turn at this pause. A judge that could not answer (None) says no."""
        if self.mode == "silence":
            return False
        if self.uses_transcript and (transcript is None or not transcript_complete(transcript)):
            return False
        return not self.uses_smart_turn or (
            probability is not None and probability >= self.threshold
        )
