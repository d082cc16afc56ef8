"""Piper's VITS graph cut in two, so a clause is heard before all of it is decoded.

A Piper voice is one ONNX graph: the text encoder, duration predictor and
flow (phonemes → latent frames, the smaller part of the time) and then the
HiFi-GAN decoder (latent frames → audio), whose nodes torch's export names
``/dec/…``. ``split_graph`` cuts the graph where the decoder begins.
``SplitVoice.speak`` runs the front once, then decodes the frames in chunks:
a short first one (``FIRST_FRAMES``, ~0.19 s of audio at 22.05 kHz) so the
clause starts playing early, then each twice as long as the one before, up
to ``MAX_FRAMES`` (~3 s): the second is ready well before the first has
played, even on busy threads, and the long ones waste little on their edges.
Each chunk is decoded with up to ``CONTEXT_FRAMES`` of its neighbours on both
sides, and those samples are cut off again: the decoder's receptive field is
shorter than that, so the chunks join into the very samples one pass gives
(the tests compare them).

A graph whose decoder takes more than the latent frames (a multi-speaker
voice feeds it a speaker embedding too) is not split: it runs whole.

``cached_split`` keeps the halves as files in the worker's cache: onnxruntime
holds ~60 MB more for a model handed over as bytes than for one it reads from
a file, and later loads skip the cut (and importing onnx).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex_tts.adapters import FloatArray

DECODER_PREFIX = "/dec/"
FIRST_FRAMES = 16
MAX_FRAMES = 256
CONTEXT_FRAMES = 16


@dataclass(frozen=True)
class SplitGraph:
    """The two serialized halves of a voice's graph, and the tensors between them."""

    front: bytes
    decoder: bytes
    latent: str
    audio: str


def split_graph(model: Any) -> SplitGraph | None:
    """``model`` (an ``onnx.ModelProto``) cut before its decoder, or None when it
    has no ``/dec/`` part fed by one tensor alone."""
    from onnx.shape_inference import infer_shapes
    from onnx.utils import Extractor

    graph = model.graph
    made_by = {out: node.name for node in graph.node for out in node.output}
    weights = {w.name for w in graph.initializer}
    decoder = [node for node in graph.node if node.name.startswith(DECODER_PREFIX)]
    if not decoder:
        return None
    inputs = {
        name
        for node in decoder
        for name in node.input
        if name and name not in weights and not made_by.get(name, "").startswith(DECODER_PREFIX)
    }
    produced = {out for node in decoder for out in node.output}
    used_after = {
        name
        for node in graph.node
        if not node.name.startswith(DECODER_PREFIX)
        for name in node.input
        if name in produced
    } | {out.name for out in graph.output if out.name in produced}
    if len(inputs) != 1 or len(used_after) != 1:
        return None
    (latent,), (audio,) = inputs, used_after
    if not {latent, audio} <= {info.name for info in graph.value_info}:
        model = infer_shapes(model)  # the cut's tensors need a type (Piper's export has them)
    extractor = Extractor(model)
    front = extractor.extract_model([i.name for i in graph.input], [latent])
    back = extractor.extract_model([latent], [audio])
    return SplitGraph(front.SerializeToString(), back.SerializeToString(), latent, audio)


def cached_split(model_path: Path, cache_dir: Path) -> tuple[Path, Path, str, str] | None:
    """(front file, decoder file, latent tensor, audio tensor) for ``model_path``,
    cut once into ``cache_dir``; None when the graph cannot be cut. Raises OSError
    when the cache cannot be written."""
    stat = model_path.stat()
    source = f"{model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    key = hashlib.sha256(source.encode()).hexdigest()[:12]
    folder = cache_dir / "piper" / f"{model_path.stem}-{key}"
    names = folder / "split.json"
    if not names.exists():
        import onnx

        split = split_graph(onnx.load(str(model_path)))
        if split is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "front.onnx", split.front)
        _write(folder / "decoder.onnx", split.decoder)
        _write(names, json.dumps({"latent": split.latent, "audio": split.audio}).encode())
    tensors = json.loads(names.read_text(encoding="utf-8"))
    return folder / "front.onnx", folder / "decoder.onnx", tensors["latent"], tensors["audio"]


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: two workers sharing a cache may cut the same voice."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)  # a write that failed (a full disk) leaves nothing


class SplitVoice:
    """The two halves as sessions (anything with onnxruntime's ``run``)."""

    def __init__(self, front: Any, decoder: Any, latent: str, audio: str) -> None:
        self.front, self.decoder = front, decoder
        self._latent, self._audio = latent, audio

    def speak(self, feeds: dict[str, np.ndarray]) -> Iterator[FloatArray]:
        """The graph's audio for ``feeds``, in chunks, the first one short."""
        (frames,) = self.front.run([self._latent], feeds)
        total = int(frames.shape[-1])
        start, size = 0, FIRST_FRAMES
        while start < total:
            end = min(total, start + size)
            low, high = max(0, start - CONTEXT_FRAMES), min(total, end + CONTEXT_FRAMES)
            window = np.ascontiguousarray(frames[..., low:high])
            (audio,) = self.decoder.run([self._audio], {self._latent: window})
            samples = np.asarray(audio, dtype=np.float32).reshape(-1)
            hop = samples.size // (high - low)  # audio samples per latent frame
            yield samples[(start - low) * hop : (end - low) * hop]
            start, size = end, min(2 * size, MAX_FRAMES)


__all__ = [
    "CONTEXT_FRAMES",
    "FIRST_FRAMES",
    "MAX_FRAMES",
    "SplitGraph",
    "SplitVoice",
    "cached_split",
    "split_graph",
]
