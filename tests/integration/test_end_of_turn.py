"""The real end-of-turn judges and the fitted Whisper window, on spoken questions.

Smart Turn v3.2 runs from the installed pipecat-ai package (``make install``);
Whisper base from its PyPI parts. Speech is Piper's and Kokoro's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jiwer
import numpy as np
import pytest

from duplex_orchestrator.app import make_transcriber
from duplex_orchestrator.asr import (
    AlignWhen,
    Transcriber,
    Transcript,
    as_float32,
    token_budget,
    window_frames,
)
from duplex_orchestrator.config import build_config
from duplex_orchestrator.endpoint import EndOfTurn, Verdict, transcript_complete
from duplex_orchestrator.smart_turn import SmartTurn
from tests.bench.bench_vad import hiss, keyboard, music, to_int16
from tests.support.orchestrator import cough, words_of
from tests.support.speech import SPEAKERS, speech_16k
from tests.support.whisper import DEFAULT_DIR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurn:
    return SmartTurn()


def test_smart_turn_hears_a_finished_question_and_an_unfinished_thought(
    smart_turn: SmartTurn,
) -> None:
    finished = speech_16k("What time does the museum open tomorrow?", tail_s=0.2)
    unfinished = speech_16k("So, um, I was thinking that", tail_s=0.2)
    assert smart_turn.probability(finished) > 0.5
    assert smart_turn.probability(unfinished) < 0.5
    # Only the last 8 s count: a long silence before the question changes nothing.
    longer = np.concatenate([np.zeros(16000 * 10, np.int16), finished])
    assert smart_turn.probability(longer) == pytest.approx(
        smart_turn.probability(finished), abs=1e-4
    )


def test_smart_turn_is_sure_a_question_cut_at_a_filler_is_unfinished(
    smart_turn: SmartTurn,
) -> None:
    """Kokoro's "What's a good place to, um, go hiking near here?" cut before "go": a
    person who says "um" and pauses. Whisper may read it as a whole question ("...
    place to arm?"); Smart Turn is sure it is not, below ``sure_unfinished``, so a
    doubted question waits a statement's doubt. A whole question it calls complete."""
    from tests.bench.bench_end_of_turn import cut_before_rest

    voice = "kokoro-82m-en-kumo"
    aligner, _ = _whispers()
    cut = cut_before_rest(aligner, "What's a good place to", "um", "go hiking near here?", voice)
    assert cut is not None
    pause = np.zeros(3200, np.int16)
    policy = EndOfTurn()
    filler = smart_turn.probability(np.concatenate([cut, pause]))
    whole = smart_turn.probability(speech_16k("Can you turn the volume up?", voice=voice))
    print(f"Smart Turn: {filler:.3f} at the filler, {whole:.3f} for a whole question")
    assert filler < policy.sure_unfinished
    assert policy.doubts_long("What's a good place to arm?", filler)
    assert whole >= policy.threshold


@cache
def _whispers() -> tuple[Any, Transcriber]:
    """Whisper for word timestamps (to cut a phrase) and duplex's transcriber, loaded once."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(DEFAULT_DIR), compute_type="int8"), Transcriber(DEFAULT_DIR, workers=1)


def hesitated_and_finished(
    first: str, rest: str, whole: str, align: AlignWhen | None = None
) -> tuple[Transcript, Transcript]:
    """Whisper's transcripts at a 200 ms pause: of ``first`` cut from ``first rest`` (a
    hesitation, in the voice of a sentence going on), and of the whole turn ``whole``.
    Kokoro's voice: Piper's varies from one synthesis to the next, and with it Whisper."""
    from tests.bench.bench_end_of_turn import cut_head

    voice = "kokoro-82m-en-kumo"
    aligner, whisper = _whispers()
    cut = cut_head(aligner, first, rest, voice)
    assert cut is not None
    pause = np.zeros(3200, np.int16)
    hesitated = whisper.transcribe(np.concatenate([cut, pause]), align=align).aligned()
    finished = whisper.transcribe(
        np.concatenate([speech_16k(whole, voice=voice), pause]), align=align
    ).aligned()
    return hesitated, finished


def test_whisper_doubts_a_question_end_where_a_sentence_was_cut_not_where_it_ended() -> None:
    """A question cut where a person would hesitate: Whisper writes "?" there, but with
    less conviction than after a whole one, so the words no longer read as complete
    (``EndOfTurn.question_end``)."""
    policy = EndOfTurn()
    hesitated, finished = hesitated_and_finished(
        "Is it possible to change", "my seat on the plane?",
        "Can you recommend a good book about history?",
    )  # fmt: skip
    assert transcript_complete(hesitated.text), hesitated.text  # the rules alone: complete
    assert hesitated.ends_here is not None
    assert finished.ends_here is not None
    assert hesitated.ends_here < policy.question_end < 0.95 < finished.ends_here
    assert not policy.words_complete(hesitated.text, hesitated.ends_here)
    assert policy.words_complete(finished.text, finished.ends_here)


def test_a_word_whisper_added_at_a_hesitation_has_no_sound_under_it() -> None:
    """Cut after "Could you send an email to", Whisper hears "... to me?", sure of its
    "?": the rules and its doubt read that as complete. Aligned on the audio, "me"
    starts where the sound has stopped; the whole question's last word has its sound."""
    policy = EndOfTurn()
    hesitated, finished = hesitated_and_finished(
        "Could you send an email to", "my boss about the meeting?",
        "Could you send an email to my boss?", align=policy.wants_last_word,
    )  # fmt: skip
    assert words_of(hesitated.text).endswith("email to me"), hesitated.text
    assert policy.words_complete(hesitated.text, hesitated.ends_here), hesitated.ends_here
    assert hesitated.last_word_sound_s is not None
    assert finished.last_word_sound_s is not None
    assert hesitated.aligner is None  # aligned once: nothing left to align
    assert hesitated.last_word_sound_s < policy.last_word_min_s < finished.last_word_sound_s
    assert finished.last_word_sound_s > 0.15  # "boss" is heard, with room to spare
    print(f"sound under the last word: {hesitated.last_word_sound_s:+.3f} s of {hesitated.text!r}, "
          f"{finished.last_word_sound_s:+.3f} s of {finished.text!r}")  # fmt: skip
    assert not policy.words_complete(
        hesitated.text, hesitated.ends_here, hesitated.last_word_sound_s
    )
    assert policy.words_complete(finished.text, finished.ends_here, finished.last_word_sound_s)


