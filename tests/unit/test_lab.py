"""The voice lab's loudness figures (ITU-R BS.1770 through pyloudnorm) on signals of known level."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_orchestrator.lab import LAB_RATE, loudness


def tone(amplitude: float, seconds: float, hz: float = 997.0) -> bytes:
    t = np.arange(int(LAB_RATE * seconds)) / LAB_RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def test_a_997_hz_sine_reads_as_bs1770_says() -> None:
    # BS.1770: a full-scale 997 Hz sine is -3.01 LKFS; each halving of amplitude is -6.02 dB.
    full, half = loudness(tone(1.0, 2.0)), loudness(tone(0.5, 2.0))
    assert full["lufs"] == pytest.approx(-3.01, abs=0.1)
    assert half["lufs"] == pytest.approx(-9.03, abs=0.1)
    assert half["peak_dbfs"] == pytest.approx(-6.02, abs=0.05)
    assert half["seconds"] == 2.0


def test_silence_and_audio_shorter_than_one_gating_block_have_no_loudness() -> None:
    assert loudness(bytes(LAB_RATE * 2)) == {"lufs": None, "peak_dbfs": None, "seconds": 1.0}
    short = loudness(tone(0.5, 0.2))
    assert short["lufs"] is None
    assert short["seconds"] == 0.2
    assert loudness(b"\x01") == {"lufs": None, "peak_dbfs": None, "seconds": 0.0}  # odd byte
