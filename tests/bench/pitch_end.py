"""The end-of-turn bench's pitch judge: each voice a user the session already knows.

A session learns how far its user's pitch falls at the end of a statement, and
of a question of each kind, from the turns it ended on (``prosody.PitchHabits``).
Here each voice is a user: for a clip of one phrase set (split), the usual end
is the median of that voice's complete sentences of the same kind
(``turn_words.end_kind``) in the *other* sets that the other judges let end at
the pause, so no clip's own set teaches the judge about it. A user the session
has heard only three to five of a kind from has a noisier usual end (README,
*the pitch at a statement's end*). A user it has heard fewer than three from
is judged against the policy's first usual fall for a statement
(``pitch_first_fall_st``), and not at all for a question: each row's
``verdict_first`` is that verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from duplex_orchestrator.endpoint import EndOfTurn, end_kind


def usual_falls(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
    """Per (voice, split, kind of end): the median fall of the voice's complete
    sentences of that kind judged complete in the other splits."""
    ends = [
        row
        for row in rows
        if row["kind"] == "complete"
        and row["verdict_without_pitch"] == "complete"
        and end_kind(row["heard"]) is not None
        and row["fall_st"] is not None
    ]
    usual: dict[tuple[str, str, str], float] = {}
    for voice in {row["voice"] for row in rows}:
        for split in {row["split"] for row in rows}:
            for kind in {end_kind(r["heard"]) for r in ends}:
                falls = [
                    r["fall_st"]
                    for r in ends
                    if r["voice"] == voice and r["split"] != split and end_kind(r["heard"]) == kind
                ]
                if falls and kind is not None:
                    usual[voice, split, kind] = float(np.median(falls))
    return usual


def with_pitch(rows: list[dict[str, Any]], policy: EndOfTurn) -> None:
    """Each row's verdict with the pitch judge (``above_usual_st``, ``verdict`` and
    ``pitch_doubted``), from the other judges' answers in it; ``verdict_first`` and
    ``first_pitch_doubted``: the same for a user whose sentences are not known yet."""
    usual = usual_falls(rows)
    for row in rows:
        kind = end_kind(row["heard"])
        known = usual.get((row["voice"], row["split"], kind)) if kind is not None else None
        first = policy.pitch_first_fall_st if kind == "statement" else None
        row["above_usual_st"] = _above(row["fall_st"], known)
        row["verdict"] = _verdict(row, policy, row["above_usual_st"])
        row["pitch_doubted"] = _doubted(row, policy, row["verdict"], row["above_usual_st"])
        above_first = _above(row["fall_st"], first)
        row["verdict_first"] = _verdict(row, policy, above_first)
        row["first_pitch_doubted"] = _doubted(row, policy, row["verdict_first"], above_first)


def _above(fall: float | None, usual: float | None) -> float | None:
    return None if fall is None or usual is None else fall - usual


def _verdict(row: dict[str, Any], policy: EndOfTurn, above: float | None) -> str:
    heard, smart_turn = row["heard"], row["smart_turn"]
    return policy.decide(heard, smart_turn, row["ends_here"], row["last_word_sound_s"], above).value


def _doubted(row: dict[str, Any], policy: EndOfTurn, verdict: str, above: float | None) -> bool:
    """Doubted by the pitch, as the session counts it (it then waits a statement's doubt)."""
    return verdict == "doubted" and policy.pitch_doubted(row["heard"], above)
