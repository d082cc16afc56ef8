"""duplex's LiveKit parts without a session: the VAD adapter, the chat-context mapping, config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import soxr
from livekit import rtc
from livekit.agents import llm, vad

from duplex_livekit import DuplexLLM, DuplexVAD, voice_agent
from duplex_livekit.llm import question_and_history
from duplex_orchestrator.cli import orchestrator_main
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.llm import HISTORY_CHARS, SYSTEM_PROMPT
from tests.support.fake_ears import voiced

LIVEKIT_ENV = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


def _frames_48k(samples16k: np.ndarray) -> list[rtc.AudioFrame]:
    up = soxr.resample(samples16k.astype(np.float32) / 32768.0, 16000, 48000)
    pcm = np.clip(np.rint(up * 32768.0), -32768, 32767).astype(np.int16)
    return [
        rtc.AudioFrame(pcm[i : i + 480].tobytes(), 48000, 1, 480)  # 10 ms, as rooms send
        for i in range(0, len(pcm) - 479, 480)
    ]


async def _events(samples16k: np.ndarray, **options: Any) -> list[vad.VADEvent]:
    stream = DuplexVAD(**options).stream()
    for frame in _frames_48k(samples16k):
        stream.push_frame(frame)
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()
    return events


async def test_the_vad_marks_onset_and_end_and_hands_over_the_utterance() -> None:
    silence = np.zeros(8000, dtype=np.int16)
    events = await _events(np.concatenate([silence, voiced(1.0), silence, silence]))
    kinds = [e.type for e in events if e.type is not vad.VADEventType.INFERENCE_DONE]
    assert kinds == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH]
    start = next(e for e in events if e.type is vad.VADEventType.START_OF_SPEECH)
    end = next(e for e in events if e.type is vad.VADEventType.END_OF_SPEECH)
    assert start.timestamp == pytest.approx(0.5 + 0.08, abs=0.1)  # 80 ms of speech make an onset
    assert end.silence_duration == pytest.approx(0.5)  # the end of turn waited 500 ms of silence
    utterance = end.frames[0]
    assert utterance.sample_rate == 16000
    assert 1.0 <= utterance.duration <= 1.0 + 0.3 + 0.5 + 0.1  # speech, pre-roll and the end wait
    inference = [e for e in events if e.type is vad.VADEventType.INFERENCE_DONE]
    assert len(inference) == pytest.approx(2.5 / 0.02, abs=3)  # one per 20 ms of the 2.5 s
    speaking = [e.speech_duration for e in inference if e.speaking]
    assert speaking == sorted(speaking)  # barge-in reads a growing speech duration
    assert speaking[-1] >= 0.9


async def test_end_utterance_ends_it_at_the_next_frame_not_after_its_silence() -> None:
    """duplex's ``end_turn`` (a push-to-talk button released): the utterance in progress
    ends after the frames pushed before, with its audio so far; its last sound (40 ms
    here, as the resampler and the speech model hold some) is no new onset, and speech
    after that is."""
    began: list[bool] = []
    owner = DuplexVAD(on_speech=began.append, onset_ms=40)
    stream = owner.stream()
    assert not owner.end_utterance()  # nothing in progress: nothing to end
    for frame in _frames_48k(voiced(1.0)):
        stream.push_frame(frame)
    events: list[vad.VADEvent] = []
    async for event in stream:
        events.append(event)
        if event.type is vad.VADEventType.INFERENCE_DONE and event.speech_duration >= 0.5:
            break
    # asked while the last half second is still on its way: it is the utterance's end
    assert owner.end_utterance()
    silence = np.zeros(16000, dtype=np.int16)
    after = np.concatenate([voiced(0.04), silence[:4800], voiced(0.5), silence])
    for frame in _frames_48k(after):
        stream.push_frame(frame)
    stream.end_input()
    events += [event async for event in stream]
    await stream.aclose()
    ends = [e for e in events if e.type is vad.VADEventType.END_OF_SPEECH]
    starts = [e for e in events if e.type is vad.VADEventType.START_OF_SPEECH]
    assert len(starts) == len(ends) == 2
    assert ends[0].silence_duration == 0.0  # ended by the client, not by a silence
    assert 0.9 <= ends[0].frames[0].duration <= 1.0 + 0.3 + 0.05  # its speech and pre-roll
    assert 0.9 <= ends[0].timestamp <= 1.02  # after all frames pushed before, not at the ask
    assert ends[0].timestamp < starts[1].timestamp
    assert ends[1].silence_duration == pytest.approx(0.5)
    assert began == [True, True]  # two onsets, no speech "again" inside either


async def test_the_vad_ignores_silence_and_takes_its_settings() -> None:
    assert all(
        e.type is vad.VADEventType.INFERENCE_DONE and not e.speaking
        for e in await _events(np.zeros(16000, dtype=np.int16))
    )
    events = await _events(
        np.concatenate([voiced(1.0), np.zeros(16000, dtype=np.int16)]), end_ms=800
    )
    end = next(e for e in events if e.type is vad.VADEventType.END_OF_SPEECH)
    assert end.silence_duration == pytest.approx(0.8)


def test_the_llm_gets_the_last_question_and_the_turns_before_it() -> None:
    chat = llm.ChatContext()
    chat.add_message(role="system", content="Be brief.")
    chat.add_message(role="user", content="Hi.")
    chat.add_message(role="assistant", content="Hello!")
    chat.add_message(role="user", content="What time is it?")
    question, history = question_and_history(chat)
    assert question == "What time is it?"
    assert history == [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert question_and_history(llm.ChatContext()) == ("", [])


class HistoryBridge:
    def __init__(self) -> None:
        self.histories: list[list[dict[str, str]]] = []

    async def reply(self, text: str, history: list[dict[str, str]]) -> AsyncIterator[str]:
        self.histories.append(history)
        yield "Okay."


async def test_the_llm_gets_the_conversation_as_far_back_as_its_budget() -> None:
    chat = llm.ChatContext()
    for said in ("Hi, I am Bob.", "Hello Bob!", "Two pizzas.", "Sure.", "Make it three."):
        chat.add_message(
            role="assistant" if said in ("Hello Bob!", "Sure.") else "user", content=said
        )
    bridge = HistoryBridge()
    for chars, given in ((HISTORY_CHARS, 4), (20, 2)):
        async with DuplexLLM(bridge, history_chars=chars).chat(chat_ctx=chat) as stream:
            assert [chunk.delta.content async for chunk in stream if chunk.delta] == ["Okay."]
        assert len(bridge.histories[-1]) == given
    assert bridge.histories[-1] == [
        {"role": "user", "content": "Two pizzas."},
        {"role": "assistant", "content": "Sure."},
    ]


def test_the_livekit_transport_needs_the_livekit_settings_not_an_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (*LIVEKIT_ENV, "DUPLEX_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="LIVEKIT_URL"):
        build_config({"transport": "livekit"})
    monkeypatch.setenv("LIVEKIT_URL", "wss://example.livekit.cloud")
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET"):
        build_config({"transport": "livekit"})
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")
    config = build_config({"transport": "livekit"})  # no --api-key: no HTTP sessions are served
    assert (config.livekit_url, config.livekit_api_secret) == (
        "wss://example.livekit.cloud",
        "secret",
    )
    monkeypatch.setenv("LIVEKIT_URL", "example.livekit.cloud")
    with pytest.raises(ConfigError, match="must start with wss://"):
        build_config({"transport": "livekit"})
    with pytest.raises(ConfigError, match="api_key"):
        build_config({})  # the web transport still needs its key


def test_the_command_line_says_what_the_livekit_transport_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in LIVEKIT_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        orchestrator_main(["--transport", "livekit"])
    assert exited.value.code == 2
    assert "--transport livekit needs env LIVEKIT_URL" in capsys.readouterr().err


def test_the_agents_instructions_are_the_configured_ones() -> None:
    config = build_config({"dev": True, "llm_instructions": "You take pizza orders."})
    assert voice_agent(instructions=config.llm_instructions).instructions == (
        "You take pizza orders."
    )
    assert voice_agent().instructions == SYSTEM_PROMPT
