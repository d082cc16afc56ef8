"""WebSocket messages, SSE parsing, text feeds and orchestrator config."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from duplex_orchestrator.clone import MAX_CLIP_S, ClipRecorder, VoiceClip, VoiceReference
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.events import Event
from duplex_orchestrator.feeds import ClientText, ReplayableText
from duplex_orchestrator.llm import EchoBridge, LLMError, _sse_delta
from duplex_orchestrator.protocol import (
    CloneClear,
    CloneEnd,
    CloneStart,
    EndTurn,
    Interrupt,
    Model,
    ProtocolError,
    Say,
    Start,
    Text,
    UserText,
    frame_bytes,
    parse,
)
from tests.support.fake_ears import Ears


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "start"}', Start(model="", sample_rate=16000)),
        ('{"type": "start", "model": "mock", "sample_rate": 48000}', Start("mock", 48000)),
        ('{"type": "text", "text": "Hi", "final": true}', Text("Hi", True)),
        ('{"type": "say", "text": "Hello."}', Say("Hello.")),
        ('{"type": "user_text", "text": "What is on?"}', UserText("What is on?")),
        ('{"type": "model", "model": "mock"}', Model("mock")),
        ('{"type": "interrupt"}', Interrupt()),
        ('{"type": "end_turn"}', EndTurn()),
        ('{"type": "start", "turn_detection": "manual"}', Start("", 16000, "manual")),
        ('{"type": "clone_start"}', CloneStart()),
        ('{"type": "clone_end"}', CloneEnd()),
        ('{"type": "clone_clear"}', CloneClear()),
    ],
)
def test_valid_messages(raw: str, expected: object) -> None:
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("{oops", "bad_json", "not valid JSON"),
        ("[1, 2]", "bad_message", "JSON object"),
        ('{"type": "fly"}', "unknown_type", "unknown message type 'fly'"),
        ('{"type": "start", "sample_rate": 11025}', "bad_sample_rate", "11025"),
        ('{"type": "say"}', "bad_message", "'text' must be a string"),
        ('{"type": "say", "text": ""}', "bad_message", "nothing to say"),
        ('{"type": "say", "text": " \\n\\u0000 "}', "bad_message", "nothing to say"),
        ('{"type": "user_text", "text": " "}', "bad_message", "nothing to answer"),
        ('{"type": "user_text", "text": 3}', "bad_message", "'text' must be a string"),
        ('{"type": "say", "text": "' + "x" * 5000 + '"}', "too_large", "5000 characters"),
        ('{"type": "text", "text": "a", "final": "yes"}', "bad_message", "'final'"),
        ('{"type": "model", "model": ""}', "bad_message", "'model'"),
        ("x" * 70000, "too_large", "limit"),
        ('{"type": "start", "sample_rate": ' + "9" * 5000 + "}", "bad_json", "acceptable"),
        ("[" * 20000 + "]" * 20000, "bad_json", "nested too deeply"),
        (b'{"type": "say", "text": "\xff"}', "bad_json", "UTF-8"),
        ('{"type": "say", "text": "a\\ud800b"}', "bad_text", "lone surrogate U+D800"),
        ('{"type": "model", "model": "' + "m" * 500 + '"}', "bad_message", "at most 128"),
        ('{"type": "start", "sample_rate": true}', "bad_sample_rate", "True"),
        ('{"type": "start", "turn_detection": "ptt"}', "bad_message", "'turn_detection'"),
    ],
)
def test_bad_messages_name_the_problem(raw: str | bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse(raw)
    assert err.value.code == code
    assert words in str(err.value)


def test_control_characters_are_cleaned_from_spoken_text() -> None:
    assert parse('{"type": "say", "text": "a\\u0000b\\u0007c\\nd"}') == Say("a b c\nd")


def test_frame_sizes() -> None:
    assert [frame_bytes(r) for r in (16000, 44100, 48000)] == [640, 1764, 1920]


def test_sse_deltas() -> None:
    assert _sse_delta('data: {"choices": [{"delta": {"content": "Hi"}}]}') == "Hi"
    assert _sse_delta('data: {"choices": [{"delta": {"role": "assistant"}}]}') == ""
    assert _sse_delta(": keep-alive") == ""
    assert _sse_delta("") == ""
    assert _sse_delta("data: [DONE]") is None
    with pytest.raises(LLMError, match="malformed"):
        _sse_delta("data: {broken")
    with pytest.raises(LLMError, match="reported an error: The server is overloaded"):
        _sse_delta('data: {"error": {"message": "The server is overloaded", "code": 503}}')


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [item async for item in stream]


async def test_echo_bridge_streams_the_words_back() -> None:
    deltas = await collect(EchoBridge().reply("one two  three", []))
    assert deltas == ["one", " two", " three"]


async def test_replayable_text_replays_then_continues() -> None:
    async def source() -> AsyncIterator[str]:
        for part in ("a", "b", "c"):
            yield part

    text = ReplayableText(source())
    first = text.replay()
    assert await anext(first) == "a"
    assert await anext(first) == "b"
    assert await collect(text.replay()) == ["a", "b", "c"]  # a retry starts over
    assert text.text == "abc"


async def test_client_text_ends_at_final() -> None:
    feed = ClientText()
    feed.push("Hello", final=False)
    feed.push(" there", final=True)
    feed.push(" ignored", final=False)
    assert await asyncio.wait_for(collect(feed.deltas()), 1) == ["Hello", " there"]


def test_config_requires_a_key_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUPLEX_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="api_key: set --api-key"):
        build_config({})
    assert build_config({"dev": True}).dev
    monkeypatch.setenv("DUPLEX_API_KEY", "k")
    assert build_config({}).api_key == "k"


def test_config_llm_url_selects_the_openai_bridge() -> None:
    cfg = build_config({"dev": True, "llm_url": "http://127.0.0.1:9/v1"})
    assert cfg.llm == "openai"
    with pytest.raises(ConfigError, match="llm_url: required"):
        build_config({"dev": True, "llm": "openai"})
    with pytest.raises(ConfigError, match="vad_aggressiveness"):
        build_config({"dev": True, "vad_aggressiveness": 7})


def test_config_llm_url_and_asr_model_dir_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="llm_url: 'notaurl' must be an http"):
        build_config({"dev": True, "llm_url": "notaurl"})
    with pytest.raises(ConfigError, match=f"asr_model_dir: {tmp_path} holds no model.bin"):
        build_config({"dev": True, "asr_model_dir": str(tmp_path)})
    (tmp_path / "model.bin").write_bytes(b"")
    assert build_config({"dev": True, "asr_model_dir": str(tmp_path)}).asr_model_dir == tmp_path


def test_config_whispers_repetition_penalty_is_checked() -> None:
    assert build_config({"dev": True}).asr_repetition_penalty == 1.1
    assert build_config({"dev": True, "asr_repetition_penalty": 1}).asr_repetition_penalty == 1
    for bad in (0.5, 3):  # below 1 favours repeats; 2 is already far past what loops need
        with pytest.raises(ConfigError, match="asr_repetition_penalty"):
            build_config({"dev": True, "asr_repetition_penalty": bad})


def test_a_voice_clip_is_capped_and_must_be_long_enough() -> None:
    recorder = ClipRecorder(16000)
    frame = np.ones(320, np.int16)
    for _ in range(50 * 2):  # 2 s
        recorder.push(frame)
    with pytest.raises(ProtocolError, match=r"clip is 2.0 s; record or upload at least 3 s"):
        recorder.finish()
    for _ in range(50 * 40):  # 40 s more: kept up to the cap
        recorder.push(frame)
    clip = recorder.finish()
    assert clip.dtype == np.int16
    assert clip.size == MAX_CLIP_S * 16000
    reference = VoiceReference(clip.astype("<i2").tobytes(), 16000, "hello")
    assert reference.seconds == MAX_CLIP_S


async def test_a_finished_clip_is_in_use_before_the_client_hears_of_it() -> None:
    happened: list[str] = []
    ears = Ears()
    ears.words = "the clip's words"

    def use(reference: VoiceReference | None) -> None:
        happened.append("cleared" if reference is None else f"using {reference.text}")

    async def emit(event: Event) -> None:
        happened.append(type(event).__name__)

    clip = VoiceClip(ears, use, emit, "s1")
    with pytest.raises(ProtocolError, match="clone_start"):
        await clip.end()  # nothing recorded
    await clip.start(48000)
    assert clip.recorder is not None
    clip.recorder.push(np.ones(48000 * 4, np.int16))
    await clip.end()
    await clip.clear()
    assert happened == [
        "CloneRecording",
        "using the clip's words",
        "Voice",
        "cleared",
        "Voice",
    ]
    assert ears.heard == [4.0]  # transcribed at 16 kHz
