"""Silero VAD (faster-whisper's ONNX file) on a live stream: the same probabilities as a
whole-file pass, speech turns found in real speech, noise and silence left alone."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_orchestrator.app import speech_classifier
from duplex_orchestrator.config import ConfigError, build_config
from duplex_orchestrator.silero import CHUNK, SileroClassifier, SileroModel, find_model
from duplex_orchestrator.vad import SpeechDetector, Vad, VadEvent, WebRtcClassifier
from tests.support.orchestrator import cough, silence
from tests.support.speech import speech_16k


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def frames(audio: np.ndarray) -> list[np.ndarray]:
    return [audio[i : i + 320] for i in range(0, len(audio) - 319, 320)]


def test_streaming_frame_by_frame_gives_the_probabilities_of_a_whole_file_pass(
    model: SileroModel,
) -> None:
    from faster_whisper.vad import SileroVADModel

    audio = speech_16k("What is the weather like today?")
    whole = SileroVADModel(str(find_model()))(
        audio[: len(audio) - len(audio) % CHUNK].astype(np.float32) / 32768.0
    ).reshape(-1)
    assert max(whole) > 0.9  # it does hear speech
    stream, compared = model.classifier(), 0
    for k, frame in enumerate(frames(audio)):
        stream.is_speech(frame)
        chunks = (k + 1) * 320 // CHUNK  # whole 512-sample chunks seen so far
        if 0 < chunks <= len(whole):
            assert stream.probability == pytest.approx(float(whole[chunks - 1]), abs=1e-4)
            compared += 1
    assert compared > 100


def test_speech_starts_and_ends_a_turn_soon_after_the_speech_does(
    model: SileroModel,
) -> None:
    vad = Vad(model.classifier(), SpeechDetector(onset_frames=4, end_frames=25))
    # speech_16k leads with 0.5 s of silence of its own: the speech starts at 1.0 s.
    audio = np.concatenate([silence(0.5), speech_16k("Please book a table for two."), silence(1.0)])
    events = [(i, r.event) for i, (_, r) in enumerate(vad.feed(audio)) if r.event]
    kinds = [e for _, e in events if e is not VadEvent.SPEECH_PAUSE]
    assert kinds == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    onset_s = events[0][0] * 0.02
    assert 1.0 <= onset_s <= 1.0 + 0.4  # after the silence, soon after the speech starts


@pytest.mark.parametrize(
    "noise",
    [
        pytest.param(lambda: cough(), id="cough"),
        pytest.param(lambda: np.zeros(32000, np.int16), id="digital-silence"),
        pytest.param(
            lambda: (np.random.default_rng(3).standard_normal(32000) * 300).astype(np.int16),
            id="hiss",
        ),
    ],
)
def test_noise_is_not_speech(model: SileroModel, noise: object) -> None:
    assert callable(noise)
    audio = np.concatenate([silence(0.3), noise(), silence(0.5)])
    vad = Vad(model.classifier())
    assert [r.event for _, r in vad.feed(audio) if r.event] == []


@pytest.mark.parametrize("phase", range(8))  # where the word falls on the 32 ms chunks
def test_a_quiet_short_word_after_a_turn_is_heard_as_with_a_fresh_state(
    model: SileroModel, phase: int
) -> None:
    """A quiet "Hello." (-44 dBFS, as on a telephone line) three seconds after a turn:
    with the state the turn left, Silero heard it at 2 of these 8 phases (a telephone
    call's "hello" after a turn: its first chunk scored 0.01 where a fresh state
    scores 0.36); the state now starts afresh after each second of non-speech."""
    turn = speech_16k("I'd like to book a table for two, please.", lead_s=0.3, tail_s=0.0)
    turn = np.concatenate([turn, np.zeros(-len(turn) % 320, np.int16)])
    word = speech_16k("Hello.", lead_s=0.0, tail_s=0.0).astype(np.float64)
    word = word / np.sqrt(np.mean(word**2)) * 32768 * 10 ** (-44 / 20)
    pause = silence(3.0 + phase * 0.02)
    audio = np.concatenate([turn, pause, word.astype(np.int16), silence(0.5)])
    vad = Vad(model.classifier(), SpeechDetector(onset_frames=2, end_frames=25))
    starts = [i for i, (_, r) in enumerate(vad.feed(audio)) if r.event is VadEvent.SPEECH_START]
    after = (len(turn) + len(pause)) // 320
    assert [i for i in starts if i >= after], starts  # the word began a turn of its own
    fresh = Vad(model.classifier(), SpeechDetector(onset_frames=2, end_frames=25))
    alone = np.concatenate([silence(0.3), word.astype(np.int16), silence(0.5)])
    assert any(r.event is VadEvent.SPEECH_START for _, r in fresh.feed(alone))


def test_each_stream_keeps_its_own_state(model: SileroModel) -> None:
    speech = speech_16k("Turn off the lights.")
    quiet = np.zeros_like(speech)
    a, b = model.classifier(), model.classifier()
    heard_a = [a.is_speech(f) for f in frames(speech)]
    heard_b = [b.is_speech(f) for f in frames(quiet)]
    assert any(heard_a)
    assert not any(heard_b)
    fresh = model.classifier()
    assert [fresh.is_speech(f) for f in frames(speech)] == heard_a


def test_the_threshold_is_checked() -> None:
    with pytest.raises(ValueError, match=r"between 0\.15 and 1"):
        SileroModel(threshold=0.1)
    with pytest.raises(ConfigError, match="silero_threshold"):
        build_config({"dev": True, "silero_threshold": 1.5})
    with pytest.raises(ConfigError, match="vad"):
        build_config({"dev": True, "vad": "energy"})


def test_the_configuration_picks_the_classifier() -> None:
    assert isinstance(
        speech_classifier(build_config({"dev": True, "vad": "silero"}))(), SileroClassifier
    )
    assert isinstance(
        speech_classifier(build_config({"dev": True, "vad": "webrtc"}))(), WebRtcClassifier
    )


def test_silero_is_the_default_with_a_shorter_onset_than_webrtcvad_needs() -> None:
    assert build_config({"dev": True}).vad == "silero"
    assert build_config({"dev": True}).speech_onset_ms() == 40
    assert build_config({"dev": True, "vad": "webrtc"}).speech_onset_ms() == 80
    assert build_config({"dev": True, "vad_onset_ms": 100}).speech_onset_ms() == 100
