"""The pure pieces of a Whisper decode: encoder windows, token budgets, loops, sentence ends.

No model and no I/O here: ``asr.Transcriber`` runs the model and asks these
what window to encode, how many tokens to allow, whether the decode looped,
and how sure Whisper was that the sentence ended (see ``asr``'s docstring);
``host_logits`` only brings a step's logits from where the model ran.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
_FRAMES_PER_S = 100
HOP = 160  # samples per mel frame at 16 kHz
_MAX_COMPRESSION = 2.4  # Whisper's own threshold for a looping decode
RETRY_PAD_S = 3.0
REPETITION_PENALTY = 1.1
"""CTranslate2's penalty on the logits of tokens a decode already wrote: the sentence's
end then wins over its start said again (Whisper's loop on a short window), and a word
said twice rarely changes (once in 60 questions, "the kitchen" heard as "a kitchen";
the word error rate the same: ``tests.bench.bench_asr``'s ``fitted-no-penalty``)."""


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
    padded = np.pad(samples, (0, max(0, window * HOP - len(samples))))
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
    """The text before Whisper began saying its last sentence (or its end) again, or None.

    "Call my sister. Call my sister. Call" is a loop on a short window; what
    was said is "Call my sister." So is a sentence of two words or more that
    repeats the end of the one before ("... flowers for my mother? Flowers for
    my mother?"). When the decode was ``cut`` by its token budget, a last
    fragment that begins the previous sentence again counts. Someone who
    really says a sentence (or its end) twice loses the repetition, not a word
    of meaning.
    """
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    for i in range(1, len(sentences)):
        said, again = sentences[i - 1].lower(), sentences[i].lower()
        its_end = len(again.split()) >= 2 and said.endswith(f" {again}")
        if again == said or its_end or (cut and i == len(sentences) - 1 and said.startswith(again)):
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


def sentence_end_tokens(tokenizer: Any) -> list[int]:
    """The token ids that end a sentence: ".", "?", "!" and their runs ("?!"), not an
    ellipsis (a sentence trailing off), and the end of the text."""
    ends = []
    for token in range(tokenizer.eot):
        piece = tokenizer.decode([token]).strip()
        if piece and set(piece) <= set(".?!") and ".." not in piece:
            ends.append(token)
    return [*ends, tokenizer.eot]


def without_penalty(logits: np.ndarray, written: list[int], penalty: float) -> np.ndarray:
    """One decoder step's logits as the model gave them, before CTranslate2's repetition
    ``penalty`` on the tokens ``written`` before that step (a positive logit divided by
    it, a negative one multiplied), which its returned logits include. Whisper's doubt
    is read from these: the penalty keeps a loop from starting, not a belief."""
    if penalty == 1.0 or not written:
        return logits
    restored = logits.astype(np.float32, copy=True)
    ids = np.unique(np.asarray(written, dtype=np.int64))
    values = restored[ids]
    positive = values > 0
    values[positive] *= penalty
    values[~positive] /= penalty
    restored[ids] = values
    return restored


def host_logits(step: Any) -> np.ndarray:
    """One decoder step's logits (a CTranslate2 ``StorageView``) as float32 numbers here.

    CTranslate2 leaves them where the model ran, in its compute type: on a GPU,
    float16 in device memory, which numpy cannot read (``np.asarray`` would wrap the
    object itself, and every sentence end would fail to be read)."""
    import ctranslate2

    if step.dtype != ctranslate2.DataType.float32:
        step = step.to(ctranslate2.DataType.float32)
    if str(step.device) != "cpu":
        step = step.to_device(ctranslate2.Device.cpu)
    return np.asarray(step)


def probability_of(logits: np.ndarray, tokens: list[int]) -> float:
    """The softmax mass of ``tokens`` in one decoder step's logits."""
    shifted = logits.astype(np.float64) - logits.max()
    weights = np.exp(shifted)
    return float(weights[tokens].sum() / weights.sum())


def closing_step(tokens: list[int], text: str, decode: Callable[[list[int]], str]) -> int | None:
    """The index of the token that closes ``text``: the whole decode's text, or the part
    of it kept before a repetition ("Call my sister." of "Call my sister. Call my
    sister."); None when no prefix of the tokens decodes to it."""
    for step in range(len(tokens)):
        if decode(tokens[: step + 1]).strip() == text:
            return step
    return None


_WORD = re.compile(r"[^\W_]")


def last_word_start(aligned: list[dict[str, Any]]) -> float | None:
    """The start, in seconds, of the last word (not punctuation) of faster-whisper's
    word alignment (``WhisperModel.find_alignment``: dicts with ``word`` and
    ``start``); None when it has no word."""
    for word in reversed(aligned):
        if _WORD.search(word["word"]):
            return float(word["start"])
    return None
