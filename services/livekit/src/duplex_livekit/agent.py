"""duplex's voice as a LiveKit agent: an AgentSession of duplex's parts, and the room job.

``voice_session`` builds the AgentSession every room job runs: duplex's
VAD (Silero or webrtcvad) for utterances and barge-in, duplex's judges for the
end of the turn (``turns.DuplexTurnDetector``: Whisper's words and Smart Turn,
as on duplex's own transports), Whisper for speech recognition, duplex's LLM
bridge, and ``DuplexTTS`` routing replies through duplex's registry (static
addresses or the Kubernetes Leases). LiveKit's own turn detector is not used:
its weights come from a model hub, which duplex never downloads from.

``Control`` carries duplex's control messages over the room's data channel
(topic ``duplex``, the WebSocket protocol's JSON): ``model`` switches the
voice (loaded in the background, the active one speaks meanwhile),
``interrupt`` and ``say`` act on the session, ``ping`` answers ``pong``,
``end_turn`` ends the user's turn; answers and errors go back on the same topic.
The participant's ``duplex.turn_detection`` attribute (``"manual"``: push to talk,
or ``"auto"``) chooses who ends the turns, as the WebSocket's ``start`` does.

``entrypoint`` is the room job; ``prewarm`` loads Whisper once per job process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from livekit import rtc
from livekit.agents import Agent, AgentSession, JobContext, JobProcess, ModelSettings, llm, stt

from duplex_livekit.joined import take_back
from duplex_livekit.llm import DuplexLLM
from duplex_livekit.stt import DuplexSTT
from duplex_livekit.tts import DuplexTTS
from duplex_livekit.turns import DuplexTurnDetector
from duplex_livekit.vad import DuplexVAD
from duplex_livekit.verdicts import TurnSilences, judges_language
from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.events import Error, Event, Pong, to_json
from duplex_orchestrator.llm import SYSTEM_PROMPT, LLMBridge
from duplex_orchestrator.patience import Patience
from duplex_orchestrator.protocol import (
    EndTurn,
    Interrupt,
    Model,
    Ping,
    ProtocolError,
    Say,
    parse,
)
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.session_parts import TurnModel
from duplex_orchestrator.turns import is_backchannel
from duplex_orchestrator.vad import FrameClassifier, WebRtcClassifier

log = logging.getLogger(__name__)
CONTROL_TOPIC = "duplex"
TURN_DETECTION_ATTRIBUTE = "duplex.turn_detection"
"""The participant attribute that chooses manual turns (push to talk) or automatic ones."""


@dataclass
class VoiceParts:
    """What one agent session is made of (the room job builds it from the configuration)."""

    recognizer: SpeechToText
    bridge: LLMBridge
    registry: Registry
    default_model: str = "piper-en-us-joe-medium"
    language: str = "en"
    llm_name: str = "echo"
    classifier: Callable[[], FrameClassifier] = WebRtcClassifier
    vad: str = "webrtc"
    vad_onset_ms: int = 80
    vad_end_ms: int = 500
    """The silence that ends a turn where nobody judges it."""
    turns: DuplexTurnDetector | None = None
    """duplex's turn detector, one per session (it learns the user): where it is
    ``judging``, duplex's judges end the turns (the VAD ends utterances at their pause),
    else every turn ends after ``vad_end_ms`` of silence; manual turns (push to talk) go
    through it either way. None: the silence, and no manual turns."""

    @classmethod
    def from_config(
        cls,
        config: OrchestratorConfig,
        recognizer: SpeechToText,
        smart_turn: TurnModel | None = None,
    ) -> VoiceParts:
        """One room's parts; its turns judged where the configuration judges them
        (``judged_turns``; ``smart_turn`` loaded where it is used), the detector there
        for manual turns either way."""
        from duplex_orchestrator.app import (
            end_of_turn,
            make_llm,
            make_registry,
            speech_classifier,
        )

        judging = judged_turns(config)
        silences = TurnSilences.from_config(config)
        turns = DuplexTurnDetector(
            end_of_turn(config),
            # unjudged, the VAD ends utterances at the silence that ends a turn
            silences
            if judging
            else replace(silences, gap_ms=0, pause_ms=config.turn_silence_ms(judged=False)),
            smart_turn,
            recognizer=recognizer,
            patience=Patience(
                turns=config.end_of_turn_patience_turns,
                max_frames=config.end_of_turn_patience_max_ms // 20,
            ),
            language=config.asr_language,
            judging=judging,
        )
        return cls(
            recognizer=recognizer,
            bridge=make_llm(config),
            registry=make_registry(config),
            default_model=config.default_model,
            language=config.asr_language,
            llm_name=config.llm_model if config.llm == "openai" else "echo",
            classifier=speech_classifier(config),
            vad=config.vad,
            vad_onset_ms=config.speech_onset_ms(),
            vad_end_ms=config.turn_silence_ms(judged=False),
            turns=turns,
        )


def judged_turns(config: OrchestratorConfig) -> bool:
    """Whether duplex's judges end the agent's turns: ``--end-of-turn`` is not
    ``silence`` and the speech is English (``verdicts.judges_language``); else each turn
    ends after ``--vad-end-ms`` of silence."""
    from duplex_orchestrator.app import end_of_turn

    return end_of_turn(config).mode != "silence" and judges_language(config.asr_language)


def voice_session(parts: VoiceParts) -> tuple[AgentSession[None], DuplexTTS]:
    """An AgentSession speaking with duplex's VAD, ASR, LLM bridge and TTS workers."""
    voice = DuplexTTS(model=parts.default_model, registry=parts.registry)
    turns = parts.turns
    judged = turns if turns is not None and turns.judging else None
    session: AgentSession[None] = AgentSession(
        stt=DuplexSTT(parts.recognizer, language=parts.language, turns=turns),
        vad=DuplexVAD(
            classifier=parts.classifier,
            model="silero" if parts.vad == "silero" else "webrtcvad",
            onset_ms=parts.vad_onset_ms,
            # judged: an utterance ends at the pause, and the judges say if the turn does
            end_ms=judged.silences.pause_ms if judged is not None else parts.vad_end_ms,
            on_speech=turns.speech_started if turns is not None else None,
            gap_ms=judged.silences.gap_ms if judged is not None else 0,
            on_gap=judged.speculate if judged is not None else None,
        ),
        llm=DuplexLLM(parts.bridge, name=parts.llm_name),
        tts=voice,
        turn_handling={
            # duplex's judges answer once the turn's silence has passed, or "unlikely"
            # (no verdict): then the full silence ends it. Unjudged, duplex's VAD has
            # already waited out the silence that ends a turn.
            "turn_detection": judged if judged is not None else "vad",
            "endpointing": {
                "min_delay": 0.0,
                "max_delay": judged.silences.full_ms / 1000 if judged is not None else 3.0,
            },
            # barge-in at duplex's onset; speech with no words lets the reply go on
            "interruption": {
                "mode": "vad",
                "min_duration": parts.vad_onset_ms / 1000,
                "resume_false_interruption": True,
                "false_interruption_timeout": 1.0,
            },
            # judged: the reply (its words and its voice) is prepared from the words as
            # they come, heard only once the turn has ended: a doubted turn's reply
            # sounds as its silence ends; if the user goes on, it is dropped unheard
            "preemptive_generation": {
                "enabled": turns is not None and turns.prepares_replies,
                "preemptive_tts": True,
            },
        },
        # Barge-in works from a reply's first frame, as on duplex's other transports (no
        # 3 s warm-up with interruptions off: speech then would be dropped, not heard).
        aec_warmup_duration=None,
    )
    if turns is not None:
        turns.on_prepares_replies = _preparing_replies(session)
    return session, voice


