"""Mimi codes to audio in small chunks, as frames come out of generation.

CSM emits one frame of codebooks per step (12.5 frames a second, 1,920
samples each at 24 kHz). Decoding each chunk alone would click at every
boundary, because Mimi's decoder is causal but looks back: convolutions and a
windowed transformer. ``ChunkedDecoder`` decodes every chunk together with the
``context_frames`` before it and keeps only the new samples, so the joined
chunks equal one decode of the whole (exactly, once the context covers the
decoder's reach; the tests check it numerically).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from duplex_tts.tracing import phase


class ChunkedDecoder:
    def __init__(self, codec: Any, *, chunk_frames: int = 2, context_frames: int = 25) -> None:
        self._codec = codec
        self.chunk_frames = chunk_frames
        self.context_frames = context_frames
        self.samples_per_frame = int(
            codec.config.sampling_rate / codec.config.frame_rate
        )  # 1,920 for Mimi at 24 kHz
        self._frames: list[torch.Tensor] = []  # each (num_codebooks,)
        self._decoded = 0  # frames already turned into audio

    def push(self, frame: torch.Tensor) -> npt.NDArray[np.float32] | None:
        """Add one frame of codes; audio once ``chunk_frames`` new frames are in."""
        self._frames.append(frame.reshape(-1))
        if len(self._frames) - self._decoded >= self.chunk_frames:
            return self._decode()
        return None

    def flush(self) -> npt.NDArray[np.float32] | None:
        """Audio for the frames not decoded yet (end of the clause)."""
        return self._decode() if len(self._frames) > self._decoded else None

    def _decode(self) -> npt.NDArray[np.float32]:
        start = max(0, self._decoded - self.context_frames)
        codes = torch.stack(self._frames[start:], dim=-1).unsqueeze(0)  # (1, codebooks, T)
        with torch.inference_mode(), phase("csm.decode"):
            audio = self._codec.decode(codes).audio_values[0, 0]
        new = (len(self._frames) - self._decoded) * self.samples_per_frame
        self._decoded = len(self._frames)
        # Forget what no later chunk can reach.
        drop = max(0, self._decoded - self.context_frames)
        if drop:
            self._frames = self._frames[drop:]
            self._decoded -= drop
        out: npt.NDArray[np.float32] = audio[-new:].float().cpu().numpy()
        return out
