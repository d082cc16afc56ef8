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
    """The interruption had no words, or only a backchannel ("uh-huh"): continue the reply."""
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
    backchannel: bool = False
    """The barge-in was a listener's acknowledgement ("uh-huh", "okay"): resumed, unanswered."""

    @property
    def barge_in_outcome(self) -> str:
        """``duplex_barge_in_total``'s label for a resolved barge-in: the reply stopped,
        or resumed after noise or after a listener's acknowledgement."""
        if Action.STOP_TTS in self.actions:
            return "stop"
        return "backchannel" if self.backchannel else "resume"


_WORD = re.compile(r"[^\W_]{2,}|\b[aAiI]\b|\d")


def has_words(text: str) -> bool:
    """Whether an ASR result holds real words (not empty, not just noise marks).

    A lone letter other than "a" or "I" is not taken for a word; a lone digit is:
    Whisper writes a number said alone as digits ("4.", "5,5"), an answer to "how
    many?" that must be answered."""
    return bool(_WORD.search(_without_marks(text)))


def _without_marks(text: str) -> str:
    return re.sub(r"\[[^\]]*\]|\([^)]*\)", " ", text)  # [noise], (coughs)


# A listener's acknowledgements: said over someone speaking, they mean "go on", not
# "my turn" (LiveKit's adaptive interruption, Agora's keyword mode and Bland's agents
# let them pass too). Answers that may be meant ("yes", "no", "sure", "wait") are not
# here: they stop the reply. Whisper writes "mm-hmm" as "Mm-hmm", "Mhm" or "Hmm".
_BACKCHANNEL_WORDS = frozenset(
    [
        "mm",
        "mmm",
        "hmm",
        "hm",
        "mhm",
        "mm-hmm",
        "uh-huh",
        "uh-hmm",
        "ah",
        "oh",
        "yeah",
        "yep",
        "yup",
        "right",
        "okay",
        "ok",
        "alright",
        "cool",
        "nice",
        "wow",
    ]
)
_BACKCHANNEL_PHRASES = frozenset(
    ["all right", "i see", "got it", "uh huh", "mm hmm", "that's right", "makes sense"]
)
_BACKCHANNEL_MOST_WORDS = 3
# A word is letters or digits: "Okay, 2." answers something ("How many?"), and stops
# the reply as any words but an acknowledgement do.
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def is_backchannel(text: str) -> bool:
    """Whether a transcript is only a listener's acknowledgement ("Mm-hmm.", "Okay,
    okay.", "Oh, I see."): at most three words, each one of them, or a phrase of
    them; not a question ("Okay?" asks something)."""
    cleaned = _without_marks(text).strip().lower()
    if not cleaned or cleaned.endswith("?"):
        return False
    tokens = _TOKEN.findall(cleaned)
    if not tokens or len(tokens) > _BACKCHANNEL_MOST_WORDS:
        return False
    spoken = " ".join(tokens)
    for phrase in _BACKCHANNEL_PHRASES:
        spoken = spoken.replace(phrase, "mhm")
    return all(token in _BACKCHANNEL_WORDS for token in spoken.split())


@dataclass
class Turns:
    clock: Callable[[], float]
    backchannels: bool = True
    """A barge-in that is only an acknowledgement resumes the reply (``is_backchannel``);
    False: any words stop it."""
    state: State = State.LISTENING
    barge_ins: int = 0
    _barge_started: float | None = field(default=None, init=False)
    _finished_during_barge_in: bool = field(default=False, init=False)

    def speech_started(self) -> Decision:
        """VAD onset. While the agent speaks, that is a barge-in: pause and flush."""
        if self.state is State.SPEAKING:
            self.state = State.BARGED_IN
            self.barge_ins += 1
            self._barge_started = self.clock()
            self._finished_during_barge_in = False
            return Decision((Action.PAUSE_TTS, Action.FLUSH_CLIENT))
        return Decision()

    def utterance(self, text: str) -> Decision:
        """End of the user's speech with its transcript."""
        words = has_words(text)
        if self.state is State.BARGED_IN:
            elapsed = self._elapsed_ms()
            if not self.lets_reply_go_on(text):
                self.state = State.LISTENING
                return Decision((Action.STOP_TTS, Action.REPLY), text=text, barge_in_ms=elapsed)
            # A reply whose last frame went out meanwhile has nothing left to speak.
            self.state = State.LISTENING if self._finished_during_barge_in else State.SPEAKING
            # Words that let it go on were only an acknowledgement.
            return Decision((Action.RESUME_TTS,), barge_in_ms=elapsed, backchannel=words)
        if self.state is State.LISTENING and words:
            return Decision((Action.REPLY,), text=text)
        # Words while SPEAKING without an onset cannot happen; noise while listening is ignored.
        return Decision()

    def lets_reply_go_on(self, text: str) -> bool:
        """Whether ``text``, heard over the reply (a barge-in), lets it go on: no words
        (noise) or a listener's acknowledgement (``is_backchannel``)."""
        if self.state is not State.BARGED_IN:
            return False
        return not has_words(text) or (self.backchannels and is_backchannel(text))

    def reply_started(self) -> None:
        self.state = State.SPEAKING

    def reply_finished(self) -> None:
        """The reply's last frame went out (or it was stopped)."""
        if self.state is State.SPEAKING:
            self.state = State.LISTENING
        elif self.state is State.BARGED_IN:
            # The decision is still pending (the utterance resolves it); a resume
            # then returns to listening.
            self._finished_during_barge_in = True

    def _elapsed_ms(self) -> float | None:
        started, self._barge_started = self._barge_started, None
        return None if started is None else (self.clock() - started) * 1000
