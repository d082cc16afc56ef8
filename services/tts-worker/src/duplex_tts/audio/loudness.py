"""Loudness measurement (ITU-R BS.1770 via pyloudnorm) and gain calibration.

pyloudnorm is imported on the first measurement (a model's warm-up, in a
thread): it pulls in scipy.signal, ~3 s on a small CPU, which a worker that
stops at a bad flag or voicepack should not pay first.
"""

from __future__ import annotations

import math

import numpy as np

from duplex_tts.audio.framing import FloatArray

TARGET_LUFS = -16.0
"""Every model's output is normalized to about this integrated loudness."""
_MAX_GAIN_DB = 30.0
_MIN_SECONDS = 0.4  # one BS.1770 gating block


def integrated_loudness(samples: FloatArray, sample_rate: int) -> float:
    """Integrated loudness in LUFS; -inf for silence or audio shorter than 400 ms."""
    if samples.size < int(_MIN_SECONDS * sample_rate) or not np.any(samples):
        return -math.inf
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    return float(meter.integrated_loudness(samples.astype(np.float64)))


def calibrate_gain(
    samples: FloatArray, sample_rate: int, target_lufs: float = TARGET_LUFS
) -> float:
    """Linear gain that brings ``samples`` to ``target_lufs`` (1.0 when unmeasurable)."""
    loudness = integrated_loudness(samples, sample_rate)
    if not math.isfinite(loudness):
        return 1.0
    gain_db = max(-_MAX_GAIN_DB, min(_MAX_GAIN_DB, target_lufs - loudness))
    return float(10.0 ** (gain_db / 20.0))
