"""Whisper's decode, the pure parts: its encoder window, loops, token budget and doubt.

No model: the window's features come from faster-whisper's feature extractor on
noise, the tokens from a five-token tokenizer, the logits are written here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from duplex_orchestrator.whisper_decoding import (
    before_repetition,
    closing_step,
    generate_max_length,
    host_logits,
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


@pytest.mark.parametrize(
    ("audio_s", "pad_s", "step_s", "window_s"),
    [
        (2.4, 1.0, 5.0, 5.0),
        (4.0, 1.0, 5.0, 5.0),
        (4.1, 1.0, 5.0, 10.0),
        (2.4, 3.0, 5.0, 10.0),
        (12.0, 1.0, 5.0, 15.0),
        (29.5, 1.0, 5.0, 30.0),  # never past Whisper's 30 s
        (2.4, 1.0, 0.0, 30.0),  # step 0: the full window, as Whisper pads
    ],
)
def test_the_encoder_window_fits_the_utterance_in_steps(
    audio_s: float, pad_s: float, step_s: float, window_s: float
) -> None:
    assert window_frames(round(audio_s * 100), pad_s, step_s) == round(window_s * 100)


@pytest.mark.parametrize(
    ("audio_s", "pad_s", "step_s", "windows_s"),
    [
        (2.6, 2.0, 1.0, [5.0, 10.0, 30.0]),  # fitted, 3 s more padding in 5 s steps, 30 s
        (2.6, 3.0, 5.0, [10.0, 30.0]),  # the retry's window is the first one: tried once
        (26.0, 2.0, 1.0, [28.0, 30.0]),
        (2.6, 2.0, 0.0, [30.0]),  # Whisper's own window: nothing else to try
    ],
)
def test_a_looping_decode_is_tried_again_on_longer_windows_up_to_30_s(
    audio_s: float, pad_s: float, step_s: float, windows_s: list[float]
) -> None:
    windows = windows_to_try(round(audio_s * 100), pad_s, step_s)
    assert windows == [round(w * 100) for w in windows_s]


def test_the_window_is_padded_with_silence_as_whisper_was_trained_not_with_zeros() -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    rng = np.random.default_rng(1)
    speech = (0.3 * rng.standard_normal(16000)).astype(np.float32)  # 1 s
    features = window_features(FeatureExtractor(), speech, 500)  # a 5 s window
    assert features.shape == (80, 500)
    floor = features.max() - 2.0  # the log-mel floor: 8 (log10) below the peak, over 4
    assert np.allclose(features[:, 110:], floor)  # the padding, past the speech
    assert np.all(features[:, 110:] != 0.0)
    longer = window_features(FeatureExtractor(), np.tile(speech, 40), 3000)
    assert longer.shape == (80, 3000)  # cut to Whisper's 30 s


def test_a_looping_decode_is_recognised() -> None:
    assert looks_looped("What is the weather like? " * 8)
    assert looks_looped("How far is it to the sea? How far is it to the sea?")
    assert not looks_looped("What is the weather like in Paris today?")
    assert not looks_looped("")


@pytest.mark.parametrize(
    ("text", "cut", "said"),
    [
        ("Call my sister. Call my sister. Call", True, "Call my sister."),
        ("Call my sister. Call my sister.", False, "Call my sister."),
        ("How far is it? How far is it? How far is it?", False, "How far is it?"),
        ("Hi. Call my sister. Call my sister.", False, "Hi. Call my sister."),
        ("Call my sister. Call", False, None),  # ended by itself: the person said "Call"
        ("Call my sister. Then", True, None),  # cut, but not a repetition: try again
        ("Call my sister tonight.", True, None),
        # Its end said again, a loop too: the last word lies past the sound, and the
        # words would not read as complete (``EndOfTurn.last_word_min_s``).
        (
            "Can you buy flowers for my mother? Flowers for my mother?",
            False,
            "Can you buy flowers for my mother?",
        ),
        (
            "Can you buy flowers for my mother? For my mother? For",
            True,
            "Can you buy flowers for my mother?",
        ),
        ("Is it ready? Ready?", False, None),  # one word: kept
        ("Is it for my mother? For my father?", False, None),  # not its end
        ("", False, None),
    ],
)
def test_a_repeated_last_sentence_is_dropped_not_decoded_again(
    text: str, cut: bool, said: str | None
) -> None:
    assert before_repetition(text, cut=cut) == said


@pytest.mark.parametrize("budget", [1, 3, 4, 5, 16, 25, 100, 224])
def test_the_max_length_asked_of_ctranslate2_allows_the_whole_budget(budget: int) -> None:
    prompt = 4  # start of transcript, language, task, no timestamps
    max_length = generate_max_length(budget, prompt, 448)
    # CTranslate2's Whisper stops at half its max_length: asking for prompt + budget
    # would allow half the budget and never report a decode as cut short.
    assert new_token_cap(max_length, prompt) >= budget
    assert new_token_cap(max_length - 1, prompt) < budget  # and no more than needed


def test_the_token_budget_outlasts_fast_speech_and_cuts_a_loop_short() -> None:
    for seconds in (1, 2.5, 5, 10, 29):
        budget = token_budget(round(seconds * 100))
        assert budget >= 5 * seconds + 5  # above the 3-4.3 tokens a second measured
        assert budget <= 7 * seconds + 12  # a loop costs a few words' time, not seconds
    assert new_token_cap(generate_max_length(10**4, 4, 448), 4) == 224  # the model's limit


class TinyTokenizer:
    """Five tokens and the end of text, as faster-whisper's tokenizer decodes them."""

    pieces = (" what", "?", ".", "...", "?!")
    eot = len(pieces)

    def decode(self, tokens: list[int]) -> str:
        return "".join(self.pieces[t] for t in tokens)


