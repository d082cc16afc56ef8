"""The real Piper voice through a real worker: intelligible, loud enough, loadable on demand."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import numpy as np
import pytest

from duplex_protocol import SAMPLE_RATE
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.audio import integrated_loudness
from tests.support.whisper import transcribe
from tests.support.worker import WorkerProcess, connect, speak, start_worker

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


@pytest.mark.parametrize("word_by_word", [False, True])
async def test_piper_speech_survives_resampling_and_framing(
    piper_worker: WorkerProcess, word_by_word: bool
) -> None:
    text = " ".join(SENTENCES)
    async with connect(piper_worker.address) as stub:
        sid = (await stub.StartSession(pb.StartSessionRequest())).session_id
        got = await speak(stub, sid, text, word_by_word=word_by_word)
    assert [f.sequence for f in got.frames] == list(range(len(got.frames)))
    heard = transcribe(got.pcm, SAMPLE_RATE)
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
