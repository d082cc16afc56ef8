"""When does the user's turn end? One session's speculation and judgement at silences.

The VAD reports three silences inside speech: the gap (``--speculate-ms``),
the pause (``--end-of-turn-pause-ms``) and the end (``--vad-end-ms``). At the
gap the ``TurnJudge`` starts transcribing the turn so far (and Smart Turn)
while a Whisper worker is idle (a little later, at the busy gap, while other
sessions' users are speaking); at the pause it asks the policy
(``endpoint.EndOfTurn``) with that work, or with work started then; a turn
judged complete ends there, a doubted one after the doubt's silence
(``--end-of-turn-doubt-ms``), any other at the end; words that want more
("... a table for") at the unfinished silence, if longer
(``--end-of-turn-unfinished-ms``). The session owns the turn
itself (its audio, history and reply): the judge calls back to end it.

Words that read complete settle it: the turn ends at this pause if Smart
Turn agrees (when it judges too), Whisper did not doubt a statement's end,
its pitch fell as this user's statements do (``prosody``) and the last word
has sound under it, after the doubt's silence if not, unless the user speaks
first. So the judge ends it *provisionally* as soon as the words
are in, and the reply is prepared while Smart Turn listens and the words are
aligned on the audio: its sound is held until both say "complete" or the
doubt's silence confirms the turn (``confirm``), and speech before that
withdraws it unheard. A last word with no sound under it (Whisper completed a
phrase the user left hanging) means the words did not read complete after all:
only the full silence confirms that turn (``Speculation.unsaid``), as it does
while the alignment has not answered (``Speculation.aligning``: under load it
waits behind other sessions' transcriptions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duplex_orchestrator import metrics
from duplex_orchestrator.asr import Transcript, Wanted
from duplex_orchestrator.endpoint import Verdict, is_statement, wants_more
from duplex_orchestrator.prosody import PitchHabit, final_fall_st
from duplex_orchestrator.session_parts import Services
from duplex_orchestrator.vad import VAD_FRAME_SAMPLES, VAD_RATE, SpeechDetector

Transcribe = Callable[[np.ndarray, Wanted], "asyncio.Task[Transcript]"]
"""Starts a speculative transcription of the utterance so far, abandoned once unwanted."""


@dataclass
class Speculation:
    """Judging started on the utterance as it stood at a silence inside speech.

    It speaks for the turn only while no speech has followed: ``mark`` is the
    detector's ``pauses`` count when the audio was cut. Its transcription is
    abandoned once speech has followed, unless the turn already ended on it.
    """

    at: str
    """Where it started: "gap" or "pause"."""
    mark: int
    audio: np.ndarray
    """What Smart Turn hears: the utterance, padded with silence to the length it will
    have at the pause (unpadded when Smart Turn is not used)."""
    asr: asyncio.Task[Transcript] = field(init=False)
    turn: asyncio.Task[float] | None = None
    """Smart Turn's probability, once asked."""
    claimed: bool = False
    """The turn ended on it: its transcript is the turn's, whatever speech follows."""
    aligning: bool = False
    """Its words are being aligned on the audio (the sound under the last word): until
    that answers, only the full silence confirms a turn ended on them, as before the
    words were in (``pause_ends.JudgedTurn.silence``)."""
    unsaid: bool = False
    """Aligned, its last word has no sound under it (Whisper completed a phrase the user
    left hanging): the words do not read complete after all, and only the full silence
    confirms a turn ended on them, whatever Smart Turn says."""

    def claim(self) -> asyncio.Task[Transcript]:
        """The turn ends on this speculation: its transcription must finish."""
        self.claimed = True
        return self.asr

    def tasks(self) -> list[asyncio.Task[Any]]:
        return [self.asr, *([self.turn] if self.turn else [])]

    def words(self) -> str | None:
        """The transcript's text, if it is in."""
        asr = self.asr
        if not asr.done() or asr.cancelled() or asr.exception() is not None:
            return None
        return asr.result().text


