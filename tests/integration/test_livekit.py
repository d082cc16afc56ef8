"""duplex's LiveKit Agents TTS plugin, offline: AgentSession with no room and no server.

AgentSession speaks through ``DuplexTTS`` into an in-memory audio output that
plays in real time; the workers are in-process fakes honouring STOP. No
LiveKit server can run here: the room path is not exercised (see the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from livekit.agents import Agent, AgentSession

from duplex_livekit import DuplexTTS
from tests.support.fake_worker import FakeRegistry, FakeWorker
from tests.support.livekit_output import PlayedAudioOutput
from tests.support.waiting import eventually


@pytest.fixture
async def agent() -> AsyncIterator[
    tuple[AgentSession[None], PlayedAudioOutput, FakeWorker, DuplexTTS]
]:
    worker = FakeWorker(frames_per_chunk=25, frame_s=0.02)
    voice = DuplexTTS(model="mock", registry=FakeRegistry(worker))
    session: AgentSession[None] = AgentSession(tts=voice)
    output = PlayedAudioOutput()
    session.output.audio = output
    await session.start(agent=Agent(instructions="Speak."), record=False)
    yield session, output, worker, voice
    await session.aclose()
    await output.aclose()
    await voice.aclose()


async def test_agent_session_speaks_duplex_frames_as_they_come(
    agent: tuple[AgentSession[None], PlayedAudioOutput, FakeWorker, DuplexTTS],
) -> None:
    session, output, worker, _ = agent
    handle = session.say("Hello from duplex.")
    await asyncio.wait_for(handle.wait_for_playout(), 20)
    assert "".join(worker.texts) == "Hello from duplex."  # streamed in, as AgentSession sent it
    seconds = 25 * len(worker.texts) * 0.02  # the fake worker speaks 25 frames per chunk
    assert sum(f.duration for f in output.captured) == pytest.approx(seconds, abs=0.011)
    assert sum(f.duration for f in output.played) == pytest.approx(seconds, abs=0.011)
    assert not handle.interrupted
    await eventually(lambda: worker.ended == ["fake-0-s1"], timeout_s=5)


async def test_the_plugin_streams_text_in_and_duplex_20_ms_frames_out() -> None:
    worker = FakeWorker(frames_per_chunk=5, frame_s=0.0)
    voice = DuplexTTS(model="mock", registry=FakeRegistry(worker))
    stream = voice.stream()
    for token in ("Hello", " there", "."):
        stream.push_text(token)
    stream.end_input()
    frames = [event.frame async for event in stream]
    await stream.aclose()
    await voice.aclose()
    assert worker.texts == ["Hello", " there", "."]  # each delta went on as it came
    assert sum(f.duration for f in frames) == pytest.approx(15 * 0.02)
    # Frames go on as they come, never gathered into bigger blocks: at most 20 ms each
    # (livekit's emitter holds back a 10 ms tail to mark the segment's last frame).
    assert max(f.samples_per_channel for f in frames) == 960
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(48000, 1)}


async def test_an_interruption_clears_the_output_and_stops_the_worker(
    agent: tuple[AgentSession[None], PlayedAudioOutput, FakeWorker, DuplexTTS],
) -> None:
    session, output, worker, _ = agent
    worker.frames_per_chunk = 500  # 10 s of speech
    handle = session.say("A very long reply that will be cut off.")
    await eventually(lambda: len(output.played) >= 10, timeout_s=10)
    handle.interrupt()
    await asyncio.wait_for(handle.wait_for_playout(), 10)
    assert handle.interrupted
    assert output.cleared >= 1
    assert len(output.played) < 100
    await eventually(lambda: worker.ended == ["fake-0-s1"], timeout_s=5)


async def test_a_model_switch_speaks_the_next_reply_with_the_new_model(
    agent: tuple[AgentSession[None], PlayedAudioOutput, FakeWorker, DuplexTTS],
) -> None:
    session, _, worker, voice = agent
    worker.models = worker.resident = frozenset({"mock", "other"})
    voice.update_options(model="other")
    await asyncio.wait_for(session.say("Now in another voice.").wait_for_playout(), 20)
    assert worker.started == ["other"]


def test_the_plugin_needs_workers_or_a_registry() -> None:
    with pytest.raises(ValueError, match="worker addresses"):
        DuplexTTS()
