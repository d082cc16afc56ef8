"""The transport-agnostic voice session: messages and 16 kHz audio in, events and speech out.

A transport (WebSocket, WebRTC, LiveKit) checks and decodes what its client
sends, resamples the audio to 16 kHz, and calls ``handle`` and ``audio``; it
delivers what the session emits through its ``SessionIO``: typed events
(``duplex_orchestrator.events``), which it serializes its own way, and the
worker's 20 ms frames at 48 kHz. Turn decisions come from the pure ``Turns``
state machine; this module does the I/O around them: VAD on 20 ms frames,
Whisper (``transcriptions``), the LLM stream, the voice clip (``clone``).
Judging when the turn ends (speculation at the gap, the judges at the pause)
is the ``TurnJudge``'s (``judging``); speaking a reply (routing, worker
streams, retries) is the ``Speaker``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

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
from duplex_orchestrator.feeds import ClientText, ReplayableText, TextTooLong, once
from duplex_orchestrator.judging import Speculation, TurnJudge
from duplex_orchestrator.llm import LLMError
from duplex_orchestrator.patience import Patience
from duplex_orchestrator.pause_ends import JudgedTurn, PauseEnds
from duplex_orchestrator.protocol import (
    CloneClear,
    CloneEnd,
    CloneStart,
    Interrupt,
    Message,
    Model,
    Ping,
    ProtocolError,
    Say,
    Start,
    Text,
)
from duplex_orchestrator.reply import Reply
from duplex_orchestrator.session_parts import Services, SessionIO, TurnModel, check_model
from duplex_orchestrator.speaker import MAX_REPLY_CHARS, Speaker
from duplex_orchestrator.transcriptions import Transcriptions
from duplex_orchestrator.turns import Action, Turns
from duplex_orchestrator.vad import VAD_RATE, VadEvent

log = logging.getLogger(__name__)

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
        self._reply: Reply | None = None
        self._reply_task: asyncio.Task[None] | None = None
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
        self._patience = Patience(services.patience_turns, services.end_frames)
        self._speaking = False
        self._client_text: ClientText | None = None
        self._history: list[dict[str, str]] = []
        self._turn = 0
        self._speech_started_at = 0.0
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
            await self._stream_text(message)
        elif isinstance(message, Say):
            await self._start_reply(once(message.text), source="say")
        elif isinstance(message, Model):
            await self._switch_model(message.model)
        elif isinstance(message, Interrupt):
            await self._interrupt()
        elif isinstance(message, CloneStart | CloneEnd | CloneClear):
            await self._clone(message)

    async def _start(self, message: Start) -> None:
        if self.started:
            raise ProtocolError("already_started", "this session is already started")
        model = message.model or self._services.default_model
        self._check_model(model)
        self._rate = message.sample_rate
        self._speaker.model = self._speaker.active_model = model
        models = self._services.registry.models()
        await self._io.event(Ready(self.id, model, models, sample_rate_in=self._rate))

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
            if result.event is VadEvent.SPEECH_START:
                await self._speech_started()
            elif result.event is VadEvent.SPEECH_GAP and result.utterance is not None:
                self._judge.gap(result.utterance)
            elif result.event is VadEvent.SPEECH_PAUSE and result.utterance is not None:
                self._judge.paused(result.utterance)
            elif result.event is VadEvent.SPEECH_END and result.utterance is not None:
                # The last speech frame arrived end_frames * 20 ms ago (real-time input).
                ended_at = self._clock() - self._services.end_frames * 0.02
                speculation = self._judge.current() if result.by_silence else None
                asr = speculation.claim() if speculation else None
                metrics.TURN_ENDS.labels(by="silence" if result.by_silence else "too_long").inc()
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
        history = len(self._history)
        audio = self._vad.end_turn()
        task, patience = await self._end_turn(asr, ended_at)
        words = speculation.words()
        least = patience if words is None or is_statement(words) else 0
        doubt = max(self._services.doubt_frames_for(words), patience)
        end = self._services.end_frames
        judged = JudgedTurn(
            audio, self._clock(), task, history, speculation, silent, doubt, end, least
        )
        self._pause_ends.opened(judged, by)

    async def _end_turn(
        self, asr: asyncio.Task[Transcript], ended_at: float
    ) -> tuple[asyncio.Task[None], int]:
        """End the turn on ``asr``'s words: the task that answers them, and the frames of
        silence the user's patience holds its reply for (``Patience.turn_ended``)."""
        if self._services.patience_from_pauses:
            self._patience.went_on(self._vad.detector.longest_pause)
        patience = self._patience.turn_ended()
        await self._io.event(VadState("speech_end"))
        self._set_speaking(False)
        self._judge.settle(used=asr)
        self._pause_ends.clear()
        waited_ms = round((self._clock() - ended_at) * 1000, 1)
        task = asyncio.create_task(self._finish_turn(asr, ended_at, waited_ms))
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
        if self._reply is not None and not self._reply.finished:
            await self._stop_reply()
            await self._io.flush_audio()
            await self._io.event(BargeIn("stop", flush=True))
        self.turns.reply_finished()
        del self._history[judged.history :]
        self._vad.prepend(judged.audio)
        metrics.TURN_ENDS.labels(by="continued").inc()
        return True

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
        if self._reply is not None:
            self._reply.recheck()

    def _set_speaking(self, speaking: bool) -> None:
        """Count this session's user among those speaking now (``Services.speaking``)."""
        if speaking != self._speaking:
            self._speaking = speaking
            self._services.speaking.count += 1 if speaking else -1

    async def _speech_started(self) -> None:
        self._set_speaking(True)
        self._speech_started_at = self._clock()
        await self._io.event(VadState("speech_start"))
        if await self._continue_judged_turn():
            return
        decision = self.turns.speech_started()
        if Action.FLUSH_CLIENT in decision.actions:
            await self._io.flush_audio()
            await self._io.event(BargeIn("pause", flush=True))
        if Action.PAUSE_TTS in decision.actions and self._reply is not None:
            await self._reply.pause()
            metrics.BARGE_IN_LATENCY.observe(self._clock() - self._speech_started_at)

    async def _finish_turn(
        self, asr: asyncio.Task[Transcript], ended_at: float, waited_ms: float
    ) -> None:
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
        if decision.barge_in_ms is not None:
            metrics.BARGE_INS.labels(outcome=decision.barge_in_outcome).inc()
        if decision.backchannel:
            self._backchannel_heard()
        if Action.RESUME_TTS in decision.actions:
            if self._reply is not None:
                await self._reply.resume()
            await self._io.event(BargeIn("resume"))
        if Action.STOP_TTS in decision.actions:
            await self._stop_reply()
            await self._io.event(BargeIn("stop"))
        if Action.REPLY in decision.actions:
            self._history.append({"role": "user", "content": decision.text})
            deltas = services.llm.reply(decision.text, self._history[:-1][-10:])
            await self._start_reply(deltas, source="voice", speech_ended_at=ended_at)

    # ---- replies -------------------------------------------------------

    async def _stream_text(self, message: Text) -> None:
        if self._client_text is None or self._client_text.closed:
            self._client_text = ClientText(MAX_REPLY_CHARS)
            # One message holds at most MAX_TEXT_CHARS: the first cannot be too long.
            self._client_text.push(message.text, message.final)
            await self._start_reply(self._client_text.deltas(), source="text")
            return
        try:
            self._client_text.push(message.text, message.final)
        except TextTooLong as exc:
            raise ProtocolError("too_large", str(exc)) from None

    async def _start_reply(
        self, deltas: AsyncIterator[str], *, source: str, speech_ended_at: float | None = None
    ) -> None:
        await self._stop_reply()
        self._turn += 1
        self.turns.reply_started()
        reply = Reply(
            self._turn, self._pause_ends.sound_held, self._pause_ends.hold_max_s(), self._clock
        )
        self._reply = reply
        self._reply_task = asyncio.create_task(
            self._run_reply(reply, ReplayableText(deltas), source, speech_ended_at)
        )

    async def _stop_reply(self) -> None:
        reply, task = self._reply, self._reply_task
        if reply is not None:
            await reply.stop()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except TimeoutError:
                task.cancel()

    async def _interrupt(self) -> None:
        if self._reply is not None and not self._reply.finished:
            await self._stop_reply()
            await self._io.flush_audio()
            await self._io.event(BargeIn("stop", flush=True))

    async def _run_reply(
        self, reply: Reply, text: ReplayableText, source: str, speech_ended_at: float | None
    ) -> None:
        try:
            await self._speaker.speak(reply, text, speech_ended_at)
        except LLMError as exc:
            await self._speaker.error("llm_failed", str(exc))
        finally:
            try:
                await text.aclose()
            except Exception:  # its cleanup failed: the reply is over all the same
                log.exception("closing a reply's text source failed", extra={"event": "llm_close"})
            reply.finished = True
            if self._reply is reply:
                self.turns.reply_finished()
            if text.text and source == "voice":
                self._history.append({"role": "assistant", "content": text.text})

    # ---- voice clip ----------------------------------------------------

    async def _clone(self, message: CloneStart | CloneEnd | CloneClear) -> None:
        if isinstance(message, CloneStart):
            await self._interrupt()  # the clip is the user's voice, not the agent's
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
            await self._stop_reply()
        await self._speaker.close()
