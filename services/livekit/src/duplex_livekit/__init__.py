"""duplex for LiveKit Agents: ``DuplexTTS``, a TTS plugin speaking with duplex's workers.

from duplex_livekit import DuplexTTS
session = AgentSession(stt=..., llm=..., tts=DuplexTTS(workers=["10.0.0.5:7001"]))
"""

from duplex_livekit.tts import DuplexTTS, DuplexTTSStream

__all__ = ["DuplexTTS", "DuplexTTSStream"]
