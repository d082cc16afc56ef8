"""Wall-clock pacing of 20 ms frames with a small bounded lead: pure, the caller passes ``now``.

Frame k of a run is due at ``anchor + k * frame_s``; it may leave up to
``lead_s`` early, so the client holds a small cushion but never the whole
utterance. A frame that is late by more than a frame re-anchors the schedule
instead of bursting to catch up (the client has already played the gap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from duplex_protocol import FRAME_MS


@dataclass
class Pacer:
    lead_s: float = 0.06
    frame_s: float = FRAME_MS / 1000
    _anchor: float | None = field(default=None, init=False)
    _index: int = field(default=0, init=False)
    underruns: int = field(default=0, init=False)
    """Times the schedule was re-anchored because a frame was over a frame late."""

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame may leave (≤ 0: send now)."""
        if self._anchor is None:
            return 0.0
        due = self._anchor + self._index * self.frame_s
        if now - due > self.frame_s:
            self._anchor = now - self._index * self.frame_s
            self.underruns += 1
            due = now
        return due - self.lead_s - now

    def sent(self, now: float) -> float:
        """Record that the next frame left at ``now``; return its lateness (≥ 0) versus schedule."""
        if self._anchor is None:
            self._anchor = now
        due = self._anchor + self._index * self.frame_s
        self._index += 1
        return max(0.0, now - due)

    def restart(self, now: float) -> None:
        """After a pause: a fresh schedule from ``now`` (nothing is caught up).

        Frames sent ahead before the pause are still in the client's buffer if
        the pause was shorter than that lead, so the fresh schedule starts when
        they run out: the lead stays bounded however often PAUSE/RESUME come.
        """
        if self._anchor is not None:
            self._anchor = max(now, self._anchor + self._index * self.frame_s)
        self._index = 0
