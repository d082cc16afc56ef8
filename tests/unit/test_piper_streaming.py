"""Cutting a VITS-shaped ONNX graph before its flow and decoder, and running both in chunks.

The graphs are tiny ones built here with the shape torch's export gives Piper's:
a front (which makes the prior's sample and the frames' mask), then ``/flow/…``
nodes with a node between them named otherwise (as Piper's gated activations
are), the flow's output times the mask, then ``/dec/…`` nodes fed by that one
tensor, then a node after them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from duplex_tts_piper.streaming import (
    CONTEXT_FRAMES,
    FIRST_FRAMES,
    FLOW_RUN_FRAMES,
    MAX_FRAMES,
    Cut,
    SplitGraph,
    SplitVoice,
    cached_split,
    split_graph,
)

HOP = 4  # audio samples per latent frame in these graphs
FLOW_REACH = 2 + 2  # its convolutions: width 5 (2 frames each side), width 3 dilated by 2 (2)
FLOW_NODES = ["/flow/double", "/flow/conv1", "Tanh_3", "/flow/conv2", "/flow/Add", "/Mul_7"]


def vits_like(
    *, speaker_fed_to_decoder: bool = False, flow: str = "convolutions"
) -> onnx.ModelProto:
    """x [1, 2, T] → front (prior = x times scale; mask = ones [1, 1, T]) → flow → times
    the mask → /dec/ (conv k=5, 4-fold upsampling, tanh) → output. ``flow``:
    "convolutions", "attention" (a softmax over all frames, as VITS2's flows have),
    "rolled" (frames shifted round by one: frame-wise operations, along the frames),
    or "none" (the front's output goes to the decoder)."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32) / 3, name)

    weights = [
        weight("dec.conv.weight", 2, 2, 5),
        weight("dec.up.weight", 2, 1, HOP),
        weight("flow.conv1.weight", 2, 2, 5),
        weight("flow.conv2.weight", 2, 2, 3),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
        numpy_helper.from_array(np.array([2**40], np.int64), "all"),
    ]
    front = [
        helper.make_node("Mul", ["x", "scale"], ["/Mul_output_0"], name="/Mul"),
        helper.make_node(
            "Slice", ["x", "zero", "one", "one"], ["/Slice_output_0"], name="/Slice"
        ),
        helper.make_node("Mul", ["/Slice_output_0", "zero_f"], ["/Mul_1_output_0"], name="/Mul_1"),
        helper.make_node("Add", ["/Mul_1_output_0", "one_f"], ["/Cast_2_output_0"], name="/Add_1"),
    ]  # fmt: skip
    constants = [
        helper.make_node("Constant", [], ["zero_f"], value_float=0.0, name="/Constant"),
        helper.make_node("Constant", [], ["one_f"], value_float=1.0, name="/Constant_1"),
    ]
    if flow == "none":
        middle = [helper.make_node("Identity", ["/Mul_output_0"], ["/Mul_7_output_0"], name="/Id")]
    else:
        mixing = [
            helper.make_node(
                "Conv", ["/flow/Add_output_0", "flow.conv1.weight"], ["/flow/conv1_output_0"],
                name="/flow/conv1", pads=[2, 2], kernel_shape=[5],
            ),
        ]  # fmt: skip
        if flow == "attention":  # each frame reads every other: no window can be cut
            mixing = [
                helper.make_node(
                    "Transpose", ["/flow/Add_output_0"], ["/flow/T_output_0"],
                    name="/flow/T", perm=[0, 2, 1],
                ),
                helper.make_node(
                    "MatMul", ["/flow/T_output_0", "/flow/Add_output_0"],
                    ["/flow/gram_output_0"], name="/flow/gram",
                ),
                helper.make_node(
                    "Softmax", ["/flow/gram_output_0"], ["/flow/w_output_0"],
                    name="/flow/softmax", axis=-1,
                ),
                helper.make_node(
                    "MatMul", ["/flow/Add_output_0", "/flow/w_output_0"],
                    ["/flow/conv1_output_0"], name="/flow/mix",
                ),
            ]  # fmt: skip
        if flow == "rolled":  # each frame takes the next one's, the last the first's
            mixing = [
                helper.make_node(
                    "Slice", ["/flow/Add_output_0", "one", "all", "two"],
                    ["/flow/later_output_0"], name="/flow/later",
                ),
                helper.make_node(
                    "Slice", ["/flow/Add_output_0", "zero", "one", "two"],
                    ["/flow/first_output_0"], name="/flow/first",
                ),
                helper.make_node(
                    "Concat", ["/flow/later_output_0", "/flow/first_output_0"],
                    ["/flow/conv1_output_0"], name="/flow/roll", axis=2,
                ),
            ]  # fmt: skip
        middle = [
            helper.make_node(
                "Add", ["/Mul_output_0", "/Mul_output_0"], ["/flow/Add_output_0"],
                name="/flow/double",
            ),
            *mixing,
            helper.make_node("Tanh", ["/flow/conv1_output_0"], ["t_act"], name="Tanh_3"),
            helper.make_node(
                "Conv", ["t_act", "flow.conv2.weight"], ["/flow/conv2_output_0"],
                name="/flow/conv2", pads=[2, 2], dilations=[2], kernel_shape=[3],
            ),
            helper.make_node(
                "Add", ["/Mul_output_0", "/flow/conv2_output_0"], ["/flow/out_output_0"],
                name="/flow/Add",
            ),
            helper.make_node(
                "Mul", ["/flow/out_output_0", "/Cast_2_output_0"], ["/Mul_7_output_0"],
                name="/Mul_7",
            ),
        ]  # fmt: skip
    nodes = [
        *constants,
        *front,
        *middle,
        helper.make_node(
            "Conv", ["/Mul_7_output_0", "dec.conv.weight"], ["/dec/conv_output_0"],
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
        dec_conv = next(i for i, n in enumerate(nodes) if n.name == "/dec/conv")
        nodes[dec_conv] = helper.make_node(
            "Add", ["/Mul_7_output_0", "g"], ["/dec/conv_output_0"], name="/dec/conv"
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


def session(model: onnx.ModelProto | bytes | str) -> ort.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


class Recording:
    """A session that notes how many frames each run was given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frames: list[int] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.frames.append(next(iter(feeds.values())).shape[-1])
        return list(self.inner.run(names, feeds))


def voice_of(split: SplitGraph, recorded: str = "") -> tuple[SplitVoice, Recording]:
    """The parts as sessions, the one named ``recorded`` (if any) noting its runs."""
    sessions: dict[str, Any] = {
        part: session(getattr(split, part))
        for part in ("front", "decoder", "flow")
        if getattr(split, part) is not None
    }
    recording = Recording(sessions.get(recorded))
    if recorded:
        sessions[recorded] = recording
    voice = SplitVoice(sessions["front"], sessions["decoder"], split.cut, sessions.get("flow"))
    return voice, recording


def feeds_for(frames: int) -> dict[str, np.ndarray]:
    return {
        "x": np.random.default_rng(frames).normal(size=(1, 2, frames)).astype(np.float32),
        "scale": np.array([0.5], np.float32),
    }


def node_names(part: bytes | str | None) -> list[str]:
    assert isinstance(part, bytes)
    return [n.name for n in onnx.load_from_string(part).graph.node if n.op_type != "Constant"]


def test_the_graph_is_cut_where_the_flow_and_the_decoder_begin() -> None:
    split = split_graph(vits_like())
    assert split is not None
    assert split.cut == Cut(
        "/Mul_7_output_0", "/dec/Tanh_output_0", "/Mul_output_0", "/Cast_2_output_0", FLOW_REACH
    )
    assert node_names(split.front) == ["/Mul", "/Slice", "/Mul_1", "/Add_1"]
    assert node_names(split.flow) == FLOW_NODES
    assert node_names(split.decoder) == ["/dec/conv", "/dec/up", "/dec/Tanh"]


@pytest.mark.parametrize("flow", ["attention", "rolled", "none"])
def test_a_flow_that_cannot_run_on_windows_stays_in_the_front(flow: str) -> None:
    split = split_graph(vits_like(flow=flow))
    assert split is not None
    assert split.flow is None
    assert split.cut == Cut("/Mul_7_output_0", "/dec/Tanh_output_0")
    assert node_names(split.decoder) == ["/dec/conv", "/dec/up", "/dec/Tanh"]
    whole = session(vits_like(flow=flow)).run(None, feeds_for(150))[0].reshape(-1)
    chunks = list(voice_of(split)[0].speak(feeds_for(150)))
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-6)


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
    chunks = list(voice_of(split)[0].speak(feeds_for(frames)))
    whole = session(model).run(None, feeds_for(frames))[0].reshape(-1)
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-5)
    # The first chunk is short, so the clause is heard before the rest is decoded.
    sizes = [c.size // HOP for c in chunks]
    wanted = [min(FIRST_FRAMES * 2**i, MAX_FRAMES) for i in range(12)]
    assert sizes[:-1] == wanted[: len(sizes) - 1]  # then the rest, at most as long
    assert 0 < sizes[-1] <= wanted[len(sizes) - 1]
    assert sum(sizes) == frames


def test_each_chunk_is_decoded_with_context_on_both_sides() -> None:
    """``CONTEXT_FRAMES`` of the neighbours on each side, fewer at the clause's ends."""
    split = split_graph(vits_like())
    assert split is not None
    voice, decoder = voice_of(split, "decoder")
    frames = FIRST_FRAMES + 2 * FIRST_FRAMES + 10
    list(voice.speak(feeds_for(frames)))
    assert decoder.frames == [
        FIRST_FRAMES + CONTEXT_FRAMES,
        CONTEXT_FRAMES + 2 * FIRST_FRAMES + 10,  # its right context runs to the end
        CONTEXT_FRAMES + 10,
    ]


def test_the_flow_runs_on_the_first_chunks_frames_first_then_in_long_runs() -> None:
    """Each run reads the flow's reach beyond it on both sides (fewer at the ends): the
    first chunk waits for its own frames' flow only, not the clause's."""
    split = split_graph(vits_like())
    assert split is not None
    voice, flow = voice_of(split, "flow")
    frames = 1000
    list(voice.speak(feeds_for(frames)))
    first = FIRST_FRAMES + CONTEXT_FRAMES  # the frames the first chunk's decode reads
    runs = [first + FLOW_REACH]
    done = first
    while done < frames:
        end = min(frames, done + FLOW_RUN_FRAMES)
        runs.append(min(frames, end + FLOW_REACH) - (done - FLOW_REACH))
        done = end
    assert flow.frames == runs
    assert sum(runs) < 1.2 * frames  # the runs' reach costs little


def test_a_short_clause_runs_its_flow_once() -> None:
    """Cut into runs, a clause this short would spend more on their reach than it saves."""
    split = split_graph(vits_like())
    assert split is not None
    voice, flow = voice_of(split, "flow")
    frames = FIRST_FRAMES + CONTEXT_FRAMES + 2 * FLOW_REACH
    list(voice.speak(feeds_for(frames)))
    assert flow.frames == [frames]


def test_the_parts_are_cut_once_into_the_cache(tmp_path: Path) -> None:
    model_path = tmp_path / "voice.onnx"
    onnx.save(vits_like(), model_path)
    cache = tmp_path / "cache"
    first = cached_split(model_path, cache)
    assert first is not None
    assert first.flow is not None
    assert first.cut == split_graph(vits_like()).cut  # type: ignore[union-attr]
    paths = [Path(str(part)) for part in (first.front, first.flow, first.decoder)]
    made = {path: path.stat().st_mtime_ns for path in paths}
    assert cached_split(model_path, cache) == first  # read back, not cut again
    assert {path: path.stat().st_mtime_ns for path in paths} == made
    assert [p.name for p in paths[0].parent.iterdir() if p.name.startswith(".")] == []
    whole = session(vits_like()).run(None, feeds_for(300))[0].reshape(-1)
    chunks = list(voice_of(first)[0].speak(feeds_for(300)))
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-5)
    # Another model file (or the same one rewritten) gets parts of its own.
    onnx.save(vits_like(speaker_fed_to_decoder=True), model_path)
    assert cached_split(model_path, cache) is None
