"""Piper's VITS graph cut in three, so a clause is heard before all of it is made.

A Piper voice is one ONNX graph: the text encoder and duration predictor
(phonemes → a sample of the prior, one frame per latent frame), the flow
(prior → latent frames) and then the HiFi-GAN decoder (latent frames →
audio, most of the time), whose nodes torch's export names ``/flow/…`` and
``/dec/…``. ``split_graph`` cuts the graph where the decoder begins and, where
it can (below), where the flow does. ``SplitVoice.speak`` runs the front
once, then decodes the frames in chunks: a short first one (``FIRST_FRAMES``,
~0.19 s of audio at 22.05 kHz) so the clause starts playing early, then each
twice as long as the one before, up to ``MAX_FRAMES`` (~3 s): the second is
ready well before the first has played, even on busy threads, and the long
ones waste little on their edges. Each chunk is decoded with up to
``CONTEXT_FRAMES`` of its neighbours on both sides, and those samples are cut
off again: the decoder's receptive field is shorter than that, so the chunks
join into the very samples one pass gives (the tests compare them).

The flow is run the same way, as far as the next chunk needs (``_FlowRuns``):
first on the first chunk's frames alone, then on up to ``FLOW_RUN_FRAMES`` at
a time, each run with ``Cut.flow_context`` frames of the prior on both sides,
cut off again. That context is the flow's receptive field, summed from its
convolutions (Piper's: 4 couplings of 4 convolutions of width 5, 32 frames),
so the runs too join into what one pass gives. The flow is cut out only when
it is fed by the prior and a mask alone, every operation in it works frame
by frame or as such a convolution (a flow with attention over time, as in
VITS2's, stays in the front), and, run once at the cut on two windows of
random frames, it gives what one run gives (a slice or a join along the
frames would not).

A graph whose decoder takes more than the latent frames (a multi-speaker
voice feeds it a speaker embedding too) is not split: it runs whole.

``cached_split`` keeps the parts as files in the worker's cache: onnxruntime
holds ~60 MB more for a model handed over as bytes than for one it reads from
a file, and later loads skip the cut (and importing onnx).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex_tts.adapters import FloatArray

DECODER_PREFIX = "/dec/"
FLOW_PREFIX = "/flow/"
FIRST_FRAMES = 16
MAX_FRAMES = 256
CONTEXT_FRAMES = 16
FLOW_RUN_FRAMES = 256
"""The flow's runs after the first: long enough to waste little on their context,
short enough to be done, with the second chunk's decode, while the first chunk plays."""

# Operations that keep the frames apart (or, as convolutions, mix a known few): a
# flow made only of these can be run on a window of frames. Piper's uses these.
_FRAME_WISE_OPS = frozenset(
    {
        "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "Div", "Exp",
        "Identity", "LeakyRelu", "Mul", "Neg", "Relu", "Shape", "Sigmoid", "Slice",
        "Split", "Sub", "Tanh",
    }
)  # fmt: skip
# The cache's layout: a voice cut by an older version is cut again.
_LAYOUT = "front-flow-decoder"


@dataclass(frozen=True)
class Cut:
    """Where a voice's graph is cut: the tensors between its parts."""

    latent: str
    """The decoder's input (the flow's output)."""
    audio: str
    prior: str = ""
    """The flow's input, one frame per latent frame ("": the flow runs in the front)."""
    mask: str = ""
    """The flow's other input, the frames' mask (ones, when a clause is spoken)."""
    flow_context: int = 0
    """Frames on each side of a frame of the prior that its latent frame depends on."""


@dataclass(frozen=True)
class SplitGraph:
    """A voice's graph in parts: each serialized (bytes) or as a file's path (str)."""

    front: bytes | str
    decoder: bytes | str
    cut: Cut
    flow: bytes | str | None = None


def split_graph(model: Any) -> SplitGraph | None:
    """``model`` (an ``onnx.ModelProto``) cut before its decoder, and before its flow
    where that can run on windows of frames; None when it has no ``/dec/`` part fed
    by one tensor alone."""
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
    region = _flow_region(graph, latent)
    feeds = _flow_feeds(graph, region)
    shaped = {info.name for info in graph.value_info if info.type.tensor_type.shape.dim}
    if not {latent, audio, *feeds} <= shaped:
        model = infer_shapes(model)  # the cuts' tensors need a type, the flow's feeds a shape
    extractor = Extractor(model)
    back = extractor.extract_model([latent], [audio]).SerializeToString()
    first = [i.name for i in model.graph.input]
    flow = _flow_cut(model.graph, region, feeds)
    if flow is not None:
        cut = Cut(latent, audio, *flow)
        middle = extractor.extract_model([cut.prior, cut.mask], [latent]).SerializeToString()
        if _windows_join(middle, cut):
            front = extractor.extract_model(first, [cut.prior, cut.mask]).SerializeToString()
            return SplitGraph(front, back, cut, middle)
    front = extractor.extract_model(first, [latent]).SerializeToString()
    return SplitGraph(front, back, Cut(latent, audio))


