"""A turn ended at a pause, until speech continues it or another turn ends.

The ``TurnJudge`` ends a turn at a short pause when it sounds complete, often
*provisionally*: its reply is prepared at once, but its first sound waits
until a judge confirms the turn, or the doubt's silence does, or (for a
statement) the user's learned pause has passed. Speech meanwhile, or soon
after, continues the turn and withdraws the reply unheard. ``JudgedTurn``
counts that silence in 20 ms frames; ``PauseEnds`` is the session's one
such turn: confirming it, and saying whether a reply's first sound waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np

from duplex_orchestrator import metrics
from duplex_orchestrator.judging import Speculation
from duplex_orchestrator.session_parts import Services
from duplex_orchestrator.vad import Vad


@dataclass
class JudgedTurn:
    """A turn ended at a pause because it sounded complete; speech may yet continue it.

    Its confirmation is counted here, in 20 ms frames of the silence after it: a
    judge's "complete" (``agreed``), the user's learned pause (``least_frames``), the
    doubt's silence (``doubt_frames``). The session owns what follows (sound, metrics).
    """

    audio: np.ndarray
    ended_at: float
    task: asyncio.Task[None]
    """The task answering its words (``VoiceSession._finish_turn``)."""
    speculation: Speculation
    silent_frames: int
    """Frames since its last speech frame (counted on after it is confirmed)."""
    doubt_frames: int
    """The silence that confirms it if Smart Turn or Whisper doubted it."""
    end_frames: int
    """The silence that ends any turn: what confirms it while its words are not settled
    (``Speculation.aligning``) or once they turned out unfinished (``unsaid``)."""
    least_frames: int
    """The silence before a judge's "complete" confirms it: the user's learned pause,
    for a statement (0: none)."""
    patience_frames: int = 0
    """The user's learned pause (``Patience.turn_ended``): until the turn is confirmed,
    speech within it continues the turn, even past the continue window."""
    confirmed: bool = False
    """False while a provisional end waits for Smart Turn or the doubt's silence."""
    doubted: bool = False
    """The judges answered and doubted it (else the doubt's silence ran out before
    Smart Turn answered: ``judged_unanswered``)."""
    judged_complete: bool = False
    """A judge called it complete, and it waits for ``least_frames`` of silence."""

    def _silence_needed(self) -> int:
        if self._words_unsettled():
            return self.end_frames
        return self.doubt_frames

    def _words_unsettled(self) -> bool:
        return self.speculation.aligning or self.speculation.unsaid

    def agreed(self) -> bool:
        """A judge calls it complete: whether that confirms it now (or, within the
        user's learned pause, once the silence outlasts it: ``silence``)."""
        self.judged_complete = True
        return self.silent_frames >= self.least_frames

    def silence(self) -> str | None:
        """One more frame after it: how it is confirmed now (the ``duplex_turn_ends_total``
        label), or None."""
        self.silent_frames += 1
        if self.confirmed:
            return None
        if self.judged_complete and self.silent_frames >= self.least_frames:
            return "judged_after_patience"
        if self.silent_frames >= self._silence_needed():
            if self._words_unsettled():
                return "silence"
            return "judged_after_doubt" if self.doubted else "judged_unanswered"
        return None

    def unconfirmed_frames(self) -> int:
        """The silence still to come before the doubt's confirms it (0: confirmed)."""
        return 0 if self.confirmed else max(0, self._silence_needed() - self.silent_frames)

    def pause_before(self, onset_frames: int) -> int:
        """Speech resumed with an onset of ``onset_frames``, counted in ``silent_frames``
        but the last: the pause the user went on after."""
        return max(0, self.silent_frames - onset_frames + 1)


