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
  Whisper starts on the turn so far on an idle worker, and Smart Turn beside
  it, as in duplex's sessions: at the pause, if no speech came since, their
  answers are the pause's, already done or nearly;
- ``DuplexSTT`` hands each utterance to ``hear`` (blocking, on its thread):
  Whisper on the turn so far (or the gap's transcript of it): an utterance that
  begins before the verdict's silence on the words before has run out goes on
  the same turn, and the judges need its whole sentence ("Can you tell me
  about the weather tomorrow?", not "the weather tomorrow."), as in duplex's
  sessions; AgentSession, which appends each utterance's words to the turn, is
  handed only the new ones (``continued``). Then the measures the words leave open,
  then the verdict and the silence after the speech that ends the turn
  (``verdicts.silence_after``, pure): none for a complete turn, the doubt's for a
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

With manual turns (``manual``: push to talk, the participant's
``duplex.turn_detection`` attribute) nobody judges: every utterance joins the turn
(Whisper hears it whole) until the client's ``end_turn``, and only that answers
"likely"; a detector built with ``judging=False`` (``--end-of-turn silence``)
serves manual turns only, AgentSession's VAD ending the others.

The reply is prepared while the verdict's silence runs (AgentSession's
preemptive generation, its voice too: ``agent.voice_session``) and heard once
the turn has ended. Words (not an "uh-huh") soon after that (``false_ends``)
are heard and judged with the turn, as for a turn that goes on; AgentSession
takes them as a new turn (the agent joins the words before them:
``take_joined``), and the user's patience (``patience.Patience``) learns the
pause, so their statements and doubted turns wait it out from then on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import replace

import numpy as np
from livekit.agents import llm

from duplex_livekit.continued import new_words
from duplex_livekit.false_ends import FalseEnds, WentOn
from duplex_livekit.gap import Speculation, in_thread
from duplex_livekit.llm import user_said_last
from duplex_livekit.measure import measure
from duplex_livekit.verdicts import (
    DEFAULT_SILENCES,
    Judgement,
    TurnSilences,
    judges_language,
    silence_after,
)
from duplex_orchestrator import metrics
from duplex_orchestrator.asr import SpeechToText, Transcript
from duplex_orchestrator.endpoint import EndOfTurn, Verdict, is_statement
from duplex_orchestrator.patience import FRAME_S, Patience
from duplex_orchestrator.prosody import PitchHabit
from duplex_orchestrator.session_parts import TurnModel
from duplex_orchestrator.turns import is_backchannel
from duplex_orchestrator.vad import VAD_RATE

log = logging.getLogger(__name__)

LIKELY, UNLIKELY = 1.0, 0.0
WORDS_WAIT_S = 5.0
"""The longest a question waits for Whisper's words on the utterance just ended."""
POLL_S = 0.02
SAME_ONSET_S = 0.2
"""Onsets closer than this are one, reported by each VAD stream (one stream's own come
at least a pause and an onset apart)."""
_SMART_TURN_S = 8  # what Smart Turn hears of a turn
_HEARD_S = 30  # what Whisper hears of a turn: its window


class DuplexTurnDetector:
    """AgentSession's turn detector (LiveKit's ``_TurnDetector`` protocol), one per session.

    ``recognizer``: Whisper for the speculation at the gap (None: none). ``judging``:
    the judges end automatic turns (False: the detector hears manual turns only, and
    passes the other utterances through). ``clock`` is monotonic seconds; ``sleep``
    waits (injected for tests)."""

    def __init__(
        self,
        policy: EndOfTurn,
        silences: TurnSilences = DEFAULT_SILENCES,
        smart_turn: TurnModel | None = None,
        *,
        recognizer: SpeechToText | None = None,
        patience: Patience | None = None,
        language: str = "en",
        judging: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.judging = judging
        self.manual = False
        """Manual turns: only the client's ``end_turn`` ends one (``set_manual``)."""
        self.silences = silences
        self.language = language
        self._smart_turn = smart_turn if policy.uses_smart_turn else None
        self.clock = clock
        self._sleep = sleep
        self.pitch = PitchHabit(first_usual_fall_st=policy.pitch_first_fall_st)
        self.latest: Judgement | None = None
        self._recognizer = recognizer if silences.gap_ms > 0 else None
        self._speculation: Speculation | None = None
        self._speech_at = self._onset_at = float("-inf")
        self._turn_audio = np.zeros(0, np.int16)
        self._turn_said = ""
        self._asked_said = ""
        """The words of the turn AgentSession holds: after a false end, those since it."""
        self.patience = patience if patience is not None else Patience()
        self._answered: Judgement | None = None
        """The verdict last answered "likely" on: its turn is over."""
        self._false_ends = FalseEnds(policy.continue_window_ms / 1000)
        self._end_asked = asyncio.Event()
        self._end_asked_at = float("-inf")
        self.on_prepares_replies: Callable[[bool], None] | None = None
        """Told when ``prepares_replies`` changes (``agent.voice_session``)."""

    @property
    def model(self) -> str:
        return f"duplex-{self.policy.mode}"

    @property
    def provider(self) -> str:
        return "duplex"

    async def unlikely_threshold(self, language: str | None) -> float | None:
        return 0.5

    async def supports_language(self, language: str | None) -> bool:
        return self.manual or judges_language(str(language or self.language))

    @property
    def prepares_replies(self) -> bool:
        """Whether a reply prepared from the words heard next may be heard (AgentSession's
        preemptive generation): the judges may end the turn on them; a manual turn ends
        only once the client has ended it, and a reply made at each pause before that
        would be dropped at the next words."""
        return self._end_asked.is_set() if self.manual else self.judging

    def _tell_prepares_replies(self) -> None:
        if self.on_prepares_replies is not None:
            self.on_prepares_replies(self.prepares_replies)

    def set_manual(self, manual: bool) -> None:
        """Manual turns (push to talk) or automatic ones, from the next utterance on:
        the words said before are a turn of their own (a manual one waiting for the
        client's end is answered now)."""
        if manual != self.manual:
            self.manual = manual
            self._answered = self.latest
            self._false_ends.ended(None)
            if not manual:
                self._end_asked.set()
            self._tell_prepares_replies()

    async def predict_end_of_turn(
        self,
        chat_ctx: llm.ChatContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (LiveKit's protocol names it)
    ) -> float:
        """ "Likely" once the silence the verdict on the user's words asks for has
        passed (at once when complete); "unlikely" when there is no verdict on them.
        AgentSession cancels the wait when the user speaks again. With manual turns,
        "likely" only once the client has ended the turn."""
        if self.manual:
            await self._end_asked.wait()
            self._answered = await self._judged(chat_ctx, WORDS_WAIT_S) or self.latest
            return LIKELY
        judgement = await self._judged(chat_ctx, WORDS_WAIT_S if timeout is None else timeout)
        if judgement is None:
            return UNLIKELY
        remaining = judgement.ends_at - self.clock()
        if timeout is not None and remaining > timeout:
            return UNLIKELY
        if remaining > 0 and not self._end_asked.is_set():
            await self._until_end_asked(remaining)
        if self._answered is not judgement:  # the turn is over: its pauses are remembered
            self._answered = judgement
            # ended by the client (end_turn): speech after it is a new turn, no false end
            self._false_ends.ended(None if self._end_asked.is_set() else judgement)
            self.patience.turn_ended()
        return LIKELY

    def end_turn(self) -> bool:
        """The client says the user's turn is over (duplex's ``end_turn``: a push-to-talk
        button released): the verdicts given until speech begins again (on the words
        said until now, Whisper's to come included) are answered at once, their silence
        not waited for. Whether a turn is open: speech began since the last turn was
        answered over (its verdict may still be to come)."""
        self._end_asked.set()
        self._end_asked_at = self.clock()
        self._tell_prepares_replies()
        answered = self._answered
        return self._onset_at > (answered.spoke_until if answered else float("-inf"))

    async def _until_end_asked(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the client ends the turn meanwhile."""
        waits = [
            asyncio.ensure_future(self._sleep(seconds)),
            asyncio.ensure_future(self._end_asked.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _judged(self, chat_ctx: llm.ChatContext, wait_s: float) -> Judgement | None:
        """The verdict on these words. AgentSession asks as the VAD ends an utterance,
        with the words before it, while Whisper still hears it: then wait for its words
        (AgentSession asks again with them, and cancels this), or for the verdict to
        stand if it heard none (a cough), up to ``wait_s``. None: no verdict."""
        for _ in range(max(1, round(min(wait_s, WORDS_WAIT_S) / POLL_S))):
            judgement = self.latest
            if judgement is None:
                return None
            # Only an onset follows an utterance the VAD ended. Speech "again" reported
            # later comes from AgentSession's other VAD stream, whose own Silero may not
            # have heard that utterance end yet: no new words will come of it.
            heard = self._onset_at <= judgement.spoke_until
            if heard and user_said_last(chat_ctx, judgement.said):
                return judgement
            await self._sleep(POLL_S)
        return None

    def speech_started(self, onset: bool = True) -> None:
        """The VAD heard speech begin: an ``onset``, or speech again after a silence
        inside the utterance. A verdict or a transcript begun before it speaks for the
        turn no longer. AgentSession's two VAD streams report each onset once each: the
        second report is the same onset."""
        self._speech_at = self.clock()
        if onset and self._speech_at - self._onset_at >= SAME_ONSET_S:
            self._onset_at = self._speech_at
            self._end_asked.clear()  # a new turn, or the last one going on after all
            self._tell_prepares_replies()
            self._false_ends.onset(self._onset_at)  # the user may be going on

    def speculate(self, utterance: np.ndarray) -> None:
        """The gap: start Whisper on the turn so far (the utterance so far, after the
        turn's utterances before it), in a thread, if a Whisper worker is idle and this
        silence has none under way, and Smart Turn beside it, on the turn as it will
        stand at the pause (the silence still to come as zeros, as duplex's sessions
        do). Speech after it makes them stale: Whisper drops its pass at its next step."""
        recognizer, running = self._recognizer, self._speculation
        if recognizer is None or (running is not None and running.cut_at > self._speech_at):
            return
        if getattr(recognizer, "idle_workers", 1) < 1:
            return  # it would delay another session's turn that has ended
        self._settle(used=False)
        goes_on = self._continues() or self._false_ends.went_on is not None
        prior = self._turn_audio if goes_on else np.zeros(0, np.int16)
        turn = np.concatenate([prior, utterance])[-_HEARD_S * VAD_RATE :]
        cut_at = self.clock()

        def wanted() -> bool:
            return self._speech_at < cut_at

        transcript = in_thread(
            "duplex-speculation",
            lambda: recognizer.transcribe(turn, wanted, self.policy.wants_last_word),
        )
        speculation = self._speculation = Speculation(cut_at, len(prior), transcript)
        model = self._smart_turn
        if model is not None and not self.manual:
            silence = max(0, self.silences.pause_ms - self.silences.gap_ms) * VAD_RATE // 1000
            at_pause = np.pad(turn, (0, silence))[-_SMART_TURN_S * VAD_RATE :]
            speculation.turn_model = in_thread(
                "duplex-smart-turn", lambda: model.probability(at_pause)
            )

    def _settle(self, *, used: bool) -> None:
        if self._speculation is not None:
            outcome = "used" if used else "stale"
            metrics.SPECULATIONS.labels(at="gap", outcome=outcome).inc()
        self._speculation = None

    def _continues(self) -> bool:
        """Whether the same turn goes on: speech began before the verdict's silence on
        the words before ran out, or before the turn was answered over at all (Whisper
        was slower than that silence; AgentSession's own wait, the full silence, bounds
        it)."""
        latest = self.latest
        if latest is None or latest is self._answered:
            return False  # answered: speech after it is a new turn, as AgentSession's
        open_until = latest.spoke_until + self.silences.full_ms / 1000
        return self._onset_at < max(latest.ends_at, open_until)

    def hear(self, utterance: np.ndarray, recognizer: SpeechToText, ended_at: float) -> Transcript:
        """Blocking: transcribe an utterance the VAD ended at ``ended_at`` (the clock's:
        a pause after the speech, or at once when the client ended the turn before) and
        judge the turn it ends. Returns the transcript of the words it adds to the turn
        (``continued.new_words``): Whisper hears the whole turn so far."""
        if not (self.judging or self.manual):
            return recognizer.transcribe(utterance)  # AgentSession's VAD ends the turn
        by_client = self._end_asked.is_set() and ended_at >= self._end_asked_at
        spoke_until = ended_at - (0 if by_client else self.silences.pause_ms / 1000)
        previous, went_on = self.latest, self._false_ends.take_went_on()
        if previous is not None and self._continues():
            self.pitch.forget(previous)
        elif went_on is not None:  # soon after a turn ended: heard with it, as one turn
            self._asked_said = ""  # AgentSession takes these words as a new turn
        else:
            self._new_turn()
        transcript, added, turn_model = self._heard(utterance, recognizer)
        if went_on is not None and is_backchannel(added):
            went_on = None  # "okay" to the reply, not the turn going on: heard alone
            self._new_turn()
            transcript, added, turn_model = self._heard(utterance, recognizer)
        if not added.strip():
            # no new words (a cough): the verdict on the words before stands, from this end on
            if previous is not None:
                self.latest = replace(previous, spoke_until=spoke_until)
                if self._answered is previous:
                    self._answered = self.latest
            return replace(transcript, text="")
        self._turn_said = f"{self._turn_said} {added}".strip()
        self._asked_said = f"{self._asked_said} {added}".strip()
        if self.manual:  # nobody judges: the turn goes on until the client ends it
            said = self._asked_said
            self.latest = Judgement(
                transcript.text, said, Verdict.INCOMPLETE, math.inf, spoke_until
            )
            return replace(transcript, text=added)
        if went_on is not None:
            self._false_end(went_on)
        heard, fall = measure(
            self.policy,
            transcript,
            self._turn_audio[-_SMART_TURN_S * VAD_RATE :],
            self._smart_turn,
            turn_model,
            self.pitch,
        )
        verdict, wait_ms = silence_after(self.policy, self.silences, heard)
        if verdict is not Verdict.COMPLETE or is_statement(heard.text):
            # where the judges go wrong for a user who pauses: not after a whole question
            wait_ms = max(wait_ms, round(self.patience.hold_frames() * FRAME_S * 1000))
        judgement = Judgement(heard.text, self._asked_said, verdict, wait_ms / 1000, spoke_until)
        if fall is not None:
            self.pitch.heard(judgement, fall)
        self.latest = judgement
        return replace(transcript, text=added)

    def _new_turn(self) -> None:
        self._turn_audio, self._turn_said, self._asked_said = np.zeros(0, np.int16), "", ""
        self._false_ends.join(None)

    def _heard(
        self, utterance: np.ndarray, recognizer: SpeechToText
    ) -> tuple[Transcript, str, Future[float] | None]:
        """Blocking: Whisper on the turn so far with this utterance (the gap's transcript
        of it, if it stands), the words it adds to the turn, and the gap's Smart Turn."""
        prior = len(self._turn_audio)
        turn = self._turn_audio = np.concatenate([self._turn_audio, utterance])[
            -_HEARD_S * VAD_RATE :
        ]
        speculation = self._speculation
        claimed = speculation.claim(self._speech_at, prior) if speculation else None
        self._settle(used=claimed is not None)
        transcript, turn_model = claimed or (
            recognizer.transcribe(turn, align=self.policy.wants_last_word),
            None,
        )
        added = new_words(self._turn_said, transcript.text, 1 - len(utterance) / len(turn))
        return transcript, added, turn_model

    def _false_end(self, went_on: WentOn) -> None:
        """Words (not an "uh-huh") soon after a turn was ended: it was a pause inside
        the user's turn. AgentSession took them as a new turn, cutting in on its reply;
        the user's patience learns the pause, so their turns after it wait it out, and
        that turn's pitch is no end of a statement of theirs."""
        self.patience.went_on_after_end(round(went_on.pause_s / FRAME_S))
        self.pitch.forget(went_on.turn)
        self._false_ends.join(went_on.turn)

    def take_joined(self) -> Judgement | None:
        """``FalseEnds.take_joined``: the turn the user's turn now ending went on from."""
        return self._false_ends.take_joined()
