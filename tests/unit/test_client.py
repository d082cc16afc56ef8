"""``duplex talk``'s client: which audio files it reads, and when a reply may still come."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from duplex_orchestrator.client import Conversation, read_audio_16k, text_pieces
from duplex_orchestrator.duplex_command import main


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
    audio = read_audio_16k(_wav(tmp_path / "s.wav", stereo, 48_000, channels=2))
    assert audio.dtype == np.int16
    assert abs(audio.size - 1600) <= 2
    assert abs(int(np.median(audio)) - 2000) <= 20


def _tone(rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * 440 * t)


def _encoded(path: Path, tone: np.ndarray, rate: int, codec: str, layout: str) -> Path:
    """The tone written by FFmpeg itself, as an editor would save it."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        channels = 2 if layout == "stereo" else 1
        planes = np.repeat(tone[None, :], channels, axis=0).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "codec", "rate", "layout"),
    [
        ("float.wav", "pcm_f32le", 44_100, "mono"),  # Audacity's default export
        ("deep.wav", "pcm_s24le", 48_000, "stereo"),
        ("voice.flac", "flac", 22_050, "mono"),
    ],
)
def test_float_24_bit_and_compressed_audio_is_read(
    tmp_path: Path, name: str, codec: str, rate: int, layout: str
) -> None:
    audio = read_audio_16k(_encoded(tmp_path / name, _tone(rate), rate, codec, layout))
    assert audio.dtype == np.int16
    assert abs(audio.size - 8000) <= 400
    peak = np.abs(audio[1000:-1000].astype(np.int32)).max()
    assert abs(peak - 16384) < 1000, peak


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"RIFF1234WAVEjunk", "not an audio file FFmpeg can read"),
        (b"", "not an audio file FFmpeg can read"),
        (b"ID3\x03\x00 an mp3", "not an audio file FFmpeg can read"),
        (b"just some words, not audio at all\n" * 40, "not an audio file FFmpeg can read"),
    ],
)
def test_a_file_that_is_not_audio_is_a_clear_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        read_audio_16k(path)


def test_an_empty_wav_is_a_clear_error_and_a_missing_file_or_folder_an_os_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="holds no audio"):
        read_audio_16k(_wav(tmp_path / "e.wav", np.zeros(0, np.int16), 16_000))
    with pytest.raises(OSError, match="No such file"):
        read_audio_16k(tmp_path / "missing.wav")
    with pytest.raises(OSError, match="Is a directory"):
        read_audio_16k(tmp_path)


@pytest.mark.parametrize(
    ("text", "size", "pieces"),
    [
        ("Short.", 10, ["Short."]),
        ("One two three four.", 10, ["One two ", "three ", "four."]),
        ("abcdefghijklmnop", 5, ["abcde", "fghij", "klmno", "p"]),  # no space: cut anyway
        (" leading and trailing ", 9, [" leading ", "and ", "trailing "]),
    ],
)
def test_a_text_past_one_messages_limit_is_cut_at_spaces(
    text: str, size: int, pieces: list[str]
) -> None:
    assert text_pieces(text, size) == pieces
    assert "".join(pieces) == text
    assert all(len(piece) <= size for piece in pieces)


@pytest.mark.parametrize("command", [["say", "Hi."], ["talk", "--wav", "question.wav"]])
def test_an_out_path_in_no_folder_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """It used to be a traceback once the reply had come. Port 1 of loopback answers
    nothing: a client that tried to connect would say so instead."""
    out = tmp_path / "no" / "reply.wav"
    with pytest.raises(SystemExit) as done:
        main([*command, "--out", str(out), "--url", "ws://127.0.0.1:1/ws"])
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert err == f"duplex {command[0]}: cannot write {out}: no folder {out.parent}\n"


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
