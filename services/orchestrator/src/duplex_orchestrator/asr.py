"""Speech recognition with faster-whisper; the default model is assembled from PyPI.

Whisper base is assembled from the two PyPI packages that ship it
(``whisper_model``); nothing is downloaded from a hub.

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
and only if that fails too on the full 30 s window. Fewer loops start at all: the
decoder's logits of tokens already written are divided by ``repetition_penalty``
(CTranslate2's; ``REPETITION_PENALTY`` by default), which lets the sentence's end win
over its start said again. Whisper's doubt (below) is read from the logits as they
were before that penalty (``without_penalty``): it keeps loops from starting, and is
no belief of the model's. The word error rate and latency of each choice are
measured by ``tests.bench.bench_asr``.

Forcing the words already heard as a decoder prefix (incremental decoding)
was measured and saves nothing here: CTranslate2 spends about as long on a
forced token as on a generated one. What shortens the wait instead is
starting early: the session transcribes at the first frames of silence
(``judging.TurnJudge.gap``), so the words are ready about when the pause is,
and abandons that work (``Wanted``) once the user speaks on.

Whisper also says how sure it is that the sentence ends where its words do:
``Transcript.ends_here`` is its probability, at the step that wrote the final
full stop or question mark, of any sentence end (or the end of the text)
rather than another word. Its language model has read many sentences: after
"What's the difference between" it expects more words even when the audio
stops, and puts a "?" there with less conviction than after a whole question.
The end-of-turn policy (``endpoint.EndOfTurn``) reads it beside the words.

And where its last word lies: cut where a person hesitates, Whisper often
completes the phrase ("Could you send an email to" becomes "... to me?").
Asked (``AlignWhen``), the transcript comes with an ``aligner`` that aligns the
kept text's tokens on the decode's own encoder output (the cross-attention
alignment of faster-whisper's word timestamps, a decoder pass of 20-50 ms on a
core) and gives where the last word starts (``Transcript.last_word_s``) beside
where the sound ends: a word Whisper added lies where the sound has already
stopped. It is a separate step so that the session can run it while the reply
is being prepared, not before.

One model serves every session: CTranslate2 runs ``workers`` transcriptions in
parallel (each on ``threads`` cores) and queues the rest, so no lock is needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from duplex_orchestrator.vad import last_sound_s
from duplex_orchestrator.whisper_decoding import (
    FULL_WINDOW_FRAMES,
    HOP,
    REPETITION_PENALTY,
    RETRY_PAD_S,
    as_float32,
    before_repetition,
    closing_step,
    generate_max_length,
    host_logits,
    last_word_start,
    looks_looped,
    new_token_cap,
    probability_of,
    sentence_end_tokens,
    token_budget,
    window_features,
    window_frames,
    windows_to_try,
    without_penalty,
)
from duplex_orchestrator.whisper_model import assemble_whisper_base, default_cache_dir
from duplex_protocol.cores import usable_cores

__all__ = [  # the decode's pure pieces and the model's assembly, re-exported: this module's API
    "FULL_WINDOW_FRAMES",
    "REPETITION_PENALTY",
    "RETRY_PAD_S",
    "AlignWhen",
    "SpeechToText",
    "Transcriber",
    "Transcript",
    "Wanted",
    "as_float32",
    "assemble_whisper_base",
    "before_repetition",
    "closing_step",
    "default_cache_dir",
    "default_workers",
    "generate_max_length",
    "host_logits",
    "last_word_start",
    "looks_looped",
    "new_token_cap",
    "probability_of",
    "sentence_end_tokens",
    "token_budget",
    "window_features",
    "window_frames",
    "windows_to_try",
    "without_penalty",
]


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float
    audio_seconds: float
    abandoned: bool = False
    """No longer wanted before it was done (see ``Wanted``): the text is empty."""
    ends_here: float | None = None
    """Whisper's probability that the sentence ends where the text does, at the step
    that wrote its final punctuation; None when the text has none."""
    last_word_s: float | None = None
    """Where Whisper's alignment puts the start of the text's last word, in seconds
    from the start of the audio; None when not asked for (``AlignWhen``) or the text
    has no word."""
    sound_end_s: float | None = None
    """Where the audio's last frame above the speech floor ends (``vad.last_sound_s``),
    in seconds; given with ``last_word_s``."""
    aligner: Callable[[], Transcript] | None = field(default=None, repr=False, compare=False)
    """Given when ``AlignWhen`` said yes: blocking, aligns the words on the audio (a
    decoder pass) and returns this transcript with ``last_word_s`` and ``sound_end_s``."""

    def aligned(self) -> Transcript:
        """Blocking: this transcript aligned (``aligner``), or itself if it has none."""
        return self.aligner() if self.aligner is not None else self

    @property
    def last_word_sound_s(self) -> float | None:
        """Seconds of sound under the last word: from its aligned start to the last
        sound. About none when Whisper wrote a word the audio does not hold ("Send a
        message to me." of "Send a message to"); None when not aligned."""
        if self.last_word_s is None or self.sound_end_s is None:
            return None
        return self.sound_end_s - self.last_word_s


Wanted = Callable[[], bool]
"""Asked between the steps of a transcription: False once its result can no longer be
used (a speculation the user spoke past), so the rest of the work is skipped."""
AlignWhen = Callable[[str, float | None], bool]
"""Asked with the decoded text and its ``ends_here``: whether the transcript should come
with an ``aligner`` for ``Transcript.last_word_s`` (a decoder pass, 20-50 ms on a core)."""


_NO_SPEECH, _LOW_LOGPROB = 0.5, -1.0


class SpeechToText(Protocol):
    """What a session needs of speech recognition (Whisper here, a fake in unit tests)."""

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text."""
        ...


def _always() -> bool:
    return True


def default_workers() -> int:
    """Parallel transcriptions: one per usable core up to 4, then one per two (the cores
    a container's CPU limit grants, not the node's: ``duplex_protocol.cores``).

    Measured on 2 cores (``tests.bench.bench_asr``): two single-threaded
    workers answer one speaker as fast as one two-threaded worker, and four
    speakers in half the time.
    """
    cores = usable_cores()
    return cores if cores <= 4 else cores // 2


@dataclass(frozen=True)
class _Decoded:
    text: str
    ended: bool
    """It ended by itself, not on the token budget."""
    tokens: list[int]
    logits: list[Any]
    """The decoder's logits at each step (CTranslate2 StorageViews): ``logits[i]`` chose
    ``tokens[i]``."""
    encoded: Any = None
    """The encoder's output the decode read (for the word alignment)."""
    window: int = 0
    """The encoder window, in mel frames."""


class Transcriber:
    """faster-whisper's model on CPU int8 by default (``device="cuda"`` for float16 on GPU).

    ``window_step_s`` / ``pad_s`` size the encoder window (see the module
    docstring; ``window_step_s=0`` decodes on Whisper's full 30 s window);
    ``repetition_penalty`` (1: none) keeps Whisper from saying the sentence again.
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
        repetition_penalty: float = REPETITION_PENALTY,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        path = model_dir or assemble_whisper_base()
        self.language = language
        self.workers = workers or default_workers()
        threads = threads or max(1, usable_cores() // self.workers)
        self.window_step_s, self.pad_s = window_step_s, pad_s
        self.repetition_penalty = repetition_penalty
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
        self._ends = sentence_end_tokens(self._tokenizer)
        self._end_set = frozenset(self._ends)
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

    def transcribe(
        self, audio16k: np.ndarray, wanted: Wanted | None = None, align: AlignWhen | None = None
    ) -> Transcript:
        """Blocking: int16 or float32 samples at 16 kHz → text. Thread-safe.

        ``wanted`` is asked before the encoder, before the decoder (most of the time
        on a CPU) and before a second pass; once it says no, the result is abandoned.
        ``align`` is asked once the text is decoded (see ``AlignWhen``).
        """
        started = time.perf_counter()
        samples = as_float32(audio16k)
        wanted = wanted or _always
        with self._busy_lock:
            self._busy += 1
        try:
            audio_frames = len(samples) // HOP
            windows = windows_to_try(audio_frames, self.pad_s, self.window_step_s)
            for attempt, window in enumerate(windows):
                budget = token_budget(min(audio_frames, window)) * (2 if attempt else 1)
                decoded = self._decode(samples, window, budget, wanted)
                if decoded is None:
                    seconds = time.perf_counter() - started
                    return Transcript("", seconds, len(samples) / 16000, abandoned=True)
                last: _Decoded = decoded
                text = last.text
                if (said := before_repetition(text, cut=not last.ended)) is not None:
                    text = said
                if said is not None or (last.ended and not looks_looped(text)):
                    break
            # The token that closes the kept text: where Whisper's doubt is read and
            # what the alignment covers.
            step = closing_step(last.tokens, text, self._tokenizer.decode) if text else None
            ends_here = self._ends_here(last, step)
        finally:
            with self._busy_lock:
                self._busy -= 1
        seconds = time.perf_counter() - started
        heard = Transcript(text, seconds, len(samples) / 16000, ends_here=ends_here)
        if step is None or align is None or not wanted() or not align(text, ends_here):
            return heard

        def aligner(closing: int = step, decoded: _Decoded = last) -> Transcript:
            return self._aligned(heard, decoded, closing, audio_frames, audio16k)

        return replace(heard, aligner=aligner)

    def _aligned(
        self, transcript: Transcript, decoded: _Decoded, step: int, frames: int, audio: np.ndarray
    ) -> Transcript:
        """``transcript`` with where its last word starts and where the sound ends."""
        with self._busy_lock:
            self._busy += 1
        try:
            last_word_s = self._last_word_s(decoded, step, frames)
        finally:
            with self._busy_lock:
                self._busy -= 1
        sound_end_s = last_sound_s(audio)
        return replace(transcript, last_word_s=last_word_s, sound_end_s=sound_end_s, aligner=None)

    def _ends_here(self, decoded: _Decoded, step: int | None) -> float | None:
        """Whisper's probability of a sentence end at ``step``, the token that closes the
        kept text (the decode's text, or the part of it before a repetition)."""
        if step is None or decoded.tokens[step] not in self._end_set:
            return None  # no final punctuation of its own (or an empty text)
        logits = host_logits(decoded.logits[step])
        written = decoded.tokens[:step]
        return probability_of(without_penalty(logits, written, self.repetition_penalty), self._ends)

    def _last_word_s(self, decoded: _Decoded, step: int, audio_frames: int) -> float | None:
        """Where the alignment of the kept text's tokens (up to ``step``) on the audio puts
        its last word's start (Whisper's cross-attention, as faster-whisper's word
        timestamps: 20-50 ms on a core)."""
        aligned = self._model.find_alignment(
            self._tokenizer, [decoded.tokens[: step + 1]], decoded.encoded,
            min(audio_frames, decoded.window),
        )  # fmt: skip
        return last_word_start(aligned[0]) if aligned else None

    def _decode(
        self, samples: np.ndarray, window: int, budget: int, wanted: Wanted
    ) -> _Decoded | None:
        """Greedy decode of at most ``budget`` tokens on a ``window``-frame encoder
        input, or None when ``wanted`` says no before the encoder or the decoder."""
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
            repetition_penalty=self.repetition_penalty,
            return_scores=True,
            return_logits_vocab=True,  # for ends_here: about 2 ms a decode
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
            return _Decoded("", True, [], [])
        ended = len(tokens) < new_token_cap(max_length, len(self._prompt))
        text = self._tokenizer.decode(tokens).strip()
        return _Decoded(text, ended, tokens, result.logits[0], encoded, window)

    def _no_speech_prob(self, encoded: Any) -> float:
        """Whisper's probability of "no speech" after its start token, on its own."""
        result = self._model.model.generate(
            encoded, [self._prompt], beam_size=1, max_length=len(self._prompt) + 1,
            return_no_speech_prob=True,
        )[0]  # fmt: skip
        return float(result.no_speech_prob)
