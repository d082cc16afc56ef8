"""``duplex talk``'s client: which WAVs it reads, and when a reply may still come."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duplex_orchestrator.client import Conversation, read_wav_16k


def _wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def test_a_stereo_48k_wav_is_mixed_down_and_resampled(tmp_path: Path) -> None:
    left = np.full(4800, 1000, np.int16)
    stereo = np.stack([left, left * 3], axis=1).reshape(-1)
    audio = read_wav_16k(_wav(tmp_path / "s.wav", stereo, 48_000, channels=2))
    assert audio.dtype == np.int16
    assert abs(audio.size - 1600) <= 2
    assert abs(int(np.median(audio)) - 2000) <= 20


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"RIFF1234WAVEjunk", "not a PCM16 WAV file"),
        (b"", "not a PCM16 WAV file"),
        (b"ID3\x03\x00 an mp3", "not a PCM16 WAV file"),
    ],
)
def test_a_file_that_is_not_a_wav_is_a_clear_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        read_wav_16k(path)


def test_an_empty_or_24_bit_wav_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no audio"):
        read_wav_16k(_wav(tmp_path / "e.wav", np.zeros(0, np.int16), 16_000))
    with pytest.raises(ValueError, match="need 16-bit PCM, got 24-bit"):
        read_wav_16k(_wav(tmp_path / "w.wav", np.zeros(30, np.uint8), 16_000, width=3))


def _convo(*events: dict[str, Any]) -> Conversation:
    return Conversation(events=list(events))


SPEECH = {"type": "vad", "state": "speech_start"}
END = {"type": "vad", "state": "speech_end"}


@pytest.mark.parametrize(
    ("events", "open_"),
    [
        ((), False),
        ((SPEECH,), True),
        ((SPEECH, END), True),  # the words are not in yet
        ((SPEECH, END, {"type": "asr", "text": "", "final": True}), False),  # a cough
        ((SPEECH, END, {"type": "asr", "text": " Hi.", "final": False}), True),
        ((SPEECH, END, {"type": "asr", "text": " Hi.", "final": True}), True),  # reply coming
        ((SPEECH, {"type": "asr", "text": " Hi.", "final": True}, {"type": "tts_end"}), False),
        # a barge-in with words: the old reply's end comes after the new words
        (
            (
                SPEECH,
                {"type": "asr", "text": " Stop, tell me another.", "final": True},
                {"type": "tts_end", "interrupted": True},
            ),
            True,
        ),
        ((SPEECH, {"type": "error", "code": "no_worker", "retrying": True}), True),
        ((SPEECH, {"type": "error", "code": "asr_failed"}), False),
        # a turn ended on a cough, then the user spoke again
        ((SPEECH, {"type": "asr", "text": "", "final": True}, SPEECH), True),
        # a turn ended too early: the user goes on and its reply is stopped
        (
            (
                SPEECH,
                {"type": "asr", "text": " I'd like to book.", "final": True},
                SPEECH,
                {"type": "tts_end", "interrupted": True},
            ),
            True,
        ),
    ],
)
def test_a_turn_is_open_until_heard_as_nothing_or_answered(
    events: tuple[dict[str, Any], ...], open_: bool
) -> None:
    assert _convo(*events).turn_open() is open_
