"""Audio and text constants of the wire format (DESIGN §3)."""

from typing import Final

SAMPLE_RATE: Final = 48_000
"""Output sample rate of every AudioFrame, Hz."""
FRAME_MS: Final = 20
"""Duration of one AudioFrame."""
FRAME_SAMPLES: Final = SAMPLE_RATE * FRAME_MS // 1000
"""960 mono samples per frame."""
FRAME_BYTES: Final = FRAME_SAMPLES * 2
"""1920 bytes of little-endian int16 per frame."""
MAX_TEXT_CHUNK_BYTES: Final = 4096
"""Largest TextChunk.text accepted by a worker (UTF-8 bytes)."""
