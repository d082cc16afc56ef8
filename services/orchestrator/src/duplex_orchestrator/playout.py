"""What a client holds of a reply but has not played yet, by the clock: pure.

A barge-in tells the client to drop its buffered audio at once, so the reply
falls silent within the onset; if the barge-in turns out false (a cough, or
"uh-huh") the reply resumes, and without this the words the client dropped,
about the worker's lead and the client's cushion, would be skipped. The
orchestrator cannot see the client's buffer, so it follows the client's
schedule as the web page keeps it: a frame plays right after the one before,
or, when the client ran dry, a cushion after it arrives (``app.js``'s
``JITTER_S``; WebRTC's jitter buffer is of the same order). The frames whose
play had not ended at the pause are sent again first when the reply resumes:
at worst a part of one frame is heard twice, never a word skipped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

FRAME_S = 0.02
"""The length of a frame the worker sends (20 ms at 48 kHz)."""
CUSHION_S = 0.05
"""What the web client waits before it plays a frame that found it dry."""


@dataclass
class Playout:
    """The frames sent to the client, and when it plays each (``sent``); the ones it
    has not finished playing yet (``unplayed``)."""

    cushion_s: float = CUSHION_S
    _playhead: float = field(default=float("-inf"), init=False)
    _ends: deque[tuple[float, bytes]] = field(default_factory=deque, init=False)
    """Each frame the client may still hold, with when its play ends."""

    def sent(self, frame: bytes, now: float) -> None:
        """``frame`` went to the client at ``now``."""
        while self._ends and self._ends[0][0] <= now:
            self._ends.popleft()  # played: forgotten
        if self._playhead < now:  # the client ran dry: it starts again after a cushion
            self._playhead = now + self.cushion_s
        self._playhead += FRAME_S
        self._ends.append((self._playhead, frame))

    def playing(self, now: float) -> bool:
        """Whether the client may still be playing a frame at ``now`` (none since a flush)."""
        return bool(self._ends) and self._ends[-1][0] > now

    def pending(self, now: float) -> int:
        """How many frames the client holds at ``now`` that it has not finished playing."""
        return sum(1 for end, _ in self._ends if end > now)

    def unplayed(self, now: float) -> list[bytes]:
        """The frames whose play had not ended at ``now``, in order; the client drops
        them at a flush. Forgets everything: after a flush the client starts dry."""
        frames = [frame for end, frame in self._ends if end > now]
        self._ends.clear()
        self._playhead = float("-inf")
        return frames


__all__ = ["CUSHION_S", "FRAME_S", "Playout"]
