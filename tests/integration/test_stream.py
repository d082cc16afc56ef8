"""Streaming behaviour of a real worker process (mock family: deterministic audio)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from duplex_protocol import FRAME_BYTES
from duplex_protocol.tts.v1 import tts_pb2 as pb
from duplex_protocol.tts.v1 import tts_pb2_grpc as pb_grpc
from tests.support.worker import (
    Collector,
    Received,
    WorkerProcess,
    aiter_chunks,
    connect,
    speak,
    text_chunks,
)

MEDIUM = "A medium sentence that plays for about three seconds, give or take."
LONG = (
    "This sentence is long enough to play for a few seconds, so that there is time "
    "to pause it, resume it and stop it while frames are still flowing out."
)


async def start(stub: pb_grpc.TTSAsyncStub, model_id: str = "") -> str:
    reply = await stub.StartSession(pb.StartSessionRequest(model_id=model_id))
    return reply.session_id


async def control(
    stub: pb_grpc.TTSAsyncStub, sid: str, action: pb.ControlAction.ValueType
) -> pb.ControlResponse:
    return await stub.Control(pb.ControlRequest(session_id=sid, action=action))


def assert_well_formed(got: Received) -> None:
    assert got.frames, "no frames"
    assert all(len(f.pcm) == FRAME_BYTES for f in got.frames)
    assert all((f.sample_rate, f.frame_ms) == (48000, 20) for f in got.frames)
    assert [f.sequence for f in got.frames] == list(range(len(got.frames)))
    assert [f.is_last for f in got.frames] == [False] * (len(got.frames) - 1) + [True]


async def reference_pcm(address: str, text: str) -> bytes:
    async with connect(address) as stub:
        sid = await start(stub)
        return (await speak(stub, sid, text)).pcm


async def test_frames_are_exact_ordered_and_end_with_is_last(mock_worker: WorkerProcess) -> None:
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        got = await speak(stub, sid, "Hello there, how are you today?")
    assert_well_formed(got)
    samples = np.frombuffer(got.pcm, dtype="<i2")
    assert np.abs(samples).max() > 3000  # real signal, not silence
    assert 1.0 < len(got.frames) * 0.02 < 3.0


async def test_frames_are_paced_not_burst(mock_worker: WorkerProcess) -> None:
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        got = await speak(stub, sid, LONG)
    audio_s = len(got.frames) * 0.02
    span = got.arrival[-1] - got.arrival[0]
    # Paced to the wall clock: the stream takes about as long as the audio
    # (minus the small lead), far from a burst of the whole utterance.
    assert span > 0.7 * audio_s
    early = sum(1 for t in got.arrival if t - got.arrival[0] < 0.01)
    assert early <= 10


async def test_same_session_speaks_several_utterances(mock_worker: WorkerProcess) -> None:
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        first = await speak(stub, sid, "One two three.")
        second = await speak(stub, sid, "One two three.")
        end = await stub.EndSession(pb.EndSessionRequest(session_id=sid))
    assert first.pcm == second.pcm
    assert end.frames_sent == len(first.frames) + len(second.frames)


async def test_text_streamed_word_by_word_starts_before_the_reply_is_complete(
    mock_worker: WorkerProcess,
) -> None:
    words = text_chunks("", LONG, word_by_word=True)
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        for chunk in words:
            chunk.session_id = sid
        sent_last_at: list[float] = []

        async def slow_chunks() -> AsyncIterator[pb.TextChunk]:
            for chunk in words:
                yield chunk
                await asyncio.sleep(0.08)
            sent_last_at.append(time.monotonic())

        first_frame_at = None
        frames = 0
        async for _frame in stub.Synthesize(slow_chunks()):
            frames += 1
            if first_frame_at is None:
                first_frame_at = time.monotonic()
    assert first_frame_at is not None
    assert first_frame_at < sent_last_at[0] - 1.0  # audio while text still streams
    assert frames > 100


async def test_pause_holds_frames_back_and_resume_loses_and_replays_nothing(
    mock_worker: WorkerProcess,
) -> None:
    expected = await reference_pcm(mock_worker.address, MEDIUM)
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, MEDIUM))))
        await collector.wait_frames(20)
        ack = await control(stub, sid, pb.CONTROL_ACTION_PAUSE)
        assert ack.streaming
        await asyncio.sleep(0.5)
        # Once PAUSE is acknowledged, at most the frames already in flight arrive.
        assert max(f.sequence for f in collector.got.frames) <= ack.last_sequence
        held = len(collector.got.frames)
        resumed = await control(stub, sid, pb.CONTROL_ACTION_RESUME)
        assert resumed.last_sequence == ack.last_sequence
        got = await collector.done()
    assert len(got.frames) > held
    assert_well_formed(got)
    assert got.pcm == expected  # nothing replayed, nothing lost


async def test_many_pause_resume_pairs_do_not_turn_the_reply_into_a_burst(
    mock_worker: WorkerProcess,
) -> None:
    """Each RESUME used to restart pacing: 1,000 pairs sent a 7 s reply in 0.33 s."""
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, LONG))))
        await collector.wait_frames(5)
        for _ in range(300):
            await control(stub, sid, pb.CONTROL_ACTION_PAUSE)
            await control(stub, sid, pb.CONTROL_ACTION_RESUME)
        got = await collector.done()
    assert_well_formed(got)
    audio_s = len(got.frames) * 0.02
    # Paced at real time the frames take at least the audio's length, less the
    # bounded lead; a burst would deliver them in a fraction of it.
    assert got.arrival[-1] - got.arrival[0] >= audio_s - 0.5, f"{audio_s:.1f} s of audio"


async def test_stop_while_paused_ends_the_stream(mock_worker: WorkerProcess) -> None:
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        collector = Collector(stub.Synthesize(aiter_chunks(text_chunks(sid, LONG))))
        await collector.wait_frames(10)
        await control(stub, sid, pb.CONTROL_ACTION_PAUSE)
        await asyncio.sleep(0.2)
        stop = await control(stub, sid, pb.CONTROL_ACTION_STOP)
        got = await collector.done(5.0)
    assert_well_formed(got)
    assert got.frames[-1].sequence == stop.last_sequence + 1
    assert not any(np.frombuffer(got.frames[-1].pcm, dtype="<i2"))


async def test_stop_ends_cleanly_with_a_faded_last_frame(mock_worker: WorkerProcess) -> None:
    full = await reference_pcm(mock_worker.address, LONG)
    async with connect(mock_worker.address) as stub:
        sid = await start(stub)
        got = Received()
        async for frame in stub.Synthesize(aiter_chunks(text_chunks(sid, LONG))):
            got.frames.append(frame)
            if frame.sequence == 30:
                await control(stub, sid, pb.CONTROL_ACTION_STOP)
        # The session survives a STOP and speaks again.
        again = await speak(stub, sid, "Still here.")
    assert_well_formed(got)
    assert len(got.frames) < len(full) // FRAME_BYTES
    last = np.frombuffer(got.frames[-1].pcm, dtype="<i2")
    assert abs(int(last[-1])) <= 1
    assert got.pcm[:-FRAME_BYTES] == full[: len(got.pcm) - FRAME_BYTES]
    assert_well_formed(again)


async def test_concurrent_sessions_each_get_their_own_intact_audio(
    mock_worker: WorkerProcess,
) -> None:
    texts = [
        f"Session number {n} says something different, {'word ' * n}done." for n in range(1, 6)
    ]
    expected = [await reference_pcm(mock_worker.address, t) for t in texts]

    async def one(text: str) -> Received:
        async with connect(mock_worker.address) as stub:
            return await speak(stub, await start(stub), text)

    results = await asyncio.gather(*(one(t) for t in texts))
    for got, want in zip(results, expected, strict=True):
        assert_well_formed(got)
        assert got.pcm == want


async def test_a_misbehaving_session_does_not_disturb_the_others(
    mock_worker: WorkerProcess,
) -> None:
    text = "Three well behaved sessions keep talking while another one misbehaves."
    expected = await reference_pcm(mock_worker.address, text)

    async def good() -> Received:
        async with connect(mock_worker.address) as stub:
            return await speak(stub, await start(stub), text)

    async def oversized() -> grpc.StatusCode:
        async with connect(mock_worker.address) as stub:
            sid = await start(stub)
            chunks = [
                pb.TextChunk(session_id=sid, text="Hi there. "),
                pb.TextChunk(session_id=sid, text="x" * 5000),
            ]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.Synthesize(aiter_chunks(chunks, gap_s=0.2)):
                    pass
            return err.value.code()

    async def vanisher() -> None:
        async with connect(mock_worker.address) as stub:
            sid = await start(stub)
            call = stub.Synthesize(aiter_chunks(text_chunks(sid, LONG)))
            for _ in range(5):
                await call.read()
            call.cancel()

    results = await asyncio.gather(good(), good(), good(), oversized(), vanisher())
    for got in results[:3]:
        assert isinstance(got, Received)
        assert got.pcm == expected
    assert results[3] == grpc.StatusCode.INVALID_ARGUMENT


async def test_client_vanishing_mid_stream_frees_session_and_model_reference(
    mock_worker: WorkerProcess,
) -> None:
    async with connect(mock_worker.address) as stub:
        before = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        refs_before = {m.id: m.refs for m in (await stub.ListModels(pb.ListModelsRequest())).models}
        sid = await start(stub)
        call = stub.Synthesize(aiter_chunks(text_chunks(sid, LONG)))
        for _ in range(3):
            await call.read()
        call.cancel()
        for _ in range(50):
            caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
            models = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest())).models}
            released = models["mock"].refs == refs_before["mock"]
            if caps.active_sessions == before.active_sessions and released:
                break
            await asyncio.sleep(0.1)
        assert caps.active_sessions == before.active_sessions
        assert models["mock"].refs == refs_before["mock"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await control(stub, sid, pb.CONTROL_ACTION_PAUSE)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
