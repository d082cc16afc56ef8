"""The adapter interface every TTS family implements.

A family (``TTSFamily``) turns a catalog entry into a loaded ``TTSModel``; a
model turns text into float32 PCM chunks at its native rate. That is all an
adapter does: framing, pacing, resampling, loudness, metrics and threading
belong to the worker. The shape fits the coming GPU families too:

- token-streaming models (CSM, CosyVoice 2) set ``text_granularity = TOKEN``
  and receive raw text deltas instead of whole clauses;
- LoRA voices and other variants name a ``base_model`` in their voicepack; the
  manager loads the base first and passes it to ``TTSFamily.load``;
- voice cloning reads ``VoiceOptions.reference_audio``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from duplex_tts.catalog import ModelSpec

FloatArray = npt.NDArray[np.float32]


class TextGranularity(enum.Enum):
    CLAUSE = "clause"
    """synthesize() gets whole clauses (most models)."""
    TOKEN = "token"
    """synthesize() gets text deltas as they arrive (streaming-text models)."""


@dataclass(frozen=True)
class VoiceOptions:
    """Per-session voice settings from StartSession."""

    language: str = ""
    speaker: str = ""
    reference_audio: FloatArray | None = None
    reference_sample_rate: int = 0
    reference_text: str = ""


class AdapterError(Exception):
    """A model failed to load or synthesize; the message is shown to the client."""


class TTSModel(ABC):
    """A loaded model. Implement ``synthesize``; the rest has defaults."""

    text_granularity: ClassVar[TextGranularity] = TextGranularity.CLAUSE

    def __init__(self, native_sample_rate: int) -> None:
        self.native_sample_rate = native_sample_rate

    @abstractmethod
    def synthesize(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        """Yield mono float32 chunks in [-1, 1] at ``native_sample_rate``.

        Runs in a worker thread; may block. Called concurrently for different
        sessions, so guard any non-thread-safe state.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most models need nothing
        """Free weights (GPU memory, sessions). Called once, after the last reference."""

    @property
    def memory_bytes(self) -> int:
        """Approximate memory held by the weights, for placement."""
        return 0


class TTSFamily(ABC):
    """A model family: knows how to load its voicepacks."""

    name: ClassVar[str]

    @abstractmethod
    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        """Load ``spec`` onto ``device`` ("cpu" or "cuda"). Blocking; runs in a thread.

        ``base`` is the loaded ``spec.base_model`` for variants, else None.
        Raise ``AdapterError`` with an actionable message on failure.
        """
