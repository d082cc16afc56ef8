"""Cloned voices: conditioning latents cached by a hash of the reference clip.

XTTS clones a voice from a few seconds of audio by computing two tensors (the
GPT's conditioning latents and the decoder's speaker embedding). That costs a
forward pass through two encoders, so the result is kept in a small LRU keyed by
a digest of the clip (its samples and rate): a session that reconnects with the
same clip, or two sessions sharing one, compute it once. Nothing of the clip
itself is kept. The cache is per loaded model: unloading drops it, and RELOAD
clears it (``TTSModel.forget``).
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

V = TypeVar("V")


def clip_key(audio: npt.NDArray[np.float32], sample_rate: int) -> str:
    """A digest of a reference clip: equal clips (samples and rate) share latents."""
    digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    digest.update(int(sample_rate).to_bytes(4, "little"))
    return digest.hexdigest()


class LatentCache(Generic[V]):
    """A thread-safe LRU of computed voices, with hit and miss counts."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("latent_cache_size must be >= 0")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: collections.OrderedDict[str, V] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], V]) -> tuple[V, bool]:
        """(the value, whether it was cached); ``compute`` runs outside the lock."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key], True
            self.misses += 1
        value = compute()
        with self._lock:
            if self.capacity:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items
