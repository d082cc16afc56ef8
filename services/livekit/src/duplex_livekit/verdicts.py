"""The verdict on a turn's words and the silence it asks for, for the LiveKit agent (pure).

``silence_after`` is the policy duplex's own sessions follow at a pause
(``judging``): none for a complete turn, the doubt's for a doubted one, the
full silence for an unfinished one, longer for words that want more.
``DuplexTurnDetector`` (``turns``) measures, and answers AgentSession with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn, Verdict, wants_more


def judges_language(language: str) -> bool:
    """English: the rules the words are judged by are English's (``turn_words``). In
    another language AgentSession would not ask the detector and would end each turn
    at the VAD's pause: the agent keeps the silence there (``VoiceParts.from_config``)."""
    spoken = language.lower()
    return spoken == "en" or spoken.startswith("en-")


@dataclass(frozen=True)
class TurnSilences:
    """The silences after the speech that end a turn, by verdict (milliseconds)."""

    gap_ms: int = 60
    """Whisper starts speculatively here, on the utterance so far (0: never)."""
    pause_ms: int = 200
    """The VAD ends an utterance here, and the judges are asked."""
    doubt_ms: int = 500
    """A doubted question."""
    statement_doubt_ms: int = 700
    """A doubted statement (past a 0.6 s hesitation)."""
    full_ms: int = 1000
    """Any turn: the words are unfinished, or nobody could judge."""
    unfinished_ms: int = 2000
    """Words that want more ("... a table for"), if longer than ``full_ms``."""

    @classmethod
    def from_config(cls, config: OrchestratorConfig) -> TurnSilences:
        return cls(
            gap_ms=config.speculate_ms if config.speculate_ms < config.end_of_turn_pause_ms else 0,
            pause_ms=config.end_of_turn_pause_ms,
            doubt_ms=config.end_of_turn_doubt_ms,
            statement_doubt_ms=config.end_of_turn_statement_doubt_ms,
            full_ms=config.turn_silence_ms(judged=True),
            unfinished_ms=config.end_of_turn_unfinished_ms,
        )


DEFAULT_SILENCES = TurnSilences()


@dataclass(frozen=True)
class Measures:
    """What the judges heard in a turn, as ``EndOfTurn.decide`` takes it."""

    text: str
    probability: float | None = None
    """Smart Turn's (None: not asked)."""
    ends_here: float | None = None
    last_word_sound_s: float | None = None
    above_usual_st: float | None = None


def silence_after(
    policy: EndOfTurn, silences: TurnSilences, heard: Measures
) -> tuple[Verdict, int]:
    """The verdict on a turn's words and sound, and the silence after its speech (ms)
    at which it ends: as the orchestrator's sessions end theirs (``judging``)."""
    verdict = policy.decide(
        heard.text,
        heard.probability,
        heard.ends_here,
        heard.last_word_sound_s,
        heard.above_usual_st,
    )
    if verdict is Verdict.COMPLETE:
        return verdict, 0
    if verdict is Verdict.DOUBTED:
        long = policy.doubts_long(heard.text, heard.probability)
        doubt = silences.statement_doubt_ms if long else silences.doubt_ms
        return verdict, min(doubt, silences.full_ms)
    if policy.uses_transcript and wants_more(heard.text):
        return verdict, max(silences.full_ms, silences.unfinished_ms)
    return verdict, silences.full_ms


@dataclass(frozen=True, eq=False)
class Judgement:
    """The verdict on the turn as it stood at an utterance's end."""

    text: str
    """The turn's words as Whisper heard them whole (judged)."""
    said: str
    """The turn's words as handed to AgentSession, utterance by utterance."""
    verdict: Verdict
    wait_s: float
    """Silence after the speech at which the turn ends."""
    spoke_until: float
    """When the speech ended (the detector's clock)."""

    @property
    def ends_at(self) -> float:
        return self.spoke_until + self.wait_s
