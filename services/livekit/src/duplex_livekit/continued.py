"""The words a continued turn adds: Whisper's transcript of the whole turn, less what
AgentSession already has (pure, no I/O).

When the user speaks again before the verdict's silence has run out, the turn goes on,
and the detector has Whisper hear the whole turn's audio, as duplex's own sessions do:
the judges need the whole sentence ("Can you tell me about the weather tomorrow?"),
not its second half alone ("the weather tomorrow."), and Whisper hears that half better
with the first before it. AgentSession, though, appends each utterance's transcript to
the user's turn, so it is handed only the words after the ones it already has.

Whisper may hear the first half a little differently the second time ("I'd like to
book" for "I'd like to more"), so the split is found by matching words, not by
counting them: after the last word of the first half found at the start of the whole
(and one word for each of the first half's words after it that were not found). Where
none is found, the split falls where the first half's audio ends, by its share.
"""

from __future__ import annotations

import difflib
import re

_SLACK = 2
"""Words the first half may grow by when heard again with the rest."""


def _bare(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def new_words(before: str, whole: str, before_share: float) -> str:
    """The words of ``whole`` (the turn's transcript) after those of ``before`` (its
    first part's, already handed on); ``before_share``: that part's share of the
    turn's audio, for when no word of it is found again."""
    said, heard = before.split(), whole.split()
    if not said:
        return whole.strip()
    start = heard[: len(said) + _SLACK]
    matcher = difflib.SequenceMatcher(
        None, [_bare(w) for w in said], [_bare(w) for w in start], autojunk=False
    )
    blocks = [b for b in matcher.get_matching_blocks() if b.size > 0]
    if blocks:
        last = blocks[-1]
        split = last.b + last.size + (len(said) - (last.a + last.size))
    else:
        split = round(len(heard) * min(max(before_share, 0.0), 1.0))
    return " ".join(heard[min(split, len(heard)) :])