def test_whisper_doubts_a_statement_cut_where_a_person_hesitates() -> None:
    """Cut after "Remind me tomorrow morning to", Whisper hears a whole sentence,
    "Remind me tomorrow morning.", and the rules read it complete; but its language
    model still expects more there, far more than after a whole statement, so the
    turn is doubted even where Smart Turn is sure, and waits a statement's doubt."""
    policy = EndOfTurn()
    hesitated, finished = hesitated_and_finished(
        "Remind me tomorrow morning to", "call the dentist.",
        "Please remind me to call my sister tonight.", align=policy.wants_last_word,
    )  # fmt: skip
    assert words_of(hesitated.text) == "remind me tomorrow morning", hesitated.text
    assert policy.words_complete(hesitated.text, hesitated.ends_here, hesitated.last_word_sound_s)
    assert hesitated.ends_here is not None
    assert finished.ends_here is not None
    print(f"Whisper's sentence end: {hesitated.ends_here:.2f} after {hesitated.text!r}, "
          f"{finished.ends_here:.2f} after {finished.text!r}")  # fmt: skip
    assert hesitated.ends_here < policy.statement_end < finished.ends_here
    sure = 0.9  # Smart Turn's "complete": the words' doubt is enough
    assert (
        policy.decide(hesitated.text, sure, hesitated.ends_here, hesitated.last_word_sound_s)
        is Verdict.DOUBTED
    )
    assert (
        policy.decide(finished.text, sure, finished.ends_here, finished.last_word_sound_s)
        is Verdict.COMPLETE
    )


@pytest.mark.parametrize("voice", SPEAKERS)
def test_the_fitted_window_hears_what_the_full_window_hears(voice: str) -> None:
    questions = [
        "Please remind me to call my sister tonight.",
        "Could you book a table for two at seven o'clock?",
    ]
    fitted = Transcriber(DEFAULT_DIR, workers=1)  # the defaults
    full = Transcriber(DEFAULT_DIR, workers=1, window_step_s=0.0)
    for text in questions:
        audio = speech_16k(text, voice=voice)
        heard_fitted, heard_full = fitted.transcribe(audio).text, full.transcribe(audio).text
        error_fitted = jiwer.wer(words_of(text), words_of(heard_fitted))
        error_full = jiwer.wer(words_of(text), words_of(heard_full))
        assert error_fitted <= error_full + 0.1, (heard_fitted, heard_full)
        assert transcript_complete(heard_fitted), heard_fitted  # Whisper's final punctuation


