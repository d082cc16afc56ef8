"""duplex for LiveKit Agents: duplex's voice as LiveKit plugins and a room agent.

from duplex_livekit import DuplexTTS
session = AgentSession(stt=..., llm=..., tts=DuplexTTS(workers=["10.0.0.5:7001"]))

``DuplexSTT`` (Whisper), ``DuplexVAD`` (duplex's VAD), ``DuplexTurnDetector``
(duplex's end-of-turn judges), ``DuplexLLM``
(duplex's LLM bridges) and ``voice_session`` (all of them in one AgentSession)
make the agent ``duplex-orchestrator --transport livekit`` runs in each room;
``DuplexAgent`` lets a listener's acknowledgement over its reply pass.
"""

from duplex_livekit.agent import DuplexAgent, VoiceParts, voice_agent, voice_session
from duplex_livekit.control import Control
from duplex_livekit.llm import DuplexLLM
from duplex_livekit.stt import DuplexSTT
from duplex_livekit.tts import DuplexTTS, DuplexTTSStream
from duplex_livekit.turns import DuplexTurnDetector
from duplex_livekit.vad import DuplexVAD
from duplex_livekit.verdicts import TurnSilences

__all__ = [
    "Control",
    "DuplexAgent",
    "DuplexLLM",
    "DuplexSTT",
    "DuplexTTS",
    "DuplexTTSStream",
    "DuplexTurnDetector",
    "DuplexVAD",
    "TurnSilences",
    "VoiceParts",
    "voice_agent",
    "voice_session",
]