def test_a_sentence_ends_on_its_punctuation_or_the_end_of_text_not_an_ellipsis() -> None:
    assert sentence_end_tokens(TinyTokenizer()) == [1, 2, 4, 5]  # "...": trailing off


def test_whispers_doubt_is_read_where_the_kept_text_ends_not_at_a_repetition() -> None:
    decode = TinyTokenizer().decode
    looped = [0, 1, 0, 1]  # " what? what?": the loop is dropped, "what?" kept
    assert closing_step(looped, "what?", decode) == 1  # the first "?", not the last
    assert closing_step(looped, "what? what?", decode) == 3
    assert closing_step([0], "what?", decode) is None  # no prefix says it


def test_the_probability_of_a_sentence_end_is_the_softmax_mass_of_its_tokens() -> None:
    logits = np.log(np.array([0.5, 0.2, 0.1, 0.15, 0.05], np.float32)) + 7.0
    assert probability_of(logits, [1, 2, 4]) == pytest.approx(0.35)
    suppressed = np.array([np.finfo(np.float32).min, 1.0, 1.0], np.float32)  # as CTranslate2
    assert probability_of(suppressed, [1]) == pytest.approx(0.5)


def test_whispers_doubt_is_read_before_the_repetition_penalty() -> None:
    """CTranslate2's returned logits carry its penalty on the tokens written so far (a
    positive logit divided, a negative one multiplied, once per token however often it
    was written): undone, the step's logits are the model's own."""
    own = np.array([4.0, -2.0, 3.0, 1.5, np.finfo(np.float32).min], np.float32)
    penalized = own.copy()
    penalized[[0, 1]] = np.array([4.0 / 1.1, -2.0 * 1.1], np.float32)
    restored = without_penalty(penalized, [1, 0, 1, 4], 1.1)
    np.testing.assert_allclose(restored[:4], own[:4], rtol=1e-6)
    assert restored[4] < -1e37  # a suppressed token stays out of reach
    assert probability_of(restored, [2]) == pytest.approx(probability_of(own, [2]))
    assert probability_of(penalized, [2]) > probability_of(own, [2])  # what it would be
    assert without_penalty(penalized, [], 1.1) is penalized
    assert without_penalty(penalized, [0], 1.0) is penalized


class LogitsOnTheGpu:
    """A decoder step's logits as CTranslate2 returns them from a GPU: float16 in device
    memory, with no ``__array_interface__`` for numpy to read."""

    device = "cuda"

    def __init__(self) -> None:
        import ctranslate2

        self.dtype = ctranslate2.DataType.float16
        self.moves: list[str] = []

    def to(self, dtype: Any) -> LogitsOnTheGpu:
        self.moves.append(f"to {dtype.name}")
        self.dtype = dtype
        return self

    def to_device(self, device: Any) -> Any:
        import ctranslate2

        self.moves.append(f"to_device {device.name}")
        return ctranslate2.StorageView.from_array(np.array([2.0, 0.5, -1.0], np.float32))


def test_a_steps_logits_are_read_as_float32_here_wherever_the_model_ran() -> None:
    import ctranslate2

    half = ctranslate2.StorageView.from_array(np.array([2.0, 0.5, -1.0], np.float16))
    assert half.dtype == ctranslate2.DataType.float16  # a GPU's compute type, on the CPU
    host = host_logits(half)
    assert host.dtype == np.float32
    assert host.tolist() == [2.0, 0.5, -1.0]
    on_gpu = LogitsOnTheGpu()
    assert np.asarray(on_gpu).dtype == object  # what reading it directly gave: no numbers
    assert host_logits(on_gpu).tolist() == [2.0, 0.5, -1.0]
    assert on_gpu.moves == ["to float32", "to_device cpu"]  # converted there, then copied
    assert probability_of(host_logits(LogitsOnTheGpu()), [0]) == pytest.approx(
        np.exp(2.0) / (np.exp(2.0) + np.exp(0.5) + np.exp(-1.0))
    )
