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

A pause longer than the silence that ends any turn (a person who stops for
1.3 s mid-sentence) is learned too: a user who speaks again within half a
second of a turn ended by that silence, with words that stop its reply, was
going on (LiveKit's dynamic endpointing takes an interruption this soon after
the agent began for a false end of turn too). From then on the silence that
ends this user's turns (``silence_frames``) and the hold are that pause and a
margin, up to ``max_frames``; each turn they go on after such a pause again
(``went_on_past``) renews it.

Everything is in 20 ms VAD frames; the time since a turn ended by the full
silence is also read from the session's clock, as a client may send nothing
between its user's utterances (the frames would call any later speech soon).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MARGIN_FRAMES = 5
"""100 ms beyond the longest pause heard: the same person's pauses vary."""
FRAME_S = 0.02
RESUMED_WITHIN_FRAMES = 25
"""Speech this soon (500 ms) after a turn ended by the full silence, whose words stop the
reply, was the user going on; later, they were answering the reply."""


@dataclass
class Patience:
    turns: int = 10
    """How many of the user's latest turns it remembers (0: it learns nothing)."""
    max_frames: int = 50
    """It never holds, nor waits for the end of a turn, longer than this."""
    _remembered: deque[int] = field(default_factory=deque, init=False)
    """The longest pause the user went on after, per remembered turn, oldest first."""
    _open: int = field(default=0, init=False)
    """The same for the turn in progress."""
    _since_silence_end: int | None = field(default=None, init=False)
    """Frames of silence since the last speech of a turn ended by the full silence, while
    speech may yet show it was a pause (None: none such)."""
    _ended_after: int = field(default=0, init=False)
    """The silence that ended that turn."""
    _last_speech_s: float | None = field(default=None, init=False)
    """When that turn's last speech was, on the session's clock (None: not told)."""
    _resumed_after: int | None = field(default=None, init=False)
    """The pause before the utterance in progress, when it began soon after such a turn."""

    def went_on(self, silent_frames: int) -> None:
        """The user spoke again after this silence inside their turn (or after a turn
        that was ended at a pause, and so goes on)."""
        if self.turns > 0:
            self._open = max(self._open, silent_frames)

    def went_on_past(self, pause: int, end_frames: int) -> None:
        """The user went on after this pause inside their turn: one that the silence
        ending any turn (``end_frames``) would have ended, and that the longer silence
        learned (``silence_frames``) carried. It is remembered again, as a false end
        would be: else patience would run out while it works, and cut the user off once
        more. (A pause that only words that want more carried,
        ``--end-of-turn-unfinished-ms``, teaches nothing: the judges were not wrong.)"""
        if end_frames <= pause < self.silence_frames(end_frames):
            self.went_on(pause)

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

    def silence_ended(self, silent_frames: int, last_speech_s: float | None = None) -> None:
        """The turn ended by the full silence, ``silent_frames`` after its last speech
        (at ``last_speech_s`` on the session's clock, if given)."""
        self._ended_after = silent_frames
        self._since_silence_end = silent_frames
        self._last_speech_s = last_speech_s

    def silent_frame(self) -> None:
        """One more frame of audio since then (speech or not)."""
        if self._since_silence_end is not None:
            self._since_silence_end += 1

    def speech_started(self, onset_frames: int, now_s: float | None = None) -> None:
        """An onset (its ``onset_frames`` of speech counted among the frames since): the
        pause before it, when it came soon after a turn ended by the full silence. The
        frames since, or the time since (``now_s``) if longer: audio the client did not
        send was silence too."""
        since, self._since_silence_end = self._since_silence_end, None
        if since is not None and now_s is not None and self._last_speech_s is not None:
            since = max(since, round((now_s - self._last_speech_s) / FRAME_S))
        pause = None if since is None else since - onset_frames
        soon = pause is not None and pause <= self._ended_after + RESUMED_WITHIN_FRAMES
        self._resumed_after = pause if soon else None

    def resumed_after(self) -> int | None:
        """At the end of the utterance in progress: the pause before it, when it began soon
        after a turn ended by the full silence (asked once: None after)."""
        pause, self._resumed_after = self._resumed_after, None
        return pause

    def went_on_after_end(self, pause: int) -> None:
        """The words said after that ``pause`` (``resumed_after``) stopped the reply of the
        turn before (not noise, not an "uh-huh"): the silence that ended it was a pause
        inside the user's turn, remembered with their latest turn."""
        if self.turns > 0 and self._remembered:
            self._remembered[-1] = max(self._remembered[-1], pause)

    def silence_frames(self, end_frames: int) -> int:
        """The silence that ends this user's turns: ``end_frames``, or their hold when they
        went on after a longer pause (at most ``max_frames``)."""
        return max(end_frames, self.hold_frames())

    def hold_frames(self) -> int:
        """The silence a reply's first sound waits for after the turn in progress ends
        at a pause: the longest pause in it and in the ``turns`` turns before it, plus a
        margin; 0 if none."""
        longest = max(self._open, *self._remembered, 0)
        if longest == 0:
            return 0
        return min(longest + MARGIN_FRAMES, self.max_frames)
