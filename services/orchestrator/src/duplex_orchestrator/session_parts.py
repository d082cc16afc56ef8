"""What a voice session is given: the services every session shares, and its transport's I/O.

``session`` re-exports these; they live apart to keep the session core small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.endpoint import EndOfTurn, is_statement
from duplex_orchestrator.events import Event
from duplex_orchestrator.llm import HISTORY_CHARS, LLMBridge
from duplex_orchestrator.protocol import ProtocolError
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.vad import FrameClassifier, SpeechDetector, Vad, WebRtcClassifier


class SessionIO(Protocol):
    """What a transport gives a session: events and audio out, toward its client."""

    async def event(self, event: Event) -> None:
        """Serialize and send one event (in order with the audio)."""

    async def audio(self, frame: bytes) -> None:
        """Send one 20 ms frame: 960 PCM16 samples at 48 kHz, as it comes (no re-buffering)."""

    async def flush_audio(self) -> None:
        """Barge-in: drop, at once, the reply audio still queued toward the client."""


@dataclass
class Speaking:
    """How many sessions' users are speaking now: the load their turns will bring."""

    count: int = 0


@dataclass
class Services:
    """What every session shares."""

    registry: Registry
    transcriber: SpeechToText
    llm: LLMBridge
    default_model: str
    classifier: Callable[[], FrameClassifier] = WebRtcClassifier
    """A new per-stream speech classifier for each session's VAD (the app builds it from
    the configuration, Silero by default; webrtcvad here needs no model file)."""
    onset_frames: int = 4
    end_frames: int = 25
    pause_frames: int = 10
    """Silence inside speech (20 ms frames) at which the turn's completeness is judged."""
    doubt_frames: int = 25
    """Silence inside speech (20 ms frames) that ends a question whose words read as
    complete though Smart Turn doubted it (``end_frames`` or more: never sooner)."""
    statement_doubt_frames: int = 35
    """The same for a statement, doubted by Smart Turn or by Whisper."""
    patience_turns: int = 10
    """How many of its user's latest turns a session learns their pauses from
    (``patience.Patience``; 0: off)."""
    patience_from_pauses: bool = False
    """It learns only from turns ended at a pause that the user went on after; True:
    from every pause inside a turn the user went on after too."""
    patience_max_frames: int = 0
    """The longest a user's learned pause makes the session wait: for a reply's sound and
    for the silence that ends their turns (at most ``end_frames``: never past it)."""
    unfinished_frames: int = 0
    """The silence that ends a turn whose words want more at a pause (``wants_more``; at
    most ``end_frames``: never past it)."""
    gap_frames: int = 3
    """Silence inside speech (20 ms frames) at which the judging starts speculatively
    while no other session's user is speaking (0: at the pause)."""
    busy_gap_frames: int = 6
    """Longer silence at which it starts while others are (0: never then): a shorter
    gap's guess is more often stale, and its CPU is what their turns will wait for."""
    backchannels_resume: bool = True
    """Speech over a reply that is only an acknowledgement ("uh-huh") resumes it
    (``turns.is_backchannel``); False: it stops the reply and is answered."""
    sound_hold_max_s: float = 0.14
    """The longest a reply's first sound waits for a run of speech after a turn judged
    complete to become an onset or not (``Reply.first_sound``): the onset's run and a
    little jitter in the audio's arrival, as the VAD may stop hearing the client."""
    speaking: Speaking = field(default_factory=Speaking)
    """The users speaking now, across the sessions that share these services."""
    end_of_turn: EndOfTurn = field(default_factory=lambda: EndOfTurn("silence"))
    smart_turn: TurnModel | None = None
    """Smart Turn, when ``end_of_turn`` uses it."""
    history_chars: int = HISTORY_CHARS
    """The conversation the LLM is given with each turn, and all a session keeps of it:
    its latest messages within this many characters (``llm.recent``)."""
    stall_s: float = 0.5
    """Silence on a reply stream before its worker is probed."""
    probe_timeout_s: float = 0.75

    def new_vad(self) -> Vad:
        """A session's own VAD: its classifier, the debounce and the silences above."""
        return Vad(
            self.classifier(),
            SpeechDetector(
                onset_frames=self.onset_frames,
                end_frames=self.end_frames,
                pause_frames=min(self.pause_frames, self.end_frames - 1),
                gap_frames=min(self.gap_frames, self.pause_frames - 1),
                busy_gap_frames=min(self.busy_gap_frames, self.pause_frames - 1),
            ),
        )

    def doubt_frames_for(self, words: str | None) -> int:
        """The doubt's silence for a turn ended at a pause on these words: a
        statement's, or a question's (None: the words are not in)."""
        if words is not None and is_statement(words):
            return self.statement_doubt_frames
        return self.doubt_frames


class TurnModel(Protocol):
    """A learned end-of-turn model (``smart_turn.SmartTurn``; a fake in unit tests)."""

    def probability(self, audio16k: np.ndarray) -> float:
        """Blocking: the chance that the turn ending with this audio is complete."""
        ...


def check_model(model: str, registry: Registry, default_model: str) -> None:
    """A ProtocolError unless the workers serve ``model`` (any transport's model switch)."""
    known = {m["id"] for m in registry.models()}
    if not known and model != default_model:
        raise ProtocolError(
            "no_worker",
            f"no TTS worker is reachable, so model {model!r} cannot be checked; "
            "try again when one is (GET /healthz lists them)",
        )
    if known and model not in known:
        raise ProtocolError(
            "unknown_model",
            f"unknown model {model!r}; available: {', '.join(sorted(map(str, known)))}",
        )