def _preparing_replies(session: AgentSession[None]) -> Callable[[bool], None]:
    """Turns the session's preemptive generation on or off (a manual turn's reply is
    prepared only once the client has ended it). AgentSession reads the option at each
    final transcript and has no setter for it: its own options are the one place."""

    def prepare(on: bool) -> None:
        session.options.preemptive_generation["enabled"] = on

    return prepare


class DuplexAgent(Agent):
    """duplex's agent: a listener's acknowledgement said over its reply is not a turn,
    and a turn answered too soon is answered whole.

    AgentSession pauses the reply at the onset and resumes it when the speech brings
    no transcript (``resume_false_interruption``), as after a cough; an
    acknowledgement ("uh-huh", "okay": ``turns.is_backchannel``) heard while a reply
    is in progress is dropped from the transcripts, so it resumes the same way,
    unanswered and out of the history. ``backchannels_resume=False``: it stops the
    reply, as any words do.

    Words soon after a turn was ended (a false end, ``DuplexTurnDetector``) come as a
    new turn, the reply to the one before cut short: the reply is to the whole turn,
    the earlier words and the cut reply taken out of the chat (``joined.take_back``),
    as duplex's own sessions answer a turn that went on."""

    def __init__(self, backchannels_resume: bool = True) -> None:
        super().__init__(instructions=SYSTEM_PROMPT)
        self.backchannels_resume = backchannels_resume

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterator[stt.SpeechEvent]:
        async for event in Agent.default.stt_node(self, audio, model_settings):
            if not self._acknowledgement(event):
                yield event

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        turns = self.session.turn_detection
        joined = turns.take_joined() if isinstance(turns, DuplexTurnDetector) else None
        if joined is None:
            return
        earlier = take_back(turn_ctx, joined.said)
        if earlier is None:
            return
        new_message.content = [f"{earlier} {new_message.text_content or ''}".strip()]
        kept = self.chat_ctx.copy()
        take_back(kept, joined.said)
        await self.update_chat_ctx(kept)

    def _acknowledgement(self, event: stt.SpeechEvent) -> bool:
        if not self.backchannels_resume or event.type != stt.SpeechEventType.FINAL_TRANSCRIPT:
            return False
        speech = self.session.current_speech
        replying = speech is not None and not speech.interrupted and not speech.done()
        return replying and bool(event.alternatives) and is_backchannel(event.alternatives[0].text)


