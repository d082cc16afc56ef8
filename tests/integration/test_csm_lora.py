"""LoRA voices on a tiny random-weight CSM: real peft adapters, real batching, CPU.

A LoRA voice adds a named adapter to the resident base (no second base, the
codec untouched) and deleting it restores the base exactly; sessions on the
base and on two LoRA voices generate in one batch whose rows equal each
voice's solo output; a cancelled row leaves the others alone; a worker
process loads, speaks and unloads a LoRA voice without reloading its base.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.adapters import (
    AdapterError,
    StreamContext,
    SynthesisStream,
    TTSModel,
    VoiceOptions,
)
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_csm import CsmFamily, CsmModel, CsmVoice
from duplex_tts_csm.engine import CsmStream
from duplex_tts_csm.lora import _excluding_codec
from tests.support.tiny_csm import write_csm_pack, write_lora_pack
from tests.support.worker import connect, speak, start_worker

SENTENCE = "How are you doing today?"


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voicepacks")
    write_csm_pack(root, "csm-tiny")
    write_lora_pack(root, "csm-tiny-warm", seed=1)
    write_lora_pack(root, "csm-tiny-bright", seed=2)
    return root


def load(packs: Path, model_id: str, base: TTSModel | None = None) -> TTSModel:
    return CsmFamily().load(load_catalog(packs).models[model_id], "cpu", base)


def codec_fingerprint(model: CsmModel) -> np.ndarray:
    codes = torch.arange(1, 33).reshape(1, 8, 4) % 60 + 1
    with torch.inference_mode():
        audio: np.ndarray = model.model.codec_model.decode(codes).audio_values[0, 0].numpy()
    return audio.copy()


def context(device: SynthesisScheduler) -> StreamContext:
    return StreamContext(VoiceOptions(), device, time.monotonic)


async def spoken(stream: CsmStream) -> np.ndarray:
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


async def spoken_together(
    device: SynthesisScheduler, open_all: Callable[[], list[SynthesisStream]]
) -> list[np.ndarray]:
    """Open and feed streams while the device thread is held, so their clauses batch."""
    busy = threading.Event()
    device.submit(busy.wait, deadline=0.0)
    streams = open_all()
    busy.set()
    return list(await asyncio.gather(*(spoken(s) for s in streams)))  # type: ignore[arg-type]


def assert_same_audio(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


async def solo(voice: TTSModel, device: SynthesisScheduler, text: str) -> np.ndarray:
    stream = voice.open_stream(context(device))
    assert isinstance(stream, CsmStream)
    stream.push_text(text)
    stream.end_input()
    return await spoken(stream)


async def test_a_lora_voice_is_an_adapter_on_the_resident_base(
    packs: Path, device: SynthesisScheduler
) -> None:
    base = load(packs, "csm-tiny")
    assert isinstance(base, CsmModel)
    weights = {id(p) for p in base.model.parameters()}
    plain, codec = await solo(base, device, SENTENCE), codec_fingerprint(base)

    voice = load(packs, "csm-tiny-warm", base)
    assert isinstance(voice, CsmVoice)
    assert base.host.adapters == ["csm-tiny-warm"]
    # Injected into the same modules: every base weight is still the one loaded.
    assert weights <= {id(p) for p in base.model.parameters()}
    names = [n for n, _ in base.model.named_modules()]
    assert any(".lora_A." in n for n in names if n.startswith("backbone_model"))
    assert not any("lora_" in n for n in names if n.startswith("codec_model"))
    assert np.array_equal(codec_fingerprint(base), codec)
    assert voice.memory_bytes is not None
    assert 0 < voice.memory_bytes < (base.memory_bytes or 0) // 10

    warm = await solo(voice, device, SENTENCE)
    assert warm.size
    assert not (warm.shape == plain.shape and np.allclose(warm, plain))
    assert np.array_equal(await solo(base, device, SENTENCE), plain)  # base rows stay plain

    voice.close()
    assert base.host.adapters == []
    assert not any("lora_" in n for n, _ in base.model.named_modules())
    assert np.array_equal(await solo(base, device, SENTENCE), plain)


async def test_sessions_on_three_voices_of_one_base_run_as_one_batch(
    packs: Path, device: SynthesisScheduler
) -> None:
    base = load(packs, "csm-tiny")
    assert isinstance(base, CsmModel)
    voices = [base, load(packs, "csm-tiny-warm", base), load(packs, "csm-tiny-bright", base)]
    texts = [SENTENCE, "The quick brown fox jumps.", "Please call Stella."]
    alone = [await solo(v, device, t) for v, t in zip(voices, texts, strict=True)]
    assert list(base.batcher.recent_sizes) == [1, 1, 1]

    def open_all() -> list[SynthesisStream]:
        streams = [v.open_stream(context(device)) for v in voices]
        for stream, text in zip(streams, texts, strict=True):
            stream.push_text(text)
            stream.end_input()
        return streams

    together = await spoken_together(device, open_all)
    assert list(base.batcher.recent_sizes)[3:] == [3]
    for got, want in zip(together, alone, strict=True):
        assert_same_audio(got, want)


async def test_rows_with_different_context_batch_to_their_solo_output(
    packs: Path, device: SynthesisScheduler
) -> None:
    base = load(packs, "csm-tiny")
    assert isinstance(base, CsmModel)
    voice = load(packs, "csm-tiny-warm", base)
    clip = np.random.default_rng(4).uniform(-0.3, 0.3, 30_000).astype(np.float32)
    cloned = VoiceOptions(
        reference_audio=clip, reference_sample_rate=24_000, reference_text="Hello there."
    )
    cases = [  # a reference clip; no context; the reply's own first clause
        (base, cloned, SENTENCE),
        (voice, VoiceOptions(), "Please call Stella."),
        (voice, VoiceOptions(), "Hello there, how are you? The quick brown fox jumps."),
    ]

    def opened(voice: TTSModel, options: VoiceOptions, text: str) -> CsmStream:
        stream = voice.open_stream(StreamContext(options, device, time.monotonic))
        assert isinstance(stream, CsmStream)
        stream.push_text(text)
        stream.end_input()
        return stream

    alone = [await spoken(opened(*case)) for case in cases]
    together = await spoken_together(device, lambda: [opened(*case) for case in cases])
    # Solo: 1 + 1 + 3 clauses ("Hello there," is one). Together: one batch of 3, then
    # the third reply's later clauses, each after the ones before it.
    assert list(base.batcher.recent_sizes)[5:] == [3, 1, 1]
    for got, want in zip(together, alone, strict=True):
        assert_same_audio(got, want)


async def test_a_cancelled_row_leaves_the_rest_of_its_batch_alone(
    packs: Path, device: SynthesisScheduler
) -> None:
    base = load(packs, "csm-tiny", None)
    assert isinstance(base, CsmModel)
    voice = load(packs, "csm-tiny-warm", base)
    want = await solo(voice, device, SENTENCE)

    busy = threading.Event()
    device.submit(busy.wait, deadline=0.0)
    doomed, kept = base.open_stream(context(device)), voice.open_stream(context(device))
    for stream in (doomed, kept):
        stream.push_text(SENTENCE)
        stream.end_input()
    busy.set()
    assert await doomed.read() is not None
    doomed.cancel()
    assert await doomed.read() is None
    assert isinstance(kept, CsmStream)
    got = await spoken(kept)
    assert list(base.batcher.recent_sizes)[-1] == 2
    assert_same_audio(got, want)
    await doomed.aclose()


def test_codec_modules_are_excluded_whatever_the_adapter_excludes() -> None:
    import re

    def excluded(pattern: str, name: str) -> bool:
        return re.fullmatch(pattern, name) is not None

    codec = "codec_model.decoder_transformer.layers.0.self_attn.q_proj"
    backbone = "backbone_model.layers.0.self_attn.q_proj"
    for own in (None, "", "lm_head", ["mlp.up_proj"], {"o_proj"}):
        pattern = _excluding_codec(own)
        assert excluded(pattern, codec)
        assert not excluded(pattern, backbone)
    assert excluded(_excluding_codec(["mlp.up_proj"]), "backbone_model.layers.1.mlp.up_proj")
    assert excluded(_excluding_codec(r"depth_decoder\..*"), "depth_decoder.model.layers.0.q")


def test_a_lora_voice_needs_a_csm_base(packs: Path) -> None:
    with pytest.raises(AdapterError, match="not a csm base model"):
        load(packs, "csm-tiny-warm", None)


async def test_a_worker_speaks_csm_and_swaps_lora_voices_without_reloading_the_base(
    packs: Path, tmp_path: Path
) -> None:
    worker = start_worker(
        ["--adapter", "csm", "--voicepacks", str(packs), "--default-model", "csm-tiny"],
        tmp_path / "worker.log",
    )
    try:
        async with connect(worker.address) as stub:

            async def states() -> dict[str, pb.ModelInfo]:
                listed = await stub.ListModels(pb.ListModelsRequest())
                return {m.id: m for m in listed.models}

            base_loaded = (await states())["csm-tiny"].loaded_at_ms
            assert (await states())["csm-tiny"].memory_bytes > 1_000_000  # the weights it holds
            for voice in ("csm-tiny", "csm-tiny-warm", "csm-tiny-bright"):
                sid = (await stub.StartSession(pb.StartSessionRequest(model_id=voice))).session_id
                got = await speak(stub, sid, SENTENCE)
                assert got.frames[-1].is_last
                assert len(got.frames) > 10
                await stub.EndSession(pb.EndSessionRequest(session_id=sid))
            models = await states()
            assert models["csm-tiny"].loaded_at_ms == base_loaded  # never reloaded
            assert 0 < models["csm-tiny-warm"].memory_bytes < models["csm-tiny"].memory_bytes

            # A clip without its transcript is refused at StartSession, on a voice too.
            pcm = np.zeros(16_000, dtype="<i2").tobytes()
            mute = pb.StartSessionRequest(
                model_id="csm-tiny-bright", reference_audio=pcm, reference_sample_rate=16_000
            )
            with pytest.raises(grpc.aio.AioRpcError, match="CSM needs reference_text") as refused:
                await stub.StartSession(mute)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (await states())["csm-tiny-bright"].refs == 0

            await stub.UnloadModel(pb.UnloadModelRequest(model_id="csm-tiny-warm"))
            models = await states()
            assert models["csm-tiny-warm"].state == pb.MODEL_STATE_AVAILABLE
            assert models["csm-tiny"].state == pb.MODEL_STATE_READY
            assert models["csm-tiny"].loaded_at_ms == base_loaded
    finally:
        worker.stop()
