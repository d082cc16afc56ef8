"""duplex's voice as a LiveKit agent: an AgentSession of duplex's parts, and the room job.

``voice_session`` builds the AgentSession every room job runs: duplex's
VAD (Silero or webrtcvad) for utterances and barge-in, duplex's judges for the
end of the turn (``turns.DuplexTurnDetector``: Whisper's words and Smart Turn,
as on duplex's own transports), Whisper for speech recognition, duplex's LLM
bridge, and ``DuplexTTS`` routing replies through duplex's registry (static
addresses or the Kubernetes Leases). LiveKit's own turn detector is not used:
its weights come from a model hub, which duplex never downloads from.

``entrypoint`` is the room job (duplex's control messages reach it through
``control.follow_room``); ``prewarm`` loads Whisper once per job process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, replace

from livekit import rtc
from livekit.agents import Agent, AgentSession, JobContext, JobProcess, ModelSettings, llm, stt

from duplex_livekit.control import CONTROL_TOPIC, Control, follow_room
from duplex_livekit.joined import take_back
from duplex_livekit.llm import DuplexLLM
from duplex_livekit.stt import DuplexSTT
from duplex_livekit.tts import DuplexTTS
from duplex_livekit.turns import DuplexTurnDetector
from duplex_livekit.vad import DuplexVAD
from duplex_livekit.verdicts import TurnSilences, judges_language
from duplex_orchestrator.asr import SpeechToText
from duplex_orchestrator.config import OrchestratorConfig
from duplex_orchestrator.llm import HISTORY_CHARS, SYSTEM_PROMPT, LLMBridge
from duplex_orchestrator.patience import Patience
from duplex_orchestrator.registry.base import Registry
from duplex_orchestrator.session_parts import TurnModel
from duplex_orchestrator.turns import is_backchannel
from duplex_orchestrator.vad import FrameClassifier, WebRtcClassifier

log = logging.getLogger(__name__)


@dataclass
class VoiceParts:
    """What one agent session is made of (the room job builds it from the configuration)."""

    recognizer: SpeechToText
    bridge: LLMBridge
    registry: Registry
    default_model: str = "piper-en-us-joe-medium"
    language: str = "en"
    llm_name: str = "echo"
    history_chars: int = HISTORY_CHARS
    """The conversation the LLM is given with each turn (``llm_history_chars``)."""
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
            history_chars=config.llm_history_chars,
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
        llm=DuplexLLM(parts.bridge, name=parts.llm_name, history_chars=parts.history_chars),
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
            # (a manual turn's, once the client has ended it: ``prepares_replies``)
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

    def __init__(self, backchannels_resume: bool = True, instructions: str = SYSTEM_PROMPT) -> None:
        super().__init__(instructions=instructions)
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


def voice_agent(backchannels_resume: bool = True, instructions: str = SYSTEM_PROMPT) -> Agent:
    return DuplexAgent(backchannels_resume, instructions)


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

    follow_room(room, Control(session, voice, send, parts.turns))
    voice.prewarm()
    # record=False: no audio or transcript leaves the job unless the deployment opts in
    backchannels_resume = config.barge_in_backchannels == "resume"
    agent = voice_agent(backchannels_resume, config.llm_instructions)
    await session.start(agent=agent, room=room, record=False)
