"""Smart Turn v3.2: a learned end-of-turn model on the audio, run with onnxruntime.

The ONNX file (BSD-2-Clause, ~8.7 MB) ships inside the PyPI package
``pipecat-ai`` at ``pipecat/audio/turn/smart_turn/data/``. duplex loads it from
the installed package without importing pipecat (whose dependencies pin a
protobuf older than grpcio's): ``make install`` and the orchestrator image
install ``pipecat-ai`` with ``--no-deps``. Another copy can be named with
``smart_turn_model``.

Its input is Whisper's log-mel features of the last 8 s at 16 kHz (zeros
before shorter audio), the waveform first normalized to zero mean and unit
variance; faster-whisper's feature extractor computes them. Its output is the
probability that the turn is complete.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from duplex_orchestrator.asr import as_float32

PIPECAT_VERSION = "1.14.0"
_DATA = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")
_RATE = 16_000
_SECONDS = 8


class SmartTurnMissing(RuntimeError):
    """The model file is not installed: the message says how to install it."""


def find_model() -> Path:
    """The ONNX file inside the installed ``pipecat-ai`` (its package is not imported)."""
    spec = importlib.util.find_spec("pipecat")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder).joinpath(*_DATA)
        if path.is_file():
            return path
    raise SmartTurnMissing(
        "Smart Turn v3.2 is not installed: run `uv pip install --no-deps "
        f"pipecat-ai=={PIPECAT_VERSION}` (make install does), set smart_turn_model "
        "to the .onnx file, or use --end-of-turn transcript"
    )


class SmartTurn:
    """One onnxruntime session; ``probability`` is thread-safe (onnxruntime's ``run`` is)."""

    def __init__(self, model: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session: Any = ort.InferenceSession(
            str(model or find_model()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._features: Any = FeatureExtractor(feature_size=80, chunk_length=_SECONDS)

    def probability(self, audio16k: np.ndarray) -> float:
        """Blocking: the chance that the turn ending with this audio is complete (0..1)."""
        length = _RATE * _SECONDS
        samples = as_float32(audio16k[-length:])
        samples = np.pad(samples, (length - len(samples), 0))
        samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        features = self._features(samples, padding=0)[:, : _SECONDS * 100]
        batch = np.ascontiguousarray(features[np.newaxis].astype(np.float32))
        (output,) = self._session.run(None, {"input_features": batch})
        return float(np.asarray(output).ravel()[0])
