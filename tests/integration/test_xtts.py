"""The ``xtts`` family on a tiny random-weight XTTS-v2: coqui-tts's real code, CPU.

Streaming through ``inference_stream``, cloning from a session's reference clip
with latents cached by the clip's hash (and dropped on RELOAD and unload),
cancel within one GPT token, clear errors for bad clips and params, and a
worker process that clones a voice once for two sessions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import jiwer
import numpy as np
import pytest
import soundfile
import torch

from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_tts.adapters import AdapterError, StreamContext, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_xtts import XttsFamily, XttsModel, clip_key, settings_from
from tests.support.orchestrator import ScriptedClient, start_orchestrator, words_of
from tests.support.speech import speech_16k
from tests.support.tiny_xtts import MAX_AUDIO_TOKENS, write_xtts_pack
from tests.support.worker import WorkerProcess, connect, speak, start_worker

CLAUSE = "Hello there, how are you"  # two clauses
SAMPLES_PER_TOKEN = 1024 * 24000 / 22050  # a GPT token is 1024 samples at 22.05 kHz


def clip(seconds: float = 6.0, seed: int = 0, rate: int = 48000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voicepacks")
    write_xtts_pack(root, "xtts-tiny")
    folder = write_xtts_pack(root, "xtts-tiny-ana", speaker="Ana Tiny", latent_cache_size=1)
    soundfile.write(folder / "ref.wav", clip(3.0, seed=7, rate=16000), 16000)
    write_xtts_pack(root, "xtts-tiny-ref", reference="../xtts-tiny-ana/ref.wav")
    return root


@pytest.fixture(scope="module")
def model(packs: Path) -> XttsModel:
    return load(packs)


def load(packs: Path, model_id: str = "xtts-tiny") -> XttsModel:
    loaded = XttsFamily().load(load_catalog(packs).models[model_id], "cpu", None)
    assert isinstance(loaded, XttsModel)
    return loaded


def cloned(audio: np.ndarray, rate: int = 48000) -> VoiceOptions:
    return VoiceOptions(reference_audio=audio, reference_sample_rate=rate)


async def test_audio_streams_out_in_chunks_as_the_gpt_generates(
    model: XttsModel, device: SynthesisScheduler
) -> None:
    stream = model.open_stream(StreamContext(cloned(clip()), device, time.monotonic))
    stream.push_text("hello there")
    stream.end_input()
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    # 24 tokens at most, 8 per chunk: the first chunk leaves after 8 tokens, not 24.
    assert len(chunks) == MAX_AUDIO_TOKENS // 8 + 1  # and the last cross-fade overlap
    total = sum(c.size for c in chunks)
    assert chunks[0].size < total / 2
    # All 24 tokens' audio, less the decoder's last-chunk overlap trimming.
    assert (
        0.9 * MAX_AUDIO_TOKENS * SAMPLES_PER_TOKEN < total <= MAX_AUDIO_TOKENS * SAMPLES_PER_TOKEN
    )
    assert model.native_sample_rate == 24000


def test_a_clip_is_cloned_once_and_its_latents_cached_by_hash(packs: Path) -> None:
    model = load(packs)
    first = model.voice_for(cloned(clip(seed=1)))
    again = model.voice_for(cloned(clip(seed=1).copy()))  # equal samples, another array
    other = model.voice_for(cloned(clip(seed=2)))
    assert (model.cache.misses, model.cache.hits) == (2, 1)
    assert again is first
    assert not torch.equal(first.gpt_latents, other.gpt_latents)
    # What the cache returns is what a fresh clone computes.
    fresh = model.clone(clip(seed=1), 48000)
    assert torch.equal(fresh.gpt_latents, first.gpt_latents)
    assert torch.equal(fresh.speaker_embedding, first.speaker_embedding)
    # The same samples at another rate are another clip.
    assert clip_key(clip(seed=1), 48000) != clip_key(clip(seed=1), 44100)

    model.forget()  # RELOAD
    assert len(model.cache) == 0
    model.voice_for(cloned(clip(seed=1)))
    assert model.cache.misses == 3
    model.close()  # unload
    assert len(model.cache) == 0


def test_the_cache_keeps_only_the_latest_clips(packs: Path) -> None:
    model = load(packs, "xtts-tiny-ana")  # latent_cache_size: 1
    model.voice_for(cloned(clip(seed=1)))
    model.voice_for(cloned(clip(seed=2)))
    model.voice_for(cloned(clip(seed=1)))
    assert (model.cache.misses, model.cache.hits, len(model.cache)) == (3, 0, 1)


def test_cancel_stops_the_gpt_within_a_token(model: XttsModel) -> None:
    steps = 0

    def count(*_: object) -> None:
        nonlocal steps
        steps += 1

    hook = model.model.gpt.gpt_inference.register_forward_hook(count)
    cancelled = False
    try:
        chunks = model.clause_chunks("hello there", cloned(clip()), lambda: cancelled)
        next(chunks)  # 8 tokens
        at_cancel = steps
        cancelled = True
        assert next(chunks, None) is None
    finally:
        hook.remove()
    assert at_cancel >= 8
    assert steps <= at_cancel + 1  # the step under way at most, then nothing


def test_builtin_speaker_and_voicepack_reference(packs: Path, model: XttsModel) -> None:
    ana = load(packs, "xtts-tiny-ana")
    assert ana.default_voice is not None
    speakers = torch.load(packs / "xtts/xtts-tiny-ana/weights/speakers_xtts.pth")
    assert torch.equal(ana.default_voice.gpt_latents, speakers["Ana Tiny"]["gpt_cond_latent"])
    # A session may pick a built-in speaker by name; the voicepack's is the default.
    assert model.voice_for(VoiceOptions(speaker="Ana Tiny")).gpt_latents.shape == (1, 32, 64)
    referenced = load(packs, "xtts-tiny-ref")
    assert referenced.default_voice is not None
    assert referenced.cache.misses == 0  # the pack's own voice is not a session clip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (cloned(clip(0.5)), r"reference_audio is 0.50 s; XTTS needs at least 1 s"),
        (VoiceOptions(reference_audio=clip(), reference_sample_rate=0), "sample rate"),
        (VoiceOptions(), "XTTS clones a voice: send reference_audio"),
        (VoiceOptions(speaker="Nobody"), "no built-in speaker 'Nobody'"),
        (VoiceOptions(speaker="Ana Tiny", language="ja"), "XTTS speaks en; not 'ja'"),
    ],
)
def test_bad_clips_and_choices_get_a_clear_error(
    model: XttsModel, options: VoiceOptions, message: str
) -> None:
    with pytest.raises(AdapterError, match=message):
        next(model.synthesize_clause("hello", options))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"stream_chunk_size": 0}, "stream_chunk_size must be at least 1"),
        ({"top_p": 1.5}, r"top_p in \(0, 1\]"),
        ({"do_sample": False}, "unknown XTTS param 'do_sample'"),
    ],
)
def test_bad_voicepack_params_get_a_clear_error(
    packs: Path, params: dict[str, object], message: str
) -> None:
    spec = load_catalog(packs).models["xtts-tiny"]
    with pytest.raises(AdapterError, match=message):
        settings_from(spec.model_copy(update={"params": {**spec.params, **params}}))


@pytest.fixture(scope="module")
def worker(packs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("xtts-worker") / "worker.log"
    process = start_worker(
        ["--adapter", "xtts", "--voicepacks", str(packs), "--default-model", "xtts-tiny"], log
    )
    yield process
    process.stop()


async def test_a_worker_clones_once_for_two_sessions_and_again_after_reload(
    worker: WorkerProcess,
) -> None:
    pcm = (clip(seconds=6.0, seed=3, rate=16000) * 32767).astype("<i2").tobytes()
    start = pb.StartSessionRequest(
        model_id="xtts-tiny", reference_audio=pcm, reference_sample_rate=16000
    )
    async with connect(worker.address) as stub:

        async def session() -> None:
            sid = (await stub.StartSession(start)).session_id
            got = await speak(stub, sid, "hello there")
            assert got.frames[-1].is_last
            assert len(got.frames) > 10
            await stub.EndSession(pb.EndSessionRequest(session_id=sid))

        before = len(clones(worker))  # the warm-up (and any earlier test) cloned too
        await session()
        await session()
        assert len(clones(worker)) == before + 1  # the second session found it cached
        await stub.Control(pb.ControlRequest(action=pb.CONTROL_ACTION_RELOAD))
        await session()
        assert len(clones(worker)) == before + 2
        # Without a clip (and no voicepack voice), or with a short one, StartSession is refused.
        with pytest.raises(grpc.aio.AioRpcError, match="XTTS clones a voice") as refused:
            await stub.StartSession(pb.StartSessionRequest(model_id="xtts-tiny"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        short = pb.StartSessionRequest(
            model_id="xtts-tiny", reference_audio=pcm[:16000], reference_sample_rate=16000
        )
        with pytest.raises(grpc.aio.AioRpcError, match="XTTS needs at least 1 s"):
            await stub.StartSession(short)
        await session()  # and the worker goes on
        listed = await stub.ListModels(pb.ListModelsRequest())
        assert next(m for m in listed.models if m.id == "xtts-tiny").refs == 0  # none leaked


async def test_a_browser_session_clones_its_voice_from_a_recorded_clip(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    orchestrator = start_orchestrator(
        [worker.address], tmp_path / "orchestrator.log", "--default-model", "xtts-tiny"
    )
    try:
        async with ScriptedClient(orchestrator.ws_url) as user:
            await user.start(model="xtts-tiny")
            await user.send(type="say", text="Hello there.")
            error = await user.wait_for("error")  # no clip yet, and no voice of its own
            assert "XTTS clones a voice" in error["message"]

            await user.send(type="clone_start")
            await user.wait_for("clone", state="recording")
            for frame in _frames(speech_16k("Hi.", lead_s=0.2)):  # too short
                await user.send_raw(frame)
            await user.send(type="clone_end")
            assert (
                "at least 3 s" in (await user.wait_for("error", code="clip_too_short"))["message"]
            )

            await user.send(type="clone_start")
            for frame in _frames(speech_16k(CLIP_WORDS)):  # as the browser sends an upload
                await user.send_raw(frame)
            await user.send(type="clone_end")
            voice = await user.wait_for("voice", cloned=True, timeout_s=60)
            assert 3 < voice["seconds"] < 10
            assert jiwer.wer(words_of(CLIP_WORDS), words_of(voice["transcript"])) < 0.3

            await user.send(type="say", text="Hello there.")
            ended = await user.wait_for("tts_end", timeout_s=60)
            assert not ended.get("interrupted")
            assert len(user.got.pcm()) > 0.2 * 48000 * 2  # 200 ms of the cloned voice at least
            assert len(user.got.of("error")) == 2  # the two before the clip; none since
    finally:
        orchestrator.stop()
    assert "recorded" not in orchestrator.log()  # the clip's words are not logged


CLIP_WORDS = "This is my own voice, recorded for the agent to speak with from now on."


def _frames(track: np.ndarray) -> list[bytes]:
    padded = np.concatenate([track, np.zeros(-track.size % 320, np.int16)])
    return [padded[i : i + 320].astype("<i2").tobytes() for i in range(0, padded.size, 320)]


def clones(worker: WorkerProcess) -> list[dict[str, object]]:
    lines = worker.log().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e.get("event") == "xtts_clone"]
