"""How long this user pauses inside a turn: learned per session, pure (no I/O, no clock).

The end-of-turn judges read the words and the sound of one moment; a person
who hesitates mid-sentence ("I have a meeting … with my manager at noon")
leaves a first half that every judge may call complete. What the judges
cannot see, the session can: that *this* user went on after a turn was ended
at a pause (a false end: the judges were wrong for them), and how long that
pause was. As LiveKit's dynamic endpointing raises its delay after such an
interruption, ``Patience`` remembers the longest such pause in the user's
last few turns; the session then holds the first sound of a reply to a turn
ended at a pause until the silence is longer than that pause (``session``:
statements and doubted turns only, where the judges go wrong). It may also
learn from every pause a user went on after, judged incomplete or not
(``--end-of-turn-patience-from pauses``); that makes every hesitant user wait
longer, where the judges handle their hesitations well too (README).

Everything is in 20 ms VAD frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MARGIN_FRAMES = 5
"""100 ms beyond the longest pause heard: the same person's pauses vary."""


@dataclass
class Patience:
    turns: int = 10
    """How many of the user's latest turns it remembers (0: it learns nothing)."""
    max_frames: int = 50
    """It never holds longer than this: the silence that ends any turn."""
    _remembered: deque[int] = field(default_factory=deque, init=False)
    """The longest pause the user went on after, per remembered turn, oldest first."""
    _open: int = field(default=0, init=False)
    """The same for the turn in progress."""

    def went_on(self, silent_frames: int) -> None:
        """The user spoke again after this silence inside their turn (or after a turn
        that was ended at a pause, and so goes on)."""
        if self.turns > 0:
            self._open = max(self._open, silent_frames)

    def turn_ended(self) -> int:
        """The turn in progress is over: the hold its reply waits for (``hold_frames``,
        asked before this turn joins the remembered ones, so a false end holds the
        ``turns`` turns after it, not one fewer); then remember its longest pause and
        forget the oldest."""
        hold = self.hold_frames()
        if self.turns > 0:
            self._remembered.append(self._open)
            self._open = 0
            while len(self._remembered) > self.turns:
                self._remembered.popleft()
        return hold

    def turn_reopened(self) -> None:
        """The turn last ended goes on after all: it is the turn in progress again."""
        if self._remembered:
            self._open = max(self._open, self._remembered.pop())

    def hold_frames(self) -> int:
        """The silence a reply's first sound waits for after the turn in progress ends
        at a pause: the longest pause in it and in the ``turns`` turns before it, plus a
        margin; 0 if none."""
        longest = max(self._open, *self._remembered, 0)
        if longest == 0:
            return 0
        return min(longest + MARGIN_FRAMES, self.max_frames)
