"""The transport-agnostic voice session: messages and 16 kHz audio in, events and speech out.

A transport (WebSocket, WebRTC, LiveKit) checks and decodes what its client
sends, resamples the audio to 16 kHz, and calls ``handle`` and ``audio``; it
delivers what the session emits through its ``SessionIO``: typed events
(``duplex_orchestrator.events``), which it serializes its own way, and the
worker's 20 ms frames at 48 kHz. Turn decisions come from the pure ``Turns``
state machine; this module does the I/O around them: VAD on 20 ms frames,
Whisper (``transcriptions``), the LLM stream, the voice clip (``clone``).
Judging when the turn ends (speculation at the gap, the judges at the pause)
is the ``TurnJudge``'s (``judging``); the reply under way and the history are
``Replies``' (``replies``); speaking a reply (routing, worker streams,
retries) is the ``Speaker``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

import numpy as np

from duplex_orchestrator import metrics
from duplex_orchestrator.asr import Transcript
from duplex_orchestrator.clone import VoiceClip, VoiceReference
from duplex_orchestrator.endpoint import is_statement
from duplex_orchestrator.events import (
    Asr,
    BargeIn,
    Pong,
    Ready,
    VadState,
)
from duplex_orchestrator.feeds import once
from duplex_orchestrator.judging import Speculation, TurnJudge
from duplex_orchestrator.patience import Patience
from duplex_orchestrator.pause_ends import JudgedTurn, PauseEnds
from duplex_orchestrator.protocol import (
    CloneClear,
    CloneEnd,
    CloneStart,
    EndTurn,
    Interrupt,
    Message,
    Model,
    Ping,
    ProtocolError,
    Say,
    Start,
    Text,
    UserText,
)
from duplex_orchestrator.replies import Replies
from duplex_orchestrator.session_parts import Services, SessionIO, TurnModel, check_model
from duplex_orchestrator.speaker import Speaker
from duplex_orchestrator.transcriptions import Transcriptions
from duplex_orchestrator.turns import Action, Turns
from duplex_orchestrator.vad import VAD_RATE, VadEvent

log = logging.getLogger(__name__)

MANUAL_END_FRAMES = 1 << 30
"""With manual turns, no silence ends a turn: the VAD's cut of a too-long one comes first."""

__all__ = ["Services", "SessionIO", "TurnModel", "VoiceSession", "check_model"]