def _flow_region(graph: Any, latent: str) -> list[Any]:
    """The flow's nodes: those made from a ``/flow/`` node and used to make ``latent``
    (the flow, and what joins it to the decoder)."""
    nodes = list(graph.node)
    made_by = {out: i for i, node in enumerate(nodes) for out in node.output}
    users: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for name in node.input:
            users[name].append(i)
    before: set[int] = set()
    todo = [made_by[latent]] if latent in made_by else []
    while todo:
        i = todo.pop()
        if i not in before:
            before.add(i)
            todo.extend(made_by[name] for name in nodes[i].input if name in made_by)
    after: set[int] = set()
    todo = [i for i, node in enumerate(nodes) if node.name.startswith(FLOW_PREFIX)]
    while todo:
        i = todo.pop()
        if i not in after:
            after.add(i)
            todo.extend(user for out in nodes[i].output for user in users[out])
    return [nodes[i] for i in sorted(before & after)]


def _flow_feeds(graph: Any, region: list[Any]) -> list[str]:
    """The tensors that feed the flow from outside it, if it works on windows of frames
    and two feed it (else none: it stays in the front)."""
    if not region or any(node.op_type not in _FRAME_WISE_OPS for node in region):
        return []
    inside = {out for node in region for out in node.output}
    fixed = {w.name for w in graph.initializer} | {
        out for node in graph.node if node.op_type == "Constant" for out in node.output
    }
    feeds = {name for node in region for name in node.input if name} - inside - fixed
    return sorted(feeds) if len(feeds) == 2 else []


def _flow_cut(graph: Any, region: list[Any], feeds: list[str]) -> tuple[str, str, int] | None:
    """(prior, mask, context) of a flow fed by ``feeds``: the mask is the feed with one
    channel; the context sums its convolutions' reach. None if it cannot tell."""
    channels = {
        info.name: info.type.tensor_type.shape.dim[1].dim_value
        for info in [*graph.value_info, *graph.input]
        if info.name in feeds and len(info.type.tensor_type.shape.dim) == 3
    }
    masks = [name for name in feeds if channels.get(name) == 1]
    priors = [name for name in feeds if channels.get(name, 1) > 1]
    if len(masks) != 1 or len(priors) != 1:
        return None
    reaches = [_conv_reach(node) for node in region if node.op_type == "Conv"]
    if any(reach is None for reach in reaches):
        return None
    return priors[0], masks[0], sum(reach or 0 for reach in reaches)


