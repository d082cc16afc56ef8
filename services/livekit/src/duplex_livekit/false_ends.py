"""False ends in a LiveKit room: the user going on soon after a turn was answered (pure).

A turn answered "likely" may have been a pause inside the user's turn. Speech
soon after its end shows it: within the continue window after a turn ended at
a pause or a doubt (``EndOfTurn.continue_window_ms``), within half a second
after one the full silence ended (``patience.RESUMED_WITHIN_FRAMES``), as in
duplex's own sessions. ``FalseEnds`` remembers the turn last ended until speech
begins, says whether that speech went on from it (``went_on``: Whisper then
hears the words with that turn, and the judges judge the whole), and, once its
words are heard as going on, which turn they join (``take_joined``: the agent
takes that turn back from the chat).
"""

from __future__ import annotations

from dataclasses import dataclass

from duplex_livekit.verdicts import Judgement
from duplex_orchestrator.endpoint import Verdict
from duplex_orchestrator.patience import FRAME_S, RESUMED_WITHIN_FRAMES


@dataclass(frozen=True)
class WentOn:
    """Speech began soon after ``turn`` was answered, ``pause_s`` after its last sound."""

    turn: Judgement
    pause_s: float


class FalseEnds:
    """One session's turn last answered, and the speech after it. ``continue_window_s``:
    how soon speech after a turn ended at a pause or a doubt goes on from it."""

    def __init__(self, continue_window_s: float) -> None:
        self._window_s = continue_window_s
        self._ended: Judgement | None = None
        self.went_on: WentOn | None = None
        """The turn the speech now being heard may go on from, until it is heard."""
        self._joined: Judgement | None = None

    def ended(self, turn: Judgement | None) -> None:
        """``turn`` was answered; None: speech after the last one is a new turn (the
        client ended it, or the turns changed from automatic to manual or back)."""
        self._ended = turn

    def onset(self, at: float) -> None:
        """Speech began at ``at`` (the clock's): whether it goes on from the turn last
        answered (``went_on``); either way that turn is no longer the last ended."""
        ended, self._ended = self._ended, None
        self.went_on = None
        if ended is None:
            return
        by_silence = ended.verdict is Verdict.INCOMPLETE
        window_s = RESUMED_WITHIN_FRAMES * FRAME_S if by_silence else self._window_s
        if at - ended.ends_at <= window_s:
            self.went_on = WentOn(ended, at - ended.spoke_until)

    def take_went_on(self) -> WentOn | None:
        """Once, as the speech is heard: the turn it may go on from."""
        went_on, self.went_on = self.went_on, None
        return went_on

    def join(self, turn: Judgement | None) -> None:
        """The words heard go on from ``turn`` (None: they are a turn of their own)."""
        self._joined = turn

    def take_joined(self) -> Judgement | None:
        """Once: the turn answered too soon that the user's turn now ending went on
        from (a false end), for its words to join this turn's; None: a turn of its own."""
        joined, self._joined = self._joined, None
        return joined


__all__ = ["FalseEnds", "WentOn"]
