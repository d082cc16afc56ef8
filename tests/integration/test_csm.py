"""The ``csm`` family on a tiny random-weight CSM: real transformers code, CPU.

Streaming (audio leaves while a clause is still generated, and the chunked
Mimi decode equals one decode of the whole), cancel within a step, loading
from a saved folder. A worker process speaks it in ``test_csm_lora``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from duplex_tts import tracing
from duplex_tts.adapters import AdapterError, StreamContext, VoiceOptions
from duplex_tts.catalog import load_catalog
from duplex_tts.scheduler import SynthesisScheduler
from duplex_tts_csm import ChunkedDecoder, CsmFamily, CsmModel, settings_from
from duplex_tts_csm.engine import CsmStream
from tests.bench.torch_profile import torch_profile
from tests.support.tiny_csm import CODEBOOKS, tiny_model, write_csm_pack
from tests.support.waiting import eventually

SENTENCE = "How are you doing today?"  # one clause


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voicepacks")
    write_csm_pack(root, "csm-tiny")
    write_csm_pack(root, "csm-long", max_frames_per_clause=400)
    write_csm_pack(root, "csm-no-context", context_clauses=0)
    write_csm_pack(root, "csm-bf16", dtype="bfloat16")  # as on a GPU
    write_csm_pack(root, "csm-short", max_frames_per_clause=6)  # profiled: every op an event
    return root


def load(packs: Path, model_id: str = "csm-tiny") -> CsmModel:
    spec = load_catalog(packs).models[model_id]
    model = CsmFamily().load(spec, "cpu", None)
    assert isinstance(model, CsmModel)
    return model


def whole_codes(model: CsmModel, text: str) -> torch.Tensor:
    with torch.inference_mode():
        out = model.model.generate(
            input_ids=model.prompt(text, 0)[None],
            max_new_tokens=model.settings.max_frames_per_clause,
            do_sample=False,
            depth_decoder_do_sample=False,
        )
    codes: torch.Tensor = out[0]  # (frames, codebooks)
    eos = (codes[:, :-1] == model.model.config.codebook_eos_token_id).all(-1).nonzero()
    return codes[: int(eos.min())] if eos.numel() else codes


@pytest.mark.parametrize("chunk_frames", [1, 2, 3])
def test_chunked_decode_equals_a_whole_decode(chunk_frames: int) -> None:
    model = tiny_model()
    codes = torch.randint(1, 63, (17, CODEBOOKS))
    with torch.inference_mode():
        whole = model.codec_model.decode(codes.T.unsqueeze(0)).audio_values[0, 0].numpy()
    # The tiny codec reaches 6 frames back (2 transformer layers, window 4, convs).
    warm = ChunkedDecoder(model.codec_model, chunk_frames=chunk_frames, context_frames=8)
    chunked = _decode_in_chunks(warm, codes)
    assert chunked.shape == whole.shape == (17 * 1920,)
    assert np.abs(chunked - whole).max() < 1e-4 * np.abs(whole).max()
    # Without left context every boundary differs: the context is what makes it equal.
    cold = ChunkedDecoder(model.codec_model, chunk_frames=chunk_frames, context_frames=0)
    assert np.abs(_decode_in_chunks(cold, codes) - whole).max() > 1e-2 * np.abs(whole).max()


def _decode_in_chunks(decoder: ChunkedDecoder, codes: torch.Tensor) -> np.ndarray:
    parts = [decoder.push(frame) for frame in codes]
    parts.append(decoder.flush())
    return np.concatenate([p for p in parts if p is not None])


async def _spoken(model: CsmModel, device: SynthesisScheduler, text: str) -> list[np.ndarray]:
    stream = model.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))
    stream.push_text(text)
    stream.end_input()
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    return chunks


async def test_audio_streams_out_while_the_clause_is_generated(
    packs: Path, device: SynthesisScheduler
) -> None:
    model = load(packs)
    chunks = await _spoken(model, device, SENTENCE)
    codes = whole_codes(model, SENTENCE)
    assert len(chunks) == -(-len(codes) // model.settings.chunk_frames)  # one per 2 frames
    assert all(c.dtype == np.float32 for c in chunks)
    with torch.inference_mode():
        whole = model.model.codec_model.decode(codes.T.unsqueeze(0)).audio_values[0, 0].numpy()
    streamed = np.concatenate(chunks)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-4 * np.abs(whole).max()


async def test_phases_are_profiler_ranges_only_when_tracing_is_on(
    packs: Path, device: SynthesisScheduler, tmp_path: Path
) -> None:
    model = load(packs, "csm-short")
    with torch_profile(tmp_path / "trace.json"):  # turns DUPLEX_TRACE_RANGES on
        chunks = await _spoken(model, device, SENTENCE)
    trace = (tmp_path / "trace.json").read_text()
    # Recorded on the device thread, not the one that started the profiler.
    assert '"csm.generate"' in trace
    assert trace.count('"csm.decode"') == len(chunks)  # one Mimi decode per chunk
    assert tracing.ENV not in os.environ
    every_thread = torch._C._profiler._ExperimentalConfig(profile_all_threads=True)
    with torch.profiler.profile(experimental_config=every_thread) as off:
        await _spoken(model, device, SENTENCE)
        assert not tracing.enabled()
    assert not [e for e in off.key_averages() if e.key.startswith("csm.")]


async def test_cancel_stops_generation_within_a_step(
    packs: Path, device: SynthesisScheduler
) -> None:
    model = load(packs, "csm-long")
    stream = model.open_stream(StreamContext(VoiceOptions(), device, time.monotonic))
    assert isinstance(stream, CsmStream)
    stream.push_text(SENTENCE)
    stream.end_input()
    assert await stream.read() is not None
    at_cancel = stream.frames_generated
    stream.cancel()
    assert await stream.read() is None
    done = device.submit(lambda: None, deadline=0.0)  # runs once the device thread is free
    await eventually(done.done, 10)
    assert stream.frames_generated <= at_cancel + 1  # the step under way, nothing after
    assert stream.frames_generated < 400
    await stream.aclose()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_batch": 0}, "max_batch must be at least 1"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"context_clauses": -1}, "context_clauses"),
        ({"speed": 2}, "unknown CSM param 'speed'"),
    ],
)
def test_bad_voicepack_params_get_a_clear_error(
    packs: Path, params: dict[str, object], message: str
) -> None:
    spec = load_catalog(packs).models["csm-tiny"]
    bad = spec.model_copy(update={"params": {**spec.params, **params}})
    with pytest.raises(AdapterError, match=message):
        settings_from(bad)


TWO_CLAUSES = "How are you doing today? The quick brown fox jumps."


async def test_each_clause_is_spoken_after_the_reply_so_far(
    packs: Path, device: SynthesisScheduler
) -> None:
    model = load(packs)
    first_alone = np.concatenate(await _spoken(model, device, "How are you doing today?"))
    both = np.concatenate(await _spoken(model, device, TWO_CLAUSES))
    without = np.concatenate(await _spoken(load(packs, "csm-no-context"), device, TWO_CLAUSES))
    n = first_alone.size
    assert np.array_equal(both[:n], first_alone)  # nothing before the first clause
    assert np.array_equal(without[:n], first_alone)
    assert not (both.size == without.size and np.allclose(both, without))

    # The second clause is what CSM generates given the first (text and audio) as
    # context, the way transformers' processor lays a conversation out.
    ids = torch.cat(
        [
            model.prompt("How are you doing today?", 0),
            torch.full((n // 1920,), model.audio_token_id),
            torch.tensor([model.audio_eos_token_id]),
            model.prompt("The quick brown fox jumps.", 0),
        ]
    )[None]
    with torch.inference_mode():
        out = model.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),  # as the processor gives: the default
            # mask would hide the audio placeholders (CSM's pad id is its audio token)
            input_values=torch.from_numpy(first_alone)[None, None],
            input_values_cutoffs=torch.tensor([[n]]),
            max_new_tokens=model.settings.max_frames_per_clause,
            do_sample=False,
            depth_decoder_do_sample=False,
        )
        codes = out[0]
        eos = (codes[:, :-1] == 0).all(-1).nonzero()
        codes = codes[: int(eos.min())] if eos.numel() else codes
        second = model.model.codec_model.decode(codes.T.unsqueeze(0)).audio_values[0, 0].numpy()
    assert both[n:].shape == second.shape
    assert np.abs(both[n:] - second).max() <= 1e-4 * np.abs(second).max()


async def test_a_reference_clip_with_its_text_is_the_first_context(
    packs: Path, device: SynthesisScheduler
) -> None:
    model = load(packs)
    clip = np.random.default_rng(3).uniform(-0.3, 0.3, 16_000).astype(np.float32)  # 1 s @ 16 kHz
    cloned = VoiceOptions(
        reference_audio=clip, reference_sample_rate=16_000, reference_text="Hello there."
    )
    plain = np.concatenate(await _spoken(model, device, SENTENCE))
    stream = model.open_stream(StreamContext(cloned, device, time.monotonic))
    stream.push_text(SENTENCE)
    stream.end_input()
    heard = np.concatenate([chunk async for chunk in stream])
    await stream.aclose()
    assert heard.size
    assert not (heard.size == plain.size and np.allclose(heard, plain))

    # In bfloat16 (a GPU's default) the codec encodes the clip in the model's dtype.
    half = load(packs, "csm-bf16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    stream = half.open_stream(StreamContext(cloned, device, time.monotonic))
    stream.push_text(SENTENCE)
    stream.end_input()
    assert sum([chunk.size async for chunk in stream]) > 0
    await stream.aclose()

    mute = model.open_stream(
        StreamContext(
            VoiceOptions(reference_audio=clip, reference_sample_rate=16_000), device, time.monotonic
        )
    )
    mute.push_text(SENTENCE)
    mute.end_input()
    with pytest.raises(AdapterError, match="reference_text"):
        await mute.read()
    # StartSession asks the model first (check_options), before any stream exists.
    with pytest.raises(AdapterError, match="CSM needs reference_text"):
        model.check_options(VoiceOptions(reference_audio=clip, reference_sample_rate=16_000))
    blip = VoiceOptions(
        reference_audio=clip[:100], reference_sample_rate=16_000, reference_text="Hi."
    )
    with pytest.raises(AdapterError, match="shorter than one CSM frame"):
        model.check_options(blip)
    model.check_options(cloned)
    assert isinstance(mute, CsmStream)
    assert mute.frames_generated == 0  # refused: nothing was generated for it
    await mute.aclose()