def _conv_reach(node: Any) -> int | None:
    """How many frames on either side of its own a 1-D convolution's output frame
    reads (None: strided, or not 1-D)."""
    from onnx.helper import get_attribute_value

    attrs = {a.name: get_attribute_value(a) for a in node.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    if len(kernel) != 1 or any(s != 1 for s in attrs.get("strides", [1])):
        return None
    dilation = int(next(iter(attrs.get("dilations", [1]))))
    begin = int(next(iter(attrs.get("pads", [0]))))
    width = dilation * (int(kernel[0]) - 1)
    return max(begin, width - begin)


def _windows_join(flow: bytes, cut: Cut) -> bool:
    """Whether the flow, run on two windows of random frames with ``cut.flow_context``
    beyond each, gives what one run gives (to well under a 16-bit sample): the reach
    was summed right, and nothing in it reads the whole clause (a slice or a join
    along the frames would)."""
    import onnxruntime as ort

    session = ort.InferenceSession(flow, providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    channels = shapes[cut.prior][1]
    if not isinstance(channels, int):
        return False
    context = cut.flow_context
    total = 4 * context + 2 * FIRST_FRAMES
    middle = total // 2
    prior = np.random.default_rng(0).normal(size=(1, channels, total)).astype(np.float32)
    mask = np.ones((1, 1, total), np.float32)

    def run(low: int, high: int) -> np.ndarray:
        feeds = {
            cut.prior: np.ascontiguousarray(prior[..., low:high]),
            cut.mask: np.ascontiguousarray(mask[..., low:high]),
        }
        return np.asarray(session.run([cut.latent], feeds)[0])

    whole = run(0, total)
    left = run(0, middle + context)[..., :middle]
    right = run(middle - context, total)[..., context:]
    error = np.abs(np.concatenate([left, right], axis=-1) - whole).max()
    return bool(error <= 1e-5 * max(1.0, float(np.abs(whole).max())))


def cached_split(model_path: Path, cache_dir: Path) -> SplitGraph | None:
    """``model_path``'s parts as files (paths) in ``cache_dir``, cut once; None when
    the graph cannot be cut. Raises OSError when the cache cannot be written."""
    stat = model_path.stat()
    source = f"{_LAYOUT}:{model_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    key = hashlib.sha256(source.encode()).hexdigest()[:12]
    folder = cache_dir / "piper" / f"{model_path.stem}-{key}"
    names = folder / "split.json"
    if not names.exists():
        import onnx

        split = split_graph(onnx.load(str(model_path)))
        if split is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "front.onnx", _bytes(split.front))
        _write(folder / "decoder.onnx", _bytes(split.decoder))
        if split.flow is not None:
            _write(folder / "flow.onnx", _bytes(split.flow))
        _write(names, json.dumps(asdict(split.cut)).encode())
    cut = Cut(**json.loads(names.read_text(encoding="utf-8")))
    flow = str(folder / "flow.onnx") if cut.prior else None
    return SplitGraph(str(folder / "front.onnx"), str(folder / "decoder.onnx"), cut, flow)


def _bytes(part: bytes | str) -> bytes:
    return part if isinstance(part, bytes) else Path(part).read_bytes()


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: two workers sharing a cache may cut the same voice."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)  # a write that failed (a full disk) leaves nothing


class SplitVoice:
    """The parts as sessions (anything with onnxruntime's ``run``); ``flow`` None when
    the flow runs in the front."""

    def __init__(self, front: Any, decoder: Any, cut: Cut, flow: Any = None) -> None:
        self.front, self.decoder, self.flow = front, decoder, flow
        self.cut = cut

    @property
    def sessions(self) -> list[Any]:
        return [self.front, *([self.flow] if self.flow is not None else []), self.decoder]

    def speak(self, feeds: dict[str, np.ndarray]) -> Iterator[FloatArray]:
        """The graph's audio for ``feeds``, in chunks, the first one short."""
        cut = self.cut
        latent: _Frames | _FlowRuns
        if self.flow is None:
            (frames,) = self.front.run([cut.latent], feeds)
            latent = _Frames(frames)
        else:
            prior, mask = self.front.run([cut.prior, cut.mask], feeds)
            latent = _FlowRuns(self.flow, cut, prior, mask)
        total = latent.total
        start, size = 0, FIRST_FRAMES
        while start < total:
            end = min(total, start + size)
            low, high = max(0, start - CONTEXT_FRAMES), min(total, end + CONTEXT_FRAMES)
            window = np.ascontiguousarray(latent.until(high)[..., low:high])
            (audio,) = self.decoder.run([cut.audio], {cut.latent: window})
            samples = np.asarray(audio, dtype=np.float32).reshape(-1)
            hop = samples.size // (high - low)  # audio samples per latent frame
            yield samples[(start - low) * hop : (end - low) * hop]
            start, size = end, min(2 * size, MAX_FRAMES)


class _Frames:
    """Latent frames made all at once (by a front that holds the flow)."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames = frames
        self.total = int(frames.shape[-1])

    def until(self, end: int) -> np.ndarray:
        return self._frames


class _FlowRuns:
    """Latent frames made by the flow as far as the decoder needs them: the first
    chunk's alone first (heard sooner), then ``FLOW_RUN_FRAMES`` at a time, each run
    reading ``flow_context`` frames of the prior beyond it on both sides."""

    def __init__(self, flow: Any, cut: Cut, prior: np.ndarray, mask: np.ndarray) -> None:
        self._flow, self._cut = flow, cut
        self._prior, self._mask = prior, mask
        self.total = int(prior.shape[-1])
        self.done = 0
        """Frames made so far (exactly as one pass would)."""
        self._frames: np.ndarray | None = None

    def until(self, end: int) -> np.ndarray:
        """The latent frames, made at least up to ``end``."""
        if end > self.done:
            self._run(self._target(end))
        assert self._frames is not None
        return self._frames

    def _target(self, end: int) -> int:
        context, done, total = self._cut.flow_context, self.done, self.total
        if done == 0 and total > end + 2 * context:
            return end  # the first chunk's alone, heard sooner (a short clause: whole)
        if total - done <= FLOW_RUN_FRAMES:
            return total
        return max(end, done + FLOW_RUN_FRAMES)

    def _run(self, target: int) -> None:
        cut, done = self._cut, self.done
        low = max(0, done - cut.flow_context)
        high = min(self.total, target + cut.flow_context)
        made = high if high == self.total else target
        feeds = {
            cut.prior: np.ascontiguousarray(self._prior[..., low:high]),
            cut.mask: np.ascontiguousarray(self._mask[..., low:high]),
        }
        (frames,) = self._flow.run([cut.latent], feeds)
        if self._frames is None:
            self._frames = np.empty((*frames.shape[:-1], self.total), frames.dtype)
        self._frames[..., done:made] = frames[..., done - low : made - low]
        self.done = made


__all__ = [
    "CONTEXT_FRAMES",
    "FIRST_FRAMES",
    "FLOW_RUN_FRAMES",
    "MAX_FRAMES",
    "Cut",
    "SplitGraph",
    "SplitVoice",
    "cached_split",
    "split_graph",
]