EndTurn = Callable[[Speculation, str], Awaitable[None]]
"""The session's way to end the turn now, on this speculation's transcript, and why
(the ``duplex_turn_ends_total`` label, or ``provisional``: to be confirmed)."""
Confirm = Callable[[Speculation], None]
"""Smart Turn agrees that the turn ended provisionally on this speculation is complete."""
Doubt = Callable[[Speculation, bool], None]
"""The judges answered, and doubt the turn ended provisionally on this speculation;
True: a statement's doubt, however its words end (``EndOfTurn.doubts_long``)."""
LetsReplyGoOn = Callable[[str], bool]
"""Whether these words, said over a reply, let it go on (``turns.Turns.lets_reply_go_on``:
none, or only a listener's acknowledgement): they settle the barge-in at the pause,
whatever their punctuation, since no judge can make "uh-huh" a turn to answer."""

log = logging.getLogger(__name__)


class TurnJudge:
    def __init__(
        self,
        services: Services,
        detector: SpeechDetector,
        transcribe: Transcribe,
        end_turn: EndTurn,
        confirm: Confirm,
        doubt: Doubt,
        lets_reply_go_on: LetsReplyGoOn,
    ) -> None:
        self._services = services
        self._lets_reply_go_on = lets_reply_go_on
        self._detector = detector
        self._transcribe = transcribe
        self._end_turn = end_turn
        self._confirm = confirm
        self._doubt = doubt
        self.speculation: Speculation | None = None
        self.manual = False
        """Manual turns (``Start.turn_detection``: only the client's ``end_turn`` ends
        one): speculation transcribes ahead, nobody judges, so Smart Turn is never asked."""
        self.pitch = PitchHabit(first_usual_fall_st=services.end_of_turn.pitch_first_fall_st)
        """This user's usual statement end; the session forgets a turn they went on with."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._measuring: set[asyncio.Task[float | None]] = set()
        """Alignments and pitch measures, beside a reply."""

    def current(self) -> Speculation | None:
        """The speculation, if no speech has come since its audio was cut."""
        speculation = self.speculation
        if speculation is None or speculation.mark != self._detector.pauses:
            return None
        return speculation

    def gap(self, utterance: np.ndarray) -> None:
        """The first frames of silence: perhaps the end of the turn. Start transcribing
        (and Smart Turn) now, so the judgement at the pause finds them under way or done.

        Only on an idle Whisper worker, so it never delays a turn that has ended; at
        the first gap only while no other session's user is speaking, else at the busy
        gap, a little later: a short silence is often a stop inside a word, and a guess
        that turns out stale takes the CPU the others' turns will wait for
        (``bench_conversation``: with four speakers a 60 ms gap gave the slowest turns,
        80-120 ms faster ones; alone, 60 ms was fastest). A speculation the user spoke
        past is abandoned at Whisper's next step, so it neither holds up this gap's nor
        takes the decoder's time. Smart Turn beside Whisper only when a second worker
        is idle (on a small CPU the two would otherwise slow each other down).
        """
        running = self.speculation
        if running is not None and running.mark == self._detector.pauses:
            return  # this silence's work is under way
        idle = getattr(self._services.transcriber, "idle_workers", 1)
        first = self._detector.silent_frames <= self._detector.gap_frames
        alone = self._services.speaking.count <= 1
        if idle >= 1 and (alone or not first):
            self.settle()
            with_turn_model = idle >= 2 and not self.manual
            self.speculation = self._speculate(utterance, "gap", with_turn_model=with_turn_model)

    def paused(self, utterance: np.ndarray) -> None:
        """A short pause: judge whether the turn is complete, from the speculation started
        at this silence's gap or, if there is none, one started now.

        If it is complete, the turn ends here; if speech goes on, it is superseded.
        Under load (every Whisper worker busy and as many waiting) nothing starts: the
        turn then ends after the full silence, as it always may.
        """
        speculation = self.current()
        if speculation is None:
            self.settle()  # an earlier silence's words are not the whole turn
            if getattr(self._services.transcriber, "saturated", False):
                return
            speculation = self.speculation = self._speculate(
                utterance, "pause", with_turn_model=False
            )
        if self._services.end_of_turn.mode != "silence":
            task = asyncio.create_task(self._judge(speculation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def settle(self, used: asyncio.Task[Transcript] | None = None) -> None:
        """Forget the speculation (the turn ended or goes on), counting whether its
        transcript became the turn's."""
        speculation, self.speculation = self.speculation, None
        if speculation is not None:
            outcome = "used" if speculation.asr is used else "stale"
            metrics.SPECULATIONS.labels(at=speculation.at, outcome=outcome).inc()

    def tasks(self) -> list[asyncio.Task[Any]]:
        """Everything still running, for the session to cancel at its close."""
        speculation = self.speculation
        return [*self._tasks, *self._measuring, *(speculation.tasks() if speculation else ())]

    def _speculate(self, utterance: np.ndarray, at: str, *, with_turn_model: bool) -> Speculation:
        """Transcribe the utterance so far, and ask Smart Turn now if ``with_turn_model``."""
        detector = self._detector
        uses_model = self._services.end_of_turn.uses_smart_turn
        model = self._services.smart_turn if uses_model else None
        audio = utterance
        if model is not None:
            # Smart Turn hears the turn as it will stand at the pause: padded with the
            # silence still to come, as it would be if asked then.
            missing = max(0, detector.pause_frames - detector.silent_frames) * VAD_FRAME_SAMPLES
            audio = np.pad(utterance, (0, missing))
        speculation = Speculation(at, detector.pauses, audio)

        def wanted() -> bool:  # asked from Whisper's thread: plain reads only
            return speculation.claimed or speculation.mark == detector.pauses

        speculation.asr = self._transcribe(utterance, wanted)
        if with_turn_model and model is not None:
            speculation.turn = asyncio.create_task(asyncio.to_thread(model.probability, audio))
        return speculation

    async def _judge(self, speculation: Speculation) -> None:
        policy, model = self._services.end_of_turn, self._services.smart_turn
        detector = self._detector
        pause = speculation.mark
        probability: float | None = None
        if policy.uses_transcript:
            transcript = await speculation.asr
            text, ends_here = transcript.text, transcript.ends_here
            if self._lets_reply_go_on(text):  # "Okay" or a cough over a reply: resume now
                if detector.pauses == pause and detector.in_speech:
                    await self._end_turn(speculation, "judged_complete")
                return
            if not policy.words_complete(text, ends_here):
                if policy.lacks_only_its_mark(text) and model is not None:
                    await self._judge_unmarked(speculation, text)
                elif wants_more(text):
                    self._wait_longer(pause)
                return  # the words already say "not yet": no need to ask the model
            # The words settle it (see the module docstring): end it now, provisionally
            # unless they alone judge and leave no doubt.
            if detector.pauses != pause or not detector.in_speech:
                return  # speech went on, or the silence already ended the turn
            falling = self._fall(speculation, text)  # beside the reply, as the alignment
            alone = transcript.aligner is None and not policy.uses_smart_turn and falling is None
            if alone and policy.decide(text, None, ends_here) is Verdict.COMPLETE:
                await self._end_turn(speculation, "judged_complete")
                return
            aligning = self._last_word_sound(speculation, transcript)
            await self._end_turn(speculation, "provisional")
            if policy.uses_smart_turn and model is not None:
                probability = await self._probability(speculation)
            last_word_sound_s = await aligning if aligning is not None else None
            above_usual = await self._above_usual(speculation, falling)
            verdict = policy.decide(text, probability, ends_here, last_word_sound_s, above_usual)
            if verdict is Verdict.DOUBTED and policy.pitch_doubted(text, above_usual):
                metrics.PITCH_DOUBTS.inc()
            if verdict is Verdict.COMPLETE:
                self._confirm(speculation)
            else:  # doubted: the doubt's silence confirms it, or speech withdraws it
                self._doubt(speculation, policy.doubts_long(text, probability))
            return
        if policy.uses_smart_turn and model is not None and detector.pauses == pause:
            probability = await self._probability(speculation)
        if detector.pauses != pause or not detector.in_speech:
            return  # speech went on, or the silence already ended the turn
        if policy.decide(None, probability) is Verdict.COMPLETE:  # Smart Turn alone
            await self._end_turn(speculation, "judged_complete")

    def _wait_longer(self, pause: int) -> None:
        """The words at this pause want more ("... a table for"): a person hesitating
        there may pause past the full silence, so this pause ends the turn only after
        ``Services.unfinished_frames`` (until speech goes on)."""
        detector = self._detector
        if detector.pauses == pause and detector.in_speech:
            detector.pause_end_frames = self._services.unfinished_frames

    async def _judge_unmarked(self, speculation: Speculation, text: str) -> None:
        """Words complete but for their closing mark: Smart Turn is asked first, and only
        where it is sure (``EndOfTurn.unmarked_sure``) does the turn end here,
        provisionally, for a statement's doubt; else the full silence ends it, as any
        unfinished turn (no reply is prepared for it meanwhile)."""
        policy, detector = self._services.end_of_turn, self._detector
        probability = await self._probability(speculation)
        if detector.pauses != speculation.mark or not detector.in_speech:
            return  # speech went on, or the silence already ended the turn
        if policy.decide(text, probability) is Verdict.DOUBTED:
            await self._end_turn(speculation, "provisional")
            self._doubt(speculation, policy.doubts_long(text, probability))

    def _last_word_sound(
        self, speculation: Speculation, transcript: Transcript
    ) -> asyncio.Task[float | None] | None:
        """The sound under the last word of ``speculation``'s transcript, aligned in a
        thread (None: not asked for; a failed alignment answers None, which holds
        nothing back). ``speculation.aligning`` meanwhile, then ``unsaid`` at once,
        whether or not Smart Turn has answered."""
        aligner = transcript.aligner
        if aligner is None:
            return None
        policy = self._services.end_of_turn
        speculation.aligning = True

        async def align() -> float | None:
            sound: float | None = None
            try:
                sound = (await asyncio.to_thread(aligner)).last_word_sound_s
            except Exception:
                log.exception("alignment failed", extra={"event": "alignment_error"})
            finally:
                text, ends_here = transcript.text, transcript.ends_here
                speculation.unsaid = not policy.words_complete(text, ends_here, sound)
                speculation.aligning = False
            return sound

        return self._beside(align())

    def _fall(self, speculation: Speculation, text: str) -> asyncio.Task[float | None] | None:
        """How far the pitch fell at the end of a statement (``prosody``), measured in
        a thread; None where the policy does not ask or the words are a question."""
        if self._services.end_of_turn.pitch_rise_st <= 0 or not is_statement(text):
            return None
        return self._beside(asyncio.to_thread(final_fall_st, speculation.audio, VAD_RATE))

    def _beside(self, measure: Coroutine[Any, Any, float | None]) -> asyncio.Task[float | None]:
        """Run a measure beside the reply, cancelled with the session if still running."""
        task = asyncio.create_task(measure)
        self._measuring.add(task)
        task.add_done_callback(self._measuring.discard)
        return task

    async def _above_usual(
        self, speculation: Speculation, falling: asyncio.Task[float | None] | None
    ) -> float | None:
        """The statement's end against this user's usual one (None: unknown); then the
        turn's own fall joins what is usual for them (``PitchHabit.heard``). Until the
        habit can judge, the verdict does not wait for the measure: it learns after."""
        if falling is None:
            return None
        if self.pitch.usual_fall_st() is None:
            falling.add_done_callback(lambda done: self._learn(speculation, done))
            return None
        await asyncio.wait([falling])
        above = self.pitch.above_usual_st(self._measured(falling))
        self._learn(speculation, falling)
        return above

    def _learn(self, speculation: Speculation, falling: asyncio.Task[float | None]) -> None:
        fall = self._measured(falling)
        if fall is not None:
            self.pitch.heard(speculation, fall)

    @staticmethod
    def _measured(falling: asyncio.Task[float | None]) -> float | None:
        """A finished measure's fall; None if it failed (the judge holds nothing back
        for a measure it lacks) or was cancelled."""
        if falling.cancelled():
            return None
        if (error := falling.exception()) is not None:
            log.error("pitch failed", exc_info=error, extra={"event": "pitch_error"})
            return None
        return falling.result()

    async def _probability(self, speculation: Speculation) -> float:
        """Smart Turn's, asked at the gap or now: after Whisper, not beside it (on a small
        CPU the two slow each other down)."""
        model = self._services.smart_turn
        assert model is not None
        if speculation.turn is None:
            speculation.turn = asyncio.create_task(
                asyncio.to_thread(model.probability, speculation.audio)
            )
        return await speculation.turn
