"""The end-of-turn bench's pitch judge: each voice a user the session already knows.

A session learns how far its user's pitch falls at a statement's end from the
statements it ended on (``prosody.PitchHabit``). Here each voice is a user:
for a clip of one phrase set (split), the usual fall is the median of that
voice's complete statements in the *other* sets that the other judges let
end at the pause, so no clip's own set teaches the judge about it. A user
the session has heard only three to five statements from has a noisier usual
fall (README, *the pitch at a statement's end*). A user it has heard fewer
than three from is judged against the policy's first usual fall
(``pitch_first_fall_st``): each row's ``verdict_first`` is that verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duplex_orchestrator.endpoint import EndOfTurn, is_statement


def usual_falls(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Per (voice, split): the median fall of the voice's complete statements judged
    complete in the other splits."""
    ends = [
        row
        for row in rows
        if row["kind"] == "complete"
        and row["verdict_without_pitch"] == "complete"
        and is_statement(row["heard"])
        and row["fall_st"] is not None
    ]
    usual = {}
    for voice in {row["voice"] for row in rows}:
        for split in {row["split"] for row in rows}:
            falls = [r["fall_st"] for r in ends if r["voice"] == voice and r["split"] != split]
            if falls:
                usual[voice, split] = float(np.median(falls))
    return usual


def with_pitch(rows: list[dict[str, Any]], policy: EndOfTurn) -> None:
    """Each row's verdict with the pitch judge (``above_usual_st`` and ``verdict``),
    from the other judges' answers in it; ``verdict_first``: the same for a user whose
    statements are not known yet."""
    usual = usual_falls(rows)
    for row in rows:
        row["above_usual_st"] = _above(row["fall_st"], usual.get((row["voice"], row["split"])))
        row["verdict"] = _verdict(row, policy, row["above_usual_st"])
        first = _above(row["fall_st"], policy.pitch_first_fall_st)
        row["verdict_first"] = _verdict(row, policy, first)


def _above(fall: float | None, usual: float | None) -> float | None:
    return None if fall is None or usual is None else fall - usual


def _verdict(row: dict[str, Any], policy: EndOfTurn, above: float | None) -> str:
    heard, smart_turn = row["heard"], row["smart_turn"]
    return policy.decide(heard, smart_turn, row["ends_here"], row["last_word_sound_s"], above).value
