"""duplex orchestrator: realtime speech-to-speech sessions over WebSocket."""

__version__ = "0.1.0"
