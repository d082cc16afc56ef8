"""Turn taking and barge-in: a pure state machine, the clock passed in.

States follow DESIGN §5: LISTENING → SPEAKING → BARGED_IN → LISTENING.
Events come from the VAD, the ASR and the TTS stream; each returns the
actions the session must carry out, so the policy is testable without audio,
sockets or models, and any transport (WebSocket now, LiveKit next) reuses it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field


class State(enum.Enum):
    LISTENING = "listening"
    SPEAKING = "speaking"
    BARGED_IN = "barged_in"


class Action(enum.Enum):
    PAUSE_TTS = "pause_tts"
    """Pause the worker stream (it keeps its place)."""
    FLUSH_CLIENT = "flush_client"
    """Tell the client to drop the audio it has buffered, at once."""
    RESUME_TTS = "resume_tts"
    """The interruption had no words: continue the reply."""
    STOP_TTS = "stop_tts"
    """The interruption had words: end the reply."""
    REPLY = "reply"
    """Answer the user's utterance (its text is in ``Decision.text``)."""


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...] = ()
    text: str = ""
    barge_in_ms: float | None = None
    """Set when a barge-in was resolved: onset → decision, in ms."""


_WORD = re.compile(r"[^\W_]{2,}|\b[aAiI]\b")


def has_words(text: str) -> bool:
    """Whether an ASR result holds real words (not empty, not just noise marks)."""
    cleaned = re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)  # [noise], (coughs)
    return bool(_WORD.search(cleaned))


@dataclass
class Turns:
    clock: Callable[[], float]
    state: State = State.LISTENING
    barge_ins: int = 0
    _barge_started: float | None = field(default=None, init=False)

    def speech_started(self) -> Decision:
        """VAD onset. While the agent speaks, that is a barge-in: pause and flush."""
        if self.state is State.SPEAKING:
            self.state = State.BARGED_IN
            self.barge_ins += 1
            self._barge_started = self.clock()
            return Decision((Action.PAUSE_TTS, Action.FLUSH_CLIENT))
        return Decision()

    def utterance(self, text: str) -> Decision:
        """End of the user's speech with its transcript."""
        words = has_words(text)
        if self.state is State.BARGED_IN:
            elapsed = self._elapsed_ms()
            if words:
                self.state = State.LISTENING
                return Decision((Action.STOP_TTS, Action.REPLY), text=text, barge_in_ms=elapsed)
            self.state = State.SPEAKING
            return Decision((Action.RESUME_TTS,), barge_in_ms=elapsed)
        if self.state is State.LISTENING and words:
            return Decision((Action.REPLY,), text=text)
        # Words while SPEAKING without an onset cannot happen; noise while listening is ignored.
        return Decision()

    def reply_started(self) -> None:
        self.state = State.SPEAKING

    def reply_finished(self) -> None:
        """The reply's last frame went out (or it was stopped)."""
        if self.state is State.SPEAKING:
            self.state = State.LISTENING
        # While BARGED_IN the decision is still pending; the utterance resolves it.

    def _elapsed_ms(self) -> float | None:
        started, self._barge_started = self._barge_started, None
        return None if started is None else (self.clock() - started) * 1000