def test_a_decode_cut_by_its_budget_says_so_and_one_within_it_does_not() -> None:
    """A raw decode (no loop handling), so on Kokoro's voice: Piper's synthesis varies
    from run to run, and on some the decode says the sentence twice."""
    whisper = Transcriber(DEFAULT_DIR, workers=1)
    text = "Please remind me to call my sister tonight."
    samples = as_float32(speech_16k(text, voice="kokoro-82m-en-kumo"))
    window = window_frames(len(samples) // 160, pad_s=3.0, step_s=5.0)
    cut = whisper._decode(samples, window, budget=6, wanted=lambda: True)
    whole = whisper._decode(samples, window, budget=40, wanted=lambda: True)
    assert cut is not None
    assert whole is not None
    assert (cut.ended, whole.ended) == (False, True)
    assert cut.text == "Please remind me to call my", cut.text  # six tokens, as budgeted
    assert words_of(whole.text) == words_of(text)
    assert len(whole.logits) > len(whole.tokens)  # a step for each token, and the end


@pytest.mark.parametrize("voice", SPEAKERS)
def test_questions_whisper_said_twice_on_a_fitted_window_are_decoded_once(voice: str) -> None:
    """Whisper loops on a short window ("Please remind me to call my sister tonight.
    Please remind me to call my ...") until the token budget (~0.2 s more on a core) or
    without punctuation, which a second pass decodes again (~0.5 s more). The
    orchestrator's repetition penalty ends those decodes at the sentence's end instead.
    (Whether a voice loops without it depends on the CPU's numerics: on the 2-core AVX2
    machine of 2026-12-04 two of the three voices did, one on each question.)"""
    whisper = make_transcriber(build_config({"dev": True, "asr_model_dir": DEFAULT_DIR}))
    for text in (
        "Please remind me to call my sister tonight.",
        "Turn off the lights in the kitchen, please.",
    ):
        samples = as_float32(speech_16k(text, lead_s=0.3, tail_s=0.3, voice=voice))
        frames = len(samples) // 160
        window = window_frames(frames, whisper.pad_s, whisper.window_step_s)
        decoded = whisper._decode(samples, window, token_budget(frames), lambda: True)
        assert decoded is not None
        assert decoded.ended, decoded.text  # by itself, not cut by the budget
        assert jiwer.wer(words_of(text), words_of(decoded.text)) <= 0.2, decoded.text


def test_a_transcription_no_longer_wanted_stops_before_the_decoder() -> None:
    whisper = Transcriber(DEFAULT_DIR, workers=1)
    audio = speech_16k("Please remind me to call my sister tonight.")
    asked: list[bool] = []

    def wanted_until_encoded() -> bool:  # yes before the encoder, no before the decoder
        asked.append(not asked)
        return asked[-1]

    abandoned = whisper.transcribe(audio, wanted_until_encoded)
    assert (abandoned.abandoned, abandoned.text, asked) == (True, "", [True, False])
    whole = whisper.transcribe(audio, lambda: True)
    assert not whole.abandoned
    assert words_of(whole.text) == words_of("Please remind me to call my sister tonight.")


def test_noise_is_heard_as_no_words_and_speech_as_its_words() -> None:
    """Whisper makes words of noise ("I'm sorry." of music, "You" of a cough); its
    no-speech test, asked only of unlikely texts, drops them."""
    whisper = Transcriber(DEFAULT_DIR, workers=1)
    noises = {
        "cough": cough(),
        "keyboard": to_int16(keyboard(2.0)),
        "music": to_int16(music(2.0, -25.0, seed=5)),
        "hiss": to_int16(hiss(2.0)),
    }
    heard = {name: whisper.transcribe(audio).text for name, audio in noises.items()}
    assert heard == dict.fromkeys(noises, ""), heard
    spoken = whisper.transcribe(speech_16k("What time does the museum open tomorrow?"))
    assert words_of(spoken.text) == words_of("What time does the museum open tomorrow?")
