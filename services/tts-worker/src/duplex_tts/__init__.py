"""duplex TTS worker: the streaming gRPC ABI over a model manager and TTS adapters."""

__version__ = "0.1.0"