def voice_agent(backchannels_resume: bool = True) -> Agent:
    return DuplexAgent(backchannels_resume)


class Control:
    """duplex's control messages from the room (topic ``duplex``), answered on the same
    topic, and the participant's choice of turns. ``turns``: the session's detector
    (default: AgentSession's, where it judges)."""

    def __init__(
        self,
        session: AgentSession[None],
        voice: DuplexTTS,
        send: Callable[[bytes], Awaitable[None]],
        turns: DuplexTurnDetector | None = None,
    ) -> None:
        self._session = session
        self._voice = voice
        self._send = send
        detector = session.turn_detection
        self._turns = turns or (detector if isinstance(detector, DuplexTurnDetector) else None)

    async def turn_detection(self, mode: str) -> None:
        """The participant's ``duplex.turn_detection``: ``"manual"`` (push to talk: only
        ``end_turn`` ends the user's turn, no pause or silence does, and nobody judges
        it) or ``"auto"`` (also when it is removed); an ``error`` event for anything
        else, and the turns stay as they were."""
        try:
            self._set_turn_detection(mode or "auto")
        except ProtocolError as exc:
            await self._answer(Error(exc.code, str(exc)))

    def _set_turn_detection(self, mode: str) -> None:
        if mode not in ("auto", "manual"):
            raise ProtocolError(
                "bad_message",
                f'{TURN_DETECTION_ATTRIBUTE} must be "auto" (the agent ends turns) or '
                f'"manual" (only end_turn does), not {mode[:40]!r}',
            )
        manual, turns = mode == "manual", self._turns
        if turns is None:
            if manual:
                raise ProtocolError(
                    "unsupported", "manual turns need duplex's turn detector; this session has none"
                )
            return
        if turns.manual != manual:
            turns.set_manual(manual)
            # unjudged, the VAD's silence ends automatic turns, the detector manual ones
            if not turns.judging:
                self._session.update_options(turn_detection=turns if manual else "vad")

    async def handle(self, raw: bytes) -> None:
        try:
            message = parse(raw)
            if isinstance(message, Model):
                await self._answer(await self._voice.switch_model(message.model))
            elif isinstance(message, Interrupt):
                await self._session.interrupt()
            elif isinstance(message, Say):
                self._session.say(message.text)
            elif isinstance(message, Ping):
                await self._answer(Pong())
            elif isinstance(message, EndTurn):
                self._end_turn()
            else:
                raise ProtocolError(
                    "unsupported",
                    f"{type(message).__name__.lower()} is not available over LiveKit "
                    "(the room carries the audio; send model, say, interrupt, end_turn "
                    "or ping)",
                )
        except ProtocolError as exc:
            await self._answer(Error(exc.code, str(exc)))

    def _end_turn(self) -> None:
        """The user's turn is over (a push-to-talk button released): the VAD ends the
        utterance in progress now, not after its pause, and the judges answer their
        verdict on it, or on the words before, without its silence."""
        vad, turns = self._session.vad, self._session.turn_detection
        speaking = isinstance(vad, DuplexVAD) and vad.end_utterance()
        open_turn = isinstance(turns, DuplexTurnDetector) and turns.end_turn()
        if not (speaking or open_turn):
            raise ProtocolError(
                "no_speech", "end_turn: no speech was heard since the last one, nothing to answer"
            )

    async def _answer(self, event: Event) -> None:
        await self._send(to_json(event).encode())


