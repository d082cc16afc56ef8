"""duplex wire contracts shared by every service: the TTS gRPC ABI and audio constants."""

from duplex_protocol.audio import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    MAX_TEXT_CHUNK_BYTES,
    SAMPLE_RATE,
)

__all__ = ["FRAME_BYTES", "FRAME_MS", "FRAME_SAMPLES", "MAX_TEXT_CHUNK_BYTES", "SAMPLE_RATE"]
