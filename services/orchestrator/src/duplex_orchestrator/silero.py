"""Silero VAD v6 (MIT): the ONNX model faster-whisper ships, run on a live stream.

The model reads 512-sample chunks (32 ms at 16 kHz), each with the 64 samples
before it as context, and carries an LSTM state (h, c) from chunk to chunk.
``SileroModel`` holds the one onnxruntime session a process shares (``run`` is
thread-safe); every audio stream owns its state in a ``SileroClassifier``,
which answers per 20 ms frame with the probability of the latest whole chunk.
As in Silero's own ``get_speech_timestamps``, speech starts at ``threshold``
and lasts until the probability falls 0.15 below it (hysteresis).

The state is started afresh after each second of non-speech
(``RESET_AFTER_FRAMES``): carried over from the speech before, it lowers the
probability of the next onset, so a short quiet word after a turn ("hello" on
a telephone line, about -38 dBFS) was not heard at all, though the same word with
a fresh state is (pipecat resets it every 5 s; silero-vad issues 538 and 725).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 512
CONTEXT = 64
HYSTERESIS = 0.15
RESET_AFTER_FRAMES = 50
"""20 ms frames of non-speech after which (and after every such run since) the LSTM
state starts afresh."""


def find_model() -> Path:
    """faster-whisper's bundled ``silero_vad_v6.onnx`` (nothing is downloaded)."""
    import faster_whisper

    path = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall faster-whisper (>= 1.2)")
    return path


class SileroModel:
    """The shared ONNX session; ``classifier()`` gives a stream its own state."""

    def __init__(self, path: Path | None = None, threshold: float = 0.5) -> None:
        import onnxruntime

        if not HYSTERESIS < threshold < 1:
            raise ValueError(f"threshold {threshold} must be between {HYSTERESIS} and 1")
        options = onnxruntime.SessionOptions()
        # A 32 ms chunk is tiny: one thread, and no thread pool waking up per chunk.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 4
        self.threshold = threshold
        self._session: Any = onnxruntime.InferenceSession(
            str(path or find_model()), options, providers=["CPUExecutionProvider"]
        )

    def probability(
        self, chunk: np.ndarray, state: tuple[np.ndarray, np.ndarray]
    ) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        """One (CONTEXT + CHUNK)-sample float32 window → (speech probability, new state)."""
        prob, h, c = self._session.run(
            None, {"input": chunk[np.newaxis], "h": state[0], "c": state[1]}
        )
        return float(prob.reshape(-1)[0]), (h, c)

    def classifier(self) -> SileroClassifier:
        return SileroClassifier(self)


class SileroClassifier:
    """Per-stream: 20 ms int16 frames in, speech or not out (``vad.FrameClassifier``)."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._state = _fresh_state()
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._speech = False
        self._quiet_frames = 0
        self.probability = 0.0

    def is_speech(self, frame: np.ndarray) -> bool:
        samples = frame.astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            window = np.concatenate([self._context, chunk])
            self.probability, self._state = self._model.probability(window, self._state)
            self._context = chunk[-CONTEXT:]
        threshold = self._model.threshold
        self._speech = self.probability >= (threshold - HYSTERESIS if self._speech else threshold)
        self._quiet_frames = 0 if self._speech else self._quiet_frames + 1
        if self._quiet_frames % RESET_AFTER_FRAMES == 0 and self._quiet_frames:
            self._state = _fresh_state()  # the speech before no longer biases the next onset
        return self._speech


def _fresh_state() -> tuple[np.ndarray, np.ndarray]:
    zeros = np.zeros((1, 1, 128), np.float32)
    return zeros, zeros.copy()