def prewarm(config_json: str, proc: JobProcess) -> None:
    """Once per job process: the configuration, Whisper and Smart Turn (the slow parts)."""
    config = OrchestratorConfig.model_validate_json(config_json)
    proc.userdata["config"] = config
    from duplex_orchestrator import prosody
    from duplex_orchestrator.app import end_of_turn, make_transcriber
    from duplex_orchestrator.smart_turn import SmartTurn

    proc.userdata["recognizer"] = make_transcriber(config)
    policy = end_of_turn(config)
    judged = judged_turns(config)
    uses_model = judged and policy.uses_smart_turn
    proc.userdata["smart_turn"] = SmartTurn(config.smart_turn_model) if uses_model else None
    if judged and policy.pitch_rise_st > 0:
        prosody.warm_up()


async def entrypoint(ctx: JobContext) -> None:
    """One room: duplex's voice answers the participant who joins it."""
    config: OrchestratorConfig = ctx.proc.userdata["config"]
    userdata = ctx.proc.userdata
    parts = VoiceParts.from_config(config, userdata["recognizer"], userdata["smart_turn"])
    session, voice = voice_session(parts)
    ctx.add_shutdown_callback(voice.aclose)
    await ctx.connect()
    room = ctx.room

    async def send(payload: bytes) -> None:
        await room.local_participant.publish_data(payload, reliable=True, topic=CONTROL_TOPIC)

    control = Control(session, voice, send, parts.turns)
    handling: set[asyncio.Task[None]] = set()

    def spawn(work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        handling.add(task)
        task.add_done_callback(handling.discard)

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == CONTROL_TOPIC:
            spawn(control.handle(packet.data))

    def on_attributes(changed: dict[str, str], participant: rtc.Participant) -> None:
        if TURN_DETECTION_ATTRIBUTE in changed and participant != room.local_participant:
            spawn(control.turn_detection(changed[TURN_DETECTION_ATTRIBUTE]))

    def on_joined(participant: rtc.RemoteParticipant) -> None:
        on_attributes(participant.attributes, participant)

    room.on("data_received", on_data)
    room.on("participant_attributes_changed", on_attributes)
    room.on("participant_connected", on_joined)
    for participant in room.remote_participants.values():  # those in the room already
        on_joined(participant)
    voice.prewarm()
    # record=False: no audio or transcript leaves the job unless the deployment opts in
    backchannels_resume = config.barge_in_backchannels == "resume"
    await session.start(agent=voice_agent(backchannels_resume), room=room, record=False)
