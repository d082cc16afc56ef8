"""End of turn in a LiveKit room by completeness, not silence: duplex's judges in AgentSession.

With ``turn_detection="vad"`` alone, AgentSession ends every turn at one
silence, whatever was said: 500 ms cuts a person off at a hesitation
("I would like to order … a large pizza") and makes a complete question wait.
``DuplexTurnDetector`` brings the orchestrator's judges (``endpoint.EndOfTurn``:
Whisper's punctuation, its doubt and the sound under the last word, Smart Turn
v3.2, a statement's pitch against this user's usual) to the room:

- ``DuplexVAD`` ends an utterance at the short pause (``--end-of-turn-pause-ms``)
  and tells the detector when speech begins (``speech_started``: an onset, or
  speech again after a silence inside the utterance) and of the first
  silence inside speech, the gap (``--speculate-ms``: ``speculate``), where
  Whisper starts on the utterance so far on an idle worker, as in duplex's
  sessions: at the pause, if no speech came since, its transcript is the
  utterance's, already done or nearly;
- ``DuplexSTT`` hands each utterance to ``hear`` (blocking, on its thread):
  Whisper on the turn so far (or the gap's transcript of it): an utterance that
  begins before the verdict's silence on the words before has run out goes on
  the same turn, and the judges need its whole sentence ("Can you tell me
  about the weather tomorrow?", not "the weather tomorrow."), as in duplex's
  sessions; AgentSession, which appends each utterance's words to the turn, is
  handed only the new ones (``continued``). Then the measures the words leave open,
  then the verdict and the silence after the speech that ends the turn
  (``silence_after``, pure): none for a complete turn, the doubt's for a
  doubted one, the full silence for an unfinished one, longer for words that
  want more ("… a table for");
- AgentSession asks ``predict_end_of_turn`` once the utterance's words are in.
  It answers when that silence has passed: at once for a complete turn; else
  later, unless the user speaks first (AgentSession then cancels the question,
  and the next utterance is judged with the turn's audio so far). Asked before
  Whisper has the words of the utterance just ended (AgentSession asks at the
  VAD's end too), it waits for them rather than answer on the words before: a
  turn is never ended on its first half because Whisper was slow. With no
  verdict at all it answers "unlikely", and AgentSession waits its
  ``max_delay``, the full silence.

The reply is prepared while the verdict's silence runs (AgentSession's
preemptive generation, its voice too: ``agent.voice_session``) and heard once
the turn has ended. Not here, unlike the WebSocket and WebRTC sessions: Smart
Turn beside Whisper at the gap, and patience learned from the user's false ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import numpy as np
from livekit.agents import llm

from duplex_livekit.continued import new_words
from duplex_livekit.llm import question_and_history
from duplex_orchestrator import metrics
from duplex_orchestrator.asr import SpeechToText, Transcript
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.endpoint import EndOfTurn, Verdict, is_statement, wants_more
from duplex_orchestrator.prosody import PitchHabit, final_fall_st
from duplex_orchestrator.session_parts import TurnModel
from duplex_orchestrator.vad import VAD_RATE

log = logging.getLogger(__name__)

LIKELY, UNLIKELY = 1.0, 0.0
WORDS_WAIT_S = 5.0
"""The longest a question waits for Whisper's words on the utterance just ended."""
POLL_S = 0.02
_SMART_TURN_S = 8  # what Smart Turn hears of a turn
_HEARD_S = 30  # what Whisper hears of a turn: its window


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


@dataclass(eq=False)
class _Speculation:
    """Whisper on the turn as it stood at a gap; it speaks for the utterance while no
    speech has followed (``cut_at`` after speech last began), and for the turn while
    the utterances before it in the turn are still ``prior`` samples long."""

    cut_at: float
    prior: int
    transcript: Future[Transcript] = field(default_factory=Future)