class VoiceSession:
    def __init__(
        self, io: SessionIO, services: Services, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.id = uuid.uuid4().hex[:16]
        self._io = io
        self._services = services
        self._clock = clock
        self.turns = Turns(clock, backchannels=services.backchannels_resume)
        self._speaker = Speaker(
            io,
            services.registry,
            services.default_model,
            self.id,
            clock,
            stall_s=services.stall_s,
            probe_timeout_s=services.probe_timeout_s,
        )
        self._rate = 0
        self._vad = services.new_vad()
        self._asr_tasks: set[asyncio.Task[None]] = set()
        self._pause_ends = PauseEnds(services, self._vad, clock, self._recheck_reply)
        self._transcriptions = Transcriptions(
            services, io.event, lambda: self._judge.speculation is not None
        )
        self._judge = TurnJudge(
            services,
            self._vad.detector,
            self._transcriptions.partial,
            self._end_judged_turn,
            self._pause_ends.confirm,
            self._pause_ends.doubt,
            self.turns.lets_reply_go_on,
        )
        self._patience = Patience(
            services.patience_turns, max(services.end_frames, services.patience_max_frames)
        )
        self._speaking = False
        self._replies = Replies(
            io,
            self._speaker,
            self.turns,
            self._pause_ends,
            lambda: self._speaking,
            clock,
            services.history_chars,
        )
        self._speech_started_at = 0.0
        self._heard_since_end_turn = False
        """Speech began since the client last sent ``end_turn`` (or the start)."""
        self._clip = VoiceClip(services.transcriber, self._use_voice, io.event, self.id)

    # ---- messages ------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._rate > 0

    @property
    def recording_clip(self) -> bool:
        """Between clone_start and clone_end: audio is a voice clip, not speech."""
        return self._clip.recorder is not None

    async def handle(self, message: Message) -> None:
        if isinstance(message, Start):
            await self._start(message)
            return
        if isinstance(message, Ping):
            await self._io.event(Pong())
            return
        if not self.started:
            raise ProtocolError("not_started", 'send {"type": "start"} first')
        if isinstance(message, Text):
            await self._replies.stream_text(message)
        elif isinstance(message, Say):
            await self._replies.start(once(message.text), source="say")
        elif isinstance(message, UserText):
            await self._replies.answer(message.text, self._services.llm, source="typed")
        elif isinstance(message, Model):
            await self._switch_model(message.model)
        elif isinstance(message, Interrupt):
            await self._replies.interrupt()
        elif isinstance(message, EndTurn):
            await self._client_ended_turn()
        elif isinstance(message, CloneStart | CloneEnd | CloneClear):
            await self._clone(message)

    async def _start(self, message: Start) -> None:
        if self.started:
            raise ProtocolError("already_started", "this session is already started")
        model = message.model or self._services.default_model
        self._check_model(model)
        self._rate = message.sample_rate
        self._judge.manual = message.turn_detection == "manual"
        self._fit_turn_silence()
        self._speaker.model = self._speaker.active_model = model
        models = self._services.registry.models()
        ready = Ready(self.id, model, models, self._rate, turn_detection=message.turn_detection)
        await self._io.event(ready)

    def _check_model(self, model: str) -> None:
        check_model(model, self._services.registry, self._services.default_model)

    # ---- audio in ------------------------------------------------------

    async def audio(self, pcm16k: np.ndarray, source: np.ndarray | None = None) -> None:
        """Client audio: int16 samples at 16 kHz, any length (the transport resampled them).

        ``source``: the same audio at the client's own rate (``Start.sample_rate``),
        which a voice clip keeps (cloning wants the full band); ``pcm16k`` if omitted.
        """
        if not self.started:
            raise ProtocolError("not_started", 'send {"type": "start"} before audio')
        if self._clip.recorder is not None:  # a voice clip, not speech to answer
            if source is None and self._rate != VAD_RATE:
                raise ValueError("a voice clip needs the client's audio at its own rate")
            self._clip.recorder.push(pcm16k if source is None else source)
            return
        for _frame, result in self._vad.feed(pcm16k):
            self._patience.silent_frame()
            if result.event is VadEvent.SPEECH_START:
                self._patience.speech_started(self._services.onset_frames, self._clock())
                await self._speech_started()
            elif result.event is VadEvent.SPEECH_GAP and result.utterance is not None:
                self._judge.gap(result.utterance)
            elif result.event is VadEvent.SPEECH_PAUSE and result.utterance is not None:
                if self._judge.manual:  # no judging: only transcribing ahead of the end_turn
                    self._judge.gap(result.utterance)
                else:
                    self._judge.paused(result.utterance)
            elif result.event is VadEvent.SPEECH_END and result.utterance is not None:
                # The last speech frame arrived that silence ago (real-time input): this
                # user's (``Patience``), or this pause's, whose words wanted more.
                detector = self._vad.detector
                silent = detector.ended_after if result.by_silence else detector.end_frames
                ended_at = self._clock() - silent * 0.02
                speculation = self._judge.current() if result.by_silence else None
                asr = speculation.claim() if speculation else None
                by = "too_long"
                if result.by_silence:
                    self._patience.silence_ended(silent, ended_at)
                    by = "silence"
                    if silent > detector.end_frames:
                        by = "silence_after_unfinished"
                    elif silent > self._services.end_frames:
                        by = "silence_after_patience"
                metrics.TURN_ENDS.labels(by=by).inc()
                await self._end_turn(asr or self._transcriptions.latest(result.utterance), ended_at)
            self._pause_ends.silence_went_on()
            self._recheck_reply()  # a first sound held for this frame's verdict

    async def _end_judged_turn(self, speculation: Speculation, by: str) -> None:
        """End the turn at a silence shorter than the one that ends any turn; speech
        soon after continues it (``_continue_judged_turn``). A ``provisional`` end is
        confirmed by Smart Turn or the doubt's silence (``PauseEnds``); until then its
        reply makes no sound (``PauseEnds.sound_held``).

        A user who has gone on after longer pauses (``Patience``) is waited for: the
        doubt's silence is at least their longest pause and a margin, and a statement
        (whose first half the judges often call complete) is confirmed no sooner."""
        asr = speculation.claim()  # before the VAD moves on: its words are the turn's
        silent = self._vad.detector.silent_frames
        ended_at = self._clock() - silent * 0.02
        audio = self._vad.end_turn()
        task, patience = await self._end_turn(asr, ended_at)
        words = speculation.words()
        least = patience if words is None or is_statement(words) else 0
        doubt = max(self._services.doubt_frames_for(words), patience)
        end = self._vad.detector.end_frames
        judged = JudgedTurn(
            audio, self._clock(), task, speculation, silent, doubt, end, least, patience
        )
        self._pause_ends.opened(judged, by)

    async def _end_turn(
        self, asr: asyncio.Task[Transcript], ended_at: float
    ) -> tuple[asyncio.Task[None], int]:
        """End the turn on ``asr``'s words: the task that answers them, and the frames of
        silence the user's patience holds its reply for (``Patience.turn_ended``)."""
        longest = self._vad.detector.longest_pause
        if self._services.patience_from_pauses:
            self._patience.went_on(longest)
        self._patience.went_on_past(longest, self._services.end_frames)
        patience = self._patience.turn_ended()
        resumed = self._patience.resumed_after()
        self._fit_turn_silence()
        await self._io.event(VadState("speech_end"))
        self._set_speaking(False)
        self._judge.settle(used=asr)
        self._pause_ends.clear()
        waited_ms = round((self._clock() - ended_at) * 1000, 1)
        task = asyncio.create_task(self._finish_turn(asr, ended_at, waited_ms, resumed))
        self._asr_tasks.add(task)
        task.add_done_callback(self._asr_tasks.discard)
        return task, patience

    async def _continue_judged_turn(self) -> bool:
        """Speech soon after a turn judged complete: it was not. Cancel its reply
        (flushing anything sent), forget its words, and let this speech extend it."""
        judged = self._pause_ends.reopened()
        if judged is None:
            return False
        judged.task.cancel()
        self._patience.turn_reopened()  # the silence it ended in was a pause inside it
        self._judge.pitch.forget(judged.speculation)  # and its pitch no end of theirs
        self._patience.went_on(judged.pause_before(self._services.onset_frames))
        self._fit_turn_silence()
        await self._replies.interrupt()
        self.turns.reply_finished()
        self._replies.forget_words(judged.task)
        self._vad.prepend(judged.audio)
        metrics.TURN_ENDS.labels(by="continued").inc()
        return True

    async def _client_ended_turn(self) -> None:
        """The client says the user's turn is over (``end_turn``): end the open turn now,
        on its audio so far, or confirm a turn ended at a pause, which speech can then
        no longer continue. Nothing heard since the last ``end_turn``: an error."""
        heard, self._heard_since_end_turn = self._heard_since_end_turn, False
        detector = self._vad.detector
        if detector.in_speech:
            silent = detector.silent_frames
            speculation = self._judge.current()  # before the VAD moves on
            audio = self._vad.end_turn()
            asr = speculation.claim() if speculation else self._transcriptions.latest(audio)
            metrics.TURN_ENDS.labels(by="client").inc()
            await self._end_turn(asr, self._clock() - silent * 0.02)
        elif not self._pause_ends.end_now() and not heard:
            raise ProtocolError(
                "no_speech", "end_turn: no speech was heard since the last one, nothing to answer"
            )

    def _fit_turn_silence(self) -> None:
        """The silence that ends this user's turns: longer once they went on after a
        longer pause (``Patience.silence_frames``); none with manual turns (only the
        utterance's length limit ends one besides ``end_turn``)."""
        if self._judge.manual:
            self._vad.detector.end_frames = MANUAL_END_FRAMES
            return
        self._vad.detector.end_frames = self._patience.silence_frames(self._services.end_frames)

    def _backchannel_heard(self) -> None:
        """The words over the reply were an acknowledgement ("uh-huh"), not a turn: the
        reply goes on, speech after it is a new barge-in (not this turn going on), and
        its pitch is no end of a statement of this user's."""
        judged = self._pause_ends.judged
        if judged is not None and judged.task is asyncio.current_task():
            self._judge.pitch.forget(judged.speculation)
            self._pause_ends.clear()

    def _recheck_reply(self) -> None:
        """A reply's first sound held (``PauseEnds.sound_held``) may go now."""
        if self._replies.current is not None:
            self._replies.current.recheck()

    def _set_speaking(self, speaking: bool) -> None:
        """Count this session's user among those speaking now (``Services.speaking``)."""
        if speaking != self._speaking:
            self._speaking = speaking
            self._services.speaking.count += 1 if speaking else -1

    async def _speech_started(self) -> None:
        self._set_speaking(True)
        self._heard_since_end_turn = True
        self._speech_started_at = self._clock()
        await self._io.event(VadState("speech_start"))
        if await self._continue_judged_turn():
            return
        decision = self.turns.speech_started()
        if Action.FLUSH_CLIENT in decision.actions:
            await self._io.flush_audio()
            await self._io.event(BargeIn("pause", flush=True))
        if Action.PAUSE_TTS in decision.actions and self._replies.current is not None:
            await self._replies.current.pause()
            metrics.BARGE_IN_LATENCY.observe(self._clock() - self._speech_started_at)

    async def _finish_turn(
        self,
        asr: asyncio.Task[Transcript],
        ended_at: float,
        waited_ms: float,
        resumed_after: int | None = None,
    ) -> None:
        """Answer the turn's words; ``resumed_after``: the pause before it, when it began
        soon after a turn ended by the full silence (``Patience.resumed_after``)."""
        services = self._services
        try:
            transcript = await asr
        except Exception as exc:
            log.exception("asr failed", extra={"event": "asr_error", "session_id": self.id})
            await self._speaker.error("asr_failed", f"speech recognition failed: {exc}")
            return
        metrics.ASR_LATENCY.observe(transcript.seconds)
        asr_ms = round(transcript.seconds * 1000, 1)
        await self._io.event(
            Asr(transcript.text, final=True, asr_ms=asr_ms, end_of_turn_ms=waited_ms)
        )
        decision = self.turns.utterance(transcript.text)
        if resumed_after is not None and Action.STOP_TTS in decision.actions:
            self._patience.went_on_after_end(resumed_after)  # that silence was a pause
            self._fit_turn_silence()
        if decision.barge_in_ms is not None:
            metrics.BARGE_INS.labels(outcome=decision.barge_in_outcome).inc()
        if decision.backchannel:
            self._backchannel_heard()
        if Action.RESUME_TTS in decision.actions:
            if self._replies.current is not None:
                await self._replies.current.resume()
            await self._io.event(BargeIn("resume"))
        if Action.STOP_TTS in decision.actions:
            await self._replies.stop()
            await self._io.event(BargeIn("stop"))
        if Action.REPLY in decision.actions:
            await self._replies.answer(
                decision.text, services.llm, source="voice", speech_ended_at=ended_at
            )

    # ---- voice clip ----------------------------------------------------

    async def _clone(self, message: CloneStart | CloneEnd | CloneClear) -> None:
        if isinstance(message, CloneStart):
            await self._replies.interrupt()  # the clip is the user's voice, not the agent's
            await self._clip.start(self._rate)
        elif isinstance(message, CloneEnd):
            await self._clip.end()
        else:
            await self._clip.clear()

    def _use_voice(self, reference: VoiceReference | None) -> None:
        self._speaker.reference = reference

    # ---- model switch, close ------------------------------------------

    async def _switch_model(self, model: str) -> None:
        self._check_model(model)
        await self._speaker.switch_model(model)

    async def close(self) -> None:
        self._set_speaking(False)
        for task in [*self._asr_tasks, *self._judge.tasks()]:
            task.cancel()
        with contextlib.suppress(Exception):
            await self._replies.stop()
        await self._speaker.close()