class PauseEnds:
    """The session's turn ended at a pause (``judged``), if speech may still continue it.

    ``recheck`` is called when it is confirmed: a reply's first sound held for it may
    go now.
    """

    def __init__(
        self,
        services: Services,
        vad: Vad,
        clock: Callable[[], float],
        recheck: Callable[[], None],
    ) -> None:
        self._services, self._vad, self._clock = services, vad, clock
        self._recheck = recheck
        self.judged: JudgedTurn | None = None

    def opened(self, judged: JudgedTurn, by: str) -> None:
        """A turn ended at this pause: ``provisional`` (to be confirmed), or by a judge."""
        self.judged = judged
        if by != "provisional":
            self.confirm(judged.speculation, by)

    def clear(self) -> None:
        """Another turn ended: speech can no longer continue this one."""
        self.judged = None

    def confirm(self, speculation: Speculation, by: str = "judged_complete") -> None:
        """The turn ended provisionally on ``speculation`` is over: its reply may sound
        (a judge's "complete" waits for the user's learned pause, ``least_frames``)."""
        judged = self.judged
        if judged is None or judged.confirmed or judged.speculation is not speculation:
            return  # continued meanwhile, or confirmed already
        if by == "judged_complete" and not judged.agreed():
            return  # after the user's pause: ``silence_went_on``
        judged.confirmed = True
        metrics.TURN_ENDS.labels(by=by).inc()
        self._recheck()

    def end_now(self) -> bool:
        """The client says the turn is over (``end_turn``): a turn ended at a pause is
        confirmed now if it was not (``client``), and speech can no longer continue it.
        False: none was open."""
        judged = self.judged
        if judged is None:
            return False
        self.confirm(judged.speculation, "client")
        self.clear()
        self._recheck()
        return True

    def doubt(self, speculation: Speculation, long: bool = False) -> None:
        """The judges doubt the turn ended provisionally on ``speculation``: the doubt's
        silence confirms it (counted as ``judged_after_doubt``), or the full silence if
        its last word turned out unsaid (``silence``: ``Speculation.unsaid``). ``long``:
        a statement's doubt, also for a question Smart Turn is sure is unfinished."""
        judged = self.judged
        if judged is not None and judged.speculation is speculation:
            judged.doubted = True
            if long:
                statement = self._services.statement_doubt_frames
                judged.doubt_frames = max(judged.doubt_frames, statement)

    def silence_went_on(self) -> None:
        """After each frame: a provisional end that Smart Turn or Whisper doubted (or
        Smart Turn has not answered) is confirmed once the silence reaches the doubt's
        length, a question's or a statement's (``Services.doubt_frames_for``); one
        judged complete, once it reaches the user's learned pause."""
        judged = self.judged
        if judged is not None and (by := judged.silence()) is not None:
            self.confirm(judged.speculation, by)

    def reopened(self) -> JudgedTurn | None:
        """Speech began: the turn it continues (forgotten here), or None when it is a
        new turn or a barge-in."""
        judged, self.judged = self.judged, None
        return judged if self._may_go_on(judged) else None

    def sound_held(self) -> bool:
        """Whether a reply's first sound waits now: the turn was ended at a pause and
        is not confirmed yet, or the user may have begun a word, which would continue
        the turn and withdraw its reply. A sound well above the pause's, or speech that
        may yet make an onset: sent, that first sound would reach the client before
        the onset's flush."""
        judged = self.judged
        if not self._may_go_on(judged):
            return False  # speech now would be a barge-in, not the turn going on
        vad = self._vad
        return not judged.confirmed or vad.sounding or vad.detector.onset_pending

    def hold_max_s(self) -> float:
        """The longest a new reply's first sound may wait: until an unconfirmed turn's
        doubt is over (the VAD may stop hearing the client), then an onset's run. The
        judges may not have answered yet: a question's doubt may yet be a statement's
        (``doubt``), so an unconfirmed turn is given at least that."""
        judged = self.judged
        unconfirmed = 0
        if judged is not None and not judged.confirmed:
            longest = self._services.statement_doubt_frames - judged.silent_frames
            unconfirmed = max(judged.unconfirmed_frames(), longest)
        return self._services.sound_hold_max_s + unconfirmed * 0.02

    def _may_go_on(self, judged: JudgedTurn | None) -> TypeGuard[JudgedTurn]:
        """Whether speech now would continue this turn ended at a pause: within the
        continue window, or while its reply is held for the user's learned pause if that
        is longer (the held reply must not sound before the pause is over, and speech
        within it is the turn going on); in time, as a client that stopped sending
        audio never confirms it."""
        if judged is None:
            return False
        window = self._services.end_of_turn.continue_window_ms
        if not judged.confirmed:
            window = max(window, judged.patience_frames * 20)
        return self._clock() - judged.ended_at <= window / 1000


__all__ = ["JudgedTurn", "PauseEnds"]