class DuplexTurnDetector:
    """AgentSession's turn detector (LiveKit's ``_TurnDetector`` protocol), one per session.

    ``recognizer``: Whisper for the speculation at the gap (None: none). ``clock`` is
    monotonic seconds; ``sleep`` waits (injected for tests)."""

    def __init__(
        self,
        policy: EndOfTurn,
        silences: TurnSilences = TurnSilences(),
        smart_turn: TurnModel | None = None,
        *,
        recognizer: SpeechToText | None = None,
        language: str = "en",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.silences = silences
        self.language = language
        self._smart_turn = smart_turn if policy.uses_smart_turn else None
        self.clock = clock
        self._sleep = sleep
        self.pitch = PitchHabit(first_usual_fall_st=policy.pitch_first_fall_st)
        self.latest: Judgement | None = None
        self._recognizer = recognizer if silences.gap_ms > 0 else None
        self._speculation: _Speculation | None = None
        self._speech_at = self._onset_at = float("-inf")
        self._turn_audio = np.zeros(0, np.int16)
        self._turn_said = ""

    @property
    def model(self) -> str:
        return f"duplex-{self.policy.mode}"

    @property
    def provider(self) -> str:
        return "duplex"

    async def unlikely_threshold(self, language: str | None) -> float | None:
        return 0.5

    async def supports_language(self, language: str | None) -> bool:
        return judges_language(str(language or self.language))

    async def predict_end_of_turn(
        self,
        chat_ctx: llm.ChatContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (LiveKit's protocol names it)
    ) -> float:
        """ "Likely" once the silence the verdict on the user's words asks for has
        passed (at once when complete); "unlikely" when there is no verdict on them.
        AgentSession cancels the wait when the user speaks again."""
        judgement = await self._judged(chat_ctx, WORDS_WAIT_S if timeout is None else timeout)
        if judgement is None:
            return UNLIKELY
        remaining = judgement.ends_at - self.clock()
        if timeout is not None and remaining > timeout:
            return UNLIKELY
        if remaining > 0:
            await self._sleep(remaining)
        return LIKELY

    async def _judged(self, chat_ctx: llm.ChatContext, wait_s: float) -> Judgement | None:
        """The verdict on these words. AgentSession asks as the VAD ends an utterance,
        with the words before it, while Whisper still hears it: then wait for its words
        (AgentSession asks again with them, and cancels this), or for the verdict to
        stand if it heard none (a cough), up to ``wait_s``. None: no verdict."""
        for _ in range(max(1, round(min(wait_s, WORDS_WAIT_S) / POLL_S))):
            judgement = self.latest
            if judgement is None:
                return None
            heard = self._speech_at <= judgement.spoke_until
            if heard and _user_said_last(chat_ctx, judgement.said):
                return judgement
            await self._sleep(POLL_S)
        return None

    def speech_started(self, onset: bool = True) -> None:
        """The VAD heard speech begin: an ``onset``, or speech again after a silence
        inside the utterance. A verdict or a transcript begun before it speaks for the
        turn no longer."""
        self._speech_at = self.clock()
        if onset:
            self._onset_at = self._speech_at

    def speculate(self, utterance: np.ndarray) -> None:
        """The gap: start Whisper on the turn so far (the utterance so far, after the
        turn's utterances before it), in a thread, if a Whisper worker is idle and this
        silence has none under way. Speech after it makes it stale: Whisper drops it at
        its next step."""
        recognizer, running = self._recognizer, self._speculation
        if recognizer is None or (running is not None and running.cut_at > self._speech_at):
            return
        if getattr(recognizer, "idle_workers", 1) < 1:
            return  # it would delay another session's turn that has ended
        self._settle(used=False)
        prior = self._turn_audio if self._continues() else np.zeros(0, np.int16)
        turn = np.concatenate([prior, utterance])[-_HEARD_S * VAD_RATE :]
        speculation = self._speculation = _Speculation(self.clock(), len(prior))

        def wanted() -> bool:
            return self._speech_at < speculation.cut_at

        def transcribe() -> None:
            try:
                heard = recognizer.transcribe(turn, wanted, self.policy.wants_last_word)
            except Exception as exc:  # the utterance is transcribed again at the pause
                speculation.transcript.set_exception(exc)
            else:
                speculation.transcript.set_result(heard)

        threading.Thread(target=transcribe, name="duplex-speculation", daemon=True).start()

    def _claimed(self, prior: int) -> Transcript | None:
        """Blocking: the gap's transcript, if no speech has come since its audio was cut
        and it heard the ``prior`` samples of the turn before this utterance (None:
        there is none, or it is stale or failed)."""
        speculation = self._speculation
        if speculation is None or speculation.cut_at <= self._speech_at:
            return None
        if speculation.prior != prior:
            return None  # the turn was judged over, or going on, after the gap
        try:
            heard = speculation.transcript.result()
        except Exception:
            log.exception("speculative transcription failed", extra={"event": "asr_error"})
            return None
        return None if heard.abandoned else heard

    def _settle(self, *, used: bool) -> None:
        if self._speculation is not None:
            outcome = "used" if used else "stale"
            metrics.SPECULATIONS.labels(at="gap", outcome=outcome).inc()
        self._speculation = None

    def _continues(self) -> bool:
        """Whether speech began before the verdict's silence on the words before ran out:
        the same turn goes on."""
        latest = self.latest
        return latest is not None and self._onset_at < latest.ends_at

    def hear(self, utterance: np.ndarray, recognizer: SpeechToText, ended_at: float) -> Transcript:
        """Blocking: transcribe an utterance the VAD ended at ``ended_at`` (the clock's,
        a pause after the speech) and judge the turn it ends. Returns the transcript of
        the words it adds to the turn (``continued.new_words``): Whisper hears the whole
        turn so far."""
        spoke_until = ended_at - self.silences.pause_ms / 1000
        previous = self.latest
        if previous is not None and self._continues():
            self.pitch.forget(previous)
        else:
            self._turn_audio, self._turn_said = np.zeros(0, np.int16), ""
        prior = len(self._turn_audio)
        turn = self._turn_audio = np.concatenate([self._turn_audio, utterance])[
            -_HEARD_S * VAD_RATE :
        ]
        claimed = self._claimed(prior)
        self._settle(used=claimed is not None)
        transcript = claimed or recognizer.transcribe(turn, align=self.policy.wants_last_word)
        added = new_words(self._turn_said, transcript.text, 1 - len(utterance) / len(turn))
        if not added.strip():
            # no new words (a cough): the verdict on the words before stands, from this end on
            if previous is not None:
                self.latest = replace(previous, spoke_until=spoke_until)
            return replace(transcript, text="")
        self._turn_said = f"{self._turn_said} {added}".strip()
        heard, fall = self._measure(transcript, turn[-_SMART_TURN_S * VAD_RATE :])
        verdict, wait_ms = silence_after(self.policy, self.silences, heard)
        judgement = Judgement(heard.text, self._turn_said, verdict, wait_ms / 1000, spoke_until)
        if fall is not None:
            self.pitch.heard(judgement, fall)
        self.latest = judgement
        return replace(transcript, text=added)

    def _measure(self, transcript: Transcript, turn: np.ndarray) -> tuple[Measures, float | None]:
        """What the words leave open, measured: the sound under the last word (where they
        read complete), Smart Turn (where they read complete but for the doubt, or only
        lack their mark), the statement's pitch; and that fall, to learn."""
        policy, text, ends_here = self.policy, transcript.text, transcript.ends_here
        complete = not policy.uses_transcript or policy.words_complete(text, ends_here)
        sound: float | None = None
        if transcript.aligner is not None:
            try:
                sound = transcript.aligned().last_word_sound_s
            except Exception:
                log.exception("alignment failed", extra={"event": "alignment_error"})
        probability: float | None = None
        if self._smart_turn is not None and (complete or policy.lacks_only_its_mark(text)):
            probability = self._smart_turn.probability(turn)
        fall: float | None = None
        above: float | None = None
        if policy.pitch_rise_st > 0 and complete and is_statement(text):
            fall = final_fall_st(turn, VAD_RATE)
            above = self.pitch.above_usual_st(fall)
        return Measures(text, probability, ends_here, sound, above), fall


def _user_said_last(chat_ctx: llm.ChatContext, text: str) -> bool:
    """Whether the user's last message ends with these words (the turn AgentSession
    asks about is the one the verdict was given on)."""
    said, _ = question_and_history(chat_ctx)
    return " ".join(said.split()).lower().endswith(" ".join(text.split()).lower())
