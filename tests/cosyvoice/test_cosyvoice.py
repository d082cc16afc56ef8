"""The ``cosyvoice`` family on a tiny random-weight CosyVoice 2, CPU, in its own environment.

The runtime's real classes (Qwen2LM on a two-layer Qwen2, the causal flow
decoder, HiFT) load from a folder laid out like the real model's. Text streams
into the LLM word by word and audio leaves before the text has ended; the LLM
asks for text instead of blocking a device thread; cancel stops it within a
step; bad choices fail clearly; and a worker process serves it over gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch
import yaml

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.adapters import AdapterError, StreamContext, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_cosyvoice import CosyVoiceFamily, CosyVoiceModel, SpeechTokenDecoder, Step
from tests.support.tiny_cosyvoice import SAMPLE_RATE, SPEAKER
from tests.support.worker import (
    Collector,
    WorkerProcess,
    aiter_chunks,
    connect,
    speak,
    start_worker,
    text_chunks,
)

TEXT = "Hello there, how are you doing on this fine and sunny day?"
SAMPLES_PER_TOKEN = SAMPLE_RATE // 25  # 25 speech tokens a second


def decoder(model: CosyVoiceModel) -> SpeechTokenDecoder:
    speaker = model.speaker_for(VoiceOptions())
    return SpeechTokenDecoder(model.llm, speaker.prompt_text, speaker.prompt_speech)


def run_to_end(dec: SpeechTokenDecoder, words: list[list[int]]) -> tuple[list[int], list[int]]:
    """Feed ``words`` one at a time, stepping until the decoder asks for more.

    Returns the speech tokens and how many came after each word.
    """
    tokens: list[int] = []
    per_word: list[int] = []
    for i, ids in enumerate(words):
        dec.add_text(ids)
        if i == len(words) - 1:
            dec.end_text()
        before = len(tokens)
        while isinstance(step := dec.step(), int):
            tokens.append(step)
        assert step is (Step.DONE if i == len(words) - 1 else Step.NEED_TEXT)
        per_word.append(len(tokens) - before)
    return tokens, per_word


def test_text_streamed_in_decodes_like_the_whole_text(model: CosyVoiceModel) -> None:
    words = TEXT.split(" ")
    pieces = [model.encode(("" if i == 0 else " ") + w) for i, w in enumerate(words)]
    # Word-wise tokens are the text's tokens.
    assert [token for piece in pieces for token in piece] == model.encode(TEXT)
    torch.manual_seed(7)
    streamed, per_word = run_to_end(decoder(model), pieces)
    torch.manual_seed(7)
    whole, _ = run_to_end(decoder(model), [model.encode(TEXT)])
    assert streamed == whole  # how the text arrives does not change what is said
    # Speech comes while text is still arriving, never more than a chunk (15 speech
    # tokens per 5 text tokens) ahead of it.
    assert sum(per_word[:-1]) > 0
    assert max(per_word[:-1]) <= 15 * (1 + max(len(p) for p in pieces) // 5 + 1)
    assert 0 < len(streamed) <= 20 * len(model.encode(TEXT))


def test_the_llm_asks_for_text_instead_of_waiting_for_it(model: CosyVoiceModel) -> None:
    dec = decoder(model)
    assert dec.step() is Step.NEED_TEXT  # the prompt's speech needs text to pair with
    dec.add_text(model.encode("Hello"))
    steps = [dec.step() for _ in range(200)]
    assert Step.NEED_TEXT in steps  # it stops and says so, it never blocks
    assert Step.DONE not in steps  # and it does not end a reply whose text goes on
    dec.add_text(model.encode(" world"))
    dec.end_text()
    while isinstance(dec.step(), int):
        pass
    assert dec.step() is Step.DONE


async def test_audio_leaves_before_the_text_has_ended(
    model: CosyVoiceModel, device: SynthesisScheduler
) -> None:
    torch.manual_seed(3)
    stream = model.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))
    words = TEXT.split(" ")
    for i, word in enumerate(words):
        stream.push_text(("" if i == 0 else " ") + word)
    first = await asyncio.wait_for(stream.read(), 60)  # no end_input() yet
    assert first is not None
    assert first.dtype == np.float32
    assert first.ndim == 1
    stream.end_input()
    chunks = [first, *[chunk async for chunk in stream]]
    await stream.aclose()
    assert len(chunks) >= 3  # hop by hop, not one piece
    total = sum(c.size for c in chunks)
    assert chunks[0].size < total / 2
    assert total % SAMPLES_PER_TOKEN == 0
    assert total > 25 * SAMPLES_PER_TOKEN
    assert all(np.isfinite(c).all() and np.abs(c).max() <= 1.0 for c in chunks)
    assert model.native_sample_rate == SAMPLE_RATE
    assert not model.model.hift_cache_dict  # the stream's vocoder cache is gone


async def test_backpressure_pauses_generation_and_the_next_read_resumes_it(
    model: CosyVoiceModel, device: SynthesisScheduler
) -> None:
    """With the text still open, a job that stopped for backpressure must go on."""
    # Half a second of unread audio at most: a hop (1 s) is over it, one job per hop.
    context = StreamContext(
        VoiceOptions(), device, time.monotonic, room=lambda unread: unread < 0.5
    )
    stream = model.open_stream(context)
    for i, word in enumerate(TEXT.split(" ")):
        stream.push_text(("" if i == 0 else " ") + word)
    # No end_input yet: each job stops for backpressure, and each read goes on.
    chunks = [await asyncio.wait_for(stream.read(), 60) for _ in range(3)]
    assert all(chunk is not None and chunk.size for chunk in chunks)
    stream.end_input()
    rest = [chunk async for chunk in stream]
    await stream.aclose()
    assert rest  # the end of the reply came too
    assert not model.model.hift_cache_dict


async def test_cancel_stops_the_llm_within_a_step(
    model: CosyVoiceModel, device: SynthesisScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = model.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))
    backbone = model.llm.llm
    calls: list[bool] = []
    real_step = backbone.forward_one_step

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(stream.cancelled)
        if len(calls) == 30:
            stream.cancel()
        return real_step(*args, **kwargs)

    monkeypatch.setattr(backbone, "forward_one_step", counted)
    stream.push_text(TEXT * 4)
    stream.end_input()
    assert [chunk async for chunk in stream] == []  # cancelled before its first hop
    await asyncio.sleep(0.2)  # the generation job has returned
    await stream.aclose()
    assert len(calls) == 30
    assert not any(calls)


def test_speakers_and_sessions_it_cannot_serve(model: CosyVoiceModel) -> None:
    assert list(model.speakers) == [SPEAKER]
    model.check_options(VoiceOptions(speaker=SPEAKER))
    with pytest.raises(AdapterError, match="no speaker 'Bob'; it has: Tiny Speaker"):
        model.check_options(VoiceOptions(speaker="Bob"))
    clip = np.zeros(48000, dtype=np.float32)
    with pytest.raises(AdapterError, match="does not clone from reference_audio"):
        model.check_options(VoiceOptions(reference_audio=clip, reference_sample_rate=48000))


def _with_meta(packs: Path, **changes: Any) -> Path:
    meta_path = packs / "cosyvoice" / "cosyvoice-tiny" / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(yaml.safe_dump(meta))
    return packs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"params": {"temperature": 0.5}}, "unknown CosyVoice param 'temperature'"),
        ({"params": {"sampling": 0}}, "sampling must be >= 1"),
        ({"params": {"speaker": "Bob"}}, "no speaker 'Bob'"),
        ({"source": {"path": "nowhere"}}, "cosyvoice weights file missing: .*nowhere"),
    ],
)
def test_bad_voicepacks_get_a_clear_error(
    packs: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    import shutil

    copy = tmp_path / "packs"
    shutil.copytree(packs, copy, symlinks=True)
    spec = load_catalog(_with_meta(copy, **changes)).models["cosyvoice-tiny"]
    with pytest.raises(AdapterError, match=message):
        CosyVoiceFamily().load(spec, "cpu", None)


@pytest.fixture(scope="module")
def worker(packs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("cosyvoice-worker") / "worker.log"
    args = ["--adapter", "cosyvoice", "--voicepacks", str(packs)]
    process = start_worker([*args, "--default-model", "cosyvoice-tiny"], log, 300)
    yield process
    process.stop()


async def test_a_worker_streams_two_sessions_and_stops_one(worker: WorkerProcess) -> None:
    async with connect(worker.address) as stub:
        caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        assert "cosyvoice" in caps.families
        listed = await stub.ListModels(pb.ListModelsRequest())
        resident = next(m for m in listed.models if m.id == "cosyvoice-tiny")
        assert resident.memory_bytes > 10_000_000  # measured from its tensors
        sids = [(await stub.StartSession(pb.StartSessionRequest())).session_id for _ in range(2)]
        calls = [  # about 7 s of audio each, paced in real time
            Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, TEXT, word_by_word=True))))
            for sid in sids
        ]
        for call in calls:
            await call.wait_frames(5, timeout_s=120)
        await stub.Control(pb.ControlRequest(session_id=sids[0], action=pb.CONTROL_ACTION_STOP))
        await calls[0].done(timeout_s=120)
        await calls[1].done(timeout_s=120)
        stopped, finished = calls[0].got.frames, calls[1].got.frames
        assert stopped[-1].is_last
        assert finished[-1].is_last
        assert len(stopped) < len(finished)  # the stopped one ended early, the other went on
        # And the stopped session speaks again.
        again = await speak(stub, sids[0], "Hello again.", word_by_word=True)
        assert again.frames[-1].is_last
        # Random weights end their speech at a random token (23 frames once, where
        # this asked for 26): how long it speaks is chance; that it speaks is not.
        pcm = np.frombuffer(b"".join(frame.pcm for frame in again.frames), "<i2")
        assert len(again.frames) >= 5
        assert np.abs(pcm).max() > 1000
        with pytest.raises(grpc.aio.AioRpcError, match="no speaker 'Nobody'") as refused:
            await stub.StartSession(pb.StartSessionRequest(speaker="Nobody"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for sid in sids:
            await stub.EndSession(pb.EndSessionRequest(session_id=sid))
        listed = await stub.ListModels(pb.ListModelsRequest())
        assert next(m for m in listed.models if m.id == "cosyvoice-tiny").refs == 0
