"""Cutting a VITS-shaped ONNX graph before its decoder, and decoding in chunks.

The graphs are tiny ones built here with the shape torch's export gives Piper's:
a front, then ``/dec/…`` nodes fed by one tensor, then a node after them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from duplex_tts_piper.streaming import (
    CONTEXT_FRAMES,
    FIRST_FRAMES,
    MAX_FRAMES,
    SplitVoice,
    cached_split,
    split_graph,
)

HOP = 4  # audio samples per latent frame in these graphs


def vits_like(*, speaker_fed_to_decoder: bool = False) -> onnx.ModelProto:
    """x [1, 2, T] → front (times scale) → /dec/ (conv k=5, 4-fold upsampling, tanh) → output."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(2, 2, 5)).astype(np.float32), "dec.conv.weight"),
        numpy_helper.from_array(rng.normal(size=(2, 1, HOP)).astype(np.float32), "dec.up.weight"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["/Mul_output_0"], name="/Mul"),
        helper.make_node(
            "Conv", ["/Mul_output_0", "dec.conv.weight"], ["/dec/conv_output_0"],
            name="/dec/conv", pads=[2, 2],
        ),
        helper.make_node(
            "ConvTranspose", ["/dec/conv_output_0", "dec.up.weight"], ["/dec/up_output_0"],
            name="/dec/up", strides=[HOP],
        ),
        helper.make_node("Tanh", ["/dec/up_output_0"], ["/dec/Tanh_output_0"], name="/dec/Tanh"),
        helper.make_node("Identity", ["/dec/Tanh_output_0"], ["output"], name="/Identity"),
    ]  # fmt: skip
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "frames"]),
        helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
    ]
    if speaker_fed_to_decoder:  # as a multi-speaker voice's speaker embedding
        inputs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 2, 1]))
        nodes[1] = helper.make_node(
            "Add", ["/Mul_output_0", "g"], ["/dec/conv_output_0"], name="/dec/conv"
        )
    graph = helper.make_graph(
        nodes, "vits_like", inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "samples"])],
        weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def session(model: onnx.ModelProto | bytes) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_the_graph_is_cut_where_the_decoder_begins() -> None:
    split = split_graph(vits_like())
    assert split is not None
    assert (split.latent, split.audio) == ("/Mul_output_0", "/dec/Tanh_output_0")
    front, decoder = onnx.load_from_string(split.front), onnx.load_from_string(split.decoder)
    assert [n.name for n in front.graph.node] == ["/Mul"]
    assert [n.name for n in decoder.graph.node] == ["/dec/conv", "/dec/up", "/dec/Tanh"]


@pytest.mark.parametrize(
    "model",
    [vits_like(speaker_fed_to_decoder=True), helper.make_model(helper.make_graph([], "g", [], []))],
    ids=["decoder fed two tensors", "no decoder"],
)
def test_a_graph_that_cannot_be_cut_is_left_whole(model: onnx.ModelProto) -> None:
    assert split_graph(model) is None


@pytest.mark.parametrize("frames", [1, FIRST_FRAMES, FIRST_FRAMES + 1, 150, 1000])
def test_chunks_join_into_the_samples_of_one_pass(frames: int) -> None:
    model = vits_like()
    split = split_graph(model)
    assert split is not None
    voice = SplitVoice(session(split.front), session(split.decoder), split.latent, split.audio)
    feeds = {
        "x": np.random.default_rng(frames).normal(size=(1, 2, frames)).astype(np.float32),
        "scale": np.array([0.5], np.float32),
    }
    chunks = list(voice.speak(feeds))
    whole = session(model).run(None, feeds)[0].reshape(-1)
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-6)
    # The first chunk is short, so the clause is heard before the rest is decoded.
    sizes = [c.size // HOP for c in chunks]
    wanted = [min(FIRST_FRAMES * 2**i, MAX_FRAMES) for i in range(12)]
    assert sizes[:-1] == wanted[: len(sizes) - 1]  # then the rest, at most as long
    assert 0 < sizes[-1] <= wanted[len(sizes) - 1]
    assert sum(sizes) == frames


def test_each_chunk_is_decoded_with_context_on_both_sides() -> None:
    """``CONTEXT_FRAMES`` of the neighbours on each side, fewer at the clause's ends."""
    decoded: list[int] = []

    class Recording:
        def __init__(self, inner: ort.InferenceSession) -> None:
            self.inner = inner

        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            decoded.append(next(iter(feeds.values())).shape[-1])
            return list(self.inner.run(names, feeds))

    split = split_graph(vits_like())
    assert split is not None
    voice = SplitVoice(
        session(split.front), Recording(session(split.decoder)), split.latent, split.audio
    )
    frames = FIRST_FRAMES + 2 * FIRST_FRAMES + 10
    feeds = {"x": np.ones((1, 2, frames), np.float32), "scale": np.array([1.0], np.float32)}
    list(voice.speak(feeds))
    assert decoded == [
        FIRST_FRAMES + CONTEXT_FRAMES,
        CONTEXT_FRAMES + 2 * FIRST_FRAMES + 10,  # its right context runs to the end
        CONTEXT_FRAMES + 10,
    ]


def test_the_halves_are_cut_once_into_the_cache(tmp_path: Path) -> None:
    model_path = tmp_path / "voice.onnx"
    onnx.save(vits_like(), model_path)
    cache = tmp_path / "cache"
    first = cached_split(model_path, cache)
    assert first is not None
    front, decoder, latent, audio = first
    assert (latent, audio) == ("/Mul_output_0", "/dec/Tanh_output_0")
    made = {path: path.stat().st_mtime_ns for path in (front, decoder)}
    assert cached_split(model_path, cache) == first  # read back, not cut again
    assert {path: path.stat().st_mtime_ns for path in (front, decoder)} == made
    assert [p.name for p in front.parent.iterdir() if p.name.startswith(".")] == []
    voice = SplitVoice(session(front.read_bytes()), session(decoder.read_bytes()), latent, audio)
    feeds = {"x": np.ones((1, 2, 40), np.float32), "scale": np.array([0.5], np.float32)}
    whole = session(vits_like()).run(None, feeds)[0].reshape(-1)
    np.testing.assert_allclose(np.concatenate(list(voice.speak(feeds))), whole, atol=1e-6)
    # Another model file (or the same one rewritten) gets halves of its own.
    onnx.save(vits_like(speaker_fed_to_decoder=True), model_path)
    assert cached_split(model_path, cache) is None
