"""Framing, resampling, loudness and the per-utterance audio pipeline."""

import numpy as np
import pytest

from duplex_protocol import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from duplex_tts.audio import (
    TARGET_LUFS,
    AudioPipeline,
    Framer,
    StreamResampler,
    calibrate_gain,
    fade_out,
    float_to_pcm16,
    integrated_loudness,
)
from duplex_tts.audio.pipeline import LEAD_MARGIN_S


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pcm(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32) / 32767


def test_framer_emits_exact_frames_whatever_the_chunking() -> None:
    signal = sine(440, 0.1, SAMPLE_RATE)  # 4800 samples = 5 frames
    framer = Framer()
    frames: list[bytes] = []
    for size in (1, 959, 961, 100, 2779):
        frames += framer.push(signal[:size])
        signal = signal[size:]
    assert len(frames) == 5
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert framer.pending_samples == 0


def test_framer_flush_zero_pads_the_last_frame() -> None:
    framer = Framer()
    assert framer.push(np.full(1000, 0.5, dtype=np.float32)) != []
    last = np.frombuffer(framer.flush(), dtype="<i2")
    assert last.size == FRAME_SAMPLES
    assert np.all(last[:40] > 16000)
    assert np.all(last[40:] == 0)
    assert np.all(np.frombuffer(framer.flush(), dtype="<i2") == 0)


def test_pcm16_conversion_clips_and_rounds() -> None:
    out = np.frombuffer(
        float_to_pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)), "<i2"
    )
    assert out.tolist() == [-32767, -32767, 0, 16384, 32767, 32767]


def test_fade_out_ends_at_silence() -> None:
    frame = float_to_pcm16(np.full(FRAME_SAMPLES, 0.8, dtype=np.float32))
    faded = np.frombuffer(fade_out(frame), dtype="<i2")
    assert faded[0] > 26000
    assert faded[-1] == 0
    assert np.all(np.diff(faded.astype(np.int32)) <= 0)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 44100])
def test_streaming_resampler_preserves_pitch_and_has_no_seams(rate: int) -> None:
    signal = sine(440, 1.0, rate)
    resampler = StreamResampler(rate)
    pieces = [resampler.process(chunk) for chunk in np.array_split(signal, 37)]
    out = np.concatenate([*pieces, resampler.flush()])
    assert abs(out.size - SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (out.size - 2000)
    assert peak_hz == pytest.approx(440, abs=2)
    # A seam between chunks would show as a jump far larger than a 440 Hz sine's step.
    max_step = 2 * np.pi * 440 / SAMPLE_RATE * 0.5
    assert np.max(np.abs(np.diff(out[500:-500]))) < 1.05 * max_step


def test_resampler_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0)


def test_calibrated_gain_reaches_target_loudness() -> None:
    quiet = sine(300, 2.0, 22050, amp=0.02)
    gain = calibrate_gain(quiet, 22050)
    assert gain > 1
    assert integrated_loudness((quiet * gain).astype(np.float32), 22050) == pytest.approx(
        TARGET_LUFS, abs=0.1
    )


def test_gain_is_neutral_for_silence_and_short_audio() -> None:
    assert calibrate_gain(np.zeros(22050, np.float32), 22050) == 1.0
    assert calibrate_gain(sine(300, 0.1, 22050), 22050) == 1.0


def test_pipeline_output_is_48k_frames_at_the_applied_gain() -> None:
    native = sine(200, 1.5, 22050, amp=0.1)
    gain = calibrate_gain(native, 22050)
    pipeline = AudioPipeline(22050, gain)
    frames: list[bytes] = []
    for chunk in np.array_split(native, 7):
        frames += pipeline.push(chunk)
    frames += pipeline.finish()
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert len(frames) == int(np.ceil(1.5 * SAMPLE_RATE / FRAME_SAMPLES)) or len(frames) == 76
    out = pcm(frames)
    assert integrated_loudness(out, SAMPLE_RATE) == pytest.approx(TARGET_LUFS, abs=0.5)


def test_pipeline_output_does_not_depend_on_how_the_model_chunks_its_audio() -> None:
    native = sine(220, 1.0, 22050, amp=0.3)
    whole = AudioPipeline(22050, gain=1.5)
    one_shot = whole.push(native) + whole.finish()
    chunked = AudioPipeline(22050, gain=1.5)
    frames: list[bytes] = []
    for piece in np.array_split(native, 53):  # odd sizes, boundaries inside frames
        frames += chunked.push(piece)
    frames += chunked.finish()
    assert len(frames) == len(one_shot)
    a, b = pcm(frames), pcm(one_shot)
    assert np.max(np.abs(a - b)) < 1e-3  # no seams: same signal whatever the chunking


def test_pipeline_limits_peaks_softly() -> None:
    pipeline = AudioPipeline(SAMPLE_RATE, gain=4.0)
    frames = pipeline.push(sine(100, 0.2, SAMPLE_RATE, amp=0.9)) + pipeline.finish()
    assert np.max(np.abs(pcm(frames))) > 0.9
    # 3.6 x full scale in: the ceiling stays under full scale, so no PCM16 sample clips.
    samples = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.int32)
    assert np.max(np.abs(samples)) <= round(0.98 * 32767)


def test_an_utterance_starts_at_its_first_sound_and_keeps_its_inner_silences() -> None:
    rate, lead_s, gap_s = 22050, 0.05, 0.1
    tone = sine(200, 0.2, rate, amp=0.3)
    native = np.concatenate(
        [np.zeros(int(lead_s * rate), np.float32), tone, np.zeros(int(gap_s * rate)), tone]
    ).astype(np.float32)
    pipeline = AudioPipeline(rate, gain=1.0)
    frames: list[bytes] = []
    for piece in np.array_split(native, 40):  # the silence spans several chunks
        frames += pipeline.push(piece)
    out = pcm(frames + pipeline.finish())
    first = int(np.flatnonzero(np.abs(out) > 1e-3)[0])
    assert first <= 0.006 * SAMPLE_RATE  # the margin (5 ms) and the resampler's ramp
    # The 50 ms lead is gone; the 100 ms between the tones is still there.
    expected = (0.2 + gap_s + 0.2 + LEAD_MARGIN_S) * SAMPLE_RATE
    assert abs(len(out) - expected) <= FRAME_SAMPLES
    quiet = np.abs(out[int(0.25 * SAMPLE_RATE) : int(0.28 * SAMPLE_RATE)])
    assert quiet.max() < 1e-3


def test_a_silent_utterance_is_one_silent_frame() -> None:
    pipeline = AudioPipeline(22050)
    frames = pipeline.push(np.zeros(22050, np.float32)) + pipeline.finish()
    assert len(frames) == 1
    assert not np.any(pcm(frames))
