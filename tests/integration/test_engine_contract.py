"""The engine contract in process: streams per utterance, executors, cancellation, memory.

Real mock-family models, the real scheduler threads and the real ``Utterance``;
no gRPC.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from duplex_tts import stream as stream_module
from duplex_tts.adapters import (
    ClauseModel,
    Executor,
    ExecutorKind,
    FamilyNotInstalled,
    FloatArray,
    StreamContext,
    TTSFamily,
    TTSModel,
    VoiceOptions,
    get_family,
    installed_families,
)
from duplex_tts.adapters.mock import MockModel
from duplex_tts.catalog import ModelSpec, load_catalog
from duplex_tts.eviction import EvictionPolicy
from duplex_tts.manager import ModelManager
from duplex_tts.scheduler import Executors, SynthesisScheduler
from duplex_tts.stream import QueueDepth, Text, Utterance
from tests.support.voicepacks import write_mock_pack
from tests.support.waiting import eventually


def mock_model(**params: object) -> MockModel:
    spec = ModelSpec.model_validate(
        {
            "id": "m",
            "family": "mock",
            "languages": ["en-US"],
            "native_sample_rate": 24000,
            "source": {"path": "."},
            "params": params,
        }
    )
    model = get_family("mock").load(spec, "cpu", None)
    assert isinstance(model, MockModel)
    return model


class RecordingModel(ClauseModel):
    """Records the clauses it is asked to speak; 0.1 s of tone per clause."""

    def __init__(self) -> None:
        super().__init__(24000)
        self.clauses: list[str] = []

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        self.clauses.append(text)
        yield np.full(2400, 0.1, dtype=np.float32)


@pytest.fixture
def pool() -> Iterator[SynthesisScheduler]:
    scheduler = SynthesisScheduler(2)
    yield scheduler
    scheduler.shutdown()


def context(pool: SynthesisScheduler) -> StreamContext:
    return StreamContext(VoiceOptions(), pool, time.monotonic)


async def test_a_clause_model_is_fed_clause_by_clause_as_text_arrives(
    pool: SynthesisScheduler,
) -> None:
    model = RecordingModel()
    stream = model.open_stream(context(pool))
    stream.push_text("Hello there, my good friend. How are")
    first = await stream.read()
    assert first is not None
    # The first clause is spoken before the rest of the text exists.
    assert model.clauses == ["Hello there,"]
    stream.push_text(" you today?")
    stream.end_input()
    rest = [chunk async for chunk in stream]
    assert model.clauses == ["Hello there,", "my good friend.", "How are you today?"]
    assert len(rest) == 2
    await stream.aclose()


async def test_a_token_model_gets_raw_deltas_and_keeps_context_across_them(
    pool: SynthesisScheduler,
) -> None:
    model = mock_model(streaming="token")
    whole = [c async for c in _spoken(model, pool, ["Hello world"])]
    split = [c async for c in _spoken(model, pool, ["Hel", "lo wo", "rld"])]
    # A word cut across deltas is still one word: identical audio, chunk by chunk.
    assert len(whole) == len(split) == 2
    assert all(np.array_equal(a, b) for a, b in zip(whole, split, strict=True))


async def _spoken(model: TTSModel, pool: SynthesisScheduler, deltas: list[str]):  # type: ignore[no-untyped-def]
    stream = model.open_stream(context(pool))
    for delta in deltas:
        stream.push_text(delta)
    stream.end_input()
    async for chunk in stream:
        yield chunk
    await stream.aclose()


def utterance(model: TTSModel, pool: Executor) -> Utterance:
    return Utterance(model, "m", 1.0, VoiceOptions(), pool, QueueDepth(), lead_s=0.06)


@pytest.mark.parametrize("streaming", ["clause", "token"])
async def test_stop_cancels_generation_inside_the_model(
    pool: SynthesisScheduler, streaming: str
) -> None:
    # rtf 1: every word takes as long to make as to play, so generation is still
    # running when STOP comes.
    model = mock_model(rtf=1.0, streaming=streaming)
    speech = utterance(model, pool)
    speech.start()
    speech.feed(Text(" ".join(["word"] * 40) + ".", is_final=True))
    frames = speech.frames()
    await anext(frames)
    speech.stop()
    async for _ in frames:
        pass
    await speech.close()
    stopped_at = model.words_generated
    await asyncio.sleep(0.6)
    # At most the step already running when STOP came finishes; nothing after it.
    assert model.words_generated <= stopped_at + 1
    assert model.words_generated < 10


@pytest.mark.parametrize("streaming", ["clause", "token"])
async def test_synthesis_runs_only_a_bounded_time_ahead_of_playback(
    pool: SynthesisScheduler, monkeypatch: pytest.MonkeyPatch, streaming: str
) -> None:
    monkeypatch.setattr(stream_module, "AHEAD_LIMIT_S", 1.0)
    model = mock_model(streaming=streaming)
    speech = utterance(model, pool)
    speech.start()
    speech.feed(Text(" ".join(["word"] * 500) + ".", is_final=True))
    await asyncio.sleep(0.5)  # nobody reads frames: only backpressure stops synthesis
    generated = model.words_generated
    # A word is 0.19 s of audio: about 1 s worth, not 500 words.
    assert 3 <= generated <= 8
    frames = speech.frames()
    for _ in range(60):  # play 1.2 s: synthesis follows, still bounded
        await anext(frames)
    await eventually(lambda: model.words_generated > generated, 5)
    assert model.words_generated <= generated + 10
    await speech.close()


async def test_a_busy_event_loop_does_not_let_a_generation_job_run_ahead(
    pool: SynthesisScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token engine's job hands audio to the loop through its own queue; while
    # the loop is busy elsewhere nothing reaches the frame buffer, so the audio
    # the engine holds unread must count against the limit as well.
    monkeypatch.setattr(stream_module, "AHEAD_LIMIT_S", 1.0)
    model = mock_model(streaming="token")
    speech = utterance(model, pool)
    speech.start()
    speech.feed(Text(" ".join(["word"] * 500) + ".", is_final=True))
    for _ in range(3):
        await asyncio.sleep(0)  # the generation job is submitted to the executor
    time.sleep(0.5)  # noqa: ASYNC251 - the loop is blocked: no frames arrive
    await asyncio.sleep(0.2)
    assert model.words_generated <= 8  # ~1 s of 0.19 s words, not everything
    await speech.close()


class DeviceFamily(TTSFamily):
    """The mock family on a dedicated device thread, reporting its own memory."""

    name = "mock"
    executor = ExecutorKind.DEVICE

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        self.threads.add(threading.current_thread().name)
        return ThreadRecordingModel(self.threads)


class ThreadRecordingModel(ClauseModel):
    def __init__(self, threads: set[str]) -> None:
        super().__init__(24000)
        self._threads = threads

    def synthesize_clause(self, text: str, options: VoiceOptions) -> Iterator[FloatArray]:
        self._threads.add(threading.current_thread().name)
        yield np.full(2400, 0.1, dtype=np.float32)

    def close(self) -> None:
        self._threads.add(threading.current_thread().name)

    @property
    def memory_bytes(self) -> int:
        return 123_456


class AllocatingFamily(TTSFamily):
    """Holds 64 MB of weights it does not report: the worker must measure them."""

    name = "mock"

    def load(self, spec: ModelSpec, device: str, base: TTSModel | None) -> TTSModel:
        model = RecordingModel()
        model.weights = np.ones(64 * 2**20, dtype=np.uint8)  # type: ignore[attr-defined]
        return model


def manager_with(family: TTSFamily, packs: Path, executors: Executors) -> ModelManager:
    write_mock_pack(packs, "a")
    return ModelManager(
        load_catalog(packs),
        EvictionPolicy(),
        executors=executors,
        family_loader=lambda name: family,
    )


async def test_a_device_family_loads_runs_and_unloads_on_its_own_thread(tmp_path: Path) -> None:
    executors = Executors(2)
    family = DeviceFamily()
    manager = manager_with(family, tmp_path, executors)
    try:
        handle = await manager.acquire("a")
        speech = utterance(handle.model, handle.executor)
        speech.start()
        speech.feed(Text("One clause. And another.", is_final=True))
        async for _ in speech.frames():
            pass
        await speech.close()
        handle.release()
        assert manager.status("a").memory_bytes == 123_456  # what the engine reports
        await manager.unload("a")
    finally:
        executors.shutdown()
    # Load, warm-up, synthesis and close all ran on the one device thread.
    assert family.threads == {"device-cpu-0"}


async def test_memory_is_measured_when_the_engine_does_not_report_it(tmp_path: Path) -> None:
    manager = manager_with(AllocatingFamily(), tmp_path, Executors(1))
    await manager.load("a")
    held = manager.status("a").memory_bytes
    assert 50 * 2**20 < held < 200 * 2**20
    await manager.unload("a")
    assert manager.status("a").memory_bytes == 0


def test_families_are_found_through_entry_points() -> None:
    assert {"mock", "piper", "kokoro"} <= set(installed_families())
    assert type(get_family("mock")).__name__ == "MockFamily"


def test_an_uninstalled_family_names_the_package_to_install() -> None:
    with pytest.raises(FamilyNotInstalled) as error:
        get_family("parler")
    message = str(error.value)
    assert "duplex-tts-parler" in message
    assert "\n" not in message
    assert "installed families: " in message


async def test_queue_depth_counts_utterances_with_synthesis_outstanding(
    pool: SynthesisScheduler,
) -> None:
    depth = QueueDepth()
    speech = Utterance(mock_model(rtf=0.5), "m", 1.0, VoiceOptions(), pool, depth, lead_s=0.06)
    speech.start()
    assert depth.value == 0
    speech.feed(Text("Some words to say.", is_final=True))
    assert depth.value == 1
    async for _ in speech.frames():
        pass
    await eventually(lambda: depth.value == 0, 5)
    await speech.close()
    assert depth.value == 0
